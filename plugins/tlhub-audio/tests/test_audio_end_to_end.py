"""The audio modality through every tlhub surface, on tiny synthetic tones: the contract kit, validate, show --plan,
run (frozen-prefix cache), predict on a .wav and a folder (PyTorch and ONNX, the ONNX one without torch), eval,
export --format onnx with parity, report.html thumbnails, freeze = "auto", and refusals with exit status 2."""
from __future__ import annotations

import base64
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from audio_tones import write_tones

import tlhub
from tlhub.cli import cli
from tlhub.testing import check_data_source

pytest.importorskip("tlhub_vision")  # efficientnet_lite0, the backbone the spectrograms feed
PARITY = 1e-4
RECIPE = """[model]
backbone = "efficientnet_lite0"
head = "linear"
[data]
source = "audio-folders"
options = {{ path = "tones" }}
image_size = 32
batch_size = 8
val_split = 0.25
test_split = 0.25
[data.preprocess]
n_mels = 32
clip_seconds = 0.5
[[phases]]
name = "head"
epochs = {head_epochs}
lr = 0.02
freeze = "{freeze}"
[[phases]]
name = "top"
epochs = 1
lr = 0.001
freeze = "top_k"
freeze_options = {{ k = 2 }}
[train]
threads = 1
[output]
dir = "{out}"
"""


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def recipe(folder: Path, freeze: str = "frozen", head_epochs: int = 4) -> Path:
    path = folder / "audio.toml"
    path.write_text(RECIPE.format(freeze=freeze, head_epochs=head_epochs, out=(folder / "run").as_posix()))
    return path


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("audio-run")
    write_tones(tmp / "tones", per_class=8)
    tlhub.run(recipe(tmp), quiet=True)
    return tmp / "run"


def test_contract_kit_accepts_the_source(tmp_path):
    write_tones(tmp_path / "d", per_class=3, splits=("train", "val"))
    data = check_data_source("audio-folders", {"path": "d"}, tmp_path=tmp_path)
    assert data.classes == ["high", "low", "mid"] and len(data.val) == 9


def test_validate_and_show_plan(tmp_path):
    write_tones(tmp_path / "tones", per_class=2)
    path = recipe(tmp_path)
    res = invoke("validate", path)
    assert res.exit_code == 0, res.output
    res = invoke("show", path, "--plan")
    assert res.exit_code == 0, res.output
    assert "cache: the state after 7 of 9 frozen groups" in res.output


def test_bad_preprocess_options_are_refused_before_training(tmp_path):
    write_tones(tmp_path / "tones", per_class=4)
    path = recipe(tmp_path)
    path.write_text(path.read_text().replace("n_mels = 32", "n_mels = 2\nsample_rate = 100\nhop_sec = 3"))
    res = invoke("validate", path)
    assert res.exit_code == 2
    for words in ("data.preprocess.n_mels: must be in [8, 256]", "data.preprocess.sample_rate: must be in",
                  "data.preprocess.hop_sec: unknown option"):
        assert words in res.output
    assert "Traceback" not in res.output
    # an image augmentation of sound: the modality's data_problems, reported by validate and before a run starts
    path = recipe(tmp_path)
    path.write_text(path.read_text() + "\n[data.augment]\nflip = true\n")
    res = invoke("validate", path)
    assert res.exit_code == 2 and "data.augment: audio: [data.augment] is for images" in res.output, res.output
    res = invoke("run", path)
    assert res.exit_code == 2 and "[data.augment] is for images" in res.output
    assert not (tmp_path / "run").exists()  # refused by validation, before the run folder is made


