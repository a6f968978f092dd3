"""``[data.augment] swap_pairs``: the training split holds every sentence pair in both orders (validation and
test keep the source's order); a source of single texts is refused before any data loads."""
from __future__ import annotations

from clichecks import invoke, refused
from taskruns import pair_data, write_recipe

PAIRS = [("great movie fun", "the plot was dull"), ("plot actor film", "great"), ("bad", "fun film")]


def test_the_training_split_holds_each_pair_in_both_orders(tmp_path):
    from types import SimpleNamespace

    from tlhub.interfaces import Split
    from tlhub.modalities.text import TextModality
    from tlhub.modality import DataSettings
    from tlhub.recipe.schema import AugmentCfg
    from tlhub_text.loading import build_hf
    from tlhub_text.testing import save_tiny_model
    backbone = build_hf("pretrained", {"model": str(save_tiny_model(tmp_path / "tiny")), "max_length": 32,
                                       "pooling": "mean", "pair_encoding": "cross"})
    splits = SimpleNamespace(train=Split(PAIRS, [0, 1, 2]), val=Split(PAIRS[:2], [0, 1]), test=Split(PAIRS[:1], [0]))
    tok = backbone.preprocessing.tokenizer

    def ids(pairs):
        return tok([a for a, _ in pairs], [b for _, b in pairs])["input_ids"]

    swapped = TextModality().datasets(backbone, DataSettings(augment=AugmentCfg(swap_pairs=True), pairs=True), splits)
    plain = TextModality().datasets(backbone, DataSettings(augment=AugmentCfg(), pairs=True), splits)
    assert [len(d) for d in (swapped.train, swapped.val, swapped.test)] == [6, 2, 1]
    assert [len(d) for d in (plain.train, plain.val, plain.test)] == [3, 2, 1]
    assert [t.tolist() for t in swapped.train.ids] == ids(PAIRS) + ids([(b, a) for a, b in PAIRS])
    assert swapped.train.labels == [0, 1, 2, 0, 1, 2]
    # the second sentence's segment ids follow it to the front of the swapped pair
    assert swapped.train.types[3].tolist().count(0) == len(tok(PAIRS[0][1])["input_ids"])  # [CLS] b [SEP]
    assert [t.tolist() for t in swapped.val.ids] == ids(PAIRS[:2])


def test_swap_pairs_needs_sentence_pairs(tmp_path):
    pair_data(tmp_path)
    single = write_recipe(tmp_path, "regression", "tsv", 'path = "pairs.tsv", text_column = "s1", '
                          'label_column = "score"', epochs=1)
    with open(single, "a") as f:
        f.write("[data.augment]\nswap_pairs = true\n")
    refused(invoke("validate", single), "data.augment.swap_pairs: needs sentence pairs")
