"""The schema of a model folder's ``config.json`` (and of an ONNX file's tlhub metadata): every field a
loader reads, checked before anything is built, every problem listed at once.

Hand-written rather than a JSON-schema library: seven fields, and the messages name the field the way
the rest of tlhub does; the ``preprocessing`` table's schema belongs to its modality. No torch here (the
ONNX path uses it too).
"""
from __future__ import annotations

from typing import Any

from tlhub.plugins import get_registry

REQUIRED = ("backbone", "head", "classes", "preprocessing")
OPTIONAL_TABLES = ("backbone_options", "head_options", "offline_backbone_options", "task_options", "task_state")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def classes_problems(classes: Any, minimum: int = 2) -> list[str]:
    """Class names (label or target-column names for other tasks than classification): a list of at least
    ``minimum`` distinct, non-empty names (strings; integers are read as text)."""
    if not isinstance(classes, list):
        return [f"classes must be a list of class names, got {type(classes).__name__} {str(classes)[:40]!r}"]
    bad = [c for c in classes if not (isinstance(c, str) and c.strip()) and not _is_int(c)]
    if bad:
        return [f"classes must be non-empty names, got {bad[0]!r}"]
    names = [str(c) for c in classes]
    if len(names) < minimum:
        return [f"classes must name at least {minimum} classes, got {names!r}"]
    dupes = sorted({c for c in names if names.count(c) > 1})
    if dupes:
        return [f"classes must be distinct, got {', '.join(map(repr, dupes[:10]))} more than once"]
    return []


def preprocessing_problems(prep: Any, registry: Any = None) -> list[str]:
    """What a predictor needs from the preprocessing table and does not find: the modality is installed,
    and its own schema (``Modality.config_problems``) holds."""
    if not isinstance(prep, dict):
        return [f"preprocessing: expected a table, got {prep!r}"]
    name = prep.get("modality", "image")
    registry = registry or get_registry()
    if not isinstance(name, str) or name not in registry.items["modalities"]:
        known = ", ".join(repr(n) for n in registry.names("modalities"))
        return [f"preprocessing: modality {name!r} is not installed (installed: {known}); install the plugin "
                f"that registers it to use this model"]
    return registry.modality(name).config_problems(prep)


def config_problems(config: Any) -> list[str]:
    """Every way ``config`` is not a tlhub model config ([] when it is one)."""
    if not isinstance(config, dict):
        return [f"expected a JSON object (a tlhub model config), got {type(config).__name__} {str(config)[:40]!r}"]
    missing = [k for k in REQUIRED if k not in config]
    if missing:
        return [f"not a tlhub model config (missing {', '.join(missing)})"]
    out = [f"{k} must be a registered name (a string), got {config[k]!r}"
           for k in ("backbone", "head") if not (isinstance(config[k], str) and config[k].strip())]
    out += [f"{k} must be a table (JSON object) or null, got {type(config[k]).__name__} {str(config[k])[:40]!r}"
            for k in OPTIONAL_TABLES if config.get(k) is not None and not isinstance(config[k], dict)]
    for key in ("backbone_plugin", "weights_origin", "tlhub_version", "task"):
        if config.get(key) is not None and not isinstance(config[key], str):
            out.append(f"{key} must be a string, got {config[key]!r}")
    if config.get("channels_last") is not None and not isinstance(config["channels_last"], bool):
        out.append(f"channels_last must be true or false, got {config['channels_last']!r}")
    minimum = 2 if config.get("task", "classification") == "classification" else 1  # one regression target
    return out + classes_problems(config["classes"], minimum) + preprocessing_problems(config["preprocessing"])
