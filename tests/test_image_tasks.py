"""Multi-label and regression for image backbones, from a CSV of image files (the vision plugin's image-csv):
tiny pictures made here (coloured squares to tag, a grey level to score), the tiny CNN, seconds each."""
from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clichecks import invoke, refused

COLOURS = {"red": (220, 30, 30), "blue": (30, 30, 220), "green": (30, 200, 30)}


def tag_images(root: Path, n: int = 160, seed: int = 0) -> Path:
    """16x16 pictures with one to three coloured squares, each colour in its own corner: labelled by colour."""
    rng = random.Random(seed)
    (root / "img").mkdir(parents=True, exist_ok=True)
    rows = ["file,tags"]
    corners = {"red": (0, 0), "blue": (8, 8), "green": (0, 8)}
    for i in range(n):
        tags = [c for c in COLOURS if rng.random() < 0.5] or [rng.choice(list(COLOURS))]
        a = np.full((16, 16, 3), 235, dtype=np.uint8)
        for c in tags:
            y, x = corners[c]
            a[y:y + 8, x:x + 8] = COLOURS[c]
        Image.fromarray(a).save(root / "img" / f"{i}.png")
        rows.append(f"img/{i}.png,{'|'.join(tags)}")
    (root / "tags.csv").write_text("\n".join(rows) + "\n")
    return root / "tags.csv"


def grey_images(root: Path, n: int = 160, seed: int = 0) -> Path:
    """Grey pictures with a little noise; the target is the grey level on a 0-10 scale."""
    rng = np.random.default_rng(seed)
    (root / "grey").mkdir(parents=True, exist_ok=True)
    rows = ["image\tlevel"]
    for i in range(n):
        level = float(rng.uniform(0, 10))
        a = np.clip(level * 25 + rng.normal(0, 6, (16, 16, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(a).save(root / "grey" / f"{i}.png")
        rows.append(f"grey/{i}.png\t{level:.3f}")
    (root / "levels.tsv").write_text("\n".join(rows) + "\n")
    return root / "levels.tsv"


def recipe(root: Path, task: str, options: str, task_options: str = "", epochs: int = 8) -> Path:
    path = root / f"{task}.toml"
    path.write_text(f"""[model]
backbone = "tiny-cnn"
head = "linear"
task = "{task}"
task_options = {{ {task_options} }}
[data]
source = "image-csv"
options = {{ {options} }}
image_size = 16
batch_size = 16
[train]
threads = 1
[[phases]]
name = "all"
epochs = {epochs}
lr = 0.01
freeze = "none"
restore_best = true
[output]
dir = "{(root / ('run-' + task)).as_posix()}"
""")
    return path


@pytest.fixture(scope="module")
def tagged(tmp_path_factory):
    import tlhub
    root = tmp_path_factory.mktemp("image-tags")
    csv = tag_images(root)
    return root, tlhub.run(recipe(root, "multilabel", f'path = "{csv.as_posix()}", image_column = "file", '
                                  'label_column = "tags"', 'separator = "|"'), quiet=True)


def test_image_multilabel_learns_tags_and_predicts_with_the_stored_thresholds(tagged, tmp_path):
    import tlhub
    from tlhub.export.onnx import export_onnx
    from tlhub.use.onnx import OnnxPredictor
    root, res = tagged
    assert res.classes == ["blue", "green", "red"]
    assert res.metrics["macro_f1"] > 0.8, res.metrics
    config = json.loads((res.run_dir / "model" / "config.json").read_text())
    thresholds = config["task_state"]["thresholds"]
    assert config["task"] == "multilabel" and len(thresholds) == 3
    assert (res.run_dir / "per_label_f1.png").is_file()

    files = [str(root / "img" / f"{i}.png") for i in range(4)]
    want = [set(line.split(",")[1].split("|")) for line in (root / "tags.csv").read_text().splitlines()[1:5]]
    p = tlhub.load(res.run_dir)
    preds = p.predict(files)
    got = [set(q.labels) for q in preds]
    for q in preds:  # a label is predicted exactly when its probability reaches its stored threshold
        assert set(q.labels) == {c for c, t in zip(res.classes, thresholds) if q.probs[c] >= t}
    assert sum(g == w for g, w in zip(got, want)) >= 3, (got, want)
    exported = export_onnx(res.run_dir, tmp_path / "onnx")
    assert exported.max_diff < 1e-4
    assert [set(q.labels) for q in OnnxPredictor(exported.path).predict(files)] == got


def test_image_regression_scores_a_grey_level_on_its_own_scale(tmp_path):
    import tlhub
    tsv = grey_images(tmp_path)
    res = tlhub.run(recipe(tmp_path, "regression", f'path = "{tsv.as_posix()}", label_column = "level"'),
                    quiet=True)
    assert res.classes == ["level"] and res.metrics["pearson"] > 0.9, res.metrics
    assert (res.run_dir / "predicted_vs_true.png").is_file()
    out = invoke("predict", res.run_dir, tmp_path / "grey" / "0.png", tmp_path / "grey" / "1.png")
    assert out.exit_code == 0, out.output
    shown = [float(line.split()[-1]) for line in out.output.splitlines()[1:]]
    truth = [float(line.split("\t")[1]) for line in (tmp_path / "levels.tsv").read_text().splitlines()[1:3]]
    assert np.allclose(shown, truth, atol=2.0), (shown, truth)  # on the 0-10 scale, not standardised


@pytest.mark.parametrize("edit,needle", [
    (lambda t: t.replace("img/3.png", "img/missing.png"), "1 image file(s) not found"),
    (lambda t: t.replace("file,tags", "file,labels", 1), "has no column 'tags'"),
])
def test_bad_image_tables_exit_2_before_training(tmp_path, edit, needle):
    csv = tag_images(tmp_path, n=20)
    csv.write_text(edit(csv.read_text()))
    path = recipe(tmp_path, "multilabel", f'path = "{csv.as_posix()}", image_column = "file", label_column = "tags"')
    refused(invoke("run", path), needle)
    assert not (tmp_path / "run-multilabel").exists()
