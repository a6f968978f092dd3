"""``image-csv``: a CSV (or TSV) of image files and their labels: one class, a label set (``"cat|dog"``,
``"3,7"``), a number, or one column per label / target; the labels stay raw for the recipe's task to read
(classification, multilabel, regression). Image paths are relative to ``root`` (default: the file's folder).
"""
from __future__ import annotations

import csv
from pathlib import Path

from tlhub.errors import UserError
from tlhub.interfaces import DataContext, SourceData, Split

SPLIT_KEYS = (("train", "path"), ("val", "val_path"), ("test", "test_path"))


def load_image_csv(options: dict, ctx: DataContext) -> SourceData:
    labels = options["label_column"] if isinstance(options["label_column"], list) else [options["label_column"]]
    if not labels:
        raise UserError("data.options.label_column: an empty list; name at least one column")
    if options["image_column"] in labels:
        raise UserError(f"data.options: image_column and label_column are the same column "
                        f"({options['image_column']!r}); the label must come from another column")
    out, skipped = {}, []
    for split, key in SPLIT_KEYS:
        if options[key]:
            out[split] = _read(ctx.path(options[key]), options, labels, ctx, skipped)
    if skipped:
        ctx.log(f"data: image-csv: skipped {len(skipped)} row(s) without an image or a label (listed in skipped.txt)")
    return SourceData([str(c) for c in labels], train=out.get("train"), val=out.get("val"), test=out.get("test"),
                      skipped=skipped, raw=True)


def _read(path: Path, options: dict, labels: list, ctx: DataContext, skipped: list[str]) -> Split:
    if not path.is_file():
        raise UserError(f"data.options: no such file: {path}")
    delimiter = "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f, delimiter=delimiter))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise UserError(f"{path}: not a readable {'TSV' if delimiter == chr(9) else 'CSV'} file: {exc}") from None
    if not rows:
        raise UserError(f"{path}: the file is empty")
    header = [c.strip() for c in rows[0]]
    wanted = [options["image_column"], *labels]
    missing = [c for c in wanted if c not in header]
    if missing:
        raise UserError(f"data.options: {path} has no column {', '.join(map(repr, missing))}; its columns are: "
                        f"{', '.join(map(repr, header))}")
    ii, lis = header.index(options["image_column"]), [header.index(c) for c in labels]
    root = ctx.path(options["root"]) if options["root"] else path.parent
    items, targets, absent = [], [], []
    for n, row in enumerate(rows[1:], start=2):
        if len(row) <= max(ii, *lis) or not row[ii].strip() or not all(row[i].strip() for i in lis):
            if any(c.strip() for c in row):
                skipped.append(f"{path}:{n}: an empty or missing image or label field")
            continue
        file = root / row[ii].strip()
        if not file.is_file():
            absent.append(f"line {n}: {file}")
            continue
        items.append(str(file))
        targets.append(row[lis[0]].strip() if len(lis) == 1 else tuple(row[i].strip() for i in lis))
    if absent:  # a wrong root loses every image: one message that names the folder, not a run that skips them all
        raise UserError(f"{path}: {len(absent)} image file(s) not found (relative to {root}; set "
                        f"data.options.root if they live elsewhere): " + "; ".join(absent[:5])
                        + (" ..." if len(absent) > 5 else ""))
    return Split(items, targets)
