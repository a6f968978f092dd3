"""A BERT-family Hugging Face encoder as a tlhub ``Backbone`` of ordered parameter groups.

Groups: ``embeddings``, ``layer.0`` ... ``layer.{N-1}``, then ``pooler`` when the model's pretrained
pooler is used. The state passed between groups is ``TokenStates(hidden, mask)`` with the 2-D mask
(the 4-D mask each layer needs is rebuilt the way the model's own forward does it, so it follows the
model's attention implementation); after ``pooler`` it is ``Pooled(features)``.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from tlhub.errors import UserError
from tlhub.interfaces import Backbone, Pooled, TextPreprocessing, TokenStates


def find_layout(model: nn.Module) -> tuple[nn.Module, nn.ModuleList]:
    """(embeddings, layers) of BERT-style (``encoder.layer``) and DistilBERT-style (``transformer.layer``) models."""
    emb = getattr(model, "embeddings", None)
    for attr in ("encoder", "transformer"):
        layers = getattr(getattr(model, attr, None), "layer", None)
        if isinstance(emb, nn.Module) and isinstance(layers, nn.ModuleList) and len(layers):
            return emb, layers
    raise UserError(unsupported(model, "it has no embeddings + encoder.layer / transformer.layer layout"))


def unsupported(model: nn.Module, why: str) -> str:
    arch = getattr(getattr(model, "config", None), "model_type", None) or type(model).__name__
    return (f"backbone 'hf': architecture {arch!r} ({type(model).__name__}) is not supported: {why}; "
            f"supported: BERT-family encoders (BERT, DistilBERT, RoBERTa, MiniLM, ELECTRA with equal "
            f"embedding and hidden sizes, ...)")


class HFEncoder(Backbone):
    modality = "text"

    def __init__(self, model: nn.Module, tokenizer: Any, max_length: int, pooling: str, use_pooler: bool,
                 pair_encoding: str = "cross"):
        super().__init__()
        find_layout(model)
        if not use_pooler and getattr(model, "pooler", None) is not None:
            model.pooler = None  # an unused parameter would break DDP
        self.hf = model  # the only submodule: parameter and state-dict names are hf.*, each once
        self.pooling = pooling
        # "bi": the two sentences of a pair attend only within themselves (a bi-encoder in one pass); "both": the
        # pair once as one sequence and once as two sentences, side by side in one sequence; "symmetric": the pair
        # as one sequence in both orders, side by side. Each puts blocks in one sequence that attend only within
        # themselves (the mask's value names the block), so a cache of the frozen layers holds one row an example.
        self.encoding = pair_encoding
        self.bi, self.both = pair_encoding in ("bi", "both"), pair_encoding == "both"
        self.symmetric = pair_encoding == "symmetric"
        self.blocks = self.bi or self.symmetric
        self.cls_id, self.pad_id = getattr(tokenizer, "cls_token_id", None), getattr(tokenizer, "pad_token_id", 0) or 0
        width = int(getattr(model.config, "hidden_size", 0) or model.config.dim)
        self.feature_dim = width * (3 if self.both else 2 if self.bi else 1)
        self.preprocessing = TextPreprocessing(tokenizer, max_length)
        covered = [id(p) for _, m in self.groups() for p in m.parameters()]
        rest = [n for n, p in model.named_parameters() if id(p) not in set(covered)]
        if rest or len(covered) != len(set(covered)):
            raise UserError(unsupported(model, f"parameters outside embeddings and layers: {', '.join(rest[:5])}"
                                        if rest else "layers share parameters"))

    @property
    def layers(self) -> nn.ModuleList:
        return find_layout(self.hf)[1]

    @property
    def pooler(self) -> nn.Module | None:
        return getattr(self.hf, "pooler", None)

    def groups(self) -> list[tuple[str, nn.Module]]:
        emb, layers = find_layout(self.hf)
        out = [("embeddings", emb)] + [(f"layer.{i}", m) for i, m in enumerate(layers)]
        return out + ([("pooler", self.pooler)] if self.pooler is not None else [])

    def _mask4d(self, hidden: torch.Tensor, mask: torch.Tensor):
        from transformers.masking_utils import create_bidirectional_mask
        if not self.blocks:
            return create_bidirectional_mask(config=self.hf.config, inputs_embeds=hidden, attention_mask=mask)
        # bi: the mask says 1 for the first sentence's tokens, 2 for the second's (symmetric: 3 for the pair, 4 for
        # it swapped); a token sees its own block only. The model's own mask (bool or additive, by attention implementation) with the other sentence cut
        # (a plain tensor op rather than an and_mask_function: that one is vmapped, which ONNX export cannot trace)
        full = create_bidirectional_mask(config=self.hf.config, inputs_embeds=hidden, attention_mask=mask.ne(0).long(),
                                         allow_is_bidirectional_skip=False)
        other = (mask[:, None, :, None] != mask[:, None, None, :])
        if full.dtype == torch.bool:
            return full & ~other
        return full.masked_fill(other, torch.finfo(full.dtype).min)

    def run_group(self, index: int, state: Any) -> Any:
        if index == 0:
            ids, mask = state["input_ids"], state["attention_mask"]
            types = state.get("token_type_ids")  # a sentence pair's segments (BERT-family embeddings take them)
            emb = find_layout(self.hf)[0]
            if self.bi:
                return self._bi_embed(emb, ids, mask, types)
            if self.symmetric:
                return self._symmetric_embed(emb, ids, mask, types)
            return TokenStates(emb(input_ids=ids) if types is None else emb(input_ids=ids, token_type_ids=types), mask)
        if index <= len(self.layers):
            out = self.layers[index - 1](state.hidden, self._mask4d(state.hidden, state.mask))
            return TokenStates(out[0] if isinstance(out, tuple) else out, state.mask)
        return Pooled(self.pooler(state.hidden))  # BertPooler: tanh(dense(hidden[:, 0]))

    def save_extras(self, folder) -> dict:
        """The tokenizer and the architecture's config in ``folder/tokenizer``: a rebuild needs no hub or cache."""
        from pathlib import Path
        target = Path(folder) / "tokenizer"
        tok = self.preprocessing.tokenizer
        if hasattr(tok, "save_pretrained"):
            tok.save_pretrained(str(target))
        self.hf.config.save_pretrained(str(target))
        return {"model": "tokenizer"}

    def _bi_embed(self, emb: nn.Module, ids: torch.Tensor, mask: torch.Tensor, types: torch.Tensor | None):
        """A pair tokenized as one ([CLS] a [SEP] b [SEP]) embedded as two sentences, each as if tokenized
        alone: a [CLS] goes before the second (without it its mean-pooled embedding drifts far from the
        sentence's own), its positions restart, no segment embedding. The mask carries the sentence (1 or 2)
        to the layers and to ``pool``."""
        self._needs_pairs(types)
        first = (types.eq(0) & mask.ne(0)).long()
        col = torch.arange(ids.shape[1], device=ids.device) + (1 - first)  # the second sentence moves right by one
        new_ids = torch.full((ids.shape[0], ids.shape[1] + 1), self.cls_id, dtype=ids.dtype, device=ids.device)
        new_ids.scatter_(1, col.expand_as(ids), ids)  # the column left free: the second sentence's [CLS]
        seg = torch.zeros_like(new_ids).scatter_(1, col.expand_as(ids), mask.ne(0).long() * (2 - first))
        has_second = (seg == 2).any(1, keepdim=True)
        cls_col = first.sum(1, keepdim=True)
        seg.scatter_(1, cls_col, has_second.long() * 2)
        new_ids = torch.where(seg.eq(0), torch.full_like(new_ids, self.pad_id), new_ids)
        a, b = seg.eq(1).long(), seg.eq(2).long()
        pos = (a.cumsum(1) - 1) * a + (b.cumsum(1) - 1) * b
        if not self.both:
            return TokenStates(emb(input_ids=new_ids, position_ids=pos), seg)
        real = mask.ne(0).long()  # "both": the cross-encoder's sequence first (segment 3), then the two sentences
        ids, types = torch.cat([ids, new_ids], 1), torch.cat([types * real, torch.zeros_like(new_ids)], 1)
        pos, seg = torch.cat([(real.cumsum(1) - 1) * real, pos], 1), torch.cat([3 * real, seg], 1)
        return TokenStates(emb(input_ids=ids, token_type_ids=types, position_ids=pos), seg)

    def _needs_pairs(self, types: torch.Tensor | None) -> None:
        if types is None or self.cls_id is None:
            raise UserError(f"backbone_options.pair_encoding = {self.encoding!r} needs sentence pairs (the data "
                            f"source's text_pair option) and a tokenizer that marks their segments (BERT family)")

    def _symmetric_embed(self, emb: nn.Module, ids: torch.Tensor, mask: torch.Tensor, types: torch.Tensor | None):
        """[CLS] a [SEP] b [SEP] beside [CLS] b [SEP] a [SEP] (what the tokenizer makes of (b, a)), each with its
        own positions and segment ids; the mask marks the first 3 and the second 4 (``pool`` averages them)."""
        self._needs_pairs(types)
        real = mask.ne(0).long()
        col = torch.arange(ids.shape[1], device=ids.device).expand_as(ids)
        first = types.eq(0).long() * real * col.ne(0).long()  # a and its [SEP], not the [CLS]
        second = types.eq(1).long() * real                      # b and the last [SEP]
        # b moves to the front (after the [CLS]), a behind it; the [CLS] and the padding stay where they are
        to = col + first * second.sum(1, keepdim=True) - second * first.sum(1, keepdim=True)
        swapped = torch.zeros_like(ids).scatter_(1, to, ids)
        swapped_types = torch.zeros_like(types).scatter_(1, to, first)  # a is now the second segment
        pos = (real.cumsum(1) - 1) * real
        ids, types = torch.cat([ids, swapped], 1), torch.cat([types * real, swapped_types], 1)
        return TokenStates(emb(input_ids=ids, token_type_ids=types, position_ids=torch.cat([pos, pos], 1)),
                           torch.cat([3 * real, 4 * real], 1))

    def pool(self, state: Any) -> torch.Tensor:
        if isinstance(state, Pooled):  # already pooled by the pooler group
            return state.features
        hidden, mask = state.hidden, state.mask
        if self.bi:  # each sentence mean-pooled and unit-normed; their product (sums to the cosine) and distance
            u, v = (nn.functional.normalize(_mean(hidden, mask.eq(k)), dim=-1) for k in (1, 2))
            cross = [_mean(hidden, mask.eq(3))] if self.both else []  # "both": the pair's joint reading first
            return torch.cat([*cross, u * v, (u - v).abs()], dim=-1)
        if self.symmetric:  # the mean of each order's mean: the same features for (a, b) and (b, a)
            return (_mean(hidden, mask.eq(3)) + _mean(hidden, mask.eq(4))) / 2
        if self.pooling == "cls":
            return hidden[:, 0]
        return _mean(hidden, mask)


def _mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.ne(0).unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
