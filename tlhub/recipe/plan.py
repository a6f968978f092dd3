"""The run plan: everything a run will do per phase, resolved and checked before any data or weight moves.

``build_plan(recipe, registry)`` learns the backbone's groups from its architecture alone (built on
PyTorch's meta device, no weights, no data), then resolves per phase the freeze policy and its options,
the trainable and frozen groups, each group's BatchNorm mode, the learning rate of every optimizer group
(after ``lr_mult`` and ``layer_decay``) and where the frozen-prefix cache enters. ``tlhub validate``
reports its errors, ``tlhub show --plan`` prints it, and the trainer applies it as it is.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass

from tlhub.errors import UserError, did_you_mean
from tlhub.model.assemble import ModelSpec, backbone_layouts
from tlhub.model.transfer import Entry
from tlhub.model.freezing import GroupLayout, GroupState, format_audit, frozen_prefix, resolve_groups


@dataclass(frozen=True)
class CacheEntry:
    """Where cached tensors enter the model: after ``groups`` frozen groups, or as pooled features."""

    groups: int  # 0: no cache
    pooled: bool
    note: str

    @property
    def entry(self) -> Entry:
        """Where the model takes the cached inputs (``TransferModel.forward``'s ``entry``)."""
        return Entry(self.groups, self.pooled)


@dataclass(frozen=True)
class PhasePlan:
    index: int
    name: str
    freeze: str
    freeze_options: dict
    epochs: int
    groups: tuple[GroupState, ...]
    train_names: frozenset[str]  # backbone parameters that train (BatchNorm 'frozen' excluded)
    lrs: dict[str, float]  # optimizer group (backbone group name or "head") -> learning rate
    cache: CacheEntry
    head_params: int | None = None  # known once the number of classes is (at run time)

    def table(self) -> str:
        return format_audit(list(self.groups), self.head_params, self.lrs)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["train_names"] = sorted(self.train_names)
        d["groups"] = [dict(asdict(g), state=g.state) for g in self.groups]
        return d


@dataclass(frozen=True)
class RunPlan:
    backbone: str
    group_names: tuple[str, ...]
    phases: tuple[PhasePlan | None, ...]  # None: a freeze = "auto" phase, planned by the search at run time
    modality: str = ""  # of the data source's data: it builds the datasets and reads inputs (tlhub.modality)
    task: str = "classification"  # loss, scores, predictions (tlhub.task)

    def to_dict(self) -> dict:
        return {"backbone": self.backbone, "modality": self.modality, "task": self.task,
                "groups": list(self.group_names),
                "phases": [p.to_dict() if p else {"freeze": "auto"} for p in self.phases]}

    def format(self) -> str:
        out = [f"plan: backbone {self.backbone!r}, {len(self.group_names)} groups; {self.modality or '?'} data; "
               f"task {self.task!r}"]
        for i, p in enumerate(self.phases):
            if p is None:
                out.append(f"phase {i + 1} : freeze = \"auto\" (chosen by measuring at the start of the run)")
                continue
            opts = f" {p.freeze_options}" if p.freeze_options else ""
            out += [f"phase {i + 1} {p.name!r}: {p.epochs} epoch(s), freeze {p.freeze}{opts}", p.table(),
                    f"  cache: {p.cache.note}"]
        return "\n".join(out)


def learning_rates(phase, states: list[GroupState]) -> dict[str, float]:
    """lr per optimizer group: base lr x lr_mult[group] x layer_decay ** (distance from the top)."""
    n = len(states)
    lrs = {g.name: phase.lr * phase.lr_mult.get(g.name, 1.0) * phase.layer_decay ** (n - i)
           for i, g in enumerate(states) if g.trainable}
    lrs["head"] = phase.lr * phase.lr_mult.get("head", 1.0)
    return lrs


def cache_entry(recipe, states: list[GroupState], staged: bool = True) -> CacheEntry:
    k, n = frozen_prefix(states), len(states)
    if not recipe.train.cache:
        return CacheEntry(0, False, "off (train.cache = false)")
    if k == 0:
        return CacheEntry(0, False, "none (the first group trains)")
    if k < n and not staged:
        return CacheEntry(0, False, NOT_STAGED)
    pooled = Entry.after_frozen(k, n).pooled
    what = "pooled features" if pooled else f"the state after {k} of {n} frozen groups ({states[k - 1].name})"
    if recipe_augments(recipe):
        return CacheEntry(k, pooled, f"{what} for the validation split; the training split is not cached "
                                     f"(random augmentation changes the input every epoch)")
    return CacheEntry(k, pooled, f"{what}, computed once per phase; epochs train only the rest")


NOT_STAGED = ("none (this backbone runs its groups in one pass, so a frozen prefix saves no compute; only a "
              "fully frozen backbone is cached)")


def recipe_augments(recipe) -> bool:
    from tlhub.data.images import augment_is_random
    return augment_is_random(recipe.data.augment)


def _bad_groups(where: str, keys, names: list[str], allowed_extra=()) -> list[str]:
    known = list(names) + list(allowed_extra)
    return [f"{where}: the backbone has no group {k!r}{did_you_mean(str(k), known)} "
            f"(groups: {', '.join(names)}{', head' if allowed_extra else ''})" for k in keys if k not in known]


def unknown_freeze_policy(name: str, registry) -> str:
    """The message for an unknown ``freeze``: "auto" (the search, not a registered policy) is a choice too."""
    from tlhub.registry import unknown_message
    return unknown_message("freeze-policies", name, {**registry.items["freeze-policies"], "auto": None},
                           registry.provider)


def plan_phase(recipe, registry, index: int, phase, layouts: list[GroupLayout], errors: list[str]) -> PhasePlan | None:
    where = f"phases.{index}"
    names = [g.name for g in layouts]
    errors += _bad_groups(f"{where}.lr_mult", phase.lr_mult, names, ("head",))
    errors += _bad_groups(f"{where}.bn_groups", phase.bn_groups, names)
    bad = [f"{where}.lr_mult.{k}: must be a finite number >= 0, got {v!r}" for k, v in phase.lr_mult.items()
           if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0]
    errors += bad
    if phase.freeze not in registry.items["freeze-policies"]:
        errors.append(f"{where}.freeze: {unknown_freeze_policy(phase.freeze, registry)}")
        return None
    try:
        spec, opts = registry.resolve("freeze-policies", phase.freeze, phase.freeze_options, f"{where}.freeze_options")
        trainable = spec.build(opts).trainable([(g.name, list(g.params)) for g in layouts])
    except UserError as exc:
        errors += [m if m.startswith(where) else f"{where}.{m}" if m.startswith("freeze_options")
                   else f"{where}.freeze_options: {m}" for m in (exc.errors or [str(exc)])]
        return None
    if phase.freeze != "frozen" and not trainable:
        errors.append(f"{where}.freeze: policy {phase.freeze!r} with {opts} trains no backbone parameter; "
                      f"write freeze = \"frozen\" to train only the head")
    if bad:
        return None
    states, train_names = resolve_groups(layouts, set(trainable), phase.bn,
                                         {k: v for k, v in phase.bn_groups.items() if k in names})
    return PhasePlan(index, phase.name, phase.freeze, opts, phase.epochs, tuple(states), frozenset(train_names),
                     learning_rates(phase, states), cache_entry(recipe, states, all(g.staged for g in layouts)))


_LAYOUTS: dict[tuple, list[GroupLayout]] = {}


def cached_layouts(spec: ModelSpec, registry) -> list[GroupLayout]:
    """``backbone_layouts`` once per backbone, options and registry (validate, show and run all ask)."""
    key = (id(registry), spec.backbone, json.dumps(spec.backbone_options, sort_keys=True, default=str),
           spec.base_dir)
    if key not in _LAYOUTS:
        _LAYOUTS[key] = backbone_layouts(spec, registry)
    return _LAYOUTS[key]


def build_plan(recipe, registry, layouts: list[GroupLayout] | None = None) -> RunPlan:
    """The plan of ``recipe``; ``UserError`` lists every problem at once (bad group names with the real ones)."""
    if layouts is None:
        layouts = cached_layouts(ModelSpec.from_recipe(recipe), registry)
    errors: list[str] = []
    phases = [None if p.freeze == "auto" else plan_phase(recipe, registry, i, p, layouts, errors)
              for i, p in enumerate(recipe.phases)]
    if errors:
        raise UserError(errors=errors)
    source = registry.items["data-sources"].get(recipe.data.source)
    return RunPlan(recipe.model.backbone, tuple(g.name for g in layouts), tuple(phases),
                   source.modality if source else "", recipe.model.task)
