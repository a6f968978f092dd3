"""The trained model (backbone + head) and how a phase freezes it, BatchNorm included."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .interfaces import Backbone

_BN = nn.modules.batchnorm._BatchNorm


class TransferModel(nn.Module):
    """``head(backbone(x))``, with per-group BatchNorm modes that survive ``model.train()``."""

    def __init__(self, backbone: Backbone, head: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.head = head
        self._keep_eval: list[nn.Module] = []  # frozen groups and eval-mode BatchNorm of this phase

    channels_last = False  # see use_channels_last

    @property
    def n_groups(self) -> int:
        return len(self.backbone.groups())

    def use_channels_last(self) -> TransferModel:
        """Conv weights and 4-D inputs in channels-last memory format: oneDNN's faster convolution
        path on CPUs (1.4x per training step for EfficientNet-Lite0 at 64 px on a 2-core Xeon)."""
        self.channels_last = True
        return self.to(memory_format=torch.channels_last)

    def prepare_input(self, x: Any) -> Any:
        if self.channels_last and isinstance(x, torch.Tensor) and x.dim() == 4:
            return x.contiguous(memory_format=torch.channels_last)
        return x

    def forward(self, x: Any, start: int = 0) -> torch.Tensor:
        """Logits. ``start`` > 0 means ``x`` is the state after the first ``start`` groups
        (a cached frozen prefix); ``start == n_groups + 1`` means ``x`` is pooled features."""
        if start <= self.n_groups:
            x = self.backbone.pool(self.backbone.run_groups(self.prepare_input(x), start))
        return self.head(x)

    def train(self, mode: bool = True):
        super().train(mode)
        # model.train() would switch frozen BatchNorm back to batch statistics (pytorch #66073), and
        # dropout/drop-path inside a frozen group would make it compute a different tensor every epoch.
        for m in self._keep_eval:
            m.eval()
        return self


@dataclass(frozen=True)
class GroupState:
    name: str
    params: int
    trainable: int
    bn_layers: int
    bn_mode: str


def apply_phase(model: TransferModel, trainable: set[str], bn_default: str, bn_groups: dict) -> list[GroupState]:
    """Set requires_grad and BatchNorm modes for one phase; return the per-group audit.

    A group with no trainable parameter runs wholly in eval mode (no dropout or drop-path).
    A frozen group's BatchNorm is 'frozen' (no grad, eval mode). A trainable group's BatchNorm
    follows ``bn_default`` or ``bn_groups[name]``: 'frozen', 'eval' (affine trains, running
    statistics fixed) or 'train' (batch statistics, running statistics update).
    """
    bb = model.backbone
    names = dict(bb.named_parameters())
    unknown = set(bn_groups) - set(bb.group_names)
    if unknown:
        from .errors import UserError, did_you_mean
        g = sorted(unknown)[0]
        raise UserError(f"bn_groups: the backbone has no group {g!r}{did_you_mean(g, bb.group_names)} "
                        f"(groups: {', '.join(bb.group_names)})")
    for n, p in names.items():
        p.requires_grad_(n in trainable)
    for p in model.head.parameters():
        p.requires_grad_(True)
    model._keep_eval = []
    audit = []
    for (gname, module), (_, pnames) in zip(bb.groups(), bb.param_groups()):
        n_train = sum(names[p].numel() for p in pnames if p in trainable)
        mode = "frozen" if n_train == 0 else bn_groups.get(gname, bn_default)
        bns = [m for m in module.modules() if isinstance(m, _BN)]
        for m in bns:
            if mode == "frozen":
                for p in m.parameters(recurse=False):
                    p.requires_grad_(False)
            if mode in ("frozen", "eval"):
                model._keep_eval.append(m)
        if n_train == 0:
            model._keep_eval.append(module)  # a wholly frozen group is a fixed feature extractor
        n_train = sum(names[p].numel() for p in pnames if names[p].requires_grad)
        audit.append(GroupState(gname, sum(names[p].numel() for p in pnames), n_train, len(bns), mode))
    model.train()
    return audit


def frozen_prefix(audit: list[GroupState]) -> int:
    """How many leading groups are wholly frozen (no trainable parameter, BatchNorm frozen)."""
    k = 0
    for g in audit:
        if g.trainable or g.bn_mode != "frozen":
            break
        k += 1
    return k


def format_audit(audit: list[GroupState], head_params: int) -> str:
    width = max(len(g.name) for g in audit + [GroupState("head", 0, 0, 0, "")])
    lines = [f"  {'group':<{width}}  {'state':<9} {'params':>10} {'trainable':>10}  batchnorm"]
    for g in audit:
        state = "frozen" if g.trainable == 0 else ("trainable" if g.trainable == g.params else "partial")
        bn = f"{g.bn_layers} x {g.bn_mode}" if g.bn_layers else "-"
        lines.append(f"  {g.name:<{width}}  {state:<9} {g.params:>10,} {g.trainable:>10,}  {bn}")
    lines.append(f"  {'head':<{width}}  {'trainable':<9} {head_params:>10,} {head_params:>10,}  -")
    return "\n".join(lines)
