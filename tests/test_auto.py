"""freeze = "auto" as a search: the table and its JSON, the budget, reproducibility, --write, the lr range
test and the validation-size check."""
from __future__ import annotations

import json
import math

import pytest
import tomllib
import torch
from click.testing import CliRunner

import tlhub
from tlhub.auto import search, trials
from tlhub.training import lr_find, validation
from tlhub.cli import cli
from tlhub.recipe import load_and_validate, load_recipe, to_toml

SMALL = ["data.options.per_class=40"]
AUTO = ["phases.0.freeze=auto", "phases.0.lr=0.03"]


@pytest.fixture(autouse=True)
def unbounded(monkeypatch):
    """These tests pin the search's mechanics under auto_budget; the shipped-recipe bound, which would cut
    this tiny data's search to a trial or two, is tested in test_auto_bound.py. Training backbone groups costs
    what the FLOPs say (no measured factor), so that two runs plan the same trials whatever their timings."""
    from tlhub.auto import bound
    monkeypatch.setattr(bound, "TIMES", 1e9)
    monkeypatch.setattr(bound, "deep_factor", lambda *a: 1.0)


# ---------------------------------------------------------------------- successive halving (no training)

def _fake(costs_by_k: dict[int, float], quality: dict[str, float]):
    """A CostModel whose epoch cost per depth is given, and a trainer whose accuracy grows with epochs."""
    n = max(costs_by_k)
    costs = trials.CostModel([1.0] * n, 0.0, 1, 0, cache=True)
    costs.epoch = lambda k, n_train=None: costs_by_k[k]
    costs.fill = lambda k: 0.0
    trained = []

    def train(st, total):
        trained.append((st.candidate.name, total - st.epochs))
        st.epochs = total
        st.score = quality[st.candidate.name] * (1 - 0.5 ** total)
        st.loss = 1 - st.score
    return costs, train, trained


def _states(n=4, centre=1e-3):
    return [trials.TrialState(c) for c in trials.candidates(n, centre, 1e-2, rule_k=1)]


def test_halving_picks_the_best_validation_score_and_gives_deep_plans_fewer_epochs():
    states = _states()
    quality = {s.candidate.name: 0.5 + 0.04 * i for i, s in enumerate(states)}
    costs, train, trained = _fake({0: 0.1, 1: 1.0, 2: 2.0, 4: 8.0}, quality)
    budget = search.Budget(200.0)
    winner = search.successive_halving(states, costs, budget, max_epochs=8, train=train)
    tried = [s for s in states if s.epochs]
    assert winner is max(tried, key=lambda s: search.score(s, "val_score"))
    assert winner.status == "winner" and budget.spent <= budget.limit
    first = {name: add for name, add in trained[: len(states)]}  # the first rung: every candidate once
    head, top1 = next(s.candidate.name for s in states if s.candidate.k == 0), "top1@0.001"
    deep = next(s.candidate.name for s in states if s.candidate.k == 4)
    assert first[head] > first[top1] > first[deep] >= 1
    cut = [s for s in states if s.status == "cut after rung 1"]
    kept = [s for s in states if s not in cut]
    assert len(kept) == math.ceil(len(states) / search.ETA)  # the best third goes on
    assert max(search.score(s, "val_score") for s in cut) <= min(search.score(s, "val_score") for s in kept)
    assert any(s.rung == 1 for s in kept)  # survivors were trained further


def test_rungs_run_cheapest_first_and_end_with_one_survivor():
    """Within a rung the cheapest candidate trains first, so a tight budget skips the dearest; a lone
    survivor is not trained further (that is the winner's anneal)."""
    states = [s for s in _states() if s.candidate.lr == 1e-3 or s.candidate.k == 0]  # head, top1, top2, all
    quality = {"head@0.01": 0.3, "top1@0.001": 0.6, "top2@0.001": 0.9, "all@0.001": 0.7}
    costs, train, trained = _fake({0: 0.1, 1: 1.0, 2: 2.0, 4: 4.0}, quality)
    budget = search.Budget(8.0)
    winner = search.successive_halving(states, costs, budget, max_epochs=1, train=train)
    assert [name for name, _ in trained] == ["head@0.01", "top1@0.001", "top2@0.001", "all@0.001"]
    states = [s for s in _states() if s.candidate.lr == 1e-3 or s.candidate.k == 0]
    costs, train, trained = _fake({0: 0.1, 1: 1.0, 2: 2.0, 4: 4.0}, quality)
    budget = search.Budget(7.0)  # head, top1 and top2 fit, all groups (4.0 more) does not; top2 could go on
    winner = search.successive_halving(states, costs, budget, max_epochs=8, train=train)
    assert [name for name, _ in trained][:3] == ["head@0.01", "top1@0.001", "top2@0.001"]
    assert next(s for s in states if s.candidate.k == 4).status == "skipped: over budget"
    assert winner.candidate.name == "top2@0.001" and winner.rung == 0  # the lone survivor: no second rung


