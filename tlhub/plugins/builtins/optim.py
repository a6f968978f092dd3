"""Built-in optimizers (adam, adamw, sgd) and schedules (constant, cosine, linear), registered like a plugin's."""
from __future__ import annotations

import math

from tlhub.hookspecs import hookimpl
from tlhub.registry import OptimizerSpec, SchedulerSpec


def _adam(groups, phase):
    import torch
    return torch.optim.Adam(groups, lr=phase.lr, weight_decay=phase.weight_decay)


def _adamw(groups, phase):
    import torch
    return torch.optim.AdamW(groups, lr=phase.lr, weight_decay=phase.weight_decay)


def _sgd(groups, phase):
    import torch
    return torch.optim.SGD(groups, lr=phase.lr, momentum=phase.momentum, weight_decay=phase.weight_decay)


def _constant(progress: float) -> float:
    return 1.0


def _cosine(progress: float) -> float:
    return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def _linear(progress: float) -> float:
    return max(0.0, 1.0 - progress)


@hookimpl
def register_optimizers(register):
    register(OptimizerSpec("adam", "Adam (weight decay added to the gradient)", _adam))
    register(OptimizerSpec("adamw", "AdamW (decoupled weight decay)", _adamw))
    register(OptimizerSpec("sgd", "SGD with momentum (phases.N.momentum)", _sgd))


@hookimpl
def register_schedulers(register):
    register(SchedulerSpec("constant", "the phase's learning rate throughout", _constant))
    register(SchedulerSpec("cosine", "half a cosine from the learning rate down to 0", _cosine))
    register(SchedulerSpec("linear", "a straight line from the learning rate down to 0", _linear))
