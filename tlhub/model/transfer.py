"""The trained model: ``head(backbone(x))``, entered at any group (frozen-prefix caching)."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from tlhub.interfaces import Backbone

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
