"""Is the Hugging Face Hub reachable? Asked before any download so that an offline machine fails
in seconds with a clear message instead of hanging on retries (transformers #10379)."""
from __future__ import annotations

import os
import socket
import threading
from contextlib import contextmanager
from urllib.parse import urlparse

TRUE = {"1", "true", "yes", "on"}
PROBE_TIMEOUT_S = 3.0


def offline_requested() -> bool:
    """HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE / HF_DATASETS_OFFLINE set to a true value."""
    return any(os.environ.get(v, "").strip().lower() in TRUE
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"))


def hub_host() -> tuple[str, int]:
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    return url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)


def hub_reachable(timeout: float = PROBE_TIMEOUT_S) -> bool:
    """One TCP connection to the Hub, bounded in time even when DNS itself hangs (hence the thread)."""
    host, port = hub_host()
    result = [False]

    def probe():
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result[0] = True
        except OSError:
            pass

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(timeout + 0.5)
    return result[0]


def online() -> bool:
    return not offline_requested() and hub_reachable()


def why_offline() -> str:
    if offline_requested():
        return "offline mode is on (HF_HUB_OFFLINE)"
    host, port = hub_host()
    return f"{host}:{port} cannot be reached"


@contextmanager
def forced_offline():
    """Make huggingface_hub and datasets use only the local cache (they read these flags per call)."""
    import huggingface_hub.constants as hc
    saved = [hc.HF_HUB_OFFLINE]
    hc.HF_HUB_OFFLINE = True
    try:
        import datasets.config as dc
        saved.append(dc.HF_HUB_OFFLINE)
        dc.HF_HUB_OFFLINE = True
    except ImportError:
        dc = None
    try:
        yield
    finally:
        hc.HF_HUB_OFFLINE = saved[0]
        if dc is not None:
            dc.HF_HUB_OFFLINE = saved[1]
