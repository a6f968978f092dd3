"""Tiny random BERT-family models in a folder, for tests that must not touch the network."""
from __future__ import annotations

from pathlib import Path

WORDS = ("the a an is was it this that movie film story plot actor great good fine bad awful boring dull "
         "fun funny loved hated best worst not very and but of to in with , . ! ?").split()
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def save_tiny_model(folder: str | Path, arch: str = "bert", seed: int = 0, layers: int = 2) -> Path:
    """Write a random ``arch`` ('bert', 'distilbert' or 'roberta') model and a word-level BERT tokenizer
    to ``folder`` with ``save_pretrained``; the ``hf`` backbone loads it by path."""
    import torch
    from transformers import (AutoModel, BertConfig, BertTokenizerFast, DistilBertConfig, RobertaConfig)

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(SPECIAL + list(WORDS)) + "\n", encoding="utf-8")
    tok = BertTokenizerFast.from_pretrained(str(folder), do_lower_case=True)  # reads vocab.txt (v4 and v5)
    size = dict(vocab_size=len(SPECIAL) + len(WORDS), max_position_embeddings=64, pad_token_id=0)
    if arch == "bert":
        config = BertConfig(hidden_size=32, num_hidden_layers=layers, num_attention_heads=4, intermediate_size=64,
                            **size)
    elif arch == "distilbert":
        config = DistilBertConfig(dim=32, n_layers=layers, n_heads=4, hidden_dim=64, **size)
    elif arch == "roberta":
        size["max_position_embeddings"] += 1  # RoBERTa positions start after the padding index (0 here)
        config = RobertaConfig(hidden_size=32, num_hidden_layers=layers, num_attention_heads=4, intermediate_size=64,
                               **size)
    else:
        raise ValueError(f"unknown tiny architecture {arch!r}")
    torch.manual_seed(seed)
    AutoModel.from_config(config).save_pretrained(str(folder))
    tok.save_pretrained(str(folder))
    return folder
