"""freeze = "auto": a search stopped by Ctrl-C in the middle of a rung continues with --resume and ends exactly
where an uninterrupted search with the same seed ends (the same trials, winner and weights)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from clichecks import invoke, refused  # noqa: E402

AUTO = ["data.options.per_class=40", "phases.0.freeze=auto", "phases.0.lr=0.03", "phases.0.auto_budget=4"]


def _recipe(tmp_path: Path, name: str) -> Path:
    text = (Path(__file__).parent / "recipes" / "tiny.toml").read_text()
    path = tmp_path / f"{name}.toml"
    path.write_text(text + f'\n[output]\ndir = "{tmp_path / name}"\n')
    return path


def _search(run: Path) -> dict:
    data = json.loads((run / "auto_search.json").read_text())
    for row in data["trials"]:
        row.pop("seconds")  # wall times differ from run to run, interrupted or not
    data["budget"].pop("default_plan_seconds_estimate")
    return {k: data[k] for k in ("trials", "winner", "phases", "criterion", "budget", "validation")}


def _weights(run: Path) -> dict:
    from safetensors.torch import load_file
    return load_file(str(run / "model" / "model.safetensors"))


@pytest.fixture
def several_rungs(monkeypatch):
    """Trials of one epoch at least (this split's epoch is 6 batches) and a bound this tiny data's search
    can run rungs in, so the halving runs several. Training backbone groups costs twice what its FLOPs say:
    the measured factor is a timing, and the two runs compared here must plan the same trials (the journal
    replays a resumed run's own timings; test_journal_* below)."""
    from tlhub.auto import bound, driver
    monkeypatch.setattr(driver, "MIN_TRIAL_STEPS", 1)
    monkeypatch.setattr(bound, "TIMES", 20.0)
    monkeypatch.setattr(bound, "deep_factor", lambda *a: 2.0)


def test_ctrl_c_mid_rung_then_resume_ends_with_the_same_winner_and_weights(tmp_path, monkeypatch, several_rungs):
    from tlhub.auto import trials
    real = trials.TrialRunner.train
    calls: list[tuple[str, int]] = []

    def counted(self, state, epochs, name):
        calls.append((state.folder, epochs))
        return real(self, state, epochs, name)
    monkeypatch.setattr(trials.TrialRunner, "train", counted)
    whole = _recipe(tmp_path, "whole")
    assert invoke("run", whole, *AUTO, "--quiet").exit_code == 0
    # the second trial of the second rung: one trial of that rung finished, one cut mid-epoch
    continued = [i for i, (folder, _) in enumerate(calls) if folder in {f for f, _ in calls[:i]}]
    assert len(continued) >= 2, calls  # the setting above gives several rungs
    stop_at = continued[1]

    calls.clear()

    def ctrl_c(self, state, epochs, name):
        calls.append((state.folder, epochs))
        if len(calls) == stop_at + 1:
            os.kill(os.getpid(), signal.SIGINT)  # the run's handler sets its stop flag: a checkpoint after this step
        return real(self, state, epochs, name)
    monkeypatch.setattr(trials.TrialRunner, "train", ctrl_c)
    cut = _recipe(tmp_path, "cut")
    res = invoke("run", cut, *AUTO, "--quiet")
    run = tmp_path / "cut"
    assert res.exit_code == 130 and "during the auto search" in res.output, res.output
    assert f"--resume {run}" in res.output and "Traceback" not in res.output
    # the interrupted trial left a checkpoint inside its epoch, the finished ones a journal line each
    folder = calls[stop_at][0]
    ckpt = json.loads(next((run / "auto" / folder / "checkpoints").glob("*/state.json")).read_text())
    assert ckpt["step"] > 0
    lines = [json.loads(x) for x in (run / "auto" / "journal.jsonl").read_text().splitlines()]
    assert [r["kind"] for r in lines] == ["start", "head"] + ["trial"] * stop_at + ["partial"]
    assert not (run / "auto_search.json").exists()

    calls.clear()
    monkeypatch.setattr(trials.TrialRunner, "train", counted)
    res = invoke("run", cut, *AUTO, "--resume", run, "--quiet")
    assert res.exit_code == 0, res.output
    log = (run / "run.log").read_text()
    assert f"resuming the search: {stop_at} finished trial(s)" in log
    assert "set by shipped recipe" in log  # the bound (and its factor, 2 here) held the search in both runs
    assert _search(run) == _search(tmp_path / "whole")
    a, b = _weights(run), _weights(tmp_path / "whole")
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    assert json.loads((run / "metrics.json").read_text())["accuracy"] == \
        json.loads((tmp_path / "whole" / "metrics.json").read_text())["accuracy"]

    # SIGKILL in the same trial call (no handler runs, nothing is printed): the same folder resumes to the same end
    killed = _recipe(tmp_path, "killed")
    script = f"""
import os, signal, sys
from tlhub.auto import bound, driver, trials
driver.MIN_TRIAL_STEPS, bound.TIMES, bound.deep_factor = 1, 20.0, lambda *a: 2.0
real, calls = trials.TrialRunner.train, []
def kill(self, *a):
    calls.append(1)
    if len(calls) == {stop_at + 1}:
        os.kill(os.getpid(), signal.SIGKILL)
    return real(self, *a)
trials.TrialRunner.train = kill
from tlhub.cli import cli
cli([{', '.join(repr(str(x)) for x in ('run', killed, *AUTO, '--quiet'))}])
"""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    lines = [json.loads(x) for x in (tmp_path / "killed" / "auto" / "journal.jsonl").read_text().splitlines()]
    assert [r["kind"] for r in lines] == ["start", "head"] + ["trial"] * stop_at  # no partial: nothing ran
    res = invoke("run", killed, *AUTO, "--resume", tmp_path / "killed", "--quiet")
    assert res.exit_code == 0, res.output
    assert _search(tmp_path / "killed") == _search(tmp_path / "whole")
    a = _weights(tmp_path / "killed")
    assert all((a[k] == b[k]).all() for k in b)


def test_resume_of_a_search_with_a_changed_recipe_is_refused(tmp_path, monkeypatch):
    from tlhub.auto import trials

    def ctrl_c(self, state, epochs, name):
        os.kill(os.getpid(), signal.SIGINT)
        return real(self, state, epochs, name)
    real = trials.TrialRunner.train
    monkeypatch.setattr(trials.TrialRunner, "train", ctrl_c)
    recipe = _recipe(tmp_path, "run")
    small = ["data.options.per_class=10", *AUTO[1:3], "phases.0.auto_budget=0.6"]
    assert invoke("run", recipe, *small, "--quiet").exit_code == 130
    refused(invoke("run", recipe, *small, "train.seed=1", "--resume", tmp_path / "run", "--quiet"),
            "comes from a different recipe", "train.seed")
    assert (tmp_path / "run" / "auto" / "journal.jsonl").is_file()  # nothing the user had is lost


def test_journal_replays_trials_in_order_and_the_seconds_of_an_interrupted_call(tmp_path):
    from types import SimpleNamespace

    from tlhub.auto.journal import Journal
    ident = {"model": {"backbone": "x"}}
    first = Journal.open(tmp_path, ident, resuming=False, write=True)
    first.record_head(1.5, 1e-9)
    first.record_trial("top1-lr0.001", 2, SimpleNamespace(epochs=2, score=0.5, loss=1.0, best_epoch=2,
                                                          stopped=False, seconds=3.0, curve=[0.4, 0.5]))
    first.record_partial("top2-lr0.001", 1.25)  # Ctrl-C in the second trial, then in it again once resumed
    first.record_partial("top2-lr0.001", 0.5)
    with open(tmp_path / "journal.jsonl", "a") as f:
        f.write('{"kind": "trial", "tri')  # a kill in the middle of a line
    again = Journal.open(tmp_path, ident, resuming=True, write=True)
    assert again.head == {"kind": "head", "seconds": 1.5, "seconds_per_flop": 1e-9}
    assert again.replay("top1-lr0.001", 2)["curve"] == [0.4, 0.5]
    assert again.replay("top2-lr0.001", 2) is None  # not finished: trained from its checkpoint
    assert again.take_partial("top2-lr0.001") == pytest.approx(1.75) and again.take_partial("top2-lr0.001") == 0
    assert (tmp_path / "journal.jsonl").read_text().endswith("}\n")  # the torn line is gone
    with pytest.raises(RuntimeError, match="recorded as top1-lr0.001"):
        Journal.open(tmp_path, ident, resuming=True, write=False).replay("all-lr0.001", 2)
    from tlhub.errors import UserError
    with pytest.raises(UserError):
        Journal.open(tmp_path, {"model": {"backbone": "y"}}, resuming=True, write=False)
