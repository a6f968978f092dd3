"""The image-folder source: one sub-folder per class, optionally inside train/val/test folders.

Every image is decoded once at load so a corrupt or truncated file is skipped (and reported in
the run's skipped list) instead of crashing an epoch half-way through.
"""
from __future__ import annotations

from pathlib import Path

from PIL import Image

from tlhub.data.decode import decode_error
from tlhub.errors import UserError
from tlhub.interfaces import DataContext, SourceData, Split

DEFAULT_EXTENSIONS = [".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"]
SPLIT_DIRS = {"train": ("train",), "val": ("val", "valid", "validation"), "test": ("test",)}


def _visible_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _scan(folder: Path, classes: list[str], exts: set[str], skipped: list[str]) -> Split:
    items, labels = [], []
    for label, name in enumerate(classes):
        cdir = folder / name
        if not cdir.is_dir():
            continue
        good = 0
        for p in sorted(cdir.rglob("*")):
            if not p.is_file() or any(part.startswith(".") for part in p.relative_to(cdir).parts):
                continue
            if p.suffix.lower() not in exts:
                skipped.append(f"{p}: extension not in {sorted(exts)}")
                continue
            why = decode_error(p)
            if why:
                skipped.append(f"{p}: {why}")
                continue
            items.append(str(p))
            labels.append(label)
            good += 1
        if good == 0:
            raise UserError(f"image-folder: class folder {cdir} has no readable image "
                            f"(extensions {', '.join(sorted(exts))})")
    return Split(items, labels)


def load_image_folder(options: dict, ctx: DataContext) -> SourceData:
    root = ctx.path(options["path"])
    if not root.is_dir():
        raise UserError(f"image-folder: {root} is not a folder")
    exts = {e.lower() if e.startswith(".") else "." + e.lower() for e in options["extensions"]}
    split_dirs = {s: next((root / n for n in names if (root / n).is_dir()), None) for s, names in SPLIT_DIRS.items()}
    if split_dirs["train"] is None:
        if split_dirs["val"] or split_dirs["test"]:
            raise UserError(f"image-folder: {root} has val/test folders but no train folder")
        split_dirs = {"train": root, "val": None, "test": None}
    classes = [p.name for p in _visible_dirs(split_dirs["train"])]
    if not classes:
        raise UserError(f"image-folder: {split_dirs['train']} has no class sub-folders "
                        "(expected one folder of images per class)")
    skipped: list[str] = []
    splits = {}
    for s, folder in split_dirs.items():
        if folder is None:
            continue
        extra = [p.name for p in _visible_dirs(folder) if p.name not in classes]
        if extra:
            raise UserError(f"image-folder: {folder} has class folders not in the training data: "
                            f"{', '.join(extra[:10])}")
        splits[s] = _scan(folder, classes, exts, skipped)
    if skipped:
        ctx.log(f"image-folder: skipped {len(skipped)} file(s) that are not readable images")
    return SourceData(classes, train=splits["train"], val=splits.get("val"), test=splits.get("test"),
                      skipped=skipped)
