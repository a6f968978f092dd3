"""``[train] log_with = ["tensorboard"]``: event files land in the run directory with the per-phase metrics."""
from __future__ import annotations

import pytest

import tlhub

pytest.importorskip("tensorboard")


def scalars(run_dir) -> dict[str, list[tuple[int, float]]]:
    """Every scalar tag in every TensorBoard event file under ``run_dir``: [(step, value), ...]."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    out: dict[str, list[tuple[int, float]]] = {}
    for folder in sorted({f.parent for f in run_dir.rglob("events.out.tfevents.*")}):
        acc = EventAccumulator(str(folder))
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            out.setdefault(tag, []).extend((e.step, e.value) for e in acc.Scalars(tag))
    return out


def test_tensorboard_event_files_hold_every_phase(tiny_recipe, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing may land in the working directory
    overrides = ["train.log_with=['tensorboard']", "phases.0.epochs=2", "phases.1.epochs=1", "train.threads=1"]
    result = tlhub.run(tiny_recipe, overrides, quiet=True)
    run = result.run_dir
    events = list(run.rglob("events.out.tfevents.*"))
    assert events, f"no TensorBoard event files under {run}"
    stray = [p for p in tmp_path.rglob("events.out.tfevents.*") if run not in p.parents]
    assert not stray, stray
    tags = scalars(run)
    for phase, epochs in (("head", 2), ("top", 1)):
        for metric in ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr"):
            assert len(tags.get(f"{phase}/{metric}", [])) == epochs, (phase, metric, sorted(tags))
    # steps count epochs over all phases, and the logged values are the history's
    assert [s for s, _ in tags["head/train_loss"]] == [1, 2] and [s for s, _ in tags["top/train_loss"]] == [3]
    history = {(r["phase"], r["epoch"]): r for r in result.history}
    assert tags["top/val_accuracy"][0][1] == pytest.approx(history[("top", 1)]["val_accuracy"], abs=1e-6)
    assert tags["test/accuracy"][0][1] == pytest.approx(result.metrics["accuracy"], abs=1e-6)
