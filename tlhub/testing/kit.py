"""Contract checks for plugin authors: call them from your own tests.

    from tlhub.testing import check_backbone

    def test_my_backbone():
        check_backbone("my-backbone")            # by registered name (the plugin must be installed)

Each check builds the component the way tlhub's trainer does (declared option defaults resolved,
then ``build``/``load``), exercises the contract, and raises ``AssertionError`` with a message that
names the component and says what is wrong. Each returns what it built, for further assertions.

``registered(plugin, ...)`` registers plugin objects (modules or instances with ``@hookimpl``
methods) for the duration of a ``with`` block, so a plugin can be tested before it is installed.
``tlhub.pytest_plugin`` adds the fixtures ``tlhub_tiny_dataset``, ``tlhub_tiny_source`` and
``tlhub_run_dir``.
"""
from __future__ import annotations

import copy
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from .errors import UserError
from .hookspecs import hookimpl
from .options import REQUIRED, Opt, check_value, resolve_options
from .registry import BackboneSpec, DataSourceSpec, FreezePolicySpec, HeadSpec

__all__ = ["check_backbone", "check_head", "check_freeze_policy", "check_data_source", "check_options",
           "registered", "tiny_image_data", "TinyImageSource", "EXAMPLE_GROUPS"]

MODALITIES = ("image", "text")
TEXTS = ["A short sentence.", "Another, slightly longer sentence for the check."]
# A backbone-like group layout for freeze-policy checks: names as ``Backbone.param_groups()`` gives them.
EXAMPLE_GROUPS: list[tuple[str, list[str]]] = [
    ("stem", ["stem.0.weight", "stem.1.weight", "stem.1.bias"]),
    ("blocks.0", ["blocks.0.conv.weight", "blocks.0.bn.weight", "blocks.0.bn.bias"]),
    ("blocks.1", ["blocks.1.conv.weight", "blocks.1.bn.weight", "blocks.1.bn.bias"]),
    ("blocks.2", ["blocks.2.conv.weight", "blocks.2.bn.weight", "blocks.2.bn.bias"]),
    ("conv_head", ["conv_head.weight", "conv_head.bias"]),
]


def _fail(what: str, message: str) -> None:
    raise AssertionError(f"{what}: {message}")


def _lookup(kind: str, spec_or_name: Any, cls: type):
    if isinstance(spec_or_name, cls):
        return spec_or_name
    if not isinstance(spec_or_name, str):
        raise TypeError(f"expected a {cls.__name__} or a registered name, got {spec_or_name!r}")
    from .plugins import get_registry
    try:
        return get_registry().get(kind, spec_or_name)
    except UserError as exc:
        raise AssertionError(f"{exc} (is the plugin installed, e.g. `pip install -e .`, and not blocked by "
                             f"TLHUB_PLUGINS / TLHUB_BLOCK_PLUGINS?)") from None


def _short(names, n: int = 5) -> str:
    names = list(names)
    return ", ".join(names[:n]) + (f", ... ({len(names)} in all)" if len(names) > n else "")


def check_options(spec: Any, what: str | None = None) -> None:
    """The declared options of a descriptor: ``Opt`` instances, unique names, defaults of the declared type."""
    what = what or f"{type(spec).__name__} {getattr(spec, 'name', '?')!r}"
    if not isinstance(getattr(spec, "name", None), str) or not spec.name or spec.name != spec.name.strip() \
            or any(c.isspace() for c in spec.name):
        _fail(what, f"name must be a non-empty string without spaces, got {getattr(spec, 'name', None)!r}")
    if not isinstance(getattr(spec, "summary", None), str) or not spec.summary.strip():
        _fail(what, "summary must be a non-empty one-line string (`tlhub list` shows it)")
    if not isinstance(spec.options, tuple):
        _fail(what, f"options must be a tuple of tlhub.options.Opt, got {type(spec.options).__name__}")
    seen = set()
    for opt in spec.options:
        if not isinstance(opt, Opt):
            _fail(what, f"option {opt!r} is not a tlhub.options.Opt")
        if opt.name in seen:
            _fail(what, f"option {opt.name!r} is declared twice")
        seen.add(opt.name)
        if not opt.help:
            _fail(what, f"option {opt.name!r} has no help text (the recipe reference shows it)")
        if opt.default is not REQUIRED and opt.type is not object:
            errors = check_value(f"option {opt.name!r} default", opt.default, opt.type, opt.choices)
            if errors:
                _fail(what, errors[0])


