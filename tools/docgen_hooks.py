"""docs/hooks.md: hook specifications, descriptors and contract classes (see tools/docgen.py)."""
from __future__ import annotations

import dataclasses
import inspect
import re

from docgen_text import _field_default, banner, cell, default_text, md

FIELD_HELP = {
    "name": "the name recipes use; unique per kind across all loaded plugins",
    "summary": "one line shown by `tlhub list`",
    "modality": "`\"image\"` or `\"text\"`; a recipe's backbone and data source must agree",
    "options": "the declared options (`Opt`), validated and given defaults before `build`/`load` is called",
    "default_weights": "what `model.weights = \"\"` means for this backbone, e.g. `\"imagenet\"` or `\"none\"`",
    "plugin": "set by tlhub to the plugin that registered the descriptor; leave it empty",
    "build": "called lazily with the arguments in the descriptor's docstring; may import torch and friends",
    "load": "called lazily with the resolved options and a `DataContext`; returns a `SourceData`",
    "type": "`str`, `int`, `float`, `bool`, `list`, `dict` (or `object` for any value)",
    "default": "the default value, or `tlhub.options.REQUIRED`",
    "help": "one line shown in the recipe reference and in error messages",
    "choices": "allowed values, or `None` for any value of the type",
}
FIELD_HELP_BY_CLASS = {"MetricSpec": {"load": "called lazily without arguments; returns an object whose "
                                              "`compute(predictions=, references=, **kw)` returns a dict of scores",
                                      "num_classes": "pass `num_classes=` to `compute`"},
                       "Opt": {"name": "the key in the component's options table, e.g. `k` in "
                                       "`freeze_options = { k = 2 }`",
                                "check": "optional `check(value) -> str`: '' when a value of the right type is "
                                         "allowed, else why not (e.g. \"must be in [0, 1)\"); reported by "
                                         "`tlhub validate`"}}
DESCRIPTORS = ("BackboneSpec", "HeadSpec", "FreezePolicySpec", "DataSourceSpec", "MetricSpec")
CONTRACTS = (("tlhub.interfaces", "Backbone"), ("tlhub.interfaces", "SequentialBackbone"),
             ("tlhub.interfaces", "ImagePreprocessing"), ("tlhub.interfaces", "TextPreprocessing"),
             ("tlhub.policy", "FreezePolicy"), ("tlhub.interfaces", "SourceData"), ("tlhub.interfaces", "Split"),
             ("tlhub.interfaces", "DataContext"))


def hook_names() -> list[str]:
    from tlhub import hookspecs
    funcs = [f for _, f in inspect.getmembers(hookspecs, inspect.isfunction)
             if hasattr(f, "tlhub_spec") and f.__module__ == hookspecs.__name__]
    return [f.__name__ for f in sorted(funcs, key=lambda f: f.__code__.co_firstlineno)]


def _descriptor_table(cls: type) -> list[str]:
    lines = ["| field | type | default | meaning |", "|---|---|---|---|"]
    for f in dataclasses.fields(cls):
        text = FIELD_HELP_BY_CLASS.get(cls.__name__, {}).get(f.name) or FIELD_HELP.get(f.name)
        if not text:
            raise ValueError(f"{cls.__name__}.{f.name} is not described; add it to FIELD_HELP in tools/docgen.py")
        default = _field_default(f)
        lines.append(f"| `{f.name}` | `{cell(f.type)}` | {default_text(default, python=True)} | {cell(text)} |")
    return lines


def _members(cls: type) -> list[tuple[str, str, str]]:
    """(name, signature, doc) of the public methods and properties a class itself defines, in source order."""
    items = []
    if not dataclasses.is_dataclass(cls):  # class attributes a subclass sets, e.g. Backbone.feature_dim
        for name, ann in cls.__dict__.get("__annotations__", {}).items():
            if not name.startswith("_"):
                items.append((name, f": {ann} = {cls.__dict__.get(name, '...')!r}", "class attribute"))
    for name, obj in cls.__dict__.items():
        if name.startswith("_"):
            continue
        if isinstance(obj, property):
            items.append((name, "(property)", md(obj.fget.__doc__, one_line=True)))
        elif inspect.isfunction(obj):
            sig = str(inspect.signature(obj)).replace("'", "")
            items.append((name, sig, md(obj.__doc__, one_line=True)))  # own docstring only, not nn.Module's
    return items


def render_hooks() -> str:
    import importlib

    from tlhub import hookspecs
    from tlhub import options
    from tlhub import registry

    out = ["# Hooks reference", "", banner("tlhub/hookspecs.py, the descriptors in tlhub/registry.py and the "
                                           "contracts in tlhub/interfaces.py").rstrip(), "",
           "A plugin is a module (named by an entry point in the group `tlhub`) whose functions are marked "
           "with `tlhub.hookspecs.hookimpl`. Each hook receives a `register` callback and calls it once per "
           "component with a *descriptor*: a cheap frozen dataclass. Nothing heavy happens at registration; "
           "`build`/`load` run only when a recipe uses the component. A misspelled hook name fails loudly "
           "when the plugins load. See [plugins.md](plugins.md) for a walk-through.", "", "## Hooks", ""]
    for name in hook_names():
        func = getattr(hookspecs, name)
        doc = inspect.getdoc(func) or ""
        spec = re.search(r"register\((\w+)\(", doc)
        out += [f"### `{name}{inspect.signature(func)}`", "", md(doc), ""]
        if spec:
            out += [f"Descriptor: [`{spec.group(1)}`](#{spec.group(1).lower()}).", "", "```python",
                    "from tlhub.hookspecs import hookimpl", f"from tlhub.registry import {spec.group(1)}", "", "",
                    "@hookimpl", f"def {name}(register):", f"    register({spec.group(1)}(...))", "```", ""]
    out += ["## Descriptors", ""]
    for cname in DESCRIPTORS + ("Opt",):
        cls = getattr(options if cname == "Opt" else registry, cname)
        out += [f"### `{cname}`", "", f"`{cls.__module__}.{cname}`: {md(cls.__doc__)}", ""]
        out += _descriptor_table(cls) + [""]
    out += ["## Contracts", "", "What `build` and `load` return, and what the trainer calls on it.", ""]
    for module, cname in CONTRACTS:
        cls = getattr(importlib.import_module(module), cname)
        bases = [b.__name__ for b in cls.__bases__ if b is not object]
        base = f" (a subclass of `{', '.join(bases)}`)" if bases else ""
        out += [f"### `{cname}`", "", f"`{module}.{cname}`{base}: {md(cls.__doc__)}", ""]
        if dataclasses.is_dataclass(cls):
            out += ["| field | type |", "|---|---|"]
            out += [f"| `{f.name}` | `{cell(f.type)}` |" for f in dataclasses.fields(cls)] + [""]
        for mname, sig, doc in _members(cls):
            out.append(f"- `{mname}{sig if sig != '(property)' else ''}`" + (" (property)" if sig == "(property)"
                                                                             else "") + (f": {doc}" if doc else ""))
        if _members(cls):
            out.append("")
    return "\n".join(out).rstrip() + "\n"


# ------------------------------------------------------------------ driver
