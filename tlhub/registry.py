"""Descriptors of registered components and lookups by name.

Descriptors are cheap frozen dataclasses: listing them never builds a model or imports
torchvision/transformers. ``build``/``load`` do the heavy work lazily.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable

from tlhub.errors import UserError, did_you_mean
from tlhub.modality import ModalitySpec
from tlhub.task import TaskSpec
from tlhub.options import Opt, resolve_options


@dataclass(frozen=True)
class BackboneSpec:
    """A backbone: ``build(weights, options) -> tlhub.interfaces.Backbone``."""

    name: str
    summary: str
    modality: str  # "image" or "text"
    build: Callable[..., Any]
    options: tuple[Opt, ...] = ()
    default_weights: str = "none"
    plugin: str = ""


@dataclass(frozen=True)
class HeadSpec:
    """A head: ``build(in_features, num_classes, options) -> torch.nn.Module``."""

    name: str
    summary: str
    build: Callable[..., Any]
    options: tuple[Opt, ...] = ()
    plugin: str = ""


@dataclass(frozen=True)
class FreezePolicySpec:
    """A freeze policy: ``build(options) -> tlhub.interfaces.FreezePolicy``."""

    name: str
    summary: str
    build: Callable[..., Any]
    options: tuple[Opt, ...] = ()
    plugin: str = ""


@dataclass(frozen=True)
class DataSourceSpec:
    """A data source: ``load(options, context) -> tlhub.interfaces.SourceData``."""

    name: str
    summary: str
    modality: str  # "image" or "text"
    load: Callable[..., Any]
    options: tuple[Opt, ...] = ()
    plugin: str = ""


@dataclass(frozen=True)
class MetricSpec:
    """A test-set metric: ``load() -> m`` with ``m.compute(predictions=, references=, **kw) -> dict`` of scores.

    ``num_classes``: pass ``num_classes=`` to ``compute``. Recipes name metrics only by these names
    (``eval.metrics``): no metric code is ever loaded from a recipe's or a model folder's path."""

    name: str
    summary: str
    load: Callable[[], Any]
    num_classes: bool = False
    plugin: str = ""


@dataclass(frozen=True)
class OptimizerSpec:
    """An optimizer: ``build(param_groups, phase) -> torch.optim.Optimizer``; ``param_groups`` carry each
    group's learning rate; ``phase`` is the recipe's phase table (``lr``, ``weight_decay``, ``momentum``)."""

    name: str
    summary: str
    build: Callable[..., Any]
    plugin: str = ""


@dataclass(frozen=True)
class SchedulerSpec:
    """A learning-rate schedule after the warm-up: ``factor(progress) -> multiplier of the lr``, with
    ``progress`` going from 0 to 1 over the phase's steps after warm-up."""

    name: str
    summary: str
    factor: Callable[[float], float]
    plugin: str = ""


KINDS = {
    "modalities": ModalitySpec,
    "tasks": TaskSpec,
    "backbones": BackboneSpec,
    "heads": HeadSpec,
    "freeze-policies": FreezePolicySpec,
    "data-sources": DataSourceSpec,
    "metrics": MetricSpec,
    "optimizers": OptimizerSpec,
    "schedulers": SchedulerSpec,
}
KIND_SINGULAR = {"modalities": "modality", "tasks": "task", "backbones": "backbone", "heads": "head", "freeze-policies": "freeze policy",
                 "data-sources": "data source", "metrics": "metric",
                 "optimizers": "optimizer", "schedulers": "scheduler"}

@dataclass(frozen=True)
class PluginInfo:
    """A loaded (or failed) plugin: entry-point name, distribution, version, implemented hooks."""

    name: str
    distribution: str
    version: str
    hooks: tuple[str, ...]
    error: str = ""


@dataclass
class Registry:
    """All registered descriptors, by kind and name, and the plugins they came from."""

    items: dict[str, dict[str, Any]] = field(default_factory=lambda: {k: {} for k in KINDS})
    plugins: list[PluginInfo] = field(default_factory=list)
    # Installed plugins that were not loaded (blocked or not allowed), asked only when a name is unknown:
    # ``provider(kind, name) -> plugin name or None``. The core keeps no table of other plugins' names.
    provider: Callable[[str, str], str | None] | None = None
    loaded_modalities: dict[str, Any] = field(default_factory=dict, repr=False)
    loaded_tasks: dict[str, Any] = field(default_factory=dict, repr=False)

    def add(self, kind: str, spec: Any, plugin: str) -> None:
        expected = KINDS[kind]
        if not isinstance(spec, expected):
            raise TypeError(f"plugin {plugin!r} registered {spec!r} as {kind}; expected a {expected.__name__}")
        table = self.items[kind]
        if spec.name in table:
            other = table[spec.name].plugin
            raise UserError(f"{KIND_SINGULAR[kind]} {spec.name!r} is registered by two plugins: "
                            f"{other!r} and {plugin!r}; uninstall or block one (TLHUB_BLOCK_PLUGINS)")
        table[spec.name] = replace(spec, plugin=plugin)

    def get(self, kind: str, name: str) -> Any:
        table = self.items[kind]
        if name in table:
            return table[name]
        raise UserError(unknown_message(kind, name, table, self.provider))

    def modality(self, name: str) -> Any:
        """The loaded ``tlhub.modality.Modality`` called ``name`` (loaded once per registry)."""
        if name not in self.loaded_modalities:
            self.loaded_modalities[name] = self.get("modalities", name).load()
        return self.loaded_modalities[name]

    def task(self, name: str) -> Any:
        """The loaded ``tlhub.task.Task`` called ``name`` (loaded once per registry)."""
        if name not in self.loaded_tasks:
            self.loaded_tasks[name] = self.get("tasks", name).load()
        return self.loaded_tasks[name]

    def source_modality(self, source: str) -> Any:
        """The loaded ``Modality`` of the data that data source ``source`` gives."""
        return self.modality(self.get("data-sources", source).modality)

    def names(self, kind: str) -> list[str]:
        return sorted(self.items[kind])

    def resolve(self, kind: str, name: str, given: dict, path: str) -> tuple[Any, dict]:
        """(descriptor, options with declared defaults) or ``UserError`` naming every bad option under ``path``."""
        spec = self.get(kind, name)
        opts, errors = resolve_options(path, dict(given or {}), spec.options)
        if errors:
            raise UserError(errors=errors)
        return spec, opts


def unknown_message(kind: str, name: str, table: dict,
                    provider: Callable[[str, str], str | None] | None = None) -> str:
    msg = f"unknown {KIND_SINGULAR[kind]} {name!r}{did_you_mean(name, table)}"
    plugin = provider(kind, name) if provider is not None else None
    if plugin:
        msg += (f"; it is provided by the installed plugin {plugin}, which is not loaded "
                "(TLHUB_BLOCK_PLUGINS / TLHUB_PLUGINS)")
    elif table:
        msg += f" (available: {', '.join(sorted(table))})"
    return msg
