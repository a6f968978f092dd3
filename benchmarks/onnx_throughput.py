"""CPU inference throughput of the embedded vision model: PyTorch vs ONNX Runtime.

The model is the embedded recipe's (recipes/mnist5k_lite0.toml): EfficientNet-Lite0 with its embedded
ImageNet weights and a linear head for 10 classes, at the recipe's image size (64 px). Training does
not change the cost of inference, so the model is assembled untrained, written as a run's model/
folder would be, loaded back with ``tlhub.load`` (PyTorch, channels_last as a trained run serves it)
and exported with ``tlhub.export.onnx.export_onnx``.

Contestants, on the same preprocessed batches, one thread each (the machine is shared):
  torch-cl    the Predictor's model as ``tlhub.load`` gives it (channels_last, inference_mode)
  torch-nchw  the same model in PyTorch's default memory format
  onnxruntime the exported model.onnx, CPUExecutionProvider, intra_op_num_threads=1
Rounds alternate the contestants (A, B, C, A, B, C, ...) so that load changes hit all alike; the
figures are medians over rounds. Writes a section of benchmarks/RESULTS.md (kept by run.py).

    nice -n 10 .venv/bin/python benchmarks/onnx_throughput.py [--rounds 5] [--seconds 3]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RECIPE = REPO / "recipes" / "mnist5k_lite0.toml"
BEGIN, END = "<!-- BEGIN onnx_throughput -->", "<!-- END onnx_throughput -->"


def build_run(folder: Path):
    """A model/ folder for the recipe's model, and the recipe."""
    from tlhub.export.model import write_model
    from tlhub.model.assemble import ModelSpec, build_model
    from tlhub.plugins import get_registry
    from tlhub.recipe.validate import load_and_validate

    recipe = load_and_validate(RECIPE)
    m = recipe.model
    spec = ModelSpec(m.backbone, m.head, m.weights, m.backbone_options, m.head_options, str(RECIPE), str(RECIPE.parent))
    model = build_model(spec, get_registry(), 10).eval()
    if recipe.train.channels_last:
        model = model.use_channels_last()
    write_model(folder / "model", recipe, model, [str(i) for i in range(10)])
    return recipe


def timed(fn, seconds: float) -> float:
    """Calls per second of ``fn`` over about ``seconds`` (after two warm-up calls)."""
    fn()
    fn()
    n, start = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return n / elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=3.0, help="per contestant per round")
    ap.add_argument("--batches", default="1,32")
    args = ap.parse_args()

    import numpy as np
    import onnxruntime as ort
    import torch

    import tlhub
    from tlhub.export.onnx import export_onnx

    torch.set_num_threads(1)
    load_start = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix="tlhub-onnx-bench-"))
    recipe = build_run(tmp)
    exported = export_onnx(tmp, tmp / "onnx")
    predictor = tlhub.load(tmp)
    size = predictor.inputs.image_size
    served = predictor.model
    nchw = tlhub.load(tmp).model.to(memory_format=torch.contiguous_format)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(exported.path), options, providers=["CPUExecutionProvider"])

    results = {}
    for batch in [int(b) for b in args.batches.split(",")]:
        x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(0))
        x_np = x.numpy()

        def run_torch(model):
            def call():
                with torch.inference_mode():
                    model(served.prepare_input(x) if model is served else x).softmax(-1)
            return call

        contestants = {"torch-cl": run_torch(served), "torch-nchw": run_torch(nchw),
                       "onnxruntime": lambda: session.run(["probabilities"], {"pixel_values": x_np})}
        with torch.inference_mode():
            ref = served(served.prepare_input(x)).softmax(-1).numpy()
        diff = float(np.abs(session.run(["probabilities"], {"pixel_values": x_np})[0] - ref).max())
        rates: dict[str, list[float]] = {k: [] for k in contestants}
        for r in range(args.rounds):
            for name, fn in contestants.items():
                rates[name].append(timed(fn, args.seconds) * batch)
            print(f"batch {batch} round {r + 1}: " + ", ".join(f"{k} {v[-1]:.0f} img/s" for k, v in rates.items()),
                  flush=True)
        results[batch] = {"rates": rates, "max_prob_diff": diff}

    lines = [BEGIN, "## CPU inference: PyTorch vs ONNX Runtime (embedded vision model)", "",
             f"Produced by `nice -n 10 .venv/bin/python benchmarks/onnx_throughput.py --rounds {args.rounds} "
             f"--seconds {args.seconds:g}` on {date.today().isoformat()}: {RECIPE.relative_to(REPO)}'s model "
             f"(efficientnet_lite0 + linear head, 10 classes) at {size} px, one thread per runtime, preprocessed "
             f"float32 batches (decoding and resizing not included), images per second, median of {args.rounds} "
             f"alternating rounds of {args.seconds:g} s each (min..max in brackets).", "",
             f"- machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores (shared), load average at "
             f"start {', '.join(f'{v:.1f}' for v in load_start)}, at end "
             f"{', '.join(f'{v:.1f}' for v in os.getloadavg())}",
             f"- Python {platform.python_version()}, torch {torch.__version__}, onnxruntime {ort.__version__}, "
             f"ONNX opset {17}", "",
             "| batch | torch (channels_last, as served) | torch (NCHW) | ONNX Runtime | ONNX Runtime / torch served "
             "| max abs prob diff |", "|---|---|---|---|---|---|"]
    for batch, res in results.items():
        med = {k: statistics.median(v) for k, v in res["rates"].items()}
        cell = {k: f"{med[k]:.0f} ({min(v):.0f}..{max(v):.0f})" for k, v in res["rates"].items()}
        lines.append(f"| {batch} | {cell['torch-cl']} | {cell['torch-nchw']} | {cell['onnxruntime']} | "
                     f"{med['onnxruntime'] / med['torch-cl']:.2f}x | {res['max_prob_diff']:.1e} |")
    lines += ["", END]
    section = "\n".join(lines) + "\n"
    print(section)
    (HERE / "out").mkdir(exist_ok=True)
    (HERE / "out" / "onnx_throughput.json").write_text(json.dumps(
        {str(b): r for b, r in results.items()}, indent=1))
    path = HERE / "RESULTS.md"
    text = path.read_text() if path.is_file() else "# tlhub benchmark results\n"
    if BEGIN in text and END in text:
        text = text[:text.index(BEGIN)] + section.rstrip("\n") + text[text.index(END) + len(END):]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
