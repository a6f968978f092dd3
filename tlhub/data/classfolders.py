"""Class folders (``root/<class>/**/file``) as splits: the split-folder detection and the scan every folder data
source shares.

Public for data-source plugins (docs/extending.md): tlhub-vision's ``image-folder`` and tlhub-audio's
``audio-folders`` differ only in which files they read and how they check one.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from tlhub.errors import UserError
from tlhub.interfaces import Split


def scan_class_folders(folder: Path, classes: list[str], exts: set[str], skipped: list[str],
                       problem: Callable[[Path], str], source: str, noun: str) -> Split:
    """Files under ``folder/<class>`` with an extension in ``exts``, sorted, hidden paths left out; a file of
    another extension or one ``problem(path)`` finds unreadable is listed in ``skipped`` ("path: why"). A
    class folder without one readable file is a ``UserError`` naming ``source`` and what it reads (``noun``)."""
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
            why = problem(p)
            if why:
                skipped.append(f"{p}: {why}")
                continue
            items.append(str(p))
            labels.append(label)
            good += 1
        if good == 0:
            raise UserError(f"{source}: class folder {cdir} has no readable {noun} "
                            f"(extensions {', '.join(sorted(exts))})")
    return Split(items, labels)


# folder names (any case) that name a split, never a class
SPLIT_DIRS = {"train": ("train", "training"), "val": ("val", "valid", "validation", "dev"), "test": ("test", "testing")}
SPLIT_OF = {name: split for split, names in SPLIT_DIRS.items() for name in names}


def visible_dirs(folder: Path) -> list[Path]:
    """Sub-folders, sorted, hidden ones (``.git``, ``.ipynb_checkpoints``) left out."""
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def split_folders(root: Path, source: str) -> dict[str, Path | None]:
    """The train/val/test folders of ``root`` (names in any case), or ``root`` itself as the training folder
    when none is there. A top level that mixes split and class folders, names one split twice or has val/test
    but no train folder is a ``UserError`` naming ``source``: reading it either way would be silently wrong."""
    found: dict[str, list[Path]] = {s: [] for s in SPLIT_DIRS}
    others = []
    for d in visible_dirs(root):
        split = SPLIT_OF.get(d.name.lower())
        (found[split] if split else others).append(d)
    if not any(found.values()):
        return {"train": root, "val": None, "test": None}
    twice = [f"{s}: {', '.join(d.name for d in dirs)}" for s, dirs in found.items() if len(dirs) > 1]
    if twice:
        raise UserError(f"{source}: {root} has more than one folder for a split ({'; '.join(twice)}); "
                        "keep one per split")
    names = ", ".join(d.name for dirs in found.values() for d in dirs)
    if others:
        raise UserError(f"{source}: {root} mixes split folders ({names}) with other folders "
                        f"({', '.join(d.name for d in others[:10])}); put class folders inside the split folders "
                        "or point data.options.path at the folder of class folders")
    if not found["train"]:
        raise UserError(f"{source}: {root} has split folders ({names}) but no training folder "
                        f"(one of {', '.join(SPLIT_DIRS['train'])}, any case)")
    return {s: dirs[0] if dirs else None for s, dirs in found.items()}
