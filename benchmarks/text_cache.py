"""The text frozen-prefix cache against no cache: a one-phase recipe that fine-tunes the top k of
MiniLM's 6 layers (recipes/sentiment_minilm.toml's fine-tuning phase with freeze = "top_k", on the
offline rt-polarity files) cached (train.cache = true) and uncached, in alternating runs, for each k.
Reports the epoch's training seconds, the phase's wall seconds (cache fill and validation included)
and test accuracy; cached and uncached runs share the seed, so their accuracy should agree.

    nice -n 10 .venv/bin/python benchmarks/text_cache.py --limit 1500 --threads 1
    nice -n 10 .venv/bin/python benchmarks/text_cache.py --write   # also put the table into RESULTS.md
Results go to benchmarks/out/text_cache.json.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from report_md import replace_marked
from run import OUT, TEXT, inline, last_phase, run, text_overrides, warm_up

TARGETS = {1: 2.0, 2: 1.4, 4: 1.0}  # cached epoch at least this many times faster (issue 14)
MARK = "text_cache"


def table(rows: dict, ks: list[int]) -> list[str]:
    out = [("| top k trained | input (cached) | epoch train s cached (runs) | uncached (runs) | uncached / cached "
           "| target | phase wall s cached / uncached (fill included) | test accuracy cached / uncached |"),
           "|---|---|---|---|---|---|---|---|"]
    for k in ks:
        c, u = rows[f"{k}-cached"], rows[f"{k}-uncached"]
        mc, mu = (statistics.median(r["epoch_train_s"] for r in rs) for rs in (c, u))
        target = TARGETS.get(k)
        verdict = f">= {target:.1f}x: {'met' if mu / mc >= target else 'MISSED'}" if target else "-"
        runs = [", ".join(f"{r['epoch_train_s']:.1f}" for r in rs) for rs in (c, u)]
        walls = [statistics.median(r["phase_s"] for r in rs) for rs in (c, u)]
        accs = [", ".join(f"{r['accuracy']:.4f}" for r in rs) for rs in (c, u)]
        out.append(f"| {k} | {c[0]['input']} | {mc:.1f} ({runs[0]}) | {mu:.1f} ({runs[1]}) | {mu / mc:.2f}x | "
                   f"{verdict} | {walls[0]:.1f} / {walls[1]:.1f} | {accs[0]} / {accs[1]} |")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=1500, help="training sentences (0: all)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="train.threads")
    ap.add_argument("--k", type=int, nargs="+", default=[1, 2, 4, 6], help="top layers trained")
    ap.add_argument("--write", action="store_true", help="put the table into benchmarks/RESULTS.md")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    warm_up(["text"])
    phase = dict(last_phase(TEXT), name="topk")
    base = text_overrides() + ["eval.each_phase=false", f"train.threads={args.threads}"]
    base += [f"data.limit={args.limit}"] if args.limit else []
    rows: dict[str, list[dict]] = {}
    loads = []
    for k in args.k:
        ph = inline([dict(phase, freeze="top_k", freeze_options={"k": k})])
        for r in range(args.rounds):
            modes = ("cached", "uncached") if r % 2 == 0 else ("uncached", "cached")  # A B, then B A
            for mode in modes:
                cache = "true" if mode == "cached" else "false"
                res = run(f"tc-{k}-{mode}-{r}", TEXT, base + [f"phases={ph}", f"train.cache={cache}"])
                loads.append(os.getloadavg()[0])
                rows.setdefault(f"{k}-{mode}", []).append({
                    "epoch_train_s": res["history"][0]["train_seconds"], "phase_s": res["phases"][0]["seconds"],
                    "fill_s": res["phases"][0]["cache_seconds"], "accuracy": res["accuracy"],
                    "input": res["phases"][0]["train_input"], "load": res["load"]})
    (OUT / "text_cache.json").write_text(json.dumps({"limit": args.limit, "threads": args.threads,
                                                     "runs": rows, "loads": loads}, indent=1))
    lines = table(rows, args.k)
    print("\n".join(lines))
    print(f"load average (1 min) at the runs: {min(loads):.1f}-{max(loads):.1f}")
    if args.write:
        cmd = " ".join(["python benchmarks/text_cache.py"] + sys.argv[1:])
        head = ["## Text frozen-prefix cache vs no cache (benchmarks/text_cache.py; kept by `run.py --render`)", "",
                (f"`{cmd}`: one phase fine-tuning the top k of MiniLM's 6 layers (the sentiment recipe's "
                f"fine-tuning phase with `freeze = \"top_k\"`), {args.limit or 'all'} rt-polarity training "
                f"sentences, {args.threads} thread(s), cached and uncached in alternating runs (A B, B A). "
                f"Epoch = the epoch's training seconds; the phase wall includes the cache fill (train and "
                f"val) and the validation pass. Load average {min(loads):.1f}-{max(loads):.1f}."), ""]
        replace_marked(HERE / "RESULTS.md", MARK, "\n".join(head + lines))


if __name__ == "__main__":
    main()
