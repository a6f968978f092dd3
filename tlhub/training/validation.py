"""Is the validation split big enough for the decisions made on it?

Accuracy measured on ``n`` validation examples has a standard error of ``sqrt(p (1 - p) / n)``; tlhub
uses the Agresti-Coull form (two successes and two failures added) so that an accuracy of 1.0 on
20 examples is not taken as exact. Trial
ranking, early stopping and best-epoch restore compare validation scores, so differences smaller
than about one standard error are noise. ``MAX_SE`` (0.03) is the most tlhub accepts for those
decisions: a split of 4 examples (standard error up to 0.25) ranks plans by chance. Another primary metric
has its own standard error (``Task.score_se``: Pearson's r through Fisher's z, macro F1 from each label's
positives), held to the same limit.

``freeze = "auto"`` enlarges a too-small validation split from the training split (stratified,
keeping at least ``MIN_TRAIN_KEPT`` of it) when that makes it precise enough; when it cannot, it moves
nothing and ranks trials by validation loss, which uses every example's confidence rather than a 0/1
outcome and so varies less. (Moving examples that still leave the split too noisy only costs training data:
on 240 photos, a fifth fewer training images cost the copied recipe 3.4 points of test accuracy,
benchmarks/RESULTS.md.)
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tlhub.data.splits import stratified_split
from tlhub.interfaces import Split
from tlhub.task import proportion_se

MAX_SE = 0.03
MIN_TRAIN_KEPT = 0.8
PLAIN_RUN_SE = 0.1  # runs that decide nothing on validation: warn only when it is nearly meaningless


def accuracy_se(p: float, n: int) -> float:
    """Standard error of an accuracy ``p`` measured on ``n`` examples (Agresti-Coull: p and n adjusted)."""
    return proportion_se(p, n)


def needed(p: float, se: float = MAX_SE) -> int:
    """The fewest examples for which the standard error of accuracy ``p`` is at most ``se``."""
    return needed_for(lambda n: accuracy_se(p, n), se)


def needed_for(se_at: Callable[[int], float], se: float = MAX_SE) -> int:
    """The fewest examples ``n`` for which ``se_at(n)``, a standard error falling as ``n`` grows, is at most ``se``."""
    lo, hi = 0, 1
    while se_at(hi) > se:
        lo, hi = hi, hi * 2
    while hi - lo > 1:  # bisect
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if se_at(mid) > se else (lo, mid)
    return hi


def warning(n: int, decisions: bool, p: float = 0.5) -> str:
    """A warning for the log when ``n`` validation examples are too few, else ''."""
    limit = MAX_SE if decisions else PLAIN_RUN_SE
    se = accuracy_se(p, n)
    if se <= limit:
        return ""
    what = ("early stopping / best-epoch choices" if decisions else "the validation accuracy shown")
    return (f"warning: the validation split has {n} example(s); accuracy near {p:.2f} is known only to +-{se:.3f} "
            f"(one standard error), too coarse for {what}. About {needed(p, limit)} examples would give "
            f"+-{limit:.2f}: raise data.val_split or give the source a larger validation split")


@dataclass
class ValPlan:
    """What ``freeze = "auto"`` does about the validation split before ranking trials."""

    n_before: int
    n_after: int
    moved: int          # examples moved from train to validation
    score: float        # the primary metric the standard error was computed at (the frozen-feature probe's)
    se_before: float
    se_after: float
    criterion: str      # "val_score" (the task's primary metric) or "val_loss"
    message: str
    metric: str = "accuracy"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def plan_validation(splits, score: float, seed: int):
    """(splits, ValPlan): the splits ``auto`` ranks on, enlarged from train when validation is too small to
    resolve ``score`` (the task's primary metric, ``Task.score_se``; accuracy where the splits carry no task)."""
    task = splits.task
    metric = task.primary_metric if task is not None else "accuracy"
    val_y = np.asarray(list(splits.val.labels))

    def se_at(n: int) -> float:
        return task.score_se(score, n, val_y) if task is not None else accuracy_se(score, n)
    n_val, n_train = len(splits.val), len(splits.train)
    at = f"{metric} {score:.2f}"
    se = se_at(n_val)
    if se <= MAX_SE:
        return splits, ValPlan(n_val, n_val, 0, score, se, se, "val_score",
                               f"validation: {n_val} examples, standard error {se:.3f} at {at}: "
                               f"enough to rank trials by validation {metric}", metric)
    want = needed_for(se_at) - n_val
    can = int(n_train * (1 - MIN_TRAIN_KEPT))
    move = want if want <= can else 0  # short of the target, the examples are worth more in training
    if move > 0:
        carve = task.carve if task is not None else stratified_split
        rest, moved = carve(splits.train, move / n_train, seed + 7919)
        splits = dataclasses.replace(splits, train=rest, val=Split(
            list(splits.val.items) + list(moved.items), list(splits.val.labels) + list(moved.labels)))
    n_after = len(splits.val)
    se_after = se_at(n_after)
    criterion = "val_score" if se_after <= MAX_SE else "val_loss"
    msg = (f"validation: {n_val} examples give a standard error of {se:.3f} at {at} (> {MAX_SE}); "
           + (f"moved {n_after - n_val} training examples into it ({n_after}, standard error {se_after:.3f})"
              if n_after > n_val else f"the training split is too small to lend the {want} examples that would "
              f"reach it, so none are moved")
           + ("" if criterion == "val_score" else
              f"; still too noisy, so trials are ranked by validation loss instead of {metric}"))
    return splits, ValPlan(n_val, n_after, n_after - n_val, score, se, se_after, criterion, msg, metric)
