"""``tlhub advise``: probes frozen features and recommends differently for separable and random labels."""
from __future__ import annotations

import tomllib

import pytest
from click.testing import CliRunner

from tlhub import plugins
from tlhub.auto import advise
from tlhub.cli import cli
from tlhub.hookspecs import hookimpl
from tlhub.options import Opt
from tlhub.recipe import load_and_validate, load_recipe
from tlhub.registry import DataSourceSpec

PER_CLASS = ["data.options.per_class=60"]


class RandomLabels:
    """A test plugin: the tiny ``synthetic`` images with their labels shuffled (nothing to learn)."""

    @hookimpl
    def register_data_sources(self, register):
        def load(options, ctx):
            import numpy as np
            from tlhub_tiny import load_synthetic

            from tlhub.interfaces import SourceData, Split
            data = load_synthetic(options, ctx)
            labels = np.random.default_rng(123).permutation(np.asarray(data.train.labels)).tolist()
            return SourceData(data.classes, train=Split(data.train.items, labels))

        register(DataSourceSpec("synthetic-shuffled", "synthetic images, labels shuffled", "image", load, options=(
            Opt("classes", int, 4, ""), Opt("per_class", int, 40, ""), Opt("size", int, 16, ""),
            Opt("seed", int, 0, ""))))


@pytest.fixture
def with_random_labels():
    with plugins.use_registry(plugins.make_registry(extra=[RandomLabels()])):
        yield


def test_separable_and_random_labels_get_different_plans(tiny_recipe, with_random_labels):
    good = advise.measure(load_recipe(tiny_recipe, PER_CLASS))
    bad = advise.measure(load_recipe(tiny_recipe, PER_CLASS + ["data.source=synthetic-shuffled"]))

    assert good.train_counts == bad.train_counts and set(good.train_counts.values()) == {43}
    assert [p.group for p in good.probes] == ["stem", "block1", "block2", "head_conv"] and good.probes[-1].final
    assert good.final.score >= 0.9 and bad.final.score <= 0.6, (good.probes, bad.probes)
    assert good.case == "small data, similar" and bad.case == "small data, different"

    assert [p["freeze"] for p in good.phases] == ["frozen"]  # linear classifier on frozen features only
    assert [p["freeze"] for p in bad.phases][0] == "frozen" and len(bad.phases) == 2
    tuned = bad.phases[1]
    assert tuned["freeze"] in ("top_k", "none") and tuned["lr"] < bad.phases[0]["lr"]
    for a in (good, bad):
        text = a.format()
        assert "linear probes" in text and a.case in text and "[[phases]] head" in text
        assert "classes; per class min 43" in text and "accuracy " in text and "median per class 43" in text


def test_decide_covers_the_four_cases():
    names = ["g0", "g1", "g2", "g3", "g4", "g5", "g6", "g7"]

    class R:
        phases = ()

    def case(per_class, acc_final, acc_mid=0.5):
        probes = [advise.Probe("g5", 5, 8, acc_mid), advise.Probe("g6", 6, 8, acc_mid),
                  advise.Probe("g7", 7, 8, acc_final, final=True)]
        return advise.decide(R, ["a", "b"], {"a": per_class, "b": per_class}, names, probes, 0.5, 1000, 1000)

    small_sim, large_sim = case(50, 0.95), case(1000, 0.95)
    small_diff, large_diff = case(50, 0.6, acc_mid=0.7), case(1000, 0.6)
    assert [a.case for a in (small_sim, large_sim, small_diff, large_diff)] == [
        "small data, similar", "large data, similar", "small data, different", "large data, different"]
    assert len(small_sim.phases) == 1
    assert large_sim.phases[1]["freeze"] == "top_k" and large_sim.phases[1]["lr"] == pytest.approx(1e-5)
    # features after g6 beat the final ones by 0.1: at least the group above it (g7) trains, at lr/10
    assert small_diff.stop_group == "g6" and small_diff.phases[1]["freeze_options"]["k"] >= 1
    assert small_diff.phases[1]["lr"] == pytest.approx(1e-4)
    assert large_diff.phases[1]["freeze"] == "none" and large_diff.phases[1]["lr"] == pytest.approx(1e-5)


def test_cli_advise_writes_a_valid_recipe_and_never_overwrites(tiny_recipe, tmp_path):
    out = tmp_path / "advised.toml"
    run = CliRunner().invoke(cli, ["advise", str(tiny_recipe), *PER_CLASS, "--rule", "--write", str(out)],
                             catch_exceptions=False)
    assert run.exit_code == 0, run.output
    assert "case: small data, similar" in run.output and "after head_conv (features)" in run.output
    text = out.read_text()
    assert text.startswith("# Written by `tlhub advise") and "[[phases]]" in text
    r = load_and_validate(out)
    assert [p.freeze for p in r.phases] == ["frozen"] and r.data.options == {"per_class": 60}
    assert tomllib.loads(text)["model"]["backbone"] == "tiny-cnn"

    out.write_text("precious")
    again = CliRunner().invoke(cli, ["advise", str(tiny_recipe), "--rule", "--write", str(out)])
    assert again.exit_code == 2 and "--overwrite" in again.output and out.read_text() == "precious"


def test_expand_auto_replaces_the_auto_phase(tiny_recipe):
    r = load_recipe(tiny_recipe, ["phases.0.freeze=auto", "phases.0.lr=0.02"])
    plan = [{"name": "head", "freeze": "frozen", "lr": 0.02, "epochs": 2},
            {"name": "finetune", "freeze": "top_k", "freeze_options": {"k": 1}, "lr": 0.002, "epochs": 1}]
    expanded = advise.expand_auto(r, plan)
    assert [(p.name, p.freeze) for p in expanded.phases] == [("head", "frozen"), ("finetune", "top_k"),
                                                               ("top", "top_k")]
    assert advise.expand_auto(expanded) is expanded  # nothing left to expand: no measuring


def test_freeze_auto_in_a_recipe_runs_the_searched_phases(tiny_recipe):
    """The auto phase becomes the phases the search chose; the phases around it run as written."""
    import json
    import tomllib

    import tlhub
    overrides = ["phases.1.freeze=auto", "phases.1.freeze_options={}", "data.options.per_class=30"]
    result = tlhub.run(tiny_recipe, overrides, quiet=True)
    chosen = json.loads((result.run_dir / "auto_search.json").read_text())["phases"]
    saved = tomllib.loads((result.run_dir / "recipe.toml").read_text())
    assert [p["freeze"] for p in saved["phases"]] == ["frozen"] + [p["freeze"] for p in chosen]
    plan = json.loads((result.run_dir / "plan.json").read_text())  # the search's outcome: a revision of the plan
    assert [(r["phase"], r["name"], r["phases"]) for r in plan["revisions"]] == [(1, "top", [p["name"] for p in chosen])]
    assert [p["name"] for p in plan["phases"]] == [p["name"] for p in saved["phases"]]
    assert not any(p["search"] for p in plan["phases"]) and "winner" in plan["revisions"][0]["reason"]
    assert "auto" not in {r["phase"] for r in result.history}
    assert [r["phase"] for r in result.history][:3] == ["head"] * 3  # the phase before auto, as written
