"""Two CPU processes under torchrun (gloo): identical weights, gathered metrics, rank 0 writes."""
from __future__ import annotations

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
from tlhub.model.transfer import TransferModel
prefix, ran = TransferModel.prefix, [0]
def counting(self, x, entry):  # examples this process runs through the frozen prefix (cache fills)
    ran[0] += len(x)
    return prefix(self, x, entry)
TransferModel.prefix = counting
result = tlhub.run(sys.argv[1], sys.argv[3:], quiet=True)
rank = int(os.environ["RANK"])
digest = hashlib.sha256()
for k, v in sorted(result.model.state_dict().items()):
    digest.update(k.encode()); digest.update(v.detach().cpu().numpy().tobytes())
with open(os.path.join(sys.argv[2], f"rank{rank}.json"), "w") as f:
    json.dump({"weights": digest.hexdigest(), "history": result.history, "metrics": result.metrics,
               "world": int(os.environ["WORLD_SIZE"]), "cached": ran[0]}, f)
"""


def _torchrun(tmp_path, recipe, *overrides, port: int = 29517, script_text: str = SCRIPT) -> tuple[dict, dict]:
    """Run ``script_text`` (argv: recipe, output folder, overrides) under torchrun with 2 CPU processes; the
    JSON each rank wrote."""
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")
    if torchrun is None:
        pytest.skip("torchrun is not installed beside this Python")
    script = tmp_path / "two.py"
    script.write_text(script_text)
    out = tmp_path / "ranks"
    out.mkdir()
    env = dict(os.environ, OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")  # gloo on the CPU, even beside a GPU
    proc = subprocess.run([torchrun, "--nproc_per_node", "2", "--master_port", str(port), str(script),
                           str(recipe), str(out), *overrides],
                          capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads((out / "rank0.json").read_text()), json.loads((out / "rank1.json").read_text())


@pytest.mark.slow
def test_two_processes_under_torchrun(tiny_recipe, tmp_path):
    r0, r1 = _torchrun(tmp_path, tiny_recipe, "data.eval_batch_size=4", "phases.1.epochs=1")
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


@pytest.mark.slow
def test_two_processes_share_the_cache_and_match_one(tiny_recipe, tmp_path):
    """Each process fills half of the frozen-prefix cache (the shares are gathered), spill files are per
    process, and 2 processes x batch 16 give one process x batch 32's metrics up to float summation
    order (96 training examples: no padded duplicates; BatchNorm in eval mode, no dropout)."""
    import tlhub

    common = ["data.limit=96", "data.eval_batch_size=8", "phases.1.epochs=1", "train.cache_memory_mb=0.001"]
    r0, r1 = _torchrun(tmp_path, tiny_recipe, "data.batch_size=16", *common, port=29518)
    one = tlhub.run(tiny_recipe, ["data.batch_size=32", *common, f"output.dir='{tmp_path / 'one'}'"], quiet=True)
    # 2 phases x (96 train + 28 val) examples through the frozen prefix, split between the processes
    assert r0["cached"] + r1["cached"] == 2 * (96 + 28) and abs(r0["cached"] - r1["cached"]) <= 16
    log = (tmp_path / "run" / "run.log").read_text()
    assert "phase1-train.rank0.0.bin" in log  # rank 0 logs; rank 1 spills to its own .rank1 files
    assert not list((tmp_path / "run" / "cache").glob("*.bin"))  # each process removed its own
    assert r0["metrics"]["test_examples"] == one.metrics["test_examples"] == 16
    assert r0["metrics"]["accuracy"] == pytest.approx(one.metrics["accuracy"], abs=1e-9)
    assert len(r0["history"]) == len(one.history)
    for two, single in zip(r0["history"], one.history):
        assert two["examples"] == single["examples"] == 96 and two["val_examples"] == single["val_examples"]
        for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy"):
            assert two[key] == pytest.approx(single[key], rel=1e-4, abs=1e-6), (key, two, single)


def test_more_processes_than_gpus_is_refused_before_training(tiny_recipe, monkeypatch):
    """torchrun --nproc_per_node 2 on a one-GPU machine: one clear message, exit 2, nothing written."""
    import torch
    from click.testing import CliRunner

    from tlhub.cli import cli
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    run = CliRunner().invoke(cli, ["run", str(tiny_recipe)])
    assert run.exit_code == 2, run.output
    assert "2 processes were started on this machine but it has 1 GPU(s)" in run.output
    assert "Traceback" not in run.output and not (tiny_recipe.parent / "run").exists()
