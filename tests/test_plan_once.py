"""The run plan is resolved once (by validation) and the trainer runs what it says; a freeze = "auto" phase is a
planned search space that the search's outcome revises."""
from __future__ import annotations

import dataclasses
import json

import pytest

import tlhub
from tlhub import plugins
from tlhub.recipe import check, load_recipe
from tlhub.recipe import plan as plan_module


def test_a_run_plans_each_phase_once(tiny_recipe, monkeypatch):
    calls = []
    original = plan_module.plan_phase

    def counting(recipe, registry, index, *a, **k):
        calls.append(index)
        return original(recipe, registry, index, *a, **k)
    monkeypatch.setattr(plan_module, "plan_phase", counting)
    result = tlhub.run(tiny_recipe, quiet=True)
    assert calls == [0, 1]  # validation's plan is the one that ran
    saved = json.loads((result.run_dir / "plan.json").read_text())
    assert [p["settings"]["scheduler"] for p in saved["phases"]] == ["constant", "cosine"]
    assert saved["revisions"] == []


def test_the_trainer_runs_the_plan_not_the_recipe(tiny_recipe, monkeypatch):
    """A plan whose first phase says 1 epoch at another lr: the run follows it, whatever the recipe's table says."""
    from tlhub.training import trainer
    original = trainer.plan_of

    def shorter(checked, backbone, registry):
        p = original(checked, backbone, registry)
        first = p.phases[0]
        settings = dataclasses.replace(first.settings, epochs=1, lr=0.02)
        first = dataclasses.replace(first, epochs=1, settings=settings, lrs={"head": 0.02})
        return dataclasses.replace(p, phases=(first, *p.phases[1:]))
    monkeypatch.setattr(trainer, "plan_of", shorter)
    result = tlhub.run(tiny_recipe, quiet=True)
    assert [r["phase"] for r in result.history] == ["head", "top", "top"]  # the recipe says 3 head epochs
    log = (result.run_dir / "run.log").read_text()
    assert "phase 1/2 'head': 1 epoch(s), adam lr 0.02, constant schedule; freeze frozen" in log


def test_show_plan_prints_every_setting_and_the_search_space(tiny_recipe):
    from clichecks import invoke
    out = invoke("show", "--plan", tiny_recipe, "phases.1.freeze=auto", "phases.1.freeze_options={}",
                 "phases.0.early_stop=2", "phases.0.restore_best=true")
    assert out.exit_code == 0, out.output
    assert "phase 1 'head': 3 epoch(s), adam lr 0.01, constant schedule, early stop 2, restore best" in out.output
    assert "phase 2 'top': freeze = \"auto\"" in out.output
    assert "search: the head alone (lr 0.003), or top 1 (" in out.output  # tiny-cnn: 3 groups
    assert "at lr 0.0001, 0.0003, 0.0009" in out.output and "2 x the shipped recipe" in out.output


def test_check_returns_the_plan_with_the_auto_phase_as_a_search_space(tiny_recipe):
    plugins.reset()
    recipe = load_recipe(tiny_recipe, ["phases.1.freeze=auto", "phases.1.freeze_options={}"])
    plan = check(recipe).plan
    assert plan.searched and not plan.phases[0].is_auto
    auto = plan.phases[1]
    assert auto.is_auto and auto.settings.name == "top"
    assert auto.search.depths == plan_module.search_depths(len(plan.group_names))
    assert auto.search.lr_factors == plan_module.LR_FACTORS and auto.search.cost_times == plan_module.COST_TIMES


def test_a_revision_replaces_the_auto_phase_and_records_why(tiny_recipe):
    plugins.reset()
    recipe = load_recipe(tiny_recipe, ["phases.1.freeze=auto", "phases.1.freeze_options={}"])
    plan = check(recipe).plan
    chosen = load_recipe(tiny_recipe, ["phases.1.name='tune'"])
    planned = check(chosen).plan.phases[1:]
    revised = plan.revise(1, [*planned, dataclasses.replace(planned[0], name="anneal")], "the search's winner x")
    assert [p.name for p in revised.phases] == ["head", "tune", "anneal"]
    assert [p.index for p in revised.phases] == [0, 1, 2] and not revised.searched
    assert json.loads(json.dumps(revised.to_dict()))["revisions"] == [{"phase": 1, "name": "top", "phases": ["tune", "anneal"],
                                               "reason": "the search's winner x"}]
    assert "revised: phase 2 'top' became 'tune', 'anneal' (the search's winner x)" in revised.format()


def test_cache_decision_comes_from_the_plan_and_must_agree_with_the_modality(tiny_recipe):
    """The plan asked the modality whether training inputs change each epoch; datasets that disagree are a
    modality plugin's bug, named as such."""
    from tlhub.recipe.plan import CacheEntry
    from tlhub.training.phase import phase_inputs
    recipe = load_recipe(tiny_recipe)
    cache = CacheEntry(1, True, "pooled features, computed once per phase", train=True, what="pooled features")
    with pytest.raises(RuntimeError, match="augments"):
        phase_inputs(None, None, recipe, 0, cache, {"train": [], "val": []}, None, False, None)
    off = CacheEntry(0, False, "off (train.cache = false)")
    assert phase_inputs(None, None, recipe, 0, off, {"train": "T", "val": "V"}, None, True, None)[3] == \
        "cache: off (train.cache = false)"


def test_an_augmenting_image_recipe_plans_to_cache_only_validation(tiny_recipe):
    plugins.reset()
    recipe = load_recipe(tiny_recipe, ["data.augment.flip=true"])
    head = check(recipe).plan.phases[0]
    assert head.cache.groups and not head.cache.train and "training split is not cached" in head.cache.note