def test_first_rung_trials_train_at_least_min_epochs_where_an_epoch_is_short():
    """On a small training split one epoch is a few batches: every candidate's first trial trains at least
    ``min_epochs`` (a deep plan cut after one short epoch would be judged in its dip), even the dear ones."""
    quality = {"head@0.01": 0.3, "top1@0.001": 0.6, "top2@0.001": 0.9, "all@0.001": 0.7}
    runs = {}
    for least in (1, 4):
        states = [s for s in _states() if s.candidate.lr == 1e-3 or s.candidate.k == 0]
        costs, train, trained = _fake({0: 0.1, 1: 1.0, 2: 2.0, 4: 4.0}, quality)
        search.successive_halving(states, costs, search.Budget(40.0), 8, train, min_epochs=least)
        runs[least] = dict(trained[:4])
    assert runs[1]["all@0.001"] < 4 <= runs[4]["all@0.001"]  # the share alone gives all groups fewer
    assert all(add >= 4 for add in runs[4].values())


def test_budget_limits_the_trials_run():
    small_states, big_states = _states(), _states()
    quality = {s.candidate.name: 0.6 for s in small_states}
    costs, train, trained_small = _fake({0: 1.0, 1: 1.0, 2: 1.0, 4: 1.0}, quality)
    small = search.Budget(3.0)
    search.successive_halving(small_states, costs, small, 8, train)
    epochs_small = sum(add for _, add in trained_small)
    costs, train, trained_big = _fake({0: 1.0, 1: 1.0, 2: 1.0, 4: 1.0}, quality)
    big = search.Budget(60.0)
    search.successive_halving(big_states, costs, big, 8, train)
    assert epochs_small == 3 and small.spent == 3.0  # three one-epoch trials fit, the rest are skipped
    assert sum(s.status == "skipped: over budget" for s in small_states) == len(small_states) - 3
    assert sum(add for _, add in trained_big) > epochs_small and big.spent <= big.limit


def test_two_stage_search_measures_the_lr_at_the_cheapest_depth_then_depths_at_it():
    from tlhub.auto.stages import LR_STAGE_SHARE, two_stage as _two_stage
    states = _states(n=4, centre=1e-3)  # depths 1, 2, 4 at lrs 3.3e-4, 1e-3, 3e-3
    quality = {s.candidate.name: 0.5 for s in states}
    quality.update({"top1@0.003": 0.7, "top2@0.003": 0.8, "all@0.003": 0.9, "all@0.001": 0.95})
    costs, train, trained = _fake({0: 0.1, 1: 1.0, 2: 2.0, 4: 4.0}, quality)
    head = next(s for s in states if s.candidate.k == 0)
    train(head, 1)
    head.stopped = True
    budget = search.Budget(40.0)
    ran, winner = _two_stage(states, head, 1, costs, budget, 8, train, "val_score")
    each = int(LR_STAGE_SHARE * 40.0 / 3)  # the lr stage's share of the budget, in epochs of depth 1
    assert sorted(trained[1:4]) == [("top1@0.00033", each), ("top1@0.001", each), ("top1@0.003", each)]
    lr_stage = [s for s in ran if s.scheduler == "cosine"]
    assert len(lr_stage) == 3 and {s.status for s in lr_stage} == {"lr stage"} and {s.candidate.k for s in lr_stage} == {1}
    depths = [s for s in ran if s.scheduler == "constant" and s.candidate.k]
    assert {s.candidate.name for s in depths} == {"top1@0.003", "top2@0.003", "all@0.003"}  # fresh trials at the lr
    assert "all@0.001" not in dict(trained)  # it would score higher, but its lr lost at depth 1
    assert winner in [head, *depths] and budget.spent <= budget.limit
    assert winner is max([head, *depths], key=lambda s: search.score(s, "val_score"))


