"""A batch's targets as one tensor, whatever the task's per-example target is (``tlhub.task``)."""
from __future__ import annotations

import numpy as np
import torch


def stack_targets(targets) -> torch.Tensor:
    """Int classes -> ``[batch]`` int64; float arrays (multi-hot labels, regression values) -> ``[batch, k]``
    float32 (what torch's default collate makes of the same items)."""
    a = np.asarray(targets)
    if a.dtype.kind == "f":
        return torch.from_numpy(a.astype(np.float32, copy=False))
    return torch.as_tensor(a, dtype=torch.long)
