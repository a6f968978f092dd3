"""Stratified seeded splits and the checks every split must pass."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from tlhub.errors import UserError
from tlhub.interfaces import DataContext, SourceData, Split


def stratified_split(split: Split, fraction: float, seed: int) -> tuple[Split, Split]:
    """(rest, held_out): ``fraction`` of each class held out, chosen by ``seed``.

    Hand-written rather than sklearn's ``train_test_split`` so that classes with one example
    do not raise and the same seed gives the same split for any number of classes.
    """
    labels = np.asarray(split.labels)
    rng = np.random.default_rng(seed)
    held = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        held.extend(idx[: int(round(fraction * len(idx)))].tolist())
    held_set = set(held)
    rest = [i for i in range(len(labels)) if i not in held_set]
    held.sort()
    return _take(split, rest), _take(split, held)


def _take(split: Split, idx: list[int]) -> Split:
    items = split.items
    return Split([items[i] for i in idx], [int(split.labels[i]) for i in idx])


def limit_split(split: Split, n: int, seed: int) -> Split:
    if not n or n >= len(split):
        return split
    _, kept = stratified_split(split, n / len(split), seed)
    return kept


@dataclass
class Splits:
    classes: list[str]
    train: Split
    val: Split
    test: Split
    skipped: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}


def _check(name: str, split: Split, classes: list[str], require_all: bool) -> list[str]:
    errors = []
    if len(split) == 0:
        return [f"data: the {name} split is empty"]
    bad = sorted({int(y) for y in split.labels if not 0 <= int(y) < len(classes)})
    if bad:
        errors.append(f"data: the {name} split has labels outside the {len(classes)} classes: {bad[:10]}")
    if require_all:
        counts = Counter(int(y) for y in split.labels)
        empty = [classes[i] for i in range(len(classes)) if counts.get(i, 0) == 0]
        if empty:
            errors.append(f"data: class(es) with no {name} examples: {', '.join(map(str, empty[:20]))}")
    return errors


def make_splits(recipe, registry, ctx: DataContext) -> Splits:
    """Load the recipe's data source(s) and return train/val/test splits (checked)."""
    from tlhub.options import resolve_options

    d = recipe.data
    spec = registry.get("data-sources", d.source)
    opts, errs = resolve_options("data.options", d.options, spec.options)
    if errs:
        raise UserError(errors=errs)
    data: SourceData = spec.load(opts, ctx)
    classes = [str(c) for c in data.classes]
    if len(classes) < 2:
        raise UserError(f"data: source {d.source!r} gives {len(classes)} class(es); classification needs at least 2")
    skipped = list(data.skipped)
    train, val, test = data.train, data.val, data.test
    if train is None or len(train) == 0:
        raise UserError(f"data: source {d.source!r} gives no training examples")
    if d.test is not None:
        tspec = registry.get("data-sources", d.test.source)
        topts, errs = resolve_options("data.test.options", d.test.options, tspec.options)
        if errs:
            raise UserError(errors=errs)
        tdata: SourceData = tspec.load(topts, ctx)
        skipped += tdata.skipped
        test = tdata.test if tdata.test is not None else tdata.train
        test = _align(test, [str(c) for c in tdata.classes], classes)
    if test is None:
        train, test = stratified_split(train, d.test_split, d.split_seed + 1)
    if val is None:
        train, val = stratified_split(train, d.val_split, d.split_seed)
    train = limit_split(train, d.limit, d.split_seed)
    errors = _check("train", train, classes, True) + _check("val", val, classes, False) \
        + _check("test", test, classes, False)
    if errors:
        raise UserError(errors=errors)
    return Splits(classes, train, val, test, skipped)


def _align(split: Split | None, their: list[str], ours: list[str]) -> Split:
    if split is None:
        raise UserError("data.test: the test source gives no examples")
    if their == ours:
        return split
    missing = [c for c in their if c not in ours]
    if missing:
        raise UserError(f"data.test: classes not in the training data: {', '.join(missing[:10])}")
    remap = [ours.index(c) for c in their]
    return Split(split.items, [remap[int(y)] for y in split.labels])
