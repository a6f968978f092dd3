"""Contract tests for every text backbone (tlhub-text): real MiniLM-L6, tiny random BERT-family models
through the ``hf`` backbone's local-folder path, and the offline paths. No network."""
from __future__ import annotations

import shutil
import subprocess
import sys
import time

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("tlhub_text")

from tlhub.errors import UserError  # noqa: E402
from tlhub.interfaces import Backbone  # noqa: E402
from tlhub.options import resolve_options  # noqa: E402
from tlhub.plugins import get_registry  # noqa: E402
from tlhub_text.testing import save_tiny_model  # noqa: E402

torch.set_num_threads(1)
TEXTS = ["a great and fun movie", "the plot was dull , boring and not funny at all , the worst film"]


def build(name: str, weights: str = "", **options) -> Backbone:
    spec = get_registry().get("backbones", name)
    opts, errors = resolve_options("model.backbone_options", options, spec.options)
    assert not errors, errors
    return spec.build(weights, opts)


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny-models")
    return {arch: save_tiny_model(root / arch, arch) for arch in ("bert", "distilbert", "roberta")}


CASES = [("minilm-l6", None, "mean"), ("minilm-l6", None, "cls"), ("hf", "bert", "cls"), ("hf", "bert", "mean"),
         ("hf", "distilbert", "cls"), ("hf", "roberta", "mean")]


@pytest.fixture(scope="module", params=CASES, ids=lambda c: "-".join(x for x in c if x))
def backbone(request, tiny_dirs):
    name, arch, pooling = request.param
    opts = {"pooling": pooling, "max_length": 32}
    if arch:
        opts["model"] = str(tiny_dirs[arch])
    return build(name, **opts)


