"""The ``audio-folders`` source: one sub-folder of sound files per class, optionally inside train/val/test folders.

Each file's header is read at load (soundfile.info), so a file that is not a sound, or holds no samples, is
skipped and listed in the run's skipped list instead of failing an epoch half-way through. Items are the
files' paths; the audio modality decodes them.
"""
from __future__ import annotations

from pathlib import Path

from tlhub.data.classfolders import scan_class_folders
from tlhub.errors import UserError
from tlhub.interfaces import DataContext, SourceData, Split

from tlhub_audio.features import header_error

# folder names (any case) that name a split, never a class
SPLIT_DIRS = {"train": ("train", "training"), "val": ("val", "valid", "validation", "dev"), "test": ("test", "testing")}
SPLIT_OF = {name: split for split, names in SPLIT_DIRS.items() for name in names}


def _dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _split_dirs(root: Path) -> dict[str, Path | None]:
    """``root``'s train/val/test folders, or ``root`` as the training folder when it has none. A top level that
    mixes split and class folders, or has val/test but no train folder, is refused: either reading is a guess."""
    found: dict[str, list[Path]] = {s: [] for s in SPLIT_DIRS}
    others = []
    for d in _dirs(root):
        split = SPLIT_OF.get(d.name.lower())
        (found[split] if split else others).append(d)
    if not any(found.values()):
        return {"train": root, "val": None, "test": None}
    names = ", ".join(d.name for dirs in found.values() for d in dirs)
    twice = [s for s, dirs in found.items() if len(dirs) > 1]
    if twice:
        raise UserError(f"audio-folders: {root} has more than one folder for the {' and '.join(twice)} split "
                        f"({names}); keep one per split")
    if others:
        raise UserError(f"audio-folders: {root} mixes split folders ({names}) with other folders "
                        f"({', '.join(d.name for d in others[:10])}); put the class folders inside the split folders")
    if not found["train"]:
        raise UserError(f"audio-folders: {root} has split folders ({names}) but no training folder "
                        f"(one of {', '.join(SPLIT_DIRS['train'])}, any case)")
    return {s: dirs[0] if dirs else None for s, dirs in found.items()}


def _scan(folder: Path, classes: list[str], exts: set[str], skipped: list[str]) -> Split:
    return scan_class_folders(folder, classes, exts, skipped, header_error, "audio-folders", "sound file")


def load_audio_folders(options: dict, ctx: DataContext) -> SourceData:
    root = ctx.path(options["path"])
    if not root.is_dir():
        raise UserError(f"audio-folders: {root} is not a folder")
    exts = {e.lower() if e.startswith(".") else "." + e.lower() for e in options["extensions"]}
    split_dirs = _split_dirs(root)
    classes = [p.name for p in _dirs(split_dirs["train"])]
    if len(classes) < 2:
        raise UserError(f"audio-folders: {split_dirs['train']} has {len(classes)} class folder(s); "
                        "expected one folder of sound files per class, at least 2")
    skipped: list[str] = []
    splits = {}
    for s, folder in split_dirs.items():
        if folder is None:
            continue
        extra = [p.name for p in _dirs(folder) if p.name not in classes]
        if extra:
            raise UserError(f"audio-folders: {folder} has class folders not in the training data: "
                            f"{', '.join(extra[:10])}")
        splits[s] = _scan(folder, classes, exts, skipped)
    if skipped:
        ctx.log(f"audio-folders: skipped {len(skipped)} file(s) that are not readable sound files")
    return SourceData(classes, train=splits["train"], val=splits.get("val"), test=splits.get("test"),
                      skipped=skipped)
