"""The image-folder source: one sub-folder per class, optionally inside train/val/test folders.

Every image is decoded once at load so a corrupt or truncated file is skipped (and reported in
the run's skipped list) instead of crashing an epoch half-way through.
"""
from __future__ import annotations

from pathlib import Path

from PIL import Image

from tlhub.data.decode import decode_error
from tlhub.data.classfolders import scan_class_folders
from tlhub.errors import UserError
from tlhub.interfaces import DataContext, SourceData, Split

DEFAULT_EXTENSIONS = [".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"]
# folder names (any case) that name a split, never a class
SPLIT_DIRS = {"train": ("train", "training"), "val": ("val", "valid", "validation", "dev"), "test": ("test", "testing")}
SPLIT_OF = {name: split for split, names in SPLIT_DIRS.items() for name in names}


def _visible_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _scan(folder: Path, classes: list[str], exts: set[str], skipped: list[str]) -> Split:
    return scan_class_folders(folder, classes, exts, skipped, decode_error, "image-folder", "image")


def _split_dirs(root: Path) -> dict[str, Path | None]:
    """The train/val/test folders of ``root`` (names in any case), or ``root`` itself as the training
    folder when none is there. A top level that mixes split and class folders, names one split twice
    or has val/test but no train folder is an error: reading it either way would be silently wrong."""
    found: dict[str, list[Path]] = {s: [] for s in SPLIT_DIRS}
    others = []
    for d in _visible_dirs(root):
        split = SPLIT_OF.get(d.name.lower())
        (found[split] if split else others).append(d)
    if not any(found.values()):
        return {"train": root, "val": None, "test": None}
    twice = [f"{s}: {', '.join(d.name for d in dirs)}" for s, dirs in found.items() if len(dirs) > 1]
    if twice:
        raise UserError(f"image-folder: {root} has more than one folder for a split ({'; '.join(twice)}); "
                        "keep one per split")
    names = ", ".join(d.name for dirs in found.values() for d in dirs)
    if others:
        raise UserError(f"image-folder: {root} mixes split folders ({names}) with other folders "
                        f"({', '.join(d.name for d in others[:10])}); put class folders inside the split folders "
                        "or point data.options.path at the folder of class folders")
    if not found["train"]:
        raise UserError(f"image-folder: {root} has split folders ({names}) but no training folder "
                        f"(one of {', '.join(SPLIT_DIRS['train'])}, any case)")
    return {s: dirs[0] if dirs else None for s, dirs in found.items()}


def load_image_folder(options: dict, ctx: DataContext) -> SourceData:
    root = ctx.path(options["path"])
    if not root.is_dir():
        raise UserError(f"image-folder: {root} is not a folder")
    exts = {e.lower() if e.startswith(".") else "." + e.lower() for e in options["extensions"]}
    split_dirs = _split_dirs(root)
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
