"""freeze = "auto" on tiny data sets, against a copied recipe and a head trained alone.

Builds three tiny data sets from the shared files (under benchmarks/out/tiny-data, never in the
project), as a user would bring them: class folders or one text file per class, ``val_split = 0.2``.

  cats-dogs  20 CIFAR cats and 20 dogs (train files 0000-0019), tested on 250 + 250 (0000-0249)
  cifar10    10 CIFAR images per class (train files 0490-0499), tested on 100 per class (0400-0499)
  sentences  30 + 30 rt-polarity sentences (a seeded shuffle), tested on the next 500 + 500

For each: the shipped recipe copied onto the data (images: recipes/mnist5k_lite0.toml, text:
recipes/sentiment_minilm.toml), one frozen phase of 100 epochs at lr 1e-3 ("head"), and one phase
``freeze = "auto"`` (nothing else), one after another, 1 thread.

    .venv/bin/python benchmarks/tiny_sets.py                 # all three
    .venv/bin/python benchmarks/tiny_sets.py sentences --seed 1
"""
from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from auto_dev import CIFAR, auto_phase, image_folder_overrides
from run import OUT, SHARED, TEXT, VISION, run

DATA = OUT / "tiny-data"
RT = SHARED / "rt-polarity"
KINDS = {"copied": [], "head": ["phases=[{ name = 'head', freeze = 'frozen', epochs = 100, lr = 1e-3 }]"],
         "auto": auto_phase()}


def cifar_folders(name: str, classes: list[str], train: slice, test: slice, data: Path = DATA) -> Path:
    """``data/name/{train,test}/<class>/``: the CIFAR files of ``classes`` in the ``train`` and ``test`` slices
    (sorted file names), built afresh."""
    root = data / name
    shutil.rmtree(root, ignore_errors=True)
    for split, part in (("train", train), ("test", test)):
        for c in classes:
            (root / split / c).mkdir(parents=True)
            for f in sorted((CIFAR / split / c).iterdir())[part]:
                shutil.copy(f, root / split / c / f.name)
    return root


def _sentences(n_train: int = 30, n_test: int = 500) -> Path:
    root = DATA / "sentences"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    rng = random.Random(0)
    for name in ("neg", "pos"):
        lines = (RT / f"rt-polarity.{name}").read_text(encoding="cp1252").splitlines()
        rng.shuffle(lines)
        (root / f"{name}.train.txt").write_text("\n".join(lines[:n_train]) + "\n")
        (root / f"{name}.test.txt").write_text("\n".join(lines[n_train:n_train + n_test]) + "\n")
    return root


def data_sets() -> dict[str, tuple[Path, Path, Callable[[], list[str]]]]:
    """name: (recipe to copy, folder that must exist, builder returning overrides)."""
    def image(name, classes, train, test):
        return lambda: image_folder_overrides(cifar_folders(name, classes, train, test))

    def text():
        root = _sentences()

        def files(split: str) -> str:
            return ", ".join(f"{c} = '{root / f'{c}.{split}.txt'}'" for c in ("neg", "pos"))

        return ["data.source='text-files'", f"data.options={{ files = {{ {files('train')} }} }}",
                "data.val_split=0.2", "data.test_split=0.0", "data.test.source='text-files'",
                f"data.test.options={{ files = {{ {files('test')} }} }}"]

    every = sorted(p.name for p in (CIFAR / "train").iterdir()) if CIFAR.is_dir() else []
    return {"cats-dogs": (VISION, CIFAR, image("cats-dogs", ["cat", "dog"], slice(0, 20), slice(0, 250))),
            "cifar10": (VISION, CIFAR, image("cifar10", every, slice(490, 500), slice(400, 500))),
            "sentences": (TEXT, RT, text)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("data", nargs="*", help="cats-dogs, cifar10, sentences (default: all three)")
    ap.add_argument("--seed", type=int, default=0, help="train.seed")
    ap.add_argument("--only", choices=tuple(KINDS), default=None, help="run one kind only")
    args = ap.parse_args()
    sets = data_sets()
    unknown = sorted(set(args.data) - set(sets))
    if unknown:
        ap.error(f"unknown data set(s) {', '.join(unknown)}: choose from {', '.join(sets)}")
    rows = []
    for name in args.data or list(sets):
        recipe, folder, build = sets[name]
        if not folder.is_dir():
            print(f"{name}: skipped: {folder} is absent")
            continue
        data = build() + ["train.threads=1", f"train.seed={args.seed}"]
        for kind, extra in KINDS.items():
            if args.only in (None, kind):
                r = run(f"tiny-{name}-{kind}-s{args.seed}", recipe, data + extra)
                rows.append({"data": name, "kind": kind, "seed": args.seed, "accuracy": round(r["accuracy"], 4),
                             "seconds": round(r["wall"], 1), "test_examples": r["test_examples"]})
    (OUT / f"tiny_sets-s{args.seed}.json").write_text(json.dumps(rows, indent=1))
    print("\n| data | kind | test accuracy (examples) | wall s |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['data']} | {r['kind']} | {r['accuracy']:.4f} ({r['test_examples']}) | {r['seconds']:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
