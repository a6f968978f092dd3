"""freeze = "auto" costs at most TIMES x the shipped recipe of the same modality on the same data: the rules on
synthetic cost figures, and one tiny run's log and record."""
from __future__ import annotations

import json
import math
import tomllib
from pathlib import Path

import pytest

from tlhub.auto import bound, search, trials

REPO = Path(__file__).resolve().parents[1]


def _costs(groups=(10.0, 20.0, 40.0, 80.0), n_train=1000, n_val=200, head=1.0) -> trials.CostModel:
    return trials.CostModel(list(groups), head, n_train, n_val, seconds_per_flop=1e-3, cache=True)


@pytest.mark.parametrize("modality", sorted(bound.SHIPPED))
def test_the_shipped_shapes_are_those_of_the_recipe_files(modality):
    ref = bound.SHIPPED[modality]
    phases = tomllib.loads((REPO / ref.recipe).read_text())["phases"]
    assert [p["freeze"] for p in phases] == ["frozen", "top_k"]
    assert (phases[0]["epochs"], phases[1]["freeze_options"]["k"], phases[1]["epochs"]) == \
        (ref.head_epochs, ref.tune_groups, ref.tune_epochs)
    assert (phases[0]["lr"], phases[1]["lr"]) == pytest.approx((ref.head_lr, ref.tune_lr))
    # the incumbent trains the fine-tuning phase as the file has it: every other setting of its table
    rest = {k: v for k, v in phases[1].items() if k not in ("name", "freeze", "freeze_options", "epochs", "lr")}
    assert dict(ref.tune) == rest
    head_rest = {k: v for k, v in phases[0].items() if k not in ("name", "freeze", "epochs", "lr")}
    assert head_rest in ({}, {"optimizer": "adam"})  # the auto phase's own optimizer (adam by default) trains the head


def test_reference_cost_is_its_head_phase_then_its_share_of_the_groups():
    costs = _costs()
    ref = bound.Reference("r.toml", head_epochs=2, tune_groups=4, groups=8, tune_epochs=5)
    assert ref.depth(4) == 2 and ref.depth(1) == 1 and ref.depth(40) == 20
    want = costs.fill(0) + 2 * costs.epoch(0) + costs.fill(2) + 5 * costs.epoch(2)
    assert bound.reference_cost(ref, costs) == pytest.approx(want)
    # training groups measured dearer: the reference's fine-tuning (not its head phase) costs that much more
    costs.deep = 4.0
    assert bound.reference_cost(ref, costs) == pytest.approx(want + 3 * 5 * (costs.epoch(2) / 4.0))


def test_the_least_of_the_three_limits_wins_and_says_so():
    costs = _costs()
    ref = bound.Reference("r.toml", 2, 4, 8, 5)
    r = bound.reference_cost(ref, costs)
    lim = bound.limit(costs, ref, auto_budget_cost=100 * r)
    assert lim.total == pytest.approx(bound.TIMES * r) and lim.by == "shipped recipe"
    assert bound.limit(costs, ref, auto_budget_cost=0.5 * r).by == "auto_budget"
    minutes = 0.1 * r * costs.seconds_per_flop / 60  # a tenth of the reference, in minutes
    lim = bound.limit(costs, ref, 100 * r, auto_minutes=minutes)
    assert lim.by == "auto_minutes" and lim.total == pytest.approx(0.1 * r)
    assert "set by auto_minutes" in bound.describe(lim, costs.seconds)


def test_deep_factor_is_measured_rounded_up_and_bounded():
    spf = 1e-3
    # 10 s: 2 s of cache fill (2000 FLOPs at the head's rate) and 8 s for 2000 FLOPs of training: 4x
    assert bound.deep_factor(10.0, 2000, 2000, spf) == pytest.approx(4.0)
    assert bound.deep_factor(10.5, 2000, 2000, spf) == pytest.approx(4 * math.sqrt(2))  # up, never down
    assert bound.deep_factor(2.5, 0, 10000, spf) == pytest.approx(0.25)  # cheaper per FLOP (a GPU) is measured too
    assert bound.deep_factor(0.0, 0, 100, spf) == 1.0 and bound.deep_factor(5, 0, 0, spf) == 1.0
    assert bound.deep_factor(1e9, 0, 1, spf) == 64.0 and bound.deep_factor(1e-9, 0, 1e9, spf) == 0.25


