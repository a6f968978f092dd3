"""Compare what a run produced here with figures recorded on another machine.

oneDNN picks kernels by CPU features (AVX2, AVX-512, AMX) and thread count, so float sums differ
in the 7th-8th digit between two machines of the same kind: recorded floats are compared with a
relative tolerance, everything else (counts, labels, names, decisions) exactly. Bit-equality is
for two runs in the same test on the same machine, never for figures recorded elsewhere.
"""
from __future__ import annotations

import math
from typing import Any

# Float32 training sums in another order agree to about 1e-6 relative after a few epochs of the
# tiny model; 1e-5 leaves headroom yet catches any real change (a flipped prediction moves the
# tiny test split's accuracy by 1/28 and its loss by far more than 1e-5).
FLOAT_REL = 1e-5
FLOAT_ABS = 1e-7


def differences(actual: Any, recorded: Any, path: str = "") -> list[str]:
    """Every place where `actual` departs from `recorded`: floats beyond the tolerance, anything else unequal."""
    if isinstance(recorded, float) or isinstance(actual, float):
        if isinstance(actual, bool) or isinstance(recorded, bool) or not isinstance(actual, (int, float)) \
                or not isinstance(recorded, (int, float)):
            return [f"{path}: {actual!r} != {recorded!r}"]
        if math.isclose(actual, recorded, rel_tol=FLOAT_REL, abs_tol=FLOAT_ABS):
            return []
        return [f"{path}: {actual!r} != {recorded!r} (beyond rel {FLOAT_REL})"]
    if isinstance(recorded, dict) and isinstance(actual, dict):
        out = [f"{path}.{k}: missing" for k in recorded if k not in actual]
        out += [f"{path}.{k}: not recorded" for k in actual if k not in recorded]
        for k in recorded:
            if k in actual:
                out += differences(actual[k], recorded[k], f"{path}.{k}")
        return out
    if isinstance(recorded, list) and isinstance(actual, list):
        if len(actual) != len(recorded):
            return [f"{path}: {len(actual)} items != {len(recorded)} recorded"]
        return [d for i, (a, r) in enumerate(zip(actual, recorded)) for d in differences(a, r, f"{path}[{i}]")]
    return [] if actual == recorded else [f"{path}: {actual!r} != {recorded!r}"]


def assert_matches_recorded(actual: Any, recorded: Any) -> None:
    diffs = differences(actual, recorded)
    assert not diffs, "differs from the recorded figures:\n" + "\n".join(diffs[:20])
