"""Helpers shared by the commands that use a trained model."""
from __future__ import annotations

from tlhub.errors import UserError
from tlhub.recipe import parse_value

DEVICE_HELP = "cpu (default), cuda, cuda:N or auto (a GPU when one is visible)."


def key_values(items, flag: str) -> dict:
    out = {}
    for item in items:
        key, eq, text = item.partition("=")
        if not eq or not key.strip():
            raise UserError(f"{flag} {item!r}: expected key=value (the value in TOML: 3, 0.5, true, \"x\", [1, 2])")
        out[key.strip()] = parse_value(text.strip())
    return out


def cell(text: str, width: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + "…"
