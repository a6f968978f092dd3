"""One writer per run folder: an exclusive ``flock`` held for the whole run.

The lock file sits beside the run folder (``.<name>.tlhub-lock``), not inside it: a staged ``--overwrite``
swaps folders, and a resume of an interrupted overwrite writes into ``<name>.tlhub-new-XXXX``, but every
writer of ``<name>`` (a fresh run, an overwrite, a resume) takes the same lock. The kernel drops a flock
when its holder dies, so a lock file left by a killed run is stale by construction; the pid written into
it only names the holder in the refusal.
"""
from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path

from tlhub.errors import UserError

try:
    import fcntl
except ImportError:  # Windows: no flock; runs are not locked there
    fcntl = None


def lock_path(final: Path) -> Path:
    final = Path(os.path.abspath(final))
    return final.with_name(f".{final.name}.tlhub-lock")


@dataclass
class RunLock:
    """A held lock on the run folder ``final``; ``release()`` (or the holder's death) frees it."""

    final: Path
    path: Path
    fd: int | None

    def release(self) -> None:
        if self.fd is None:
            return
        try:  # unlink while still holding it: a waiter that opened the old inode re-checks (see acquire)
            os.unlink(self.path)
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None


def holder(final: Path) -> int | None:
    """The pid holding ``final``'s lock, or None when no live process holds it (no lock file, or stale)."""
    path = lock_path(final)
    if fcntl is None:
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return _read_pid(path) or -1
            raise
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def busy_error(final: Path, pid: int) -> UserError:
    who = f"process {pid}" if pid > 0 else "another process"
    return UserError(f"output.dir: {final} is being written by {who} (tlhub run); wait for it to finish or stop "
                     f"it, or choose another output.dir")


def acquire(final: Path) -> RunLock:
    """Take ``final``'s lock or refuse (UserError naming the holder's pid)."""
    path = lock_path(final)
    if fcntl is None:
        return RunLock(Path(final), path, None)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"output.dir: cannot write to {final}: {exc.strerror or exc}") from None
    for _ in range(20):
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise UserError(f"output.dir: cannot write to {final} (its lock file {path.name} beside it): "
                            f"{exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise busy_error(final, _read_pid(path) or -1) from None
            raise
        try:  # the holder we waited on may have unlinked this inode on release: lock the current file instead
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            return RunLock(Path(final), path, fd)
        os.close(fd)
    raise UserError(f"output.dir: cannot lock {final}: its lock file keeps changing")
