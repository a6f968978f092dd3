"""docs/example-plugin (tlhub-timm-example) installs as a real distribution, registers through its
entry point, trains a recipe with `tlhub run`, and passes its own tests.

The example is pip-installed (a real wheel build, ``--no-deps --no-build-isolation``) into a
private ``--target`` folder that only this test's subprocesses see through ``PYTHONPATH``: the
shared virtual environment - and tests running beside this one - never see the extra plugin,
and nothing is left behind if the test is killed.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from conftest import REPO

pytest.importorskip("timm")
EXAMPLE = REPO / "docs" / "example-plugin"


def tlhub_cmd() -> list[str]:
    script = Path(sys.executable).with_name("tlhub")
    return [str(script)] if script.exists() else [sys.executable, "-m", "tlhub"]


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    """(environment that sees the installed example, the copied source folder)."""
    root = tmp_path_factory.mktemp("example-plugin")
    src = root / "src"
    shutil.copytree(EXAMPLE, src, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build",
                                                                ".pytest_cache"))
    site = root / "site"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation",
                           "--no-index", "--quiet", "--target", str(site), str(src)],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, f"pip install of the example plugin failed:\n{proc.stdout}\n{proc.stderr}"
    assert (site / "tlhub_timm_example").is_dir()
    env = {k: v for k, v in os.environ.items() if k not in ("TLHUB_PLUGINS", "TLHUB_BLOCK_PLUGINS")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    env["HF_HUB_OFFLINE"] = "1"
    return env, src


def run(args, env, cwd=None, timeout=300):
    proc = subprocess.run(args, capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(map(str, args))} failed ({proc.returncode}):\n" \
                                 f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def test_listed_by_tlhub_plugins_and_list_backbones(example):
    env, _ = example
    lines = run(tlhub_cmd() + ["plugins"], env).splitlines()
    timm_line = [ln for ln in lines if ln.split()[0] == "timm-example"]
    assert timm_line, lines
    assert "tlhub-timm-example 0.1.0" in timm_line[0] and "register_backbones" in timm_line[0]
    assert "FAILED" not in "\n".join(lines)
    backbones = {ln.split()[0]: ln.split()[1] for ln in run(tlhub_cmd() + ["list", "backbones"], env).splitlines()}
    assert backbones.get("timm-example") == "timm-example"


def test_not_visible_outside(example):
    """The shared environment is untouched: this process does not see the example's entry point."""
    assert "timm-example" not in {ep.name for ep in metadata.entry_points(group="tlhub")}


def test_tlhub_run_with_the_example_backbone(example, tmp_path):
    env, _ = example
    if "synthetic" not in run(tlhub_cmd() + ["list", "data-sources"], env):
        pytest.skip("the tiny test plugin (tests/plugins/tlhub-tiny) is not installed")
    recipe = tmp_path / "timm_synthetic.toml"
    recipe.write_text(f"""# The example plugin's timm backbone on the tiny plugin's synthetic squares.
[model]
backbone = "timm-example"
weights = "none"
backbone_options = {{ model = "resnet10t" }}
head = "linear"

[data]
source = "synthetic"
image_size = 32
batch_size = 16

[[phases]]
name = "head"
epochs = 1
lr = 0.01
freeze = "frozen"

[[phases]]
name = "top"
epochs = 1
lr = 0.001
freeze = "top_k"
freeze_options = {{ k = 2 }}

[train]
threads = 1

[output]
dir = "{tmp_path / 'run'}"
""")
    out = run(tlhub_cmd() + ["run", str(recipe)], env, cwd=tmp_path)
    assert "test accuracy" in out
    assert "stem" in out and "blocks.4" in out  # the per-phase audit names timm's groups
    history = [json.loads(line) for line in (tmp_path / "run" / "history.jsonl").read_text().splitlines()]
    assert [h["phase"] for h in history] == ["head", "top"]
    assert 0.0 <= json.loads((tmp_path / "run" / "metrics.json").read_text())["accuracy"] <= 1.0


def test_the_example_plugins_own_tests_pass(example):
    env, src = example
    # the in-process training test is deselected: test_tlhub_run_with_the_example_backbone trains already
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", "-k", "not trains_in_process"]
    registered = any(ep.value == "tlhub.pytest_plugin" for ep in metadata.entry_points(group="pytest11"))
    if not registered:  # before tlhub declares its pytest11 entry point
        args += ["-p", "tlhub.pytest_plugin"]
    out = run(args + ["tests"], env, cwd=src)
    assert " passed" in out and "failed" not in out
