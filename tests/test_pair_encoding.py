"""``pair_encoding = "bi"``: a sentence pair tokenized as one sequence is encoded as two sentences (each attends
only to itself, its positions restart, a [CLS] of its own), so the pooled halves equal the sentences encoded
alone; a bi-encoder run trains, predicts and exports like a cross-encoder one."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from clichecks import invoke, refused
from taskruns import pair_data, write_recipe

PAIRS = [("great movie fun", "the plot was dull and the actor bad"), ("plot actor film", "great")]


def _encoder(tmp_path, encoding):
    from tlhub_text.loading import build_hf
    from tlhub_text.testing import save_tiny_model
    folder = save_tiny_model(tmp_path / "tiny")
    return build_hf("pretrained", {"model": str(folder), "max_length": 32, "pooling": "mean",
                                   "pair_encoding": encoding})


def _features(enc, batch):
    state = batch
    for i in range(len(enc.groups())):
        state = enc.run_group(i, state)
    return enc.pool(state)


def test_bi_encoding_of_a_pair_equals_each_sentence_encoded_alone(tmp_path):
    bi, cross = _encoder(tmp_path, "bi"), _encoder(tmp_path, "cross")
    tok = bi.preprocessing.tokenizer
    a, b = [p[0] for p in PAIRS], [p[1] for p in PAIRS]
    with torch.no_grad():
        pair = tok(a, b, padding=True, return_tensors="pt")
        feats = _features(bi, dict(pair))
        alone = [_features(cross, {k: v for k, v in tok(t, padding=True, return_tensors="pt").items()
                                   if k != "token_type_ids"}) for t in (a, b)]
    u, v = (torch.nn.functional.normalize(x, dim=-1) for x in alone)
    assert bi.feature_dim == 2 * cross.feature_dim == feats.shape[1]
    torch.testing.assert_close(feats, torch.cat([u * v, (u - v).abs()], 1), atol=1e-5, rtol=1e-4)
    # the first half sums to the cosine of the two sentences' embeddings
    torch.testing.assert_close(feats[:, :bi.feature_dim // 2].sum(1), torch.cosine_similarity(*alone), atol=1e-5,
                               rtol=1e-4)
    # a cross-encoder of the same weights reads the pair as one sequence: other features
    assert not torch.allclose(_features(cross, dict(pair)), alone[0], atol=1e-3)


def test_both_encodings_side_by_side_equal_the_cross_and_the_bi_features(tmp_path):
    both, bi, cross = (_encoder(tmp_path, e) for e in ("both", "bi", "cross"))
    tok = both.preprocessing.tokenizer
    with torch.no_grad():
        pair = dict(tok([p[0] for p in PAIRS], [p[1] for p in PAIRS], padding=True, return_tensors="pt"))
        feats, parts = _features(both, pair), torch.cat([_features(cross, pair), _features(bi, pair)], 1)
    assert both.feature_dim == 3 * cross.feature_dim == feats.shape[1]
    torch.testing.assert_close(feats, parts, atol=1e-5, rtol=1e-4)


def test_symmetric_encoding_reads_the_pair_in_both_orders_and_averages(tmp_path):
    sym, cross = _encoder(tmp_path, "symmetric"), _encoder(tmp_path, "cross")
    tok = sym.preprocessing.tokenizer
    a, b = [p[0] for p in PAIRS], [p[1] for p in PAIRS]
    with torch.no_grad():
        ab, ba = dict(tok(a, b, padding=True, return_tensors="pt")), dict(tok(b, a, padding=True, return_tensors="pt"))
        feats = _features(sym, ab)
        orders = (_features(cross, ab) + _features(cross, ba)) / 2  # each order tokenized and encoded on its own
    assert sym.feature_dim == cross.feature_dim == feats.shape[1]
    torch.testing.assert_close(feats, orders, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(_features(sym, ba), feats, atol=1e-5, rtol=1e-4)  # the order does not matter
    assert not torch.allclose(_features(cross, ab), _features(cross, ba), atol=1e-3)  # for a cross-encoder it does


@pytest.mark.parametrize("encoding", ["bi", "both", "symmetric"])
def test_a_bi_encoder_run_predicts_and_exports_with_parity(tmp_path, encoding):
    import tlhub
    from tlhub.export.onnx import export_onnx
    from tlhub.use.onnx import OnnxPredictor
    pair_data(tmp_path)
    recipe = write_recipe(tmp_path, "regression", "tsv", 'path = "pairs.tsv", text_column = "s1", '
                          'text_pair = "s2", label_column = "score"', epochs=4,
                          backbone_options=f'pooling = "mean", pair_encoding = "{encoding}"')
    res = tlhub.run(recipe, quiet=True)
    config = json.loads((res.run_dir / "model" / "config.json").read_text())
    assert config["backbone_options"]["pair_encoding"] == encoding
    assert np.isfinite(res.metrics["pearson"]) and res.metrics["rmse"] > 0
    p = tlhub.load(res.run_dir)
    assert p.model.backbone.encoding == encoding  # rebuilt from the saved options
    values = [q.value for q in p.predict(PAIRS)]
    exported = export_onnx(res.run_dir, tmp_path / "onnx")
    assert exported.max_diff < 1e-4
    np.testing.assert_allclose([q.value for q in OnnxPredictor(exported.path).predict(PAIRS)], values, rtol=1e-4,
                               atol=1e-4)


def test_bi_encoding_needs_mean_pooling_and_sentence_pairs(tmp_path):
    pair_data(tmp_path)
    recipe = write_recipe(tmp_path, "regression", "tsv", 'path = "pairs.tsv", text_column = "s1", '
                          'text_pair = "s2", label_column = "score"', epochs=1,
                          backbone_options='pooling = "cls", pair_encoding = "bi"')
    refused(invoke("validate", recipe), 'pooling = "mean"')
    single = write_recipe(tmp_path, "regression", "tsv", 'path = "pairs.tsv", text_column = "s1", '
                          'label_column = "score"', epochs=1, backbone_options='pooling = "mean", pair_encoding = "bi"')
    refused(invoke("run", single), "needs sentence pairs")  # at the first batch: validate does not see it (yet)
