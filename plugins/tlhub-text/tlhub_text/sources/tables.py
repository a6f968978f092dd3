"""``csv``, ``tsv`` and ``jsonl``: one example per row, a text column and a label column."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from tlhub.data.labels import check_classes, class_names, label_name
from tlhub.errors import UserError
from tlhub.interfaces import DataContext, SourceData, Split

from .common import read_text, split_lines

SPLIT_KEYS = (("train", "path"), ("val", "val_path"), ("test", "test_path"))


def load_table(kind: str, options: dict, ctx: DataContext) -> SourceData:
    if options["text_column"] == options["label_column"]:  # else every label is its text: nothing to learn
        raise UserError(f"data.options: text_column and label_column are the same column "
                        f"({options['text_column']!r}); the label must come from another column")
    rows, skipped = {}, []
    for split, key in SPLIT_KEYS:
        if options[key]:
            path = ctx.path(options[key])
            read = read_jsonl if kind == "jsonl" else read_delimited
            rows[split] = read(kind, path, options, skipped)
    classes = class_names(lab for split_rows in rows.values() for _, lab in split_rows)
    check_classes(classes, kind)
    index = {c: i for i, c in enumerate(classes)}
    out = {s: Split([t for t, _ in r], [index[lab] for _, lab in r]) for s, r in rows.items()}
    if skipped:
        ctx.log(f"data: {kind}: skipped {len(skipped)} row(s) without a text or label, blank ones included (listed in skipped.txt)")
    return SourceData(classes, train=out.get("train"), val=out.get("val"), test=out.get("test"), skipped=skipped)


def _column(option: str, value, columns: list[str] | None, path: Path, first_row: list[str]) -> int:
    """Index of a column given by name (header) or 0-based index; unknown: list what exists."""
    if columns is not None and isinstance(value, str) and value in columns:
        return columns.index(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(first_row):
        return value
    if columns is not None:
        listing = ", ".join(repr(c) for c in columns)
        raise UserError(f"data.options.{option}: {path} has no column {value!r}; its columns are: {listing}")
    listing = ", ".join(f"{i} ({v[:30]!r})" for i, v in enumerate(first_row))
    if not isinstance(value, int) or isinstance(value, bool):
        raise UserError(f"data.options.{option}: with header = false columns are 0-based indexes, got {value!r}; "
                        f"{path} has {len(first_row)} column(s): {listing}")
    raise UserError(f"data.options.{option}: {path} has no column {value}; its {len(first_row)} column(s), "
                    f"by index (first row's values): {listing}")


def read_delimited(kind: str, path: Path, options: dict, skipped: list[str]) -> list[tuple[str, str]]:
    text = read_text(path, options["encoding"])
    csv.field_size_limit(2**31 - 1)  # long documents are fine; the core truncates tokens
    header = options.get("header", True)
    rows = _tsv_rows(path, text) if kind == "tsv" else _parse(path, kind, text, csv.QUOTE_MINIMAL, strict=False)
    if not rows:
        raise UserError(f"{path}: the file is empty")
    first = rows[0][1]
    columns = [c.strip() for c in first] if header else None
    ti = _column("text_column", options["text_column"], columns, path, first)
    li = _column("label_column", options["label_column"], columns, path, first)
    if ti == li:  # a name and an index of one column
        raise UserError(f"data.options: text_column {options['text_column']!r} and label_column "
                        f"{options['label_column']!r} are the same column of {path}; the label must come from another")
    if header:
        rows = rows[1:]
    out = []
    for n, row in rows:
        if header and [c.strip() for c in row] == columns:  # two files joined with `cat`: its label would be a class
            raise UserError(f"{path}: line {n} repeats the header row ({', '.join(map(repr, columns))}); "
                            "remove it (files joined with cat keep each file's header)")
        if not any(cell.strip() for cell in row):
            skipped.append(f"{path}:{n}: blank row")  # counted, as the docs promise
            continue
        if len(row) <= max(ti, li):
            skipped.append(f"{path}:{n}: {len(row)} field(s), the text/label column is missing")
        elif not row[ti].strip() or not row[li].strip():
            skipped.append(f"{path}:{n}: empty {'text' if not row[ti].strip() else 'label'}")
        else:
            out.append((row[ti].strip(), label_name(row[li])))
    return out


def _parse(path: Path, kind: str, text: str, quoting: int, strict: bool) -> list[tuple[int, list[str]]]:
    """(line the row ends on, fields) per row; malformed quoting is a UserError naming the line."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t" if kind == "tsv" else ",",
                        quoting=quoting, strict=strict)
    rows = []
    try:
        for row in reader:
            rows.append((reader.line_num, row))
    except csv.Error as exc:
        raise UserError(f"{path}: line {reader.line_num}: not valid {kind.upper()}: {exc}") from None
    return rows


def _tsv_rows(path: Path, text: str) -> list[tuple[int, list[str]]]:
    """TSV rows, quoted fields read as quoted (``"great<TAB>movie"<TAB>pos`` is two fields, as in
    pandas and spreadsheets), but a file whose quotes are only text (GLUE: ``"the " best``, a lone
    ``"``) is read as it stands: quotes are honoured only when every row parses strictly with them and
    has as many fields as the first, or when without them the rows disagree on their field count."""
    plain = _parse(path, "tsv", text, csv.QUOTE_NONE, strict=False)
    if '"' not in text:
        return plain
    try:
        quoted = _parse(path, "tsv", text, csv.QUOTE_MINIMAL, strict=True)
    except UserError:
        return plain

    def even(rows):  # blank rows are skipped later; they do not count
        widths = {len(r) for _, r in rows if any(c.strip() for c in r)}
        return len(widths) <= 1
    if even(quoted) and (not even(plain) or len(quoted) == len(plain)):
        return quoted
    return plain


def read_jsonl(kind: str, path: Path, options: dict, skipped: list[str]) -> list[tuple[str, str]]:
    records = []
    for n, line in enumerate(split_lines(read_text(path, options["encoding"])), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}: line {n}: not valid JSON: {exc.msg}") from None
        if not isinstance(rec, dict):
            raise UserError(f"{path}: line {n}: expected a JSON object, got {type(rec).__name__}")
        records.append((n, rec))
    if not records:
        raise UserError(f"{path}: the file has no records")
    keys = list(dict.fromkeys(k for _, rec in records for k in rec))
    tc, lc = options["text_column"], options["label_column"]
    for option, key in (("text_column", tc), ("label_column", lc)):
        if key not in keys:
            raise UserError(f"data.options.{option}: {path} has no key {key!r}; its records have: "
                            f"{', '.join(map(repr, keys))}")
    out = []
    for n, rec in records:
        text, label = rec.get(tc), rec.get(lc)
        if not isinstance(text, str) or not text.strip():
            skipped.append(f"{path}:{n}: no text in {tc!r}")
        elif label is None or isinstance(label, (list, dict)) or not label_name(label):
            skipped.append(f"{path}:{n}: no usable label in {lc!r}")
        else:
            out.append((text.strip(), label_name(label)))
    return out
