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

from typing import Any

from tlhub.errors import UserError
from tlhub.interfaces import Backbone
from tlhub.options import REQUIRED, Opt, check_value, resolve_options
from tlhub.plugins import get_registry
from tlhub.registry import BackboneSpec

MODALITIES = ("image", "text")  # the built-in modalities (plugins may register more: `tlhub list modalities`)
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

def _feeding_modality(what: str, input_kind: str):
    """The registered modality that feeds backbones taking ``input_kind`` (the one of that name first)."""
    reg = get_registry()
    specs = sorted(reg.items["modalities"].values(), key=lambda m: m.name != input_kind)
    for m in specs:
        if input_kind in m.feeds:
            return reg.modality(m.name)
    _fail(what, f"takes {input_kind!r} input, which no registered modality feeds (registered: "
                f"{', '.join(f'{m.name} -> {m.feeds}' for m in specs) or 'none'})")


def _example_input(what: str, backbone, input_kind: str):
    modality = _feeding_modality(what, input_kind)
    problem = modality.backbone_problem(backbone)
    if problem:
        _fail(what, problem)
    try:
        return modality.example_batch(backbone, 2)
    except Exception as exc:  # noqa: BLE001 - a preprocessing the modality cannot use is a contract failure
        _fail(what, f"the {modality.name} modality cannot make an example batch from the backbone's "
                    f"preprocessing ({type(backbone.preprocessing).__name__}): {type(exc).__name__}: {exc}")


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

    Checks: it is a ``tlhub.interfaces.Backbone`` of the declared input kind (``spec.modality``), which a
    registered modality feeds and can make an example batch for from its preprocessing; ``forward`` gives ``[B, feature_dim]``
    finite features; ``param_groups()`` covers every parameter exactly once, with unique group names
    and no empty group; running the groups in sequence - and stopping after any prefix, the way
    frozen-prefix caching does - then ``pool`` equals ``forward``; a backward pass gives every
    parameter of every group a gradient.

    The default input is the feeding modality's ``example_batch``: a ``2x3xSxS`` batch (S = min(native
    size, 64)) for image backbones, two short sentences through the backbone's own tokenizer for text.
    """
    import torch


    spec = _lookup("backbones", spec_or_name, BackboneSpec)
    what = f"backbone {spec.name!r}" + (f" (plugin {spec.plugin!r})" if spec.plugin else "")
    check_options(spec, what)
    _feeding_modality(what, spec.modality)
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
    problem = _feeding_modality(what, spec.modality).backbone_problem(bb)
    if problem:
        _fail(what, problem)
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
                out = bb.features(bb.run_groups(state, k))
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


