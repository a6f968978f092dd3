"""The run plan: everything a run will do per phase, resolved and checked before any data or weight moves.

``build_plan(recipe, registry)`` learns the backbone's groups from its architecture alone (built on
PyTorch's meta device, no weights, no data), then resolves per phase the freeze policy and its options,
the trainable and frozen groups, each group's BatchNorm mode, the learning rate of every optimizer group
(after ``lr_mult`` and ``layer_decay``) and where the frozen-prefix cache enters. ``tlhub validate``
builds it once and reports its errors, ``tlhub show --plan`` prints it, and the trainer runs it as it is: every
phase's settings (optimizer, lr, schedule, epochs, early stopping) are read from its ``PhasePlan``, never from the
recipe again. A ``freeze = "auto"`` phase is planned as its ``SearchSpace``; the search's outcome replaces it by
ordinary phases in a ``Revision`` of the plan (``RunPlan.revise``), recorded in plan.json.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, replace
from typing import Any

from tlhub.errors import UserError, did_you_mean
from tlhub.modality import DataSettings
from tlhub.model.assemble import ModelSpec, backbone_layouts
from tlhub.model.transfer import Entry
from tlhub.model.freezing import GroupLayout, GroupState, format_audit, frozen_prefix, resolve_groups
from tlhub.registry import unknown_message


@dataclass(frozen=True)
class CacheEntry:
    """Where cached tensors enter the model: after ``groups`` frozen groups, or as pooled features."""

    groups: int  # 0: no cache
    pooled: bool
    note: str
    train: bool = True  # the training split is cached too (False: its inputs change every epoch)
    what: str = ""  # what is cached, in words

    @property
    def entry(self) -> Entry:
        """Where the model takes the cached inputs (``TransferModel.forward``'s ``entry``)."""
        return Entry(self.groups, self.pooled)


# The auto search's space. Candidates train the head only, or the top quarter, half or all of the backbone's
# groups at the rule's centre lr x these factors (half a decade either side), and the whole auto phase costs
# at most COST_TIMES x the shipped recipe a user would copy (issue 31: never more than twice its time).
LR_FACTORS = (1 / 3, 1.0, 3.0)
COST_TIMES = 2.0


def search_depths(n_groups: int) -> tuple[int, ...]:
    """The candidates' numbers of trained top groups besides the head-only one: a quarter, half, all."""
    return tuple(sorted({max(1, round(n_groups / 4)), max(1, round(n_groups / 2)), n_groups}))


@dataclass(frozen=True)
class SearchSpace:
    """What a ``freeze = "auto"`` phase chooses from; the centre lr is measured (the four-case rule's probe)."""

    depths: tuple[int, ...]  # trained top groups per candidate; 0 (the head alone) is always one
    lr_factors: tuple[float, ...]
    auto_budget: float  # x the default plan's cost
    auto_minutes: float  # 0: no cap
    cost_times: float  # x the shipped recipe's cost

    def describe(self, names: tuple[str, ...], lr: float) -> str:
        n = len(names)
        tops = ", ".join(f"top {k} ({names[n - k]}..{names[-1]})" for k in self.depths)
        cap = f", {self.auto_minutes:g} minutes" if self.auto_minutes else ""
        lrs = ", ".join(f"{lr / 10 * f:.2g}" for f in self.lr_factors)
        return (f"search: the head alone (lr {lr:g}), or {tops} of {n} groups, each at lr {lrs} (the head's / 10, "
                f"half a decade either side); successive halving on the task's validation "
                f"score; cost at most the least of {self.cost_times:g} x the shipped recipe, {self.auto_budget:g} x "
                f"the default plan{cap}")


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
    settings: Any = None  # the phase's resolved [[phases]] table (tlhub.recipe.schema.PhaseCfg): what trains
    search: SearchSpace | None = None  # freeze = "auto": replaced by the search's phases before it runs
    head_params: int | None = None  # known once the number of classes is (at run time)

    @property
    def is_auto(self) -> bool:
        return self.search is not None

    def table(self) -> str:
        return format_audit(list(self.groups), self.head_params, self.lrs)

    def describe(self) -> str:
        """The phase's training in one line, as ``run_phase`` logs it."""
        s = self.settings
        extra = [f"warm-up {s.warmup:g}" if s.warmup else "", f"weight decay {s.weight_decay:g}" if s.weight_decay
                 else "", "lr range test" if s.lr_find else "", f"{s.epoch_steps} batches an epoch" if s.epoch_steps
                 else "", f"early stop {s.early_stop}" if s.early_stop else "",
                 "restore best" if s.restore_best else ""]
        opts = f" {self.freeze_options}" if self.freeze_options else ""
        return (f"{self.epochs} epoch(s), {s.optimizer} lr {s.lr:g}, {s.scheduler} schedule"
                + "".join(f", {e}" for e in extra if e) + f"; freeze {self.freeze}{opts}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["train_names"] = sorted(self.train_names)
        d["groups"] = [dict(asdict(g), state=g.state) for g in self.groups]
        return d


@dataclass(frozen=True)
class Revision:
    """A change of the plan at run time: the auto phase ``phase`` became ``phases`` because of ``reason``."""

    phase: int
    name: str
    phases: tuple[str, ...]
    reason: str


@dataclass(frozen=True)
class RunPlan:
    backbone: str
    group_names: tuple[str, ...]
    phases: tuple[PhasePlan, ...]
    modality: str = ""  # of the data source's data: it builds the datasets and reads inputs (tlhub.modality)
    task: str = "classification"  # loss, scores, predictions (tlhub.task)
    revisions: tuple[Revision, ...] = ()

    @property
    def searched(self) -> bool:
        """A phase is still ``freeze = "auto"``: the search must revise the plan before it runs."""
        return any(p.is_auto for p in self.phases)

    def revise(self, index: int, phases: list[PhasePlan], reason: str) -> "RunPlan":
        """The plan with phase ``index`` replaced by ``phases`` (their ``index`` set to their place)."""
        new = [*self.phases[:index], *phases, *self.phases[index + 1:]]
        new = tuple(replace(p, index=i) for i, p in enumerate(new))
        rev = Revision(index, self.phases[index].name, tuple(p.name for p in phases), reason)
        return replace(self, phases=new, revisions=self.revisions + (rev,))

    def to_dict(self) -> dict:
        return {"backbone": self.backbone, "modality": self.modality, "task": self.task,
                "groups": list(self.group_names), "phases": [p.to_dict() for p in self.phases],
                "revisions": [asdict(r) for r in self.revisions]}

    def format(self) -> str:
        out = [f"plan: backbone {self.backbone!r}, {len(self.group_names)} groups; {self.modality or '?'} data; "
               f"task {self.task!r}"]
        for i, p in enumerate(self.phases):
            if p.is_auto:
                out += [f"phase {i + 1} {p.name!r}: freeze = \"auto\" ({p.settings.optimizer}); the phases it becomes "
                        f"are chosen by measuring at the start of the run",
                        f"  {p.search.describe(self.group_names, p.settings.lr)}"]
                continue
            out += [f"phase {i + 1} {p.name!r}: {p.describe()}", p.table(), f"  cache: {p.cache.note}"]
        for r in self.revisions:
            out.append(f"revised: phase {r.phase + 1} {r.name!r} became {', '.join(map(repr, r.phases))} ({r.reason})")
        return "\n".join(out)


def learning_rates(phase, states: list[GroupState]) -> dict[str, float]:
    """lr per optimizer group: base lr x lr_mult[group] x layer_decay ** (distance from the top)."""
    n = len(states)
    lrs = {g.name: phase.lr * phase.lr_mult.get(g.name, 1.0) * phase.layer_decay ** (n - i)
           for i, g in enumerate(states) if g.trainable}
    lrs["head"] = phase.lr * phase.lr_mult.get("head", 1.0)
    return lrs


def cache_entry(recipe, states: list[GroupState], staged: bool = True, augments: bool = False) -> CacheEntry:
    """Where the frozen-prefix cache enters; ``augments``: the modality's training inputs change every epoch
    (``Modality.augments``), so only the validation split is cached."""
    k, n = frozen_prefix(states), len(states)
    if not recipe.train.cache:
        return CacheEntry(0, False, "off (train.cache = false)")
    if k == 0:
        return CacheEntry(0, False, "none (the first group trains)")
    if k < n and not staged:
        return CacheEntry(0, False, NOT_STAGED)
    pooled = Entry.after_frozen(k, n).pooled
    what = "pooled features" if pooled else f"the state after {k} of {n} frozen groups ({states[k - 1].name})"
    if augments:
        return CacheEntry(k, pooled, f"{what} for the validation split; the training split is not cached "
                                     f"(random augmentation changes the input every epoch)", False, what)
    return CacheEntry(k, pooled, f"{what}, computed once per phase; epochs train only the rest", True, what)


NOT_STAGED = ("none (this backbone runs its groups in one pass, so a frozen prefix saves no compute; only a "
              "fully frozen backbone is cached)")


def _bad_groups(where: str, keys, names: list[str], allowed_extra=()) -> list[str]:
    known = list(names) + list(allowed_extra)
    return [f"{where}: the backbone has no group {k!r}{did_you_mean(str(k), known)} "
            f"(groups: {', '.join(names)}{', head' if allowed_extra else ''})" for k in keys if k not in known]


def unknown_freeze_policy(name: str, registry) -> str:
    """The message for an unknown ``freeze``: "auto" (the search, not a registered policy) is a choice too."""
    return unknown_message("freeze-policies", name, {**registry.items["freeze-policies"], "auto": None},
                           registry.provider)


def plan_auto(index: int, phase, layouts: list[GroupLayout]) -> PhasePlan:
    """A ``freeze = "auto"`` phase: its search space; groups, lrs and cache are the search's to decide."""
    space = SearchSpace(search_depths(len(layouts)), LR_FACTORS, phase.auto_budget, phase.auto_minutes, COST_TIMES)
    return PhasePlan(index, phase.name, "auto", {}, phase.epochs, (), frozenset(), {},
                     CacheEntry(0, False, "decided by the search (per candidate depth)"), phase, space)


def plan_phase(recipe, registry, index: int, phase, layouts: list[GroupLayout], errors: list[str],
               augments: bool = False) -> PhasePlan | None:
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
                     learning_rates(phase, states),
                     cache_entry(recipe, states, all(g.staged for g in layouts), augments), phase)


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
    source = registry.items["data-sources"].get(recipe.data.source)
    augments = _augments(recipe, registry, source)
    phases = [plan_auto(i, p, layouts) if p.freeze == "auto" else
              plan_phase(recipe, registry, i, p, layouts, errors, augments) for i, p in enumerate(recipe.phases)]
    if errors:
        raise UserError(errors=errors)
    return RunPlan(recipe.model.backbone, tuple(g.name for g in layouts), tuple(phases),
                   source.modality if source else "", recipe.model.task)


def _augments(recipe, registry, source) -> bool:
    """Whether the data's modality changes training inputs every epoch (then the training split is not cached)."""
    if source is None or source.modality not in registry.items["modalities"]:
        return False  # reported by validate
    return registry.modality(source.modality).augments(DataSettings.of(recipe))
