"""Does tlhub run right and fast on this machine's accelerator? Both embedded recipes, fp32 and bf16,
frozen-prefix cache on and off; then a bare PyTorch loop on the same device for comparison.

    python benchmarks/gpu_check.py             # a GPU: the full recipes (a few minutes on one GPU)
    python benchmarks/gpu_check.py --quick     # tiny subsets, 1 epoch per phase (CPU; CI runs this)

Checks (exit status 1 when one fails): every run finishes; the cached run's test accuracy equals the
uncached one's within TOLERANCE (bf16 and GPU kernels change float summation order); without --quick,
the accuracy is within 3 binomial standard errors of the CPU figure the recipe was measured at.
Prints examples/s per phase for each run, and for each phase a bare PyTorch loop (the same model,
the same trainable parameters, raw inputs, AdamW, autocast for bf16) on the same device.
The text recipe needs the rt-polarity files beside the repository (../shared/data/rt-polarity):
without them it is skipped, with the reason printed.
"""
from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RT = REPO.parent / "shared" / "data" / "rt-polarity"
# test accuracy and test examples on the 2-core CPU (recipes' comments, benchmarks/RESULTS.md)
RECIPES = {"vision": (REPO / "recipes" / "mnist5k_lite0.toml", 0.9860, 500),
           "text": (REPO / "recipes" / "sentiment_minilm.toml", 0.8433, 1066)}
TOLERANCE = {"full": 0.015, "quick": 0.15}  # |cached - uncached| test accuracy
PRECISIONS = ("no", "bf16")


def text_source(quick: bool, tmp: Path) -> list[str] | None:
    """The offline override of the sentiment recipe (rt-polarity files); --quick: 150 sentences per class."""
    if not (RT / "rt-polarity.pos").is_file():
        return None
    files = {c: RT / f"rt-polarity.{c}" for c in ("neg", "pos")}
    if quick:
        for c, path in list(files.items()):
            lines = path.read_bytes().splitlines(keepends=True)[:150]
            files[c] = tmp / f"quick.{c}"
            files[c].write_bytes(b"".join(lines))
    spec = ", ".join(f'{c}="{p}"' for c, p in files.items())
    return ["data.source=text-files", f'data.options={{files={{{spec}}}, encoding="cp1252"}}']


def overrides(part: str, quick: bool, tmp: Path, workers: int) -> list[str] | None:
    extra = [f"data.workers={workers}"]
    if part == "text":
        source = text_source(quick, tmp)
        if source is None:
            return None
        extra = source + extra
        if quick:
            extra += ["data.limit=64", "model.backbone_options={max_length=48}"]
    elif quick:
        extra += ["data.limit=64", "data.image_size=32", "phases.head.epochs=1", "phases.finetune.epochs=1",
                  "data.test_split=0.02"]
    return extra


def tlhub_run(recipe: Path, extra: list[str], out: Path) -> dict:
    import tlhub
    t0 = time.time()
    res = tlhub.run(recipe, extra + [f"output.dir='{out}'"], overwrite=True, quiet=True)
    phases = []
    for t in res.timings:
        rows = [r for r in res.history if r["phase"] == t["phase"]]
        per_epoch = [r["examples"] / max(r["train_seconds"], 1e-9) for r in rows]
        phases.append({"phase": t["phase"], "input": t["train_input"], "cache_s": t["cache_seconds"],
                       "ex_per_s": statistics.median(per_epoch)})
    plan = json.loads((res.run_dir / "plan.json").read_text())
    return {"accuracy": res.metrics["accuracy"], "n": res.metrics["test_examples"], "wall": time.time() - t0,
            "phases": phases, "train_names": [p["train_names"] for p in plan["phases"]], "run_dir": str(res.run_dir)}


