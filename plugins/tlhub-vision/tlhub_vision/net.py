"""A quick "can we download?" check, so offline users get an error in seconds, not a retry loop."""
from __future__ import annotations

import os
import socket
import threading
from contextlib import contextmanager
from pathlib import Path

OFFLINE_ENV = "TLHUB_OFFLINE"  # set to 1 to never try the network
PROBE_TIMEOUT = 3.0


def offline_reason(host: str, port: int = 443, timeout: float = PROBE_TIMEOUT) -> str | None:
    """None when ``host:port`` accepts a connection within ``timeout`` s, else why not.

    The connect runs in a daemon thread because name resolution has no timeout of its own.
    """
    if os.environ.get(OFFLINE_ENV, "").strip().lower() not in ("", "0", "false", "no"):
        return f"{OFFLINE_ENV} is set"
    result: list[str | None] = []

    def probe():
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result.append(None)
        except OSError as exc:
            result.append(f"cannot reach {host}: {exc.strerror or exc}")

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(timeout + 0.5)
    return result[0] if result else f"cannot reach {host}: no answer within {timeout:g} s"


@contextmanager
def socket_timeout(seconds: float):
    """Downloads through urllib without a timeout of their own stall at most this long per read."""
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(old)


def data_home() -> Path:
    """Where sources download to when no ``root`` is given: $TLHUB_DATA or ~/.cache/tlhub/data."""
    return Path(os.environ.get("TLHUB_DATA") or Path.home() / ".cache" / "tlhub" / "data").expanduser()
