"""Optimizer over trainable parameters only (per-group learning rates) and the lr schedule."""
from __future__ import annotations

import torch

from tlhub.model import TransferModel
from tlhub.plugins import get_registry


def build_optimizer(model: TransferModel, phase, lrs: dict[str, float]) -> torch.optim.Optimizer:
    """One optimizer group per trainable backbone group plus the head, at the run plan's learning rates
    (``lrs``: group name or "head" -> lr, from ``PhasePlan.lrs``); ``phase`` gives the optimizer's kind."""
    groups = []
    params = dict(model.backbone.named_parameters())
    for gname, pnames in model.backbone.param_groups():
        ps = [params[p] for p in pnames if params[p].requires_grad]
        if ps:
            groups.append({"params": ps, "lr": lrs[gname], "name": gname})
    head = [p for p in model.head.parameters() if p.requires_grad]
    groups.append({"params": head, "lr": lrs["head"], "name": "head"})
    return get_registry().get("optimizers", phase.optimizer).build(groups, phase)


def build_scheduler(optimizer, phase, total_steps: int):
    """The phase's registered schedule (``SchedulerSpec``; built-ins constant / cosine / linear) after an
    optional linear warm-up of ``warmup * total`` steps."""
    warm = int(phase.warmup * total_steps)
    after = get_registry().get("schedulers", phase.scheduler).factor

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / (warm + 1)
        return after((step - warm) / max(1, total_steps - warm))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
