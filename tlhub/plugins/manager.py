"""Build the plugin manager and the registry: built-ins first, then installed entry points (group ``tlhub``).

``make_registry(extra=..., blocked=...)`` builds a registry from scratch; ``get_registry()`` is the
process default that commands use (built once), and ``use_registry(reg)`` swaps it for a block of code
(tests, applications registering their own components), without patching module state.

Environment switches (for debugging a plugin set-up):
  TLHUB_BLOCK_PLUGINS=a,b   do not load these entry-point plugins
  TLHUB_PLUGINS=a,b         load only these entry-point plugins (built-ins always load)
"""
from __future__ import annotations

import importlib
import os
import sys
from contextlib import contextmanager
from typing import Any, Iterable, Iterator
from importlib import metadata

import pluggy

from tlhub import hookspecs
import tlhub
from tlhub.registry import KINDS, PluginInfo, Registry

GROUP = "tlhub"
BUILTIN_PLUGINS = ("tlhub.plugins.builtins.modalities", "tlhub.plugins.builtins.tasks", "tlhub.plugins.builtins.heads",
                   "tlhub.plugins.builtins.freeze_policies", "tlhub.plugins.builtins.metrics",
                   "tlhub.plugins.builtins.optim")


def _env_list(var: str) -> set[str] | None:
    raw = os.environ.get(var)
    if raw is None:
        return None
    return {p.strip() for p in raw.split(",") if p.strip()}


def _skipped(blocked: set[str] | None, allowed: set[str] | None) -> list[str]:
    """Entry-point plugins that are installed but will not be loaded under these switches."""
    blocked = (_env_list("TLHUB_BLOCK_PLUGINS") or set()) if blocked is None else set(blocked)
    allowed = _env_list("TLHUB_PLUGINS") if allowed is None else set(allowed)
    return sorted(ep.name for ep in metadata.entry_points(group=GROUP)
                  if ep.name in blocked or (allowed is not None and ep.name not in allowed))


def _dist_of(plugin: str) -> str:
    for ep in metadata.entry_points(group=GROUP, name=plugin):
        return ep.dist.metadata["Name"] if getattr(ep, "dist", None) is not None else "?"
    return "?"


def _provider_lookup(skipped: list[str]):
    """Which skipped plugin registers ``name``: asked of the plugins themselves, only when a name is unknown."""
    def provider(kind: str, name: str) -> str | None:
        for plugin in skipped:
            try:
                registry = build_registry(*make_plugin_manager(blocked=set(), allowed={plugin}))
            except Exception:  # a plugin that cannot even register gives no hint
                continue
            if name in registry.items[kind]:
                return f"{plugin} ({_dist_of(plugin)})"
        return None
    return provider


def make_plugin_manager(extra: Iterable[Any] = (), blocked: set[str] | None = None,
                        allowed: set[str] | None = None) -> tuple[pluggy.PluginManager, list[PluginInfo]]:
    """A fresh plugin manager: built-ins, installed entry points (minus ``blocked``; only ``allowed`` when
    given; both default to TLHUB_BLOCK_PLUGINS / TLHUB_PLUGINS), then ``extra`` plugin objects."""
    pm = pluggy.PluginManager(GROUP)
    pm.add_hookspecs(hookspecs)
    infos: list[PluginInfo] = []
    for modname in BUILTIN_PLUGINS:
        pm.register(importlib.import_module(modname), name=modname)
        infos.append(PluginInfo(modname, "tlhub", tlhub.__version__, ()))
    blocked = (_env_list("TLHUB_BLOCK_PLUGINS") or set()) if blocked is None else set(blocked)
    allowed = _env_list("TLHUB_PLUGINS") if allowed is None else set(allowed)
    for ep in sorted(metadata.entry_points(group=GROUP), key=lambda e: e.name):
        dist = getattr(ep, "dist", None)
        dist_name = dist.metadata["Name"] if dist is not None else "?"
        version = dist.version if dist is not None else "?"
        if ep.name in blocked or (allowed is not None and ep.name not in allowed):
            continue
        if pm.get_plugin(ep.name) is not None:
            continue
        try:
            plugin = ep.load()
            pm.register(plugin, name=ep.name)
        except Exception as exc:  # one broken plugin must not take the others down
            line = f"plugin {ep.name!r} (distribution {dist_name} {version}) failed to import: " \
                   f"{type(exc).__name__}: {exc}"
            print(f"tlhub: warning: {line}", file=sys.stderr)
            infos.append(PluginInfo(ep.name, dist_name, version, (), error=line))
            continue
        infos.append(PluginInfo(ep.name, dist_name, version, ()))
    for i, obj in enumerate(extra):
        name = getattr(obj, "__name__", None) or f"{type(obj).__name__}-{i}"
        pm.register(obj, name=name)
        infos.append(PluginInfo(name, "(registered in this process)", "-", ()))
    pm.check_pending()
    infos = [PluginInfo(i.name, i.distribution, i.version,
                        tuple(sorted(h.name for h in pm.get_hookcallers(pm.get_plugin(i.name)) or ())), i.error)
             if pm.get_plugin(i.name) is not None else i for i in infos]
    return pm, infos


def registration_hooks(pm: pluggy.PluginManager) -> dict[str, Any]:
    """The hook caller of each registry kind: the one place tlhub calls ``pm.hook``."""
    h = pm.hook
    hooks = {"modalities": h.register_modalities, "tasks": h.register_tasks, "backbones": h.register_backbones,
             "heads": h.register_heads, "freeze-policies": h.register_freeze_policies,
             "data-sources": h.register_data_sources, "metrics": h.register_metrics,
             "optimizers": h.register_optimizers, "schedulers": h.register_schedulers}
    assert set(hooks) == set(KINDS), "a registry kind without its hook (or the reverse)"
    return hooks


def build_registry(pm: pluggy.PluginManager, infos: list[PluginInfo] | None = None) -> Registry:
    """Call every registration hook, attributing each descriptor to the plugin that gave it."""
    registry = Registry(plugins=list(infos or []))
    for kind, hook in registration_hooks(pm).items():
        for impl in hook.get_hookimpls():
            plugin_name = pm.get_name(impl.plugin) or "?"
            impl.function(register=lambda spec, _k=kind, _p=plugin_name: registry.add(_k, spec, _p))
    return registry


def make_registry(extra: Iterable[Any] = (), blocked: set[str] | None = None,
                  allowed: set[str] | None = None) -> Registry:
    """A registry built from scratch (see ``make_plugin_manager`` for the arguments)."""
    pm, infos = make_plugin_manager(extra, blocked, allowed)
    registry = build_registry(pm, infos)
    skipped = _skipped(blocked, allowed)
    if skipped:
        registry.provider = _provider_lookup(skipped)
    return registry


get_plugin_manager = make_plugin_manager  # the name plugin authors' tests know
_default: list[Registry] = []  # the process default, built on first use; a stack under use_registry


def get_registry() -> Registry:
    """The process default registry: installed plugins and the environment switches (built once)."""
    if not _default:
        _default.append(make_registry())
    return _default[-1]


@contextmanager
def use_registry(registry: Registry) -> Iterator[Registry]:
    """Make ``registry`` the default for the block (``tlhub.run`` and the commands look it up)."""
    get_registry()
    _default.append(registry)
    try:
        yield registry
    finally:
        _default.remove(registry)


def plugin_infos() -> list[PluginInfo]:
    return get_registry().plugins


def reset() -> None:
    """Forget the default registry (after installing a plugin, or between tests)."""
    _default.clear()
