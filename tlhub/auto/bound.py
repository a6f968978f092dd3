"""The auto phase's cost bound: at most ``TIMES`` x what the shipped recipe of the same modality would cost on the
same data, on this backbone, at this image size.

The shipped recipe (``SHIPPED``: a head phase on cached features, then the top part of the backbone for a few
epochs) is costed with the search's own ``CostModel``, so the bound and the search are counted in one unit.
That unit is measured, not only estimated: the head phase calibrates the seconds per FLOP of work on frozen
features (cache fills, head epochs), and the first trial that trains backbone groups calibrates the work of
training them (``deep_factor``: backward passes, activations kept for them, no cache), which FLOPs alone
misjudge most at high resolution. The bound is recomputed then, before any further trial is charged.

What meets the bound is the search's own rules: fewer epochs per trial and fewer trials (each rung's share of
a smaller budget; the dearest, i.e. the deepest trials at high resolution, are the first not started), and
no trial at all where the incumbent's validation score is within the split's noise of its perfect value
(``saturated``):
nothing could beat it by more than the validation split resolves.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from tlhub.recipe.plan import COST_TIMES as TIMES  # the bound the plan's search space states


@dataclass(frozen=True)
class Reference:
    """A shipped recipe: a head phase of ``head_epochs`` at ``head_lr``, then the top ``tune_groups`` of its
    backbone's ``groups`` for ``tune_epochs`` at ``tune_lr`` with the other settings ``tune`` (optimizer,
    schedule, warm-up, ...). tests/test_auto_bound.py checks these against the recipe files. The auto phase trains
    exactly this first, as the incumbent (``tlhub.auto.driver``): a user copying the recipe would get it."""

    recipe: str
    head_epochs: int
    tune_groups: int
    groups: int
    tune_epochs: int
    head_lr: float = 1e-3
    tune_lr: float = 1e-4
    tune: tuple = ()  # (key, value) pairs of the fine-tuning phase's table beyond freeze, epochs and lr

    def depth(self, n_groups: int) -> int:
        """The same share of this backbone's ``n_groups``, at least one group."""
        return max(1, min(n_groups, round(n_groups * self.tune_groups / self.groups)))

    def describe(self, n_groups: int) -> str:
        return (f"{self.recipe}: head {self.head_epochs} epoch(s), then the top {self.tune_groups} of "
                f"{self.groups} groups for {self.tune_epochs} epoch(s), i.e. the top {self.depth(n_groups)} of "
                f"{n_groups} here")


SHIPPED = {
    "image": Reference("recipes/mnist5k_lite0.toml", head_epochs=2, tune_groups=4, groups=9, tune_epochs=5,
                       head_lr=3e-3, tune_lr=5e-4, tune=(("scheduler", "cosine"), ("warmup", 0.1), ("bn", "eval"))),
    "text": Reference("recipes/sentiment_minilm.toml", head_epochs=4, tune_groups=6, groups=7, tune_epochs=1,
                      head_lr=1e-3, tune_lr=1e-4, tune=(("optimizer", "adamw"), ("weight_decay", 0.01),
                                                         ("scheduler", "linear"), ("warmup", 0.1))),
}


def reference_cost(ref: Reference, costs) -> float:
    """The shipped recipe's cost on this data in ``costs``' unit: its head phase, then its fine-tuning phase
    (whole epochs, its own cache fill)."""
    n = len(costs.group_flops)
    return costs.fill(0) + ref.head_epochs * costs.epoch(0) + costs.phase(ref.depth(n), ref.tune_epochs)


def deep_factor(seconds: float, fixed_flops: float, deep_flops: float, seconds_per_flop: float) -> float:
    """How much dearer a FLOP of training backbone groups is than one of the head phase's work, from a trial
    that took ``seconds`` for ``fixed_flops`` of head-phase-like work (its cache fill) and ``deep_flops`` of
    training. Rounded *up* to a power of sqrt(2): the bound errs on the cheap side, and a rerun whose timing
    differs by a few percent plans the same trials. 1 when nothing can be read from the figures."""
    if seconds <= 0 or deep_flops <= 0 or seconds_per_flop <= 0:
        return 1.0
    raw = (seconds - fixed_flops * seconds_per_flop) / (deep_flops * seconds_per_flop)
    raw = min(64.0, max(0.25, raw))
    return 2 ** (math.ceil(2 * math.log2(raw) - 1e-9) / 2)


