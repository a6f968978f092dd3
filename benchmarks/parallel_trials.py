"""freeze = "auto" under 2 processes: the trials of a rung side by side (one per process) against each trial
data-parallel over both, on the same data and seed, one after the other (data-parallel first).

    .venv/bin/python benchmarks/parallel_trials.py                  # CIFAR subset, 2,000 training images
    .venv/bin/python benchmarks/parallel_trials.py --limit 500 --pairs 2

Each run is `torchrun --nproc_per_node 2` of the embedded image recipe with one `freeze = "auto"` phase,
1 thread per process; the auto phase's ``auto_trials`` picks the mode. Prints and stores the search's
seconds (from auto_search.json), the whole run's wall time, the winner and the test accuracy.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from auto_dev import CIFAR, auto_phase, cifar_overrides
from run import OUT, VISION


def worker(mode: str, overrides: list[str]) -> None:
    import tlhub
    tlhub.run(VISION, overrides + [f"phases.0.auto_trials={mode.replace('-', '_')}"], overwrite=True, quiet=True)


def launch(mode: str, overrides: list[str], out: Path) -> dict:
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or "torchrun"
    env = dict(os.environ, OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    t0 = time.time()
    subprocess.run([torchrun, "--nproc_per_node", "2", "--master_port", "29531", __file__, "--worker", mode, "--",
                    *overrides, f"output.dir='{out}'"], check=True, env=env)
    wall = time.time() - t0
    search = json.loads((out / "auto_search.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    return {"mode": mode, "wall": round(wall, 1), "search_seconds": search["seconds"], "winner": search["winner"],
            "trials": sum(1 for t in search["trials"] if t["epochs"]), "accuracy": metrics.get("accuracy")}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--worker", choices=("side-by-side", "data-parallel"))
    ap.add_argument("--limit", type=int, default=2000, help="training images")
    ap.add_argument("--pairs", type=int, default=1, help="data-parallel / side-by-side pairs, alternating")
    ap.add_argument("rest", nargs="*")
    args = ap.parse_args()
    if args.worker:
        worker(args.worker, args.rest)
        return 0
    if not CIFAR.is_dir():
        print(f"skipped: {CIFAR} is absent")
        return 0
    overrides = cifar_overrides() + auto_phase() + [f"data.limit={args.limit}", "train.threads=1"]
    rows = []
    for i in range(args.pairs):
        for mode in ("data-parallel", "side-by-side"):
            rows.append(launch(mode, overrides, OUT / f"parallel_trials-{mode}-{i}"))
            print(json.dumps(rows[-1]), flush=True)
    (OUT / f"parallel_trials-n{args.limit}.json").write_text(json.dumps(rows, indent=1))
    print("\n| trials | search s | whole run s | trials run | winner | test accuracy |\n|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['mode']} | {r['search_seconds']:.0f} | {r['wall']:.0f} | {r['trials']} | {r['winner']} | "
              f"{r['accuracy']:.4f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
