"""Issue 30, part A: no metric code from a recipe or a model folder, full disks, the split pinned for --resume."""
from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import tlhub

FAST = ["phases.0.epochs=1", "phases.1.epochs=1"]
from clichecks import invoke, refused  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
EVIL = "from pathlib import Path\nPath(__file__).with_name('RAN').write_text('code from a recipe ran')\n"


# ---------------------------------------------------------------- finding 4: metrics are names

@pytest.mark.parametrize("name", ["x.py", "metrics/accuracy.py", "./acuracy"])
def test_a_metric_path_is_an_error_at_validate_and_never_runs(tiny_recipe, tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    script = tmp_path / name
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(EVIL) if script.suffix == ".py" else (script.mkdir(), (script / "acuracy.py").write_text(EVIL))
    bad = tmp_path / "bad.toml"
    bad.write_text(tiny_recipe.read_text() + f'\n[eval]\nmetrics = ["accuracy", "{name}"]\n')
    refused(invoke("validate", bad), f"eval.metrics: {name!r} is a path", "tlhub list metrics")
    refused(invoke("run", bad, *FAST, "--quiet"), "is a path")
    assert not list(tmp_path.rglob("RAN")) and not (tmp_path / "run").exists()


def test_a_metric_path_suggests_the_registered_name(tiny_recipe):
    refused(invoke("show", tiny_recipe, 'eval.metrics=["acuracy.py"]'), "is a path", "did you mean 'accuracy'")


def test_eval_of_a_received_model_never_runs_a_metric_script_it_names(trained_image_model, tmp_path, monkeypatch):
    received = tmp_path / "received"
    shutil.copytree(trained_image_model / "model", received)
    (received / "evil.py").write_text(EVIL)
    import tomllib

    import tomli_w
    recipe = tomllib.loads((received / "recipe.toml").read_text())
    recipe.setdefault("eval", {})["metrics"] = ["evil.py"]
    (received / "recipe.toml").write_text(tomli_w.dumps(recipe))
    monkeypatch.chdir(received)  # where the path would resolve on main
    res = invoke("eval", received, "--data", "synthetic", "--out", tmp_path / "e")
    refused(res, "recipe.toml: eval.metrics: 'evil.py' is a path")
    assert not (received / "RAN").exists() and not (tmp_path / "e").exists()


def test_metrics_are_listed_and_a_plugin_registers_one(tiny_recipe, tmp_path):
    from tlhub import plugins
    from tlhub.hookspecs import hookimpl
    from tlhub.registry import MetricSpec

    res = invoke("list", "metrics")
    assert res.exit_code == 0 and "accuracy" in res.output and "f1" in res.output, res.output

    class Loader:
        def compute(self, predictions, references):
            return {"wrong": float(sum(p != r for p, r in zip(predictions, references)))}

    class MyPlugin:
        @hookimpl
        def register_metrics(self, register):
            register(MetricSpec("wrong_count", "number of mistakes", Loader))

    with plugins.use_registry(plugins.make_registry(extra=[MyPlugin()])):
        result = tlhub.run(tiny_recipe, [*FAST, 'eval.metrics=["accuracy", "wrong_count"]'], quiet=True)
    n = result.metrics["test_examples"]
    assert result.metrics["wrong"] == pytest.approx(round((1 - result.metrics["accuracy"]) * n))


# ---------------------------------------------------------------- finding 5: full disks

def test_cache_on_a_full_disk_is_refused_before_mapping(tiny_recipe, tmp_path, monkeypatch):
    from tlhub.artifacts import rundir
    real = shutil.disk_usage
    monkeypatch.setattr(rundir.shutil, "disk_usage", lambda p: real(p)._replace(free=1 << 20))
    res = invoke("run", tiny_recipe, *FAST, "train.cache_memory_mb=0", "--quiet")
    refused(res, "disk full: the frozen-feature cache needs", "MB are free",
            "nothing was trained yet: after freeing space, run the same command again")
    assert not (tmp_path / "run").exists()  # the corrected command needs no --overwrite


def _enospc(*a, **k):
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("failing", ["samples", "picture", "report"])
def test_disk_full_after_training_is_one_message_with_the_resume_command(tiny_recipe, tmp_path, monkeypatch,
                                                                         failing):
    from safetensors import torch as st

    from tlhub.reporting import html, pictures
    if failing == "samples":
        real_save = st.save_file

        def half_then_full(tensors, filename, metadata=None):
            Path(filename).write_bytes(b"half a file")
            _enospc()
        monkeypatch.setattr(st, "save_file", lambda t, f, metadata=None: (
            half_then_full(t, f) if "samples" in str(f) else real_save(t, f, metadata=metadata)))
    elif failing == "picture":
        monkeypatch.setattr(pictures, "confusion_matrix_png", _enospc)
    else:
        monkeypatch.setattr(html, "render", _enospc)
    res = invoke("run", tiny_recipe, *FAST, "--quiet")
    refused(res, "No space left on device", "after freeing space, continue with: tlhub run",
            f"--resume {tmp_path / 'run'}")
    assert len([x for x in res.output.splitlines() if x.startswith("error:")]) == 2, res.output
    run = tmp_path / "run"
    assert not [p.name for p in run.rglob("*tmp*")]  # no half-written file left
    monkeypatch.undo()  # space freed
    res = invoke("run", tiny_recipe, *FAST, "--resume", run, "--quiet")
    assert res.exit_code == 0, res.output
    for name in ("metrics.json", "samples.safetensors", "confusion_matrix.png", "report.html"):
        assert (run / name).is_file(), name
    assert not [p.name for p in run.rglob("*tmp*")]


def test_atomic_write_leaves_nothing_when_the_write_fails(tmp_path):
    from tlhub.artifacts import rundir
    (tmp_path / "a.json").write_text("old")
    with pytest.raises(OSError):
        with rundir.atomic_path(tmp_path / "a.json") as tmp:
            tmp.write_text("half")
            _enospc()
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"] and (tmp_path / "a.json").read_text() == "old"


# ---------------------------------------------------------------- finding 8: the split is pinned

def _png(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(value)
    Image.fromarray((rng.random((16, 16, 3)) * 60 + value).astype(np.uint8)).save(path)


def _folder_recipe(tmp_path: Path, per_class: int) -> Path:
    for c, base in (("red", 20), ("blue", 150)):
        for i in range(per_class):
            _png(tmp_path / "imgs" / c / f"{i}.png", base + i)
    text = (REPO / "tests" / "recipes" / "tiny.toml").read_text().replace(
        'source = "synthetic"', 'source = "image-folder"\noptions = { path = "imgs" }')
    recipe = tmp_path / "r.toml"
    recipe.write_text(text + f'\n[output]\ndir = "{(tmp_path / "run").as_posix()}"\n')
    return recipe


def test_resume_on_changed_data_is_refused_with_what_changed(tmp_path, monkeypatch):
    from tlhub.training import phase
    recipe = _folder_recipe(tmp_path, 12)
    real = phase.run_phase

    def interrupt_in_phase_2(ctx, model, index, resume=None):
        if index == 1:
            raise phase.Interrupted("simulated SIGKILL", 137)
        return real(ctx, model, index, resume)
    monkeypatch.setattr(phase, "run_phase", interrupt_in_phase_2)
    with pytest.raises(phase.Interrupted):
        tlhub.run(recipe, FAST, quiet=True)
    monkeypatch.setattr(phase, "run_phase", real)
    pinned = json.loads((tmp_path / "run" / "splits.json").read_text())
    for i in range(12, 20):  # images added to the data folder
        _png(tmp_path / "imgs" / "red" / f"{i}.png", 30 + i)
    res = invoke("run", recipe, *FAST, "--resume", "--quiet")
    refused(res, "--resume: the data changed since", f"train: {pinned['train']['examples']} -> ")
    for i in range(12, 20):  # the data put back: the resume goes on
        (tmp_path / "imgs" / "red" / f"{i}.png").unlink()
    res = invoke("run", recipe, *FAST, "--resume", "--quiet")
    assert res.exit_code == 0, res.output


def test_same_count_but_other_examples_is_a_change(tmp_path):
    from tlhub.data.splits import Splits
    from tlhub.errors import UserError
    from tlhub.interfaces import Split
    from tlhub.training import datapin

    def splits(items):
        return Splits(["a", "b"], Split(items, [0, 1]), Split(["v"], [0]), Split(["t"], [1]))
    (tmp_path / datapin.FILE).write_text(json.dumps(datapin.fingerprint(splits(["x.png", "y.png"]))))
    datapin.check(tmp_path, splits(["x.png", "y.png"]), resuming=True)
    with pytest.raises(UserError, match="train: the same number of examples"):
        datapin.check(tmp_path, splits(["x.png", "z.png"]), resuming=True)
