"""Serve an exported ``model.onnx`` with ONNX Runtime: ``tlhub predict`` on the file or its folder.

Everything needed is in the file's metadata (``tlhub.classes``, ``tlhub.preprocessing``, written by
``tlhub.export.onnx``); the model's modality turns inputs into the graph's feeds
(``Modality.onnx_feeder``). Image models need only onnxruntime, PIL and numpy - torch is never
imported; text models also need the tokenizer saved beside the file (``tokenizer/``, read with ``tokenizers``).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from tlhub.errors import UserError
from tlhub.plugins import get_registry
from tlhub.use.load import Prediction, model_task, predictions
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
        try:
            config = json.loads(meta.get("tlhub.config") or "{}")
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}: its tlhub metadata is not valid JSON ({exc})") from None
        config = config if isinstance(config, dict) else {}
        minimum = 2 if config.get("task", "classification") == "classification" else 1
        problems = classes_problems(classes, minimum) + preprocessing_problems(self.preprocessing)
        if problems:
            raise UserError(errors=[f"{path}: tlhub metadata: {p}" for p in problems])
        self.classes: list[str] = [str(c) for c in classes]
        self.modality: str = self.preprocessing.get("modality", "image")
        self.modality_impl = get_registry().modality(self.modality)
        self.feed = self.modality_impl.onnx_feeder(self.preprocessing, self.path.parent)
        self.task = model_task(config)  # thresholds and target scale as the model was saved

    def __repr__(self) -> str:
        return f"OnnxPredictor({len(self.classes)} classes, {self.modality}, from {str(self.path)!r})"

    def predict(self, inputs: Any, batch_size: int = 64) -> list[Prediction]:
        return predictions(self.classes, self.predict_proba(inputs, batch_size), self.task)

    def predict_proba(self, inputs: Any, batch_size: int = 64):
        """The task's outputs as a float32 array ``[n_inputs, n_classes]`` (see ``Predictor.predict_proba``)."""
        import numpy as np
        if batch_size < 1:
            raise UserError(f"batch_size: must be >= 1, got {batch_size}")
        items = self.modality_impl.as_items(inputs)
        rows = [self.session.run(["probabilities"], self.feed(items[i:i + batch_size]))[0]
                for i in range(0, len(items), batch_size)]
        return np.concatenate(rows).astype(np.float32) if rows else np.zeros((0, len(self.classes)), np.float32)
