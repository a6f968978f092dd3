"""Issue 30, part A: --overwrite replaces only marked run folders, one writer per run folder, eval --out,
setup errors and abandoned siblings, --resume with --overwrite."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import tlhub
from tlhub.artifacts import rundir
from tlhub.errors import UserError

FAST = ["phases.0.epochs=1", "phases.1.epochs=1"]
from clichecks import invoke, refused, snapshot  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def tiny_text(out: Path) -> str:
    return (REPO / "tests" / "recipes" / "tiny.toml").read_text() + f'\n[output]\ndir = "{out.as_posix()}"\n'


# ---------------------------------------------------------------- finding 1: what --overwrite may replace

def test_a_new_run_folder_is_marked_with_its_id(tiny_recipe, tmp_path):
    run = tlhub.run(tiny_recipe, FAST, quiet=True).run_dir
    marker = json.loads((run / rundir.MARKER).read_text())
    assert len(marker["run_id"]) == 16
    assert rundir.is_run_dir(run)
    again = tlhub.run(tiny_recipe, ["phases.0.lr=0.05", *FAST], overwrite=True, quiet=True).run_dir
    assert json.loads((again / rundir.MARKER).read_text())["run_id"] != marker["run_id"]  # the new run's own


def test_overwrite_never_replaces_the_project_folder_holding_recipe_data_and_notes(tmp_path):
    proj = tmp_path / "proj"
    (proj / "imgs").mkdir(parents=True)
    (proj / "imgs" / "a.png").write_bytes(b"not really a png")
    (proj / "NOTES.md").write_text("my notes")
    recipe = proj / "recipe.toml"
    recipe.write_text(tiny_text(proj))
    before = snapshot(proj)
    res = invoke("run", recipe, *FAST, "--overwrite", "--quiet")
    refused(res, f"--overwrite would replace {proj}", "replaces only a run folder")
    assert snapshot(proj) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["proj"]  # no staged folder, no lock file left


def test_overwrite_never_replaces_a_trained_model_folder(trained_image_model, tmp_path):
    model = trained_image_model / "model"
    before = snapshot(model)
    recipe = tmp_path / "r.toml"
    recipe.write_text(tiny_text(model))
    refused(invoke("run", recipe, *FAST, "--overwrite", "--quiet"), "no .tlhub-run marker")
    assert snapshot(model) == before
    assert tlhub.load(trained_image_model).classes  # still loads


def test_overwrite_refuses_a_run_made_before_the_marker_and_says_what_to_do(tiny_recipe, tmp_path):
    old = tmp_path / "run"
    old.mkdir()
    (old / "run.log").write_text("an old run\n")
    (old / "recipe.toml").write_text("# old\n")
    refused(invoke("run", tiny_recipe, *FAST, "--overwrite", "--quiet"), "no .tlhub-run marker",
            "delete the folder yourself")
    assert sorted(p.name for p in old.iterdir()) == ["recipe.toml", "run.log"]


@pytest.mark.parametrize("where", ["cwd", "parent_of_cwd"])
def test_overwrite_never_replaces_the_working_directory_or_its_parent(tiny_recipe, tmp_path, monkeypatch, where):
    run = tlhub.run(tiny_recipe, FAST, quiet=True).run_dir  # a marked run: replaceable from elsewhere
    before = snapshot(run)
    monkeypatch.chdir(run if where == "cwd" else run / "model")
    out = "." if where == "cwd" else str(run)
    res = invoke("run", tiny_recipe, *FAST, f'output.dir="{out}"', "--overwrite", "--quiet")
    refused(res, "holds the working directory")
    assert snapshot(run) == before


def test_overwrite_never_replaces_a_run_folder_holding_the_recipe(tiny_recipe, tmp_path):
    run = tlhub.run(tiny_recipe, FAST, quiet=True).run_dir
    inner = run / "again.toml"
    inner.write_text(tiny_text(run))
    refused(invoke("run", inner, *FAST, "--overwrite", "--quiet"), f"holds {inner}")
    assert inner.is_file() and (run / "model" / "model.safetensors").is_file()


# ---------------------------------------------------------------- finding 2: one writer per run folder

_HOLD_A_RUN = """
import sys, time
from pathlib import Path
import tlhub
from tlhub.training import phase
real = phase.run_phase
go = Path(sys.argv[2])
def wait_in_phase_2(ctx, model, index, resume=None):
    if index == 1:
        print("phase2", flush=True)
        while not go.exists():
            time.sleep(0.05)
    return real(ctx, model, index, resume)
