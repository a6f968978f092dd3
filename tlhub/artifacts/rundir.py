"""The run directory: what a finished run leaves behind, written by the main process only.

``--overwrite`` never writes into the old run: the new run is built in a sibling folder
``<dir>.tlhub-new-XXXX`` and swapped in only when it has finished, so ``<dir>`` always holds
either the whole old run or the whole new one (and no stale checkpoint of the old run).
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from tlhub.errors import UserError

STAGED = ".tlhub-new-"
_RUN_MARKERS = ("run.log", "recipe.toml")  # files every tlhub run directory has


@dataclass(frozen=True)
class RunDir:
    """Where a run writes (``path``) and where it ends up (``final``); they differ while overwriting."""

    path: Path
    final: Path

    @property
    def staged(self) -> bool:
        return self.path != self.final


def check_output_dir(value: str) -> list[str]:
    """Errors of an ``output.dir`` value that no run could use (checked by ``tlhub validate``)."""
    if "\0" in value:
        return ["output.dir: contains a NUL character"]
    path = Path(value).expanduser()
    try:
        if path.exists() and not path.is_dir():
            return [f"output.dir: {path} exists and is not a folder"]
    except OSError as exc:
        return [f"output.dir: cannot use {path}: {exc.strerror or exc}"]
    return []


def choose_run_dir(recipe, overwrite: bool) -> RunDir:
    if recipe.output.dir:
        errors = check_output_dir(recipe.output.dir)
        if errors:
            raise UserError(errors=errors)
        path = Path(recipe.output.dir).expanduser()
        if not (path.exists() and any(path.iterdir())):
            return RunDir(path, path)
        if not overwrite:
            raise UserError(f"output.dir: {path} already exists and is not empty; pass --overwrite to replace "
                            f"it or choose another output.dir")
        if not any((path / m).exists() for m in _RUN_MARKERS):
            raise UserError(f"output.dir: {path} is not empty and is not a tlhub run directory (no run.log or "
                            f"recipe.toml); --overwrite replaces only runs: choose another output.dir")
        return RunDir(_make_staged(path), path)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = Path("runs") / f"{recipe.stem}-{stamp}"
    n = 1
    while path.exists():
        n += 1
        path = Path("runs") / f"{recipe.stem}-{stamp}-{n}"
    return RunDir(path, path)


def _sibling(final: Path, infix: str) -> Path:
    """A fresh name beside ``final`` (not mkdtemp: its 0700 mode would outlive the swap)."""
    while True:
        path = final.with_name(f"{final.name}{infix}{secrets.token_hex(4)}")
        if not path.exists():
            return path


def _make_staged(final: Path) -> Path:
    path = _sibling(final, STAGED)
    try:
        path.mkdir()
    except OSError as exc:
        raise UserError(f"output.dir: cannot write beside {final}: {exc.strerror or exc}") from None
    return path


def staged_target(path: Path) -> Path | None:
    """The run directory a staged overwrite ``<dir>.tlhub-new-XXXX`` will replace, else None."""
    name, sep, _ = path.name.rpartition(STAGED)
    return path.with_name(name) if sep and name else None


def staged_runs(final: Path) -> list[Path]:
    """Interrupted overwrites of ``final`` waiting to be resumed, oldest first."""
    if not final.parent.is_dir():
        return []
    found = [p for p in final.parent.glob(final.name + STAGED + "*") if (p / "checkpoints").is_dir()]
    return sorted(found, key=lambda p: p.stat().st_mtime)


def resumed_run_dir(path: Path) -> RunDir:
    target = staged_target(path)
    return RunDir(path, target) if target is not None else RunDir(path, path)


def commit(rd: RunDir) -> Path:
    """Swap a finished staged run into place: the old run moves aside, the new one in, the old one goes."""
    if not rd.staged:
        return rd.final
    aside = None
    if rd.final.exists():
        aside = _sibling(rd.final, ".tlhub-old-")
        os.replace(rd.final, aside)
    try:
        os.replace(rd.path, rd.final)
    except OSError as exc:
        if aside is not None:
            os.replace(aside, rd.final)
        raise UserError(f"output.dir: cannot move the new run {rd.path} to {rd.final}: {exc.strerror or exc}; "
                        f"the old run is unchanged") from None
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)
    return rd.final


def discard(rd: RunDir) -> None:
    """Drop a staged run that failed; the old run was never touched."""
    if rd.staged:
        shutil.rmtree(rd.path, ignore_errors=True)


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
