"""tlhub compare: two tiny runs with different seeds side by side; runs that do not compare are refused."""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from tinyruns import train_tiny

from tlhub.cli import cli


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    return train_tiny(root / "seed0", 0), train_tiny(root / "seed1", 1)


def compare(*args):
    return CliRunner().invoke(cli, ["compare", *map(str, args)])


def test_two_seeds_side_by_side(two_runs, tmp_path):
    a, b = two_runs
    out = tmp_path / "cmp.html"
    result = compare(a, b, "--out", out)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["seed0", "seed1"]
    # The only recipe difference is the seed (output.dir is not a difference worth a row).
    diff = lines[lines.index("recipe differences:") + 1: lines.index("time (s):")]
    assert [ln.split() for ln in diff] == [["train.seed", "0", "1"]]
    # Test scores as each run's metrics.json has them, in run order.
    for key in ("accuracy", "f1"):
        row = next(ln for ln in lines if ln.split()[:1] == [key])
        expected = [f"{json.loads((r / 'metrics.json').read_text())[key]:.4f}" for r in (a, b)]
        assert row.split()[1:] == expected
    total = next(ln for ln in lines if ln.strip().startswith("total")).split()[1:]
    assert total == [f"{json.loads((r / 'timings.json').read_text())['total_seconds']:.1f}" for r in (a, b)]
    assert any(ln.strip().startswith("val accuracy after phase 2 top") for ln in lines)
    page = out.read_text(encoding="utf-8")
    assert re.search(r'<img class="fig" src="data:image/png;base64,', page) and "train.seed" in page
    for r in (a, b):  # a relative link to each run's own page: works wherever the folders move together
        rel = Path(os.path.relpath(r / "report.html", tmp_path)).as_posix()
        assert f'<a href="{rel}">report</a>' in page


def test_refuses_to_overwrite(two_runs, tmp_path):
    out = tmp_path / "compare.html"
    out.write_text("mine")
    result = compare(*two_runs, "--out", tmp_path)  # a folder: compare.html inside it
    assert result.exit_code == 2 and "already exists; pass --overwrite" in result.output
    assert out.read_text() == "mine"
    assert compare(*two_runs, "--out", tmp_path, "--overwrite").exit_code == 0 and out.read_text() != "mine"


def test_refuses_different_label_sets(two_runs, tmp_path):
    other = shutil.copytree(two_runs[1], tmp_path / "other")
    metrics = json.loads((other / "metrics.json").read_text())
    metrics["classes"] = ["cat", "dog", "class2", "class3"]
    (other / "metrics.json").write_text(json.dumps(metrics))
    result = compare(two_runs[0], other, "--out", tmp_path / "c.html")
    assert result.exit_code == 2 and "different label sets" in result.output and "Traceback" not in result.output
    assert "only in" in result.output and "cat, dog" in result.output and "class0, class1" in result.output
    assert not (tmp_path / "c.html").exists()


def test_refuses_different_tasks(two_runs, tmp_path):
    other = shutil.copytree(two_runs[1], tmp_path / "text-run")
    config = json.loads((other / "model" / "config.json").read_text())
    config["preprocessing"] = {"modality": "text", "max_length": 32}
    (other / "model" / "config.json").write_text(json.dumps(config))
    result = compare(two_runs[0], other, "--out", tmp_path / "c.html")
    assert result.exit_code == 2 and "different tasks (image vs text" in result.output


def test_refuses_one_run_and_non_runs(two_runs, tmp_path):
    result = compare(two_runs[0], "--out", tmp_path / "c.html")
    assert result.exit_code == 2 and "at least two run directories" in result.output
    result = compare(two_runs[0], tmp_path, "--out", tmp_path / "c.html")
    assert result.exit_code == 2 and "no metrics.json" in result.output
    result = compare(two_runs[0], two_runs[0], "--out", tmp_path / "c.html")
    assert result.exit_code == 2 and "same run directory" in result.output
