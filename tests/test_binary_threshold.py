"""Two classes with ``task_options.threshold = "f1"``: the second class's decision threshold tuned on the
validation split (Platt-calibrated, half the best F1), stored with the model and used by predict, eval,
ONNX and the CLI; refused before training where it cannot apply."""
from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest

from clichecks import invoke, refused
from taskruns import LABELS, WORDS, write_recipe

PAIRS = [("great movie fun", "bad plot actor"), ("plot actor film", "story film movie"), ("fun bad", "great")]


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _f1(positive, decided):
    tp = (decided & positive).sum()
    return 2 * tp / (decided.sum() + positive.sum())


def test_the_threshold_is_half_the_best_f1_for_calibrated_scores():
    from tlhub.tasks.classification import f1_threshold
    rng = np.random.default_rng(0)
    score = rng.normal(0.8, 2.0, 20000)
    positive = rng.random(20000) < _sigmoid(score)  # the scores are the true log-odds: calibrated
    best = max(_f1(positive, score >= c) for c in np.quantile(score, np.linspace(0.01, 0.99, 197)))
    assert f1_threshold(score, positive) == pytest.approx(best / 2, abs=0.02)
    assert best / 2 < 0.49  # so the rule is not the argmax here


def test_the_threshold_follows_the_calibration_not_the_models_own_scale():
    from tlhub.tasks.classification import f1_threshold
    rng = np.random.default_rng(1)
    true = rng.normal(0.5, 2.0, 5000)
    positive = rng.random(5000) < _sigmoid(true)
    # an over-confident model that also leans to the first class: its 0.5 cut misses many positives
    shifted = 3 * true - 4
    thr = f1_threshold(shifted, positive)
    assert thr < 0.2
    # the decisions are those of the calibrated scores' threshold: the same examples cross it
    same = f1_threshold(true, positive)
    decided, expected = _sigmoid(shifted) >= thr, _sigmoid(true) >= same
    assert (decided != expected).mean() < 0.01


@pytest.mark.parametrize("score,positive", [
    (np.array([0.1, 2.0, -1.0]), np.array([True, True, True])),       # one class only
    (np.array([2.0, 1.0, -1.0, -2.0]), np.array([False, False, True, True])),  # ranked the wrong way
])
def test_the_argmax_is_kept_when_validation_cannot_calibrate(score, positive):
    from tlhub.tasks.classification import f1_threshold
    assert f1_threshold(score, positive) == 0.5


def _binary_pairs(root: Path, n: int = 160, seed: int = 0) -> Path:
    """Pairs labelled 1 when they hold at least two LABELS words together, a fifth of the labels flipped."""
    rng = random.Random(seed)
    lines = ["s1\ts2\tsame"]
    for _ in range(n):
        a, b = rng.sample(WORDS, 3), rng.sample(WORDS, 3)
        label = int(sum(w in LABELS for w in a + b) >= 2) ^ (rng.random() < 0.2)
        lines.append(f"{' '.join(a)}\t{' '.join(b)}\t{label}")
    path = root / "bin.tsv"
    path.write_text("\n".join(lines) + "\n")
    return path


OPTIONS = 'path = "bin.tsv", text_column = "s1", text_pair = "s2", label_column = "same"'


@pytest.fixture(scope="module")
def binary_run(tmp_path_factory):
    import tlhub
    root = tmp_path_factory.mktemp("bin")
    _binary_pairs(root)
    recipe = write_recipe(root, "classification", "tsv", OPTIONS, 'threshold = "f1"', epochs=3)
    return root, tlhub.run(recipe, quiet=True)


