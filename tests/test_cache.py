"""Frozen-prefix caching: the same metrics and weights as uncached, and off when it would be wrong."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

import tlhub

STRIP = ("seconds", "train_seconds", "train_input")


def _strip(history):
    return [{k: v for k, v in row.items() if k not in STRIP} for row in history]


def _run(recipe, tmp_path, name, *overrides):
    return tlhub.run(recipe, [f"output.dir='{tmp_path / name}'", "phases.top.epochs=3",
                              "model.head_options.dropout=0.3", *overrides], quiet=True)


def test_cached_equals_uncached_in_float32(tiny_recipe, tmp_path):
    cached = _run(tiny_recipe, tmp_path, "cached")
    plain = _run(tiny_recipe, tmp_path, "plain", "train.cache=false")
    assert [r["train_input"] for r in cached.history] == ["pooled-cache"] * 3 + ["cache-after-2-groups"] * 3
    assert {r["train_input"] for r in plain.history} == {"raw"}
    assert _strip(cached.history) == _strip(plain.history)  # exact, float for float
    assert cached.metrics == plain.metrics
    wc = load_file(str(cached.run_dir / "model" / "model.safetensors"))
    wp = load_file(str(plain.run_dir / "model" / "model.safetensors"))
    assert all(torch.equal(wc[k], wp[k]) for k in wc)
    log = (cached.run_dir / "run.log").read_text()
    assert "cache: pooled features" in log and "cache: the state after 2 of 4 frozen groups (block1)" in log


def test_float16_cache_stays_close(tiny_recipe, tmp_path):
    half = _run(tiny_recipe, tmp_path, "half", "train.cache_dtype=float16")
    full = _run(tiny_recipe, tmp_path, "full")
    # float16 keeps ~3 significant digits of each cached activation; over a few epochs the losses
    # drift by far less than the epoch-to-epoch change they are meant to show.
    for a, b in zip(half.history, full.history):
        assert a["train_loss"] == pytest.approx(b["train_loss"], abs=2e-2)
        assert a["val_loss"] == pytest.approx(b["val_loss"], abs=2e-2)
    assert abs(half.metrics["accuracy"] - full.metrics["accuracy"]) <= 2 / 16


def test_augmentation_turns_training_cache_off(tiny_recipe, tmp_path):
    res = _run(tiny_recipe, tmp_path, "aug", "data.augment.flip=true", "phases.top.epochs=1")
    assert {r["train_input"] for r in res.history} == {"raw"}
    assert "training split NOT cached (random augmentation" in (res.run_dir / "run.log").read_text()


def test_cache_spills_to_a_memory_mapped_file_beyond_the_budget(tiny_recipe, tmp_path):
    res = _run(tiny_recipe, tmp_path, "spill", "train.cache_memory_mb=0.01", "phases.top.epochs=1")
    log = (res.run_dir / "run.log").read_text()
    assert "memory-mapped at" in log and "phase1-train.0.bin" in log
    assert not list((res.run_dir / "cache").glob("*.bin"))  # removed when the phase ends
    ref = _run(tiny_recipe, tmp_path, "ram", "phases.top.epochs=1")
    assert _strip(res.history) == _strip(ref.history)
