"""Two CPU processes under torchrun (gloo): identical weights, gathered metrics, rank 0 writes."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = """
import hashlib, json, os, sys
import torch, tlhub
result = tlhub.run(sys.argv[1], sys.argv[3:], quiet=True)
rank = int(os.environ["RANK"])
digest = hashlib.sha256()
for k, v in sorted(result.model.state_dict().items()):
    digest.update(k.encode()); digest.update(v.detach().cpu().numpy().tobytes())
with open(os.path.join(sys.argv[2], f"rank{rank}.json"), "w") as f:
    json.dump({"weights": digest.hexdigest(), "history": result.history, "metrics": result.metrics,
               "world": int(os.environ["WORLD_SIZE"])}, f)
"""


@pytest.mark.slow
def test_two_processes_under_torchrun(tiny_recipe, tmp_path):
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")
    if torchrun is None:
        pytest.skip("torchrun is not installed beside this Python")
    script = tmp_path / "two.py"
    script.write_text(SCRIPT)
    out = tmp_path / "ranks"
    out.mkdir()
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([torchrun, "--nproc_per_node", "2", "--master_port", "29517", str(script),
                           str(tiny_recipe), str(out), "data.eval_batch_size=4", "phases.1.epochs=1"],
                          capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    r0 = json.loads((out / "rank0.json").read_text())
    r1 = json.loads((out / "rank1.json").read_text())
    assert r0["world"] == r1["world"] == 2
    assert r0["weights"] == r1["weights"]  # DDP kept both replicas identical through both phases
    # 28 validation and 16 test examples: uneven over 2 processes x batch 4, no padded duplicates counted
    assert all(row["val_examples"] == 28 for row in r0["history"])
    assert r0["metrics"]["test_examples"] == 16 and sum(map(sum, r0["metrics"]["confusion_matrix"])) == 16
    # training examples seen over both processes: 116, plus the few that even batches repeat
    assert 116 <= r0["history"][0]["examples"] < 116 + 2 * 16
    run = tmp_path / "run"
    assert (run / "metrics.json").is_file()
    lines = (run / "history.jsonl").read_text().splitlines()
    assert len(lines) == len(r0["history"])  # written once, by rank 0 only
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.toml", "ranks", "run", "two.py"]
