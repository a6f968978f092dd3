"""The text recipes: they validate, their documented offline override works, and (slow) the sentiment
recipe's model trained on rt-polarity labels plain sentences correctly through the Python API."""
from __future__ import annotations

import shlex
from pathlib import Path

import pytest

pytest.importorskip("tlhub_text")

from tlhub.recipe import load_and_validate  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "recipes"
RT = Path(__file__).resolve().parents[2] / "shared" / "data" / "rt-polarity"
needs_rt = pytest.mark.skipif(not (RT / "rt-polarity.pos").is_file(),
                              reason=f"rt-polarity data not found at {RT} (it lives beside the repo, not in it)")


def documented_offline_overrides() -> list[str]:
    """The overrides of the `tlhub run ... data.source=text-files ...` line in the recipe's opening comment."""
    for line in (RECIPES / "sentiment_minilm.toml").read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        if "tlhub run" in line and "data.source=text-files" in line:
            args = shlex.split(line.lstrip("# ").strip())
            return args[args.index("recipes/sentiment_minilm.toml") + 1:]
    raise AssertionError("recipes/sentiment_minilm.toml: no offline `tlhub run ... data.source=text-files` line")


def test_sentiment_recipe_shape():
    r = load_and_validate(RECIPES / "sentiment_minilm.toml")
    assert r.model.backbone == "minilm-l6" and r.data.source == "hf"
    assert "rotten_tomatoes" in r.data.options["dataset"]
    (phase,) = r.phases  # one phase: no separate head phase and its cache fill (issue 29)
    assert phase.freeze == "top_k" and 0 < phase.freeze_options["k"] < 6  # a frozen, cached prefix
    assert phase.scheduler == "linear" and phase.warmup > 0 and 1e-5 <= phase.lr <= 1e-4
    assert phase.lr_mult["head"] > 1  # the new head starts from random
    assert not r.eval.each_phase


def test_sst2_recipe_shape():
    r = load_and_validate(RECIPES / "sst2_bert.toml")
    assert r.model.backbone == "hf" and r.model.backbone_options["model"] == "bert-base-uncased"
    o = r.data.options
    assert (o["dataset"], o["config"], o["text_column"], o["test_split"], o["val_split"]) == \
        ("nyu-mll/glue", "sst2", "sentence", "validation", "")
    head = (RECIPES / "sst2_bert.toml").read_text(encoding="utf-8").split("\n[", 1)[0]
    assert "tlhub run recipes/sst2_bert.toml" in head and "NEEDS THE NETWORK" in head


@needs_rt
def test_documented_offline_override_loads_rt_polarity():
    from tlhub.data.splits import make_splits
    from tlhub.interfaces import DataContext
    from tlhub.plugins import get_registry

    r = load_and_validate(RECIPES / "sentiment_minilm.toml", documented_offline_overrides())
    assert r.data.source == "text-files" and r.data.test_split == 0.1
    splits = make_splits(r, get_registry(), DataContext(Path(r.base_dir), r.data.split_seed, log=lambda m: None))
    assert splits.classes == ["neg", "pos"]
    assert len(splits.test) == 1066 and len(splits.train) + len(splits.val) + len(splits.test) == 10_662


POSITIVE = ["a wonderful , moving film with superb performances .",
            "one of the best movies of the year : funny , warm and beautifully made .",
            "a delightful and charming comedy that i loved ."]
NEGATIVE = ["a dull , tedious mess with a terrible script .",
            "boring , pointless and far too long ; the worst film of the year .",
            "an awful movie with wooden acting and no laughs at all ."]


@pytest.mark.slow
@needs_rt
def test_sentiment_recipe_trains_on_rt_polarity(tmp_path):
    """A shortened run of the recipe (2,000 training sentences; only the top layer trains, one epoch);
    then tlhub.load + predict on plainly positive and plainly negative sentences."""
    import tlhub

    overrides = documented_offline_overrides() + [
        f'output.dir="{tmp_path / "run"}"', "data.limit=2000", "data.val_split=0.05",
        "data.test_split=0.05", "phases.0.epochs=1", "phases.0.freeze_options={k = 1}",
        "eval.metrics=[\"accuracy\"]", "train.threads=1"]
    result = tlhub.run(RECIPES / "sentiment_minilm.toml", overrides, quiet=True)
    assert result.metrics["accuracy"] >= 0.72, result.metrics
    predictor = tlhub.load(result.run_dir)
    labels = [p.label for p in predictor.predict(POSITIVE + NEGATIVE)]
    assert labels == ["pos"] * len(POSITIVE) + ["neg"] * len(NEGATIVE), labels
