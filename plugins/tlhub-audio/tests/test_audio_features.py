"""Sounds to spectrogram images, the audio-folders source and the modality's checks (no training here)."""
from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
from audio_tones import tone, write_tones

from tlhub.errors import UserError
from tlhub_audio import features as F
from tlhub_audio.modality import AudioModality


@pytest.fixture
def tones(tmp_path) -> Path:
    """``tmp_path/tones/{low,mid,high}/*.wav``: 6 short tones per class. (Here, not in a conftest.py: a second
    module named ``conftest`` would shadow tlhub's tests/conftest.py when CI collects both folders.)"""
    return write_tones(tmp_path / "tones")


def test_features_shape_range_and_normalization():
    s = F.FeatureSettings(size=48, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    x = F.features(tone(900.0), s)
    assert x.shape == (3, 48, 48) and x.dtype == np.float32
    pic = F.picture(F.log_mel(F.waveform(F.as_clip(tone(900.0), 16000), s), s), 48)
    assert 0.0 <= pic.min() and pic.max() == pytest.approx(1.0, abs=0.05)
    for c in range(3):  # each channel is the same picture under its own ImageNet mean/std
        np.testing.assert_allclose(x[c] * s.std[c] + s.mean[c], pic, atol=1e-5)


def test_pitch_moves_the_bright_band_up():
    s = F.FeatureSettings(size=64)
    rows = {f: F.picture(F.log_mel(F.waveform(F.as_clip(tone(f), 16000), s), s), 64).mean(axis=1).argmax()
            for f in (300.0, 2400.0)}
    assert rows[2400.0] < rows[300.0]  # row 0 is the top of the picture: high frequencies


def test_resampling_and_stereo_give_the_same_picture(tmp_path):
    s = F.FeatureSettings(size=32, trim_db=0)
    y16 = tone(900.0, 16000, seed=1)
    sf.write(tmp_path / "a.wav", y16, 16000)
    sf.write(tmp_path / "b.wav", np.stack([y16, y16], 1), 16000)
    np.testing.assert_array_equal(F.features(tmp_path / "a.wav", s), F.features(tmp_path / "b.wav", s))
    t = np.arange(int(0.4 * 8000)) / 8000
    sf.write(tmp_path / "c.wav", (0.4 * np.sin(2 * np.pi * 900.0 * t)).astype(np.float32), 8000)
    c = F.waveform(F.read(tmp_path / "c.wav"), s)
    assert len(c) == 16000  # 0.4 s at 8 kHz -> 16 kHz, centred in the 1 s clip


def test_silence_is_trimmed_and_the_sound_centred():
    s = F.FeatureSettings()
    y = np.concatenate([np.zeros(12000, np.float32), tone(900.0, seconds=0.2), np.zeros(2000, np.float32)])
    w = F.waveform(F.Clip(y, 16000), s)
    assert len(w) == 16000
    loud = np.flatnonzero(np.abs(w) > 0.05)
    assert abs((loud[0] + loud[-1]) / 2 - 8000) < 400
    long = F.waveform(F.Clip(tone(900.0, seconds=2.5), 16000), s)
    assert len(long) >= 2.4 * 16000  # longer than the clip: kept whole, squeezed by the resize later


def test_silence_and_bad_inputs():
    s = F.FeatureSettings(size=16)
    assert np.all(F.features(np.zeros(8000, np.float32), s) == F.normalize(np.zeros((16, 16), np.float32), s))
    with pytest.raises(ValueError, match="NaN"):
        F.features(np.array([0.0, np.nan] * 100, np.float32), s)
    with pytest.raises(ValueError, match="not a sound file"):
        F.decode(b"not a wav at all", "x.wav")
    with pytest.raises(ValueError, match="1-D"):
        F.as_clip(np.zeros((2, 2)), 16000)


def test_thumbnail_is_rgb_uint8(tones):
    thumb = F.thumbnail(next(tones.rglob("*.wav")), F.FeatureSettings(), 40)
    assert thumb.shape == (40, 40, 3) and thumb.dtype == np.uint8 and thumb.std() > 0


def test_settings_round_trip_through_the_config():
    s = F.FeatureSettings(n_mels=40, size=64, mean=(0.1, 0.2, 0.3))
    d = s.to_dict()
    assert F.FeatureSettings.from_dict(d) == s
    assert AudioModality().config_problems(d) == []
    bad = dict(d, n_mels=1.5, std=[0.5, 0, 0.5], sample_rate=-1)
    del bad["hop_ms"]
    problems = AudioModality().config_problems(bad)
    assert any("n_mels must be an integer" in p for p in problems)
    assert any("hop_ms must be a number, got None" in p for p in problems)
    assert any("std must not be 0" in p for p in problems)
    assert any("sample_rate must be positive" in p for p in problems)


def test_audio_folders_splits_and_skips(tmp_path):
    from tlhub.interfaces import DataContext
    from tlhub_audio.folders import load_audio_folders
    root = write_tones(tmp_path / "d", per_class=3, splits=("train", "Test"))
    (root / "train" / "low" / "broken.wav").write_bytes(b"RIFF....")
    (root / "train" / "low" / "notes.txt").write_text("x")
    data = load_audio_folders({"path": "d", "extensions": [".wav"]}, DataContext(tmp_path, 0, lambda m: None))
    assert data.classes == ["high", "low", "mid"] and len(data.train) == 9 and len(data.test) == 9
    assert data.val is None and sorted(set(data.train.labels)) == [0, 1, 2]
    assert any("broken.wav" in line for line in data.skipped) and any("notes.txt" in line for line in data.skipped)
    (root / "extra").mkdir()
    with pytest.raises(UserError, match="mixes split folders"):
        load_audio_folders({"path": "d", "extensions": [".wav"]}, DataContext(tmp_path, 0))
    with pytest.raises(UserError, match="is not a folder"):
        load_audio_folders({"path": "nowhere", "extensions": [".wav"]}, DataContext(tmp_path, 0))


def test_expand_and_as_items(tones, tmp_path):
    m = AudioModality()
    (tones / "low" / "bad.wav").write_bytes(b"nope")
    skipped: list[str] = []
    files = m.expand([str(tones)], skipped)
    assert len(files) == 18 and all(f.endswith(".wav") for f in files)
    assert len(skipped) == 1 and "bad.wav" in skipped[0]
    with pytest.raises(UserError, match="no such sound file or folder"):
        m.expand([str(tmp_path / "missing.wav")], [])
    with pytest.raises(UserError, match="not a sound file"):
        m.expand([str(tones / "low" / "bad.wav")], [])
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="holds no sound file"):
        m.expand([str(tmp_path / "empty")], [])
    assert m.as_items(files[0]) == [files[0]]
    with pytest.raises(UserError, match="no such sound file"):
        m.as_items([str(tmp_path / "missing.wav")])
    with pytest.raises(UserError, match="cannot read a dict"):
        m.as_items({"a": 1})


