"""What the built-in tasks share: applying an encoder to every split of a source's data, numpy metrics."""
from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

if TYPE_CHECKING:  # tlhub.interfaces imports torch; an ONNX model's predictions never do
    from tlhub.interfaces import SourceData, Split


def encode_splits(data: SourceData, classes: list[str], encode: Callable[[Any, str], Any]) -> SourceData:
    """``data`` with ``classes`` and every split's labels replaced by ``encode(label, split name)``."""
    out = {}
    for name in ("train", "val", "test"):
        split = getattr(data, name)
        out[name] = None if split is None else type(split)(list(split.items), [encode(y, name) for y in split.labels])
    return replace(data, classes=list(classes), raw=False, **out)


def all_labels(data: SourceData) -> list:
    return [y for name in ("train", "val", "test") if getattr(data, name) is not None
            for y in getattr(data, name).labels]


def as_array(targets) -> np.ndarray:
    """A split's targets as one array (``[n]`` ints, or ``[n, k]`` float32)."""
    if hasattr(targets, "numpy"):
        targets = targets.detach().cpu().numpy()
    return np.asarray(list(targets) if not isinstance(targets, np.ndarray) else targets)


def f1_scores(pred: np.ndarray, true: np.ndarray) -> tuple[np.ndarray, float]:
    """Per-column F1 of 0/1 arrays ``[n, k]`` (0 where a label is neither predicted nor true) and micro F1."""
    tp = (pred & true).sum(0).astype(float)
    fp = (pred & ~true).sum(0).astype(float)
    fn = (~pred & true).sum(0).astype(float)
    denom = 2 * tp + fp + fn
    per = np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)
    micro = 2 * tp.sum() / max(2 * tp.sum() + fp.sum() + fn.sum(), 1.0)
    return per, float(micro)


def f1_threshold(score: np.ndarray, positive: np.ndarray) -> float:
    """The decision threshold on a class's (or label's) probability ``sigmoid(score)`` that maximises its F1.

    Not the cut that scores best on these examples: on a validation split of a few hundred that cut is a
    step function of a handful of them. The scores are calibrated by Platt scaling (a logistic regression
    of the labels on the score, two parameters), and for calibrated probabilities the F1-optimal
    threshold is half the best F1 reachable (Lipton, Elkan and Narayanaswamy 2014); that cut is mapped back
    onto the model's own probability. 0.5 (the argmax) when the split has one class only or the calibration
    does not rank the positives higher.
    """
    from sklearn.linear_model import LogisticRegression
    score, positive = np.asarray(score, dtype=np.float64), np.asarray(positive, dtype=bool)
    if positive.all() or not positive.any():
        return 0.5
    fit = LogisticRegression(C=1e6).fit(score[:, None], positive)
    a, b = float(fit.coef_[0, 0]), float(fit.intercept_[0])
    if a <= 0:
        return 0.5
    order = np.argsort(-score, kind="stable")
    tp = np.cumsum(positive[order])
    best_f1 = float((2 * tp / (np.arange(1, len(score) + 1) + positive.sum())).max())
    cut = best_f1 / 2  # on the calibrated probability: a * score + b = logit(cut)
    raw = (np.log(cut / (1 - cut)) - b) / a
    return round(float(1 / (1 + np.exp(-raw))), 6)
