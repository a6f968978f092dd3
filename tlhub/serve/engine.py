"""The model behind the server: ``tlhub.use``'s PyTorch ``Predictor`` or ONNX Runtime ``OnnxPredictor``.

Both take what ``tlhub predict`` takes (PIL images, texts) and give class probabilities; this module
only loads one of them with the thread count asked for, and says what it is (``/metadata``).
"""
from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tlhub import __version__
from tlhub.plugins import get_registry
from tlhub.serve.settings import ServeSettings
from tlhub.use.load import load
from tlhub.use.onnx import OnnxPredictor


@dataclass
class Engine:
    predictor: Any  # tlhub.use.load.Predictor or tlhub.use.onnx.OnnxPredictor
    backend: str  # "pytorch" or "onnxruntime"
    name: str
    config: dict  # the training config (config.json, or the ONNX file's tlhub.config)
    preprocessing: dict

    @property
    def modality(self) -> str:
        return self.predictor.modality

    @property
    def classes(self) -> list[str]:
        return self.predictor.classes

    def predict_proba(self, items: list, batch_size: int):
        """``[len(items), n_classes]`` float32; PyTorch runs under ``torch.inference_mode`` (in the predictor)."""
        return self.predictor.predict_proba(items, batch_size=batch_size)

    def metadata(self, settings: ServeSettings) -> dict:
        return {
            "name": self.name, "task": task_words(self.config.get("task") or "classification"), "modality": self.modality,
            "labels": list(self.classes), "backbone": self.config.get("backbone"), "head": self.config.get("head"),
            "preprocessing": self.preprocessing, "backend": self.backend,
            "batching": {"max_batch_size": settings.max_batch_size, "max_wait_ms": settings.max_wait_ms},
            "limits": {"max_upload_mb": settings.max_upload_mb, "max_inputs": settings.max_inputs,
                       "max_text_chars": settings.max_text_chars, "max_image_pixels": settings.max_image_pixels},
            "versions": versions(self.backend),
        }


def task_words(name: str) -> str:
    """The task in words, as its descriptor's summary opens ("single-label classification", "regression")."""
    spec = get_registry().items["tasks"].get(name)
    return spec.summary.split(":")[0] if spec is not None else name


def versions(backend: str) -> dict:
    from importlib.metadata import PackageNotFoundError, version
    out = {"tlhub": __version__, "python": platform.python_version()}
    for dist in (("torch", "torchvision") if backend == "pytorch" else ("onnxruntime",)) + ("fastapi", "uvicorn"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = None
    return out


def load_engine(settings: ServeSettings) -> Engine:
    """The predictor ``settings.model`` names, with ``settings.threads`` intra-op threads."""
    if settings.onnx:
        import json

        p = OnnxPredictor(Path(settings.model), threads=settings.threads)
        meta = p.session.get_modelmeta().custom_metadata_map
        config = json.loads(meta.get("tlhub.config", "{}"))
        return Engine(p, "onnxruntime", settings.name or Path(settings.model).parent.name, config, p.preprocessing)
    import torch

    torch.set_num_threads(settings.threads)
    try:  # one inter-op thread: requests are already run one batch at a time
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set in this process (a test that started a second app)
        pass
    p = load(settings.model)
    return Engine(p, "pytorch", settings.name or model_name(p.model_dir), p.config, dict(p.config["preprocessing"]))


def model_name(model_dir: Path) -> str:
    """The run directory's name (``runs/mnist5k_lite0-2026...``) rather than ``model``."""
    return model_dir.parent.name if model_dir.name == "model" else model_dir.name
