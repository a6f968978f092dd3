"""Nothing lost: SIGKILL/SIGINT and resume, phase boundaries, corrupt checkpoints, faults."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import tlhub
from tlhub.errors import UserError

SLOW = ["data.options.per_class=150", "phases.top.epochs=5", "train.checkpoint_steps=4",
        "train.keep_checkpoints=50"]


def _strip(history):
    return [{k: v for k, v in r.items() if k not in ("seconds", "train_seconds")} for r in history]


def _weights(run_dir: Path) -> dict:
    return load_file(str(run_dir / "model" / "model.safetensors"))


def _same_run(a: Path, b: Path) -> None:
    ma, mb = json.loads((a / "metrics.json").read_text()), json.loads((b / "metrics.json").read_text())
    assert ma == mb
    ha = [json.loads(x) for x in (a / "history.jsonl").read_text().splitlines()]
    hb = [json.loads(x) for x in (b / "history.jsonl").read_text().splitlines()]
    assert _strip(ha) == _strip(hb)
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One uninterrupted run of the slowed tiny recipe."""
    from conftest import REPO
    tmp = tmp_path_factory.mktemp("ref")
    recipe = tmp / "r.toml"
    recipe.write_text((REPO / "tests" / "recipes" / "tiny.toml").read_text())
    result = tlhub.run(recipe, SLOW + [f"output.dir='{tmp / 'run'}'"], quiet=True)
    return recipe, result.run_dir


def _start(recipe, out, *extra):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "tlhub", "run", str(recipe), *SLOW, f"output.dir='{out}'",
                             *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _wait_for_phase2(proc, out: Path, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline:
        hist = out / "history.jsonl"
        if hist.exists() and any(json.loads(x)["phase_index"] == 1 for x in hist.read_text().splitlines() if x):
            return
        if proc.poll() is not None:
            pytest.fail("the run ended before phase 2 began: " + proc.stderr.read()[-2000:])
        time.sleep(0.02)
    proc.kill()
    pytest.fail("phase 2 did not start in time")


@pytest.mark.slow
def test_sigkill_in_phase_2_then_resume_equals_uninterrupted(reference, tmp_path):
    recipe, ref = reference
    out = tmp_path / "killed"
    proc = _start(recipe, out)
    _wait_for_phase2(proc, out)
    time.sleep(0.3)  # into the second epoch of phase 2
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (out / "metrics.json").exists()
    result = tlhub.run(recipe, SLOW + [f"output.dir='{out}'"], quiet=True, resume=str(out))
    _same_run(result.run_dir, ref)


@pytest.mark.slow
def test_sigint_writes_checkpoint_and_prints_resume_command(reference, tmp_path):
    recipe, ref = reference
    out = tmp_path / "ctrlc"
    proc = _start(recipe, out)
    _wait_for_phase2(proc, out)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGINT, err[-2000:]
    assert "interrupted by SIGINT" in err and "Resume with:" in err and f"--resume {out}" in err
    assert "Traceback" not in err
    result = tlhub.run(recipe, SLOW + [f"output.dir='{out}'"], quiet=True, resume=str(out))
    _same_run(result.run_dir, ref)


def test_resume_exactly_on_the_phase_boundary(reference, tmp_path):
    recipe, ref = reference
    out = tmp_path / "boundary"
    shutil.copytree(ref, out)
    ckpts = sorted((out / "checkpoints").iterdir())
    for c in ckpts:
        if not c.name.startswith("p0-e0003-s000000"):
            shutil.rmtree(c) if c.name.startswith("p1") else None
    (out / "metrics.json").unlink()
    result = tlhub.run(recipe, SLOW + [f"output.dir='{out}'"], quiet=True, resume=str(out))
    assert "phase 1, 3 epoch(s) and 0 step(s) done" in (out / "run.log").read_text()
    _same_run(result.run_dir, ref)


def test_truncated_checkpoint_is_skipped(reference, tmp_path):
    recipe, ref = reference
    out = tmp_path / "trunc"
    shutil.copytree(ref, out)
    newest = sorted((out / "checkpoints").iterdir())[-1]
    data = (newest / "model.safetensors").read_bytes()
    (newest / "model.safetensors").write_bytes(data[: len(data) // 2])
    half = sorted((out / "checkpoints").iterdir())[-2]
    (half / "manifest.json").unlink()  # as if killed while writing
    result = tlhub.run(recipe, SLOW + [f"output.dir='{out}'"], quiet=True, resume=str(out))
    log = (out / "run.log").read_text()
    assert f"skipping checkpoint {newest.name}: model.safetensors truncated or corrupt" in log
    assert f"skipping checkpoint {half.name}: no manifest" in log
    _same_run(result.run_dir, ref)


def test_checkpoint_from_a_different_recipe_is_refused(reference, tmp_path):
    recipe, ref = reference
    out = tmp_path / "other"
    shutil.copytree(ref, out)
    with pytest.raises(UserError) as exc:
        tlhub.run(recipe, SLOW + [f"output.dir='{out}'", "model.head=linear", "model.head_options={}",
                                  "phases.head.lr=0.5"], quiet=True, resume=str(out))
    text = str(exc.value)
    assert "comes from a different recipe" in text
    assert "model.head: checkpoint has 'mlp', recipe has 'linear'" in text
    assert "phases.0.lr: checkpoint has 0.01, recipe has 0.5" in text


def test_resume_without_checkpoint_is_a_user_error(tiny_recipe, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no whole checkpoint"):
        tlhub.run(tiny_recipe, [f"output.dir='{tmp_path / 'empty'}'"], quiet=True, resume=str(tmp_path / "empty"))


def test_non_finite_loss_stops_with_position(tiny_recipe, tmp_path):
    with pytest.raises(UserError) as exc:
        tlhub.run(tiny_recipe, ["phases.top.lr=1e30", "phases.top.optimizer=sgd"], quiet=True)
    msg = str(exc.value)
    assert "phase 'top' epoch 1 step" in msg and "the loss is" in msg
    kept = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert kept and all(k.startswith("p0-") for k in kept)  # the last good checkpoints (phase 1) remain


def test_unwritable_output_and_full_disk(tiny_recipe, tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")  # unwritable even for root: a run dir cannot live inside a file
    with pytest.raises(UserError, match="cannot write to"):
        tlhub.run(tiny_recipe, [f"output.dir='{blocker / 'run'}'"], quiet=True)
    assert blocker.read_text() == "not a folder"
    from tlhub.training import checkpoint

    def full(*a, **k):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(checkpoint, "_fsync_write", full)
    with pytest.raises(UserError, match="cannot write a checkpoint .*No space left on device"):
        tlhub.run(tiny_recipe, [], quiet=True)
    assert [p.name for p in (tmp_path / "run" / "checkpoints").iterdir()] == []  # no partial checkpoint left


@pytest.mark.slow
def test_sigkill_during_an_overwrite_leaves_the_old_run_byte_for_byte(reference, tmp_path):
    """--overwrite builds beside the old run: a SIGKILL in the new run's phase 2 leaves the old one as it was."""
    recipe, ref = reference
    out = tmp_path / "run"
    shutil.copytree(ref, out)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    proc = _start(recipe, out, "--overwrite")
    deadline = time.time() + 300
    while time.time() < deadline and not (staged := list(tmp_path.glob("run.tlhub-new-*"))):
        time.sleep(0.02)
    assert staged, "the overwrite did not build the new run beside the old one"
    _wait_for_phase2(proc, staged[0])
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before
