"""Mixed precision on the CPU: "auto" resolves against the CPU's bf16 support; bf16 autocast covers training,
the cache fill, validation, test scoring and predict; cached and uncached bf16 runs agree."""
from __future__ import annotations

import json
import math

import pytest
import torch

import tlhub
from tlhub.errors import UserError
from tlhub import precision

SHORT = ["phases.head.epochs=1", "phases.top.epochs=1"]


def test_auto_is_bf16_only_on_a_cpu_with_native_bf16():
    assert precision.resolve("auto", "cpu", flags=("amx_bf16", "avx512_bf16")).mode == "bf16"
    assert precision.resolve("auto", "cpu", flags=("avx512_bf16",)).mode == "bf16"
    slow = precision.resolve("auto", "cpu", flags=())
    assert slow.mode == "no" and "no AMX" in slow.describe() and slow.describe().startswith("fp32")
    assert precision.resolve("auto", "cuda", flags=("amx_bf16",)).mode == "no"
    for mode in ("no", "bf16", "fp16"):  # an explicit mode is kept whatever the CPU
        assert precision.resolve(mode, "cpu", flags=()).mode == mode
    assert precision.resolve("bf16", "cpu", flags=()).describe() == "bf16 (train.mixed_precision)"


def test_auto_keeps_fp32_for_a_backbone_with_depthwise_convolutions():
    grouped = precision.resolve("auto", "cpu", flags=("avx512_bf16",), grouped_convs=16)
    assert grouped.mode == "no" and "16 grouped (depthwise) convolutions" in grouped.describe()
    assert precision.resolve("bf16", "cpu", flags=("avx512_bf16",), grouped_convs=16).mode == "bf16"  # asked for
    assert precision.resolve("auto", "cpu", flags=(), grouped_convs=0).mode == "no"


def test_layouts_count_grouped_convolutions_per_group():
    from torch import nn

    from tlhub.model import group_layouts

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(3, 8, 3)
            self.dw = nn.Sequential(nn.Conv2d(8, 8, 3, groups=8), nn.Conv2d(8, 8, 1), nn.Conv2d(8, 8, 3, groups=2))

        def groups(self):
            return [("stem", self.stem), ("dw", self.dw)]

    assert [(g.name, g.grouped_convs) for g in group_layouts(Net())] == [("stem", 0), ("dw", 2)]


def test_cpu_flags_come_from_cpuinfo():
    flags = precision.cpu_bf16_flags()
    assert set(flags) <= set(precision.FAST_BF16_FLAGS)
    with open("/proc/cpuinfo") as f:
        text = f.read()
    assert ("amx_bf16" in flags) == (" amx_bf16" in text)


@pytest.mark.parametrize("cache", [True, False])
def test_bf16_on_cpu_trains_scores_and_predicts_under_autocast(tiny_recipe, monkeypatch, cache, caplog):
    import logging
    from tlhub.training import trainer

    head_dtypes: list = []
    real_eval = trainer.evaluate_split

    def spy(accelerator, model, *args, **kwargs):  # test scoring: the model unwrapped after its last phase
        first = next(m for m in model.head.modules() if isinstance(m, torch.nn.Linear))
        h = first.register_forward_hook(lambda m, i, out: head_dtypes.append(out.dtype))
        try:
            return real_eval(accelerator, model, *args, **kwargs)
        finally:
            h.remove()

    monkeypatch.setattr(trainer, "evaluate_split", spy)
    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda: ("amx_bf16",))  # "auto" as on an AMX CPU
    with caplog.at_level(logging.INFO, logger="tlhub"):
        result = tlhub.run(tiny_recipe, SHORT + ["train.mixed_precision='auto'", f"train.cache={str(cache).lower()}"],
                           quiet=True)
    assert head_dtypes and set(head_dtypes) == {torch.bfloat16}
    assert all(math.isfinite(r["train_loss"]) and math.isfinite(r["val_loss"]) for r in result.history)
    env = json.loads((result.run_dir / "environment.json").read_text())
    config = json.loads((result.run_dir / "model" / "config.json").read_text())
    assert env["mixed_precision"] == config["mixed_precision"] == "bf16"
    p = tlhub.load(result.run_dir)  # "auto": bf16 as trained, on this (pretend) AMX CPU
    assert p.mixed_precision == "bf16"
    x = [torch.rand(3, 16, 16) for _ in range(5)]
    probs = p.predict_proba(x)
    assert probs.shape == (5, 4) and torch.isfinite(torch.from_numpy(probs)).all()
    fp32 = tlhub.load(result.run_dir, mixed_precision="no").predict_proba(x)
    assert abs(probs - fp32).max() < 0.05  # bf16 keeps ~3 significant digits
    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda: ())  # a CPU without native bf16: fp32
    assert tlhub.load(result.run_dir).mixed_precision == "no"


def test_bf16_cached_and_uncached_agree(tiny_recipe, tmp_path):
    """The cache stores the bf16 prefix's output exactly (as float32), so both runs train alike."""
    runs = [tlhub.run(tiny_recipe, SHORT + ["train.mixed_precision='bf16'", f"train.cache={c}",
                                            f"output.dir='{tmp_path / c}'"], quiet=True) for c in ("true", "false")]
    cached, uncached = ([r["train_loss"] for r in run.history] for run in runs)
    assert cached == pytest.approx(uncached, rel=2e-2)
    assert runs[0].metrics["accuracy"] == pytest.approx(runs[1].metrics["accuracy"], abs=0.1)


def test_fp32_run_and_bad_predict_precision(tiny_recipe):
    result = tlhub.run(tiny_recipe, SHORT, quiet=True)
    assert json.loads((result.run_dir / "model" / "config.json").read_text())["mixed_precision"] == "no"
    assert tlhub.load(result.run_dir).mixed_precision == "no"  # trained in fp32: predicts in fp32
    with pytest.raises(UserError, match="mixed_precision 'bf17'"):
        tlhub.load(result.run_dir, mixed_precision="bf17")


def test_the_run_reads_the_recipes_backbone_for_auto():
    from pathlib import Path

    from tlhub.plugins import get_registry
    from tlhub.recipe import load_and_validate
    from tlhub.training.trainer import _grouped_convs
    recipes = Path(__file__).resolve().parent.parent / "recipes"
    lite0 = recipes / "mnist5k_lite0.toml"  # EfficientNet-Lite0: depthwise blocks
    assert _grouped_convs(load_and_validate(lite0, ["train.mixed_precision='auto'"]), get_registry()) > 0
    assert _grouped_convs(load_and_validate(lite0, ["train.mixed_precision='no'"]), get_registry()) == 0
    minilm = load_and_validate(recipes / "mrpc_minilm.toml", ["train.mixed_precision='auto'"])
    assert _grouped_convs(minilm, get_registry()) == 0
