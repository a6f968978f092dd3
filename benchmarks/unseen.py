"""freeze = "auto" on data the shipped recipes were not tuned for: copy vs auto vs head only, wall times.

Issue 31's check, as a new user would run it: the nearest shipped recipe copied onto the data ("copied"),
one frozen phase of 100 epochs at lr 1e-3 ("head"), and one phase ``freeze = "auto"`` with nothing else
("auto"), one after another in one process, on data sets built under benchmarks/out/unseen-data from the
shared files in shapes and domains no recipe or auto rule was tuned on:

  photos-224   two CIFAR classes (airplane, ship), 120 training images each, read at 224 px (small data at
               a high resolution: where deep trials are dear), tested on 250 + 250
  emotions-6   GoEmotions comments with one label among its six most frequent non-neutral labels (counted on
               the training file): 5,400 training comments (a seeded sample), tested on the dev file's
               comments with one of those labels
  cifar10-100  all ten CIFAR classes, 10 training images each (100 in all, a fifth of them validation), at the
               recipe's 64 px, tested on 100 per class: tiny data, many classes
  emotions-27  GoEmotions comments with exactly one non-neutral label, all 27 labels: 2,000 training comments
               (a seeded sample), tested on the dev file's single-label non-neutral comments
  emotions-27-20k  the same with 20,000 training comments (large data: an epoch is over 1,000 batches)

    .venv/bin/python benchmarks/unseen.py                     # all, 2 threads
    .venv/bin/python benchmarks/unseen.py photos-224 --threads 1
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import random
import sys
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from auto_dev import CIFAR, image_folder_overrides
from run import OUT, SHARED, TEXT, VISION, run
from tiny_sets import KINDS, cifar_folders

DATA = OUT / "unseen-data"
GOEMO = SHARED / "goemotions"


def _photos() -> list[str]:
    root = cifar_folders("photos-224", ["airplane", "ship"], slice(0, 120), slice(0, 250), DATA)
    return image_folder_overrides(root) + ["data.image_size=224"]


def _cifar10_tiny() -> list[str]:
    classes = sorted(p.name for p in (CIFAR / "train").iterdir())
    return image_folder_overrides(cifar_folders("cifar10-100", classes, slice(0, 10), slice(0, 100), DATA))


def _emotions(n_train: int = 5400, n_labels: int = 6, name: str = "") -> list[str]:
    names = (GOEMO / "labels.txt").read_text().split()

    def single(path: Path) -> list[tuple[str, str]]:
        with path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
        return [(r["text"], names[int(r["label"])]) for r in rows if "," not in r["label"]]

    train, dev = single(GOEMO / "train.tsv"), single(GOEMO / "dev.tsv")
    top = [c for c, _ in Counter(lab for _, lab in train if lab != "neutral").most_common(n_labels)]
    train, dev = [r for r in train if r[1] in top], [r for r in dev if r[1] in top]
    random.Random(0).shuffle(train)
    name = name or f"emotions-{n_labels}"
    root = DATA / name
    root.mkdir(parents=True, exist_ok=True)
    for split, rows in (("train", train[:n_train]), ("test", dev)):
        with (root / f"{split}.tsv").open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f, delimiter="\t", quoting=csv.QUOTE_NONE, escapechar="\\")
            w.writerow(["text", "label"])
            w.writerows((t.replace("\t", " ").replace("\n", " "), lab) for t, lab in rows)
    print(f"{name}: {', '.join(top)}; train {min(n_train, len(train))}, test {len(dev)}", flush=True)
    return ["data.source='tsv'", f"data.options={{ path = '{root / 'train.tsv'}', test_path = '{root / 'test.tsv'}', "
            "text_column = 'text', label_column = 'label' }", "data.test_split=0.0"]


SETS = {"photos-224": (VISION, CIFAR, _photos), "emotions-6": (TEXT, GOEMO, _emotions),
        "cifar10-100": (VISION, CIFAR, _cifar10_tiny),
        "emotions-27": (TEXT, GOEMO, lambda: _emotions(2000, 27)),
        "emotions-27-20k": (TEXT, GOEMO, lambda: _emotions(20000, 27, "emotions-27-20k"))}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("data", nargs="*", help=f"{', '.join(SETS)} (default: all)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", choices=tuple(KINDS), action="append", help="run these kinds only")
    args = ap.parse_args()
    unknown = sorted(set(args.data) - set(SETS))
    if unknown:
        ap.error(f"unknown data set(s) {', '.join(unknown)}: choose from {', '.join(SETS)}")
    rows = []
    for name in args.data or list(SETS):
        recipe, folder, build = SETS[name]
        if not folder.is_dir():
            print(f"{name}: skipped: {folder} is absent")
            continue
        data = build() + [f"train.threads={args.threads}", f"train.seed={args.seed}"]
        for kind, extra in KINDS.items():
            if not args.only or kind in args.only:
                r = run(f"unseen-{name}-{kind}-s{args.seed}", recipe, data + extra)
                rows.append({"data": name, "kind": kind, "seed": args.seed, "accuracy": round(r["accuracy"], 4),
                             "seconds": round(r["wall"], 1), "test_examples": r["test_examples"]})
    (OUT / f"unseen-s{args.seed}.json").write_text(json.dumps(rows, indent=1))
    print("\n| data | kind | test accuracy (standard error) | wall s |\n|---|---|---|---|")
    for r in rows:
        se = math.sqrt(r["accuracy"] * (1 - r["accuracy"]) / r["test_examples"])
        print(f"| {r['data']} | {r['kind']} | {r['accuracy']:.4f} ({se:.3f}) | {r['seconds']:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
