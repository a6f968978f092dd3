"""Text batches grouped by length vs padded in random order: the sentiment recipe's fine-tuning phase
(recipes/sentiment_minilm.toml's last phase, run alone on the offline rt-polarity files), epoch time
and test accuracy, in alternating runs (the machine is shared: epoch times swing from minute to minute).

    nice -n 10 .venv/bin/python benchmarks/group_by_length.py                # the whole training split
    nice -n 10 .venv/bin/python benchmarks/group_by_length.py --limit 2000   # 2,000 training sentences
Results go to benchmarks/out/group_by_length.json; copy the printed table into RESULTS.md.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import OUT, TEXT, inline, last_phase, run, text_overrides  # noqa: E402

MODES = (("grouped", ["data.group_by_length=true"]), ("random-order", ["data.group_by_length=false"]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=0, help="training sentences (0: all)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0, help="train.threads (0: the recipe's default)")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    extra = text_overrides() + [f"phases=[{inline(last_phase(TEXT))}]", "eval.each_phase=false"]
    extra += [f"data.limit={args.limit}"] if args.limit else []
    extra += [f"train.threads={args.threads}"] if args.threads else []
    rows: dict[str, list[dict]] = {m: [] for m, _ in MODES}
    for r in range(args.rounds):
        for mode, more in MODES:
            row = run(f"gbl-{mode}-{r}", TEXT, extra + more)
            rows[mode].append({"epoch_train_s": row["history"][0]["train_seconds"], "accuracy": row["accuracy"],
                               "input": row["phases"][0]["train_input"], "wall": row["wall"]})
    (OUT / "group_by_length.json").write_text(json.dumps({"limit": args.limit, "rounds": rows}, indent=1))
    print("| batches | training input | epoch (train) s, median of runs | runs | test accuracy |")
    print("|---|---|---|---|---|")
    for mode, _ in MODES:
        rs = rows[mode]
        epochs = ", ".join(f"{r['epoch_train_s']:.1f}" for r in rs)
        accs = ", ".join(f"{r['accuracy']:.4f}" for r in rs)
        median = statistics.median(r["epoch_train_s"] for r in rs)
        print(f"| {mode} | {rs[0]['input']} | {median:.1f} ({epochs}) | {len(rs)} | {accs} |")


if __name__ == "__main__":
    main()