def _resolve(what: str, path: str, spec: Any, options: dict | None) -> dict:
    resolved, errors = resolve_options(path, dict(options or {}), spec.options)
    if errors:
        _fail(what, "the options do not resolve: " + "; ".join(errors)
              + " (pass options={...} with a value for every required option)")
    return resolved


# ------------------------------------------------------------------ backbones

def _example_input(what: str, backbone, modality: str):
    import torch
    prep = backbone.preprocessing
    if modality == "image":
        size = min(int(prep.size or 64), 64)
        g = torch.Generator().manual_seed(0)
        return torch.randn(2, 3, size, size, generator=g)
    try:
        enc = prep.tokenizer(TEXTS, padding=True, truncation=True, max_length=prep.max_length, return_tensors="pt")
    except Exception as exc:  # noqa: BLE001 - any tokenizer failure is a contract failure
        _fail(what, f"the tokenizer in preprocessing failed on two short sentences: {type(exc).__name__}: {exc}")
    # exactly what tlhub's text collate gives a backbone
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}


def _batch_size(x: Any) -> int:
    import torch
    if isinstance(x, torch.Tensor):
        return x.shape[0]
    if isinstance(x, dict):
        return _batch_size(next(iter(x.values())))
    if isinstance(x, (tuple, list)):
        return _batch_size(x[0])
    raise TypeError(f"cannot tell the batch size of {type(x).__name__}")


def _close(a, b) -> bool:
    import torch
    scale = float(b.abs().max()) if b.numel() else 1.0
    return a.shape == b.shape and torch.allclose(a, b, rtol=1e-4, atol=1e-5 * max(1.0, scale))


