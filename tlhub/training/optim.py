"""Optimizer over trainable parameters only (per-group learning rates) and the lr schedule."""
from __future__ import annotations

import math

import torch

from tlhub.model import TransferModel


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
    if phase.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=phase.lr, momentum=phase.momentum, weight_decay=phase.weight_decay)
    cls = torch.optim.AdamW if phase.optimizer == "adamw" else torch.optim.Adam
    return cls(groups, lr=phase.lr, weight_decay=phase.weight_decay)


def build_scheduler(optimizer, phase, total_steps: int):
    """constant / cosine / linear, each after an optional linear warm-up of ``warmup * total`` steps."""
    warm = int(phase.warmup * total_steps)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / (warm + 1)
        if phase.scheduler == "constant":
            return 1.0
        progress = (step - warm) / max(1, total_steps - warm)
        if phase.scheduler == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
        return max(0.0, 1.0 - progress)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
