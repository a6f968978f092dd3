"""The image-folder source: one sub-folder per class, optionally inside train/val/test folders.

Every image is decoded once at load so a corrupt or truncated file is skipped (and reported in
the run's skipped list) instead of crashing an epoch half-way through.
"""
from __future__ import annotations

from pathlib import Path

from PIL import Image

from tlhub.data.decode import decode_error
from tlhub.data.classfolders import scan_class_folders, split_folders, visible_dirs
from tlhub.errors import UserError
from tlhub.interfaces import DataContext, SourceData, Split

DEFAULT_EXTENSIONS = [".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"]
def _scan(folder: Path, classes: list[str], exts: set[str], skipped: list[str]) -> Split:
    return scan_class_folders(folder, classes, exts, skipped, decode_error, "image-folder", "image")


def load_image_folder(options: dict, ctx: DataContext) -> SourceData:
    root = ctx.path(options["path"])
    if not root.is_dir():
        raise UserError(f"image-folder: {root} is not a folder")
    exts = {e.lower() if e.startswith(".") else "." + e.lower() for e in options["extensions"]}
    split_dirs = split_folders(root, "image-folder")
    classes = [p.name for p in visible_dirs(split_dirs["train"])]
    if not classes:
        raise UserError(f"image-folder: {split_dirs['train']} has no class sub-folders "
                        "(expected one folder of images per class)")
    skipped: list[str] = []
    splits = {}
    for s, folder in split_dirs.items():
        if folder is None:
            continue
        extra = [p.name for p in visible_dirs(folder) if p.name not in classes]
        if extra:
            raise UserError(f"image-folder: {folder} has class folders not in the training data: "
                            f"{', '.join(extra[:10])}")
        splits[s] = _scan(folder, classes, exts, skipped)
    if skipped:
        ctx.log(f"image-folder: skipped {len(skipped)} file(s) that are not readable images")
    return SourceData(classes, train=splits["train"], val=splits.get("val"), test=splits.get("test"),
                      skipped=skipped)