def saturated(score: float, se: float, perfect: float | None = 1.0) -> bool:
    """The incumbent's validation score is within one standard error ``se`` of the metric's ``perfect`` value
    (``Task.perfect_score``; 1 for accuracy): a trial that beats it could not be told apart from it on this
    split, so it need not run. Never for a metric without a perfect value."""
    return perfect is not None and se > 0 and score <= perfect and perfect - score < se


def shipped_for(backbone) -> "Reference":
    """The shipped recipe a user of this backbone would copy: the one for its input kind (``Backbone.modality``:
    an audio plugin feeding image backbones copies the image recipe), the image one for a kind none ships for."""
    return SHIPPED.get(getattr(backbone, "modality", ""), SHIPPED["image"])


@dataclass(frozen=True)
class Limit:
    """What the whole auto phase may cost (``total``, in the cost model's unit) and what set it."""

    total: float
    reference: float   # the shipped recipe's cost on this data
    by: str            # "shipped recipe", "auto_budget" or "auto_minutes"


def limit(costs, ref: Reference, auto_budget_cost: float, auto_minutes: float = 0.0) -> Limit:
    """The least of: ``TIMES`` x the shipped recipe, ``auto_budget`` x the default plan (``auto_budget_cost``),
    and ``auto_minutes`` at the measured seconds per FLOP."""
    ref_cost = reference_cost(ref, costs)
    options = [(TIMES * ref_cost, "shipped recipe"), (auto_budget_cost, "auto_budget")]
    if auto_minutes and costs.seconds_per_flop:
        options.append((auto_minutes * 60 / costs.seconds_per_flop, "auto_minutes"))
    total, by = min(options, key=lambda o: o[0])
    return Limit(total, ref_cost, by)


def describe(lim: Limit, seconds) -> str:
    """The log line of the bound; ``seconds``: the cost model's unit to seconds."""
    return (f"auto: cost bound: the whole auto phase may cost ~{seconds(lim.total):.0f} s, set by "
            f"{lim.by} ({TIMES:g} x the shipped recipe: ~{seconds(TIMES * lim.reference):.0f} s)")


def cuts(states, min_epochs: int, lim: Limit) -> str:
    """The log line of what the search left out to stay within ``lim``: trials not run (by reason) and first
    rungs shorter than ``min_epochs``."""
    skipped: dict[str, list[str]] = {}
    for st in states:
        if st.status.startswith("skipped"):
            skipped.setdefault(st.status.removeprefix("skipped: "), []).append(st.candidate.name)
    short = [st.candidate.name for st in states if 0 < st.epochs < min_epochs and st.candidate.k]
    parts = [f"{len(names)} trial(s) not run ({why}: {', '.join(names)})" for why, names in skipped.items()]
    if short:
        parts.append(f"{len(short)} trial(s) trained fewer than {min_epochs} epoch(s) ({', '.join(short)})")
    return f"auto: within the bound (set by {lim.by}): " + ("; ".join(parts) if parts else "nothing cut")


@dataclass
class Calibration:
    """Recomputes the limit once the first trial that trains backbone groups has measured them (``after``).

    ``default_cost()``: the default plan's cost now (``auto_budget`` counts in it); ``agree``: the main process's
    value on every process (their timings differ, their decisions must not)."""

    costs: object
    ref: Reference
    auto_budget: float
    auto_minutes: float
    default_cost: object
    agree: object
    lim: Limit | None = None
    measured: str = ""  # the trial that measured it

    def __post_init__(self):
        self.lim = limit(self.costs, self.ref, self.auto_budget * self.default_cost(), self.auto_minutes)

    def after(self, st, epochs_before: int, seconds_before: float, fill: float, share: float = 1.0) -> bool:
        """After ``st`` trained (it had ``epochs_before`` epochs and ``seconds_before`` s; ``fill``: its cache fill
        cost, 0 if already filled; ``share``: the part of the machine it had, 1/N beside N-1 other trials): True
        when it measured the factor and ``lim`` changed."""
        c = self.costs
        if self.measured or not st.candidate.k or st.epochs <= epochs_before:
            return False
        self.measured = st.candidate.name
        work = (st.epochs - epochs_before) * c.trial_epoch(st.candidate.k, st.steps)
        c.deep = self.agree(deep_factor(share * (st.seconds - seconds_before), fill, work, c.seconds_per_flop))
        self.lim = limit(c, self.ref, self.auto_budget * self.default_cost(), self.auto_minutes)
        return True
