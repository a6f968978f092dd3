"""``tlhub advise``: the search of ``freeze = "auto"`` (or the lr range test) without the final training."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch

from tlhub.auto.driver import search_auto
from tlhub.data.splits import make_splits
from tlhub.errors import UserError
from tlhub.interfaces import DataContext
from tlhub.model import ModelSpec, add_head, apply_states, build_backbone, group_layouts
from tlhub.plugins import get_registry
from tlhub.recipe import parse_recipe
from tlhub.recipe.plan import build_plan
from tlhub.training import lr_find
from tlhub.training.optim import build_optimizer
from tlhub.training.phase import StopFlag, _loader
from tlhub.training.trainer import log, make_datasets


@dataclass
class Setup:
    accelerator: object
    recipe: object
    registry: object
    backbone: object
    rng_state: torch.Tensor
    splits: object


def as_auto(recipe):
    """``recipe`` with one ``auto`` phase: its own, or its first phase made ``auto`` (later ones dropped)."""
    if any(p.freeze == "auto" for p in recipe.phases):
        return recipe
    raw = recipe.to_dict()
    first = dict(raw["phases"][0], freeze="auto", freeze_options={}, name=raw["phases"][0]["name"])
    raw["phases"] = [first]
    return parse_recipe(raw, path=recipe.path, base_dir=recipe.base_dir)


def setup(recipe) -> Setup:
    """What the trainer builds before its first phase: accelerator, backbone (seeded), splits."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    registry = get_registry()
    accelerator = Accelerator()
    if recipe.train.threads:
        torch.set_num_threads(recipe.train.threads)
    set_seed(recipe.train.seed)
    backbone = build_backbone(ModelSpec.from_recipe(recipe), registry)
    rng = torch.get_rng_state()
    splits = make_splits(recipe, registry, DataContext(Path(recipe.base_dir), recipe.data.split_seed, log=log.info))
    return Setup(accelerator, recipe, registry, backbone, rng, splits)


def search(recipe, out_dir: Path):
    """Run the search into ``out_dir`` (trials, auto_search.json/png); the SearchResult and
    the recipe with the auto phase replaced."""
    recipe = as_auto(recipe)
    s = setup(recipe)
    out_dir.mkdir(parents=True, exist_ok=True)
    plan = build_plan(recipe, s.registry, group_layouts(s.backbone))
    found = search_auto(s.accelerator, recipe, plan, s.registry, s.backbone, s.rng_state, s.splits, out_dir,
                        make_datasets, StopFlag())
    return found.result, dataclasses.replace(recipe, phases=tuple(p.settings for p in found.plan.phases))


def lr_range_test(recipe, index: int, plot_path: Path):
    """The lr range test of phase ``index`` from the pretrained backbone and a fresh head."""
    if not 0 <= index < len(recipe.phases):
        raise UserError(f"--phase: the recipe has {len(recipe.phases)} phase(s), numbered from 0")
    phase = recipe.phases[index]
    s = setup(recipe)
    if phase.freeze == "auto":  # the search tests the top half of the groups; so does this
        half = max(1, round(len(s.backbone.group_names) / 2))
        phase = dataclasses.replace(phase, freeze="top_k", freeze_options={"k": half})
    torch.set_rng_state(s.rng_state)
    model = add_head(s.backbone, ModelSpec.from_recipe(recipe), s.registry,
                     s.splits.task.num_outputs(s.splits.classes))
    datasets, collate, _ = make_datasets(model.backbone, recipe, s.splits)
    single = dataclasses.replace(recipe, phases=(phase,))
    plan = build_plan(single, s.registry, group_layouts(model.backbone)).phases[0]
    apply_states(model, list(plan.groups), plan.train_names)
    d = recipe.data
    loader = _loader(datasets["train"], d.batch_size, True, collate, d.workers, recipe.train.seed)
    found = lr_find.range_test(model, loader, build_optimizer(model, phase, plan.lrs),
                               s.splits.task.loss,  # configured: a regression's target scale
                               steps=lr_find.STEPS)
    lr_find.plot(found, plot_path, title=f"lr range test: phase {phase.name!r} ({phase.freeze})")
    return found
