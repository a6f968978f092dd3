"""The ``audio-folders`` source: one sub-folder of sound files per class, optionally inside train/val/test folders.

Each file's header is read at load (soundfile.info), so a file that is not a sound, or holds no samples, is
skipped and listed in the run's skipped list instead of failing an epoch half-way through. Items are the
files' paths; the audio modality decodes them.
"""
from __future__ import annotations

from pathlib import Path

from tlhub.data.classfolders import scan_class_folders, split_folders, visible_dirs
from tlhub.errors import UserError
from tlhub.interfaces import DataContext, SourceData, Split

from tlhub_audio.features import header_error

def _scan(folder: Path, classes: list[str], exts: set[str], skipped: list[str]) -> Split:
    return scan_class_folders(folder, classes, exts, skipped, header_error, "audio-folders", "sound file")


def load_audio_folders(options: dict, ctx: DataContext) -> SourceData:
    root = ctx.path(options["path"])
    if not root.is_dir():
        raise UserError(f"audio-folders: {root} is not a folder")
    exts = {e.lower() if e.startswith(".") else "." + e.lower() for e in options["extensions"]}
    split_dirs = split_folders(root, "audio-folders")
    classes = [p.name for p in visible_dirs(split_dirs["train"])]
    if len(classes) < 2:
        raise UserError(f"audio-folders: {split_dirs['train']} has {len(classes)} class folder(s); "
                        "expected one folder of sound files per class, at least 2")
    skipped: list[str] = []
    splits = {}
    for s, folder in split_dirs.items():
        if folder is None:
            continue
        extra = [p.name for p in visible_dirs(folder) if p.name not in classes]
        if extra:
            raise UserError(f"audio-folders: {folder} has class folders not in the training data: "
                            f"{', '.join(extra[:10])}")
        splits[s] = _scan(folder, classes, exts, skipped)
    if skipped:
        ctx.log(f"audio-folders: skipped {len(skipped)} file(s) that are not readable sound files")
    return SourceData(classes, train=splits["train"], val=splits.get("val"), test=splits.get("test"),
                      skipped=skipped)