def test_lr_trials_on_a_large_split_train_the_batches_their_share_pays_for():
    """One epoch each would cost several times the lr stage's share: each lr trial trains fewer batches (one
    annealed epoch of them), charged as such; the deeper plans then train as many batches, one-shot, and the
    top quarter is not trained again (its best lr trial is its measurement)."""
    from tlhub.auto.stages import LR_STAGE_SHARE, two_stage as _two_stage
    states = _states(n=4, centre=1e-3)
    costs = trials.CostModel([1.0] * 4, 1.0, n_train=10_000, n_val=0, batch=10)  # 1,000 batches an epoch
    costs.filled.add(1)  # the top quarter's cache is already there: the share is all training
    assert costs.trial_epoch(1) == 60_000 and costs.steps_within(1, 12_000) == 200
    trained = []
    quality = {"top1@0.001": 0.70, "top2@0.001": 0.80, "all@0.001": 0.75}

    def train(st, total):
        trained.append((st.candidate.name, st.scheduler, st.steps))
        st.epochs, st.loss = total, 0.5
        st.score = quality.get(st.candidate.name, 0.5 + st.candidate.k / 100)
    head = next(s for s in states if s.candidate.k == 0)
    train(head, 1)
    head.stopped = True
    budget = search.Budget(12_000 * 3 / LR_STAGE_SHARE + 400_000)
    ran, winner = _two_stage(states, head, 1, costs, budget, 8, train, "val_score")
    lr_stage = [s for s in ran if s.status == "lr stage" or (s.candidate.k == 1 and s.scheduler == "cosine")]
    room = LR_STAGE_SHARE * budget.limit
    assert len(lr_stage) == 3 and [s.steps for s in lr_stage] == [int(room / 3 // 60)] * 3
    assert all(s.epochs == 1 for s in lr_stage)
    assert sum(s.cost for s in lr_stage) <= room  # not three whole epochs (180,000): the share holds
    # the depths: lr 1e-3 won at depth 1 (0.70 against 0.51), then depths 2 and 4 at it, as long and one-shot
    assert trained[4:] == [("top2@0.001", "cosine", lr_stage[0].steps), ("all@0.001", "cosine", lr_stage[0].steps)]
    assert winner.candidate.name == "top2@0.001" and winner.status == "winner" and winner.scheduler == "cosine"
    assert {s.status for s in ran if s.candidate.name == "all@0.001"} == {"cut"}
    assert budget.spent <= budget.limit
    rows = [search.TrialRow.of(s, ["a", "b", "c", "d"], 1.0) for s in ran]
    table = search.SearchResult(rows, winner.candidate.name, [], "val_score", {}, None, None).table()
    assert f"{lr_stage[0].steps}b" in table and "an epoch of N batches" in table
    # the run continues from the one-shot trial: the same phase, then the anneal (a warm restart)
    from types import SimpleNamespace
    base = SimpleNamespace(optimizer="adam", weight_decay=0.0)
    trial, anneal = winner.candidate.final_phases(base, winner.epochs, 1, "tune", "anneal", winner.steps,
                                                  winner.scheduler)
    assert (trial["scheduler"], trial["epoch_steps"], trial["epochs"]) == ("cosine", winner.steps, 1)
    assert anneal["scheduler"] == "cosine" and not anneal["restore_best"]


def test_on_a_small_split_the_depths_train_as_long_as_the_lr_trials_and_the_best_is_final():
    """Each lr trial a whole training (max_epochs): the depths train one-shot as long, a further lr trial runs
    only if a trial at the next depth still fits after it, and the one-shot winner needs no anneal."""
    from types import SimpleNamespace

    from tlhub.auto.driver import _anneal_epochs
    from tlhub.auto.stages import two_stage as _two_stage
    states = _states(n=4, centre=1e-3)  # depths 1, 2, 4
    quality = {s.candidate.name: 0.5 for s in states}
    quality.update({"top1@0.001": 0.6, "top2@0.001": 0.8, "all@0.001": 0.7})
    costs, train, trained = _fake({0: 0.1, 1: 1.0, 2: 2.0, 4: 4.0}, quality)
    costs.trial_examples = lambda steps=0: 1  # one example an epoch: n_train below
    costs.n_train = 1
    head = next(s for s in states if s.candidate.k == 0)
    train(head, 1)
    head.stopped = True
    # a quarter of 40 pays for one lr trial of 8 epochs at depth 1 (8); the whole budget for one more lr
    # trial (8) and the top 2 (16), not for a third lr trial besides: it is skipped, the top 2 runs
    budget = search.Budget(8 + 8 + 16 + 4.0)
    ran, winner = _two_stage(states, head, 1, costs, budget, 8, train, "val_score", min_epochs=8)
    lr_stage = [s for s in ran if s.candidate.k == 1]
    assert [s.epochs for s in lr_stage if s.epochs] == [8, 8]
    assert [s.status for s in lr_stage if not s.epochs] == ["skipped: room kept for a deeper trial"]
    depths = {s.candidate.name: s for s in ran if s.candidate.k > 1}
    assert depths["top2@0.001"].epochs == 8 and depths["top2@0.001"].scheduler == "cosine"
    assert depths["all@0.001"].status == "skipped: over budget" and budget.spent <= budget.limit
    assert winner is depths["top2@0.001"] and winner.status == "winner"
    # its lr reached zero over the winner's whole length: nothing more to train, whatever the budget leaves
    assert _anneal_epochs(winner, costs, left=1e9, final=8) == 0
    base = SimpleNamespace(optimizer="adam", weight_decay=0.0)
    (only,) = winner.candidate.final_phases(base, winner.epochs, 0, "tune", "anneal", 0, winner.scheduler)
    assert (only["epochs"], only["scheduler"]) == (8, "cosine")
    # a constant-lr winner (successive halving) is always annealed
    constant = trials.TrialState(winner.candidate, epochs=8)
    assert _anneal_epochs(constant, costs, left=1e9, final=8) == 1


def test_candidates_cover_depths_and_lrs_around_the_centre():
    cands = trials.candidates(9, 1e-3, 3e-3, rule_k=2)
    assert sorted({c.k for c in cands}) == [0, 2, 4, 9]  # head, a quarter, half, all
    assert {round(c.lr / 1e-3, 3) for c in cands if c.k} == {0.333, 1.0, 3.0}
    assert (cands[0].k, cands[0].lr) == (2, 1e-3)  # the rule's depth at the centre lr goes first
    assert [c.prior for c in cands] == list(range(len(cands)))


# ---------------------------------------------------------------------- lr range test

class _Linear(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(2, 2)

    def forward(self, x, start=0):
        return self.fc(x)


def test_fine_tuning_length_is_about_a_thousand_steps_in_one_to_eight_epochs():
    from tlhub.auto.driver import fine_tune_epochs
    assert fine_tune_epochs(4000, 32) == 8       # 125 steps an epoch
    assert fine_tune_epochs(6900, 16) == 3       # 432 steps an epoch
    assert fine_tune_epochs(200_000, 32) == 1    # one epoch of a large data set is already 6,250 steps
    assert fine_tune_epochs(40, 32) == 8         # a tiny one: at most 8 epochs
    # the winner's training in all: no more than the steps (a 480-batch epoch: 2 epochs, not 3)
    assert fine_tune_epochs(7676, 16) == 3 and fine_tune_epochs(7676, 16, at_most=True) == 2
    assert fine_tune_epochs(200_000, 32, at_most=True) == 1 and fine_tune_epochs(4000, 32, at_most=True) == 8


def test_the_budget_unit_counts_a_thousand_steps_also_where_eight_epochs_are_fewer():
    from tlhub.auto.driver import FINE_TUNE_STEPS, default_plan
    costs = trials.CostModel([1.0] * 4, 1.0, n_train=4000, n_val=1000, batch=32)
    flops, steps = default_plan(costs, 3, 1, 4000, 32)  # 125 batches an epoch: 8 epochs are 1,000 steps
    assert steps == 1000 and flops == costs.phase(0, 3) + costs.phase(1, 8)
    costs = trials.CostModel([1.0] * 4, 1.0, n_train=400, n_val=1000, batch=32)
    flops, steps = default_plan(costs, 3, 1, 400, 32)   # 13 batches an epoch: 8 epochs are 104 steps
    assert steps == FINE_TUNE_STEPS
    eight = costs.phase(0, 3) + costs.phase(1, 8)
    assert flops == eight + (1000 - 104) * 32 * 3 * 2  # 896 more steps of training, no more validation passes


def test_winner_phases_are_its_trial_then_an_anneal_that_keeps_its_last_epoch():
    from types import SimpleNamespace
    base = SimpleNamespace(optimizer="adamw", weight_decay=0.01)
    trial, anneal = trials.Candidate(3, 1e-4, 9).final_phases(base, 2, 5, "tune", "anneal")
    assert (trial["epochs"], trial["scheduler"], trial["early_stop"]) == (2, "constant", trials.PATIENCE)
    assert (anneal["epochs"], anneal["scheduler"], anneal["early_stop"], anneal["restore_best"]) == \
        (5, "cosine", 0, False)
    assert trial["freeze_options"] == anneal["freeze_options"] == {"k": 3} and anneal["lr"] == trial["lr"]
    (only,) = trials.Candidate(9, 1e-4, 9).final_phases(base, 0, 4, "tune", "anneal")  # never trained
    assert (only["name"], only["freeze"], only["epochs"], only["scheduler"]) == ("tune", "none", 4, "cosine")


def test_lr_range_test_suggests_a_sensible_lr_and_restores_the_model(tmp_path):
    g = torch.Generator().manual_seed(0)
    x = torch.cat([torch.randn(256, 2, generator=g) + 2, torch.randn(256, 2, generator=g) - 2])
    y = torch.cat([torch.zeros(256, dtype=torch.long), torch.ones(256, dtype=torch.long)])
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16, shuffle=True,
                                         generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    model = _Linear()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    found = lr_find.range_test(model, loader, opt, torch.nn.functional.cross_entropy)
    assert 1e-3 <= found.suggestion <= 1.0, found.format()  # plain SGD on separable blobs: 1e-2 .. 1e-1ish
    assert found.minimum == pytest.approx(found.suggestion * 10)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # it trained nothing
    assert opt.param_groups[0]["lr"] == 0.1
    png = lr_find.plot(found, tmp_path / "lr.png")
    assert png.stat().st_size > 5000


def test_lr_edge_ignores_where_a_flat_curve_has_its_minimum():
    """After a trained head the sweep is flat until it climbs: the minimum falls anywhere, the edge does not."""
    lrs = [1e-7 * 10 ** (i * 7 / 99) for i in range(100)]
    rise_from = next(i for i, lr in enumerate(lrs) if lr > 1e-3)
    edges = []
    for seed in range(5):
        g = torch.Generator().manual_seed(seed)
        noise = (torch.rand(100, generator=g) - 0.5).mul(0.3).tolist()  # +-15% per step
        losses = [0.8 + n + (0 if i < rise_from else 0.4 * (i - rise_from)) for i, n in enumerate(noise)]
        smoothed, _, _, lowest = lr_find.suggest(lrs, losses)
        edges.append(lr_find.edge(lrs, smoothed))
    assert all(3e-4 <= e <= 3e-3 for e in edges), edges  # within half a decade of where the climb starts
    assert lr_find.edge(lrs[:50], [1.0] * 50) == lrs[49]  # never climbs: the sweep's last lr
    flat = [0.1] * 60 + [0.1 * 1.2 ** k for k in range(1, 41)]
    flat[12] = 0.07  # one early dip 30% below the level (what a noisy, low loss gives) does not pull the edge
    assert lr_find.edge(lrs, flat) == lrs[59]


def test_lr_suggestion_from_a_known_curve():
    lrs = [10 ** (-6 + 6 * i / 99) for i in range(100)]  # 1e-6 .. 1
    losses = [2.0 if lr < 1e-3 else 2.0 - 0.5 * math.log10(lr / 1e-3) if lr <= 1e-1 else 1.0 + 50 * (lr - 0.1)
              for lr in lrs]
    _, suggestion, steep, lowest = lr_find.suggest(lrs, losses, beta=0.5)
    assert 0.05 <= lowest <= 0.2 and suggestion == pytest.approx(lowest / 10)
    assert 1e-3 <= steep <= lowest


# ---------------------------------------------------------------------- validation size

def test_small_validation_split_warns_and_auto_enlarges_it():
    from tlhub.data.splits import Splits
    from tlhub.interfaces import Split
    assert validation.warning(4, decisions=True)  # the 4-image split of the issue
    assert "+-0.177" in validation.warning(4, decisions=True)  # Agresti-Coull at p = 0.5
    assert validation.warning(1000, decisions=True) == ""
    assert validation.warning(40, decisions=False) == "" and validation.warning(10, decisions=False)
    train = Split(list(range(1000)), [i % 2 for i in range(1000)])
    splits = Splits(["a", "b"], train, Split([0, 1, 0, 1], [0, 1, 0, 1]), Split([], []))
    bigger, plan = validation.plan_validation(splits, score=0.8, seed=0)
    want = validation.needed(0.8) - 4
    assert want <= plan.moved <= want + 2 and len(bigger.val) == 4 + plan.moved  # stratified: rounded per class
    assert len(bigger.train) + len(bigger.val) == 1004 and plan.criterion == "val_score"
    assert plan.se_after <= validation.MAX_SE < plan.se_before and "moved" in plan.message
    tiny = Splits(["a", "b"], Split(list(range(40)), [i % 2 for i in range(40)]), splits.val, splits.test)
    kept, fallback = validation.plan_validation(tiny, score=0.8, seed=0)
    # too small to reach the target: nothing is moved (training data is worth more than a still-noisy split)
    assert fallback.criterion == "val_loss" and kept is tiny and fallback.moved == 0
    assert "validation loss" in fallback.message and "none are moved" in fallback.message


# ---------------------------------------------------------------------- recipes

@pytest.mark.parametrize("override, message", [
    ("phases.0.auto_budget=0", "auto_budget: must be > 0"),
    ("phases.0.auto_minutes=-1", "auto_minutes: must be >= 0"),
    ("phases.0.early_stop=-2", "early_stop: must be >= 0"),
    ("phases.1.freeze=auto", "only one phase may be 'auto'"),
])
def test_bad_auto_options_exit_2(tiny_recipe, override, message):
    run = CliRunner().invoke(cli, ["run", str(tiny_recipe), *AUTO, override])  # refused before any training
    assert run.exit_code == 2 and message in run.output and "Traceback" not in run.output, run.output
    assert not (tiny_recipe.parent / "run").exists()


# ---------------------------------------------------------------------- end to end on the tiny backbone

def test_auto_run_prints_stores_and_draws_the_search(tiny_recipe):
    # a validation split large enough to rank by accuracy (a smaller one keeps its examples and ranks by loss)
    result = tlhub.run(tiny_recipe, SMALL + AUTO + ["phases.0.auto_budget=4", "data.val_split=0.3", "phases.0.lr=0.003"],
                       quiet=True)
    run = result.run_dir
    data = json.loads((run / "auto_search.json").read_text())
    rows = data["trials"]
    assert {"plan", "trainable_groups", "lr", "epochs", "val_score", "seconds", "status"} <= set(rows[0])
    ran = [r for r in rows if r["epochs"]]
    assert all(0 <= r["val_score"] <= 1 for r in ran)  # each trial's best validation score, read back
    assert len({r["val_score"] for r in ran}) > 1
    winner = next(r for r in rows if r["status"] == "winner")
    assert winner["plan"] == data["winner"]
    if data["criterion"] == "val_loss":  # too few validation examples to rank by accuracy
        assert winner["val_loss"] == min(r["val_loss"] for r in ran)
    else:
        assert winner["val_score"] == max(r["val_score"] for r in ran)
    assert data["budget"]["spent"] <= data["budget"]["limit"] + 1e-6 or len(ran) == 1
    assert (run / "auto_search.png").stat().st_size > 5000
    # the winner's trial, then its remaining epochs annealed (unless the head alone won)
    tune = [p for p in data["phases"] if p["freeze"] != "frozen"]
    assert not tune or ([p["scheduler"] for p in tune] in (["constant", "cosine"], ["cosine"])
                        and tune[0]["epochs"] == winner["epochs"] and not tune[-1]["early_stop"])
    saved = tomllib.loads((run / "recipe.toml").read_text())
    assert "auto" not in [p["freeze"] for p in saved["phases"]]
    assert [p["name"] for p in saved["phases"]][: len(data["phases"])] == [p["name"] for p in data["phases"]]
    log = (run / "run.log").read_text()
    assert "fine-tuning lrs" in log and "lr_find" not in data
    assert "successive halving" in log and f"auto: winner {winner['plan']}" in log and "the default plan" in log
    assert len(ran) >= 3 and result.metrics["accuracy"] > 0.25  # above chance (4 classes)
    assert not (run / "auto").exists()  # trial checkpoints removed; the JSON keeps the record
    # this data's winner trains the top groups on a cache: the anneal takes the search's, the phase after
    # the auto one (not written by the search) fills its own
    assert winner["plan"].startswith("top")
    anneal = log[log.index("phase 3/4 'anneal'"):log.index("phase 4/4")]
    assert "filled by the search and reused" in anneal and "filled by the search" not in log[log.index("phase 4/4"):]


def test_the_run_keeps_only_the_winners_cache_held_in_memory():
    from pathlib import Path
    from types import SimpleNamespace

    from tlhub.auto.trials import winner_cache
    from tlhub.model.transfer import Entry
    mem, spilled = SimpleNamespace(rows=SimpleNamespace(paths=[])), SimpleNamespace(rows=SimpleNamespace(paths=[Path("x")]))
    shared = {(Entry(2), True): (mem, mem), (Entry(3), True): (mem, mem), (Entry(4, pooled=True), True): (mem, mem)}
    assert list(winner_cache(shared, 2, 4)) == [(Entry(2), True)]       # top 2 of 4: after 2 groups
    assert list(winner_cache(shared, 0, 4)) == [(Entry(4, pooled=True), True)]  # head only: pooled features
    assert winner_cache(shared, 4, 4) == {}                              # all groups train: no cache
    assert winner_cache({(Entry(2), False): (None, mem)}, 2, 4) == {(Entry(2), False): (None, mem)}
    assert winner_cache({(Entry(2), True): (spilled, mem)}, 2, 4) == {}  # its files go with the trial folders


def test_same_seed_same_choice_and_write_reproduces_it(tiny_recipe, tmp_path):
    out = tmp_path / "plan.toml"
    args = ["advise", str(tiny_recipe), *SMALL, *AUTO, "--json"]
    first = CliRunner().invoke(cli, args + ["--write", str(out)], catch_exceptions=False)
    second = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert first.exit_code == 0 and second.exit_code == 0, first.output
    a = json.loads(first.stdout[first.stdout.index("{"):first.stdout.rindex("}") + 1])
    b = json.loads(second.stdout[second.stdout.index("{"):second.stdout.rindex("}") + 1])
    assert a["winner"] == b["winner"] and a["phases"] == b["phases"]
    assert [(r["plan"], r["epochs"], r["val_score"]) for r in a["trials"]] == \
           [(r["plan"], r["epochs"], r["val_score"]) for r in b["trials"]]
    written = load_and_validate(out)
    assert "auto" not in [p.freeze for p in written.phases]
    chosen = [(p["name"], p["freeze"], p["lr"], p["epochs"]) for p in a["phases"]]
    assert [(p.name, p.freeze, p.lr, p.epochs) for p in written.phases][: len(chosen)] == chosen
    assert [p.name for p in written.phases][len(chosen):] == ["top"]  # the phase after the auto one is kept
    again = CliRunner().invoke(cli, ["advise", str(tiny_recipe), *SMALL, *AUTO, "--write", str(out)])
    assert again.exit_code == 2 and "already exists" in again.output


def test_advise_lr_alone(tiny_recipe, tmp_path):
    run = CliRunner().invoke(cli, ["advise", str(tiny_recipe), *SMALL, "--lr", "--out", str(tmp_path)],
                             catch_exceptions=False)
    assert run.exit_code == 0 and "lr range test: 100 steps" in run.output, run.output
    assert (tmp_path / "lr_find.png").stat().st_size > 5000
    r = load_recipe(tiny_recipe)
    assert r.phases[0].freeze == "frozen"


def test_lr_auto_in_a_phase_measures_its_learning_rate(tiny_recipe):
    r = load_recipe(tiny_recipe, ['phases.top.lr="auto"'])
    assert r.phases[1].lr_find and not r.phases[0].lr_find
    assert tomllib.loads(to_toml(r))["phases"][1]["lr_find"] is True  # the resolved recipe keeps the choice
    result = tlhub.run(tiny_recipe, SMALL + ['phases.top.lr="auto"', "phases.top.scheduler=constant",
                                             "phases.top.warmup=0", "phases.top.epochs=1"], quiet=True)
    log = (result.run_dir / "run.log").read_text()
    assert 'lr = "auto": lr range test' in log and (result.run_dir / "lr_find-top.png").is_file()
    used = next(row["lr"] for row in result.history if row["phase"] == "top")
    suggested = float(log.split("the phase trains at ")[1].split()[0])
    assert used == pytest.approx(suggested, rel=1e-2) and used != pytest.approx(1e-3)


def test_lr_range_test_without_descent_suggests_nothing():
    model = _Linear()
    for p in model.parameters():
        p.requires_grad_(False)
    model.fc.bias.requires_grad_(True)
    x, y = torch.randn(64, 2), torch.randint(0, 2, (64,))  # random labels: nothing to learn
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=64)
    found = lr_find.range_test(model, loader, torch.optim.SGD([model.fc.bias], lr=1e-9),
                               torch.nn.functional.cross_entropy, lr_max=1e-4)
    assert not found.descent and "suggests nothing" in found.format()


def test_trials_on_a_large_split_train_short_epochs(tiny_recipe, monkeypatch):
    """An epoch longer than TRIAL_STEPS batches: every trial epoch trains the first TRIAL_STEPS batches of a
    fresh shuffle (epoch_steps), and the winner's trial phase keeps that cap so the recipe reproduces it."""
    from tlhub.auto import driver
    assert driver.trial_steps(16000, 16) == driver.TRIAL_STEPS and driver.trial_steps(4000, 32) == 0
    assert driver.trial_steps(16000, 16, processes=2) == 0  # 500 batches per process
    monkeypatch.setattr(driver, "TRIAL_STEPS", 2)
    # a validation split large enough to rank by accuracy (a smaller one keeps its examples and ranks by loss)
    result = tlhub.run(tiny_recipe, SMALL + AUTO + ["phases.0.auto_budget=4", "data.val_split=0.3", "phases.0.lr=0.003"],
                       quiet=True)
    data = json.loads((result.run_dir / "auto_search.json").read_text())
    trial = [p for p in data["phases"] if p["name"] == "tune"]
    assert all(p["epoch_steps"] == 2 for p in trial)
    assert all("epoch_steps" not in p for p in data["phases"] if p["name"] in ("head", "anneal"))
    rows = [r for r in result.history if r["phase"] == "tune"]
    assert trial and rows and all(r["steps"] == 2 for r in rows)  # this data: a fine-tuning plan wins
    assert "each trial epoch trains the first 2" in (result.run_dir / "run.log").read_text()


def test_one_shot_depth_trials_on_a_large_split_and_the_run_continues_from_the_winner(tiny_recipe, monkeypatch):
    """Where the lr trials train part of an epoch, the deeper plans train as many batches one-shot, and a
    fine-tuning winner's trial phase (cosine, its batches) is the run's: continued by the anneal, not retrained."""
    from tlhub.auto import driver, stages
    monkeypatch.setattr(stages, "LR_STAGE_SHARE", 0.01)  # the lr stage's share pays for part of an epoch ...
    monkeypatch.setattr(driver, "MIN_TRIAL_STEPS", 1)    # ... of this tiny training split
    # a budget too small for one epoch of the whole grid: the lr first, then the depths
    result = tlhub.run(tiny_recipe, SMALL + AUTO + ["phases.0.auto_budget=0.6"], quiet=True)
    data = json.loads((result.run_dir / "auto_search.json").read_text())
    # the searched trials (the shipped plan, the incumbent, trains whole epochs first)
    ran = [r for r in data["trials"] if r["epochs"] and r["freeze"] != "frozen" and "(shipped)" not in r["plan"]]
    steps = {r["steps"] for r in ran}
    assert len(steps) == 1 and steps.pop() > 0 and {r["scheduler"] for r in ran} == {"cosine"}
    assert len({r["freeze"] for r in ran}) > 1  # depths beyond the top quarter were measured
    assert not [r for r in data["trials"] if r["epochs"] and r["scheduler"] == "constant" and r["freeze"] != "frozen"]
    log = (result.run_dir / "run.log").read_text()
    assert "the deeper plans at it" in log
    winner = next(r for r in data["trials"] if r["status"] == "winner")
    tune = [p for p in data["phases"] if p["name"] == "tune"]
    if "(shipped)" in winner["plan"]:  # the incumbent's whole epochs, its lr annealed: the run adds nothing
        assert [(p["scheduler"], p["epochs"], "epoch_steps" in p) for p in tune] == [("cosine", winner["epochs"], False)]
        assert [p["name"] for p in data["phases"]] == ["head", "tune"]
    elif winner["freeze"] != "frozen":  # the run adopted the trial: its phase as trained, then the anneal
        assert [(p["scheduler"], p["epoch_steps"]) for p in tune] == [("cosine", winner["steps"])]
        rows = [r for r in result.history if r["phase"] == "tune"]
        assert [r["steps"] for r in rows] == [winner["steps"]]
        assert [p["name"] for p in data["phases"]][-1] == "anneal"
