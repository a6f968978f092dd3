"""Texts (or sentence pairs: ``(text, text)`` tuples, one cross-encoder input each) to token ids, once per
run; batches padded to their longest text."""
from __future__ import annotations

import torch

from tlhub.data.targets import stack_targets
from tlhub.interfaces import TextPreprocessing


class TextDataset(torch.utils.data.Dataset):
    """Tokenized once at construction; ``truncated`` counts texts cut to ``max_length``."""

    def __init__(self, texts, labels, prep: TextPreprocessing):
        tok = prep.tokenizer
        args = tokenizer_args(texts)
        enc = tok(*args, truncation=False, add_special_tokens=True)["input_ids"]
        self.truncated = sum(len(ids) > prep.max_length for ids in enc)
        enc = tok(*args, truncation=True, max_length=prep.max_length)["input_ids"]
        self.ids = [torch.tensor(ids, dtype=torch.long) for ids in enc]
        self.lengths = [len(ids) for ids in enc]  # tokens per text: batches grouped by length use them
        self.labels = list(labels)
        self.pad_id = tok.pad_token_id or 0

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        return self.ids[i], self.labels[i]

    def collate(self, batch):
        ids = torch.nn.utils.rnn.pad_sequence([b[0] for b in batch], batch_first=True, padding_value=self.pad_id)
        mask = torch.zeros_like(ids)
        for row, b in enumerate(batch):
            mask[row, : len(b[0])] = 1
        labels = stack_targets([b[1] for b in batch])
        return {"input_ids": ids, "attention_mask": mask}, labels


def tokenizer_args(texts) -> tuple:
    """The tokenizer's positional arguments for texts, or for pairs (``(first, second)`` tuples: both lists,
    so the tokenizer joins each pair with its separator and token type ids; ``longest_first`` truncation)."""
    texts = list(texts)
    if texts and isinstance(texts[0], tuple):
        return [a for a, _ in texts], [b for _, b in texts]
    return (texts,)
