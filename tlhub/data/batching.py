"""Which examples share a batch: in order, or grouped by length so that a text batch pads little.

Text batches are padded to their longest example, so a batch of one long and many short sentences
costs as much as a batch of long ones. Grouping similar lengths (as Hugging Face's ``group_by_length``
and bucketing samplers do) removes most of that padding. Training keeps its randomness: each epoch
shuffles the examples, cuts them into megabatches of ``MEGABATCH`` batches, sorts each megabatch by
length, cuts it into batches and shuffles the order of the full batches (a short one stays last, as
Accelerate's batch sharding expects). Evaluation and the cache fill have no order to keep (results
are put back in place), so they sort the whole split by length.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch

MEGABATCH = 50  # batches per sorted megabatch: HF's LengthGroupedSampler uses 50 too


class Batches(list):
    """Lists of indices, all ``batch_size`` long but the last: what Accelerate reads from a batch sampler."""

    drop_last = False

    def __init__(self, batches, batch_size: int):
        super().__init__(batches)
        self.batch_size = batch_size


def in_order(n: int, batch_size: int) -> Batches:
    return Batches([list(range(i, min(i + batch_size, n))) for i in range(0, n, batch_size)], batch_size)


def by_length(lengths: Sequence[int], batch_size: int) -> Batches:
    """Every index once, longest first, cut into batches (evaluation and cache fills)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return Batches([order[i:i + batch_size] for i in range(0, len(order), batch_size)], batch_size)


def flat(batches) -> list[int]:
    """The example order a loader over ``batches`` gives (gathered over processes, padding dropped)."""
    return [i for b in batches for i in b]


class _Epoch:
    """Where Accelerate's ``set_epoch`` finds the epoch when it wraps the batch sampler (several processes)."""

    epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch


class LengthGroupedBatches(torch.utils.data.Sampler):
    """Training batches of similar lengths in a random order, the same for a given (seed, epoch)."""

    drop_last = False

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int, megabatch: int = MEGABATCH):
        super().__init__()
        self.lengths, self.batch_size, self.seed, self.megabatch = list(lengths), batch_size, seed, megabatch
        self.sampler = _Epoch()

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return -(-len(self.lengths) // self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.sampler.epoch)
        perm = torch.randperm(len(self.lengths), generator=g).tolist()
        size = self.megabatch * self.batch_size
        batches = []
        for start in range(0, len(perm), size):
            mega = sorted(perm[start:start + size], key=lambda i: -self.lengths[i])
            batches += [mega[i:i + self.batch_size] for i in range(0, len(mega), self.batch_size)]
        full = [b for b in batches if len(b) == self.batch_size]
        yield from (full[i] for i in torch.randperm(len(full), generator=g).tolist())
        yield from (b for b in batches if len(b) < self.batch_size)  # the short tail batch stays last
