"""Plugins and the registry: the pluggy manager, built-in components, registry construction."""
from __future__ import annotations

from tlhub.plugins.manager import (BUILTIN_PLUGINS, GROUP, build_registry, get_plugin_manager, get_registry,
                                   make_plugin_manager, make_registry, plugin_infos, reset, use_registry)
from tlhub.registry import PluginInfo

__all__ = ["BUILTIN_PLUGINS", "GROUP", "PluginInfo", "build_registry", "get_plugin_manager", "get_registry",
           "make_plugin_manager", "make_registry", "plugin_infos", "reset", "use_registry"]
