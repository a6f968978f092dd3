"""Successive halving over candidate plans, under a budget counted in FLOPs (see ``trials``).

Every rung gives each surviving candidate an equal share of what the rung may spend, converted into
epochs at that candidate's own cost per epoch: a head-only plan on cached features gets many cheap
epochs, full fine-tuning few dear ones. After each rung the best third (``ETA`` = 3) goes on; trials
that stopped early (no better validation score for ``PATIENCE`` epochs) keep their score but cost
nothing more. The rungs end when one candidate is left. Each rung runs its cheapest candidates first,
and a trial that would exceed the budget is not started. The winner is the best validation score of
all trials (ties: the rule's prior order).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from tlhub.auto.bound import saturated
from tlhub.auto.trials import CostModel, TrialState

ETA = 3
_OLD_NAMES = {"val_accuracy": "val_score"}  # auto_search.json before tasks (criterion, trial rows): today's name


def score(state: TrialState, criterion: str) -> tuple:
    """Higher is better: the validation score (the task's primary metric) then lower loss, or lower loss only
    (``val_loss``)."""
    if state.epochs == 0:
        return (-math.inf, -math.inf)
    if criterion == "val_loss":
        return (-state.loss, state.score)
    return (state.score, -state.loss)


def ranking(criterion: str) -> Callable[[TrialState], tuple]:
    """Sort key, best last: the validation score, ties broken by the rule's prior order."""
    return lambda s: (score(s, criterion), -s.candidate.prior)


def best(states: list[TrialState], criterion: str) -> TrialState:
    return max(states, key=ranking(criterion))


@dataclass
class Budget:
    """The search's allowance in FLOPs, and what it has spent."""

    limit: float
    spent: float = 0.0

    def affords(self, cost: float) -> bool:
        return self.spent + cost <= self.limit * (1 + 1e-9)


def run_trial(st: TrialState, total_epochs: int, costs: CostModel, budget: Budget,
              train: Callable[[TrialState, int], None]) -> None:
    """Train ``st`` up to ``total_epochs`` and charge what it ran (an early stop may end it sooner)."""
    before = st.epochs
    train(st, total_epochs)
    charge(st, before, costs, budget)


def charge(st: TrialState, epochs_before: int, costs: CostModel, budget: Budget) -> None:
    """Charge ``st`` for the epochs it trained since ``epochs_before``."""
    charged = costs.trial(st.candidate.k, st.epochs - epochs_before, st.steps)
    costs.filled.add(st.candidate.k)
    st.cost += charged
    budget.spent += charged


def _ran(st: TrialState, rung: int, ran: list, say: Callable[[str], None], budget: Budget) -> None:
    st.rung = rung
    st.status = "stopped early" if st.stopped else "ran"
    ran.append(st)
    say(trial_line(f"rung {rung + 1}", st, budget))


def trial_line(label: str, st: TrialState, budget: Budget) -> str:
    """The log line of one trial just run."""
    if not budget.limit:
        return f"  {label}: {st.candidate.name}"
    length = f"{st.epochs:>2} epoch(s)" + (f" of {st.steps} batches" if st.steps else "")
    return (f"  {label}: {st.candidate.name:<14} {length}  val score {st.score:.4f}  "
            f"loss {st.loss:.4f}  {st.seconds:6.1f} s  (budget {budget.spent / budget.limit:4.0%} spent)")


SETTLED = "skipped: the best trial is within the validation split's noise of a perfect score"


@dataclass(frozen=True)
class Noise:
    """How finely the validation split resolves the task's primary metric: ``se(score)`` is its standard error
    at that score on the split (``Task.score_se``), ``perfect`` its best value (``Task.perfect_score``)."""

    se: Callable[[float], float]
    perfect: float | None = 1.0

    def saturated(self, value: float) -> bool:
        return saturated(value, self.se(value), self.perfect)


def settled(states: list[TrialState], criterion: str, noise: Noise | None) -> bool:
    """No trial can beat the best so far by more than the validation split resolves (``bound.saturated``);
    ranked by the score only (by loss, a trial may still improve)."""
    tried = [s for s in states if s.epochs]
    return (criterion != "val_loss" and noise is not None and bool(tried)
            and noise.saturated(best(tried, criterion).score))


def successive_halving(states: list[TrialState], costs: CostModel, budget: Budget, max_epochs: int,
                       train: Callable[[TrialState, int], None], criterion: str = "val_score",
                       say: Callable[[str], None] = lambda m: None, min_epochs: int = 1,
                       noise: Noise | None = None,
                       side_by_side: Callable[[list[tuple[TrialState, int]]], None] | None = None
                       ) -> TrialState:
    """Run the rungs; ``train(state, total_epochs)`` trains a candidate up to that many epochs, and a
    candidate's first rung at least ``min_epochs`` (fewer only when the budget cannot pay for them).
    ``noise``: the validation split's resolution, for ``settled`` (None: never settled). ``side_by_side``: trains a
    rung's ``(state, total_epochs)`` at once (``tlhub.auto.parallel``); the rung is then planned first, each
    trial's estimated cost held against the budget, and charged what it ran afterwards."""
    alive = sorted(states, key=lambda s: s.candidate.prior)
    rung = 0
    while alive:
        rungs_left = max(1, math.ceil(math.log(len(alive), ETA))) if len(alive) > 1 else 1
        share = max(0.0, budget.limit - budget.spent) / rungs_left / len(alive)
        ran, planned, held = [], [], 0.0
        # cheapest first: when the rung's money runs out, the dearest trial is the one not started
        for st in sorted(alive, key=lambda s: (costs.trial_epoch(s.candidate.k), s.candidate.prior)):
            k = st.candidate.k
            if st.stopped or st.epochs >= max_epochs:
                ran.append(st)
                continue
            if not st.epochs and settled(states, criterion, noise):
                st.status = SETTLED
                continue
            least = max(1, min(min_epochs, max_epochs) - st.epochs)
            add = max(least, min(max_epochs - st.epochs, int(share // costs.trial_epoch(k))))
            cost = costs.trial(k, add)
            while add > 1 and not budget.affords(cost):
                add -= 1
                cost = costs.trial(k, add)
            if not budget.affords(cost) and (any(s.epochs for s in states) or planned):
                st.status = st.status if st.epochs else "skipped: over budget"
                continue
            if side_by_side is not None:
                planned.append((st, st.epochs + add))
                budget.spent += cost
                held += cost
                continue
            run_trial(st, st.epochs + add, costs, budget, train)
            _ran(st, rung, ran, say, budget)
        if planned:
            budget.spent -= held
            before = [st.epochs for st, _ in planned]
            side_by_side(planned)
            for (st, _), epochs in zip(planned, before):
                charge(st, epochs, costs, budget)
                _ran(st, rung, ran, say, budget)
        ranked = sorted(ran, key=ranking(criterion), reverse=True)
        keep = math.ceil(len(ranked) / ETA) if len(ranked) > 1 else 0
        for st in ranked[keep:]:
            if st.status in ("ran", "stopped early"):
                st.status = f"cut after rung {rung + 1}"
        progress = [s for s in ranked[:keep] if not s.stopped and s.epochs < max_epochs]
        # One survivor: a further rung would compare nothing, and its epochs at a constant lr are better
        # spent in the winner's anneal (benchmarks/RESULTS.md, the auto part).
        if keep <= 1 or not progress or not budget.affords(min(costs.trial(s.candidate.k, 1) for s in progress)):
            break
        alive, rung = ranked[:keep], rung + 1
    tried = [s for s in states if s.epochs]
    if not tried:
        raise RuntimeError("the search ran no trial")
    winner = best(tried, criterion)
    winner.status = "winner"
    return winner


# ---------------------------------------------------------------------- the record of a search

@dataclass
class TrialRow:
    plan: str
    freeze: str
    trainable_groups: list[str]
    lr: float
    epochs: int
    best_epoch: int
    val_score: float     # the task's primary metric (``SearchResult.metric``)
    val_loss: float
    seconds: float
    cost: float          # in units of the default plan's estimated cost
    rung: int
    status: str
    curve: list = field(default_factory=list)
    scheduler: str = "constant"   # "cosine": a one-shot lr-stage trial, its lr annealed over its epochs
    steps: int = 0                # batches per epoch when the trial trained a part of each epoch on its own

    @classmethod
    def of(cls, st: TrialState, group_names: list[str], unit: float) -> TrialRow:
        c = st.candidate
        groups = list(group_names[len(group_names) - c.k:]) if c.k else []
        freeze = "frozen" if c.k == 0 else "none" if c.k >= c.n_groups else f"top_k k={c.k}"
        plan = (c.name if st.scheduler == "constant" else f"{c.name} {st.scheduler}") + (f" ({st.tag})" if st.tag else "")
        return cls(plan, freeze, groups, c.lr, st.epochs, st.best_epoch, round(st.score, 4),
                   round(st.loss, 4) if math.isfinite(st.loss) else None, round(st.seconds, 2),
                   round(st.cost / unit, 4) if unit else 0.0, st.rung + 1, st.status, st.curve, st.scheduler,
                   st.steps)


@dataclass
class SearchResult:
    trials: list[TrialRow]
    winner: str
    phases: list[dict]        # what replaces the auto phase: ordinary [[phases]] tables
    criterion: str
    budget: dict              # auto_budget, limit and spent (default-plan units), estimates in seconds
    validation: dict | None
    rule: dict | None         # the four-case rule's case and plan (the prior)
    seconds: float = 0.0
    metric: str = "accuracy"  # the task's primary metric: what ``val_score`` is

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> SearchResult:
        """From ``auto_search.json``; keys of older tlhub versions (e.g. ``lr_find``) are ignored, and their
        accuracy names read as the score's (they searched classification only)."""
        known = {f.name for f in fields(cls)}
        data = dict(data, criterion=_OLD_NAMES.get(data.get("criterion"), data.get("criterion")))
        trials = [TrialRow(**{_OLD_NAMES.get(k, k): v for k, v in r.items()}) for r in data["trials"]]
        return cls(**{k: v for k, v in data.items() if k in known} | {"trials": trials})

    def table(self) -> str:
        name = f"val {self.metric}"  # the task's metric by its own name, as the learning curves label it
        w = max(8, len(name))
        head = f"{'plan':<19} {'trainable groups':<26} {'lr':>8} {'epochs':>6} {name:>{w}} {'val loss':>8} " \
               f"{'cost':>6} {'seconds':>8}  status"
        lines = [head, "-" * len(head)]
        for r in sorted(self.trials, key=lambda r: (r.status != "winner", -r.rung, -r.val_score)):
            groups = ", ".join(r.trainable_groups) if r.trainable_groups else "(head only)"
            if len(groups) > 26:
                groups = f"{len(r.trainable_groups)}: {r.trainable_groups[0]} .. {r.trainable_groups[-1]}"[:26]
            loss = f"{r.val_loss:8.4f}" if r.val_loss is not None else f"{'-':>8}"
            score = f"{r.val_score:{w}.4f}" if r.epochs else f"{'-':>{w}}"
            epochs = f"{r.steps}b" if r.steps and r.epochs == 1 else f"{r.epochs}x{r.steps}b" if r.steps else r.epochs
            lines.append(f"{r.plan:<19} {groups:<26} {r.lr:8.2g} {epochs:>6} {score} {loss} {r.cost:6.2f} "
                         f"{r.seconds:8.1f}  {r.status}")
        if any(r.steps for r in self.trials):
            lines.append("(Nb: an epoch of N batches, what that trial's share of the budget paid for)")
        return "\n".join(lines)


def plot(result: SearchResult, path: str | Path) -> Path:
    """Validation score against cost (default-plan units) per trial, the winner marked."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    runs = [r for r in result.trials if r.epochs]
    colours = {"frozen": "#2e7d32", "none": "#6a1b9a"}
    costs, scores = [r.cost for r in runs] or [0.0], [r.val_score for r in runs] or [0.0]
    middle, x_span, y_span = (min(costs) + max(costs)) / 2, max(costs) - min(costs), max(scores) - min(scores)
    placed = []
    for r in sorted(runs, key=lambda r: r.cost):
        c = colours.get(r.freeze, "#1565c0")
        ax.scatter(r.cost, r.val_score, s=20 + 12 * r.epochs, color=c, alpha=0.75, edgecolor="white")
        length = f"{r.epochs} x {r.steps} batches" if r.steps else f"{r.epochs} ep"
        right = r.cost > middle  # labels of the dearer half go left of their point, not over the legend
        # a label that would print over a neighbour's (same score, nearby cost) goes one line lower
        near = sum(abs(r.val_score - y) <= 0.03 * y_span and abs(r.cost - x) <= 0.3 * x_span for x, y in placed)
        placed.append((r.cost, r.val_score))
        ax.annotate(f"{r.plan} ({length})", (r.cost, r.val_score), fontsize=7, xytext=(-4 if right else 4, 3 - 9 * near),
                    textcoords="offset points", ha="right" if right else "left")
    win = next(r for r in result.trials if r.status.startswith("winner"))
    ax.scatter(win.cost, win.val_score, s=260, facecolor="none", edgecolor="#c62828", lw=2, label=f"winner: {win.plan}")
    for label, c in (("head only", "#2e7d32"), ("top k groups", "#1565c0"), ("all groups", "#6a1b9a")):
        ax.scatter([], [], color=c, label=label)
    ax.set_xlabel("cost of the trial (x the default plan's estimated cost)")
    ax.set_ylabel(f"validation {result.metric} of the weights kept" + (" (ranked by val loss)" if result.criterion == "val_loss" else ""))
    ax.set_title(f"freeze = \"auto\": {len(runs)} trials, winner {win.plan}")
    ax.margins(x=0.3, y=0.15)  # room for the labels beside the outermost points
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    ax.grid(alpha=0.3)
    path = Path(path)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
