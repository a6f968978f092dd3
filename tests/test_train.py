"""The phase trainer: learns, reproduces with a seed, writes the run directory, refuses to overwrite."""
from __future__ import annotations

import json

import pytest
from safetensors.torch import load_file

import tlhub
from tlhub.errors import UserError


def test_loss_falls_and_run_dir_is_complete(tiny_recipe, tmp_path):
    result = tlhub.run(tiny_recipe, ["phases.1.freeze=none", "phases.1.freeze_options={}", "phases.1.epochs=6",
                                     "phases.1.lr=0.01"], quiet=True)
    h = result.history
    assert [r["phase"] for r in h] == ["head"] * 3 + ["top"] * 6
    top = [r["train_loss"] for r in h if r["phase"] == "top"]
    assert top[-1] < 0.6 * top[0], top
    assert result.metrics["accuracy"] >= 0.75
    run = result.run_dir
    for name in ("recipe.toml", "history.jsonl", "metrics.json", "run.log", "model/model.safetensors",
                 "model/config.json", "samples.json"):
        assert (run / name).is_file(), name
    lines = [json.loads(x) for x in (run / "history.jsonl").read_text().splitlines()]
    assert lines == json.loads(json.dumps(h))
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["classes"] == ["class0", "class1", "class2", "class3"]
    cm = metrics["confusion_matrix"]
    assert sum(map(sum, cm)) == metrics["test_examples"] == 16
    config = json.loads((run / "model" / "config.json").read_text())
    assert config["backbone"] == "tiny-cnn" and config["classes"] == metrics["classes"]
    weights = load_file(str(run / "model" / "model.safetensors"))
    assert any(k.startswith("head.") for k in weights) and any(k.startswith("backbone.") for k in weights)
    log = (run / "run.log").read_text()
    assert "cache: pooled features" in log and "stem" in log and "1 x frozen" in log


def test_same_seed_same_result(tiny_recipe, tmp_path):
    a = tlhub.run(tiny_recipe, [f"output.dir='{tmp_path / 'a'}'"], quiet=True)
    b = tlhub.run(tiny_recipe, [f"output.dir='{tmp_path / 'b'}'"], quiet=True)
    strip = lambda h: [{k: v for k, v in r.items() if k not in ("seconds", "train_seconds")} for r in h]  # noqa: E731
    assert strip(a.history) == strip(b.history)
    assert a.metrics == b.metrics
    wa = load_file(str(a.run_dir / "model" / "model.safetensors"))
    wb = load_file(str(b.run_dir / "model" / "model.safetensors"))
    assert all((wa[k] == wb[k]).all() for k in wa)


def test_existing_run_dir_not_overwritten(tiny_recipe, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "precious.txt").write_text("keep me")
    with pytest.raises(UserError, match="--overwrite"):
        tlhub.run(tiny_recipe, ["phases.0.epochs=1"], quiet=True)
    assert (run / "precious.txt").read_text() == "keep me"
    with pytest.raises(UserError, match="not a tlhub run directory"):  # --overwrite replaces only runs
        tlhub.run(tiny_recipe, ["phases.0.epochs=1"], overwrite=True, quiet=True)
    assert (run / "precious.txt").read_text() == "keep me"
    (run / "precious.txt").unlink()
    tlhub.run(tiny_recipe, ["phases.0.epochs=1", "phases.1.epochs=1"], quiet=True)
    result = tlhub.run(tiny_recipe, ["phases.0.epochs=1", "phases.1.epochs=1"], overwrite=True, quiet=True)
    assert (result.run_dir / "metrics.json").is_file()


