"""freeze = "auto" and `tlhub advise` for every built-in task: each task's linear probe, chance, standard error
and support (tlhub.task), the validation plan in the task's metric, and searches ranked by it end to end (a
random 2-layer BERT, seconds)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from clichecks import invoke
from taskruns import multilabel_data, pair_data, write_recipe


def _bootstrap_se(score, n: int, rng, rounds: int = 400) -> float:
    return float(np.std([score(rng.integers(0, n, n)) for _ in range(rounds)]))


@pytest.mark.parametrize("n,prevalence,noise", [(500, [0.3, 0.1, 0.05, 0.02], 0.1), (2000, [0.2] * 3 + [0.01] * 5, 0.3),
                                                (300, [0.5, 0.4], 0.3)])
def test_macro_f1_standard_error_is_near_a_bootstraps(n, prevalence, noise):
    from tlhub.tasks.common import f1_scores
    from tlhub.tasks.multilabel import MultiLabel
    rng = np.random.default_rng(0)
    y = rng.random((n, len(prevalence))) < np.asarray(prevalence)
    pred = y ^ (rng.random(y.shape) < 2 * noise * np.asarray(prevalence))  # errors in proportion to the positives
    macro = f1_scores(pred, y)[0].mean()
    boot = _bootstrap_se(lambda i: f1_scores(pred[i], y[i])[0].mean(), n, rng)
    assert MultiLabel().score_se(macro, n, y.astype(np.float32)) == pytest.approx(boot, rel=0.2)


@pytest.mark.parametrize("n,r", [(300, 0.5), (400, 0.8), (1500, 0.9)])
def test_pearson_standard_error_is_near_a_bootstraps(n, r):
    from tlhub.tasks.regression import Regression
    rng = np.random.default_rng(1)
    x = rng.normal(size=n)
    y = r * x + np.sqrt(1 - r * r) * rng.normal(size=n)
    measured = np.corrcoef(x, y)[0, 1]
    boot = _bootstrap_se(lambda i: np.corrcoef(x[i], y[i])[0, 1], n, rng)
    assert Regression().score_se(measured, n, None) == pytest.approx(boot, rel=0.2)
    assert Regression().score_se(1.0, 50, None) > 0  # a perfect r on a finite split is not exact


def _features(n: int, rng, informative: bool, k: int = 3):
    """Features ``[n, 16]``, targets ``[n, k]`` read linearly from the first k of them (or from nothing)."""
    x = rng.normal(size=(n, 16))
    signal = x[:, :k] if informative else rng.normal(size=(n, k))
    return x, signal


def test_each_tasks_probe_scores_informative_features_above_noise():
    from tlhub.tasks.classification import Classification
    from tlhub.tasks.multilabel import MultiLabel
    from tlhub.tasks.regression import Regression
    rng = np.random.default_rng(2)
    scores = {}
    for informative in (True, False):
        x, s = _features(800, rng, informative)
        tr, va = slice(0, 600), slice(600, 800)
        values = (s + 0.3 * rng.normal(size=s.shape)).astype(np.float32)
        hot = (s > 0.5).astype(np.float32)
        cls = s.argmax(1)
        scores[informative] = (Regression().probe(x[tr], values[tr], x[va], values[va]),
                               MultiLabel().probe(x[tr], hot[tr], x[va], hot[va]),
                               Classification().probe(x[tr], cls[tr], x[va], cls[va]))
    (r, f1, acc), (r0, f10, acc0) = scores[True], scores[False]
    assert r > 0.9 and abs(r0) < 0.2
    assert f1 > 0.75 and f10 < 0.55
    assert acc > 0.85 and acc0 < 0.5


def test_chance_and_support_in_each_tasks_terms():
    from tlhub.tasks.classification import Classification
    from tlhub.tasks.multilabel import MultiLabel
    from tlhub.tasks.regression import Regression
    hot = np.asarray([[1, 0], [1, 1], [0, 0], [1, 0]], dtype=np.float32)  # prevalence 0.75 and 0.25
    assert MultiLabel().chance(hot) == pytest.approx((2 * 0.75 / 1.75 + 2 * 0.25 / 1.25) / 2)
    assert MultiLabel().support(hot, ["a", "b"]) == {"a": 3, "b": 1}  # positives per label
    assert Classification().chance(np.asarray([0, 1, 1, 1])) == 0.75
    assert Classification().support(np.asarray([0, 1, 1, 1]), ["x", "y", "z"]) == {"x": 1, "y": 3, "z": 0}
    assert Regression().chance(np.zeros((4, 1))) == 0.0 and Regression().support(np.zeros((4, 1)), ["v"]) == {"v": 4}


def test_validation_plan_resolves_the_tasks_metric_and_carves_as_the_task_does():
    from tlhub.data.splits import Splits
    from tlhub.interfaces import Split
    from tlhub.tasks.regression import Regression
    from tlhub.training import validation
    rng = np.random.default_rng(3)
    values = [np.asarray([v], dtype=np.float32) for v in rng.normal(size=2000)]
    splits = Splits(["v"], Split(list(range(1900)), values[:1900]), Split(list(range(100)), values[1900:]),
                    Split([], []), task=Regression())
    bigger, plan = validation.plan_validation(splits, score=0.8, seed=0)
    # r = 0.8 to +-0.03 takes (1 - 0.64)^2 / 0.03^2 + 3 = 147 pairs: 47 moved from train (at random)
    assert plan.metric == "pearson" and plan.moved == 47 and len(bigger.val) == 147 and len(bigger.train) == 1853
    assert plan.criterion == "val_score" and "pearson 0.80" in plan.message and bigger.task is splits.task


def _search(res) -> dict:
    return json.loads((res.run_dir / "auto_search.json").read_text())


def _history(res) -> list[dict]:
    return [json.loads(line) for line in (res.run_dir / "history.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("task", ["regression", "multilabel"])
def test_auto_searches_a_task_ranked_by_its_own_metric(tmp_path, task):
    import tlhub
    if task == "regression":
        pair_data(tmp_path, n=240)
        options = 'path = "pairs.tsv", text_column = "s1", text_pair = "s2", label_column = "score"'
        metric = "pearson"
    else:
        multilabel_data(tmp_path, n=240)
        options = 'path = "ml.tsv", text_column = "text", label_column = "labels"'
        metric = "macro_f1"
    recipe = write_recipe(tmp_path, task, "tsv", options, epochs=2)
    res = tlhub.run(recipe, ["phases.0.freeze=auto", "phases.0.auto_budget=2"], quiet=True)
    data = _search(res)
    assert data["metric"] == metric and data["validation"]["metric"] == metric
    assert data["criterion"] in ("val_score", "val_loss") and data["rule"]["case"]
    ran = [t for t in data["trials"] if t["epochs"]]
    assert ran and all(-1 <= t["val_score"] <= 1 for t in ran)
    winner = next(t for t in data["trials"] if t["status"] == "winner")
    if data["criterion"] == "val_score":
        assert winner["val_score"] == max(t["val_score"] for t in ran)
    else:
        assert winner["val_loss"] == min(t["val_loss"] for t in ran)
    # the run's phases are the winner's, trained on and scored in the task's metric
    assert f"val_{metric}" in _history(res)[-1] and metric in res.metrics
    log = (res.run_dir / "run.log").read_text()
    assert f"at {metric} " in log  # the validation plan speaks of the task's metric


def test_advise_measures_a_regression_with_its_probe(tmp_path):
    pair_data(tmp_path, n=200)
    recipe = write_recipe(tmp_path, "regression", "tsv", 'path = "pairs.tsv", text_column = "s1", text_pair = "s2", '
                          'label_column = "score"')
    res = invoke("advise", recipe, "--rule", "--json")
    assert res.exit_code == 0, res.output
    advice = json.loads(res.stdout)
    assert advice["metric"] == "pearson" and advice["outputs_are"] == "targets" and advice["chance"] == 0.0
    assert advice["train_counts"] == {"score": advice["train_examples"]}
    assert all(-1 <= p["score"] <= 1 for p in advice["probes"]) and advice["case"].startswith("small data")
    text = invoke("advise", recipe, "--rule")
    assert "pearson" in text.stdout and "1 targets" not in text.stdout, text.stdout


def test_a_search_recorded_before_tasks_reads_as_a_score(tmp_path):
    from tlhub.auto import search
    row = {"plan": "top1@0.001", "freeze": "top_k k=1", "trainable_groups": ["g3"], "lr": 0.001, "epochs": 2,
           "best_epoch": 2, "val_accuracy": 0.91, "val_loss": 0.3, "seconds": 1.0, "cost": 0.5, "rung": 1,
           "status": "winner"}
    old = {"trials": [row], "winner": "top1@0.001", "phases": [], "criterion": "val_accuracy", "budget": {},
           "validation": None, "rule": None}
    result = search.SearchResult.from_dict(old)
    assert result.criterion == "val_score" and result.trials[0].val_score == 0.91 and result.metric == "accuracy"
    assert "val accuracy" in result.table() and "0.9100" in result.table()
