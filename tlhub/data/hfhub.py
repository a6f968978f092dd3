"""Is the Hugging Face Hub reachable (models and data sets)? Asked before any download so that an
offline machine fails in seconds with a clear message instead of hanging on retries (transformers #10379)."""
from __future__ import annotations

import os
import threading
from contextlib import contextmanager

TRUE = {"1", "true", "yes", "on"}
PROBE_TIMEOUT_S = 3.0


def offline_requested() -> bool:
    """HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE / HF_DATASETS_OFFLINE set to a true value."""
    return any(os.environ.get(v, "").strip().lower() in TRUE
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"))


def endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def hub_reachable(timeout: float = PROBE_TIMEOUT_S) -> bool:
    """One HEAD request to the Hub (through the proxies the environment names, as downloads would go).
    Any HTTP answer counts as reachable; the thread bounds the time even when DNS itself hangs."""
    import urllib.error
    import urllib.request

    result = [False]

    def probe():
        try:
            urllib.request.urlopen(urllib.request.Request(endpoint(), method="HEAD"), timeout=timeout).close()
            result[0] = True
        except urllib.error.HTTPError:
            result[0] = True  # the server answered
        except (OSError, ValueError):
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
    return f"{endpoint()} cannot be reached"


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
