"""Multi-label and regression (with sentence pairs) end to end on tiny data: train, thresholds and target
scale stored and used by predict / eval / ONNX, and bad labels refused before training (exit 2)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from clichecks import invoke, refused
from taskruns import multilabel_data, pair_data, write_recipe

PAIRS = [("great movie fun", "great movie fun"), ("plot actor film", "great bad fun")]


@pytest.fixture(scope="module")
def multilabel_run(tmp_path_factory):
    import tlhub
    root = tmp_path_factory.mktemp("ml")
    multilabel_data(root)
    recipe = write_recipe(root, "multilabel", "tsv", 'path = "ml.tsv", label_column = "labels"', "pos_weight = true")
    return root, tlhub.run(recipe, quiet=True)


@pytest.fixture(scope="module")
def regression_run(tmp_path_factory):
    import tlhub
    root = tmp_path_factory.mktemp("rg")
    pair_data(root)
    recipe = write_recipe(root, "regression", "tsv", 'path = "pairs.tsv", text_column = "s1", text_pair = "s2", '
                                                    'label_column = "score"', 'loss = "huber"')
    return root, tlhub.run(recipe, quiet=True)


def test_multilabel_trains_tunes_thresholds_and_every_predictor_uses_them(multilabel_run, tmp_path):
    import tlhub
    from tlhub.export.onnx import export_onnx
    from tlhub.use.evaluate import evaluate_source
    from tlhub.use.onnx import OnnxPredictor
    root, res = multilabel_run
    m = res.metrics
    assert res.classes == ["bad", "fun", "great", "none"]
    assert m["macro_f1"] > 0.7 and 0 <= m["micro_f1"] <= 1 and m["mean_average_precision"] > 0.7
    assert set(m["per_label"]) == set(res.classes) and all(v["support"] >= 0 for v in m["per_label"].values())
    # the report shows the task's own picture and per-label table instead of a confusion matrix
    assert m["pictures"] == ["per_label_f1.png"] and (res.run_dir / "per_label_f1.png").stat().st_size > 5000
    page = (res.run_dir / "report.html").read_text()
    assert "per_label_f1.png" in page and "Per label, worst f1 first" in page and "no confusion matrix" not in page
    history = [json.loads(line) for line in (res.run_dir / "history.jsonl").read_text().splitlines()]
    assert "val_macro_f1" in history[0] and "train_exact_match" in history[0] and "val_accuracy" not in history[0]
    config = json.loads((res.run_dir / "model" / "config.json").read_text())
    thresholds = config["task_state"]["thresholds"]
    assert config["task"] == "multilabel" and len(thresholds) == 4 and thresholds != [0.5] * 4  # tuned on val
    assert len(config["task_state"]["pos_weight"]) == 4 and config["task_options"]["pos_weight"] is True
    assert [it["index"] for it in json.loads((res.run_dir / "samples.json").read_text())["items"]]

    p = tlhub.load(res.run_dir)
    texts = ["great movie fun", "plot actor film", "bad story great"]
    probs = p.predict_proba(texts)
    preds = p.predict(texts)
    for row, pred in zip(probs, preds):  # the stored thresholds decide, not 0.5
        assert pred.labels == [c for c, x, t in zip(res.classes, row, thresholds) if x >= t]
        assert pred.to_dict()["labels"] == pred.labels
    # eval on the training source carves the run's test split again: the same scores
    again = evaluate_source(p, "tsv", {"path": str(root / "ml.tsv"), "label_column": "labels"})
    assert again["macro_f1"] == pytest.approx(m["macro_f1"], rel=1e-5)
    assert again["test_examples"] == m["test_examples"]

    exported = export_onnx(res.run_dir, tmp_path / "onnx")
    assert exported.max_diff < 1e-4
    onnx = OnnxPredictor(exported.path)
    assert [q.labels for q in onnx.predict(texts)] == [q.labels for q in preds]
    np.testing.assert_allclose(onnx.predict_proba(texts), probs, atol=1e-4)


def test_regression_on_sentence_pairs_maps_outputs_back_with_the_stored_scale(regression_run, tmp_path):
    import torch

    import tlhub
    from tlhub.export.onnx import export_onnx
    from tlhub.use.evaluate import evaluate_source
    from tlhub.use.onnx import OnnxPredictor
    root, res = regression_run
    m = res.metrics
    assert res.classes == ["score"]
    assert m["pearson"] > 0.8 and m["spearman"] > 0.8 and m["rmse"] >= m["mae"] > 0
    assert m["pictures"] == ["predicted_vs_true.png"] and (res.run_dir / "predicted_vs_true.png").stat().st_size > 5000
    page = (res.run_dir / "report.html").read_text()
    assert "predicted_vs_true.png" in page and "no confusion matrix" not in page
    assert "1 target from" in page and "1 classes" not in page  # the header counts what the task predicts
    config = json.loads((res.run_dir / "model" / "config.json").read_text())
    state = config["task_state"]
    assert config["task"] == "regression" and 1 < state["mean"][0] < 5 and state["std"][0] > 0.5

    p = tlhub.load(res.run_dir)
    preds = p.predict(PAIRS)
    with torch.no_grad():  # the head's raw output is standardised: the predictor maps it back
        raw = p.model(p.inputs.batch(PAIRS, "cpu")).float().numpy()[:, 0]
    np.testing.assert_allclose([q.value for q in preds], raw * state["std"][0] + state["mean"][0], rtol=1e-5)
    assert preds[0].to_dict() == {"value": preds[0].value, "values": {"score": preds[0].value}}
    # pairs are tokenized as one input with segment ids (0: first sentence, 1: second), as in training
    batch = p.inputs.batch(PAIRS, "cpu")
    assert config["preprocessing"]["pairs"] is True and set(batch) == {"input_ids", "attention_mask", "token_type_ids"}
    types = batch["token_type_ids"][0][batch["attention_mask"][0].bool()].tolist()
    assert types[0] == 0 and types[-1] == 1 and types == sorted(types)
    # swapping a pair's sentences is another input
    assert p.predict([PAIRS[1][::-1]])[0].value != pytest.approx(preds[1].value, abs=1e-7)
    again = evaluate_source(p, "tsv", {"path": str(root / "pairs.tsv"), "text_column": "s1", "text_pair": "s2",
                                       "label_column": "score"})
    assert again["pearson"] == pytest.approx(m["pearson"], rel=1e-5)

    exported = export_onnx(res.run_dir, tmp_path / "onnx")
    assert exported.max_diff < 1e-4
    values = [q.value for q in OnnxPredictor(exported.path).predict(PAIRS)]
    np.testing.assert_allclose(values, [q.value for q in preds], rtol=1e-4)

    out = invoke("predict", res.run_dir, "great movie fun\tgreat movie fun", "plot actor film\tgreat bad fun")
    assert out.exit_code == 0, out.output
    assert out.output.splitlines()[0].split() == ["input", "score"]  # the target's name heads its column
    shown = [float(line.split()[-1]) for line in out.output.splitlines()[1:]]
    np.testing.assert_allclose(shown, [q.value for q in preds], rtol=1e-3)


def _bad(tmp_path, task, rows, options, task_options="", suffix="tsv"):
    (tmp_path / f"d.{suffix}").write_text(rows)
    recipe = write_recipe(tmp_path, task, suffix, f'path = "d.{suffix}", ' + options, task_options, epochs=1)
    return invoke("run", recipe)


ML = "text\tlabels\n" + "".join(f"great movie {i}\tgreat|fun\nbad film {i}\tbad\n" for i in range(6))
RG = "s1\ts2\tscore\n" + "".join(f"great movie\tbad film\t{i}.5\n" for i in range(10))


@pytest.mark.parametrize("task,rows,options,task_options,needles", [
    ("multilabel", ML.replace("great|fun", "0,7"), 'label_column = "labels"', 'label_names = ["a", "b"]',
     ["label index 7 is out of range", "2 names"]),
    ("multilabel", ML.replace("bad\n", "boring\n", 1), 'label_column = "labels"',
     'label_names = ["great", "fun", "bad"]', ["'boring'", "not one of the 3 labels"]),
    ("multilabel", ML, 'label_column = "labels", val_path = "v.tsv"', "", ["no train examples: boring"]),
    ("regression", RG.replace("3.5", "three"), 'text_column = "s1", label_column = "score"', "",
     ["'three'", "finite numbers"]),
    ("regression", RG.replace("3.5", "nan"), 'text_column = "s1", label_column = "score"', "", ["'nan'"]),
    ("regression", RG, 'text_column = "s1", text_pair = "s3", label_column = "score"', "",
     ["text_pair", "no column 's3'"]),
    ("regression", RG.replace("bad film\t4.5", "\t4.5"), 'text_column = "s1", text_pair = "s2", '
     'label_column = "score"', "", ["text_pair column 's2' is empty", "line 6"]),
])
def test_bad_labels_are_refused_before_training(tmp_path, task, rows, options, task_options, needles):
    (tmp_path / "v.tsv").write_text("text\tlabels\nfun plot\tboring\n")
    res = _bad(tmp_path, task, rows, options, task_options)
    refused(res, *needles)
    assert "epoch" not in res.output


def test_an_empty_label_set_is_refused_unless_allowed(tmp_path):
    rows = "".join(json.dumps({"text": f"great movie {i}", "label": ["great"] if i % 3 else []}) + "\n"
                   for i in range(12))
    refused(_bad(tmp_path, "multilabel", rows, 'text_column = "text"', suffix="jsonl"), "empty label set",
            "allow_empty")


def test_multilabel_carving_keeps_a_rare_label_on_both_sides():
    from tlhub.interfaces import Split
    from tlhub.tasks.multilabel import MultiLabel
    y = np.zeros((40, 3), dtype=np.float32)
    y[:, 0] = 1
    y[[3, 17], 1] = 1          # a label of two examples: one each side
    y[[5, 6, 7, 8], 2] = 1
    rest, held = MultiLabel().carve(Split(list(range(40)), list(y)), 0.25, seed=0)
    assert len(rest) + len(held) == 40 and not set(rest.items) & set(held.items)
    for part in (rest, held):
        assert np.stack(part.labels)[:, 1].sum() == 1
    assert np.stack(held.labels)[:, 2].sum() == 1 and 8 <= len(held) <= 12


def test_each_labels_threshold_is_tuned_by_the_two_class_rule():
    from tlhub.tasks.common import f1_threshold
    from tlhub.tasks.multilabel import tune_thresholds
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 2, (400, 3))
    truth = np.stack([rng.random(400) < 1 / (1 + np.exp(-(2 * logits[:, 0] + 1))),  # under-confident
                      rng.random(400) < 1 / (1 + np.exp(-logits[:, 1])),
                      np.zeros(400, dtype=bool)], axis=1)                           # never true here
    thr = tune_thresholds(logits, truth)
    assert thr[:2] == [f1_threshold(logits[:, j], truth[:, j]) for j in range(2)] and thr[2] == 0.5
    assert thr[0] != thr[1]  # each label's own calibration


def test_compare_refuses_runs_of_different_tasks(multilabel_run, regression_run):
    res = invoke("compare", multilabel_run[1].run_dir, regression_run[1].run_dir)
    refused(res, "different tasks (multilabel vs regression)")


def _register_scores(register):
    """A third party's task, registered through the same hook as the built-ins: regression under its own name."""
    from tlhub.task import TaskSpec
    from tlhub.tasks.regression import Regression

    class Scores(Regression):
        name = "scores"
    register(TaskSpec("scores", "similarity scores", Scores))


