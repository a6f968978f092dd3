"""The run directory: what a finished run leaves behind, written by the main process only."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from tlhub.errors import UserError


def choose_run_dir(recipe, overwrite: bool) -> Path:
    if recipe.output.dir:
        path = Path(recipe.output.dir).expanduser()
        if path.exists() and any(path.iterdir()) and not overwrite:
            raise UserError(f"output.dir: {path} already exists and is not empty; pass --overwrite to replace "
                            f"its contents or choose another output.dir")
        return path
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = Path("runs") / f"{recipe.stem}-{stamp}"
    n = 1
    while path.exists():
        n += 1
        path = Path("runs") / f"{recipe.stem}-{stamp}-{n}"
    return path


def make_run_dir(path: Path) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"output.dir: cannot write to {path}: {exc.strerror or exc}") from None
    return path


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write to a temporary file, fsync, rename: a reader never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_json(path: Path, obj) -> None:
    write_atomic(path, json.dumps(obj, indent=2) + "\n")


def append_jsonl(path: Path, obj) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(obj) + "\n")


def read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
