"""``freeze = "auto"`` at run time: measure, search, and hand the trainer ordinary phases.

1. The four-case rule (``advise.measure``: linear probes on frozen features) gives the prior: which
   depth to try first, and the accuracy the validation split must resolve.
2. A too-small validation split is enlarged from the training split, or trials are ranked by loss
   (``validation``).
3. The budget: ``auto_budget`` x the estimated cost of the *default plan* (a head phase, then the top
   quarter of the groups for ``FINAL_EPOCHS`` epochs, the common hand-written recipe) is what the search may
   spend; the winner's remaining epochs come on top. ``auto_minutes`` caps the search too.
4. A head phase on frozen features (shared by every candidate), an lr range test on the top half of
   the groups (the lr where its loss starts to climb is the grid's top lr), then successive halving over the candidates (``search``).
5. The auto phase is replaced by the head phase and the winner's phase; the winner's trial checkpoint
   becomes the run's, so the trainer continues it instead of starting over.
"""
from __future__ import annotations

import copy
import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from tlhub.artifacts import rundir
from tlhub.auto import lr_find, search, trials, validation

log = logging.getLogger("tlhub")

FINAL_EPOCHS = 8     # the winner's phase trains up to this many epochs (early stop decides the rest)
HEAD_EPOCHS = 10     # the shared head phase (cheap on cached features; early stop decides)
LR_STEPS_MIN = 30    # a range test shorter than this is too coarse to read


@dataclass
class Outcome:
    recipe: object              # the auto phase replaced by ordinary phases
    splits: object              # possibly with an enlarged validation split
    result: search.SearchResult


def auto_index(recipe) -> int:
    return next(i for i, p in enumerate(recipe.phases) if p.freeze == "auto")


def expand(recipe, index: int, phases: list[dict]):
    """``recipe`` with its auto phase (``index``) replaced by ``phases`` (ordinary [[phases]] tables)."""
    from tlhub.auto.advise import expand_auto
    assert recipe.phases[index].freeze == "auto"
    return expand_auto(recipe, phases)


def _names(recipe, index: int) -> tuple[str, str]:
    taken = {p.name for i, p in enumerate(recipe.phases) if i != index}
    return tuple(n if n not in taken else f"{n}_auto" for n in ("head", "tune"))


def _lr_centre(runner: trials.TrialRunner, k: int, base, name: str, out: Path, steps: int):
    """The lr range test on the top ``k`` groups from the head phase's weights: (LRFind or None, note)."""
    from tlhub.model import apply_states
    from tlhub.training import checkpoint
    from tlhub.training.optim import build_optimizer
    from tlhub.training.phase import _loader, phase_inputs
    cand = trials.Candidate(k, base.lr, runner.model.n_groups)
    recipe = runner.trial_recipe([cand.phase(base, 1, name)])
    index = len(recipe.phases) - 1
    ctx = runner._ctx(recipe, runner.root / "lr_find", [])
    start = checkpoint.newest(runner.prefix_dir) if runner.prefix_dir else None
    if start is not None:
        checkpoint.load_model_only(start, runner.model)
    plan = ctx.plan.phases[index]
    audit = apply_states(runner.model, list(plan.groups), plan.train_names)
    d = recipe.data
    train, _, first, _ = phase_inputs(runner.accelerator, runner.model, recipe, index, audit, runner.datasets,
                                      runner.collate, runner.deterministic, ctx.run_dir, runner.shared_cache)
    collate = train.collate if hasattr(train, "collate") and first.cached else runner.collate
    torch.manual_seed(recipe.train.seed)
    loader = _loader(train, d.batch_size, True, collate, d.workers, recipe.train.seed)
    opt = build_optimizer(runner.model, recipe.phases[index], plan.lrs)
    try:
        found = lr_find.range_test(runner.model, loader, opt, entry=first,
                                   steps=steps)
    except ValueError as exc:
        return None, f"{exc}; the grid is centred on the phase's lr / 10"
    lr_find.plot(found, out, title=f"lr range test: top {k} groups after the head phase")
    # The edge needs no descent: after a trained head the loss is flat until it climbs.
    return found, found.format()


def _agree(accelerator, value):
    """The main process's ``value`` on every process (timings differ; decisions must not)."""
    if accelerator.num_processes > 1:
        from accelerate.utils import broadcast_object_list
        box = [value]
        broadcast_object_list(box)
        return box[0]
    return value


