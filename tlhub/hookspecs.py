"""Hook specifications: what a tlhub plugin can implement (entry-point group ``tlhub``)."""
from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("tlhub")
hookimpl = pluggy.HookimplMarker("tlhub")


@hookspec
def register_backbones(register):
    """Register pretrained backbones: call ``register(BackboneSpec(...))`` once per backbone."""


@hookspec
def register_heads(register):
    """Register classification heads: call ``register(HeadSpec(...))`` once per head."""


@hookspec
def register_freeze_policies(register):
    """Register freeze policies: call ``register(FreezePolicySpec(...))`` once per policy."""


@hookspec
def register_data_sources(register):
    """Register data sources: call ``register(DataSourceSpec(...))`` once per source."""


@hookspec
def register_metrics(register):
    """Register test-set metrics for ``eval.metrics``: call ``register(MetricSpec(...))`` once per metric."""


@hookspec
def register_modalities(register):
    """Register modalities (how a kind of data becomes model input): call ``register(ModalitySpec(...))``."""


@hookspec
def register_tasks(register):
    """Register tasks (what a model predicts, its loss and scores): call ``register(TaskSpec(...))``."""


@hookspec
def register_optimizers(register):
    """Register optimizers for ``phases.N.optimizer``: call ``register(OptimizerSpec(...))`` once per optimizer."""


@hookspec
def register_schedulers(register):
    """Register learning-rate schedules for ``phases.N.scheduler``: call ``register(SchedulerSpec(...))``."""