def test_the_first_trial_that_trains_groups_measures_them_once(monkeypatch):
    from types import SimpleNamespace
    costs = _costs()
    ref = bound.Reference("r.toml", 2, 4, 8, 5)
    cal = bound.Calibration(costs, ref, 1e9, 0.0, lambda: 1.0, lambda v: v)
    before = cal.lim.total
    head = SimpleNamespace(candidate=trials.Candidate(0, 1e-2, 4), epochs=3, steps=0, seconds=1.0)
    assert not cal.after(head, 0, 0.0, 0.0)  # the head trains no group: nothing measured
    work = 2 * costs.trial_epoch(2)
    deep = SimpleNamespace(candidate=trials.Candidate(2, 1e-3, 4), epochs=2, steps=0,
                           seconds=4 * work * costs.seconds_per_flop)  # 4x the head phase's seconds per FLOP
    assert cal.after(deep, 0, 0.0, 0.0) and costs.deep == pytest.approx(4.0) and cal.measured == "top2@0.001"
    assert cal.lim.total > before and cal.lim.by == "shipped recipe"
    deep.epochs, deep.seconds = 4, 1e9
    assert not cal.after(deep, 2, 0.0, 0.0) and costs.deep == pytest.approx(4.0)  # once


def test_a_deep_factor_makes_deep_trials_dearer_and_cuts_them_first():
    costs = _costs()
    cheap = [costs.trial(k, 1) for k in (1, 2, 4)]
    costs.deep = 8.0
    dear = [costs.trial(k, 1) for k in (1, 2, 4)]
    assert all(d > c for d, c in zip(dear, cheap)) and costs.trial(0, 1) == pytest.approx(_costs().trial(0, 1))
    # a rung whose budget pays for the shallow trials only: the deepest are the ones not started
    states = [trials.TrialState(c) for c in trials.candidates(4, 1e-3, 1e-2, rule_k=1)]

    def train(st, total):
        st.epochs, st.score, st.loss = total, 0.5 + 0.01 * st.candidate.k, 0.5
    budget = search.Budget(limit=sum(costs.trial(1, 1) for _ in range(3)) * 1.5)
    search.successive_halving(states, costs, budget, 4, train)
    ran = {s.candidate.k for s in states if s.epochs}
    assert 1 in ran and 4 not in ran
    line = bound.cuts(states, 2, bound.Limit(budget.limit, 1.0, "shipped recipe"))
    assert "not run (over budget: " in line and "all@" in line and "set by shipped recipe" in line
    assert "trained fewer than 2 epoch(s)" in line


def test_a_saturated_incumbent_skips_the_trials_left():
    from tlhub.training.validation import accuracy_se
    assert bound.saturated(1.0, accuracy_se(1.0, 50)) and bound.saturated(0.99, accuracy_se(0.99, 100))
    assert not bound.saturated(0.9, accuracy_se(0.9, 100)) and not bound.saturated(0.999, 0.0)
    assert not bound.saturated(0.99, 0.05, perfect=None)  # a metric without a best value never saturates
    assert bound.saturated(0.95, 0.06) and not bound.saturated(0.95, 0.04)  # e.g. Pearson's r and its error
    states = [trials.TrialState(c) for c in trials.candidates(4, 1e-3, 1e-2, rule_k=1)]
    costs = _costs()
    noise = search.Noise(lambda score: accuracy_se(score, 60))

    def train(st, total):
        st.epochs, st.score, st.loss = total, 1.0, 0.1  # the first trial scores 1.0 on 60 examples
    winner = search.successive_halving(states, costs, search.Budget(1e12), 4, train, noise=noise)
    assert sum(1 for s in states if s.epochs) == 1 and winner.epochs
    assert sum(1 for s in states if s.status == search.SETTLED) == len(states) - 1
    # ranked by loss, a trial may still show a gain: nothing is skipped
    states = [trials.TrialState(c) for c in trials.candidates(4, 1e-3, 1e-2, rule_k=1)]
    search.successive_halving(states, costs, search.Budget(1e12), 4, train, "val_loss", noise=noise)
    assert not [s for s in states if s.status == search.SETTLED]


