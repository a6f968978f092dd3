"""Sounds to spectrogram images, with numpy and no torch: the one place training, predict, the ONNX feeder,
serving and the report turn a sound into model input.

soundfile (libsndfile) reads the file, soxr resamples (the resampler librosa itself uses by default), librosa
computes the log-mel spectrogram, PIL resizes it to the image size. The steps:

1. mono float32 at ``sample_rate``;
2. leading/trailing sound quieter than the peak by more than ``trim_db`` is cut (0: keep all), so a recording
   with a second of silence before the word looks like one without;
3. padded with silence on both sides to ``clip_seconds`` (the sound in the middle); a longer sound is kept
   whole and its spectrogram squeezed into the image (step 5), never cut;
4. mel power spectrogram (``n_mels`` bands up to ``fmax``, ``window_ms`` windows every ``hop_ms``), in dB
   relative to its peak, floored at ``-top_db`` and scaled to 0..1 (loudness-invariant);
5. resized (PIL bilinear) to ``size`` x ``size``, low frequencies at the bottom, repeated into 3 channels and
   normalized with the backbone's ImageNet mean/std, as ``torchvision``'s ``ToTensor`` + ``Normalize`` do.
"""
from __future__ import annotations

import io
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Clip:
    """A decoded sound: mono float32 samples at ``sample_rate``; ``name`` says where it came from."""

    samples: np.ndarray
    sample_rate: int
    name: str = ""


@dataclass(frozen=True)
class FeatureSettings:
    """Everything that turns a clip into model input; written into the exported model's config."""

    sample_rate: int = 16000
    clip_seconds: float = 1.0
    n_mels: int = 64
    window_ms: float = 32.0
    hop_ms: float = 10.0
    fmin: float = 20.0
    fmax: float = 0.0  # 0: half the sample rate
    trim_db: float = 30.0
    top_db: float = 80.0
    size: int = 96
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "FeatureSettings":
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        for k in ("mean", "std"):
            if k in known:
                known[k] = tuple(float(v) for v in known[k])
        return cls(**known)


def _why(exc: Exception) -> str:
    """soundfile's reason without its "Error opening <object at 0x...>:" prefix."""
    return getattr(exc, "error_string", None) or f"{type(exc).__name__}: {exc}"


def decode(data: bytes, name: str = "") -> Clip:
    """A clip from an encoded file's bytes (an upload); ``ValueError`` when it is not a sound soundfile reads."""
    return _read(io.BytesIO(data), name)


def seconds(data: bytes, name: str = "") -> float:
    """The duration an encoded file's header declares (nothing decoded); ``ValueError`` when unreadable."""
    import soundfile as sf
    try:
        info = sf.info(io.BytesIO(data))
    except Exception as exc:  # noqa: BLE001  (LibsndfileError, RuntimeError, TypeError for bad input)
        raise ValueError(f"{name or 'upload'}: not a sound file soundfile can read ({_why(exc)})") from None
    return info.frames / info.samplerate if info.samplerate else 0.0


def header_error(path: str | Path) -> str | None:
    """None when soundfile reads the file's header and it holds samples, else why not."""
    import soundfile as sf
    try:
        info = sf.info(str(path))
    except Exception as exc:  # noqa: BLE001  (LibsndfileError, RuntimeError, ... for bad files)
        return f"not a sound file soundfile can read ({_why(exc)})"
    return None if info.frames > 0 else "holds no samples"


def read(path: str | Path) -> Clip:
    """A clip from a file; ``ValueError`` naming the file when it is not a sound soundfile reads."""
    return _read(path, str(path))


def _read(source: Any, name: str) -> Clip:
    import soundfile as sf
    try:
        samples, rate = sf.read(source, dtype="float32", always_2d=True)
    except Exception as exc:  # noqa: BLE001  soundfile raises LibsndfileError, RuntimeError, TypeError for bad input
        raise ValueError(f"{name or 'upload'}: not a sound file soundfile can read ({_why(exc)})") from None
    if samples.shape[0] == 0:
        raise ValueError(f"{name or 'upload'}: the sound file holds no samples")
    return Clip(samples.mean(axis=1), int(rate), name)


