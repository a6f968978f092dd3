"""ONNX export: ``tlhub export RUN --format onnx``, parity with PyTorch on the test split of tiny image
and text runs (ONNX Runtime), metadata, and ``tlhub predict`` on the ONNX model without torch."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import tlhub
from tlhub.cli import cli

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
REPO = Path(__file__).resolve().parents[1]
PARITY = 1e-4


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def export(run_dir: Path) -> Path:
    res = invoke("export", run_dir, "--format", "onnx")
    assert res.exit_code == 0, res.output
    assert "max output difference" in res.output
    return run_dir / "onnx" / "model.onnx"


def metadata(path: Path) -> dict:
    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


def parity(run_dir: Path, onnx_file: Path, source: str, options: dict, base: Path) -> tuple[np.ndarray, list]:
    """(ONNX Runtime minus PyTorch probabilities on the run's test split, the split's items)."""
    from tlhub.use.evaluate import load_eval_split
    from tlhub.use.onnx import OnnxPredictor
    predictor = tlhub.load(run_dir)
    split, _ = load_eval_split(predictor, source, options, "test", base_dir=base, say=lambda m: None)
    items = list(split.items)
    assert len(items) >= 4
    torch_probs = predictor.predict_proba(items, batch_size=64)
    onnx_probs = OnnxPredictor(onnx_file).predict_proba(items, batch_size=3)  # other batch sizes than exported
    assert onnx_probs.shape == torch_probs.shape
    return onnx_probs - torch_probs, items


@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("onnx-image")
    recipe = tmp / "tiny.toml"
    recipe.write_text((REPO / "tests" / "recipes" / "tiny.toml").read_text() + f'\n[output]\ndir = "{tmp / "run"}"\n')
    tlhub.run(recipe, ["phases.0.epochs=1", "phases.1.epochs=1", "train.threads=1"], quiet=True)
    return tmp / "run"


def test_image_model_matches_pytorch_on_the_test_split(image_run):
    path = export(image_run)
    meta = metadata(path)
    config = json.loads((image_run / "model" / "config.json").read_text())
    assert json.loads(meta["tlhub.classes"]) == config["classes"]
    prep = json.loads(meta["tlhub.preprocessing"])
    assert prep["modality"] == "image" and prep["image_size"] == 16 and prep["mean"] == config["preprocessing"]["mean"]
    assert json.loads(meta["tlhub.config"])["backbone"] == "tiny-cnn"
    graph = onnx.load(str(path)).graph
    assert [i.name for i in graph.input] == ["pixel_values"]
    assert graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"  # dynamic batch axis
    diff, _ = parity(image_run, path, "synthetic", {}, image_run)
    assert np.abs(diff).max() < PARITY


def test_predict_with_the_onnx_model_imports_no_torch(image_run, tmp_path):
    from PIL import Image
    path = export(image_run)
    for i in range(3):
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (20, 20, 3)).astype(np.uint8)).save(tmp_path / f"{i}.png")
    expected = json.loads(invoke("predict", image_run, tmp_path, "--json").output)  # PyTorch
    code = ("import json, sys\nfrom tlhub.cli import cli\n"
            "try:\n    cli(sys.argv[1:], standalone_mode=False)\n"
            "finally:\n    print(json.dumps({'torch': 'torch' in sys.modules}), file=sys.stderr)\n")
    for target in (path, path.parent):  # the file, or the folder holding it
        proc = subprocess.run([sys.executable, "-c", code, "predict", str(target), str(tmp_path), "--json"],
                              capture_output=True, text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stderr.strip().splitlines()[-1]) == {"torch": False}
        got = json.loads(proc.stdout)
        assert [g["label"] for g in got] == [e["label"] for e in expected]
        assert max(abs(g["prob"] - e["prob"]) for g, e in zip(got, expected)) < PARITY


def test_bad_onnx_inputs_are_user_errors(image_run, tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    res = invoke("predict", junk, tmp_path)
    assert res.exit_code == 2 and "not a readable ONNX model" in res.output
    res = invoke("predict", tmp_path / "missing.onnx", tmp_path)
    assert res.exit_code == 2 and "no such ONNX file" in res.output
    plain = tmp_path / "plain.onnx"  # a valid ONNX model that tlhub did not write
    proto = onnx.load(str(export(image_run)))
    del proto.metadata_props[:]
    onnx.save(proto, str(plain))
    res = invoke("predict", plain, tmp_path)
    assert res.exit_code == 2 and "without tlhub metadata" in res.output
    res = invoke("export", tmp_path / "no-run")
    assert res.exit_code == 2 and "no such run directory" in res.output


def test_text_model_matches_pytorch_on_the_test_split(tmp_path):
    pytest.importorskip("transformers")
    from tlhub_text.testing import WORDS, save_tiny_model
    folder = save_tiny_model(tmp_path / "tiny-bert")
    rng = np.random.default_rng(0)
    good, bad = ["great", "good", "fun", "loved", "best"], ["bad", "awful", "dull", "hated", "worst"]
    rows = ["text,label"]
    for i in range(60):
        label = i % 2
        words = list(rng.choice(WORDS[:12], size=int(rng.integers(2, 12)))) + [rng.choice((good, bad)[label])]
        rows.append(f"{' '.join(words)},{('neg', 'pos')[1 - label]}")
    (tmp_path / "reviews.csv").write_text("\n".join(rows) + "\n")
    recipe = tmp_path / "text.toml"
    recipe.write_text(f'''
[model]
backbone = "hf"
backbone_options = {{ model = "{folder}", max_length = 16 }}

[data]
source = "csv"
options = {{ path = "{tmp_path / 'reviews.csv'}" }}
batch_size = 8

[[phases]]
name = "all"
epochs = 1
lr = 0.001

[train]
threads = 1

[output]
dir = "{tmp_path / 'run'}"
''')
    tlhub.run(recipe, quiet=True)
    path = export(tmp_path / "run")
    graph = onnx.load(str(path)).graph
    assert [i.name for i in graph.input] == ["input_ids", "attention_mask"]
    assert [d.dim_param for d in graph.input[0].type.tensor_type.shape.dim] == ["batch", "sequence"]
    assert (path.parent / "tokenizer").is_dir()
    prep = json.loads(metadata(path)["tlhub.preprocessing"])
    assert prep["modality"] == "text" and prep["max_length"] == 16
    diff, items = parity(tmp_path / "run", path, "csv", {"path": str(tmp_path / "reviews.csv")}, tmp_path)
    assert len({len(t.split()) for t in items}) > 1  # texts of several lengths: the sequence axis is dynamic
    assert np.abs(diff).max() < PARITY
    expected = json.loads(invoke("predict", tmp_path / "run", "great fun", "awful and dull", "--json").output)
    res = invoke("predict", path.parent, "great fun", "awful and dull", "--json")  # the exported folder
    assert res.exit_code == 0, res.output
    got = json.loads(res.output)
    assert [g["label"] for g in got] == [e["label"] for e in expected]
    assert max(abs(g["prob"] - e["prob"]) for g, e in zip(got, expected)) < PARITY