def test_the_tuned_threshold_is_stored_and_every_predictor_decides_by_it(binary_run, tmp_path):
    import tlhub
    from tlhub.export.onnx import export_onnx
    from tlhub.use.evaluate import evaluate_source
    from tlhub.use.onnx import OnnxPredictor
    root, res = binary_run
    m = res.metrics
    config = json.loads((res.run_dir / "model" / "config.json").read_text())
    thr = config["task_state"]["threshold"]
    assert config["task_options"]["threshold"] == "f1" and 0 < thr < 1 and thr != 0.5
    assert m["threshold"] == thr and m["positive_class"] == "1" and 0 <= m["positive_f1"] <= 1
    assert f"threshold {thr}" in (res.run_dir / "run.log").read_text()

    p = tlhub.load(res.run_dir)
    probs, preds = p.predict_proba(PAIRS), p.predict(PAIRS)
    assert [q.label for q in preds] == ["1" if x >= thr else "0" for x in probs[:, 1]]
    again = evaluate_source(p, "tsv", {"path": str(root / "bin.tsv"), "text_column": "s1", "text_pair": "s2",
                                       "label_column": "same"})
    assert again["positive_f1"] == pytest.approx(m["positive_f1"]) and again["accuracy"] == pytest.approx(m["accuracy"])
    assert again["confusion_matrix"] == m["confusion_matrix"]

    # a threshold of 0.9999 stored by hand: every surface now says "0" for all but the surest pairs
    moved = tmp_path / "model"
    shutil.copytree(res.run_dir / "model", moved)
    config["task_state"]["threshold"] = 0.9999
    (moved / "config.json").write_text(json.dumps(config))
    strict = tlhub.load(moved)
    expected = ["1" if x >= 0.9999 else "0" for x in probs[:, 1]]
    assert [q.label for q in strict.predict(PAIRS)] == expected and "0" in expected
    exported = export_onnx(moved, tmp_path / "onnx")
    assert exported.max_diff < 1e-4
    assert [q.label for q in OnnxPredictor(exported.path).predict(PAIRS)] == expected
    out = invoke("predict", moved, *("\t".join(pair) for pair in PAIRS))
    assert out.exit_code == 0, out.output
    assert [line.split()[-2] for line in out.output.splitlines()[1:]] == expected, out.output
    scored = evaluate_source(strict, "tsv", {"path": str(root / "bin.tsv"), "text_column": "s1", "text_pair": "s2",
                                             "label_column": "same"})
    assert sum(scored["confusion_matrix"][0]) == sum(m["confusion_matrix"][0])  # the same test split
    assert scored["confusion_matrix"][1][1] <= m["confusion_matrix"][1][1]


def test_the_threshold_option_is_refused_before_training_where_it_cannot_apply(tmp_path):
    rows = "s1\ts2\tsame\n" + "".join(f"great movie {i}\tbad film\t{i % 3}\n" for i in range(12))
    (tmp_path / "bin.tsv").write_text(rows)
    recipe = write_recipe(tmp_path, "classification", "tsv", OPTIONS, 'threshold = "f1"', epochs=1)
    res = invoke("run", recipe)
    refused(res, "threshold = 'f1'", "two classes", "has 3")
    assert "epoch" not in res.output
    assert invoke("validate", recipe).exit_code == 0  # the recipe alone is fine: only its data is not
    refused(invoke("validate", "--data", recipe), "threshold = 'f1'", "two classes", "has 3")
    recipe = write_recipe(tmp_path, "classification", "tsv", OPTIONS, 'threshold = "best"', epochs=1)
    refused(invoke("run", recipe), "threshold", "'argmax', 'f1'")


def test_only_tasks_that_tune_make_the_trainer_predict_validation_again():
    from tlhub.plugins import get_registry
    registry = get_registry()
    classification = registry.task("classification")
    assert not classification.tunes and classification.configured({"threshold": "f1"}).tunes
    assert registry.task("multilabel").tunes and not registry.task("regression").tunes


def test_validate_data_loads_the_data_as_the_run_does(tmp_path):
    _binary_pairs(tmp_path, n=40)
    recipe = write_recipe(tmp_path, "classification", "tsv", OPTIONS, 'threshold = "f1"', epochs=1)
    out = invoke("validate", "--data", recipe)
    assert out.exit_code == 0, out.output
    assert "ok (data: 2 classes, train " in out.output and "/ test " in out.output
    missing = write_recipe(tmp_path, "classification", "tsv", OPTIONS.replace('"s2"', '"s3"'), "", epochs=1)
    assert invoke("validate", missing).exit_code == 0
    refused(invoke("validate", "--data", missing), "s3")
