"""Metrics by name only: registered by plugins (tlhub's own: accuracy, f1, precision, recall, confusion_matrix),
or an ``evaluate`` metric already in evaluate's module cache, loaded from that cache. A recipe never names
a path: no code runs from a recipe's or a received model folder's files."""
from __future__ import annotations

import os
from pathlib import Path

from tlhub.errors import UserError, did_you_mean

HERE = Path(__file__).parent
CORE = ("accuracy", "f1", "precision", "recall", "confusion_matrix")
_LOADED: dict = {}


def load_core(name: str):
    """One of tlhub's own evaluate modules, loaded by the path of this package (offline)."""
    import evaluate
    return evaluate.load(str(HERE / name))


def _registered(registry) -> dict:
    return registry.items["metrics"]


def load_metric(name: str, registry):
    if name not in _LOADED:
        spec = _registered(registry).get(name)
        if spec is not None:
            _LOADED[name] = spec.load()
        else:
            script = _cached_script(name)
            if script is None:
                raise UserError(metric_errors([name], registry)[0])
            import evaluate
            try:  # by the cache's own path: a folder of that name in the working directory is never loaded
                _LOADED[name] = evaluate.load(str(script.parent))
            except Exception as exc:
                raise UserError(f"eval.metrics: cannot load metric {name!r} from evaluate's cache "
                                f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]})") from None
    return _LOADED[name]


def _evaluate_module_cache() -> Path:
    """Where ``evaluate`` keeps metric scripts it has loaded (its config's rule, without importing it)."""
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    modules = os.environ.get("HF_MODULES_CACHE") or os.path.join(home, "modules")
    return Path(modules).expanduser() / "evaluate_modules" / "metrics"


def _cached_scripts() -> dict[str, Path]:
    """Metric scripts evaluate has cached (loaded once with the network), by the name a recipe uses."""
    found: dict[str, Path] = {}
    cache = _evaluate_module_cache()
    if cache.is_dir():
        for d in sorted(cache.iterdir()):
            owner, sep, metric = d.name.partition("--")
            if not (sep and d.is_dir()):
                continue
            scripts = sorted((h / f"{metric}.py" for h in d.iterdir() if len(h.name) == 64
                              and (h / f"{metric}.py").is_file()), key=lambda p: p.stat().st_mtime)
            if scripts:
                found[metric if owner.startswith("evaluate-") else f"{owner}/{metric}"] = scripts[-1]
    return found


def _cached_script(name: str) -> Path | None:
    return _cached_scripts().get(name)


def local_metrics(registry) -> list[str]:
    """Metric names that load without the network: the registered ones and those in evaluate's module cache."""
    names = [m for m in _registered(registry) if m != "confusion_matrix"]
    names += [m for m in _cached_scripts() if m not in names]
    return names


def _looks_like_path(name: str) -> bool:
    return name.endswith(".py") or name.startswith((".", "/", "~")) or "\\" in name or name.count("/") > 1 \
        or ("/" in name and Path(name).expanduser().exists())


def metric_errors(names, registry) -> list[str]:
    """Errors for ``eval.metrics`` names that are not registered or cached, found without going to the Hub."""
    known = local_metrics(registry)
    errors = []
    for n in names:
        if n in known or n == "confusion_matrix":
            continue
        if _looks_like_path(n):
            stem = Path(n).stem
            errors.append(f"eval.metrics: {n!r} is a path; metrics are names (tlhub list metrics), never code "
                          f"from a recipe's folder{did_you_mean(stem, known)}; a new metric comes from a plugin's "
                          f"register_metrics hook")
        else:
            errors.append(f"eval.metrics: unknown metric {n!r}{did_you_mean(n, known)}; metrics that load offline: "
                          f"{', '.join(known)} (a plugin registers more through register_metrics; an evaluate "
                          f"metric must be in evaluate's cache -- load it once with the network)")
    return errors


def compute_metrics(names, predictions, references, num_classes: int, registry) -> dict:
    """Every requested metric plus the confusion matrix, as plain JSON-able values."""
    out: dict = {}
    for name in list(dict.fromkeys(list(names) + ["confusion_matrix"])):
        metric = load_metric(name, registry)
        spec = _registered(registry).get(name)
        kwargs = {"num_classes": num_classes} if spec is not None and spec.num_classes else {}
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
