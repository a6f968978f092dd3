"""tools/make_spoken_digits.py: voice-disjoint splits, and (with espeak-ng and sox) a tiny deterministic set."""
from __future__ import annotations

import hashlib
import importlib.util
import shutil
import sys
from pathlib import Path

import pytest
import soundfile as sf

TOOL = Path(__file__).resolve().parents[1] / "tools" / "make_spoken_digits.py"
_spec = importlib.util.spec_from_file_location("make_spoken_digits", TOOL)
tool = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = tool  # its dataclasses look their module up there
_spec.loader.exec_module(tool)


def test_test_voices_are_never_heard_in_training_or_validation():
    voices = tool.assign_voices(seed=0)
    variants = {split: {v.variant for v in vs} for split, vs in voices.items()}
    assert all(variants.values())
    assert not variants["train"] & variants["test"] and not variants["val"] & variants["test"]
    assert not variants["train"] & variants["val"]
    bases = {split: {v.base for v in vs} for split, vs in voices.items()}
    only = set(tool.TEST_ONLY_BASES)
    assert only <= bases["test"] and not only & (bases["train"] | bases["val"])
    assert tool.assign_voices(seed=0) == voices and tool.assign_voices(seed=1) != voices


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(root.rglob("*.wav")):
        h.update(str(f.relative_to(root)).encode() + f.read_bytes())
    return h.hexdigest()


@pytest.mark.skipif(not (shutil.which("espeak-ng") and shutil.which("sox")), reason="needs espeak-ng and sox")
def test_a_tiny_set_is_16khz_mono_class_folders_and_repeatable(tmp_path):
    for out in ("a", "b"):
        assert tool.main([str(tmp_path / out), "--train", "10", "--val", "10", "--test", "10"]) == 0
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    for split in ("train", "val", "test"):
        assert sorted(p.name for p in (tmp_path / "a" / split).iterdir()) == [str(d) for d in range(10)]
    info = sf.info(str(next((tmp_path / "a" / "test").rglob("*.wav"))))
    assert info.samplerate == 16000 and info.channels == 1 and info.frames > 1600
    assert tool.main([str(tmp_path / "a")]) == 2  # never writes into a folder that holds something
