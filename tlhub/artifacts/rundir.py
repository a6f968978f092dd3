"""The run directory: what a finished run leaves behind, written by the main process only.

``--overwrite`` never writes into the old run: the new run is built in a sibling folder
``<dir>.tlhub-new-XXXX`` and swapped in only when it has finished, so ``<dir>`` always holds
either the whole old run or the whole new one (and no stale checkpoint of the old run).
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from tlhub.errors import UserError

STAGED = ".tlhub-new-"
OLD = ".tlhub-old-"
MARKER = ".tlhub-run"  # written by tlhub alone when it creates a run folder: only such a folder is replaced
_LEGACY_MARKERS = ("run.log", "recipe.toml")  # what a run made before the marker has


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
        if not Path(os.path.abspath(path)).name:
            return [f"output.dir: {path} is the filesystem root; name a folder for the run"]
        if path.exists() and not path.is_dir():
            return [f"output.dir: {path} exists and is not a folder"]
    except OSError as exc:
        return [f"output.dir: cannot use {path}: {exc.strerror or exc}"]
    return []


class DiskFull(UserError):
    """Not enough space for what the run must write: free some, then ``--resume`` continues."""


def is_disk_full(exc: BaseException) -> bool:
    """ENOSPC/EDQUOT, also as wrapped by libraries that re-raise it as their own error (safetensors)."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(exc)
    return "No space left on device" in text or "Disk quota exceeded" in text


def check_free_space(folder: Path, nbytes: int, what: str) -> None:
    """Refuse (``DiskFull``) before a file of ``nbytes`` is memory-mapped: a full disk behind a mapping is a
    SIGBUS (the process dies without a word), not an error Python could report. Other writes fail with
    ENOSPC, which the run reports itself."""
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if nbytes + 2**20 > free:  # 1 MiB spare: the file's header and what the run logs meanwhile
        raise DiskFull(f"disk full: {what} needs {nbytes / 2**20:.1f} MB in {folder} but {free / 2**20:.1f} MB "
                       f"are free; free space there, or raise train.cache_memory_mb to keep it in memory")


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
        check_replaceable(path, protected_paths(recipe))
        return RunDir(_make_staged(path), path)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = Path("runs") / f"{recipe.stem}-{stamp}"
    n = 1
    while path.exists():
        n += 1
        path = Path("runs") / f"{recipe.stem}-{stamp}-{n}"
    return RunDir(path, path)


def protected_paths(recipe) -> list[Path]:
    """What a run must never replace a folder holding: the working directory, the recipe, its data."""
    base = Path(recipe.base_dir)
    found = [Path.cwd()] + ([Path(recipe.path)] if recipe.path else [])
    test_options = recipe.data.test.options if recipe.data.test else {}
    values = list(recipe.data.options.values()) + list(test_options.values())
    for v in values:
        for item in (v if isinstance(v, list) else [v]):
            if isinstance(item, str) and item and "\0" not in item:
                p = (base / Path(item).expanduser())
                if p.exists():
                    found.append(p)
    return found


def _inside(child: Path, parent: Path) -> bool:
    try:
        child.resolve().relative_to(parent.resolve())
        return True
    except (ValueError, OSError):
        return False


def check_replaceable(path: Path, protected: list[Path]) -> None:
    """Refuse (exit 2) to replace anything but a folder tlhub made as a run, or one holding what the run needs."""
    for p in protected:
        if _inside(p, path):
            what = "the working directory" if p == protected[0] else str(p)
            raise UserError(f"output.dir: --overwrite would replace {path}, which holds {what}; --overwrite "
                            f"replaces only a run folder: choose another output.dir")
    if (path / MARKER).is_file():
        return
    if any((path / m).exists() for m in _LEGACY_MARKERS):
        raise UserError(f"output.dir: {path} has no {MARKER} marker (a run made by a tlhub older than the marker, "
                        f"or not a run at all); --overwrite replaces only marked runs: delete the folder "
                        f"yourself if it is a run you no longer need, or choose another output.dir")
    raise UserError(f"output.dir: {path} is not empty and is not a tlhub run directory (no {MARKER}); "
                    f"--overwrite replaces only runs: choose another output.dir")


def is_run_dir(path: Path) -> bool:
    """A folder tlhub made for a run (marked), or a run made before the marker (run.log and recipe.toml)."""
    return (path / MARKER).is_file() or all((path / m).is_file() for m in _LEGACY_MARKERS)


def mark(path: Path) -> None:
    """Write the marker of a run folder tlhub created (kept by a resume; a pre-marker run gains one)."""
    if not (path / MARKER).is_file():
        write_json(path / MARKER, {"run_id": secrets.token_hex(8), "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                                   "tlhub": "run folder; tlhub run --overwrite replaces only folders with this file"})


def clean_abandoned(final: Path) -> None:
    """Siblings of ``final`` left by a killed run; call only while holding ``final``'s lock (so no owner lives).

    ``<final>.tlhub-new-*`` without a checkpoint has nothing to resume; ``<final>.tlhub-old-*`` is the old run
    moved aside by a swap: deleted when the new run is in place, moved back when the swap died halfway.
    """
    final = Path(os.path.abspath(final))
    if not final.parent.is_dir():
        return
    for p in sorted(final.parent.glob(final.name + STAGED + "*")):
        if p.is_dir() and not (p / "checkpoints").is_dir() and not (p / "auto").is_dir():
            shutil.rmtree(p, ignore_errors=True)
    for p in sorted(final.parent.glob(final.name + OLD + "*")):
        if not p.is_dir():
            continue
        if final.exists():
            shutil.rmtree(p, ignore_errors=True)
        else:
            os.replace(p, final)


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
    found = [p for p in final.parent.glob(final.name + STAGED + "*")
             if (p / "checkpoints").is_dir() or (p / "auto").is_dir()]
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
        aside = _sibling(rd.final, OLD)
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
        mark(path)
    except OSError as exc:
        raise UserError(f"output.dir: cannot write to {path}: {exc.strerror or exc}") from None
    return path


@contextlib.contextmanager
def atomic_path(path: Path):
    """Yield a temporary name beside ``path`` to write; rename it over ``path`` when the block succeeds, and
    remove it when the block fails (a full disk leaves no ``.tmp`` behind)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write to a temporary file, fsync, rename: a reader never sees half a file."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
        f.flush()
        os.fsync(f.fileno())


def write_json(path: Path, obj) -> None:
    write_atomic(path, json.dumps(obj, indent=2) + "\n")


def append_jsonl(path: Path, obj) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(obj) + "\n")


def read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
