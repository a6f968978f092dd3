"""Serve an exported ``model.onnx`` with ONNX Runtime: ``tlhub predict`` on the file or its folder.

Everything needed is in the file's metadata (``tlhub.classes``, ``tlhub.preprocessing``, written by
``tlhub.artifacts.onnx``). Image models need only onnxruntime, PIL and numpy - torch is never
imported; text models also need the tokenizer saved beside the file (``tokenizer/``, read with ``tokenizers``).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from tlhub.errors import UserError
from tlhub.use.inputs import as_items, check_texts, read_image
from tlhub.use.load import Prediction, predictions
from tlhub.use.modelconfig import classes_problems, preprocessing_problems

ONNX_FILE = "model.onnx"


def find_onnx(path: str | Path) -> Path | None:
    """The ONNX file for ``path`` (a ``.onnx`` file, or a folder holding ``model.onnx``), else None."""
    p = Path(path).expanduser()
    if p.suffix == ".onnx":
        if not p.is_file():
            raise UserError(f"{path}: no such ONNX file")
        return p
    if p.is_dir() and (p / ONNX_FILE).is_file() and not (p / "config.json").is_file():
        return p / ONNX_FILE
    return None


class OnnxPredictor:
    """Predictions from an exported ONNX model, with the same outputs as ``tlhub.use.load.Predictor``."""

    def __init__(self, path: Path, threads: int = 0):
        try:
            import onnxruntime as ort
        except ImportError:
            raise UserError(f"{path}: predicting with an ONNX model needs onnxruntime "
                            "(pip install 'tlhub[onnx]')") from None
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # InvalidProtobuf, Fail, ...: a truncated or foreign file
            raise UserError(f"{path}: not a readable ONNX model ({type(exc).__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        if "tlhub.classes" not in meta or "tlhub.preprocessing" not in meta:
            raise UserError(f"{path}: an ONNX model without tlhub metadata (export it with tlhub export)")
        self.path = Path(path)
        try:
            classes, self.preprocessing = (json.loads(meta[k]) for k in ("tlhub.classes", "tlhub.preprocessing"))
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}: its tlhub metadata is not valid JSON ({exc})") from None
        problems = classes_problems(classes) + preprocessing_problems(self.preprocessing)
        if problems:
            raise UserError(errors=[f"{path}: tlhub metadata: {p}" for p in problems])
        self.classes: list[str] = [str(c) for c in classes]
        self.modality: str = self.preprocessing["modality"]
        self.tokenizer = self._tokenizer() if self.modality == "text" else None

    def __repr__(self) -> str:
        return f"OnnxPredictor({len(self.classes)} classes, {self.modality}, from {str(self.path)!r})"

    def _tokenizer(self) -> Any:
        folder = self.path.parent / self.preprocessing.get("tokenizer", "tokenizer")
        if not folder.is_dir():
            raise UserError(f"{self.path}: a text model needs its tokenizer folder {folder} (written by tlhub export)")
        # The fast tokenizer's own file through `tokenizers`: the core imports no transformers.
        import json

        from tokenizers import Tokenizer
        if not (folder / "tokenizer.json").is_file():
            raise UserError(f"{folder}: no tokenizer.json (a fast tokenizer, as tlhub export writes it)")
        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        config = folder / "tokenizer_config.json"
        pad = (json.loads(config.read_text()) if config.is_file() else {}).get("pad_token") or "[PAD]"
        pad = pad.get("content", "[PAD]") if isinstance(pad, dict) else str(pad)
        tokenizer.enable_truncation(int(self.preprocessing["max_length"]))
        tokenizer.enable_padding(pad_id=tokenizer.token_to_id(pad) or 0, pad_token=pad)
        return tokenizer

    def predict(self, inputs: Any, batch_size: int = 64) -> list[Prediction]:
        return predictions(self.classes, self.predict_proba(inputs, batch_size))

    def predict_proba(self, inputs: Any, batch_size: int = 64):
        """Class probabilities as a float32 array ``[n_inputs, n_classes]``."""
        import numpy as np
        if batch_size < 1:
            raise UserError(f"batch_size: must be >= 1, got {batch_size}")
        items = as_items(inputs, self.modality)
        rows = [self.session.run(["probabilities"], self.feed(items[i:i + batch_size]))[0]
                for i in range(0, len(items), batch_size)]
        return np.concatenate(rows).astype(np.float32) if rows else np.zeros((0, len(self.classes)), np.float32)

    def feed(self, items: Sequence) -> dict:
        """The session's inputs for a batch of raw items (image paths/arrays/PIL images, or texts)."""
        import numpy as np
        if self.modality == "text":
            check_texts(list(items))
            encoded = self.tokenizer.encode_batch(list(items))
            return {"input_ids": np.array([e.ids for e in encoded], dtype=np.int64),
                    "attention_mask": np.array([e.attention_mask for e in encoded], dtype=np.int64)}
        from tlhub.data.decode import to_chw
        p = self.preprocessing
        batch = [to_chw(read_image(item), int(p["image_size"]), p["mean"], p["std"]) for item in items]
        return {"pixel_values": np.stack(batch)}