def check_backbone(spec_or_name: BackboneSpec | str, weights: str = "none", options: dict | None = None,
                   input: Any = None):
    """Build a backbone and check its contract; return the built ``Backbone``.

    Checks: it is a ``tlhub.interfaces.Backbone`` of the declared modality with preprocessing of that
    modality (``ImagePreprocessing`` / ``TextPreprocessing``); ``forward`` gives ``[B, feature_dim]``
    finite features; ``param_groups()`` covers every parameter exactly once, with unique group names
    and no empty group; running the groups in sequence - and stopping after any prefix, the way
    frozen-prefix caching does - then ``pool`` equals ``forward``; a backward pass gives every
    parameter of every group a gradient.

    The default input is a ``2x3xSxS`` batch (S = min(native size, 64)) for image backbones, and two
    short sentences through the backbone's own tokenizer for text backbones.
    """
    import torch

    from .interfaces import Backbone, ImagePreprocessing, TextPreprocessing

    spec = _lookup("backbones", spec_or_name, BackboneSpec)
    what = f"backbone {spec.name!r}" + (f" (plugin {spec.plugin!r})" if spec.plugin else "")
    check_options(spec, what)
    if spec.modality not in MODALITIES:
        _fail(what, f"modality must be one of {MODALITIES}, got {spec.modality!r}")
    opts = _resolve(what, "model.backbone_options", spec, options)
    torch.manual_seed(0)
    try:
        bb = spec.build(weights, opts)
    except UserError as exc:
        _fail(what, f"build(weights={weights!r}) raised UserError: {exc}")
    if not isinstance(bb, Backbone):
        _fail(what, f"build() returned {type(bb).__name__}, not a tlhub.interfaces.Backbone")
    if bb.modality != spec.modality:
        _fail(what, f"the descriptor says modality {spec.modality!r} but the built backbone says {bb.modality!r}")
    prep_type = ImagePreprocessing if spec.modality == "image" else TextPreprocessing
    if not isinstance(bb.preprocessing, prep_type):
        _fail(what, f"preprocessing must be a {prep_type.__name__} for {spec.modality} input, "
                    f"got {type(bb.preprocessing).__name__}")
    if not isinstance(bb.feature_dim, int) or isinstance(bb.feature_dim, bool) or bb.feature_dim < 1:
        _fail(what, f"feature_dim must be a positive int, got {bb.feature_dim!r}")

    # -- parameter groups
    groups = bb.groups()
    if not groups:
        _fail(what, "groups() is empty; a backbone has at least one parameter group")
    names = [n for n, _ in groups]
    dups = sorted({n for n in names if names.count(n) > 1})
    if dups:
        _fail(what, f"group names must be unique; repeated: {_short(dups)}")
    if any(not isinstance(n, str) or not n for n in names):
        _fail(what, f"group names must be non-empty strings, got {names!r}")
    all_params = [n for n, _ in bb.named_parameters()]
    try:
        pgroups = bb.param_groups()
    except KeyError as exc:
        _fail(what, f"a group module holds a parameter that is not a parameter of the backbone ({exc}); "
                    f"group modules must be submodules of the backbone (or hold its parameters)")
    grouped = [p for _, params in pgroups for p in params]
    missing = [p for p in all_params if p not in set(grouped)]
    if missing:
        _fail(what, f"{len(missing)} parameter(s) are in no group: {_short(missing)}; every parameter must "
                    f"belong to exactly one group (freeze policies only see grouped parameters)")
    twice = sorted({p for p in grouped if grouped.count(p) > 1})
    if twice:
        where = {p: [g for g, params in pgroups if p in params] for p in twice[:3]}
        _fail(what, f"parameter(s) in more than one group: "
                    + "; ".join(f"{p} in {', '.join(gs)}" for p, gs in where.items()))
    empty = [g for g, params in pgroups if not params]
    if empty:
        _fail(what, f"group(s) without parameters: {_short(empty)} (a freeze policy could not train them)")

    # -- forward and staged execution
    x = input if input is not None else _example_input(what, bb, spec.modality)
    batch = _batch_size(x)
    bb.eval()
    with torch.no_grad():
        try:
            feats = bb(x)
        except Exception as exc:  # noqa: BLE001
            _fail(what, f"forward failed on the example input: {type(exc).__name__}: {exc}")
        if not isinstance(feats, torch.Tensor) or tuple(feats.shape) != (batch, bb.feature_dim):
            shape = tuple(feats.shape) if isinstance(feats, torch.Tensor) else type(feats).__name__
            _fail(what, f"forward gave features of shape {shape}, expected [batch, feature_dim] = "
                        f"{(batch, bb.feature_dim)} (is the declared feature_dim right?)")
        if not torch.isfinite(feats).all():
            _fail(what, "forward gave non-finite features (nan or inf)")
        n = len(groups)
        for k in range(n + 1):
            try:
                state = bb.run_groups(x, 0, k)
                if k and hasattr(bb, "split_state") and hasattr(bb, "collate_state"):
                    state = bb.collate_state(bb.split_state(state))  # what a cache stores and batches again
                out = bb.pool(bb.run_groups(state, k))
            except NotImplementedError as exc:
                _fail(what, f"run_groups(x, 0, {k}) then run_groups(state, {k}) raised NotImplementedError "
                            f"({exc}); every split point must work (frozen-prefix caching stops after any group)")
            except Exception as exc:  # noqa: BLE001
                _fail(what, f"running groups [0, {k}) then [{k}, {n}) failed: {type(exc).__name__}: {exc}")
            if not isinstance(out, torch.Tensor) or not _close(out, feats):
                after = f"after group {names[k - 1]!r}" if k else "before the first group"
                _fail(what, f"running groups [0, {k}) then [{k}, {n}) and pool() does not equal forward() "
                            f"(split {after}); run_group(i, state) must apply exactly group i")

    # -- backward reaches every parameter of every group
    params = dict(bb.named_parameters())
    for p in params.values():
        p.requires_grad_(True)
        p.grad = None
    feats = bb(x)
    weight = torch.randn(feats.shape, generator=torch.Generator().manual_seed(1))
    (feats * weight.to(feats.dtype)).sum().backward()
    for gname, pnames in pgroups:
        dead = [p for p in pnames if params[p].grad is None]
        if dead:
            _fail(what, f"group {gname!r}: no gradient reaches {len(dead)} parameter(s) ({_short(dead, 3)}); "
                        f"every parameter must take part in forward (or leave it out of the model)")
        bad = [p for p in pnames if not torch.isfinite(params[p].grad).all()]
        if bad:
            _fail(what, f"group {gname!r}: non-finite gradient for {_short(bad, 3)}")
    for p in params.values():
        p.grad = None

    # -- training mode (BatchNorm batch statistics, dropout) still gives the declared shape
    bb.train()
    with torch.no_grad():
        feats = bb(x)
    if tuple(feats.shape) != (batch, bb.feature_dim):
        _fail(what, f"in training mode forward gave shape {tuple(feats.shape)}, expected {(batch, bb.feature_dim)}")
    return bb


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
    from .policy import FreezePolicy

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

