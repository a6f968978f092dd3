"""Where tlhub's GPU time goes (issue 29 item 4): torch.profiler over a few hundred training steps of

  * the text recipe's fine-tuning (top 4 MiniLM layers) in bf16, from the frozen-prefix cache and without it
    (the last GPU run found the cached phase at a third of the uncached speed), and
  * the vision recipe's head phase (linear head on cached EfficientNet-Lite0 features; it ran at 0.72x a bare loop),

each beside a bare PyTorch loop (the same model and trainable parameters, AdamW, the same autocast) at batch
sizes 32 and 128. Prints examples/s for every pair and the 25 most expensive operators of every profiled
run; writes profiles (tables and Chrome traces) and a JSON summary under --out.

    python benchmarks/gpu_profile.py --out /tmp/prof             # a GPU: about 5 minutes
    python benchmarks/gpu_profile.py --tiny --out /tmp/prof      # CPU smoke test: tiny subsets, a few steps
"""
from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from gpu_check import RECIPES, text_source  # noqa: E402  (the recipes and the offline text source)

BATCHES = (32, 128)


def part_overrides(part: str, tiny: bool, tmp: Path, batch: int, steps: int) -> list[str] | None:
    """One training phase of the recipe, ``steps`` batches of ``batch`` examples."""
    if part == "text":
        source = text_source(tiny, tmp)
        if source is None:
            return None
        phase = "{name='finetune', epochs=1, optimizer='adamw', lr=1e-4, freeze='top_k', freeze_options={k=4}}"
        extra = source + [f"phases=[{phase}]"]
        if tiny:
            extra += ["model.backbone_options={max_length=32}", "data.eval_batch_size=8"]
    else:
        phase = "{name='head', epochs=1, lr=3e-3, freeze='frozen'}"
        extra = [f"phases=[{phase}]"] + (["data.image_size=32", "data.eval_batch_size=64"] if tiny else [])
    n = min(batch * steps, 10**9) if not tiny else (8 if part == "text" else 64)  # 64: a few digits per class
    held = "0.004" if tiny else "0.05"  # --tiny: 20 digits (15 sentences) each for val and test
    return extra + [f"data.batch_size={batch}", f"data.limit={n}", f"data.test_split={held}", f"data.val_split={held}"]


def profiled_run(recipe: Path, extra: list[str], out: Path, label: str) -> dict:
    """tlhub.run under torch.profiler; examples/s of the training epoch and the operator table."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    import tlhub
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with profile(activities=acts) as prof:
        res = tlhub.run(recipe, extra + [f"output.dir='{out / label}'"], overwrite=True, quiet=True)
    row = res.history[-1]
    sort = "self_cuda_time_total" if torch.cuda.is_available() else "self_cpu_time_total"
    table = prof.key_averages().table(sort_by=sort, row_limit=25)
    (out / f"{label}.txt").write_text(table)
    prof.export_chrome_trace(str(out / f"{label}.trace.json"))
    return {"ex_per_s": row["examples"] / max(row["train_seconds"], 1e-9), "steps": row["steps"],
            "cache_s": res.timings[-1]["cache_seconds"], "input": row["train_input"], "run_dir": str(res.run_dir),
            "table": table}


def bare_loop(run_dir: str, recipe: Path, extra: list[str], precision: str, batch: int, steps: int,
              cached_head: bool) -> float:
    """Examples/s of a plain loop on the run's model: the trainable parameters of its phase (the head only for
    ``cached_head``, which trains on features computed once, as tlhub's cache does), AdamW, autocast."""
    import torch
    import torch.nn.functional as F

    import tlhub
    from tlhub.data.splits import make_splits
    from tlhub.interfaces import DataContext
    from tlhub.plugins import get_registry
    from tlhub.recipe import load_and_validate
    from tlhub.training.trainer import make_datasets

    r = load_and_validate(recipe, extra)
    model = tlhub.load(run_dir, mixed_precision="no").model
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    splits = make_splits(r, get_registry(), DataContext(Path(r.base_dir), r.data.split_seed, log=lambda m: None))
    datasets, collate, _ = make_datasets(model.backbone, r, splits)
    loader = torch.utils.data.DataLoader(datasets["train"], batch_size=batch, shuffle=True, collate_fn=collate)
    model.to(device)
    cast = torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()
    plan = json.loads((Path(run_dir) / "plan.json").read_text())["phases"][-1]
    trainable = {f"backbone.{n}" for n in plan["train_names"]}
    if cached_head:  # the features once, on the device, then only the head trains
        model.eval()
        feats, labels = [], []
        with torch.no_grad(), cast:
            for x, y in loader:
                x = {k: v.to(device) for k, v in x.items()} if isinstance(x, dict) else x.to(device)
                feats.append(model.features(x).float())
                labels.append(y.to(device))
        data = list(zip(feats, labels))
        net = model.head
    else:
        data = [({k: v.to(device) for k, v in x.items()} if isinstance(x, dict) else x.to(device), y.to(device))
                for x, y in itertools.islice(loader, steps)]
        net = model
    net.train()
    for name, p in model.named_parameters():
        p.requires_grad_(name in trainable or name.startswith("head."))
    opt = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=1e-5)
    batches = itertools.cycle(data)

    def step():
        x, y = next(batches)
        with cast:
            loss = F.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad()

    for _ in range(2):  # warm-up: kernels, allocator
        step()
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    t0 = time.time()
    for _ in range(steps):
        step()
    sync()
    return steps * len(data[0][1]) / (time.time() - t0)


CASES = [  # (label, part, precision, cache, cached_head bare loop)
    ("text-bf16-cached", "text", "bf16", True, False),
    ("text-bf16-uncached", "text", "bf16", False, False),
    ("vision-head-fp32", "vision", "no", True, True),
    ("vision-head-bf16", "vision", "bf16", True, True),
]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="CPU smoke test: tiny subsets, a few steps")
    ap.add_argument("--steps", type=int, default=0, help="training steps per run (default 300, --tiny 1)")
    ap.add_argument("--out", type=Path, required=True, help="folder for the tables, traces and summary.json")
    args = ap.parse_args(argv)
    import tempfile

    import torch
    steps = args.steps or (1 if args.tiny else 300)
    batches = (4,) if args.tiny else BATCHES  # bf16 runs ~8x slower on a CPU without AMX: keep --tiny tiny
    args.out.mkdir(parents=True, exist_ok=True)
    dev = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    print(f"gpu_profile on {dev}, torch {torch.__version__}, {steps} steps per run", flush=True)
    summary: dict = {"device": dev, "steps": steps, "runs": {}}
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        for batch in batches:
            for label, part, precision, cache, cached_head in CASES:
                recipe = RECIPES[part][0]
                extra = part_overrides(part, args.tiny, tmp, batch, steps)
                if extra is None:
                    print(f"{label}: SKIPPED (no rt-polarity files)", flush=True)
                    continue
                extra += [f"train.mixed_precision='{precision}'", f"train.cache={str(cache).lower()}"]
                name = f"{label}-b{batch}"
                res = profiled_run(recipe, extra, args.out, name)
                bare = bare_loop(res["run_dir"], recipe, extra, precision, batch, steps, cached_head)
                res.update(bare_ex_per_s=bare, ratio=res["ex_per_s"] / bare)
                print(f"{name}: tlhub {res['ex_per_s']:.0f} ex/s ({res['input']}, cache fill {res['cache_s']:.1f} s), "
                      f"bare loop {bare:.0f} ex/s: {res['ratio']:.2f}x", flush=True)
                print(res.pop("table"), flush=True)
                summary["runs"][name] = res
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