def test_a_plugins_task_reads_labels_and_carves_splits(tmp_path):
    import dataclasses
    import types
    from pathlib import Path

    from tlhub.data.splits import make_splits
    from tlhub.hookspecs import hookimpl
    from tlhub.interfaces import DataContext
    from tlhub.plugins.manager import make_registry
    from tlhub.recipe import load_and_validate
    plugin = types.ModuleType("tlhub_scores")
    plugin.register_tasks = hookimpl(_register_scores)
    registry = make_registry(extra=[plugin])
    assert registry.get("tasks", "scores").summary == "similarity scores"
    pair_data(tmp_path)
    recipe = load_and_validate(write_recipe(tmp_path, "regression", "tsv", 'path = "pairs.tsv", text_column = "s1", '
                                            'text_pair = "s2", label_column = "score"'))
    recipe = dataclasses.replace(recipe, model=dataclasses.replace(recipe.model, task="scores"))  # this registry's
    splits = make_splits(recipe, registry, DataContext(Path(tmp_path), 0, log=lambda m: None))
    assert splits.task.name == "scores" and splits.classes == ["score"]
    assert isinstance(splits.train.items[0], tuple) and splits.train.labels[0].dtype == np.float32
    assert len(splits.train) + len(splits.val) + len(splits.test) == 120
    assert splits.task.state["std"][0] > 0  # fitted on the training split


