"""Typed states: what flows between groups and what the frozen-prefix cache stores is a TokenStates /
Pooled / tensor, never a tuple guessed from its length. The cache fill of every built-in backbone gives
the same features as running the model directly, whatever the last batch holds (0..3 leftovers)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

pytest.importorskip("tlhub_text")

from tlhub_text.testing import WORDS, save_tiny_model

from tlhub.interfaces import Pooled, TokenStates
from tlhub.model import RAW, Entry, TransferModel
from tlhub.options import resolve_options
from tlhub.plugins import get_registry
from tlhub.training.cache import StateArrays, TokenArrays, build_cache

IMAGE = ["resnet18", "resnet50", "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_lite0"]
TEXT = [("minilm-l6", None, "mean"), ("minilm-l6", None, "cls"), ("hf", "bert", "cls"), ("hf", "bert", "mean"),
        ("hf", "distilbert", "mean"), ("hf", "roberta", "cls")]
CASES = [(name, None, None) for name in IMAGE] + [("timm", "resnet10t", None)] + TEXT


def _sentence(i: int) -> str:
    """Sentences of 1..9 words: batches mix lengths, so token states are padded and trimmed."""
    return " ".join(WORDS[(i * 7 + j) % len(WORDS)] for j in range(1 + i % 9))


class ImageSet(torch.utils.data.Dataset):
    def __init__(self, n: int):
        g = torch.Generator().manual_seed(n)
        self.x, self.labels = torch.randn(n, 3, 32, 32, generator=g), [i % 2 for i in range(n)]

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return self.x[i], self.labels[i]


_MODELS: dict = {}


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny-text")
    return {arch: save_tiny_model(root / arch, arch) for arch in ("bert", "distilbert", "roberta")}


def _model(case, tiny_dirs) -> TransferModel:
    if case not in _MODELS:
        name, arch, pooling = case
        spec = get_registry().get("backbones", name)
        given = {} if pooling is None else {"pooling": pooling, "max_length": 16}
        if name == "timm":  # a small timm architecture, random init
            given["model"] = arch
        elif arch:
            given["model"] = str(tiny_dirs[arch])
        opts, errors = resolve_options("model.backbone_options", given, spec.options)
        assert not errors, errors
        torch.manual_seed(0)
        bb = spec.build("none", opts)  # random init: nothing is downloaded
        _MODELS[case] = TransferModel(bb, torch.nn.Linear(bb.feature_dim, 2)).eval()
    return _MODELS[case]


def _dataset(model: TransferModel, n: int):
    if model.backbone.modality == "image":
        return ImageSet(n), None
    from tlhub.data.text import TextDataset
    ds = TextDataset([_sentence(i) for i in range(n)], [i % 2 for i in range(n)], model.backbone.preprocessing)
    return ds, ds.collate


def _entries(n_groups: int) -> list[Entry]:
    """After the first group, in the middle, after every group, and pooled features."""
    return sorted({Entry(1), Entry(max(1, n_groups // 2)), Entry(n_groups), Entry.after_frozen(n_groups, n_groups)},
                  key=lambda e: (e.groups, e.pooled))


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(x for x in c if x))
@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.integers(1, 5), full=st.integers(0, 2), rest=st.integers(0, 3), store_budget=st.sampled_from([64, 0]))
@example(batch=4, full=1, rest=2, store_budget=64)  # the crash of issue 12: a last batch of exactly two
@example(batch=4, full=2, rest=0, store_budget=64)
@example(batch=4, full=0, rest=1, store_budget=0)
@example(batch=5, full=1, rest=3, store_budget=64)
def test_cache_fill_equals_the_direct_path(case, tiny_dirs, tmp_path, batch, full, rest, store_budget):
    rest = min(rest, batch - 1)  # a remainder is smaller than the batch
    n = max(1, full * batch + rest)
    model = _model(case, tiny_dirs)
    ds, collate = _dataset(model, n)
    x, _ = next(iter(torch.utils.data.DataLoader(ds, batch_size=n, collate_fn=collate)))
    with torch.no_grad():
        direct = model.features(x, RAW)
    for entry in _entries(model.n_groups):
        cache = build_cache(model, ds, collate, entry, batch_size=batch, store_dtype="float32",
                            budget_mb=store_budget, spill_path=tmp_path / f"c{entry.groups}{entry.pooled}",
                            desc="test", show_progress=False)
        assert len(cache) == n and cache.labels == ds.labels
        row = cache[0][0]
        if entry.pooled:
            assert isinstance(row, Pooled) and row.features.shape == (model.backbone.feature_dim,)
        elif model.backbone.modality == "text":  # after a pooler group the state is already Pooled
            after_pooler = model.backbone.group_names[entry.groups - 1] == "pooler"
            assert isinstance(row, Pooled if after_pooler else TokenStates)
        else:
            assert isinstance(row, torch.Tensor) and isinstance(cache.rows, StateArrays)
        again, _ = cache.collate([cache[i] for i in range(n)])
        with torch.no_grad():
            through = model.features(again, entry)
        torch.testing.assert_close(through, direct, atol=2e-4, rtol=1e-3)


@pytest.mark.parametrize("budget,store", [(64, "float32"), (0, "float32"), (0, "float16")])
def test_token_states_are_cached_end_to_end_in_two_arrays(tiny_dirs, tmp_path, budget, store):
    """Text states are stored as one hidden array and one mask array (no tensor per example), each example
    trimmed to its real tokens; beyond the memory budget they are memory-mapped files. A DataLoader over
    the cache gives batches equal to the uncached batches' states, read back as float32."""
    import numpy as np

    from tlhub import states
    model = _model(("hf", "bert", "mean"), tiny_dirs)
    ds, collate = _dataset(model, 23)
    entry = Entry(2)
    cache = build_cache(model, ds, collate, entry, batch_size=4, store_dtype=store, budget_mb=budget,
                        spill_path=tmp_path / "c", desc="test", show_progress=False, group_by_length=True)
    rows = cache.rows
    assert isinstance(rows, TokenArrays) and len(rows.arrays) == 2
    assert rows.arrays[0].shape == (sum(ds.lengths), model.backbone.feature_dim) and cache.lengths == ds.lengths
    assert str(rows.arrays[0].dtype) == store and isinstance(rows.arrays[0], np.memmap) == (budget == 0)
    assert [p.name for p in rows.paths] == (["c.0.bin", "c.1.bin"] if budget == 0 else [])
    loader = torch.utils.data.DataLoader(cache, batch_size=5, collate_fn=cache.collate)
    for b, ((x, y), (raw, y_raw)) in enumerate(zip(loader, torch.utils.data.DataLoader(ds, batch_size=5,
                                                                                        collate_fn=collate))):
        assert isinstance(x, TokenStates) and x.hidden.dtype == torch.float32 and torch.equal(y, y_raw)
        with torch.no_grad():
            want = model.prefix(raw, entry)
        assert torch.equal(x.mask, want.mask)
        tol = {"atol": 1e-2, "rtol": 1e-2} if store == "float16" else {"atol": 1e-5, "rtol": 1e-5}
        torch.testing.assert_close(x.hidden * x.mask[..., None], want.hidden * want.mask[..., None], **tol)
        assert torch.equal(states.collate([cache[i][0] for i in range(5 * b, 5 * b + len(y))]).mask, x.mask)


