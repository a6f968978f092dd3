"""``tlhub export RUN --format onnx``: the fine-tuned model as ``model.onnx``, ready for ONNX Runtime.

The graph takes what the model takes after preprocessing, as the data's modality names it
(``Modality.onnx_io``): ``pixel_values`` ``[batch, 3, S, S]`` float32 (resized, scaled to 0..1,
normalized) for images, ``input_ids`` + ``attention_mask`` ``[batch, sequence]`` int64 for text - with
dynamic batch (and sequence) axes, and gives ``logits`` and ``probabilities`` (the task's outputs: class or
label probabilities, or a regression model's values in the targets' units). The file's ``metadata_props`` carry what a server needs to use it: the label
names (``tlhub.classes``), the preprocessing (``tlhub.preprocessing``: size, mean, std, resize and
layout, or the max length and tokenizer folder) and the training config (``tlhub.config``). A text
model's tokenizer is saved beside the file.

After writing, the file is run once with ONNX Runtime on the export batch and compared with PyTorch;
the largest difference of the outputs is reported (and one above 1e-3 of their scale is an error: of 1 for
probabilities, of the largest value for a regression model's, whose float32 rounding grows with them).
"""
from __future__ import annotations

import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

from tlhub import __version__
from tlhub.artifacts.writable import writable_folder
from tlhub.errors import UserError
from tlhub.use.load import find_model_dir, load

log = logging.getLogger("tlhub")
OPSET = 17
TOLERANCE = 1e-3  # relative: a graph that differs more than this from PyTorch is broken, not rounded differently


@dataclass(frozen=True)
class OnnxExport:
    path: Path
    modality: str
    inputs: list[str]
    max_diff: float  # the largest output difference, ONNX Runtime vs PyTorch on the export batch


def parity(target: Path, got, reference) -> float:
    """The largest difference of ONNX Runtime's outputs from PyTorch's; an error above ``TOLERANCE`` of their
    scale (1 for probabilities; the largest value of a regression model's)."""
    import numpy as np
    diff, scale = float(np.abs(got - reference).max()), max(1.0, float(np.abs(reference).max()))
    if diff > TOLERANCE * scale:
        raise UserError(f"{target}: ONNX Runtime's outputs differ from PyTorch's by {diff:.2g} (more than "
                        f"{TOLERANCE:g} of their scale, {scale:.3g}); this backbone does not export faithfully")
    return diff


def _wrapped(model, model_input, task):
    import torch

    class Probabilities(torch.nn.Module):
        """(logits, the task's outputs) from the tensors ONNX passes in (``model_input`` of the modality's
        OnnxIO): softmax probabilities, sigmoid probabilities or de-standardised values (``Task.transform``,
        with the model's thresholds and target scale as constants)."""

        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, *inputs):
            logits = self.model(model_input(*inputs)).float()
            return logits, task.transform(logits)

    return Probabilities().eval()


def metadata(predictor) -> dict[str, str]:
    config = predictor.config
    prep = dict(config["preprocessing"])
    prep.update(predictor.modality_impl.onnx_metadata(prep))
    return {"tlhub.classes": json.dumps(predictor.classes), "tlhub.preprocessing": json.dumps(prep),
            "tlhub.config": json.dumps(config), "tlhub.version": __version__,
            "tlhub.outputs": json.dumps(["logits", "probabilities"])}


def export_onnx(path: str | Path, output: str | Path | None = None) -> OnnxExport:
    """Write ``model.onnx`` for the run (or model folder) at ``path`` into ``output`` (default RUN/onnx)."""
    try:
        import onnx
        import onnxruntime as ort
    except ImportError:
        raise UserError("exporting to ONNX needs onnx and onnxruntime (pip install 'tlhub[onnx]')") from None
    import torch

    model_dir = find_model_dir(path)
    run_dir = model_dir.parent if model_dir.name == "model" else model_dir
    out_dir = writable_folder(Path(output) if output else run_dir / "onnx", "--output")
    predictor = load(model_dir)
    out_dir.mkdir(parents=True, exist_ok=True)  # after the model loads: a damaged one leaves no empty folder
    model = predictor.model.to(memory_format=torch.contiguous_format)  # NCHW in the graph
    io = predictor.modality_impl.onnx_io(predictor.inputs, model.backbone)
    inputs = io.example
    names = list(inputs)
    axes = {**io.axes, "logits": {0: "batch"}, "probabilities": {0: "batch"}}
    target = out_dir / "model.onnx"
    with warnings.catch_warnings(), torch.no_grad():
        # the TorchScript-based exporter: it needs no onnxscript and keeps dynamic axes for BERT-style masks
        warnings.simplefilter("ignore")
        torch.onnx.export(_wrapped(model, io.model_input, predictor.task), tuple(inputs.values()), str(target), dynamo=False,
                          input_names=names, output_names=["logits", "probabilities"], dynamic_axes=axes,
                          opset_version=OPSET)
        reference = _wrapped(model, io.model_input, predictor.task)(*inputs.values())[1].numpy()
    proto = onnx.load(str(target))
    for key, value in metadata(predictor).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name, proto.producer_version = "tlhub", __version__
    proto.doc_string = f"tlhub {config_summary(predictor.config)}"
    onnx.checker.check_model(proto)
    onnx.save(proto, str(target))
    predictor.modality_impl.onnx_save(predictor.inputs, out_dir)
    session = ort.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    got = session.run(["probabilities"], {k: v.numpy() for k, v in inputs.items()})[0]
    diff = parity(target, got, reference)
    log.info("onnx: wrote %s (%s, inputs %s); ONNX Runtime vs PyTorch on the export batch: max output difference "
             "%.2g", target, predictor.modality, ", ".join(names), diff)
    return OnnxExport(target, predictor.modality, names, diff)


def config_summary(config: dict) -> str:
    return (f"{config['backbone']} + {config['head']}, {len(config['classes'])} classes "
            f"({config['preprocessing'].get('modality', '?')})")
