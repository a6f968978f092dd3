"""The ``audio`` modality: sounds become log-mel spectrogram images (tlhub_audio.features) for image backbones.

Items are sound file paths (the ``audio-folders`` source, ``tlhub predict a.wav``), ``Clip`` objects (uploads,
decoded once) or 1-D sample arrays at the model's sample rate (the Python API). torch is imported only where a
tensor is made, so checking inputs and the ONNX feeder run without it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from tlhub.errors import UserError
from tlhub.modality import Datasets, DataSettings, InputPipeline, Modality, OnnxIO, SampleView

from tlhub_audio import features as F
from tlhub_audio.formats import EXTENSIONS

INPUT = "spectrogram"  # the ONNX graph's input name
MAX_SECONDS = 600.0  # a served sound longer than this is refused before it is decoded
_FLOATS = ("clip_seconds", "window_ms", "hop_ms", "fmin", "fmax", "trim_db", "top_db")
_INTS = ("sample_rate", "n_mels", "size")


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)


def _image_prep(backbone: Any):
    return getattr(backbone, "preprocessing", None)


def _draws_image_augment(augment: Any) -> bool:
    return augment is not None and any(getattr(augment, k, 0) for k in ("crop_padding", "flip", "rotation",
                                                                          "color_jitter"))


def settings(backbone: Any, data: DataSettings) -> F.FeatureSettings:
    """Feature settings of a run: the recipe's ``[data.preprocess]`` options, its image size (0: the
    backbone's) and the backbone's mean/std."""
    prep = _image_prep(backbone)
    if not all(hasattr(prep, k) for k in ("mean", "std", "size")):
        raise UserError(f"audio: the backbone does not take images (preprocessing {type(prep).__name__}); "
                        "the audio modality feeds image backbones")
    opts = {k: v for k, v in data.options.items() if k in F.FeatureSettings.__dataclass_fields__}
    return F.FeatureSettings(**opts, size=int(data.image_size or prep.size),
                             mean=tuple(float(v) for v in prep.mean), std=tuple(float(v) for v in prep.std))


class AudioInputs(InputPipeline):
    """Checked items (see ``AudioModality.as_items``) -> a ``[n, 3, size, size]`` feature batch."""

    def __init__(self, s: F.FeatureSettings):
        self.s = s

    def features(self, items: Sequence) -> np.ndarray:
        try:
            return np.stack([F.features(item, self.s) for item in items])
        except ValueError as exc:
            raise UserError(f"audio: {exc}") from None

    def batch(self, items: Sequence, device: Any) -> Any:
        import torch
        return torch.from_numpy(self.features(items)).to(device)


class AudioModality(Modality):
    name = "audio"
    noun = "recordings"
    json_help = 'uploaded sound files, or {"samples": [numbers], "sample_rate": Hz}'

    # -- training
    def datasets(self, backbone: Any, data: DataSettings, splits: Any) -> Datasets:
        from tlhub_audio.dataset import AudioDataset
        problems = self.data_problems(data)
        if problems:  # tlhub validate reports them first; a recipe run without it stops here
            raise UserError(errors=problems)
        s = settings(backbone, data)
        shift, masks = float(data.options.get("time_shift", 0.0)), int(data.options.get("masks", 0))
        out = {name: AudioDataset(getattr(splits, name).items, getattr(splits, name).labels, s,
                                  *((shift, masks) if name == "train" else ()))
               for name in ("train", "val", "test")}
        return Datasets(out["train"], out["val"], out["test"], deterministic=not self.augments(data))

    def augments(self, data: DataSettings) -> bool:
        return bool(float(data.options.get("time_shift", 0.0)) or int(data.options.get("masks", 0)))

    def data_problems(self, data: DataSettings) -> list[str]:
        if _draws_image_augment(data.augment):
            # flips, rotations, crops and colour jitter of a spectrogram make sounds that are not sounds
            return ["data.augment: audio: [data.augment] is for images; use data.preprocess.time_shift and "
                    "data.preprocess.masks for spectrograms"]
        return []

    def backbone_problem(self, backbone: Any) -> str:
        prep = _image_prep(backbone)
        return "" if all(hasattr(prep, k) for k in ("mean", "std", "size")) else \
            f"the audio modality feeds image backbones (ImagePreprocessing), got {type(prep).__name__}"

    def item_problem(self, item: Any) -> str:
        if isinstance(item, (str, Path)):
            if not Path(item).is_file():
                return f"is a path that does not exist: {item}"
            why = F.header_error(Path(item))
            return f"{item}: {why}" if why else ""
        if isinstance(item, F.Clip):
            return "" if item.samples.ndim == 1 and item.samples.size else "is a Clip without samples"
        return (f"is a {type(item).__name__}; an audio source gives sound file paths or "
                "tlhub_audio.features.Clip objects")

    def channels_last(self, backbone: Any) -> bool:
        return True

    def example_batch(self, backbone: Any, n: int = 2) -> Any:
        import torch
        s = settings(backbone, DataSettings())
        t = np.arange(int(s.sample_rate * 0.5)) / s.sample_rate
        clips = [F.Clip((0.3 * np.sin(2 * np.pi * (300 + 200 * i) * t)).astype(np.float32), s.sample_rate, "sine")
                 for i in range(n)]
        return torch.from_numpy(np.stack([F.features(c, s) for c in clips]))

    # -- the exported model
    def config(self, backbone: Any, data: DataSettings) -> dict:
        return settings(backbone, data).to_dict()

    def config_problems(self, prep: dict) -> list[str]:
        problems = []
        for key in _FLOATS + _INTS:
            v = prep.get(key)
            if not _number(v) or (key in _INTS and not isinstance(v, int)):
                problems.append(f"preprocessing: {key} must be {'an integer' if key in _INTS else 'a number'}, "
                                f"got {v!r}")
        for key in ("sample_rate", "n_mels", "size", "clip_seconds", "window_ms", "hop_ms", "top_db"):
            v = prep.get(key)
            if _number(v) and v <= 0:
                problems.append(f"preprocessing: {key} must be positive, got {v!r}")
        for key in ("mean", "std"):
            v = prep.get(key)
            if not (isinstance(v, list) and len(v) == 3 and all(_number(x) for x in v)):
                problems.append(f"preprocessing: {key} must be a list of 3 numbers, got {v!r}")
            elif key == "std" and any(x == 0 for x in v):
                problems.append(f"preprocessing: std must not be 0, got {v!r}")
        return problems

    # -- predicting
    def as_items(self, inputs: Any) -> list:
        """Paths of existing files, ``Clip`` objects and 1-D sample arrays, one or a list/tuple of them."""
        items = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        if not items:
            raise UserError("audio: no inputs given")
        out = []
        for item in items:
            if isinstance(item, (str, Path)):
                if not Path(item).is_file():
                    raise UserError(f"{item}: no such sound file")
                out.append(str(item))
            elif isinstance(item, F.Clip) or (isinstance(item, np.ndarray) and item.ndim == 1 and item.size):
                out.append(item)
            else:
                raise UserError(f"audio: cannot read a {type(item).__name__} as a sound; give a sound file path, "
                                "a 1-D numpy array of samples at the model's sample rate, or a "
                                "tlhub_audio.features.Clip")
        return out

    def inputs(self, prep: dict, backbone: Any = None, model_dir: Path | None = None) -> AudioInputs:
        return AudioInputs(F.FeatureSettings.from_dict(prep))

    def expand(self, args: list[str], skipped: list[str]) -> list:
        """Files as given (a file soundfile cannot read is refused), folders expanded (recursively, sorted,
        by extension); a folder's files that do not read are left out and listed in ``skipped``."""
        out: list[str] = []
        for a in args:
            p = Path(a).expanduser()
            if p.is_dir():
                found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in EXTENSIONS
                               and not any(part.startswith(".") for part in f.relative_to(p).parts))
                if not found:
                    raise UserError(f"{a}: folder holds no sound file ({', '.join(EXTENSIONS)})")
                bad = {f: why for f in found if (why := F.header_error(f))}
                skipped += [f"{f}: {why}" for f, why in bad.items()]
                out += [str(f) for f in found if f not in bad]
            elif p.is_file():
                why = F.header_error(p)
                if why:
                    raise UserError(f"{a}: {why}")
                out.append(str(p))
            else:
                raise UserError(f"{a}: no such sound file or folder")
        return out

    # -- ONNX
    def onnx_io(self, pipeline: InputPipeline, backbone: Any) -> OnnxIO:
        import torch
        s = pipeline.s
        x = torch.randn(2, 3, s.size, s.size, generator=torch.Generator().manual_seed(0))
        return OnnxIO({INPUT: x}, {INPUT: {0: "batch"}}, lambda spectrogram: spectrogram)

    def onnx_metadata(self, prep: dict) -> dict:
        return {"input": INPUT, "layout": "NCHW", "features": "log-mel spectrogram image, see preprocessing and "
                "tlhub_audio.features.features (numpy only)"}

    def onnx_feeder(self, prep: dict, folder: Path) -> Callable[[Sequence], dict]:
        pipeline = AudioInputs(F.FeatureSettings.from_dict(prep))

        def feed(items: Sequence) -> dict:
            return {INPUT: pipeline.features(items)}
        return feed

    # -- serving
    def from_json(self, value: Any, what: str, limits: Any = None) -> Any:
        """``{"samples": [...], "sample_rate": N}``: raw mono samples."""
        if not isinstance(value, dict) or not isinstance(value.get("samples"), list):
            raise ValueError(f'{what}: expected {{"samples": [numbers], "sample_rate": Hz}} (or upload a sound file)')
        rate = value.get("sample_rate")
        if not isinstance(rate, int) or isinstance(rate, bool) or not 1000 <= rate <= 384000:
            raise ValueError(f"{what}: sample_rate must be an integer number of Hz (1000..384000), got {rate!r}")
        if len(value["samples"]) > MAX_SECONDS * rate:
            raise ValueError(f"{what}: over {MAX_SECONDS:g} s of samples; send a shorter sound")
        try:
            samples = np.asarray(value["samples"], dtype=np.float32)
        except (TypeError, ValueError):
            raise ValueError(f"{what}: samples must be a list of numbers") from None
        if samples.ndim != 1 or samples.size == 0 or not np.all(np.isfinite(samples)):
            raise ValueError(f"{what}: samples must be a non-empty list of finite numbers")
        return F.Clip(samples, rate, what)

    def from_upload(self, data: bytes, filename: str, what: str, limits: Any = None) -> Any:
        """A ``Clip``, decoded here so a broken file fails its own request, not a batch."""
        if not data:
            raise ValueError(f"{what}: empty file")
        seconds = F.seconds(data, what)
        if seconds > MAX_SECONDS:
            raise ValueError(f"{what}: {seconds:.0f} s is over the limit of {MAX_SECONDS:g} s; send a shorter sound")
        return F.decode(data, filename or what)

    # -- reports
    def sample_view(self, item: Any, size: int) -> SampleView:
        name = item.name if isinstance(item, F.Clip) else Path(item).name if isinstance(item, (str, Path)) \
            else "samples"
        try:
            # default settings: sample_view is not given the model's preprocessing (the picture is for eyes only)
            return SampleView(text=name, image=F.thumbnail(item, F.FeatureSettings(), size))
        except ValueError as exc:
            return SampleView(text=f"{name} ({exc})")
