"""freeze = "auto" against the hand-written phases, side by side, on the dev data sets.

For each data set, one after another in this process (same splits, same threads):

  hand    the shipped recipe (mnist, text) or recipes/mnist5k_lite0.toml copied onto the data (cifar)
  auto    the same backbone and data with one phase: freeze = "auto" (nothing else: default lr 1e-3,
          auto_budget 4)

Data sets (each skipped with a message when its files are absent):

  mnist   recipes/mnist5k_lite0.toml: EfficientNet-Lite0, the 5,000 embedded digits, scored on the
          official 10,000 MNIST test images (../shared/data/mnist)
  cifar   EfficientNet-Lite0 at 64 px on ../shared/data/cifar10-jpg: train/ (4,000 train / 1,000
          validation, stratified), the 5,000 test images as [data.test]
  text    recipes/sentiment_minilm.toml on the local rt-polarity files (its offline override)
  digits  recipes/mnist5k_lite0.toml copied onto scikit-learn's 1,797 8x8 digits (a tiny data set;
          its own held-out 10% as test)

    .venv/bin/python benchmarks/auto_dev.py mnist cifar text digits --threads 1
    .venv/bin/python benchmarks/auto_dev.py text --limit 3000          # fewer training examples

Writes benchmarks/out/auto_dev-<data>.json and prints the rows for benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import OUT, SHARED, TEXT, VISION, run, text_overrides, vision_test_overrides

CIFAR = SHARED / "cifar10-jpg"
def auto_phase(budget: float = 0) -> list[str]:
    """The override that makes the recipe one auto phase (``budget``: its auto_budget, 0 for the default)."""
    extra = f", auto_budget = {budget:g}" if budget else ""
    return [f"phases=[{{ name = 'auto', freeze = 'auto'{extra} }}]"]


def image_folder_overrides(root: Path) -> list[str]:
    """``root``/train (a fifth of it for validation) and ``root``/test, class folders in both."""
    return ["data.source=image-folder", f"data.options={{ path = '{root / 'train'}' }}", "data.val_split=0.2",
            "data.test_split=0.0", "data.test.source=image-folder",
            f"data.test.options={{ path = '{root / 'test'}' }}"]


def cifar_overrides() -> list[str]:
    return image_folder_overrides(CIFAR)


def data_sets() -> dict[str, tuple[Path, list[str], Path]]:
    """name: (recipe, data overrides, folder that must exist)."""
    return {"mnist": (VISION, vision_test_overrides(), SHARED / "mnist"),
            "cifar": (VISION, cifar_overrides(), CIFAR),
            "text": (TEXT, text_overrides() if (SHARED / "rt-polarity").is_dir() else [], SHARED / "rt-polarity"),
            "digits": (VISION, ["data.source=digits", "data.val_split=0.1"], HERE)}


def one(name: str, recipe: Path, overrides: list[str]) -> dict:
    out = OUT / f"auto_dev-{name}"
    r = run(out.name, recipe, overrides)  # benchmarks/run.py: the run, its wall time, peak memory, load
    row = {"name": name, "accuracy": round(r["accuracy"], 4), "seconds": round(r["wall"], 1),
           "peak_gb": round(r["peak_gb"], 2), "test_examples": r["test_examples"], "load_at_start": round(r["load"], 2),
           "phases": list(dict.fromkeys(h["phase"] for h in r["history"])), "run_dir": str(out)}
    search = out / "auto_search.json"
    if search.is_file():
        data = json.loads(search.read_text())
        row.update(winner=data["winner"], chosen=data["phases"], search_seconds=data["seconds"],
                   validation=data["validation"]["message"] if data.get("validation") else "",
                   trials=[(t["plan"], t["epochs"], t["val_accuracy"], t["status"]) for t in data["trials"]])
    print(json.dumps(row), flush=True)
    return row


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("data", nargs="+", choices=("mnist", "cifar", "text", "digits"))
    ap.add_argument("--threads", type=int, default=0, help="train.threads (0: the recipe's default)")
    ap.add_argument("--limit", type=int, default=0, help="data.limit: training examples (0: all)")
    ap.add_argument("--only", choices=("hand", "auto"), default=None, help="run only one of the pair")
    ap.add_argument("--auto-budget", type=float, default=0, help="the auto phase's auto_budget (0: its default)")
    args = ap.parse_args()
    OUT.mkdir(exist_ok=True)
    sets = data_sets()
    auto = auto_phase(args.auto_budget)
    tag = f"-b{args.auto_budget:g}" if args.auto_budget else ""  # runs at another budget keep their own files
    size = f"-n{args.limit}" if args.limit else ""                 # and so do runs on fewer examples
    for name in args.data:
        recipe, data, folder = sets[name]
        if not folder.is_dir():
            print(f"{name}: skipped: {folder} is absent")
            continue
        extra = data + ([f"train.threads={args.threads}"] if args.threads else []) + \
            ([f"data.limit={args.limit}"] if args.limit else [])
        rows = [one(f"{name}{size}-{kind}{tag if kind == 'auto' else ''}", recipe,
                    extra + (auto if kind == "auto" else [])) for kind in ("hand", "auto") if args.only in (None, kind)]
        (OUT / f"auto_dev-{name}{size}{tag}.json").write_text(json.dumps(rows, indent=2))
        print(f"\n| {name} | test accuracy | wall s | phases | winner |\n|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['name']} | {r['accuracy']:.4f} | {r['seconds']:.0f} | {', '.join(r['phases'])} | "
                  f"{r.get('winner', '')} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
