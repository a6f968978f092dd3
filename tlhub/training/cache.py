"""Frozen-prefix caching: run each example through the frozen leading groups once per phase.

While the first k parameter groups are frozen (no grad, eval mode) and the input pipeline has no
randomness, they compute the same tensor for the same example in every epoch. The phase then
trains only the rest on the stored states (``tlhub.states``). Fixed-shape states (image feature
maps, pooled features) live in one array per field, in memory up to a budget and in a memory-mapped
file in the run directory beyond it; token states (text of varying length) are kept per example.
"""
from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ContextManager

import numpy as np
import torch

from tlhub import states
from tlhub.model.transfer import Entry

log = logging.getLogger("tlhub")
STORE_DTYPES = {"float16": torch.float16, "float32": torch.float32}


class StateArrays:
    """Fixed-shape states of a whole split: one array per field of the state, row i = example i."""

    def __init__(self, kind: type, arrays: list[np.ndarray]):
        self.kind, self.arrays = kind, arrays
        self.paths = [Path(a.filename) for a in arrays if isinstance(a, np.memmap)]  # spill files, removed by the phase

    @classmethod
    def allocate(cls, n: int, state, budget_mb: float, spill: Path) -> StateArrays:
        parts = states.tensors(state)
        shapes = [(n, *p.shape[1:]) for p in parts]
        dtypes = [p.numpy().dtype for p in parts]
        nbytes = sum(int(np.prod(s)) * np.dtype(d).itemsize for s, d in zip(shapes, dtypes))
        if nbytes <= budget_mb * 2**20:
            return cls(type(state), [np.empty(s, dtype=d) for s, d in zip(shapes, dtypes)])
        spill.parent.mkdir(parents=True, exist_ok=True)
        paths = [spill.with_name(f"{spill.name}.{j}.bin") for j in range(len(parts))]
        log.info("  cache: %.0f MB over the %.0f MB memory budget: memory-mapped at %s", nbytes / 2**20, budget_mb,
                 ", ".join(map(str, paths)))
        return cls(type(state), [np.lib.format.open_memmap(str(p), mode="w+", dtype=d, shape=s)
                           for p, s, d in zip(paths, shapes, dtypes)])

    def write(self, idx: list[int], state) -> None:
        rows = slice(idx[0], idx[-1] + 1) if idx == list(range(idx[0], idx[-1] + 1)) else idx
        for arr, part in zip(self.arrays, states.tensors(state)):
            arr[rows] = part.numpy()

    def __getitem__(self, i: int):
        return states.rebuild(self.kind, [torch.from_numpy(np.asarray(a[i])) for a in self.arrays])

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.arrays)


class CachedDataset(torch.utils.data.Dataset):
    """Per-example cached states (float tensors read back as ``dtype``) and labels; ``collate`` batches them."""

    def __init__(self, backbone, labels, rows, dtype=torch.float32):
        self.backbone, self.labels, self.rows, self.dtype = backbone, list(labels), rows, dtype

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        return states.map_floats(self.rows[i], lambda t: t.to(self.dtype)), self.labels[i]

    def collate(self, batch):
        return self.backbone.collate_state([b[0] for b in batch]), torch.tensor([b[1] for b in batch])

    @property
    def lengths(self) -> list[int] | None:
        """Tokens per cached example (token states vary in length; fixed-shape states have none)."""
        return None if isinstance(self.rows, StateArrays) else [len(states.tensors(r)[0]) for r in self.rows]

    @property
    def nbytes(self) -> int:
        if isinstance(self.rows, StateArrays):
            return self.rows.nbytes
        return sum(t.numel() * t.element_size() for row in self.rows for t in states.tensors(row))


@dataclass(frozen=True)
class Shard:
    """This process's part of a cache fill: it runs batches ``rank::world`` of the split, then ``gather``
    (a list from every process, concatenated in rank order) gives every process the whole cache: each
    process trains on other examples every epoch (a new shuffle), so each needs all of them."""

    rank: int = 0
    world: int = 1
    gather: Callable[[list], list] | None = None


@torch.no_grad()
def build_cache(model, dataset, collate, entry: Entry, *, batch_size: int, store_dtype: str, budget_mb: float,
                spill_path: Path, desc: str, show_progress: bool,
                autocast: Callable[[], ContextManager] = contextlib.nullcontext, shard: Shard = Shard(),
                group_by_length: bool = False) -> CachedDataset:
    """Run ``dataset`` once through the model up to ``entry`` (a frozen prefix, or pooled features).

    Batches go to the device of the model's weights and run under ``autocast`` (the run's mixed
    precision); the states are stored on the CPU as ``store_dtype``, in the dataset's order. With
    ``group_by_length`` (text datasets have ``lengths``) batches hold examples of similar length."""
    from tqdm.auto import tqdm

    from tlhub.data.batching import by_length, in_order

    n = len(dataset)
    lengths = getattr(dataset, "lengths", None)
    batches = by_length(lengths, batch_size) if group_by_length and lengths is not None else in_order(n, batch_size)
    mine = batches[shard.rank::shard.world]
    if shard.world > 1:  # spill files per process: no two processes write one file
        spill_path = spill_path.with_name(f"{spill_path.name}.rank{shard.rank}")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=mine, collate_fn=collate)
    store = STORE_DTYPES[store_dtype]
    rows: StateArrays | list | None = None
    local = []
    for idx, (x, _) in zip(mine, tqdm(loader, desc=desc, leave=False, disable=None if show_progress else True,
                                      unit="batch")):
        with autocast():
            state = model.prefix(states.to(x, device), entry)
        state = states.map_floats(states.to(state, "cpu"), lambda t: t.to(store))
        if shard.world > 1:
            local.append((idx, state))
        else:
            rows = _put(rows, n, idx, state, model.backbone, budget_mb, spill_path)
    if shard.world > 1:
        for idx, state in shard.gather(local):
            rows = _put(rows, n, idx, state, model.backbone, budget_mb, spill_path)
    model.train(was_training)
    return CachedDataset(model.backbone, dataset.labels, rows if rows is not None else [])


def _put(rows, n: int, idx: list[int], state, backbone, budget_mb: float, spill: Path):
    """Store a batch's states at their examples' positions (allocating the store on the first batch)."""
    if rows is None:
        rows = StateArrays.allocate(n, state, budget_mb, spill) if states.fixed_shape(state) else [None] * n
    if isinstance(rows, StateArrays):
        rows.write(idx, state)
    else:
        for i, item in zip(idx, backbone.split_state(state)):
            rows[i] = item
    return rows


def cache_bytes(ds: CachedDataset) -> int:
    return ds.nbytes
