"""The trials of a rung side by side, one per process (``tlhub.auto.parallel``): the halving plans a rung, then
trains it at once; under 2 CPU processes each process trains its own trials alone and both end with the same
search and the same weights."""
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from tlhub.auto import parallel, search
from test_auto import _fake, _states
from test_distributed import _torchrun

SCRIPT = """
import hashlib, json, os, sys
import tlhub
from tlhub.auto import bound, driver, trials
bound.TIMES = 1e9                      # the shipped-recipe bound would cut this tiny search to a trial or two
bound.deep_factor = lambda *a: 1.0     # plan by FLOPs: the two processes' timings must not matter here
driver.MIN_TRIAL_STEPS = 1
real, mine = trials.TrialRunner.train, []
def counted(self, state, epochs, name, solo=False):
    if solo:
        mine.append([state.folder, epochs])
    return real(self, state, epochs, name, solo)
trials.TrialRunner.train = counted
result = tlhub.run(sys.argv[1], sys.argv[3:], quiet=True)
digest = hashlib.sha256()
for k, v in sorted(result.model.state_dict().items()):
    digest.update(k.encode()); digest.update(v.detach().cpu().numpy().tobytes())
with open(os.path.join(sys.argv[2], f"rank{os.environ['RANK']}.json"), "w") as f:
    json.dump({"weights": digest.hexdigest(), "solo": mine, "metrics": result.metrics}, f)
"""


def test_a_rung_side_by_side_trains_the_same_trials_and_charges_what_they_ran():
    quality = {"head@0.01": 0.3, "top1@0.001": 0.6, "top2@0.001": 0.9, "all@0.001": 0.7}
    runs = {}
    for mode in ("sequential", "side by side"):
        states = [s for s in _states() if s.candidate.lr == 1e-3 or s.candidate.k == 0]
        costs, train, trained = _fake({0: 0.1, 1: 1.0, 2: 2.0, 4: 4.0}, quality)
        rungs = []

        def together(planned):
            rungs.append([st.candidate.name for st, _ in planned])
            for st, total in planned:
                train(st, total)
        budget = search.Budget(40.0)
        winner = search.successive_halving(states, costs, budget, 8, train,
                                           side_by_side=together if mode == "side by side" else None)
        runs[mode] = (winner.candidate.name, trained, budget.spent, rungs)
    assert runs["side by side"][:3] == runs["sequential"][:3]  # same winner, same trials and epochs, same charge
    assert runs["side by side"][3][0] == ["head@0.01", "top1@0.001", "top2@0.001", "all@0.001"]  # one call a rung
    assert runs["sequential"][3] == []


def test_a_planned_rung_holds_the_budget_for_every_trial_in_it():
    """Planned at once, a rung cannot spend what an earlier trial of it will: the dearest one is left out."""
    states = [s for s in _states() if s.candidate.lr == 1e-3 or s.candidate.k == 0]
    quality = {"head@0.01": 0.3, "top1@0.001": 0.6, "top2@0.001": 0.9, "all@0.001": 0.7}
    costs, train, trained = _fake({0: 0.1, 1: 1.0, 2: 2.0, 4: 4.0}, quality)
    budget = search.Budget(7.0)
    search.successive_halving(states, costs, budget, 1, train,
                              side_by_side=lambda planned: [train(st, e) for st, e in planned])
    assert [name for name, _ in trained] == ["head@0.01", "top1@0.001", "top2@0.001"]
    assert next(s for s in states if s.candidate.k == 4).status == "skipped: over budget"
    assert budget.spent <= budget.limit


def test_side_by_side_needs_several_processes_and_no_gradient_accumulation():
    import torch

    def acc(n, device="cuda"):
        return SimpleNamespace(num_processes=n, device=torch.device(device))

    def recipe(accum):
        return SimpleNamespace(train=SimpleNamespace(grad_accum=accum))

    def phase(trials="auto"):
        return SimpleNamespace(auto_trials=trials)
    assert parallel.why_not(acc(2), recipe(1), phase()) == ""  # a device each: side by side
    assert "share the cores" in parallel.why_not(acc(2, "cpu"), recipe(1), phase())
    assert parallel.why_not(acc(2, "cpu"), recipe(1), phase("side_by_side")) == ""
    assert "data_parallel" in parallel.why_not(acc(2), recipe(1), phase("data_parallel"))
    assert parallel.why_not(acc(1), recipe(1), phase("side_by_side")) == "one process"
    assert "grad_accum = 2" in parallel.why_not(acc(2), recipe(2), phase("side_by_side"))


@pytest.mark.slow
def test_two_processes_run_the_trials_of_a_rung_side_by_side(tiny_recipe, tmp_path):
    overrides = ["data.options.per_class=40", "phases.0.freeze=auto", "phases.0.lr=0.03", "phases.0.auto_budget=4",
                 "phases.0.auto_trials=side_by_side"]  # CPU processes: data-parallel unless asked
    r0, r1 = _torchrun(tmp_path, tiny_recipe, *overrides, port=29521, script_text=SCRIPT)
    assert r0["weights"] == r1["weights"]  # the run went on from the winner's checkpoint in both processes
    # each process trained trials of its own; a survivor may go on in the other process at the next rung (from
    # its checkpoint), but no trial call ran twice
    calls = [tuple(c) for c in r0["solo"] + r1["solo"]]
    assert r0["solo"] and r1["solo"] and len(set(calls)) == len(calls)
    run = tmp_path / "run"
    log = (run / "run.log").read_text()
    assert "2 processes: the trials of a rung run side by side" in log
    data = json.loads((run / "auto_search.json").read_text())
    # the shipped plan (the incumbent, trained first by both processes together) aside
    ran = [r for r in data["trials"] if r["epochs"] and r["trainable_groups"] and "(shipped)" not in r["plan"]]
    assert len(ran) >= 2
    assert len({folder for folder, _ in calls}) == len(ran)  # every fine-tuning trial of the record ran side by side
    winner = next(r for r in data["trials"] if r["status"] == "winner")
    measured = [r for r in data["trials"] if r["epochs"]]
    if data["criterion"] == "val_loss":
        assert winner["val_loss"] == min(r["val_loss"] for r in measured)
    else:
        assert winner["val_score"] == max(r["val_score"] for r in measured)
    assert r0["metrics"]["accuracy"] == r1["metrics"]["accuracy"] > 0.25  # above chance (4 classes)
