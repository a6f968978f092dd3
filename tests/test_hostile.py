"""Results of a hostile-user probe: transactional --overwrite, errors at validate, no silent wrong answers."""
from __future__ import annotations

import json
import types
from pathlib import Path

import pytest
from click.testing import CliRunner
from clichecks import invoke
from clichecks import refused as one_line_error
from clichecks import snapshot as _snapshot

import tlhub
from tlhub.cli import cli
from tlhub.errors import UserError

FAST = ["phases.0.epochs=1", "phases.1.epochs=1"]


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


def test_interrupted_overwrite_is_kept_aside_and_resumed_into_place(finished_run, tiny_recipe, monkeypatch):
    from tlhub.training import phase
    run, before = finished_run
    real = phase.run_phase

    def interrupt_in_phase_2(ctx, model, index, resume=None):
        if index == 1:  # after phase 1's checkpoint, as SIGINT would
            raise phase.Interrupted("interrupted by SIGINT", 130)
        return real(ctx, model, index, resume)
    monkeypatch.setattr(phase, "run_phase", interrupt_in_phase_2)
    with pytest.raises(phase.Interrupted):
        tlhub.run(tiny_recipe, ["phases.0.lr=0.05", *FAST], overwrite=True, quiet=True)
    assert _snapshot(run) == before  # the old run is whole while the new one waits
    staged = [p for p in run.parent.iterdir() if p.name.startswith("run.tlhub-new-")]
    assert len(staged) == 1 and (staged[0] / "checkpoints").is_dir()
    monkeypatch.setattr(phase, "run_phase", real)
    result = tlhub.run(tiny_recipe, ["phases.0.lr=0.05", *FAST], quiet=True, resume="latest")
    assert result.run_dir == run and not staged[0].exists()
    assert [r["phase"] for r in result.history] == ["head", "top"]
    assert "lr = 0.05" in (run / "recipe.toml").read_text()


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


# ---------------------------------------------------------------- 2. user mistakes caught by validate, exit 2

def _recipe_with(path: Path, base: Path, overrides: list[str]) -> Path:
    import tomli_w

    from tlhub.recipe.schema import apply_overrides, load_toml
    path.write_text(tomli_w.dumps(apply_overrides(load_toml(base), overrides)))
    return path


@pytest.mark.parametrize("override, needle", [
    ("phases.0.lr=nan", "phases.0.lr: expected a finite number, got nan"),
    ("phases.1.lr=inf", "phases.1.lr: expected a finite number, got inf"),
    ("train.seed=-1", "train.seed: must be in [0, 2**32), got -1"),
    ("train.seed=4294967296", "train.seed: must be in [0, 2**32)"),
    ("data.split_seed=-1", "data.split_seed: must be in [0, 2**32)"),
    ("model.head_options.dropout=1.5", "model.head_options.dropout: must be in [0, 1), got 1.5"),
    ("model.head_options.hidden=[-5]", "model.head_options.hidden: must be a list of layer widths"),
    ('model.head_options.hidden=["a"]', "model.head_options.hidden: must be a list of layer widths"),
    ('train.log_with=["nosuchtracker"]', "train.log_with: unknown tracker 'nosuchtracker'"),
    ("data.batch_size=99999999999999999999", "data.batch_size: out of range"),
    ('output.dir="/dev/null"', "output.dir: /dev/null exists and is not a folder"),
    ('output.dir="a\\u0000b"', "output.dir: contains a NUL character"),
    ('model.weights="nosuch.safetensors"', "model.weights: no such weights file: nosuch.safetensors"),
    ('model.head=""', "model.head: required"),
    ("phases.1.layer_decay=1e300", "phases.1.layer_decay: must be in (0, 1]"),  # was an OverflowError
])
def test_recipe_mistakes_fail_validate_with_one_line(tiny_recipe, tmp_path, override, needle):
    bad = _recipe_with(tmp_path / "bad.toml", tiny_recipe, [override])
    res = invoke("validate", bad)
    one_line_error(res, needle)
    assert len(res.output.strip().splitlines()) == 1, res.output
    one_line_error(invoke("run", tiny_recipe, override, "--quiet"), needle)  # and run refuses before training


def test_output_dir_that_is_a_file(tiny_recipe, tmp_path):
    (tmp_path / "afile").write_text("x")
    one_line_error(invoke("show", tiny_recipe, f"output.dir='{tmp_path / 'afile'}'"), "is not a folder")
    assert (tmp_path / "afile").read_text() == "x"


def test_batch_size_beyond_the_data_is_capped(tiny_recipe, tmp_path):
    import sys
    res = invoke("run", tiny_recipe, *FAST, f"data.batch_size={sys.maxsize}", "--quiet")
    assert res.exit_code == 0, res.output


