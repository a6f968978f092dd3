"""Built-in metrics: accuracy, macro f1/precision/recall and the confusion matrix (tlhub's offline modules)."""
from __future__ import annotations

import functools

from tlhub.hookspecs import hookimpl
from tlhub.registry import MetricSpec

_SUMMARIES = {
    "accuracy": "share of test examples whose top class is right",
    "f1": "macro-averaged F1 over the classes",
    "precision": "macro-averaged precision over the classes",
    "recall": "macro-averaged recall over the classes",
    "confusion_matrix": "counts of (true, predicted) class pairs (always computed)",
}


def _load(name: str):
    from tlhub.metrics import load_core  # builtins sit above the metric implementations
    return load_core(name)


@hookimpl
def register_metrics(register):
    for name, summary in _SUMMARIES.items():
        register(MetricSpec(name, summary, functools.partial(_load, name), num_classes=True))