def test_a_tiny_run_logs_the_bound_and_stays_within_it(tiny_recipe):
    import tlhub
    result = tlhub.run(tiny_recipe, ["data.options.per_class=40", "phases.0.freeze=auto", "phases.0.lr=0.03"],
                       quiet=True)
    log = (result.run_dir / "run.log").read_text()
    budget = json.loads((result.run_dir / "auto_search.json").read_text())["budget"]
    assert "auto: cost bound: the whole auto phase may cost" in log
    assert "recipes/mnist5k_lite0.toml: head 2 epoch(s), then the top 4 of 9 groups" in log  # the image recipe
    # auto_budget (4 x the default plan of 1000 steps) is far above twice this tiny data's shipped recipe
    assert budget["bound_by"] == "shipped recipe" and "set by shipped recipe" in log
    assert budget["total"] == pytest.approx(bound.TIMES * budget["shipped_recipe"], rel=1e-3)
    assert "measured training backbone groups at" in log and budget["deep_factor"] > 0
    assert "auto: within the bound (set by shipped recipe):" in log
    # the search's first trial runs whatever its share (one measurement is needed); the whole stays within the
    # bound: what the search leaves pays for the winner's training
    assert budget["limit"] <= budget["total"] and budget["spent"] <= budget["total"], budget


def test_the_search_starts_with_the_shipped_recipe_as_a_copy_trains_it(tiny_recipe, monkeypatch):
    """The head phase every trial starts from and the incumbent are the shipped image recipe's two phases (its
    epochs, lrs scaled by the auto phase's lr over the default 1e-3, schedule, warm-up, last epoch kept), so
    that where the incumbent wins, auto scores what the copied recipe scores."""
    import tlhub
    from tlhub.training import phase as training_phase
    trained, real = [], training_phase.run_phase

    def spy(ctx, model, index, resume=None):
        trained.append((ctx.run_dir.name, ctx.plan.phases[index].settings))
        return real(ctx, model, index, resume=resume)
    monkeypatch.setattr(training_phase, "run_phase", spy)
    tlhub.run(tiny_recipe, ["data.options.per_class=40", "phases.0.freeze=auto", "phases.0.lr=0.002"], quiet=True)
    ref = bound.SHIPPED["image"]
    head = next(p for folder, p in trained if folder == "prefix")
    assert (head.freeze, head.epochs, head.early_stop, head.restore_best) == ("frozen", ref.head_epochs, 0, False)
    assert head.lr == pytest.approx(2 * ref.head_lr)
    incumbent = [p for folder, p in trained if folder.endswith("-shipped")]
    assert len(incumbent) == 1, [f for f, _ in trained]  # one whole training, never continued
    tune = incumbent[0]
    assert (tune.epochs, tune.scheduler, tune.warmup, tune.bn, tune.early_stop, tune.restore_best) == \
        (ref.tune_epochs, "cosine", 0.1, "eval", 0, False)
    assert tune.lr == pytest.approx(2 * ref.tune_lr) and tune.freeze == "top_k"


def test_the_incumbent_may_spend_the_whole_bound_not_only_the_searchs_share(tiny_recipe, monkeypatch):
    """A bound (here auto_budget's) whose search share is too small for the shipped plan still trains it when
    the whole bound pays for it: it needs no further training when it wins, and without it the search loses to
    the copy (MNIST-5k: 0.9797 against 0.9866)."""
    import tlhub
    from tlhub.auto import driver
    monkeypatch.setattr(bound, "TIMES", 1e9)  # auto_budget sets the bound
    # trials shorter than the winner's training: the search gets half of the bound, not all (as on MNIST-5k)
    monkeypatch.setattr(driver, "MIN_TRIAL_STEPS", 1)
    result = tlhub.run(tiny_recipe, ["data.options.per_class=40", "phases.0.freeze=auto", "phases.0.lr=0.002",
                                     "phases.0.auto_budget=0.1"], quiet=True)
    data = json.loads((result.run_dir / "auto_search.json").read_text())
    budget, shipped = data["budget"], next(r for r in data["trials"] if "(shipped)" in r["plan"])
    assert shipped["epochs"] == bound.SHIPPED["image"].tune_epochs and shipped["status"] == "winner"
    assert budget["spent"] > budget["limit"]  # more than the search's share (the bound paid for it, as estimated)
    assert "the shipped plan spent what the search may" in (result.run_dir / "run.log").read_text()
