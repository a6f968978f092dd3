"""Which mixed precision a run (or a loaded model) uses: ``mixed_precision = "auto"`` resolved against the device.

bf16 autocast pays on a CPU only where the hardware multiplies bf16 natively (Intel AMX, or AVX-512 with the
bf16 extension): elsewhere PyTorch converts every operand and the step runs slower than fp32 (measured in
benchmarks/RESULTS.md). Even there, a backbone with grouped (depthwise) convolutions trains slower in bf16
(EfficientNet-Lite0, MobileNetV3: their training step measured 1.7-2.0x fp32's, while ResNet and MiniLM took
0.6-0.7x). "auto" therefore means bf16 on such a CPU for a backbone without grouped convolutions, fp32
everywhere else (a GPU included: its bf16 paths are not yet measured to pay, see issue 29 item 4).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

AUTO = "auto"
MODES = ("no", "fp16", "bf16", AUTO)
FAST_BF16_FLAGS = ("amx_bf16", "avx512_bf16")  # /proc/cpuinfo flags of native bf16 matrix math


@dataclass(frozen=True)
class Precision:
    """The resolved mode ("no", "fp16" or "bf16", what Accelerate takes), what was asked, and why."""

    mode: str
    requested: str
    reason: str

    def describe(self) -> str:
        """For the log line that prints the device, e.g. 'bf16 (auto: this CPU has amx_bf16)'."""
        name = "fp32" if self.mode == "no" else self.mode
        return f"{name} ({self.reason})"


@lru_cache(maxsize=1)
def cpu_bf16_flags() -> tuple[str, ...]:
    """The native-bf16 flags this CPU reports (empty where it has none or does not say)."""
    flags: set[str] = set()
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.startswith("flags"):
                flags.update(line.split(":", 1)[1].split())
                break
    except OSError:  # not Linux: ask torch's own (private) probes when it has them
        import torch
        probes = {"amx_bf16": "_is_amx_tile_supported", "avx512_bf16": "_is_avx512_bf16_supported"}
        for flag, fn in probes.items():
            probe = getattr(torch.cpu, fn, None)
            if probe is not None and probe():
                flags.add(flag)
    return tuple(f for f in FAST_BF16_FLAGS if f in flags)


def resolve(requested: str, device_type: str, flags: tuple[str, ...] | None = None,
            grouped_convs: int = 0) -> Precision:
    """``requested`` ("no", "fp16", "bf16" or "auto") for a device of ``device_type`` ("cpu", "cuda", ...) and a
    backbone with ``grouped_convs`` grouped convolutions (``GroupLayout.grouped_convs``; 0 where unknown)."""
    if requested != AUTO:
        why = "train.mixed_precision" if requested != "no" else "mixed precision off"
        return Precision(requested, requested, why)
    if device_type != "cpu":
        return Precision("no", AUTO, f"auto: fp32 on {device_type}")
    flags = cpu_bf16_flags() if flags is None else flags
    if flags and grouped_convs:
        return Precision("no", AUTO, f"auto: this CPU has {'/'.join(flags)}, but the backbone's {grouped_convs} "
                                     f"grouped (depthwise) convolutions train slower in bf16")
    if flags:
        return Precision("bf16", AUTO, f"auto: this CPU has {'/'.join(flags)}")
    return Precision("no", AUTO, "auto: this CPU has no AMX / AVX-512 bf16, where bf16 runs slower")


def autocast(mode: str, device_type: str):
    """The autocast context of a resolved mode (a disabled one for "no")."""
    import contextlib

    import torch
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(mode)
    return torch.autocast(device_type, dtype=dtype) if dtype is not None else contextlib.nullcontext()
