"""Writing planned phases as an ordinary recipe (``tlhub advise --write``)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from tlhub.artifacts import rundir
from tlhub.errors import UserError
from tlhub.recipe import parse_recipe


def _inline(value: Any) -> str:
    """A TOML value on one line (inline tables for dicts)."""
    import tomli_w
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_inline(v)}" for k, v in value.items()) + " }"
    return tomli_w.dumps({"v": value}, indent=0).partition("=")[2].strip().replace("\n", " ")


def phases_toml(phases: list[dict]) -> str:
    """``[[phases]]`` tables, one key per line."""
    blocks = []
    for p in phases:
        blocks.append("[[phases]]\n" + "".join(f"{k} = {_inline(v)}\n" for k, v in p.items()))
    return "\n".join(blocks)


def write_recipe(recipe, phases: list[dict], out: str | Path, header: list[str], overwrite: bool = False,
                 raw: dict | None = None) -> Path:
    """Write the recipe with ``phases`` to ``out`` under ``header`` comment lines; refuses to replace a file
    without ``overwrite``.

    ``raw``: the recipe's TOML table as the user wrote it (overrides applied); default: the resolved recipe.
    """
    import tomli_w

    out = Path(out)
    if out.exists() and not overwrite:
        raise UserError(f"{out} already exists; pass --overwrite to replace it")
    body = {k: v for k, v in (raw if raw is not None else recipe.to_dict()).items() if k != "phases"}
    parse_recipe(dict(body, phases=[dict(p) for p in phases]))  # never write a recipe that does not parse
    lines = [f"# {h}" for h in header] + [f"# Run: tlhub run {out}"]
    if recipe.path and out.resolve().parent != Path(recipe.base_dir).resolve():
        lines.append(f"# Relative paths in this recipe now resolve against {out.resolve().parent}, "
                     f"not {Path(recipe.base_dir).resolve()}.")
    text = "\n".join(lines) + "\n\n" + tomli_w.dumps(body) + "\n" + phases_toml(phases)
    out.parent.mkdir(parents=True, exist_ok=True)
    rundir.write_atomic(out, text)
    return out
