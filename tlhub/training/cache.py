"""Frozen-prefix caching: run each example through the frozen leading groups once per phase.

While the first k parameter groups are frozen (no grad, eval mode) and the input pipeline has no
randomness, they compute the same tensor for the same example in every epoch. The phase then
trains only the rest on the stored states (``tlhub.states``). Fixed-shape states (image feature
maps, pooled features) live in one array per field, in memory up to a budget and in a memory-mapped
file in the run directory beyond it. Token states (text of varying length) are trimmed to each
example's last real token and laid end to end in one array per field (``TokenArrays``: row offsets
and lengths index it), under the same budget; a batch is gathered from it by slicing. Other states
of varying shape (tuples from older plugins) are kept per example.
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
from tlhub.artifacts import rundir
from tlhub.data.batching import by_length, in_order
from tlhub.interfaces import Backbone
from tlhub.data.targets import stack_targets
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
        rundir.check_free_space(spill.parent, nbytes, "the frozen-feature cache")
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


class TokenArrays:
    """Token states of a whole split, end to end: ``hidden`` ``[total tokens, ...]`` and ``mask``
    ``[total tokens]``; example i is rows ``starts[i] : starts[i] + lens[i]`` of both. Two arrays instead
    of two tensors per example: no per-example allocations, and a spill file beyond the budget."""

    def __init__(self, kind: type, arrays: list[np.ndarray], starts: np.ndarray, lens: np.ndarray, paths=()):
        self.kind, self.arrays, self.starts, self.lens, self.paths = kind, arrays, starts, lens, list(paths)

    def __getitem__(self, i: int):
        s, n = int(self.starts[i]), int(self.lens[i])
        return states.rebuild(self.kind, [torch.from_numpy(np.asarray(a[s:s + n])) for a in self.arrays])

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.arrays)


class TokenWriter:
    """Builds ``TokenArrays`` from batches given in any order (the fill runs batches sorted by length).
    Batches are kept in memory while the total stays within ``budget_mb``; beyond it they are appended
    to one spill file per field, memory-mapped when the fill ends."""

    def __init__(self, n: int, kind: type, budget_mb: float, spill: Path):
        self.kind, self.budget, self.spill = kind, budget_mb * 2**20, spill
        self.starts, self.lens = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
        self.chunks: list[list[np.ndarray]] = []  # per batch: one array per field
        self.files: list | None = None
        self.total = self.nbytes = 0

    def write(self, idx: list[int], state) -> None:
        parts = states.tensors(state)
        mask = parts[1]
        ends = states.token_ends(mask)  # each example up to its last real token, as states.split cuts it
        keep = torch.arange(mask.shape[1]) < ends[:, None]
        rows = [p[keep].numpy() for p in parts]  # [tokens of the batch, ...] in example order
        self.starts[idx] = self.total + np.concatenate([[0], np.cumsum(ends.numpy())[:-1]])
        self.lens[idx] = ends.numpy()
        self.total += len(rows[0])
        self.nbytes += sum(r.nbytes for r in rows)
        self.chunks.append(rows)
        if self.files is None and self.nbytes > self.budget:
            self.spill.parent.mkdir(parents=True, exist_ok=True)
            self.paths = [self.spill.with_name(f"{self.spill.name}.{j}.bin") for j in range(len(rows))]
            self.files = [open(p, "wb") for p in self.paths]  # noqa: SIM115 (open while the fill appends)
        if self.files is not None:
            for chunk in self.chunks:
                for f, r in zip(self.files, chunk):
                    f.write(np.ascontiguousarray(r).tobytes())
            self.layout = [(r.dtype, r.shape[1:]) for r in rows]
            self.chunks = []

    def finish(self) -> TokenArrays:
        if self.files is None:
            arrays = [np.concatenate(fields) for fields in zip(*self.chunks)]
            return TokenArrays(self.kind, arrays, self.starts, self.lens)
        for f in self.files:
            f.close()
        log.info("  cache: %.0f MB of token states over the %.0f MB memory budget: memory-mapped at %s",
                 self.nbytes / 2**20, self.budget / 2**20, ", ".join(map(str, self.paths)))
        arrays = [np.memmap(p, dtype=d, mode="c", shape=(self.total, *shape))
                  for p, (d, shape) in zip(self.paths, self.layout)]
        return TokenArrays(self.kind, arrays, self.starts, self.lens, self.paths)


class CachedDataset(torch.utils.data.Dataset):
    """Cached states (float tensors read back as ``dtype``) and the task's targets (int classes, float arrays:
    stored as the split has them); ``collate`` batches them."""

    def __init__(self, backbone, labels, rows, dtype=torch.float32):
        self.backbone, self.labels, self.rows, self.dtype = backbone, list(labels), rows, dtype

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        return states.map_floats(self.rows[i], lambda t: t.to(self.dtype)), self.labels[i]

    def __getitems__(self, idx: list[int]) -> list:
        """A DataLoader's batch: the stored rows as they are (slices of the store); ``collate`` converts
        the padded batch to ``dtype`` once instead of each example."""
        return [(self.rows[i], self.labels[i]) for i in idx]

    def collate(self, batch):
        state = self.backbone.collate_state([b[0] for b in batch])
        return states.map_floats(state, lambda t: t.to(self.dtype)), stack_targets([b[1] for b in batch])

    @property
    def lengths(self) -> list[int] | None:
        """Tokens per cached example (token states vary in length; fixed-shape states have none)."""
        if isinstance(self.rows, StateArrays):
            return None
        if isinstance(self.rows, TokenArrays):
            return self.rows.lens.tolist()
        return [len(states.tensors(r)[0]) for r in self.rows]

    @property
    def nbytes(self) -> int:
        if isinstance(self.rows, (StateArrays, TokenArrays)):
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
    rows: StateArrays | TokenWriter | list | None = None
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
    if isinstance(rows, TokenWriter):
        rows = rows.finish()
    return CachedDataset(model.backbone, dataset.labels, rows if rows is not None else [])


def _put(rows, n: int, idx: list[int], state, backbone, budget_mb: float, spill: Path):
    """Store a batch's states at their examples' positions (allocating the store on the first batch)."""
    if rows is None:
        if states.fixed_shape(state):
            rows = StateArrays.allocate(n, state, budget_mb, spill)
        elif _flat(state, backbone):
            rows = TokenWriter(n, type(state), budget_mb, spill)
        else:
            rows = [None] * n
    if isinstance(rows, (StateArrays, TokenWriter)):
        rows.write(idx, state)
    else:
        for i, item in zip(idx, backbone.split_state(state)):
            rows[i] = item
    return rows


def _flat(state, backbone) -> bool:
    """Token states go end to end unless the backbone cuts and batches its states its own way."""
    return isinstance(state, states.TokenStates) and type(backbone).split_state is Backbone.split_state \
        and type(backbone).collate_state is Backbone.collate_state


def spill_files(ds) -> list[Path]:
    """The memory-mapped files behind a dataset's cached states (none when it is held in memory or not a cache)."""
    return list(getattr(getattr(ds, "rows", None), "paths", ()))


def cache_bytes(ds: CachedDataset) -> int:
    return ds.nbytes
