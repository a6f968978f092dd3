"""Whether an output folder can be written, asked before any work: a command that computes for a minute and
then cannot save is a lost minute, and its OSError would be a traceback."""
from __future__ import annotations

import errno
import tempfile
from pathlib import Path

from tlhub.errors import UserError

# what a filesystem answers for a path the user cannot write (not tlhub bugs): one message, exit 2
WRITE_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.ENOENT, errno.ENOTDIR,
                errno.EISDIR, errno.ENAMETOOLONG, errno.EEXIST, errno.EBUSY, errno.ETXTBSY}


def writable_folder(folder: str | Path, option: str) -> Path:
    """``folder`` (existing, or to be created under its nearest existing parent) when a file can be made in
    it, else a ``UserError`` that names ``option``. Creates nothing that stays."""
    folder = Path(folder).expanduser()
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise UserError(f"{option}: {folder} cannot be a folder ({probe} is a file)")
    try:
        with tempfile.TemporaryFile(dir=probe, prefix=".tlhub-probe-"):
            pass
    except OSError as exc:
        raise UserError(f"{option}: cannot write in {probe} ({exc.strerror or exc})") from None
    return folder


def os_error_message(exc: OSError) -> str | None:
    """One line for an OSError about a path the user cannot read or write, None for anything else."""
    if exc.errno not in WRITE_ERRNOS or not exc.filename:
        return None
    return f"{exc.filename}: {exc.strerror or exc} (check the path, its permissions and the free disk space)"