def test_counts_are_told_in_the_tasks_word():
    from tlhub.task import count_outputs
    assert [count_outputs(2, "classes"), count_outputs(1, "classes"), count_outputs(1, "targets"),
            count_outputs(28, "labels"), count_outputs(1, "audio")] == ["2 classes", "1 class", "1 target",
                                                                      "28 labels", "1 audio"]


def test_label_forms_each_task_reads():
    import torch

    from tlhub.errors import UserError
    from tlhub.interfaces import SourceData, Split
    from tlhub.tasks.multilabel import MultiLabel
    from tlhub.tasks.regression import Regression
    # multi-label: 0/1 columns, JSON lists, integer ids named by label_names
    cols = MultiLabel().encode(SourceData(["joy", "anger"], Split(["a", "b"], [("1", "0"), ("1", "1")]), raw=True), "csv")
    assert cols.classes == ["joy", "anger"] and [list(y) for y in cols.train.labels] == [[1, 0], [1, 1]]
    lists = MultiLabel().encode(SourceData(["label"], Split(["a", "b"], [["x", "y"], ["y"]]), raw=True), "jsonl")
    assert lists.classes == ["x", "y"] and [list(y) for y in lists.train.labels] == [[1, 1], [0, 1]]
    ids = MultiLabel({"label_names": ["p", "q", "r"]}).encode(
        SourceData(["label"], Split(["a"], ["2,0"]), raw=True), "tsv")
    assert list(ids.train.labels[0]) == [1, 0, 1]
    # regression: several target columns; class folders named by numbers are values; clipping to train's range
    two = Regression().encode(SourceData(["x", "y"], Split(["a", "b"], [("1.5", "2"), ("-1", "3e1")]), raw=True), "tsv")
    assert two.classes == ["x", "y"] and [list(v) for v in two.train.labels] == [[1.5, 2.0], [-1.0, 30.0]]
    named = Regression({"target_names": ["similarity"]}).encode(SourceData(["4"], Split(["a"], ["3.2"]), raw=True), "tsv")
    assert named.classes == ["similarity"]  # a headerless file's column index, named by the recipe
    with pytest.raises(UserError, match="2 name\\(s\\) for 1 target column"):
        Regression({"target_names": ["a", "b"]}).encode(SourceData(["4"], Split(["a"], ["3.2"]), raw=True), "tsv")
    folders = Regression().encode(SourceData(["0", "90"], Split(["i", "j"], [1, 0])), "image-folder")
    assert folders.classes == ["value"] and [float(v[0]) for v in folders.train.labels] == [90.0, 0.0]
    task = Regression({"clip": True})
    task = task.configured(state=task.fit(two.train))
    out = task.transform(torch.tensor([[100.0, -100.0]]))  # standardised outputs far outside: clipped
    assert out.tolist() == [[1.5, 2.0]]


