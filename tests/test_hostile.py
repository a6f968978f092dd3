"""Results of a hostile-user probe: transactional --overwrite, errors at validate, no silent wrong answers."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import tlhub
from tlhub.cli import cli
from tlhub.errors import UserError

FAST = ["phases.0.epochs=1", "phases.1.epochs=1"]


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def one_line_error(res, *needles):
    """Exit 2, one 'error:' line per problem, no traceback, every needle in the message."""
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    for n in needles:
        assert n in res.output, res.output


def _snapshot(run: Path) -> dict[str, str]:
    return {str(p.relative_to(run)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(run.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------- 1. --overwrite is transactional

@pytest.fixture
def finished_run(tiny_recipe, tmp_path):
    tlhub.run(tiny_recipe, ["phases.1.epochs=2", "phases.0.epochs=1"], quiet=True)
    run = tmp_path / "run"
    return run, _snapshot(run)


@pytest.mark.parametrize("stage", ["data", "after_training"])
def test_failed_overwrite_leaves_the_old_run_intact(finished_run, tiny_recipe, monkeypatch, stage):
    from tlhub.training import trainer
    run, before = finished_run

    def boom(*a, **k):
        raise UserError("simulated failure") if stage == "data" else RuntimeError("simulated crash")
    monkeypatch.setattr(trainer, "make_splits" if stage == "data" else "evaluate_split", boom)
    with pytest.raises((UserError, RuntimeError), match="simulated"):
        tlhub.run(tiny_recipe, ["phases.0.lr=0.05", *FAST], overwrite=True, quiet=True)
    assert _snapshot(run) == before  # recipe, history, model, metrics, checkpoints, run.log: all the old run's
    assert sorted(p.name for p in run.parent.iterdir() if p.name.startswith("run")) == ["run"]  # nothing left over


def test_successful_overwrite_leaves_no_old_checkpoint(finished_run, tiny_recipe, tmp_path):
    from tlhub.training import checkpoint
    run, _ = finished_run
    result = tlhub.run(tiny_recipe, ["phases.0.lr=0.05", *FAST], overwrite=True, quiet=True)
    assert result.run_dir == run
    names = sorted(p.name for p in (run / "checkpoints").iterdir())
    for name in names:  # every checkpoint is the new run's (the old one went up to p1-e0002)
        state = json.loads((run / "checkpoints" / name / "state.json").read_text())
        assert state["identity"]["phases"][0]["lr"] == 0.05, name
    assert names and checkpoint.newest(run).state["identity"]["phases"][1]["epochs"] == 1
    history = [json.loads(x) for x in (run / "history.jsonl").read_text().splitlines()]
    assert len(history) == 2
    assert "lr = 0.05" in (run / "recipe.toml").read_text()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("run")) == ["run"]


def test_overwrite_refuses_a_folder_that_is_not_a_run(tiny_recipe, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "precious.txt").write_text("keep me")
    res = invoke("run", tiny_recipe, *FAST, "--overwrite", "--quiet")
    one_line_error(res, "not a tlhub run directory")
    assert (run / "precious.txt").read_text() == "keep me"


def test_staged_overwrite_names_its_target(tmp_path):
    from tlhub.artifacts import rundir
    staged = tmp_path / "out.tlhub-new-1a2b3c4d"
    assert rundir.staged_target(staged) == tmp_path / "out"
    assert rundir.staged_target(tmp_path / "out") is None
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old.txt").write_text("old")
    staged.mkdir()
    (staged / "new.txt").write_text("new")
    assert rundir.commit(rundir.resumed_run_dir(staged)) == tmp_path / "out"
    assert [p.name for p in tmp_path.iterdir()] == ["out"] and (tmp_path / "out" / "new.txt").is_file()
