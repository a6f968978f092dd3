"""The ``text`` modality: strings (or ``(str, str)`` sentence pairs, tokenized as one pair) -> token ids
through the backbone's own tokenizer, padded per batch."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Sequence

from tlhub.errors import UserError
from tlhub.modalities.inputs import as_text_items, check_texts, is_pair
from tlhub.modality import (
    DataSettings, Datasets, InputPipeline, Modality, OnnxIO, SampleView, UnsupportedInput, json_kind,
)

log = logging.getLogger("tlhub")
MAX_CHARS = 100_000  # a served text over this is refused (tlhub serve's default)


class TextInputs(InputPipeline):
    """Strings -> ``{"input_ids", "attention_mask"}`` padded like the trainer's collate (right, the pad id)."""

    def __init__(self, tokenizer: Any, max_length: int, pairs: bool = False):
        self.tokenizer, self.max_length, self.pairs = tokenizer, max_length, pairs

    def batch(self, items: Sequence, device: Any) -> Any:
        import torch

        # local: tlhub.data.text imports torch; `tlhub predict` on an ONNX model must not
        from tlhub.data.text import pad_tokens, tokenizer_args
        args = tokenizer_args(items)
        out = self.tokenizer(*args, truncation=True, max_length=self.max_length)
        ids = [torch.tensor(e, dtype=torch.long) for e in out["input_ids"]]
        types = out.get("token_type_ids") if len(args) == 2 else None  # as the training batches had them
        types = [torch.tensor(t, dtype=torch.long) for t in types] if types is not None else None
        return {k: v.to(device) for k, v in pad_tokens(ids, self.tokenizer.pad_token_id or 0, types).items()}