def bare_examples_per_s(run_dir: str, recipe: Path, extra: list[str], phase: int, train_names: list[str],
                        precision: str, steps: int) -> float:
    """A plain loop: the trained model, the phase's trainable parameters, raw training batches from the
    recipe's own data (so the inputs are the same size), AdamW, autocast for bf16, no framework."""
    import torch
    import torch.nn.functional as F

    import tlhub
    from tlhub.data.splits import make_splits
    from tlhub.interfaces import DataContext
    from tlhub.plugins import get_registry
    from tlhub.recipe import load_and_validate
    from tlhub.training.trainer import make_datasets

    r = load_and_validate(recipe, extra)
    model = tlhub.load(run_dir).model
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    splits = make_splits(r, get_registry(), DataContext(Path(r.base_dir), r.data.split_seed, log=lambda m: None))
    datasets, collate, _ = make_datasets(model.backbone, r, splits)
    loader = torch.utils.data.DataLoader(datasets["train"], batch_size=r.data.batch_size, shuffle=True,
                                         collate_fn=collate, drop_last=True)
    trainable = {f"backbone.{n}" for n in train_names}
    model.to(device).train()
    for name, p in model.named_parameters():
        p.requires_grad_(name in trainable or name.startswith("head."))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    cast = torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()
    batches = itertools.cycle(loader)

    def step():
        x, y = next(batches)
        x = {k: v.to(device) for k, v in x.items()} if isinstance(x, dict) else x.to(device)
        with cast:
            loss = F.cross_entropy(model(x), y.to(device))
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
    return steps * r.data.batch_size / (time.time() - t0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny subsets and one epoch per phase (CPU, CI)")
    ap.add_argument("--only", choices=sorted(RECIPES), action="append", help="one recipe (repeatable)")
    ap.add_argument("--bare-steps", type=int, default=0, help="steps of the bare loop (default 30, --quick 3)")
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = ap.parse_args(argv)
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    mode = "quick" if args.quick else "full"
    steps = args.bare_steps or (3 if args.quick else 30)
    print(f"gpu_check ({mode}) on {torch.cuda.get_device_name() if device == 'cuda' else 'CPU'}, torch "
          f"{torch.__version__}", flush=True)
    failures: list[str] = []
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        for part in args.only or sorted(RECIPES):
            recipe, cpu_acc, cpu_n = RECIPES[part]
            extra = overrides(part, args.quick, tmp, 4 if device == "cuda" else 0)
            if extra is None:
                print(f"{part}: SKIPPED, the rt-polarity files are not at {RT}")
                continue
            for precision in PRECISIONS:
                runs = {}
                for cache in (True, False):
                    label = f"{part}-{'fp32' if precision == 'no' else precision}-{'cached' if cache else 'uncached'}"
                    more = extra + [f"train.mixed_precision='{precision}'", f"train.cache={str(cache).lower()}"]
                    try:
                        runs[cache] = res = tlhub_run(recipe, more, tmp / label)
                    except Exception as exc:  # noqa: BLE001 - a check reports every failure, then exits 1
                        failures.append(f"{label}: did not finish: {type(exc).__name__}: {exc}")
                        print(f"{label}: FAILED to finish: {type(exc).__name__}: {exc}", flush=True)
                        continue
                    results[label] = res
                    speed = ", ".join(f"{p['phase']} ({p['input']}) {p['ex_per_s']:.0f} ex/s" for p in res["phases"])
                    print(f"{label}: test accuracy {res['accuracy']:.4f} ({res['n']} examples), {res['wall']:.0f} s; "
                          f"{speed}", flush=True)
                    if not args.quick:
                        noise = 3 * math.sqrt(cpu_acc * (1 - cpu_acc) / cpu_n)
                        if abs(res["accuracy"] - cpu_acc) > noise:
                            failures.append(f"{label}: accuracy {res['accuracy']:.4f} differs from the CPU figure "
                                            f"{cpu_acc:.4f} by more than 3 standard errors ({noise:.4f})")
                if len(runs) == 2:
                    diff = abs(runs[True]["accuracy"] - runs[False]["accuracy"])
                    ok = diff <= TOLERANCE[mode]
                    print(f"{part} {precision}: cached vs uncached test accuracy differ by {diff:.4f} "
                          f"({'ok' if ok else 'TOO MUCH'}, tolerance {TOLERANCE[mode]})", flush=True)
                    if not ok:
                        failures.append(f"{part} {precision}: cached and uncached accuracy differ by {diff:.4f}")
                    res = runs[False]
                    for i, p in enumerate(res["phases"]):
                        bare = bare_examples_per_s(res["run_dir"], recipe, extra, i, res["train_names"][i], precision,
                                                   steps)
                        results[f"{part}-{precision}-bare-{p['phase']}"] = bare
                        print(f"  phase {p['phase']}: bare PyTorch loop {bare:.0f} ex/s; tlhub uncached "
                              f"{p['ex_per_s']:.0f} ex/s ({p['ex_per_s'] / bare:.2f}x), cached "
                              f"{runs[True]['phases'][i]['ex_per_s']:.0f} ex/s", flush=True)
    if args.out:
        args.out.write_text(json.dumps({"mode": mode, "device": device, "results": results,
                                        "failures": failures}, indent=1))
    print("\n".join(["FAILED:"] + [f"  {f}" for f in failures]) if failures else "gpu_check: all checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
