"""Text batches grouped by length: every example once per epoch, little padding, still shuffled, and
evaluation puts predictions back in the split's order."""
from __future__ import annotations

import random
from types import SimpleNamespace

import pytest
import torch

from tlhub.data.batching import LengthGroupedBatches, by_length, flat, in_order
from tlhub.errors import UserError


def _lengths(n=1000, seed=0):
    rng = random.Random(seed)
    return [rng.randint(3, 60) for _ in range(n)]


def _padding(batches, lengths) -> int:
    return sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in batches)


def test_each_epoch_gives_every_example_once_in_similar_length_batches():
    lengths = _lengths()
    sampler = LengthGroupedBatches(lengths, 32, seed=1)
    epochs = []
    for epoch in (1, 2):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert sorted(flat(batches)) == list(range(len(lengths))) and len(batches) == len(sampler) == 32
        assert all(len(b) == 32 for b in batches[:-1]) and len(batches[-1]) == 1000 - 31 * 32  # short one last
        epochs.append(batches)
    sampler.set_epoch(1)
    assert list(sampler) == epochs[0]  # the same (seed, epoch) gives the same batches (resume)
    assert epochs[0] != epochs[1]
    shuffled = in_order(len(lengths), 32)  # the dataset's order is as random as a shuffle here
    assert _padding(epochs[0], lengths) < 0.2 * _padding(shuffled, lengths)
    # still random: consecutive batches are not sorted by length across the epoch
    firsts = [lengths[b[0]] for b in epochs[0][:-1]]
    assert firsts != sorted(firsts) and firsts != sorted(firsts, reverse=True)


def test_evaluation_batches_cover_the_split_longest_first():
    lengths = _lengths(101)
    batches = by_length(lengths, 8)
    assert sorted(flat(batches)) == list(range(101)) and batches.batch_size == 8 and len(batches[-1]) == 5
    assert [lengths[i] for i in flat(batches)] == sorted(lengths, reverse=True)


def test_length_grouped_evaluation_keeps_the_split_order(tmp_path):
    """The same model scores the same test split with and without grouping: same predictions, in order."""
    from accelerate import Accelerator
    from tlhub_text.testing import WORDS, save_tiny_model

    from tlhub.data.text import TextDataset
    from tlhub.plugins import get_registry
    from tlhub.training.trainer import evaluate_split

    spec = get_registry().get("backbones", "hf")
    folder = save_tiny_model(tmp_path / "bert", "bert")
    torch.manual_seed(0)
    bb = spec.build("none", {"model": str(folder), "max_length": 32, "pooling": "mean"})
    from tlhub.model import TransferModel
    model = TransferModel(bb, torch.nn.Linear(bb.feature_dim, 3)).eval()
    texts = [" ".join(WORDS[(i * 5 + j) % len(WORDS)] for j in range(1 + (i * 7) % 20)) for i in range(37)]
    ds = TextDataset(texts, [i % 3 for i in range(37)], bb.preprocessing)
    splits = SimpleNamespace(classes=["a", "b", "c"], task=get_registry().task("classification"))
    out = {}
    for group in (False, True):
        recipe = SimpleNamespace(data=SimpleNamespace(eval_batch_size=8, batch_size=4, workers=0,
                                                      group_by_length=group),
                                 eval=SimpleNamespace(metrics=["accuracy"]))
        out[group] = evaluate_split(Accelerator(cpu=True), model, ds, ds.collate, recipe, splits)
    (m0, p0, q0), (m1, p1, q1) = out[False], out[True]
    torch.testing.assert_close(q1, q0, atol=1e-5, rtol=1e-4)
    assert torch.equal(p1, p0) and m1["accuracy"] == m0["accuracy"]


def test_group_by_length_is_validated():
    from pathlib import Path

    from tlhub.recipe import load_and_validate
    recipe = Path(__file__).parent / "recipes" / "tiny.toml"
    assert load_and_validate(recipe).data.group_by_length is True
    with pytest.raises(UserError) as err:
        load_and_validate(recipe, ["data.group_by_length='yes'"])
    assert "data.group_by_length" in str(err.value)
