"""``csv``, ``tsv`` and ``jsonl``: one example per row, a text column (and a ``text_pair`` column for
sentence pairs) and one or several label columns; the labels stay raw for the recipe's task to read."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from tlhub.data.labels import label_name
from tlhub.errors import UserError
from tlhub.interfaces import DataContext, SourceData, Split

from .common import read_text, split_lines

SPLIT_KEYS = (("train", "path"), ("val", "val_path"), ("test", "test_path"))


def load_table(kind: str, options: dict, ctx: DataContext) -> SourceData:
    """Examples with raw labels: the recipe's task reads them (a class name, a label set like ``"3,27"``, a
    number, or one value per column when ``label_column`` lists several columns)."""
    labels = _label_columns(options["label_column"])
    pair = options.get("text_pair") or None
    for col in labels + ([pair] if pair is not None else []):
        if col == options["text_column"]:  # else every label is its text: nothing to learn
            what = "text_pair" if col == pair else "label_column"
            raise UserError(f"data.options: text_column and {what} are the same column ({col!r}); "
                            + ("the second sentence must come from another column" if col == pair
                               else "the label must come from another column"))
    rows, skipped = {}, []
    for split, key in SPLIT_KEYS:
        if options[key]:
            path = ctx.path(options[key])
            read = read_jsonl if kind == "jsonl" else read_delimited
            rows[split] = read(kind, path, options, skipped)
    out = {s: Split([t for t, _ in r], [lab for _, lab in r]) for s, r in rows.items()}
    if skipped:
        ctx.log(f"data: {kind}: skipped {len(skipped)} row(s) without a text or label, blank ones included (listed in skipped.txt)")
    return SourceData([str(c) for c in labels], train=out.get("train"), val=out.get("val"), test=out.get("test"),
                      skipped=skipped, raw=True)


def _label_columns(value) -> list:
    """``label_column`` as a list: one column, or several (one 0/1 column per label, or several targets)."""
    if isinstance(value, list):
        if not value:
            raise UserError("data.options.label_column: an empty list; name at least one column")
        return list(value)
    return [value]


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
    lis = [_column("label_column", c, columns, path, first) for c in _label_columns(options["label_column"])]
    pair = options.get("text_pair")
    pi = _column("text_pair", pair, columns, path, first) if pair not in ("", None) else None
    if ti in lis or ti == pi:  # a name and an index of one column
        raise UserError(f"data.options: text_column {options['text_column']!r} and "
                        f"{'text_pair' if ti == pi else 'label_column'} name the same column of {path}; "
                        "the label and the second sentence must come from other columns")
    if header:
        rows = rows[1:]
    out = []
    need = max([ti, *lis] + ([pi] if pi is not None else []))
    for n, row in rows:
        if header and [c.strip() for c in row] == columns:  # two files joined with `cat`: its label would be a class
            raise UserError(f"{path}: line {n} repeats the header row ({', '.join(map(repr, columns))}); "
                            "remove it (files joined with cat keep each file's header)")
        if not any(cell.strip() for cell in row):
            skipped.append(f"{path}:{n}: blank row")  # counted, as the docs promise
            continue
        if len(row) <= need:
            skipped.append(f"{path}:{n}: {len(row)} field(s), the text/label column is missing")
        elif not row[ti].strip() or not all(row[li].strip() for li in lis):
            skipped.append(f"{path}:{n}: empty {'text' if not row[ti].strip() else 'label'}")
        elif pi is not None and not row[pi].strip():
            raise UserError(f"{path}: line {n}: the text_pair column {pair!r} is empty; every example needs its "
                            f"second sentence")
        else:
            text = row[ti].strip() if pi is None else (row[ti].strip(), row[pi].strip())
            label = row[lis[0]].strip() if len(lis) == 1 else tuple(row[li].strip() for li in lis)
            out.append((text, label))
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
    tc, lcs, pc = options["text_column"], _label_columns(options["label_column"]), options.get("text_pair") or None
    for option, key in [("text_column", tc)] + [("label_column", c) for c in lcs] + \
            ([("text_pair", pc)] if pc else []):
        if key not in keys:
            raise UserError(f"data.options.{option}: {path} has no key {key!r}; its records have: "
                            f"{', '.join(map(repr, keys))}")
    out = []
    for n, rec in records:
        text, labels = rec.get(tc), [rec.get(c) for c in lcs]
        if not isinstance(text, str) or not text.strip():
            skipped.append(f"{path}:{n}: no text in {tc!r}")
        elif any(lab is None or isinstance(lab, dict) or (not isinstance(lab, list) and not label_name(lab))
                 for lab in labels):
            skipped.append(f"{path}:{n}: no usable label in {', '.join(map(repr, lcs))}")
        elif pc and (not isinstance(rec.get(pc), str) or not rec[pc].strip()):
            raise UserError(f"{path}: line {n}: no second sentence in the text_pair key {pc!r}")
        else:
            item = text.strip() if not pc else (text.strip(), rec[pc].strip())
            out.append((item, labels[0] if len(labels) == 1 else tuple(labels)))
    return out