phase.run_phase = wait_in_phase_2
tlhub.run(sys.argv[1], ["phases.0.epochs=1", "phases.1.epochs=1"], quiet=True)
print("done", flush=True)
"""


def test_a_second_writer_is_refused_with_the_holders_pid(tiny_recipe, tmp_path):
    from tlhub.artifacts import runlock
    run, go = tmp_path / "run", tmp_path / "go"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    a = subprocess.Popen([sys.executable, "-c", _HOLD_A_RUN, str(tiny_recipe), str(go)], stdout=subprocess.PIPE,
                         text=True, env=env)
    try:
        assert a.stdout.readline().strip() == "phase2", "run A did not reach phase 2"
        for args in ([], ["--overwrite"], ["--resume"]):  # a new run, a replacement, a resume of the running run
            res = invoke("run", tiny_recipe, *FAST, *args, "--quiet")
            refused(res, f"{run} is being written by process {a.pid}")
        assert runlock.holder(run) == a.pid
        go.touch()
        assert a.wait(timeout=120) == 0
    finally:
        if a.poll() is None:
            a.kill()
            a.wait()
    history = [json.loads(x) for x in (run / "history.jsonl").read_text().splitlines()]
    assert [r["phase"] for r in history] == ["head", "top"]  # A's rows only
    assert runlock.holder(run) is None and not runlock.lock_path(run).exists()  # released at the end
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(("run.", ".run"))] == []


def test_a_lock_left_by_a_killed_run_is_stale(tiny_recipe, tmp_path):
    from tlhub.artifacts import runlock
    run = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from pathlib import Path; "
                               "from tlhub.artifacts import runlock; runlock.acquire(Path(sys.argv[1])); "
                               "print('held', flush=True); time.sleep(600)", str(run)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        refused(invoke("run", tiny_recipe, *FAST, "--quiet"), f"being written by process {holder.pid}")
        assert not run.exists()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert runlock.lock_path(run).exists()  # the dead holder left its file; the kernel dropped its lock
    assert runlock.holder(run) is None
    res = invoke("run", tiny_recipe, *FAST, "--quiet")
    assert res.exit_code == 0, res.output


def test_the_lock_is_held_while_the_run_trains_and_released_on_failure(tiny_recipe, tmp_path, monkeypatch):
    from tlhub.artifacts import runlock
    from tlhub.training import trainer
    seen = []

    def check_and_fail(*a, **k):
        seen.append(runlock.holder(tmp_path / "run"))
        raise RuntimeError("simulated crash")
    monkeypatch.setattr(trainer, "evaluate_split", check_and_fail)
    with pytest.raises(RuntimeError, match="simulated"):
        tlhub.run(tiny_recipe, FAST, quiet=True)
    assert seen == [os.getpid()]
    assert runlock.holder(tmp_path / "run") is None


# ---------------------------------------------------------------- finding 3: eval --out

def test_eval_out_refuses_a_run_folder(trained_image_model):
    before = snapshot(trained_image_model)
    for out in (trained_image_model, trained_image_model / "model"):
        res = invoke("eval", trained_image_model, "--data", "synthetic", "--out", out, "--overwrite")
        refused(res, f"--out: {out} is a run or model folder")
    assert snapshot(trained_image_model) == before


# ---------------------------------------------------------------- awkward: setup errors, siblings, flags

def test_a_setup_error_leaves_nothing_that_needs_overwrite(tiny_recipe, tmp_path, monkeypatch):
    from tlhub.training import trainer
    real = trainer.make_splits

    def no_data(*a, **k):
        raise UserError("data: simulated missing folder")
    monkeypatch.setattr(trainer, "make_splits", no_data)
    refused(invoke("run", tiny_recipe, *FAST, "--quiet"), "simulated missing folder")
    assert not (tmp_path / "run").exists()
    monkeypatch.setattr(trainer, "make_splits", real)
    res = invoke("run", tiny_recipe, *FAST, "--quiet")  # the corrected command, without --overwrite
    assert res.exit_code == 0, res.output


def test_abandoned_staged_and_old_folders_are_cleaned_when_their_owner_is_gone(tiny_recipe, tmp_path):
    run = tlhub.run(tiny_recipe, FAST, quiet=True).run_dir
    dead_new = tmp_path / "run.tlhub-new-0badf00d"   # killed during setup: nothing to resume
    dead_old = tmp_path / "run.tlhub-old-0badf00d"   # killed after its swap, before removing the old run
    kept = tmp_path / "run.tlhub-new-c0ffee00"       # interrupted with a checkpoint: --resume continues it
    for p in (dead_new, dead_old, kept):
        p.mkdir()
        (p / "run.log").write_text("x")
    (kept / "checkpoints").mkdir()
    res = invoke("run", tiny_recipe, *FAST, "phases.0.lr=0.05", "--overwrite", "--quiet")
    assert res.exit_code == 0, res.output
    assert not dead_new.exists() and not dead_old.exists() and kept.is_dir()
    assert (run / rundir.MARKER).is_file()


def test_a_swap_killed_halfway_gets_the_old_run_back(tmp_path):
    final = tmp_path / "run"
    aside = tmp_path / "run.tlhub-old-12345678"
    aside.mkdir()
    (aside / "metrics.json").write_text("{}")
    rundir.clean_abandoned(final)
    assert (final / "metrics.json").is_file() and not aside.exists()


def test_resume_and_overwrite_together_is_an_error(tiny_recipe, tmp_path):
    tlhub.run(tiny_recipe, FAST, quiet=True)
    before = snapshot(tmp_path / "run")
    refused(invoke("run", tiny_recipe, *FAST, "--resume", "--overwrite", "--quiet"),
            "--resume and --overwrite together")
    assert snapshot(tmp_path / "run") == before


def test_output_dir_dot_with_overwrite_is_one_message(tiny_recipe, tmp_path, monkeypatch):
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "keep.txt").write_text("keep")
    monkeypatch.chdir(proj)
    refused(invoke("run", tiny_recipe, *FAST, 'output.dir="."', "--overwrite", "--quiet"),
            "holds the working directory")
    assert sorted(p.name for p in proj.iterdir()) == ["keep.txt"]


@pytest.mark.parametrize("command", ["eval", "predict"])
def test_device_meta_is_one_message(trained_image_model, tmp_path, command):
    from PIL import Image
    Image.new("RGB", (16, 16)).save(tmp_path / "x.png")
    extra = ["--data", "synthetic", "--out", tmp_path / "e"] if command == "eval" else [tmp_path / "x.png"]
    refused(invoke(command, trained_image_model, *extra, "--device", "meta"), "device 'meta'")


def test_lock_file_sits_beside_the_run(tmp_path):
    from tlhub.artifacts import runlock
    lock = runlock.acquire(tmp_path / "out")
    try:
        assert lock.path == tmp_path / ".out.tlhub-lock"
        assert lock.path.read_text().split() == [str(os.getpid())]
        with pytest.raises(UserError, match=f"being written by process {os.getpid()}"):
            runlock.acquire(tmp_path / "out")  # a second open file: flock refuses it even in one process
    finally:
        lock.release()
    assert not lock.path.exists()
    runlock.acquire(tmp_path / "out").release()


def test_ctrl_c_during_the_auto_search_prints_a_resume_command_that_restarts_it(tiny_recipe, tmp_path,
                                                                                  monkeypatch):
    from tlhub.auto import trials
    real = trials.TrialRunner.run_prefix

    def ctrl_c_in_the_head_trial(self, *args):
        os.kill(os.getpid(), signal.SIGINT)  # the run's handler only sets its stop flag
        return real(self, *args)
    monkeypatch.setattr(trials.TrialRunner, "run_prefix", ctrl_c_in_the_head_trial)
    auto = ["data.options.per_class=10", "phases.0.freeze=auto", "phases.0.lr=0.03", "phases.0.auto_budget=0.6"]
    res = invoke("run", tiny_recipe, *auto, "--quiet")
    assert res.exit_code == 130, res.output
    assert "during the auto search" in res.output and f"--resume {tmp_path / 'run'}" in res.output, res.output
    assert "Traceback" not in res.output
    from tlhub.auto import driver
    resumed = []

    def search_again(*a, resuming=False, **k):  # the whole search again would take a minute: stop at its start
        resumed.append(resuming)
        raise UserError("stopped at the start of the search")
    monkeypatch.setattr(driver, "search_auto", search_again)
    refused(invoke("run", tiny_recipe, *auto, "--resume", tmp_path / "run", "--quiet"), "stopped at the start")
    assert resumed == [True]  # the printed command is accepted (test_auto_resume: the search continues)
