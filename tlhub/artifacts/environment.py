"""What a run ran on (versions, device, processes, threads): written to ``environment.json`` for the report."""
from __future__ import annotations

import os
import platform
import sys

from tlhub import __version__


def _version(module: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version(module)
    except PackageNotFoundError:
        return None


def describe_environment(device, processes: int, threads: int, mixed_precision: str, registry=None) -> dict:
    """A JSON-ready description; ``registry`` adds the loaded plugins and their versions."""
    import torch

    dev = str(device)
    name = None
    if dev.startswith("cuda") and torch.cuda.is_available():
        name = torch.cuda.get_device_name(torch.device(dev))
    packages = {p: _version(p) for p in ("torch", "torchvision", "accelerate", "numpy", "transformers", "timm")}
    env = {
        "python": platform.python_version(), "platform": platform.platform(), "executable": sys.executable,
        "tlhub": __version__, "packages": {k: v for k, v in packages.items() if v},
        "device": dev, "device_name": name or platform.processor() or platform.machine(),
        "processes": int(processes), "threads_per_process": int(threads), "cpu_count": os.cpu_count(),
        "mixed_precision": str(mixed_precision),
    }
    if registry is not None:
        env["plugins"] = {p.name: p.version for p in registry.plugins if not p.error}
    return env
