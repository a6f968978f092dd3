"""Metrics through ``evaluate``: tlhub's own modules load by path (offline); other names go to the Hub."""
from __future__ import annotations

import os
from pathlib import Path

from tlhub.errors import UserError, did_you_mean

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


def _evaluate_module_cache() -> Path:
    """Where ``evaluate`` keeps metric scripts it has loaded (its config's rule, without importing it)."""
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    modules = os.environ.get("HF_MODULES_CACHE") or os.path.join(home, "modules")
    return Path(modules).expanduser() / "evaluate_modules" / "metrics"


def local_metrics() -> list[str]:
    """Metric names that load without the network: tlhub's own and those in evaluate's module cache."""
    names = [m for m in CORE if m != "confusion_matrix"]
    cache = _evaluate_module_cache()
    if cache.is_dir():
        for d in sorted(cache.iterdir()):
            owner, sep, metric = d.name.partition("--")
            if sep and d.is_dir() and any(len(h.name) == 64 and (h / f"{metric}.py").is_file() for h in d.iterdir()):
                names.append(metric if owner.startswith("evaluate-") else f"{owner}/{metric}")
    return list(dict.fromkeys(names))


def _is_script(name: str) -> bool:
    """A metric given by path: a script, or a folder holding a script of the folder's name (evaluate's rule)."""
    p = Path(name).expanduser()
    return (p.suffix == ".py" and p.is_file()) or (p / f"{p.name}.py").is_file()


def metric_errors(names) -> list[str]:
    """Errors for ``eval.metrics`` names that cannot be loaded here, found without going to the Hub."""
    known = local_metrics()
    bad = [n for n in names if n not in known and n != "confusion_matrix" and not _is_script(n)]
    return [f"eval.metrics: unknown metric {n!r}{did_you_mean(n, known)}; metrics that load offline: "
            f"{', '.join(known)} (another evaluate metric must be in evaluate's cache -- load it once with "
            f"the network -- or be given as the path of its script)" for n in bad]


def compute_metrics(names, predictions, references, num_classes: int) -> dict:
    """Every requested metric plus the confusion matrix, as plain JSON-able values."""
    out: dict = {}
    for name in list(dict.fromkeys(list(names) + ["confusion_matrix"])):
        metric = load_metric(name)
        kwargs = {"num_classes": num_classes} if name in CORE else {}
        result = metric.compute(predictions=list(map(int, predictions)), references=list(map(int, references)),
                                **kwargs)
        out.update({str(k): plain(v) for k, v in (result or {}).items()})
    return out


def plain(value):
    """A metric's value as JSON can write it: numpy scalars and arrays (``np.float32`` from a custom metric)
    become Python numbers and lists, anything else unknown its text -- never an error after training."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    tolist = getattr(value, "tolist", None)  # numpy scalars and arrays, torch tensors
    if callable(tolist):
        return plain(tolist())
    return str(value)


def float_scores(metrics: dict) -> dict:
    """The scalar scores of a metrics dict (not the confusion matrix, class names or counts)."""
    return {k: v for k, v in metrics.items() if isinstance(v, float)}


def format_scores(metrics: dict) -> str:
    """'accuracy 0.9868, f1 0.9867' for logs and the command line."""
    return ", ".join(f"{k} {v:.4f}" for k, v in float_scores(metrics).items())
