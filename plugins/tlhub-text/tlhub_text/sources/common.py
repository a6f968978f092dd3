"""Helpers shared by the file-based text sources: decoding with useful errors, line splitting."""
from __future__ import annotations

import codecs
from pathlib import Path

from tlhub.errors import UserError


def read_text(path: Path, encoding: str, option: str = "data.options.encoding") -> str:
    """The whole file decoded; undecodable bytes name the file, line and the ``encoding`` option."""
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise UserError(f"{option}: unknown encoding {encoding!r} (e.g. 'utf-8', 'cp1252', 'latin-1')") from None
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    raw = path.read_bytes()
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        hint = "cp1252" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else "utf-8"
        raise UserError(f"{path}: line {line}, column {col}: byte 0x{raw[exc.start]:02x} is not valid {encoding} "
                        f"(set {option} to the file's encoding, e.g. {option} = \"{hint}\" or \"latin-1\")") from None
    return text[1:] if text.startswith("\ufeff") else text  # a UTF-8 BOM is not part of the first text


def split_lines(text: str) -> list[str]:
    """Lines split on LF/CRLF only (``str.splitlines`` would also split on U+0085, U+2028, ...)."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final newline ends the last line; it does not start an empty one
    return [ln[:-1] if ln.endswith("\r") else ln for ln in lines]
