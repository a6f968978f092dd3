"""Use a fine-tuned model: ``tlhub.load(path)`` gives a ``Predictor`` that needs no training code.

A run writes ``RUN_DIR/model/``: ``model.safetensors`` (the ``TransferModel`` state dict, keys
``backbone.*`` and ``head.*``), ``config.json`` (backbone, head, their options, classes and the
preprocessing) and, for text, ``tokenizer/``. Loading rebuilds the backbone from the registry with
``weights="none"`` (random init: nothing is downloaded), builds the head, and fills both from the
safetensors file (never pickle). Then::

    p = tlhub.load("runs/mnist5k_lite0-20261130-120000")
    p.predict(["digit.png", pil_image, uint8_array])   # -> [Prediction(label, prob, probs), ...]

Image inputs are treated exactly as the trainer treats its data items (``tlhub.data.images.to_pil``:
paths, PIL images and numpy arrays ``HxW``, ``HxWxC`` or ``CxHxW``), then resized to the trained size
and normalized with the saved mean/std. ``torch.Tensor`` inputs are raw images ``[C, H, W]`` (or
``[H, W]``; a 4-D tensor is a batch) with values in 0..1 (floats) or 0..255 (``uint8``); they are
resized (bilinear, antialiased) only when their side differs from the trained size, then normalized
-- they are *not* expected to be normalized already. Text models take strings.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from tlhub import precision
from tlhub.errors import UserError
from tlhub.plugins import get_registry
from tlhub.precision import autocast
from tlhub.task import Prediction  # noqa: F401 (tlhub.use.load.Prediction, as before tasks)
from tlhub.tasks.classification import Classification
from tlhub.use.modelconfig import config_problems

if TYPE_CHECKING:  # keep ``import tlhub.use.load`` free of torch until a model is loaded
    import numpy as np
    import torch

log = logging.getLogger("tlhub")
MAX_LISTED_KEYS = 10


def predictions(classes: list[str], probs, task: Any = None) -> list[Prediction]:
    """One ``Prediction`` per row of outputs (class probabilities, or the task's: ``Task.predictions``), for
    PyTorch and ONNX Runtime predictors alike."""
    if task is None:
        task = Classification()
    return task.predictions(classes, probs)


def model_task(config: dict, registry: Any = None) -> Any:
    """The model's ``tlhub.task.Task`` with the options and state it was saved with (thresholds, scale)."""
    task = (registry or get_registry()).task(config.get("task") or "classification")
    return task.configured(config.get("task_options") or {}, config.get("task_state") or {})


class Predictor:
    """A loaded model in eval mode with the preprocessing it was trained with.

    Attributes: ``model`` (the ``TransferModel``), ``classes``, ``modality`` (the name of the data's
    modality, e.g. "image" or "text"), ``inputs`` (the modality's ``InputPipeline``: the user's inputs ->
    a batch), ``config`` (the parsed ``config.json``), ``model_dir``, ``device`` and ``mixed_precision``
    (the autocast predictions run under: "no", "bf16" or "fp16").
    """

    def __init__(self, model: Any, config: dict, model_dir: Path, device: str = "cpu", mixed_precision: str = "no",
                 registry: Any = None):
        self.model = model
        self.mixed_precision = mixed_precision
        self.config = config
        self.model_dir = Path(model_dir)
        self.classes: list[str] = [str(c) for c in config["classes"]]
        prep = config.get("preprocessing") or {}
        self.modality: str = prep.get("modality", "image")
        self.modality_impl = (registry or get_registry()).modality(self.modality)
        self.task = model_task(config, registry)
        self.inputs = self.modality_impl.inputs(prep, model.backbone, self.model_dir)
        self.device = device

    def __repr__(self) -> str:
        return (f"Predictor({self.config.get('backbone')!r} + {self.config.get('head')!r}, {len(self.classes)} "
                f"classes, {self.modality}, device={self.device!r}, from {str(self.model_dir)!r})")

    def to(self, device: str) -> "Predictor":
        """Move the model to ``device`` ("cpu", "cuda", "cuda:1" or "auto") and return ``self``."""
        self.device = resolve_device(device)
        self.model.to(self.device)
        return self

    def predict(self, inputs: Any, batch_size: int = 64) -> list[Prediction]:
        """Predictions for ``inputs`` (a list of inputs, or one input), in order, ``batch_size`` at a time."""
        return predictions(self.classes, self.predict_proba(inputs, batch_size), self.task)

    def predict_proba(self, inputs: Any, batch_size: int = 64) -> "np.ndarray":
        """The task's outputs as a float32 array ``[n_inputs, n_classes]`` (columns: ``self.classes``): class
        probabilities (classification), per-label probabilities (multilabel), values (regression)."""
        import numpy as np
        import torch

        if batch_size < 1:
            raise UserError(f"batch_size: must be >= 1, got {batch_size}")
        items = self.modality_impl.as_items(inputs)
        rows = []
        with torch.inference_mode(), autocast(self.mixed_precision, torch.device(self.device).type):
            for start in range(0, len(items), batch_size):
                x = self.inputs.batch(items[start:start + batch_size], self.device)
                rows.append(self.task.transform(self.model(x).float()).cpu().numpy())
        if not rows:
            return np.zeros((0, len(self.classes)), dtype=np.float32)
        return np.concatenate(rows).astype(np.float32)


# ---------------------------------------------------------------------- loading

def resolve_device(device: Any = "cpu") -> str:
    """'cpu', 'cuda[:N]' (an error when no GPU is visible) or 'auto' (a GPU when there is one)."""
    import torch
    name = str(device or "cpu")
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device {name!r}: no CUDA GPU is visible to torch; use device='cpu' or 'auto'")
    try:
        kind = torch.device(name).type
    except RuntimeError:
        raise UserError(f"device {name!r}: not a torch device (try 'cpu', 'cuda' or 'auto')") from None
    if kind == "meta":  # holds no data: every prediction would fail later; other backends (xpu, hpu, ...) pass
        raise UserError(f"device {name!r}: a meta tensor holds no data; tlhub predicts on 'cpu', 'cuda[:N]', "
                        f"'mps' or 'auto'")
    return name


def find_model_dir(path: str | Path) -> Path:
    """The ``model/`` folder given a run directory, the folder itself, or its ``model.safetensors``."""
    p = Path(path).expanduser()
    if p.is_file() and p.name in ("model.safetensors", "config.json"):
        p = p.parent
    for cand in (p / "model", p):
        if (cand / "config.json").is_file():
            return cand
    if not p.exists():
        raise UserError(f"{path}: no such run directory or model folder")
    raise UserError(f"{path}: not a tlhub model (expected a run directory with model/config.json, or a model "
                    f"folder with config.json and model.safetensors)")


def read_config(model_dir: Path) -> dict:
    """``config.json`` of a model folder, checked against its schema (``tlhub.use.modelconfig``)."""

    path = model_dir / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: cannot read the model config ({exc})") from None
    problems = config_problems(config)
    if problems:
        raise UserError(errors=[f"{path}: {p}" for p in problems])
    return config


def build_model(config: dict, model_dir: Path, registry=None):
    """The ``TransferModel`` of ``config`` with random weights (backbone built with weights='none')."""
    # local: tlhub.model imports torch; `tlhub predict` on an ONNX model must not
    from tlhub.model import ModelSpec, add_head, build_backbone

    registry = registry or get_registry()
    try:
        registry.get("backbones", config["backbone"])
    except UserError as exc:
        raise UserError(f"{exc} (the model was trained with backbone {config['backbone']!r} of plugin "
                        f"{config.get('backbone_plugin') or '?'!r}; install that plugin to load it)") from None
    given = dict(config.get("backbone_options") or {})
    # Options that make a rebuild work offline, with paths relative to the model folder (written by the
    # exporter, e.g. {"model": "tokenizer"} when a Hugging Face config is saved beside the tokenizer).
    for key, value in (config.get("offline_backbone_options") or {}).items():
        given[key] = str(model_dir / value) if isinstance(value, str) and (model_dir / value).exists() else value
    spec = ModelSpec(config["backbone"], config["head"], "none", given, dict(config.get("head_options") or {}),
                     "config.json", str(model_dir))
    try:
        backbone = build_backbone(spec, registry)
    except UserError as exc:
        if exc.errors and all(e.startswith("config.json") for e in exc.errors):
            raise
        raise UserError(f"{model_dir / 'config.json'}: cannot rebuild backbone {spec.backbone!r} (weights='none') "
                        f"to load the fine-tuned weights into: {exc}") from None
    return add_head(backbone, spec, registry, model_task(config, registry).num_outputs([str(c) for c in config["classes"]]))


def load_weights(model: Any, path: Path) -> None:
    """Fill ``model`` from a safetensors file; a bad file or any key/shape mismatch is a ``UserError``."""
    from safetensors.torch import load_file

    if not path.is_file():
        raise UserError(f"{path}: the weights file is missing")
    try:
        state = load_file(str(path))
    except Exception as exc:  # SafetensorError, OSError, ...: a truncated or foreign file
        raise UserError(f"{path}: not a readable safetensors file ({type(exc).__name__}: {exc})") from None
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = sorted(k for k in set(expected) & set(state) if tuple(expected[k].shape) != tuple(state[k].shape))
    errors = []
    for what, keys in (("missing from the file", missing), ("in the file but not in the rebuilt model", unexpected)):
        if keys:
            more = f" (and {len(keys) - MAX_LISTED_KEYS} more)" if len(keys) > MAX_LISTED_KEYS else ""
            errors.append(f"{path}: {len(keys)} key(s) {what}: {', '.join(keys[:MAX_LISTED_KEYS])}{more}")
    for k in shapes[:MAX_LISTED_KEYS]:
        errors.append(f"{path}: {k} has shape {tuple(state[k].shape)} in the file but "
                      f"{tuple(expected[k].shape)} in the rebuilt model")
    if errors:
        errors.append("the weights do not fit the model described by config.json (was the backbone plugin or its "
                      "options changed since training?)")
        raise UserError(errors=errors)
    model.load_state_dict(state, strict=True)


def load(path: str | Path, device: str = "cpu", mixed_precision: str = "auto") -> Predictor:
    """Load a fine-tuned model from a run directory (or its ``model/`` folder) for prediction.

    ``device``: "cpu" (default), "cuda", "cuda:N" or "auto" (a GPU when one is visible).
    ``mixed_precision``: "auto" (default) predicts under the autocast the model was trained and tested in
    where this device runs it fast (bf16: a CPU with AMX / AVX-512 bf16), else in fp32; "no", "bf16" or
    "fp16" force one.
    Raises ``tlhub.UserError`` when the folder, config or weights are missing, corrupt or do not fit.
    """
    if mixed_precision not in precision.MODES:
        raise UserError(f"mixed_precision {mixed_precision!r}: expected one of {', '.join(precision.MODES)}")
    model_dir = find_model_dir(path)
    config = read_config(model_dir)
    device = resolve_device(device)
    if mixed_precision == precision.AUTO:
        import torch
        trained = config.get("mixed_precision", "no")
        mixed_precision = precision.resolve(precision.AUTO, torch.device(device).type).mode \
            if trained == "bf16" else "no"
    model = build_model(config, model_dir)
    load_weights(model, model_dir / "model.safetensors")
    if config.get("channels_last"):  # the memory format it was trained and tested in
        model = model.use_channels_last()
    model.eval()
    model.to(device)
    return Predictor(model, config, model_dir, device, mixed_precision)
