"""The trained model: ``head(backbone(x))``, entered at any group (frozen-prefix caching)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from tlhub.interfaces import Backbone
from tlhub.states import Pooled


@dataclass(frozen=True)
class Entry:
    """Where inputs enter the model: after its first ``groups`` backbone groups (0: raw inputs), or, with
    ``pooled``, as the pooled features the head takes (the cache of a wholly frozen backbone)."""

    groups: int = 0
    pooled: bool = False

    @classmethod
    def after_frozen(cls, k: int, n_groups: int) -> Entry:
        """The cache's entry after a frozen prefix of ``k`` groups: every group frozen means pooled
        features, the smallest state."""
        return cls(k, pooled=k == n_groups)

    @property
    def cached(self) -> bool:
        return self.groups > 0 or self.pooled

    @property
    def label(self) -> str:
        """How training inputs are logged: raw, pooled-cache or cache-after-K-groups."""
        return "pooled-cache" if self.pooled else (f"cache-after-{self.groups}-groups" if self.groups else "raw")


RAW = Entry()


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

    def forward(self, x: Any, entry: Entry = RAW) -> torch.Tensor:
        """Logits of ``x``, which enters at ``entry``: raw inputs, the state after a cached frozen prefix,
        or pooled features (``Pooled`` or a ``[B, feature_dim]`` tensor)."""
        return self.head(self.features(x, entry))

    def features(self, x: Any, entry: Entry = RAW) -> torch.Tensor:
        """What the head takes: ``[B, feature_dim]``."""
        if entry.pooled:
            return getattr(x, "features", x)
        return self.backbone.features(self.backbone.run_groups(self.prepare_input(x), entry.groups))

    def prefix(self, x: Any, entry: Entry) -> Any:
        """The state where ``entry`` enters: groups ``[0, entry.groups)`` run on raw ``x``, pooled if asked
        (what the frozen-prefix cache stores)."""
        state = self.backbone.run_groups(self.prepare_input(x), 0, entry.groups)
        return Pooled(self.backbone.features(state)) if entry.pooled else state

    def train(self, mode: bool = True):
        super().train(mode)
        # model.train() would switch frozen BatchNorm back to batch statistics (pytorch #66073), and
        # dropout/drop-path inside a frozen group would make it compute a different tensor every epoch.
        for m in self._keep_eval:
            m.eval()
        return self
