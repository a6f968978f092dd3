"""Class folders (``root/<class>/**/file``) as a split: the scan every folder data source shares.

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
