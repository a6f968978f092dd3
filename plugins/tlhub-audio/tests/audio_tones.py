"""Tiny synthetic sounds for the plugin's tests: class folders of short tones written with soundfile (a plain
module, not conftest.py, so it cannot be confused with another test folder's conftest)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

TONES = {"low": 300.0, "mid": 900.0, "high": 2400.0}


def tone(freq: float, rate: int = 16000, seconds: float = 0.4, seed: int = 0, channels: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(rate * seconds)) / rate
    y = 0.4 * np.sin(2 * np.pi * freq * (1 + 0.02 * rng.standard_normal()) * t) + 0.01 * rng.standard_normal(t.size)
    y = y.astype(np.float32)
    return np.stack([y] * channels, axis=1) if channels > 1 else y


def write_tones(root: Path, per_class: int = 6, splits: tuple[str, ...] = ()) -> Path:
    """``root/[split/]class/*.wav``: tones at three pitches, some at 8 or 22.05 kHz and some in stereo, so
    resampling and downmixing run too."""
    for split in splits or ("",):
        for c, (name, freq) in enumerate(TONES.items()):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                rate = (16000, 8000, 22050)[i % 3]
                sf.write(folder / f"{name}{i}.wav", tone(freq, rate, 0.3 + 0.05 * i, seed=100 * c + i,
                                                         channels=1 + (i % 2)), rate)
    return root
