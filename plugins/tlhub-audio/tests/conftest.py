from __future__ import annotations

from pathlib import Path

import pytest
from audio_tones import write_tones


@pytest.fixture
def tones(tmp_path) -> Path:
    """``tmp_path/tones/{low,mid,high}/*.wav``: 6 short tones per class."""
    return write_tones(tmp_path / "tones")
