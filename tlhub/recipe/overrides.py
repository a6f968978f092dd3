"""``key=value`` overrides of a recipe's raw tables (``phases.1.lr=1e-4``, ``phases.head.epochs=2``)."""
from __future__ import annotations

import copy
from typing import Any

import tomllib

from tlhub.errors import UserError, did_you_mean


def parse_value(text: str) -> Any:
    """A TOML value (``2``, ``1e-4``, ``true``, ``[1, 2]``, ``"x"``); bare words stay strings."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Apply ``a.b.c=value`` overrides; list items by index (``phases.1.lr``) or phase name."""
    raw = copy.deepcopy(raw)
    errors = []
    for item in overrides:
        if "=" not in item:
            errors.append(f"override {item!r}: expected key=value")
            continue
        key, _, text = item.partition("=")
        parts = [p for p in key.strip().split(".")]
        if not all(parts):
            errors.append(f"override {item!r}: empty key part")
            continue
        node: Any = raw
        try:
            for i, part in enumerate(parts[:-1]):
                node = _child(node, part, create=True, path=".".join(parts[: i + 1]))
            last = parts[-1]
            if isinstance(node, list):
                node[_index(node, last, key)] = parse_value(text.strip())
            elif isinstance(node, dict):
                node[last] = parse_value(text.strip())
            else:
                raise UserError(f"override {key}: {'.'.join(parts[:-1])} is not a table")
        except UserError as exc:
            errors += exc.errors
    if errors:
        raise UserError(errors=errors)
    return raw


def _index(node: list, part: str, path: str) -> int:
    if part.isdigit() and int(part) < len(node):  # from 0, as the message says: no negative indexes
        return int(part)
    for i, item in enumerate(node):  # phases by name
        if isinstance(item, dict) and item.get("name") == part:
            return i
    names = [item["name"] for item in node if isinstance(item, dict) and isinstance(item.get("name"), str)]
    listing = f"; names: {', '.join(names)}" if names else ""
    raise UserError(f"override {path}: no item {part!r}{did_you_mean(part, names)} (there are {len(node)}, "
                    f"indexed from 0, or by name){listing}")


def _child(node: Any, part: str, create: bool, path: str) -> Any:
    if isinstance(node, list):
        return node[_index(node, part, path)]
    if not isinstance(node, dict):
        raise UserError(f"override {path}: parent is not a table")
    if part not in node and create:
        node[part] = {}
    return node[part]
