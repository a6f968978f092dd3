"""Opening and closing a run's folder: which folder, its lock for the whole run, and what a failure leaves.

The main process alone calls these. ``open_run`` picks the folder (a new one, a staged ``--overwrite``,
or the one ``--resume`` continues), takes its lock (one writer per run folder) and clears what a killed
run left beside it; ``close_run`` discards a failed staged overwrite, removes a fresh folder that a
setup error left without a checkpoint (so the corrected command needs no ``--overwrite``) and releases
the lock.
"""
from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from tlhub.artifacts import rundir, runlock
from tlhub.errors import UserError
from tlhub.training import checkpoint
from tlhub.training.phase import Interrupted

log = logging.getLogger("tlhub")


@dataclass
class OpenedRun:
    rd: rundir.RunDir
    lock: runlock.RunLock
    fresh: bool  # the folder was absent or empty before this run: a setup error may remove what it wrote
    existed: bool
    resumed: bool


def find_resume_dir(recipe, resume: str) -> Path:
    """The run directory to continue: the one given, output.dir, or the newest runs/<recipe>-* with a checkpoint."""
    if resume and resume != "latest":
        path = Path(resume)
    elif recipe.output.dir:
        path = Path(recipe.output.dir).expanduser()
        staged = rundir.staged_runs(path)
        if staged:  # an interrupted --overwrite of output.dir: continue it (it replaces the old run at the end)
            path = staged[-1]
    else:
        # auto/: an interrupted freeze = "auto" search, which has no run checkpoint yet
        runs = sorted((p for sub in ("checkpoints", "auto") for p in Path("runs").glob(f"{recipe.stem}-*/{sub}")),
                      key=lambda p: p.stat().st_mtime)
        if not runs:
            raise UserError(f"--resume: no run of {recipe.stem!r} with checkpoints under runs/; "
                            f"pass the run directory: --resume RUN_DIR")
        path = runs[-1].parent
    if not path.is_dir():
        raise UserError(f"--resume: {path} is not a run directory")
    if not (path / "checkpoints").is_dir() and not (path / "auto").is_dir():  # auto/: a search was interrupted
        # refuse before anything (run.log) is written into a stranger's folder
        raise UserError(f"--resume: no whole checkpoint in {path / 'checkpoints'}; start a new run instead")
    return path


def open_run(recipe, overwrite: bool, resume: str | None) -> OpenedRun:
    if resume is not None and overwrite:
        raise UserError("--resume and --overwrite together: --resume continues a run, --overwrite replaces it "
                        "with a new one; pass one of them")
    if resume is not None:
        rd = rundir.resumed_run_dir(find_resume_dir(recipe, resume))
        lock = runlock.acquire(rd.final)
        fresh = existed = False
    else:
        planned = Path(recipe.output.dir).expanduser() if recipe.output.dir else None
        lock = runlock.acquire(planned) if planned is not None else None
        try:
            if planned is not None:
                rundir.clean_abandoned(planned)
            rd = rundir.choose_run_dir(recipe, overwrite)
            if lock is None:
                lock = runlock.acquire(rd.final)
        except BaseException:
            if lock is not None:
                lock.release()
            raise
        existed = rd.path.exists()
        fresh = not rd.staged and not (existed and any(rd.path.iterdir()))
    try:
        rundir.make_run_dir(rd.path)
    except BaseException:
        lock.release()
        raise
    return OpenedRun(rd, lock, fresh, existed, resume is not None)


def close_run(opened: OpenedRun | None, exc: BaseException | None) -> None:
    """After the run, whatever happened: tidy a failure, then release the lock."""
    if opened is None:
        return
    try:
        if exc is not None and not isinstance(exc, Interrupted):
            rd = opened.rd
            resumable = isinstance(exc, rundir.DiskFull) and any((rd.path / "checkpoints").glob("*"))
            if rd.staged and not opened.resumed and not resumable:  # a --resume keeps the staged run it continues
                rundir.discard(rd)
                log.info("overwrite: the new run failed; %s still holds the old run", rd.final)
            elif opened.fresh and isinstance(exc, UserError) and not (rd.path / "checkpoints").is_dir():
                _remove_fresh(rd.path, opened.existed)
    finally:
        opened.lock.release()


def disk_full(opened: OpenedRun | None, exc: BaseException, resume_command: str) -> UserError:
    """The one message for a full disk, after ``close_run``: what failed, and the command that continues."""
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    msg = first if isinstance(exc, rundir.DiskFull) else f"disk full while writing the run ({first})"
    if opened is not None and opened.rd.path.is_dir() and checkpoint.newest(opened.rd.path) is not None:
        return rundir.DiskFull(errors=[msg, f"after freeing space, continue with: {resume_command}"])
    return rundir.DiskFull(errors=[msg, "nothing was trained yet: after freeing space, run the same command again"])


def _remove_fresh(path: Path, existed: bool) -> None:
    """A setup error before anything was trained: leave the folder as the run found it (absent or empty)."""
    for h in list(log.handlers):  # run.log is open on Windows-like systems; close before deleting
        if isinstance(h, logging.FileHandler) and Path(h.baseFilename).parent == path.resolve():
            h.close()
            log.removeHandler(h)
    shutil.rmtree(path, ignore_errors=True)
    if existed:
        path.mkdir(exist_ok=True)