def test_freeze_auto_takes_every_built_in_task_and_refuses_a_task_without_a_probe():
    import dataclasses
    import types

    from tlhub.hookspecs import hookimpl
    from tlhub.plugins.manager import make_registry
    from tlhub.recipe import load_and_validate, validate
    from tlhub.task import Task, TaskSpec
    from tlhub.tasks.regression import Regression
    tiny = Path(__file__).parent / "recipes" / "tiny.toml"
    for task in ("classification", "multilabel", "regression"):
        assert load_and_validate(tiny, [f"model.task={task}", "phases.0.freeze=auto"]).phases[0].freeze == "auto"

    class Unmeasured(Regression):  # a third party's task that defines no linear probe
        name = "unmeasured"
        probe = Task.probe
    plugin = types.ModuleType("tlhub_unmeasured")
    plugin.register_tasks = hookimpl(lambda register: register(TaskSpec("unmeasured", "no probe", Unmeasured)))
    recipe = load_and_validate(tiny, ["model.task=regression", "phases.0.freeze=auto"])
    recipe = dataclasses.replace(recipe, model=dataclasses.replace(recipe.model, task="unmeasured"))
    errors = validate(recipe, make_registry(extra=[plugin]))
    assert any(e.startswith("phases.0.freeze: 'auto' measures the frozen features with the task's linear probe, "
                            "but task 'unmeasured' defines none") for e in errors)