class TextModality(Modality):
    name = "text"
    noun = "texts"
    json_help = "strings, one text per input"

    # -- training
    def datasets(self, backbone: Any, data: DataSettings, splits: Any) -> Datasets:
        # local: tlhub.data.text imports torch; `tlhub predict` on an ONNX model must not
        from tlhub.data.text import TextDataset
        prep = backbone.preprocessing
        parts = {name: (list(getattr(splits, name).items), list(getattr(splits, name).labels))
                 for name in ("train", "val", "test")}
        if data.pairs and getattr(data.augment, "swap_pairs", False):
            items, labels = parts["train"]  # validation and test keep the source's order: they measure it
            parts["train"] = (items + [(b, a) for a, b in items], labels + labels)
            log.info("data: augment.swap_pairs: %d training pairs in both orders, %d examples per epoch",
                     len(items), 2 * len(items))
        out = {name: TextDataset(items, labels, prep) for name, (items, labels) in parts.items()}
        truncated = sum(d.truncated for d in out.values())
        if truncated:
            log.info("data: %d text(s) longer than max_length=%d were truncated", truncated, prep.max_length)
        return Datasets(out["train"], out["val"], out["test"], out["train"].collate, True,
                        {name: d.lengths for name, d in out.items()})

    def backbone_problem(self, backbone: Any) -> str:
        # local: tlhub.interfaces imports torch; `tlhub predict` on an ONNX model must not
        from tlhub.interfaces import TextPreprocessing
        prep = backbone.preprocessing
        return "" if isinstance(prep, TextPreprocessing) else \
            f"preprocessing must be a TextPreprocessing for {self.name} input, got {type(prep).__name__}"

    def item_problem(self, item: Any) -> str:
        return "" if isinstance(item, str) or is_pair(item) else \
            f"is a {type(item).__name__}, expected a str (or a (str, str) sentence pair) for a text source"

    def example_batch(self, backbone: Any, n: int = 2) -> Any:
        prep = backbone.preprocessing
        texts = ["a short sentence", "another, somewhat longer example sentence for the backbone"]
        enc = prep.tokenizer((texts * n)[:n], padding=True, truncation=True, max_length=prep.max_length,
                             return_tensors="pt")
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}

    # -- the exported model
    def config(self, backbone: Any, data: DataSettings) -> dict:
        pairs = {"pairs": True} if data.pairs else {}  # the ONNX graph then takes the segment ids too
        return {"max_length": backbone.preprocessing.max_length, **pairs}

    def config_problems(self, prep: dict) -> list[str]:
        ml = prep.get("max_length", 512)
        ok = isinstance(ml, int) and not isinstance(ml, bool) and ml > 0
        return [] if ok else [f"preprocessing: max_length must be a positive integer, got {ml!r}"]

    # -- predicting
    def as_items(self, inputs: Any) -> list:
        return as_text_items(inputs)

    def expand(self, args: list[str], skipped: list[str]) -> list:
        """A command-line input with a tab is a sentence pair (a TSV line of two columns on stdin)."""
        return [tuple(a.split("\t", 1)) if "\t" in a else a for a in args]

    def sample_view(self, item: Any, size: int):
        return SampleView(text=" [SEP] ".join(item) if is_pair(item) else str(item))

    def inputs(self, prep: dict, backbone: Any = None, model_dir: Path | None = None) -> InputPipeline:
        tok = getattr(getattr(backbone, "preprocessing", None), "tokenizer", None)
        if tok is None:  # the rebuilt backbone was rebuilt from the files Backbone.save_extras wrote
            raise UserError(f"{model_dir}: a text model whose backbone gives no tokenizer")
        return TextInputs(tok, int(prep.get("max_length", 512)), bool(prep.get("pairs")))

    # -- ONNX
    def onnx_io(self, pipeline: InputPipeline, backbone: Any) -> OnnxIO:
        # with padding, so the traced graph keeps the masked path; a pair model's example is pairs
        texts = ["an example sentence for the export", "short"]
        example = pipeline.batch(list(zip(texts, texts[::-1])) if pipeline.pairs else texts, "cpu")
        names = list(example)
        axes = {name: {0: "batch", 1: "sequence"} for name in names}
        return OnnxIO(example, axes, lambda *tensors: dict(zip(names, tensors)))

    def onnx_metadata(self, prep: dict) -> dict:
        types = ["token_type_ids"] if prep.get("pairs") else []
        return {"inputs": ["input_ids", "attention_mask", *types], "tokenizer": "tokenizer", "padding": "right"}

    def onnx_save(self, pipeline: InputPipeline, out_dir: Path) -> None:
        pipeline.tokenizer.save_pretrained(str(out_dir / "tokenizer"))

    def onnx_feeder(self, prep: dict, folder: Path) -> Callable[[Sequence], dict]:
        """The fast tokenizer's own file through ``tokenizers``: ONNX prediction imports no transformers."""
        import json

        import numpy as np
        from tokenizers import Tokenizer

        tok_dir = folder / prep.get("tokenizer", "tokenizer")
        if not tok_dir.is_dir():
            raise UserError(f"{folder}: a text model needs its tokenizer folder {tok_dir} (written by tlhub export)")
        if not (tok_dir / "tokenizer.json").is_file():
            raise UserError(f"{tok_dir}: no tokenizer.json (a fast tokenizer, as tlhub export writes it)")
        tokenizer = Tokenizer.from_file(str(tok_dir / "tokenizer.json"))
        config = tok_dir / "tokenizer_config.json"
        pad = (json.loads(config.read_text()) if config.is_file() else {}).get("pad_token") or "[PAD]"
        pad = pad.get("content", "[PAD]") if isinstance(pad, dict) else str(pad)
        tokenizer.enable_truncation(int(prep["max_length"]))
        tokenizer.enable_padding(pad_id=tokenizer.token_to_id(pad) or 0, pad_token=pad)

        def feed(items: Sequence) -> dict:
            check_texts(list(items))
            encoded = tokenizer.encode_batch(list(items))
            out = {"input_ids": np.array([e.ids for e in encoded], dtype=np.int64),
                   "attention_mask": np.array([e.attention_mask for e in encoded], dtype=np.int64)}
            if prep.get("pairs"):  # the graph's third input: 0 for the first sentence's tokens, 1 for the second's
                out["token_type_ids"] = np.array([e.type_ids for e in encoded], dtype=np.int64)
            return out
        return feed

    # -- serving
    def from_json(self, value: Any, what: str, limits: Any = None) -> Any:
        max_chars = getattr(limits, "max_text_chars", MAX_CHARS)
        if not isinstance(value, str):
            raise ValueError(f"{what}: expected a string, got {json_kind(value)}")
        if not value.strip():
            raise ValueError(f"{what}: empty or blank text; a text model has nothing to label")
        if len(value) > max_chars:
            raise ValueError(f"{what}: {len(value):,} characters is over the limit of {max_chars:,}")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate from a JSON \ud800 escape
            raise ValueError(f"{what}: not valid Unicode text") from None
        return value

    def from_upload(self, data: bytes, filename: str, what: str, limits: Any = None) -> Any:
        raise UnsupportedInput('a text model takes JSON {"inputs": ["a sentence", ...]}, not uploaded files')