def test_layer_decay_and_lr_mult_set_group_learning_rates(tiny_recipe):
    from tlhub import plugins
    from tlhub.model import TransferModel, apply_states
    from tlhub.recipe import load_and_validate
    from tlhub.recipe.plan import build_plan
    from tlhub.training.optim import build_optimizer
    r = load_and_validate(tiny_recipe, ["phases.1.layer_decay=0.5", "phases.1.lr_mult={head=2.0}"])
    plan = build_plan(r, plugins.get_registry()).phases[1]
    assert plan.lrs == pytest.approx({"block2": 0.003 * 0.25, "head_conv": 0.003 * 0.5, "head": 0.006})
    bb = plugins.get_registry().get("backbones", "tiny-cnn").build("none", {"width": 4})
    model = TransferModel(bb, __import__("torch").nn.Linear(bb.feature_dim, 4))
    apply_states(model, list(plan.groups), plan.train_names)
    opt = build_optimizer(model, r.phases[1], plan.lrs)
    lrs = {g["name"]: g["lr"] for g in opt.param_groups}
    assert lrs == pytest.approx({"block2": 0.003 * 0.25, "head_conv": 0.003 * 0.5, "head": 0.006})


def test_each_phase_scores_test_without_changing_the_run(tiny_recipe, tmp_path):
    plain = tlhub.run(tiny_recipe, [f"output.dir='{tmp_path / 'a'}'"], quiet=True)
    each = tlhub.run(tiny_recipe, [f"output.dir='{tmp_path / 'b'}'", "eval.each_phase=true"], quiet=True)
    after = each.metrics.pop("after_phase")
    assert list(after) == ["head", "top"]
    assert after["top"]["accuracy"] == plain.metrics["accuracy"]
    assert 0 <= after["head"]["accuracy"] <= 1 and set(after["head"]) == set(after["top"])
    assert each.metrics == plain.metrics  # scoring test in between changes nothing the run learns
    strip = lambda h: [{k: v for k, v in r.items() if k not in ("seconds", "train_seconds")} for r in h]  # noqa: E731
    assert strip(each.history) == strip(plain.history)
    on_disk = json.loads((each.run_dir / "metrics.json").read_text())
    assert on_disk["after_phase"] == after
    log = (each.run_dir / "run.log").read_text()
    assert f"test after phase 1 'head': accuracy {after['head']['accuracy']:.4f}" in log


def test_channels_last_for_image_models_and_kept_by_load(tiny_recipe, tmp_path):
    import torch

    def conv_weights(model):
        return [p for p in model.parameters() if p.dim() == 4]

    on = tlhub.run(tiny_recipe, [f"output.dir='{tmp_path / 'on'}'", "phases.1.epochs=1"], quiet=True)
    off = tlhub.run(tiny_recipe, [f"output.dir='{tmp_path / 'off'}'", "phases.1.epochs=1",
                                  "train.channels_last=false"], quiet=True)
    assert conv_weights(on.model) and all(p.is_contiguous(memory_format=torch.channels_last)
                                          and not p.is_contiguous() for p in conv_weights(on.model))
    assert all(p.is_contiguous() for p in conv_weights(off.model))
    assert json.loads((on.run_dir / "model" / "config.json").read_text())["channels_last"] is True
    assert "memory format: channels_last" in (on.run_dir / "run.log").read_text()
    loaded = tlhub.load(on.run_dir)
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in conv_weights(loaded.model))
    assert abs(on.metrics["accuracy"] - off.metrics["accuracy"]) <= 0.25  # same learning, other rounding


def test_epoch_steps_caps_each_epoch_and_reshuffles(tiny_recipe, tmp_path):
    """epoch_steps = 2: each epoch trains 2 batches of a fresh shuffle; the cosine schedule spans those
    steps only (its lr reaches zero at the phase's end)."""
    base = ["phases.0.epochs=1", "data.batch_size=8", "phases.1.epochs=3", "phases.1.epoch_steps=2",
            "phases.1.scheduler='cosine'", "train.cache=false"]
    result = tlhub.run(tiny_recipe, base + [f"output.dir='{tmp_path / 'a'}'"], quiet=True)
    rows = [r for r in result.history if r["phase_index"] == 1]
    assert [(r["steps"], r["examples"]) for r in rows] == [(2, 16)] * 3
    assert rows[-1]["lr"] == pytest.approx(0.0, abs=1e-12)
    full = next(r for r in result.history if r["phase_index"] == 0)
    assert full["steps"] > 2  # the cap is per phase
    assert len({round(r["train_loss"], 6) for r in rows}) == 3
