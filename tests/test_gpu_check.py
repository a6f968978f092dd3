"""benchmarks/gpu_check.py in its CPU mode (--quick): both precisions, cache on and off, checks pass."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


@pytest.mark.slow
def test_gpu_check_quick_mode_runs_on_cpu(tmp_path):
    pytest.importorskip("tlhub_vision")
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    gpu_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_check)
    out = tmp_path / "check.json"
    # the image recipe only: its data (mnist-5k) and weights are embedded in pip packages
    assert gpu_check.main(["--quick", "--only", "vision", "--bare-steps", "2", "--out", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["mode"] == "quick" and not r["failures"]
    runs = {k: v for k, v in r["results"].items() if "-bare-" not in k}
    assert sorted(runs) == ["vision-bf16-cached", "vision-bf16-uncached", "vision-fp32-cached", "vision-fp32-uncached"]
    assert [p["input"] for p in runs["vision-fp32-cached"]["phases"]] == ["pooled-cache", "cache-after-5-groups"]
    assert all(p["ex_per_s"] > 0 for v in runs.values() for p in v["phases"])
    assert all(v > 0 for k, v in r["results"].items() if "-bare-" in k)