def test_serving_inputs(tones):
    m = AudioModality()
    data = next(tones.rglob("*.wav")).read_bytes()
    clip = m.from_upload(data, "a.wav", "file 0")
    assert isinstance(clip, F.Clip) and clip.samples.ndim == 1
    with pytest.raises(ValueError, match="not a sound file"):
        m.from_upload(b"GIF89a....", "x.gif", "file 1")
    with pytest.raises(ValueError, match="empty file"):
        m.from_upload(b"", "x.wav", "file 2")
    assert m.from_json({"samples": [0.0, 0.1, -0.1], "sample_rate": 8000}, "input 0").sample_rate == 8000
    for bad, why in (([0.1], "expected"), ({"samples": [0.1], "sample_rate": 1.5}, "sample_rate"),
                     ({"samples": ["a"], "sample_rate": 8000}, "numbers")):
        with pytest.raises(ValueError, match=why):
            m.from_json(bad, "input 0")


def test_pipeline_batch_equals_onnx_feeder(tones):
    m = AudioModality()
    backbone = SimpleNamespace(preprocessing=SimpleNamespace(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), size=32))
    from tlhub.modality import DataSettings
    prep = m.config(backbone, DataSettings(image_size=24, options={"n_mels": 32}))
    assert prep["size"] == 24 and prep["n_mels"] == 32
    files = sorted(str(f) for f in tones.rglob("*.wav"))[:3]
    x = m.inputs(prep).batch(m.as_items(files), "cpu")
    feeds = m.onnx_feeder(prep, tones)(files)
    assert tuple(x.shape) == (3, 3, 24, 24)
    np.testing.assert_array_equal(x.numpy(), feeds["spectrogram"])
    assert m.backbone_problem(backbone) == ""
    assert "image backbones" in m.backbone_problem(SimpleNamespace(preprocessing=None))
    view = m.sample_view(files[0], 32)
    assert view.image.shape == (32, 32, 3) and view.text.endswith(".wav")


def test_augmentation_keeps_shape_and_silences_what_it_masks():
    import torch
    from tlhub_audio.dataset import AudioDataset
    s = F.FeatureSettings(size=32)
    ds = AudioDataset([tone(900.0)], [0], s, shift=0.25, masks=2)
    torch.manual_seed(0)
    pic = np.ones((32, 32), np.float32)
    out = ds.augment(pic)
    assert out.shape == (32, 32) and 0 < (out == 0).sum() < out.size and np.all(pic == 1)
    x, y = ds[0]
    assert tuple(x.shape) == (3, 32, 32) and y == 0


def test_upload_bytes_round_trip():
    buf = io.BytesIO()
    sf.write(buf, tone(300.0), 16000, format="WAV")
    assert F.seconds(buf.getvalue()) == pytest.approx(0.4, abs=1e-3)
