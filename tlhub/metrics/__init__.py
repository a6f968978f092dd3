"""Metrics through ``evaluate``: tlhub's own modules load by path (offline); other names go to the Hub."""
from __future__ import annotations

from pathlib import Path

from tlhub.errors import UserError

HERE = Path(__file__).parent
CORE = ("accuracy", "f1", "precision", "recall", "confusion_matrix")
_LOADED: dict = {}


def load_metric(name: str):
    import evaluate
    if name not in _LOADED:
        if name in CORE:
            _LOADED[name] = evaluate.load(str(HERE / name))
        else:
            try:
                _LOADED[name] = evaluate.load(name)
            except Exception as exc:
                raise UserError(f"eval.metrics: cannot load metric {name!r} through evaluate "
                                f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); tlhub's offline "
                                f"metrics are {', '.join(CORE)}") from None
    return _LOADED[name]


def compute_metrics(names, predictions, references, num_classes: int) -> dict:
    """Every requested metric plus the confusion matrix, as plain JSON-able values."""
    out: dict = {}
    for name in list(dict.fromkeys(list(names) + ["confusion_matrix"])):
        metric = load_metric(name)
        kwargs = {"num_classes": num_classes} if name in CORE else {}
        result = metric.compute(predictions=list(map(int, predictions)), references=list(map(int, references)),
                                **kwargs)
        out.update(result)
    return out


def float_scores(metrics: dict) -> dict:
    """The scalar scores of a metrics dict (not the confusion matrix, class names or counts)."""
    return {k: v for k, v in metrics.items() if isinstance(v, float)}


def format_scores(metrics: dict) -> str:
    """'accuracy 0.9868, f1 0.9867' for logs and the command line."""
    return ", ".join(f"{k} {v:.4f}" for k, v in float_scores(metrics).items())