def as_clip(item: Any, sample_rate: int) -> Clip:
    """A clip from an item: a ``Clip``, a path, or a 1-D array of samples at ``sample_rate``."""
    if isinstance(item, Clip):
        return item
    if isinstance(item, (str, Path)):
        return read(item)
    arr = np.asarray(item, dtype=np.float32)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"expected a sound file path or a non-empty 1-D array of samples, got shape {arr.shape}")
    return Clip(arr, sample_rate, "samples")


def waveform(clip: Clip, s: FeatureSettings) -> np.ndarray:
    """Steps 1-3: mono samples at the settings' rate, trimmed, centred in at least ``clip_seconds``."""
    y = np.ascontiguousarray(clip.samples, dtype=np.float32)
    if not np.all(np.isfinite(y)):
        raise ValueError(f"{clip.name or 'sound'}: holds NaN or infinite samples")
    if clip.sample_rate != s.sample_rate:
        import soxr
        y = soxr.resample(y, clip.sample_rate, s.sample_rate).astype(np.float32)
    if s.trim_db > 0 and np.any(y):
        import librosa
        y, _ = librosa.effects.trim(y, top_db=s.trim_db, frame_length=_n_fft(s), hop_length=_hop(s))
    need = int(round(s.clip_seconds * s.sample_rate))
    if len(y) < need:
        left = (need - len(y)) // 2
        y = np.pad(y, (left, need - len(y) - left))
    return y


def _n_fft(s: FeatureSettings) -> int:
    return max(16, int(round(s.window_ms * s.sample_rate / 1000)))


def _hop(s: FeatureSettings) -> int:
    return max(1, int(round(s.hop_ms * s.sample_rate / 1000)))


def log_mel(y: np.ndarray, s: FeatureSettings) -> np.ndarray:
    """Step 4: ``[n_mels, frames]`` in 0..1 (1: the clip's loudest band and frame), low frequencies first."""
    import librosa
    mel = librosa.feature.melspectrogram(y=y, sr=s.sample_rate, n_fft=_n_fft(s), hop_length=_hop(s),
                                         n_mels=s.n_mels, fmin=s.fmin, fmax=s.fmax or s.sample_rate / 2)
    if not np.any(mel):
        return np.zeros_like(mel, dtype=np.float32)
    db = librosa.power_to_db(mel, ref=np.max, top_db=s.top_db)
    return (1.0 + db / s.top_db).astype(np.float32)


def picture(spec: np.ndarray, size: int) -> np.ndarray:
    """Step 5's resize: a ``[size, size]`` float32 image in 0..1, low frequencies at the bottom."""
    from PIL import Image
    img = Image.fromarray(np.ascontiguousarray(spec[::-1]), mode="F").resize((size, size), Image.BILINEAR)
    return np.clip(np.asarray(img, dtype=np.float32), 0.0, 1.0)


def normalize(pic: np.ndarray, s: FeatureSettings) -> np.ndarray:
    """``[3, size, size]`` float32: the grey picture in each channel, normalized with the backbone's mean/std."""
    mean = np.asarray(s.mean, dtype=np.float32)[:, None, None]
    std = np.asarray(s.std, dtype=np.float32)[:, None, None]
    return ((pic[None] - mean) / std).astype(np.float32)


def features(item: Any, s: FeatureSettings) -> np.ndarray:
    """An item (path, ``Clip`` or samples) as ``[3, size, size]`` float32 model input."""
    return normalize(picture(log_mel(waveform(as_clip(item, s.sample_rate), s), s), s.size), s)


def thumbnail(item: Any, s: FeatureSettings, size: int) -> np.ndarray:
    """An ``HxWx3`` uint8 spectrogram picture for reports (a dark-blue-to-yellow colour scale)."""
    pic = picture(log_mel(waveform(as_clip(item, s.sample_rate), s), s), size)
    stops = np.array([[13, 8, 135], [126, 3, 168], [204, 71, 120], [248, 149, 64], [240, 249, 33]], np.float32)
    pos = np.linspace(0.0, 1.0, len(stops))
    rgb = np.stack([np.interp(pic, pos, stops[:, c]) for c in range(3)], axis=-1)
    return rgb.round().astype(np.uint8)
