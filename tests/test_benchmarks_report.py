"""benchmarks/report_md.py: RESULTS.md marks each target met or missed from the numbers, and says why
a top_k target is missed. Synthetic results; nothing is measured here."""
from __future__ import annotations

import importlib
import sys

from conftest import REPO


def render(results: dict) -> str:
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        report_md = importlib.import_module("report_md")
        run = importlib.import_module("run")
        return report_md.render(["- env"], results, run.fmt_phase_table, run.phase_rows, run.ratio)
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
        for name in ("report_md", "run"):  # generic module names: do not leave them importable
            sys.modules.pop(name, None)


def row(label, acc, epochs_s, wall=100.0, peak=1.0, phase="p", inp="raw"):
    history = [{"phase": phase, "phase_index": 0, "epoch": i + 1, "seconds": s, "train_seconds": s, "examples": 10,
                "val_accuracy": 0.5} for i, s in enumerate(epochs_s)]
    return {"label": label, "accuracy": acc, "test_examples": 100, "wall": wall, "peak_gb": peak, "load": 1.0,
            "history": history, "phases": [{"phase": phase, "seconds": sum(epochs_s), "cache_seconds": 0.0,
                                            "train_input": inp}]}


def test_targets_met_and_missed_follow_the_numbers():
    r = {"topk_sweep": {"limit": 1500, "rounds": 2, "by_k": {
             "4": {"input": "cache-after-5-groups", "cached_s": [8.0, 8.0], "uncached_s": [10.0, 10.0]},
             "1": {"input": "cache-after-8-groups", "cached_s": [1.0, 1.0], "uncached_s": [9.0, 9.0]}}},
         "p1_cached": row("p1c", 0.9, [0.5] * 10, inp="pooled-cache"),
         "p1_uncached": row("p1u", 0.9, [20.0] * 10),
         "overhead": {"ratio": 1.2, "bare_ms": [100.0], "tlhub_ms": [120.0], "batch": 32, "size": 32}}
    text = render(r)
    lines = text.splitlines()
    k4 = next(line for line in lines if "`top_k` = 4" in line)
    k1 = next(line for line in lines if "`top_k` = 1" in line)
    assert k4.startswith("- MISSED") and "1.2x" in k4 and k1.startswith("- MET") and "9.0x" in k1
    why = lines[lines.index(k4) + 1]
    assert why.startswith("- WHY") and "2.0 s of the uncached 10.0 s epoch" in why
    assert next(line for line in lines if "phase 1 (10 epochs" in line).startswith("- MET")  # 40x
    assert next(line for line in lines if "per-step overhead" in line).startswith("- MISSED")  # 1.2 > 1.10
    assert "| p1c | 0.9000 | 100 |" in text
