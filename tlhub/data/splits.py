"""Seeded splits and the checks every split must pass; the recipe's task (``tlhub.task``) reads the labels,
carves the missing splits (stratified per class or label, or random) and checks the targets."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tlhub.errors import UserError
from tlhub.interfaces import DataContext, SourceData, Split
from tlhub.options import resolve_options
from tlhub.task import count_outputs


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


def random_split(split: Split, fraction: float, seed: int) -> tuple[Split, Split]:
    """(rest, held_out): ``fraction`` of the examples held out, chosen by ``seed`` (no labels to stratify by)."""
    idx = np.random.default_rng(seed).permutation(len(split))
    held = sorted(idx[: int(round(fraction * len(split)))].tolist())
    held_set = set(held)
    return _take(split, [i for i in range(len(split)) if i not in held_set]), _take(split, held)


def _take(split: Split, idx: list[int]) -> Split:
    items, labels = split.items, split.labels
    return Split([items[i] for i in idx], [labels[i] for i in idx])


def limit_split(split: Split, n: int, seed: int, task: Any = None) -> Split:
    if not n or n >= len(split):
        return split
    carve = task.carve if task is not None else stratified_split
    _, kept = carve(split, n / len(split), seed)
    return kept


@dataclass
class Splits:
    classes: list[str]
    train: Split
    val: Split
    test: Split
    skipped: list[str] = field(default_factory=list)
    task: Any = None  # the recipe's tlhub.task.Task, configured with the state fitted on train

    def counts(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}

    def summary(self) -> str:
        """One line for logs and ``tlhub validate --data``, e.g. '2 classes, train 3119 / val 346 / test 611'."""
        n = self.counts()
        counted = count_outputs(len(self.classes), self.task.outputs_are)
        return f"{counted}, train {n['train']} / val {n['val']} / test {n['test']}"


def make_splits(recipe, registry, ctx: DataContext) -> Splits:
    """Load the recipe's data source(s) and return train/val/test splits (checked), with the recipe's task
    configured by its options and the state it fitted on the training split."""

    d = recipe.data
    task = registry.task(recipe.model.task)
    topts, errs = resolve_options("model.task_options", recipe.model.task_options,
                                  registry.get("tasks", recipe.model.task).options)
    if errs:
        raise UserError(errors=errs)
    task = task.configured(topts)
    spec = registry.get("data-sources", d.source)
    opts, errs = resolve_options("data.options", d.options, spec.options)
    if errs:
        raise UserError(errors=errs)
    data: SourceData = task.encode(spec.load(opts, ctx), d.source)
    classes = [str(c) for c in data.classes]
    skipped = list(data.skipped)
    train, val, test = data.train, data.val, data.test
    if train is None or len(train) == 0:
        raise UserError(f"data: source {d.source!r} gives no training examples")
    if d.test is not None:
        tspec = registry.get("data-sources", d.test.source)
        topts, errs = resolve_options("data.test.options", d.test.options, tspec.options)
        if errs:
            raise UserError(errors=errs)
        tdata: SourceData = task.encode(tspec.load(topts, ctx), d.test.source, classes)
        skipped += tdata.skipped
        test = tdata.test if tdata.test is not None else tdata.train
        if test is None:
            raise UserError("data.test: the test source gives no examples")
    if test is None:
        train, test = task.carve(train, d.test_split, d.split_seed + 1)
    if val is None:
        train, val = task.carve(train, d.val_split, d.split_seed)
    train = limit_split(train, d.limit, d.split_seed, task)
    errors = task.check("train", train, classes, True) + task.check("val", val, classes, False) \
        + task.check("test", test, classes, False)
    if errors:
        raise UserError(errors=errors)
    task = task.configured(state=task.fit(train))
    if task.describe():
        ctx.log(f"task: {task.describe()}")
    return Splits(classes, train, val, test, skipped, task)