def test_token_cache_of_two_process_shares_equals_one_process(tiny_dirs, tmp_path):
    """Under two processes each fills every other batch and the gathered shares come in rank order, not in
    the split's order: the token store puts every example's rows where one process would."""
    from tlhub.training.cache import Shard
    model = _model(("hf", "bert", "mean"), tiny_dirs)
    ds, collate = _dataset(model, 19)
    kw = {"batch_size": 4, "store_dtype": "float32", "budget_mb": 64, "desc": "test", "show_progress": False,
              "group_by_length": True}
    whole = build_cache(model, ds, collate, Entry(1), spill_path=tmp_path / "w", **kw)
    shares = {}
    build_cache(model, ds, collate, Entry(1), spill_path=tmp_path / "r1",
                shard=Shard(1, 2, lambda local: shares.setdefault(1, local)), **kw)
    gathered = build_cache(model, ds, collate, Entry(1), spill_path=tmp_path / "r0",
                           shard=Shard(0, 2, lambda local: local + shares[1]), **kw)
    assert gathered.lengths == whole.lengths == ds.lengths
    for i in range(len(ds)):
        a, b = gathered[i][0], whole[i][0]
        assert torch.equal(a.hidden, b.hidden) and torch.equal(a.mask, b.mask)


def test_a_pooled_batch_of_two_is_pooled():
    """The length of a state says nothing: two pooled examples are Pooled, not (hidden, mask)."""
    from tlhub import states
    pooled = Pooled(torch.randn(2, 8))
    items = states.split(pooled)
    assert len(items) == 2 and all(isinstance(i, Pooled) for i in items)
    assert torch.equal(states.collate(items).features, pooled.features)
    tok = TokenStates(torch.randn(2, 5, 4), torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]))
    parts = states.split(tok)
    assert [len(p.hidden) for p in parts] == [3, 5]
    back = states.collate(parts)
    assert torch.equal(back.mask, tok.mask) and torch.equal(back.hidden[1], tok.hidden[1])


def test_text_split_with_a_last_batch_of_two_trains_to_the_end(tmp_path):
    """Issue 12's crash: every split leaves a last batch of 2 (train 18 = 2x8+2, val and test 10 = 8+2);
    phase 1 caches pooled features, phase 2 the state after the embeddings."""
    import tlhub

    model = save_tiny_model(tmp_path / "bert", "bert")
    for name, n in (("train", 18), ("val", 10), ("test", 10)):
        rows = [f"{_sentence(i)}\t{'pos' if i % 2 else 'neg'}" for i in range(n)]
        (tmp_path / f"{name}.tsv").write_text("text\tlabel\n" + "\n".join(rows) + "\n")
    recipe = tmp_path / "two.toml"
    recipe.write_text(f"""
[model]
backbone = "hf"
backbone_options = {{ model = "{model}", pooling = "mean", max_length = 16 }}
weights = "none"
[data]
source = "tsv"
options = {{ path = "train.tsv", val_path = "val.tsv", test_path = "test.tsv" }}
batch_size = 8
eval_batch_size = 8
[[phases]]
name = "head"
epochs = 1
lr = 0.01
freeze = "frozen"
[[phases]]
name = "top"
epochs = 1
lr = 0.001
freeze = "top_k"
freeze_options = {{ k = 1 }}
[output]
dir = "{tmp_path / 'run'}"
""")
    result = tlhub.run(recipe, quiet=True)
    assert [r["train_input"] for r in result.history] == ["pooled-cache", "cache-after-2-groups"]
    assert all(r["examples"] == 18 and r["val_examples"] == 10 for r in result.history)
    assert result.metrics["test_examples"] == 10
    assert Path(result.run_dir / "model" / "model.safetensors").is_file()
