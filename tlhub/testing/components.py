"""Contract checks of heads, freeze policies and data sources."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from tlhub.interfaces import DataContext, SourceData, Split
from tlhub.plugins import get_registry
from tlhub.policy import FreezePolicy
from tlhub.registry import DataSourceSpec, FreezePolicySpec, HeadSpec
from tlhub.testing.kit import (
    EXAMPLE_GROUPS,
    _fail,
    _lookup,
    _resolve,
    _short,
    check_options,
)

# ------------------------------------------------------------------ heads

def check_head(spec_or_name: HeadSpec | str, options: dict | None = None, in_features: int = 16,
               num_classes: int = 3):
    """Build a head for ``in_features`` -> ``num_classes`` and check shapes and gradients; return it."""
    import torch
    from torch import nn

    spec = _lookup("heads", spec_or_name, HeadSpec)
    what = f"head {spec.name!r}" + (f" (plugin {spec.plugin!r})" if spec.plugin else "")
    check_options(spec, what)
    opts = _resolve(what, "model.head_options", spec, options)
    head = None
    for classes in (2, num_classes):  # binary too; the requested head is built last and returned
        torch.manual_seed(0)
        head = spec.build(in_features, classes, opts)
        if not isinstance(head, nn.Module):
            _fail(what, f"build() returned {type(head).__name__}, not a torch.nn.Module")
        x = torch.randn(4, in_features, generator=torch.Generator().manual_seed(0))
        head.train()
        logits = head(x)
        if not isinstance(logits, torch.Tensor) or tuple(logits.shape) != (4, classes):
            shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
            _fail(what, f"build({in_features}, {classes}, options) gave logits of shape {shape}, "
                        f"expected {(4, classes)}")
        logits.float().logsumexp(-1).sum().backward()
        dead = [n for n, p in head.named_parameters() if p.grad is None]
        if dead:
            _fail(what, f"no gradient reaches {_short(dead)}")
        head.eval()
        with torch.no_grad():
            if tuple(head(x).shape) != (4, classes):
                _fail(what, "in eval mode the logits have another shape")
    return head


# ------------------------------------------------------------------ freeze policies

def check_freeze_policy(spec_or_name: FreezePolicySpec | str, options: dict | None = None,
                        groups: list[tuple[str, list[str]]] | None = None) -> set[str]:
    """Build a freeze policy and apply it to ``groups`` (default ``EXAMPLE_GROUPS``); return the trainable set.

    Checks: ``trainable(groups)`` returns a set of parameter names, a subset of the names in
    ``groups``, the same on every call and for a second policy built from the same options, and it
    does not modify ``groups``.
    """

    spec = _lookup("freeze-policies", spec_or_name, FreezePolicySpec)
    what = f"freeze policy {spec.name!r}" + (f" (plugin {spec.plugin!r})" if spec.plugin else "")
    check_options(spec, what)
    opts = _resolve(what, "phases.0.freeze_options", spec, options)
    groups = copy.deepcopy(groups if groups is not None else EXAMPLE_GROUPS)
    pristine = copy.deepcopy(groups)
    policy = spec.build(opts)
    if not isinstance(policy, FreezePolicy):
        _fail(what, f"build() returned {type(policy).__name__}, not a tlhub.policy.FreezePolicy")
    first = policy.trainable(groups)
    if not isinstance(first, (set, frozenset)):
        _fail(what, f"trainable() must return a set of parameter names, got {type(first).__name__}")
    if groups != pristine:
        _fail(what, "trainable() modified the groups it was given")
    names = {p for _, params in groups for p in params}
    unknown = sorted(p for p in first if p not in names)
    if unknown:
        _fail(what, f"trainable() returned names that are not parameters of the groups: {_short(unknown)}")
    if policy.trainable(copy.deepcopy(groups)) != first:
        _fail(what, "trainable() is not deterministic: two calls on the same groups differ")
    if spec.build(opts).trainable(copy.deepcopy(groups)) != first:
        _fail(what, "two policies built from the same options choose different parameters")
    return set(first)


# ------------------------------------------------------------------ data sources

def _check_item(what: str, modality: Any, item: Any, where: str) -> None:
    problem = modality.item_problem(item)
    if problem:
        _fail(what, f"{where}: {problem}")


def check_data_source(spec_or_name: DataSourceSpec | str, options: dict | None = None,
                      tmp_path: str | Path | None = None, sample: int = 8):
    """Load a data source (relative paths resolve against ``tmp_path``) and check what it returns.

    Checks: a ``SourceData`` with at least 2 distinct class names and a non-empty train split; every
    split present has as many items as labels, integer labels within ``range(len(classes))``, and
    items of the declared modality (a sample of ``sample`` items per split is read). Returns it.
    """

    spec = _lookup("data-sources", spec_or_name, DataSourceSpec)
    what = f"data source {spec.name!r}" + (f" (plugin {spec.plugin!r})" if spec.plugin else "")
    check_options(spec, what)
    registry = get_registry()
    if spec.modality not in registry.items["modalities"]:
        _fail(what, f"gives {spec.modality!r} data, which no registered modality reads (registered: "
                    f"{', '.join(registry.names('modalities'))})")
    modality = registry.modality(spec.modality)
    opts = _resolve(what, "data.options", spec, options)
    ctx = DataContext(Path(tmp_path) if tmp_path is not None else Path.cwd(), seed=0, log=lambda line: None)
    data = spec.load(opts, ctx)
    if not isinstance(data, SourceData):
        _fail(what, f"load() returned {type(data).__name__}, not a tlhub.interfaces.SourceData")
    classes = list(data.classes)
    if len(classes) < 2:
        _fail(what, f"gives {len(classes)} class(es); classification needs at least 2")
    if len({str(c) for c in classes}) != len(classes):
        _fail(what, f"class names repeat: {classes!r}")
    if data.train is None or len(data.train) == 0:
        _fail(what, "gives no training examples (SourceData.train is missing or empty)")
    for name in ("train", "val", "test"):
        split = getattr(data, name)
        if split is None:
            continue
        if not isinstance(split, Split):
            _fail(what, f"the {name} split is a {type(split).__name__}, not a tlhub.interfaces.Split")
        if len(split.items) != len(split.labels):
            _fail(what, f"the {name} split has {len(split.items)} items but {len(split.labels)} labels")
        bad = [y for y in split.labels if isinstance(y, bool) or not _is_int(y) or not 0 <= int(y) < len(classes)]
        if bad:
            _fail(what, f"the {name} split has labels that are not integers in [0, {len(classes)}): "
                        f"{_short(map(repr, bad))}")
        picks = sorted({0, len(split) - 1, *range(0, len(split), max(1, len(split) // max(1, sample)))})[:sample + 1]
        for i in picks:
            if len(split):
                _check_item(what, modality, split.items[i], f"{name} item {i}")
    if not all(isinstance(s, str) for s in data.skipped):
        _fail(what, "skipped must be a list of 'item: reason' strings")
    return data


def _is_int(y: Any) -> bool:
    import numbers
    return isinstance(y, numbers.Integral)