def search_auto(accelerator, recipe, registry, backbone, rng_state, splits, run_dir: Path, make_datasets, stop,
                resuming: bool = False) -> Outcome:
    """Run the search for ``recipe``'s auto phase; see the module docstring."""
    from tlhub.auto import advise
    from tlhub.interfaces import ImagePreprocessing
    from tlhub.model import ModelSpec, add_head
    t0 = time.time()
    index = auto_index(recipe)
    base = recipe.phases[index]
    saved = Path(run_dir) / "auto_search.json"
    if resuming and saved.is_file():  # the search finished before the interruption: never search twice
        data = json.loads(saved.read_text())
        if data.get("validation", {}) and data["validation"]["moved"]:
            splits = validation.plan_validation(splits, data["validation"]["accuracy"], recipe.data.split_seed)[0]
        log.info("auto: using the search recorded in %s (winner %s)", saved, data["winner"])
        return Outcome(expand(recipe, index, data["phases"]), splits, search.SearchResult(**{
            **data, "trials": [search.TrialRow(**r) for r in data["trials"]]}))

    advice = advise.measure(recipe, max_train=1000, max_eval=1000, backbone=backbone, splits=splits, say=log.info)
    log.info("auto: prior (four-case rule): %s; it would train %s", advice.case,
             " then ".join(f"{p['freeze']}{' k=' + str(p['freeze_options']['k']) if 'freeze_options' in p else ''}"
                           for p in advice.phases))
    splits, vplan = validation.plan_validation(splits, advice.final.accuracy, recipe.data.split_seed)
    log.info("auto: %s", vplan.message)

    torch.set_rng_state(rng_state)  # the same head initialisation as the final model
    spec = ModelSpec.from_recipe(recipe)
    model = add_head(copy.deepcopy(backbone), spec, registry, len(splits.classes))
    if recipe.train.channels_last and isinstance(backbone.preprocessing, ImagePreprocessing):
        model = model.use_channels_last()
    datasets, collate, deterministic = make_datasets(model.backbone, recipe, splits)
    costs = trials.measure_costs(model, datasets["val"], collate, len(splits.train), len(splits.val),
                                 recipe.train.cache and deterministic)
    costs.seconds_per_flop = _agree(accelerator, costs.seconds_per_flop)
    n = model.n_groups
    quarter = max(1, round(n / 4))
    head_epochs = HEAD_EPOCHS if index == 0 else 0
    default = costs.phase(0, head_epochs) + costs.phase(quarter, FINAL_EPOCHS)
    limit = base.auto_budget * default  # the search's own allowance; the winner's remaining epochs come on top
    capped = ""
    shutil.rmtree(Path(run_dir) / "auto", ignore_errors=True)  # trials of an interrupted search start over
    head_name, tune_name = _names(recipe, index)
    prefix = [trials.Candidate(0, base.lr, n).phase(base, head_epochs, head_name)] if head_epochs else []
    runner = trials.TrialRunner(accelerator, recipe, index, registry, model, datasets, collate, deterministic,
                                Path(run_dir) / "auto", stop, prefix=prefix)
    with trials.quiet_log():
        seconds = runner.run_prefix()
    if head_epochs:  # calibrate seconds per FLOP on the head phase just trained (a timed pass, not a guess)
        costs.seconds_per_flop = _agree(accelerator, seconds / costs.phase(0, head_epochs))
    budget = search.Budget(max(0.0, limit))
    if base.auto_minutes and costs.seconds_per_flop:
        cap = base.auto_minutes * 60 / costs.seconds_per_flop  # the head phase counts against it
        capped = f", capped by auto_minutes = {base.auto_minutes:g}" if cap < limit else ""
        budget.limit = min(budget.limit, cap)
    budget.spent += costs.phase(0, head_epochs)
    if head_epochs:
        costs.filled.add(0)
    sec = costs.seconds
    log.info("auto: head phase %.1f s. Default plan (head %d epochs, then top %d of %d groups for %d epochs) "
             "~%.0f s here; auto_budget = %g: search up to ~%.0f s more%s, then the winner's remaining epochs "
             "(total estimated <= ~%.0f s)", seconds, head_epochs, quarter, n, FINAL_EPOCHS, sec(default),
             base.auto_budget, sec(budget.limit - budget.spent), capped,
             sec(budget.limit) + sec(costs.phase(n, FINAL_EPOCHS)))
    rule_k = 0 if len(advice.phases) == 1 else (
        advice.phases[-1].get("freeze_options", {}).get("k", n))
    lr_note, found = "", None
    half = max(1, round(n / 2))
    # The range test may take a quarter of what is left: up to 100 steps, and not under 30 (too coarse).
    step = costs.epoch(half) * recipe.data.batch_size / max(1, costs.n_train)
    steps = min(lr_find.STEPS, int((0.25 * (budget.limit - budget.spent) - costs.trial(half, 0)) / max(step, 1e-9)))
    if steps >= LR_STEPS_MIN:
        with trials.quiet_log():
            found, lr_note = _lr_centre(runner, half, base, tune_name, Path(run_dir) / "lr_find.png", steps)
        budget.spent += costs.trial(half, 0) + step * (len(found.lrs) if found else steps)
        costs.filled.add(half)
    else:
        lr_note = (f"no lr range test: {LR_STEPS_MIN} steps would take over a quarter of the budget left; the grid "
                   f"is centred on the phase's lr / 10")
    log.info("auto: %s", lr_note)
    # The grid's top lr is the range test's edge (the last lr before the loss climbs; where the minimum of
    # a flat curve falls is noise) and it spans one decade below it (centre = edge / 3, x 1/3, 1, 3); never
    # above the head's own lr. Without a range test: the usual "10x lower" of a second phase.
    # Whatever the range test reads, the centre stays in the band of the usual second phase, 3-100x below
    # the head's lr: on a low, noisy loss the test can misread the edge by orders of magnitude.
    centre = found.edge / 3 if found else base.lr / 10
    band = min(max(centre, base.lr / 100), base.lr / 3)
    log.info("auto: fine-tuning lrs centred on %.2g (%s%s)", band,
             f"the range test's edge {found.edge:.2g} / 3" if found else f"the head's lr {base.lr:g} / 10",
             "" if band == centre else f", {centre:.2g} brought into [head lr / 100, head lr / 3]")
    centre = band
    grid = trials.candidates(n, centre, base.lr, rule_k)
    chosen = trials.affordable(grid, costs, budget.limit - budget.spent)
    if len(chosen) < len(grid):
        log.info("auto: one epoch of all %d candidates would spend over half the budget left: trying only the "
                 "centre lr at each depth (%d candidates)", len(grid), len(chosen))
    states = [trials.TrialState(c) for c in chosen]
    if head_epochs:
        runner.record_prefix(next(s for s in states if s.candidate.k == 0), seconds, costs.phase(0, head_epochs))
    if budget.limit > budget.spent:
        log.info("auto: successive halving over %d candidates (criterion %s):", len(states), vplan.criterion)
        winner = search.successive_halving(states, costs, budget, FINAL_EPOCHS,
                                           lambda st, e: runner.train(st, e, tune_name), vplan.criterion, log.info)
    else:  # no room to measure: the rule's plan as it is
        log.info("auto: auto_budget = %g leaves nothing to search; training the rule's plan", base.auto_budget)
        winner = next(s for s in states if s.candidate.prior == 0)
        winner.status = "winner (not measured)"
    head_won = winner.candidate.k == 0 and bool(prefix)
    phases = prefix + ([] if head_won else [winner.candidate.phase(base, FINAL_EPOCHS, tune_name)])
    final = expand(recipe, index, phases)
    result = search.SearchResult(
        [search.TrialRow.of(s, list(model.backbone.group_names), default) for s in states], winner.candidate.name,
        phases, vplan.criterion,
        {"auto_budget": base.auto_budget, "auto_minutes": base.auto_minutes, "limit": round(budget.limit / default, 4),
         "spent": round(budget.spent / default, 4), "default_plan_seconds_estimate": round(sec(default), 1),
         "flops_per_example": [round(f) for f in costs.group_flops]},
        found.to_dict() if found else None, vplan.to_dict(),
        {"case": advice.case, "phases": advice.phases, "reasons": advice.reasons}, round(time.time() - t0, 2))
    log.info("auto: search took %.0f s (%.2f x the default plan's estimated cost spent)\n%s\nauto: winner %s; "
             "the run continues with %s", result.seconds, budget.spent / default, result.table(), winner.candidate.name,
             " then ".join(p["name"] for p in phases))
    if accelerator.is_main_process:
        runner.adopt(winner, run_dir, final, splits.classes)
        runner.shared_cache.clear()
        shutil.rmtree(Path(run_dir) / "auto", ignore_errors=True)  # trial checkpoints: the JSON keeps the record
        rundir.write_json(saved, result.to_dict())
        if winner.epochs:
            search.plot(result, Path(run_dir) / "auto_search.png")
    accelerator.wait_for_everyone()
    return Outcome(final, splits, result)
