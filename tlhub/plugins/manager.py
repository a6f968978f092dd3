"""Build the plugin manager: built-ins first, then installed entry points (group ``tlhub``).

Environment switches (for debugging a plugin set-up):
  TLHUB_BLOCK_PLUGINS=a,b   do not load these entry-point plugins
  TLHUB_PLUGINS=a,b         load only these entry-point plugins (built-ins always load)
"""
from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass
from importlib import metadata

import pluggy

from . import hookspecs
from .registry import KINDS, Registry

GROUP = "tlhub"
BUILTIN_PLUGINS = ("tlhub.builtins.heads", "tlhub.builtins.freeze_policies")


@dataclass(frozen=True)
class PluginInfo:
    name: str
    distribution: str
    version: str
    hooks: tuple[str, ...]
    error: str = ""


def _env_list(var: str) -> set[str] | None:
    raw = os.environ.get(var)
    if raw is None:
        return None
    return {p.strip() for p in raw.split(",") if p.strip()}


def get_plugin_manager() -> tuple[pluggy.PluginManager, list[PluginInfo]]:
    """A fresh plugin manager with every loadable plugin registered and ``check_pending()`` run."""
    pm = pluggy.PluginManager(GROUP)
    pm.add_hookspecs(hookspecs)
    infos: list[PluginInfo] = []
    import tlhub
    for modname in BUILTIN_PLUGINS:
        pm.register(importlib.import_module(modname), name=modname)
        infos.append(PluginInfo(modname, "tlhub", tlhub.__version__, ()))
    blocked = _env_list("TLHUB_BLOCK_PLUGINS") or set()
    allowed = _env_list("TLHUB_PLUGINS")
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
    pm.check_pending()
    infos = [PluginInfo(i.name, i.distribution, i.version,
                        tuple(sorted(h.name for h in pm.get_hookcallers(pm.get_plugin(i.name)) or ())), i.error)
             if pm.get_plugin(i.name) is not None else i for i in infos]
    return pm, infos


def build_registry(pm: pluggy.PluginManager) -> Registry:
    """Call every registration hook, attributing each descriptor to the plugin that gave it."""
    registry = Registry()
    for kind in KINDS:
        hook = getattr(pm.hook, "register_" + kind.replace("-", "_"))
        for impl in hook.get_hookimpls():
            plugin_name = pm.get_name(impl.plugin) or "?"
            impl.function(register=lambda spec, _k=kind, _p=plugin_name: registry.add(_k, spec, _p))
    return registry


_CACHE: dict[str, object] = {}


def get_registry() -> Registry:
    """The process-wide registry (built once)."""
    if "registry" not in _CACHE:
        pm, infos = get_plugin_manager()
        _CACHE["pm"], _CACHE["infos"] = pm, infos
        _CACHE["registry"] = build_registry(pm)
    return _CACHE["registry"]  # type: ignore[return-value]


def plugin_infos() -> list[PluginInfo]:
    get_registry()
    return _CACHE["infos"]  # type: ignore[return-value]


def reset() -> None:
    """Forget the cached plugin manager (tests, or after installing a plugin)."""
    _CACHE.clear()
