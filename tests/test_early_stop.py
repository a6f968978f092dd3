"""early_stop and restore_best: decided on validation, stored in checkpoints, kept across a SIGKILL."""
from __future__ import annotations

import json
import signal
import time

import pytest
import torch
from safetensors.torch import load_file

import tlhub
from tlhub.training import checkpoint
from tlhub.training.early_stop import Best

SLOW = ["data.options.per_class=150", "phases.top.epochs=5", "train.checkpoint_steps=4",
        "train.keep_checkpoints=50"]
BEST = ["phases.top.restore_best=true", "phases.top.early_stop=3", "phases.top.lr=0.05",
        "phases.top.scheduler=constant"]


def test_best_ranks_by_accuracy_then_loss_and_counts_patience():
    b = Best()
    assert b.update(1, 0.5, 1.0) and b.epoch == 1
    assert not b.update(2, 0.5, 1.1) and b.bad_epochs == 1      # same accuracy, worse loss
    assert b.update(3, 0.5, 0.9) and b.bad_epochs == 0          # same accuracy, lower loss: better
    assert not b.update(4, 0.4, 0.8) and b.bad_epochs == 0      # worse accuracy but the loss still falls
    assert not b.update(5, 0.4, 0.85) and not b.should_stop(2)
    assert not b.update(6, 0.45, 0.85) and b.should_stop(2) and not b.should_stop(0)
    assert Best.from_dict(b.to_dict()) == b


def _rows(result, phase):
    return [r for r in result.history if r["phase"] == phase]


def test_early_stop_ends_a_phase_that_stopped_improving(tiny_recipe):
    # the head's learning rate is 0: nothing changes, so epoch 1 stays the best
    result = tlhub.run(tiny_recipe, ["phases.head.epochs=8", "phases.head.early_stop=2",
                                     "phases.head.lr_mult={ head = 0.0 }"], quiet=True)
    assert [r["epoch"] for r in _rows(result, "head")] == [1, 2, 3]
    assert len(_rows(result, "top")) == 2  # the next phase still runs
    log = (result.run_dir / "run.log").read_text()
    assert "early stop: no better validation score for 2 epoch(s) since epoch 1" in log


def test_restore_best_ends_the_phase_with_its_best_epoch(tiny_recipe):
    result = tlhub.run(tiny_recipe, ["phases.top.epochs=5", "phases.top.lr=0.2", "phases.top.restore_best=true",
                                     "phases.top.scheduler=constant"], quiet=True)
    rows = _rows(result, "top")
    best_row = max(rows, key=lambda r: (r["val_accuracy"], -r["val_loss"]))
    ckpt = checkpoint.newest(result.run_dir)
    assert ckpt.state["best"]["epoch"] == best_row["epoch"]
    best = checkpoint.load_best(ckpt)
    final = result.model.state_dict()
    assert best.keys() == final.keys() and all(torch.equal(best[k], final[k].cpu()) for k in best)
    saved = load_file(str(ckpt.path / "model.safetensors"))  # a resume after the phase starts from the best too
    assert all(torch.equal(saved[k], best[k]) for k in best)
    if best_row["epoch"] != rows[-1]["epoch"]:
        assert "restore_best: weights of epoch" in (result.run_dir / "run.log").read_text()


@pytest.mark.slow
def test_sigkill_then_resume_keeps_best_weights_and_patience(tmp_path):
    from conftest import REPO
    from test_resume import _same_run, _start, _wait_for_phase2
    recipe = tmp_path / "r.toml"
    recipe.write_text((REPO / "tests" / "recipes" / "tiny.toml").read_text())
    ref = tlhub.run(recipe, SLOW + BEST + [f"output.dir='{tmp_path / 'ref'}'"], quiet=True).run_dir
    out = tmp_path / "killed"
    proc = _start(recipe, out, *BEST)
    _wait_for_phase2(proc, out)
    deadline = time.time() + 60  # until a checkpoint of phase 2 holds best-so-far weights
    while time.time() < deadline and not any(
            (c / "best.safetensors").exists() for c in (out / "checkpoints").glob("p1-e0001-*")):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert any(json.loads((c / "state.json").read_text()).get("best") for c in (out / "checkpoints").iterdir()
               if (c / "state.json").exists())
    result = tlhub.run(recipe, SLOW + BEST + [f"output.dir='{out}'"], quiet=True, resume=str(out))
    _same_run(result.run_dir, ref)