def test_predict_on_a_decompression_bomb_is_refused(trained_image_model, tmp_path, monkeypatch):
    from PIL import Image
    Image.new("L", (64, 64)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 64 x 64 > 2 x limit: what PIL does past 179 MP
    one_line_error(invoke("predict", trained_image_model, tmp_path / "big.png"), "big.png: cannot read the image",
                   "DecompressionBombError")


def test_model_config_without_image_size(trained_image_model, tmp_path):
    import shutil
    model = tmp_path / "model"
    shutil.copytree(trained_image_model / "model", model)
    config = json.loads((model / "config.json").read_text())
    del config["preprocessing"]["image_size"]
    (model / "config.json").write_text(json.dumps(config))
    Image = pytest.importorskip("PIL.Image")
    Image.new("RGB", (16, 16)).save(tmp_path / "x.png")
    one_line_error(invoke("predict", model, tmp_path / "x.png"), "preprocessing: image_size is missing")


class _FakeTokenizer:
    pad_token_id = 0

    def __call__(self, texts, truncation=True, max_length=8):
        return {"input_ids": [[1] * min(len(t), max_length) for t in texts]}


def _text_predictor(tmp_path):
    import torch

    from tlhub.use.load import Predictor

    class Model:  # what the text modality reads of a model: its backbone's tokenizer
        backbone = types.SimpleNamespace(preprocessing=types.SimpleNamespace(tokenizer=_FakeTokenizer()))

        def __call__(self, x):
            return torch.zeros(x["input_ids"].shape[0], 2)
    config = {"backbone": "fake", "head": "linear", "classes": ["neg", "pos"],
              "preprocessing": {"modality": "text", "max_length": 8}}
    return Predictor(Model(), config, tmp_path)


def test_predict_text_from_non_utf8_stdin_and_arguments(tmp_path, monkeypatch):
    from tlhub.use import load
    monkeypatch.setattr(load, "load", lambda model, device="cpu": _text_predictor(tmp_path))
    res = CliRunner().invoke(cli, ["predict", str(tmp_path), "-"], input=b"good film\n\xff\xfebad\n")
    one_line_error(res, "stdin line 2: not UTF-8 text")
    res = CliRunner().invoke(cli, ["predict", str(tmp_path), "caf\udce9"])  # how Python keeps non-UTF-8 argv bytes
    one_line_error(res, "input 1: not valid UTF-8 text")


# ---------------------------------------------------------------- 3. no silent wrong answers

def test_sixteen_bit_images_are_scaled_not_clipped(tmp_path):
    import numpy as np
    from PIL import Image

    from tlhub.data.images import to_pil
    dark = np.full((8, 8), 1000, np.uint16)  # 1000 of 65535: nearly black
    Image.fromarray(dark).save(tmp_path / "dark16.png")
    assert Image.open(tmp_path / "dark16.png").mode == "I;16"
    for item in (tmp_path / "dark16.png", Image.fromarray(dark), dark, Image.fromarray(dark.astype(np.int32)),
                 dark.astype(np.int32)):
        assert to_pil(item).getpixel((0, 0)) == (4, 4, 4), type(item)  # round(1000 / 65535 * 255)
    assert to_pil(Image.fromarray(np.full((8, 8), 0.5, np.float32))).getpixel((0, 0)) == (128, 128, 128)
    assert to_pil(np.full((8, 8), 7, np.int64)).getpixel((0, 0)) == (7, 7, 7)  # 8-bit values stay as they are


def test_sixteen_bit_png_predicts_like_its_8_bit_twin(trained_image_model, tmp_path):
    import numpy as np
    from PIL import Image
    Image.fromarray(np.full((16, 16), 1000, np.uint16)).save(tmp_path / "dark16.png")
    Image.fromarray(np.full((16, 16), 4, np.uint8)).save(tmp_path / "dark8.png")
    Image.fromarray(np.full((16, 16), 255, np.uint8)).save(tmp_path / "white.png")
    p = tlhub.load(trained_image_model).predict_proba([tmp_path / "dark16.png", tmp_path / "dark8.png",
                                                       tmp_path / "white.png"])
    assert np.allclose(p[0], p[1], atol=1e-6)
    assert not np.allclose(p[0], p[2], atol=1e-3)


def test_blank_text_is_refused_not_labelled(tmp_path, monkeypatch):
    from tlhub.use import load
    predictor = _text_predictor(tmp_path)
    with pytest.raises(UserError, match="input 2: empty or blank text"):
        predictor.predict(["a fine film", "   "])
    assert predictor.predict(["a fine film"])[0].label in ("neg", "pos")
    monkeypatch.setattr(load, "load", lambda model, device="cpu": _text_predictor(tmp_path))
    one_line_error(invoke("predict", tmp_path, ""), "input 1: empty or blank text")


def test_stdin_says_how_many_blank_lines_it_skipped(tmp_path, monkeypatch):
    from tlhub.use import load
    monkeypatch.setattr(load, "load", lambda model, device="cpu": _text_predictor(tmp_path))
    res = CliRunner().invoke(cli, ["predict", str(tmp_path), "-", "--json"], input="good\n\n   \nfine\n")
    assert res.exit_code == 0, res.output
    assert "note: skipped 2 blank line(s) of stdin" in res.output
    assert [r["input"] for r in json.loads(res.output[res.output.index("["):])] == ["good", "fine"]


# ---------------------------------------------------------------- 4. likely typos are errors, not no-ops

@pytest.mark.parametrize("overrides, needles", [
    (["phases.1.lr_mult={blok2=2.0}"], ["phases.1.lr_mult: the backbone has no group 'blok2'", "did you mean 'block2'",
                                        "groups: stem, block1, block2, head_conv, head"]),
    (["phases.1.freeze_options={k=5}"], ["phases.1.freeze_options.k: the backbone has 4 groups "
                                         "(stem, block1, block2, head_conv), got k = 5"]),
    (["phases.1.freeze_options={k=0}"], ["phases.1.freeze_options.k: must be >= 1, got 0"]),
    (["phases.1.freeze=pattern", "phases.1.freeze_options={regex='blok'}"],
     ["phases.1.freeze_options.regex: 'blok' matches no parameter name (groups: stem, block1, block2, head_conv"]),
    (["data.augment.rotation=-5"], ["data.augment.rotation: must be >= 0 (0: off), got -5.0"]),
    (["data.augment.crop_padding=-2"], ["data.augment.crop_padding: must be >= 0"]),
    (["data.augment.color_jitter=-0.5"], ["data.augment.color_jitter: must be >= 0"]),
    (["phases.-1.lr=1"], ["override phases.-1: no item '-1' (there are 2, indexed from 0, or by name)"]),
])
def test_likely_typos_are_errors_at_validate(tiny_recipe, overrides, needles):
    res = invoke("show", tiny_recipe, *overrides)
    one_line_error(res, *needles)
    assert len(res.output.strip().splitlines()) == 1, res.output


def test_top_k_with_every_group_still_works(tiny_recipe):
    from tlhub import plugins
    from tlhub.recipe import load_and_validate
    from tlhub.recipe.plan import build_plan
    r = load_and_validate(tiny_recipe, ["phases.1.freeze_options={k=4}"])
    assert all(g.trainable for g in build_plan(r, plugins.get_registry()).phases[1].groups)


# ---------------------------------------------------------------- 5. errors found at validate, not after training

def test_unknown_metric_fails_validate_offline_with_suggestion(tiny_recipe, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_MODULES_CACHE", str(tmp_path / "modules"))  # an empty evaluate cache
    res = invoke("show", tiny_recipe, 'eval.metrics=["accuracy", "acuracy"]')
    one_line_error(res, "eval.metrics: unknown metric 'acuracy' (did you mean 'accuracy'?)",
                   "metrics that load offline: accuracy, f1, precision, recall")
    res = invoke("run", tiny_recipe, 'eval.metrics=["matthews_correlation"]', "--quiet")
    one_line_error(res, "unknown metric 'matthews_correlation'")
    assert not (tmp_path / "run").exists()  # refused before anything was trained or written


def test_metrics_from_evaluates_cache_pass_a_script_path_does_not(tiny_recipe, tmp_path, monkeypatch):
    from tlhub import plugins
    from tlhub.metrics import HERE, local_metrics
    cached = tmp_path / "modules" / "evaluate_modules" / "metrics" / "evaluate-metric--mcc" / ("a" * 64)
    cached.mkdir(parents=True)
    (cached / "mcc.py").write_text("# a cached evaluate metric script\n")
    monkeypatch.setenv("HF_MODULES_CACHE", str(tmp_path / "modules"))
    assert "mcc" in local_metrics(plugins.get_registry())
    assert invoke("show", tiny_recipe, 'eval.metrics=["mcc"]').exit_code == 0
    one_line_error(invoke("show", tiny_recipe, f'eval.metrics=["mcc", "{HERE / "accuracy"}"]'), "is a path")


@pytest.mark.parametrize("overrides, needle", [
    (["phases.1.freeze_options={k=-1}"], "phases.1.freeze_options.k: must be >= 1, got -1"),
    (["phases.1.freeze=from_group", "phases.1.freeze_options={group='blok2'}"],
     "phases.1.freeze_options.group: the backbone has no group 'blok2' (did you mean 'block2'"),
    (["phases.1.freeze=pattern", "phases.1.freeze_options={regex='(block'}"],
     "phases.1.freeze_options: freeze pattern '(block' is not a valid regular expression"),
])
def test_policy_option_errors_carry_the_phase_and_fail_validate(tiny_recipe, tmp_path, overrides, needle):
    bad = _recipe_with(tmp_path / "bad.toml", tiny_recipe, overrides)
    one_line_error(invoke("validate", bad), needle)
    one_line_error(invoke("run", tiny_recipe, *overrides, "--quiet"), needle)
    assert not (tmp_path / "run").exists()

