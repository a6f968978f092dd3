"""Issue 30, item 8: damaged run and model folders (hypothesis). Any file of a finished run truncated,
deleted, replaced by garbage or by JSON of another type (the whole file or one key of it), then
``report``, ``compare``, ``eval``, ``predict`` and ``export`` through the CLI: exit 0 or 2, never a
traceback, and the damaged folder left exactly as it was (``report`` may redraw only its own outputs).

One tiny run is trained per session (the ``trained_image_model`` fixture) and copied per example.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from tlhub.cli import cli

REPORT_OUTPUTS = {"report.html", "confusion_matrix.png", "learning_curves.png", "samples.png", "samples.md"}
JSON_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-3, 10**6), st.floats(allow_nan=False),
                        st.text(max_size=8), st.lists(st.integers(0, 3), max_size=3),
                        st.dictionaries(st.text(max_size=4), st.integers(0, 3), max_size=2))
COMMANDS = ("report", "compare", "eval", "predict", "export")


def snapshot(folder: Path, ignore=frozenset()) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name not in ignore}


def damage(path: Path, action: str, data) -> None:
    raw = path.read_bytes()
    if action == "delete":
        path.unlink()
    elif action == "truncate":
        path.write_bytes(raw[: int(len(raw) * data.draw(st.floats(0, 0.99)))])
    elif action == "garbage":
        path.write_bytes(data.draw(st.binary(max_size=64)))
    elif action == "retype":  # the whole file: JSON of another type
        path.write_text(json.dumps(data.draw(JSON_VALUES)))
    elif action == "retype_key":  # one key of a JSON object (or of each JSON line): another type
        lines = raw.decode("utf-8").splitlines() if path.suffix == ".jsonl" else [raw.decode("utf-8")]
        out = []
        for line in lines:
            obj = json.loads(line) if line.strip() else None
            if isinstance(obj, dict) and obj:
                obj[data.draw(st.sampled_from(sorted(obj)))] = data.draw(JSON_VALUES)
            out.append(json.dumps(obj))
        path.write_text("\n".join(out) + "\n")


@pytest.fixture(scope="module")
def probe_image(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("probe") / "x.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (16, 16, 3), np.uint8)).save(path)
    return path


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_damaged_run_folders_give_exit_0_or_2_and_stay_unchanged(trained_image_model, probe_image, data):
    files = sorted(str(p.relative_to(trained_image_model)) for p in trained_image_model.rglob("*") if p.is_file())
    command = data.draw(st.sampled_from(COMMANDS), label="command")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        run = tmp / "run"
        shutil.copytree(trained_image_model, run)
        for name in data.draw(st.lists(st.sampled_from(files), min_size=1, max_size=2, unique=True), label="files"):
            json_file = name.endswith((".json", ".jsonl"))
            actions = ["delete", "truncate", "garbage"] + (["retype", "retype_key"] if json_file else [])
            damage(run / name, data.draw(st.sampled_from(actions), label=f"damage {name}"), data)
        before = snapshot(run, REPORT_OUTPUTS if command == "report" else frozenset())
        args = {"report": ["report", run],
                "compare": ["compare", run, trained_image_model, "--out", tmp / "c.html"],
                "eval": ["eval", run, "--data", "synthetic", "--out", tmp / "eval"],
                "predict": ["predict", run, probe_image],
                "export": ["export", run, "-o", tmp / "onnx"]}[command]
        res = CliRunner().invoke(cli, [str(a) for a in args])
        assert res.exit_code in (0, 2), f"{args}: exit {res.exit_code}\n{res.output}\n{res.exception!r}"
        assert "Traceback" not in res.output, res.output
        assert snapshot(run, REPORT_OUTPUTS if command == "report" else frozenset()) == before
        if res.exit_code == 2:
            assert res.output.strip().splitlines()[-1].startswith("error: "), res.output