def test_run_writes_an_audio_model_and_report(run_dir):
    config = json.loads((run_dir / "model" / "config.json").read_text())
    prep = config["preprocessing"]
    assert prep["modality"] == "audio" and prep["n_mels"] == 32 and prep["size"] == 32
    assert prep["clip_seconds"] == 0.5 and len(prep["mean"]) == 3
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert 0.0 <= metrics["accuracy"] <= 1.0
    log = (run_dir / "run.log").read_text()
    assert "cache: pooled features" in log and "cache: the state after 7 of 9 frozen groups" in log
    html = (run_dir / "report.html").read_text()
    section = html[html.index("Worst predictions"):]
    thumbs = re.findall(r'<img src="data:image/png;base64,([^"]+)"', section)
    assert len(thumbs) >= 3
    # spectrogram thumbnails in the plugin's colour scale (dark blue .. yellow), not grey images
    rgb = np.asarray(Image.open(io.BytesIO(base64.b64decode(thumbs[0]))).convert("RGB")).reshape(-1, 3)
    assert (rgb[:, 2].astype(int) - rgb[:, 1]).max() > 50
    assert (run_dir / "samples.png").is_file()


def test_predict_a_wav_and_a_folder(run_dir):
    tones = run_dir.parent / "tones"
    res = invoke("predict", run_dir, tones / "low" / "low0.wav", tones / "mid", "--json")
    assert res.exit_code == 0, res.output
    got = json.loads(res.output)
    assert len(got) == 9 and {g["label"] for g in got} <= {"high", "low", "mid"}
    predictor = tlhub.load(run_dir)
    probs = predictor.predict_proba([str(tones / "low" / "low0.wav")])
    assert probs.shape == (1, 3) and abs(float(probs.sum()) - 1) < 1e-5
    assert predictor.predict(str(tones / "low" / "low0.wav"))[0].label == got[0]["label"]
    res = invoke("predict", run_dir, tones / "nope.wav")
    assert res.exit_code == 2 and "no such sound file" in res.output
    bad = run_dir.parent / "bad.wav"
    bad.write_bytes(b"RIFF not really")
    res = invoke("predict", run_dir, bad)
    assert res.exit_code == 2 and "not a sound file" in res.output and "Traceback" not in res.output


def test_eval_scores_the_source(run_dir, tmp_path):
    res = invoke("eval", run_dir, "--data", "audio-folders", "-o", f"path={run_dir.parent / 'tones'}",
                 "--split", "all", "--out", tmp_path / "ev")
    assert res.exit_code == 0, res.output
    assert "audio-folders (all, 24 examples): accuracy" in res.output
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert 0.0 <= metrics["accuracy"] <= 1.0


def test_onnx_export_parity_and_predict_without_torch(run_dir):
    res = invoke("export", run_dir, "--format", "onnx")
    assert res.exit_code == 0, res.output
    assert "max output difference" in res.output
    onnx_file = run_dir / "onnx" / "model.onnx"
    tones = run_dir.parent / "tones"
    files = sorted(str(f) for f in tones.rglob("*.wav"))
    expected = tlhub.load(run_dir).predict_proba(files)
    code = ("import json, sys\nfrom tlhub.cli import cli\n"
            "try:\n    cli(sys.argv[1:], standalone_mode=False)\n"
            "finally:\n    print(json.dumps({'torch': 'torch' in sys.modules}), file=sys.stderr)\n")
    proc = subprocess.run([sys.executable, "-c", code, "predict", str(onnx_file), *files, "--json"],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stderr.strip().splitlines()[-1]) == {"torch": False}
    got = json.loads(proc.stdout)
    classes = json.loads((run_dir / "model" / "config.json").read_text())["classes"]
    onnx_probs = np.array([[g["probs"][c] for c in classes] for g in got])
    assert np.abs(onnx_probs - expected).max() < PARITY


def test_freeze_auto_searches_on_spectrograms(tmp_path):
    write_tones(tmp_path / "tones", per_class=4)
    result = tlhub.run(recipe(tmp_path, freeze="auto", head_epochs=1),
                       ["phases.0.auto_budget=1.5", "phases.0.auto_minutes=0.2"], quiet=True)  # a short search
    search = json.loads((result.run_dir / "auto_search.json").read_text())
    assert search["trials"] and 0.0 <= result.metrics["accuracy"] <= 1.0
