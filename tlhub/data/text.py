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
        if not args[0]:  # an empty split (auto's probes pass one for test): fast tokenizers fail on no text
            self.ids, self.types, self.lengths, self.labels, self.truncated = [], None, [], [], 0
            self.pad_id = tok.pad_token_id or 0
            return
        enc = tok(*args, truncation=False, add_special_tokens=True)["input_ids"]
        self.truncated = sum(len(ids) > prep.max_length for ids in enc)
        out = tok(*args, truncation=True, max_length=prep.max_length)
        enc = out["input_ids"]
        self.ids = [torch.tensor(ids, dtype=torch.long) for ids in enc]
        # a pair's segment ids (0: first sentence, 1: second), for tokenizers that make them (BERT family)
        types = out.get("token_type_ids") if len(args) == 2 else None
        self.types = [torch.tensor(t, dtype=torch.long) for t in types] if types is not None else None
        self.lengths = [len(ids) for ids in enc]  # tokens per text: batches grouped by length use them
        self.labels = list(labels)
        self.pad_id = tok.pad_token_id or 0

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        if self.types is not None:
            return (self.ids[i], self.types[i]), self.labels[i]
        return self.ids[i], self.labels[i]

    def collate(self, batch):
        labels = stack_targets([b[1] for b in batch])
        if self.types is not None:
            return pad_tokens([b[0][0] for b in batch], self.pad_id, [b[0][1] for b in batch]), labels
        return pad_tokens([b[0] for b in batch], self.pad_id), labels


def pad_tokens(ids: list, pad_id: int, types: list | None = None) -> dict:
    """Token id rows padded on the right to the longest, their attention mask, and a pair's segment ids."""
    batch = torch.nn.utils.rnn.pad_sequence(ids, batch_first=True, padding_value=pad_id)
    mask = torch.zeros_like(batch)
    for row, e in enumerate(ids):
        mask[row, : len(e)] = 1
    out = {"input_ids": batch, "attention_mask": mask}
    if types is not None:
        out["token_type_ids"] = torch.nn.utils.rnn.pad_sequence(types, batch_first=True, padding_value=0)
    return out


def tokenizer_args(texts) -> tuple:
    """The tokenizer's positional arguments for texts, or for pairs (``(first, second)`` tuples: both lists,
    so the tokenizer joins each pair with its separator and token type ids; ``longest_first`` truncation)."""
    texts = list(texts)
    if texts and isinstance(texts[0], tuple):
        return [a for a, _ in texts], [b for _, b in texts]
    return (texts,)