def _check_item(what: str, modality: str, item: Any, where: str) -> None:
    if modality == "text":
        if not isinstance(item, str):
            _fail(what, f"{where} is a {type(item).__name__}, expected a str for a text source")
        return
    from .data.images import to_pil
    if isinstance(item, (str, Path)) and not Path(item).is_file():
        _fail(what, f"{where} is a path that does not exist: {item}")
    try:
        img = to_pil(item)
    except Exception as exc:  # noqa: BLE001
        _fail(what, f"{where} is not an image tlhub can read ({type(item).__name__}: {type(exc).__name__}: {exc}); "
                    f"give PIL images, HxW / HxWxC arrays or image file paths")
    if img.width < 1 or img.height < 1:
        _fail(what, f"{where} is an empty image")


def check_data_source(spec_or_name: DataSourceSpec | str, options: dict | None = None,
                      tmp_path: str | Path | None = None, sample: int = 8):
    """Load a data source (relative paths resolve against ``tmp_path``) and check what it returns.

    Checks: a ``SourceData`` with at least 2 distinct class names and a non-empty train split; every
    split present has as many items as labels, integer labels within ``range(len(classes))``, and
    items of the declared modality (a sample of ``sample`` items per split is read). Returns it.
    """
    from .interfaces import DataContext, SourceData, Split

    spec = _lookup("data-sources", spec_or_name, DataSourceSpec)
    what = f"data source {spec.name!r}" + (f" (plugin {spec.plugin!r})" if spec.plugin else "")
    check_options(spec, what)
    if spec.modality not in MODALITIES:
        _fail(what, f"modality must be one of {MODALITIES}, got {spec.modality!r}")
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
                _check_item(what, spec.modality, split.items[i], f"{name} item {i}")
    if not all(isinstance(s, str) for s in data.skipped):
        _fail(what, "skipped must be a list of 'item: reason' strings")
    return data


def _is_int(y: Any) -> bool:
    import numbers
    return isinstance(y, numbers.Integral)


# ------------------------------------------------------------------ data for tests

def tiny_image_data(classes: int = 3, per_class: int = 8, size: int = 16, seed: int = 0):
    """A tiny learnable image ``SourceData``: a square of each class's colour and position on noise."""
    import numpy as np

    from .interfaces import SourceData, Split

    if not 2 <= classes <= 6:
        raise ValueError("classes must be between 2 and 6")
    colors = [(230, 40, 40), (40, 230, 40), (40, 40, 230), (230, 230, 40), (230, 40, 230), (40, 230, 230)]
    rng = np.random.default_rng(seed)
    q = max(size // 4, 1)
    items, labels = [], []
    for c in range(classes):
        row, col = divmod(c, 2)
        for _ in range(per_class):
            img = rng.integers(0, 80, (size, size, 3)).astype(np.uint8)
            img[row * q: row * q + 2 * q, col * 2 * q: col * 2 * q + 2 * q, :] = colors[c]
            items.append(img)
            labels.append(c)
    return SourceData([f"class{c}" for c in range(classes)], train=Split(items, labels))


class TinyImageSource:
    """A plugin object that registers the data source ``name`` returning ``data`` (default ``tiny_image_data()``)."""

    def __init__(self, name: str = "tlhub-tiny-dataset", data=None):
        self.name, self.data = name, data

    @hookimpl
    def register_data_sources(self, register):
        register(DataSourceSpec(self.name, "tiny synthetic images (tlhub.testing)", "image",
                                lambda options, ctx: self.data if self.data is not None else tiny_image_data()))


@contextmanager
def registered(*plugin_objects: Any) -> Iterator[Any]:
    """Register plugin objects (in this process) on top of the installed plugins; yield the registry.

        with registered(my_plugin_module):
            check_backbone("my-backbone")
            tlhub.run("recipe.toml")          # in-process runs see the plugin too

    Subprocesses (``tlhub run`` on the command line) only see installed entry points.
    """
    from . import plugins

    real = plugins.get_plugin_manager

    def with_extra():
        pm, infos = real()
        for i, obj in enumerate(plugin_objects):
            name = getattr(obj, "__name__", None) or f"{type(obj).__name__}-{i}"
            pm.register(obj, name=name)
            hooks = tuple(sorted(h.name for h in pm.get_hookcallers(obj) or ()))
            infos.append(plugins.PluginInfo(name, "(registered by tlhub.testing)", "-", hooks))
        return pm, infos

    plugins.get_plugin_manager = with_extra
    plugins.reset()
    try:
        yield plugins.get_registry()
    finally:
        plugins.get_plugin_manager = real
        plugins.reset()
