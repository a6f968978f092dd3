"""``text-files``: one file per class, one example per line (e.g. rt-polarity's .pos/.neg)."""
from __future__ import annotations

from pathlib import Path

from tlhub.data.labels import check_classes
from tlhub.errors import UserError
from tlhub.interfaces import DataContext, SourceData, Split

from .common import read_text, split_lines

TEXT_SUFFIXES = {".txt", ".text", ".lst", ".lines"}


def class_of(path: str) -> str:
    """``rt-polarity.pos`` -> ``pos``; ``positive.txt`` -> ``positive``."""
    p = Path(path)
    return p.stem if not p.suffix or p.suffix.lower() in TEXT_SUFFIXES else p.suffix[1:]


def file_table(files) -> dict[str, str]:
    if isinstance(files, dict):
        table = {str(k): v for k, v in files.items()}
    elif isinstance(files, list):
        table = {}
        for f in files:
            if not isinstance(f, str):
                break
            name = class_of(f)
            if name in table:
                raise UserError(f"data.options.files: {table[name]!r} and {f!r} both give class {name!r}; "
                                f"name the classes with a table: files = {{name = \"path\", ...}}")
            table[name] = f
    else:
        table = None
    if not table or not all(isinstance(v, str) for v in table.values()):
        raise UserError("data.options.files: expected a table {class = \"path\", ...} or a list of paths, "
                        f"got {files!r}")
    return table


def load_text_files(options: dict, ctx: DataContext) -> SourceData:
    table = file_table(options["files"])
    classes = sorted(table)
    texts, labels, skipped = [], [], []
    for label, name in enumerate(classes):
        path = ctx.path(table[name])
        lines = split_lines(read_text(path, options["encoding"]))
        empty = 0
        for i, line in enumerate(lines, 1):
            line = line.strip()
            if not line:
                empty += 1
                skipped.append(f"{path}:{i}: empty line")
                continue
            texts.append(line)
            labels.append(label)
        if empty:
            ctx.log(f"data: {path.name}: skipped {empty} empty line(s)")
    check_classes(classes, "text-files")
    return SourceData(classes, train=Split(texts, labels), skipped=skipped)
