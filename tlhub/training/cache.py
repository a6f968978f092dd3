"""Frozen-prefix caching: run each example through the frozen leading groups once per phase.

While the first k parameter groups are frozen (no grad, eval mode) and the input pipeline has no
randomness, they compute the same tensor for the same example in every epoch. The phase then
trains only the rest on the stored tensors. Fixed-shape states (images) live in one array, in
memory up to a budget and in a memory-mapped file in the run directory beyond it; ragged states
(text of varying length) are kept per example in memory.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

log = logging.getLogger("tlhub")


class CachedDataset(torch.utils.data.Dataset):
    """Per-example cached states and labels; ``collate`` rebuilds batched states."""

    def __init__(self, backbone, labels, fixed: list[np.ndarray] | None, ragged: list | None, dtype):
        self.backbone, self.labels, self.fixed, self.ragged, self.dtype = backbone, list(labels), fixed, ragged, dtype

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        if self.fixed is not None:
            parts = tuple(torch.from_numpy(np.asarray(a[i])).to(self.dtype) for a in self.fixed)
            state = parts[0] if self.single else parts
        else:
            state = tuple(t.to(self.dtype) if t.is_floating_point() else t for t in self.ragged[i]) \
                if isinstance(self.ragged[i], tuple) else self.ragged[i].to(self.dtype)
        return state, self.labels[i]

    single = True

    def collate(self, batch):
        return self.backbone.collate_state([b[0] for b in batch]), torch.tensor([b[1] for b in batch])


@torch.no_grad()
def build_cache(model, dataset, collate, start_stop: tuple[int, int], *, batch_size: int, store_dtype: str,
                budget_mb: float, spill_path: Path, desc: str, show_progress: bool) -> CachedDataset:
    """Run ``dataset`` through groups [0, k) (``k = n_groups + 1`` means pooled features) once."""
    from tqdm.auto import tqdm

    _, k = start_stop
    bb = model.backbone
    n_groups = len(bb.groups())
    was_training = model.training
    model.eval()
    loader = torch.utils.data.DataLoader(dataset, batch_size=min(batch_size, max(1, len(dataset))), shuffle=False,
                                         collate_fn=collate)
    store = torch.float16 if store_dtype == "float16" else torch.float32
    fixed: list[np.ndarray] | None = None
    ragged: list = []
    single = True
    pos = 0
    n = len(dataset)
    for x, _ in tqdm(loader, desc=desc, leave=False, disable=None if show_progress else True, unit="batch"):
        state = bb.run_groups(model.prepare_input(x), 0, min(k, n_groups))
        if k > n_groups:
            state = bb.pool(state)
        single = isinstance(state, torch.Tensor)
        parts = (state,) if single else tuple(state)
        if pos == 0 and _fixed(x):
            fixed = [_allocate(n, p, store, budget_mb, spill_path, j) for j, p in enumerate(parts)]
        if fixed is not None:
            for arr, p in zip(fixed, parts):
                arr[pos: pos + len(p)] = _to_store(p, store).numpy()
        else:
            for item in bb.split_state(state):
                ragged.append(tuple(_to_store(t, store) for t in item) if isinstance(item, tuple)
                              else _to_store(item, store))
        pos += len(parts[0])
    model.train(was_training)
    labels = [int(y) for y in getattr(dataset, "labels")]
    ds = CachedDataset(bb, labels, fixed, None if fixed is not None else ragged, torch.float32)
    ds.single = single
    return ds


def _fixed(x) -> bool:
    """Image inputs give the same state shape for every example; text inputs do not."""
    return isinstance(x, torch.Tensor)


def _to_store(t: torch.Tensor, store: torch.dtype) -> torch.Tensor:
    return t.detach().cpu().to(store) if t.is_floating_point() else t.detach().cpu()


def _allocate(n: int, part: torch.Tensor, store: torch.dtype, budget_mb: float, spill: Path, j: int):
    dtype = {torch.float16: np.float16, torch.float32: np.float32}[store] if part.is_floating_point() \
        else part.numpy().dtype
    shape = (n, *part.shape[1:])
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    if nbytes <= budget_mb * 2**20:
        return np.empty(shape, dtype=dtype)
    spill.parent.mkdir(parents=True, exist_ok=True)
    path = spill.with_name(f"{spill.name}.{j}.bin")
    log.info("  cache: %.0f MB over the %.0f MB memory budget: memory-mapped at %s", nbytes / 2**20, budget_mb, path)
    return np.lib.format.open_memmap(str(path), mode="w+", dtype=dtype, shape=shape)


def cache_bytes(ds: CachedDataset) -> int:
    if ds.fixed is not None:
        return sum(a.nbytes for a in ds.fixed)
    return sum(sum(t.numel() * t.element_size() for t in (it if isinstance(it, tuple) else (it,))) for it in ds.ragged)
