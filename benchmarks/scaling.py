"""Cost as the data grows (issue 29 item 3): time per epoch, peak memory and cache size of

  * the text recipe (recipes/sentiment_minilm.toml's phase) on GoEmotions comments, single-label by their
    first label (the labels of at least 2% of the comments; ../shared/data/goemotions), and
  * the image recipe (recipes/mnist5k_lite0.toml, one epoch per phase) on MNIST-5k digits,

at several training-set sizes, each size in a fresh process (so its peak RSS is its own). Writes
benchmarks/out/scaling.json and benchmarks/scaling.png; --write puts the table into RESULTS.md.

    OMP_NUM_THREADS=1 python benchmarks/scaling.py --text 1000 4000 16000 43000 --image 1000 4900 --write
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import OUT, SHARED, TEXT, VISION, PeakRSS  # noqa: E402

GOEMOTIONS = SHARED / "goemotions"


def goemotions_files(folder: Path) -> dict[str, str]:
    """One file per class (a comment's first label), as the text-files source reads them."""
    names = (GOEMOTIONS / "labels.txt").read_text(encoding="utf-8").split("\n")
    by_class: dict[str, list[str]] = {}
    for line in (GOEMOTIONS / "train.tsv").read_text(encoding="utf-8").split("\n")[1:]:
        parts = line.split("\t")
        if len(parts) >= 2 and parts[0].strip():
            by_class.setdefault(names[int(parts[1].split(",")[0])], []).append(parts[0].replace("\n", " "))
    # the first labels of at least 2% of the comments: a rarer class (grief: 0.2%) would have no example
    # in the smaller training sets, which a run refuses
    total = sum(len(v) for v in by_class.values())
    by_class = {k: v for k, v in by_class.items() if len(v) >= 0.02 * total}
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, lines in sorted(by_class.items()):
        files[name] = str(folder / f"{name}.txt")
        Path(files[name]).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return files


def overrides(kind: str, size: int) -> tuple[Path, list[str]]:
    """The recipe and overrides of one measurement: ``size`` training examples, small val and test splits
    (their cost does not grow with ``size``), one epoch per phase, 1 thread."""
    common = [f"data.limit={size}", "train.threads=1", "eval.metrics=['accuracy']"]
    if kind == "text":
        files = goemotions_files(OUT / "goemotions-files")
        table = ", ".join(f"{json.dumps(k)}={json.dumps(v)}" for k, v in files.items())
        return TEXT, common + ["data.source=text-files", f"data.options={{files={{{table}}}}}",
                               "data.val_split=0.01", "data.test_split=0.01", "phases.0.epochs=1"]
    return VISION, common + ["data.val_split=0.02", "data.test_split=0.02", "phases.head.epochs=1",
                             "phases.finetune.epochs=1"]


def measure_one(kind: str, size: int) -> dict:
    import tlhub
    recipe, extra = overrides(kind, size)
    with PeakRSS() as mem:
        res = tlhub.run(recipe, extra + [f"output.dir='{OUT / f'scaling-{kind}-{size}'}'"], overwrite=True,
                        quiet=True)
    phases = []
    for t in res.timings:
        rows = [h for h in res.history if h["phase"] == t["phase"]]
        phases.append({"phase": t["phase"], "epoch_train_s": rows[0]["train_seconds"], "examples": rows[0]["examples"],
                       "cache_s": t["cache_seconds"], "cache_mb": t.get("cache_mb", 0.0), "input": t["train_input"]})
    return {"kind": kind, "size": size, "train_examples": phases[0]["examples"], "peak_gb": mem.gb,
            "accuracy": res.metrics["accuracy"], "phases": phases, "load": os.getloadavg()[0]}


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    for kind, marker in (("text", "o"), ("image", "s")):
        rs = sorted((r for r in rows if r["kind"] == kind), key=lambda r: r["train_examples"])
        if not rs:
            continue
        n = [r["train_examples"] for r in rs]
        axes[0].plot(n, [sum(p["epoch_train_s"] for p in r["phases"]) for r in rs], marker=marker, label=kind)
        axes[1].plot(n, [r["peak_gb"] for r in rs], marker=marker, label=kind)
        axes[2].plot(n, [sum(p["cache_mb"] for p in r["phases"]) for r in rs], marker=marker, label=kind)
    titles = ("training time of one epoch per phase (s)", "peak RSS of the run (GiB)", "cache size (MiB, train+val)")
    for ax, title in zip(axes, titles):
        ax.set_xscale("log")
        ax.set_yscale("log" if ax is not axes[1] else "linear")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("training examples")
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def table(rows: list[dict]) -> list[str]:
    out = ["| recipe | training examples | epoch time per phase (s) | s per 1,000 examples | cache fill s | "
           "cache MiB | peak RSS GiB | test accuracy | load |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ep = sum(p["epoch_train_s"] for p in r["phases"])
        per_phase = " + ".join(f"{p['epoch_train_s']:.1f}" for p in r["phases"])
        out.append(f"| {r['kind']} | {r['train_examples']} | {per_phase} | {1000 * ep / r['train_examples']:.1f} | "
                   f"{sum(p['cache_s'] for p in r['phases']):.1f} | {sum(p['cache_mb'] for p in r['phases']):.1f} | "
                   f"{r['peak_gb']:.2f} | {r['accuracy']:.4f} | {r['load']:.1f} |")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--text", type=int, nargs="*", default=[1000, 4000, 16000, 43000])
    ap.add_argument("--image", type=int, nargs="*", default=[1000, 4900])
    ap.add_argument("--one", nargs=2, metavar=("KIND", "SIZE"), help=argparse.SUPPRESS)
    ap.add_argument("--write", action="store_true", help="put the table into benchmarks/RESULTS.md")
    args = ap.parse_args(argv)
    if args.one:  # a child process: one measurement, one JSON line
        print("RESULT " + json.dumps(measure_one(args.one[0], int(args.one[1]))), flush=True)
        return 0
    OUT.mkdir(parents=True, exist_ok=True)
    rows = []
    for kind, sizes in (("text", args.text), ("image", args.image)):
        for size in sizes:
            proc = subprocess.run([sys.executable, __file__, "--one", kind, str(size)], capture_output=True, text=True)
            line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
            if proc.returncode or not line:
                print(f"{kind} {size}: FAILED\n{proc.stderr[-2000:]}", flush=True)
                continue
            rows.append(json.loads(line[-1][7:]))
            print("\n".join(table(rows[-1:])[2:]), flush=True)
            (OUT / "scaling.json").write_text(json.dumps(rows, indent=1))
    plot(rows, HERE / "scaling.png")
    print("\n".join(table(rows)))
    if args.write:
        from report_md import replace_marked
        cmd = " ".join(["python benchmarks/scaling.py"] + (argv if argv is not None else sys.argv[1:]))
        replace_marked(HERE / "RESULTS.md", "scaling", "\n".join(
            ["## Cost as the data grows (benchmarks/scaling.py)", "", f"`{cmd}`; figure: benchmarks/scaling.png", ""]
            + table(rows)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