def no_offline_env(monkeypatch):
    """Unset the offline switches (tests/conftest.py sets them) so the code takes its probing path."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)


def batch(bb: Backbone, texts=TEXTS) -> dict:
    enc = bb.preprocessing.tokenizer(list(texts), padding=True, return_tensors="pt")
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}


def test_registered_and_descriptor_only():
    reg = get_registry()
    assert {"hf", "minilm-l6"} <= set(reg.names("backbones"))
    assert {"text-files", "csv", "tsv", "jsonl", "hf"} <= set(reg.names("data-sources"))
    assert reg.get("backbones", "minilm-l6").modality == "text"
    code = ("import sys, tlhub_text.plugin; "
            "print(sorted(m for m in ('torch', 'transformers', 'datasets') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", "the entry-point module must not import torch/transformers/datasets"


def test_features_shape(backbone):
    backbone.eval()
    with torch.no_grad():
        feats = backbone(batch(backbone))
    assert backbone.modality == "text"
    assert feats.shape == (2, backbone.feature_dim) and torch.isfinite(feats).all()
    assert backbone.preprocessing.max_length == 32


def test_groups_cover_every_parameter_once(backbone):
    names = backbone.group_names
    assert names[0] == "embeddings" and names[1] == "layer.0"
    assert names[-1] in ("pooler", f"layer.{len(backbone.layers) - 1}")
    ids = [id(p) for _, m in backbone.groups() for p in m.parameters()]
    assert len(ids) == len(set(ids))
    assert set(ids) == {id(p) for p in backbone.parameters()}
    listed = [n for _, ps in backbone.param_groups() for n in ps]
    assert sorted(listed) == sorted(n for n, _ in backbone.named_parameters())
    # one name per tensor: exporting to safetensors refuses shared tensors
    assert len(backbone.state_dict()) == len({id(t) for t in backbone.state_dict().values()})


def test_backward_reaches_every_parameter(backbone):
    """No unused parameter (DDP would fail on one): the pooler is there only when it is used."""
    backbone.train()
    backbone.zero_grad()
    backbone(batch(backbone)).pow(2).sum().backward()
    missing = [n for n, p in backbone.named_parameters() if p.grad is None]
    assert not missing
    backbone.zero_grad()
    backbone.eval()


def test_staged_groups_equal_the_model(backbone):
    x = batch(backbone)
    n = len(backbone.layers)
    backbone.eval()
    with torch.no_grad():
        ref = backbone.hf(**x)
        state = backbone.run_groups(x, 0, 2)  # the cached-prefix path: run some groups, then the rest
        state = backbone.run_groups(state, 2, n + 1)
        torch.testing.assert_close(state.hidden, ref.last_hidden_state, atol=1e-5, rtol=1e-4)
        feats = backbone(x)
    if backbone.pooler is not None:
        torch.testing.assert_close(feats, ref.pooler_output, atol=1e-5, rtol=1e-4)
    elif backbone.pooling == "cls":
        torch.testing.assert_close(feats, ref.last_hidden_state[:, 0], atol=1e-5, rtol=1e-4)
    else:
        m = x["attention_mask"].unsqueeze(-1).float()
        torch.testing.assert_close(feats, (ref.last_hidden_state * m).sum(1) / m.sum(1), atol=1e-5, rtol=1e-4)


def test_padding_does_not_change_features(backbone):
    backbone.eval()
    with torch.no_grad():
        alone = backbone(batch(backbone, TEXTS[:1]))
        padded = backbone(batch(backbone))[:1]
    torch.testing.assert_close(alone, padded, atol=1e-4, rtol=1e-4)


def test_minilm_is_the_real_pretrained_model():
    bb = build("minilm-l6")
    assert bb.feature_dim == 384 and len(bb.layers) == 6 and bb.pooling == "mean" and bb.pooler is None
    assert 22_000_000 < sum(p.numel() for p in bb.parameters()) < 23_000_000
    bb.eval()
    with torch.no_grad():
        f = torch.nn.functional.normalize(bb(batch(bb, ["a wonderful film", "a marvellous movie",
                                                        "the tax form is due in april"])), dim=-1)
    assert f[0] @ f[1] > f[0] @ f[2] + 0.2  # pretrained: similar sentences are close
    rand = build("minilm-l6", weights="none")
    assert not torch.equal(rand.hf.embeddings.word_embeddings.weight, bb.hf.embeddings.word_embeddings.weight)


def test_hf_default_pooling_and_relative_folder(tiny_dirs, tmp_path, monkeypatch):
    shutil.copytree(tiny_dirs["bert"], tmp_path / "my-bert")
    monkeypatch.chdir(tmp_path)
    bb = build("hf", model="my-bert")
    assert bb.pooling == "cls" and bb.group_names[-1] == "pooler" and bb.preprocessing.max_length == 64
    bb2 = build("hf", model="./my-bert", weights="none")
    assert not torch.equal(bb.hf.embeddings.word_embeddings.weight, bb2.hf.embeddings.word_embeddings.weight)


def test_hf_missing_folder_and_max_length(tiny_dirs, monkeypatch):
    monkeypatch.chdir(tiny_dirs["bert"].parent)
    with pytest.raises(UserError, match="no such model folder './no/such/folder'"):
        build("hf", model="./no/such/folder")
    assert build("hf", model="bert", max_length=1000).preprocessing.max_length == 64  # the model's positions
    assert build("hf", model="roberta", max_length=1000).preprocessing.max_length == 64  # after padding_idx
    with pytest.raises(UserError, match="max_length: must be >= 2"):
        build("hf", model="bert", max_length=1)


def test_weights_word_is_checked(tiny_dirs):
    with pytest.raises(UserError, match="'pretrained'.*'none'"):
        build("hf", weights="imagenet", model=str(tiny_dirs["bert"]))


def test_folder_that_is_not_a_model(tmp_path):
    (tmp_path / "junk").mkdir()
    with pytest.raises(UserError, match="not a loadable Hugging Face model folder"):
        build("hf", model=str(tmp_path / "junk"))


@pytest.mark.parametrize("offline_env", ["1", None], ids=["HF_HUB_OFFLINE", "probe"])
def test_offline_uncached_id_fails_fast(monkeypatch, offline_env, network_attempts):
    """An id that is in no cache: a UserError without trying the network, never a hang on retries."""
    if offline_env:
        monkeypatch.setenv("HF_HUB_OFFLINE", offline_env)
    else:
        no_offline_env(monkeypatch)
        monkeypatch.setattr("tlhub.data.hfhub.hub_reachable", lambda timeout=3.0: False)
    with pytest.raises(UserError) as exc:
        build("hf", model="tlhub-test-nonexistent/bert-tiny-xyz")
    assert network_attempts == []
    msg = str(exc.value)
    assert "tlhub-test-nonexistent/bert-tiny-xyz" in msg
    assert "local model folder" in msg and "HF_HUB_OFFLINE=1" in msg


def test_probe_is_bounded_in_time(monkeypatch):
    """A server that accepts the connection and never answers: the probe gives up on time."""
    import socket

    from tlhub.data import hfhub as hub
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    try:
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.getsockname()[1]}")
        waits = []

        class Recorded(hub.threading.Thread):  # the bound is the join's timeout, not a wall-clock figure
            def join(self, timeout=None):
                waits.append(timeout)
                return super().join(timeout)
        monkeypatch.setattr(hub.threading, "Thread", Recorded)
        assert hub.hub_reachable(timeout=0.5) is False
        assert waits == [pytest.approx(1.0)]
    finally:
        server.close()


def test_cached_id_loads_without_network(tiny_dirs, tmp_path, monkeypatch):
    """A Hugging Face id found in the local cache loads with local_files_only: no probe, no download."""
    import huggingface_hub.constants

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--tlhub-test--tiny-bert"
    shutil.copytree(tiny_dirs["bert"], repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    no_offline_env(monkeypatch)

    def no_probe(*args, **kwargs):
        raise AssertionError("the Hub was probed although the model is cached")
    monkeypatch.setattr("tlhub.data.hfhub.hub_reachable", no_probe)
    bb = build("hf", model="tlhub-test/tiny-bert", pooling="mean")
    assert bb.group_names == ["embeddings", "layer.0", "layer.1"]
    with pytest.raises(AssertionError, match="probed"):  # and an id that is not cached does probe
        build("hf", model="tlhub-test/not-cached")


def test_unsupported_architecture_is_named():
    from transformers import AlbertConfig, AlbertModel, ElectraConfig, ElectraModel

    from tlhub_text.encoder import HFEncoder
    albert = AlbertModel(AlbertConfig(vocab_size=50, embedding_size=16, hidden_size=32, num_hidden_layers=1,
                                      num_attention_heads=4, intermediate_size=64), add_pooling_layer=False)
    with pytest.raises(UserError, match="'albert'.*not supported"):
        HFEncoder(albert, None, 16, "mean", use_pooler=False)
    electra = ElectraModel(ElectraConfig(vocab_size=50, embedding_size=16, hidden_size=32, num_hidden_layers=1,
                                         num_attention_heads=4, intermediate_size=64))
    with pytest.raises(UserError, match="'electra'.*embeddings_project"):
        HFEncoder(electra, None, 16, "mean", use_pooler=False)


@pytest.mark.parametrize("name, arch, pooling", [("minilm-l6", None, "mean"), ("hf", "bert", "cls"),
                                                 ("hf", "distilbert", "mean"), ("hf", "roberta", "cls")])
def test_tlhub_contract_kit(tiny_dirs, name, arch, pooling):
    """tlhub.testing.check_backbone: every split point, cached (split/collate) states, gradients."""
    from tlhub.testing import check_backbone
    options = {"pooling": pooling, "max_length": 24} | ({"model": str(tiny_dirs[arch])} if arch else {})
    check_backbone(name, weights="pretrained", options=options)


def test_split_state_trims_padding(tiny_dirs):
    bb = build("hf", model=str(tiny_dirs["bert"]), pooling="mean").eval()
    x = batch(bb)
    with torch.no_grad():
        state = bb.run_groups(x, 0, 2)
        items = bb.split_state(state)
        lengths = x["attention_mask"].sum(1).tolist()
        assert [len(it.hidden) for it in items] == lengths and all(it.mask.all() for it in items)
        assert items[0].hidden.untyped_storage().nbytes() < state.hidden.untyped_storage().nbytes()  # a copy
        torch.testing.assert_close(bb.pool(bb.run_groups(bb.collate_state(items), 2)), bb(x))


def test_pooler_follows_the_architecture_not_the_checkpoint(tmp_path):
    """A checkpoint without pooler weights still gets the pooler for 'cls' (random, with a warning), so
    that tlhub.load's rebuild with weights='none' has exactly the trained parameters."""
    from transformers import AutoModel
    folder = save_tiny_model(tmp_path / "m", "bert")
    AutoModel.from_pretrained(str(folder), add_pooling_layer=False).save_pretrained(str(folder))
    trained = build("hf", model=str(folder))
    rebuilt = build("hf", model=str(folder), weights="none")
    assert trained.group_names == rebuilt.group_names and trained.group_names[-1] == "pooler"
    assert trained.state_dict().keys() == rebuilt.state_dict().keys()