def test_eval_metrics_default_to_the_tasks_own_and_name_a_subset_of_them(regression_run, tmp_path):
    import re
    import shutil
    import tomllib

    import tlhub
    from tlhub.errors import UserError
    from tlhub.recipe import load_and_validate
    from tlhub.use.evaluate import LEGACY_DEFAULT, evaluate_source
    root, res = regression_run
    saved = res.run_dir / "model" / "recipe.toml"
    # an empty eval.metrics (the default) is resolved to the task's own, named in the saved recipe
    assert tomllib.loads(saved.read_text())["eval"]["metrics"] == ["pearson", "spearman", "mae", "rmse"]
    tiny = Path(__file__).parent / "recipes" / "tiny.toml"
    with pytest.raises(UserError, match="task 'regression' scores pearson, spearman, mae, rmse; 'accuracy' is not"):
        load_and_validate(tiny, ["model.task=regression", 'eval.metrics=["accuracy"]'])
    assert load_and_validate(tiny, ["model.task=regression", 'eval.metrics=["mae"]']).eval.metrics == ["mae"]
    with pytest.raises(UserError, match="unknown metric 'pearson'"):  # classification: registered metrics only
        load_and_validate(tiny, ['eval.metrics=["pearson"]'])

    options = {"path": str(root / "pairs.tsv"), "text_column": "s1", "text_pair": "s2", "label_column": "score"}

    def scores(metrics):
        folder = tmp_path / "-".join(metrics or ["none"])
        shutil.copytree(res.run_dir / "model", folder)
        text = re.sub(r"(?m)^metrics = \[[^\]]*\]", json.dumps(metrics).join(["metrics = ", ""]),
                      (folder / "recipe.toml").read_text())
        assert tomllib.loads(text)["eval"]["metrics"] == metrics
        (folder / "recipe.toml").write_text(text)
        return evaluate_source(tlhub.load(folder), "tsv", options)
    assert {"pearson", "mae"} <= set(scores([]))
    only = scores(["mae", "rmse"])
    assert "mae" in only and "rmse" in only and "pearson" not in only and "spearman" not in only
    # a model saved when eval.metrics defaulted to classification's four: scored on the task's own
    assert scores(LEGACY_DEFAULT)["pearson"] == pytest.approx(res.metrics["pearson"], rel=1e-5)
    with pytest.raises(UserError, match="'accuracy' is not one of them"):
        scores(["accuracy"])


def test_onnx_parity_is_judged_relative_to_the_outputs_scale(tmp_path):
    from tlhub.errors import UserError
    from tlhub.export.onnx import parity
    prices = np.array([[312_000.0], [95_000.0]], dtype=np.float32)
    # float32 values near 3e5 are 0.03 apart: a rounding of that size is faithful, not broken
    assert parity(tmp_path, prices + np.float32(0.0625), prices) == pytest.approx(0.0625)
    with pytest.raises(UserError, match="differ from PyTorch's by 5e\\+0?2"):
        parity(tmp_path, prices + 500, prices)
    probs = np.array([[0.2, 0.8]], dtype=np.float32)
    assert parity(tmp_path, probs + 1e-6, probs) < 1e-5
    with pytest.raises(UserError, match="more than 0.001 of their scale, 1"):  # probabilities: absolute
        parity(tmp_path, probs + 0.01, probs)


def test_predicted_values_print_with_four_significant_digits_and_no_exponent():
    from tlhub.task import Prediction
    assert str(Prediction(values={"similarity": 5.0})) == "5.000"  # a clipped prediction, not the integer 5
    assert str(Prediction(values={"price": 312456.7})) == "312457"  # not 3.125e+05
    assert str(Prediction(values={"a": 0.00123, "b": -2.5})) == "a 0.001230, b -2.500"


def test_a_plugin_task_without_metrics_of_its_own_takes_no_metric_names():
    from tlhub.task import Task

    class Scores(Task):  # a plugin's task whose metrics() computes what it likes
        name = "scores"
    assert Scores().metric_errors([], None) == []
    assert Scores().metric_errors(["accuracy"], None) == [
        "eval.metrics: task 'scores' computes its own scores and takes no metric names (leave eval.metrics out)"]


def test_the_eval_metrics_help_names_each_builtin_tasks_own_metrics():
    from dataclasses import fields

    from tlhub.plugins import get_registry
    from tlhub.recipe.schema import EvalCfg
    text = next(f for f in fields(EvalCfg) if f.name == "metrics").metadata["help"]
    for name in ("classification", "regression", "multilabel"):  # the help lists them by hand: kept in step here
        assert f"{name}: {', '.join(get_registry().task(name).default_metrics)}" in text
