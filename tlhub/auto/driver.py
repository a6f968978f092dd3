"""``freeze = "auto"`` at run time: measure, search, and hand the trainer ordinary phases.

1. The four-case rule (``advise.measure``: linear probes on frozen features) gives the prior: which
   depth to try first, and the score (the task's primary metric) the validation split must resolve.
2. A too-small validation split is enlarged from the training split, or trials are ranked by loss
   (``validation``).
3. The budget: ``auto_budget`` x the estimated cost of the *default plan* (a head phase, then the top
   quarter of the groups for ``fine_tune_epochs``, the common hand-written recipe) is what the whole
   auto phase may cost: the head phase, then the search (up to half of what is left), then the winner's
   training (the rest; none where each trial is a whole training, see below). ``auto_minutes`` caps it too.
4. The shipped recipe's head phase on frozen features (shared by every candidate), then its fine-tuning (the
   incumbent a searched plan must beat), then successive halving (``search``) over head only and the top
   quarter / half / all groups at the auto phase's lr / 3.3, / 10 and / 30.
5. The auto phase is replaced by the head phase, the winner's trial phase (its checkpoint becomes the
   run's, so it is not trained twice) and an anneal phase: the winner's remaining epochs with the lr
   decaying to zero (cosine), keeping its last epoch; no more than ``FINE_TUNE_STEPS`` steps in all.
On a large training split, trial epochs are capped at ``TRIAL_STEPS`` batches (``epoch_steps``), and the
lr trials train what their share of the budget pays for; when that is part of an epoch, the depths are
measured the same way (``stages.one_shot_depths``). On a small one, where every trial already trains the winner's
epochs with its lr annealed to zero, the depths are too, the best trial is the final model as it is, and the
search may spend what the winner's training would have.
"""
from __future__ import annotations

import copy
import json
import logging
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from tlhub.artifacts import rundir
from tlhub.auto import advise, bound, journal, parallel, search, stages, trials
from tlhub.auto.advise import expand_auto
from tlhub.model import ModelSpec, add_head, group_layouts
from tlhub.recipe.plan import build_plan
from tlhub.recipe.schema import PhaseCfg
from tlhub.training import validation
from tlhub.training.checkpoint import identity

log = logging.getLogger("tlhub")

FINE_TUNE_STEPS = 1000  # a fine-tuning phase of about this many optimizer steps (the usual length of one) ...
MAX_EPOCHS = 8          # ... in 1 to this many epochs: many epochs of a small data set, one of a large one
SEARCH_SHARE = 0.5   # of the budget the head phase leaves, what the search may spend (the winner gets the rest)
# A trial's epoch is at most this many steps (half the default fine-tuning), so that on a large
# training split the search still compares its candidates instead of skipping them. Not shorter: short
# trials favour the plans that learn fastest, not the best (docs/freeze.md: 250 steps on rt-polarity).
TRIAL_STEPS = FINE_TUNE_STEPS // 2
# The shortest trial. Fewer batches measure noise: unfreezing deeper groups first pulls validation accuracy
# below the head's, and a trial cut then ranks its plan last (docs/freeze.md: 400 CIFAR images, 13 batches
# an epoch). On a small training split a trial therefore trains several epochs from its first rung.
MIN_TRIAL_STEPS = TRIAL_STEPS // 5
# The shared head phase is the shipped recipe's (2 epochs for images, 4 for text), brief like fastai's fine_tune
# (1 epoch): a head trained to convergence fits the training set, and fine-tuning trials from it differ by less
# than their noise (benchmarks/RESULTS.md).
PROBE_EXAMPLES = 1000  # the four-case rule's linear probes see at most this many training / validation examples


@dataclass
class Outcome:
    plan: object                # the run plan revised: the auto phase replaced by the phases the search chose
    splits: object              # possibly with an enlarged validation split
    result: search.SearchResult
    # The search's frozen-prefix cache at the winner's depth, for the run's phases that the search wrote
    # (``cache_phases``, indices in ``recipe``): their frozen groups hold the weights the cache was filled with.
    caches: dict = field(default_factory=dict)
    cache_phases: range = range(0)


def revised(plan, recipe, registry, backbone, index: int, phases: list[dict], reason: str):
    """``plan`` with its auto phase ``index`` replaced by ``phases`` ([[phases]] tables), each planned as any phase
    is (``tlhub.recipe.plan``): the revision the trainer runs and plan.json records."""
    planned = build_plan(expand_auto(recipe, phases), registry, group_layouts(backbone)).phases
    return plan.revise(index, list(planned[index: index + len(phases)]), reason)


def _names(recipe, index: int) -> tuple[str, str, str]:
    taken = {p.name for i, p in enumerate(recipe.phases) if i != index}
    return tuple(n if n not in taken else f"{n}_auto" for n in ("head", "tune", "anneal"))


def batches_per_epoch(n_train: int, batch_size: int, processes: int = 1) -> int:
    """Optimizer steps in one epoch of ``n_train`` examples (each process takes ``batch_size``), at least 1."""
    return max(1, math.ceil(n_train / max(1, batch_size * processes)))


def fine_tune_epochs(n_train: int, batch_size: int, at_most: bool = False) -> int:
    """Epochs of a fine-tuning phase: at least ``FINE_TUNE_STEPS`` optimizer steps (the default plan, the
    budget's unit), or with ``at_most`` no more than that (the winner's training in all); 1 to ``MAX_EPOCHS``."""
    steps = batches_per_epoch(n_train, batch_size)
    epochs = FINE_TUNE_STEPS // steps if at_most else math.ceil(FINE_TUNE_STEPS / steps)
    return max(1, min(MAX_EPOCHS, epochs))


def trial_steps(n_train: int, batch_size: int, processes: int = 1) -> int:
    """Batches per trial epoch: 0 (whole epochs) unless an epoch is longer than ``TRIAL_STEPS``."""
    return TRIAL_STEPS if batches_per_epoch(n_train, batch_size, processes) > TRIAL_STEPS else 0


def default_plan(costs, head_epochs: int, quarter: int, n_train: int, batch_size: int,
                 processes: int = 1) -> tuple[float, int]:
    """The budget's unit: (FLOPs, fine-tuning steps) of a head phase, then the top ``quarter`` groups.

    The fine-tuning counts at least ``FINE_TUNE_STEPS`` steps (validated once an epoch, at most
    ``MAX_EPOCHS`` times), also where ``MAX_EPOCHS`` trains fewer (a small training split): else a budget of
    a hundred steps cannot pay for trials of ``MIN_TRIAL_STEPS`` at every depth, and the deeper plans are
    cut or skipped unmeasured."""
    epochs = fine_tune_epochs(n_train, batch_size)
    steps = epochs * batches_per_epoch(n_train, batch_size)
    unit_steps = max(FINE_TUNE_STEPS, steps)
    flops = costs.phase(0, head_epochs) + costs.phase(quarter, epochs) + \
        costs.train_steps(quarter, (unit_steps - steps) / processes)
    return flops, unit_steps


def _anneal_epochs(winner, costs, left: float, final: int, refill: bool = True) -> int:
    """Epochs after the winner's trial: what ``left`` of the budget pays for at the winner's depth (its
    cache refilled once unless the search hands it over), at least 1, and no more than ``final`` in all
    (a trial's short epochs counted as the part of an epoch they are). None after a one-shot trial that
    trained all ``final`` epochs or stopped early: its lr already reached zero (or validation stopped improving),
    and a warm restart from a fresh optimizer could lose its weights (benchmarks/RESULTS.md, the unseen data)."""
    k = winner.candidate.k
    seen = winner.epochs * costs.trial_examples(winner.steps)  # examples the trial trained, over its epochs
    if winner.scheduler != "constant" and (seen >= final * costs.n_train or winner.stopped):
        return 0
    affordable = int((left - (costs.fill(k) if refill else 0.0)) // max(costs.epoch(k), 1e-9))
    trained = math.ceil(seen / max(1, costs.n_train) - 1e-9)
    return max(1, min(final - trained, affordable))


def search_auto(accelerator, recipe, plan, registry, backbone, rng_state, splits, run_dir: Path, make_datasets,
                stop, resuming: bool = False) -> Outcome:
    """Run the search for the auto phase of ``recipe``'s run ``plan``, in the plan's search space; see the module
    docstring."""
    t0 = time.time()
    index = next(i for i, p in enumerate(plan.phases) if p.is_auto)
    base, space = plan.phases[index].settings, plan.phases[index].search
    saved = Path(run_dir) / "auto_search.json"
    if resuming and saved.is_file():  # the search finished before the interruption: never search twice
        data = json.loads(saved.read_text())
        if data.get("validation", {}) and data["validation"]["moved"]:  # "accuracy": a record from before tasks
            at = data["validation"].get("score", data["validation"].get("accuracy"))
            splits = validation.plan_validation(splits, at, recipe.data.split_seed)[0]
        log.info("auto: using the search recorded in %s (winner %s)", saved, data["winner"])
        if accelerator.is_main_process:  # a kill after the record, before its trials were removed
            shutil.rmtree(Path(run_dir) / "auto", ignore_errors=True)
        return Outcome(revised(plan, recipe, registry, backbone, index, data["phases"],
                               f"the search recorded in auto_search.json: winner {data['winner']}"),
                       splits, search.SearchResult.from_dict(data))

    advice = advise.measure(recipe, max_train=PROBE_EXAMPLES, max_eval=PROBE_EXAMPLES, backbone=backbone,
                            splits=splits, say=log.info, device=accelerator.device)
    log.info("auto: prior (four-case rule): %s; it would train %s", advice.case,
             " then ".join(f"{p['freeze']}{' k=' + str(p['freeze_options']['k']) if 'freeze_options' in p else ''}"
                           for p in advice.phases))
    splits, vplan = validation.plan_validation(splits, advice.final.score, recipe.data.split_seed)
    log.info("auto: %s", vplan.message)
    task, val_y = splits.task, np.asarray(list(splits.val.labels))
    noise = search.Noise(lambda score: task.score_se(score, len(splits.val), val_y), task.perfect_score)

    torch.set_rng_state(rng_state)  # the same head initialisation as the final model
    spec = ModelSpec.from_recipe(recipe)
    outputs = splits.task.num_outputs(splits.classes)
    model = add_head(copy.deepcopy(backbone), spec, registry, outputs).to(accelerator.device)
    if recipe.train.channels_last and registry.source_modality(recipe.data.source).channels_last(backbone):
        model = model.use_channels_last()
    datasets, collate, deterministic = make_datasets(model.backbone, recipe, splits)
    # what an epoch trains: the modality's training set, which may hold more than the split (augment.swap_pairs)
    n_train = len(datasets["train"])
    costs = trials.measure_costs(model, datasets["val"], collate, n_train, len(splits.val),
                                 recipe.train.cache and deterministic)
    costs.seconds_per_flop = parallel.agree(accelerator, costs.seconds_per_flop)
    n = model.n_groups
    quarter = max(1, round(n / 4))
    ref = bound.shipped_for(backbone)  # the recipe a user would copy: the incumbent, and the bound's unit
    head_epochs = ref.head_epochs if index == 0 else 0
    # Its lrs scaled as the auto phase's lr is from the default lr: a user who sets none gets the file's lrs.
    scale = base.lr / PhaseCfg().lr
    head_lr = float(f"{ref.head_lr * scale:.3g}")
    tune_epochs = fine_tune_epochs(n_train, recipe.data.batch_size)
    costs.batch = recipe.data.batch_size * accelerator.num_processes
    default, unit_steps = default_plan(costs, head_epochs, quarter, n_train, recipe.data.batch_size,
                                       accelerator.num_processes)
    steps = trial_steps(n_train, recipe.data.batch_size, accelerator.num_processes)
    per_epoch = batches_per_epoch(n_train, recipe.data.batch_size, accelerator.num_processes)
    most = fine_tune_epochs(n_train, recipe.data.batch_size, at_most=True)  # the winner's, in all
    # a trial may train as many steps as the winner will: more of its shorter epochs
    max_trial = math.ceil(most * per_epoch / steps) if steps else most
    min_trial = min(max_trial, math.ceil(MIN_TRIAL_STEPS / (steps or per_epoch)))
    if steps:
        costs.trial_train = min(n_train, steps * costs.batch)
    total = base.auto_budget * default  # the whole auto phase: head, search and the winner's training
    capped = ""
    head_name, tune_name, anneal_name = _names(recipe, index)
    # The head phase every trial starts from: the shipped recipe's, as a copy trains it (no early stop)
    prefix = ([trials.Candidate(0, head_lr, n).phase(base, head_epochs, head_name) | trials.KEEP_LAST]
              if head_epochs else [])
    auto_dir = Path(run_dir) / "auto"
    if not resuming:
        shutil.rmtree(auto_dir, ignore_errors=True)
    book = journal.Journal.open(auto_dir, identity(recipe, splits.classes), resuming, accelerator.is_main_process)
    runner = trials.TrialRunner(accelerator, recipe, index, registry, model, datasets, collate, deterministic,
                                auto_dir, stop, prefix=prefix, epoch_steps=steps, journal=book, task=splits.task)
    with trials.quiet_log():
        seconds = runner.run_prefix(resuming)
    if book.head is not None:  # the first run's timings: the same auto_minutes cap, the same trials
        seconds, costs.seconds_per_flop = book.head["seconds"], book.head["seconds_per_flop"]
    else:
        if head_epochs:  # calibrate seconds per FLOP on the head phase just trained (a timed pass, not a guess)
            costs.seconds_per_flop = parallel.agree(accelerator, seconds / costs.phase(0, head_epochs))
        book.record_head(seconds, costs.seconds_per_flop)
    cal = bound.Calibration(costs, ref, base.auto_budget, base.auto_minutes, lambda: default_plan(
        costs, head_epochs, quarter, n_train, recipe.data.batch_size, accelerator.num_processes)[0],
        lambda v: parallel.agree(accelerator, v))
    lim, total = cal.lim, cal.lim.total  # the head phase counts against it
    capped = f", capped by {lim.by}" if lim.by != "auto_budget" else ""
    # What ran before the search counts against the bound: the prior's linear probes (a forward pass over up to
    # PROBE_EXAMPLES of train and of validation) and the head phase.
    head_cost = costs.phase(0, head_epochs) + sum(costs.group_flops) * (
        min(len(splits.train), PROBE_EXAMPLES) + min(len(splits.val), PROBE_EXAMPLES))
    # The search may spend SEARCH_SHARE of what the head phase leaves; the winner's training gets the rest.
    search_share = SEARCH_SHARE

    def search_limit() -> float:  # again whenever ``total`` or ``search_share`` changes
        return head_cost + search_share * max(0.0, total - head_cost)
    budget = search.Budget(search_limit(), spent=head_cost)
    if head_epochs:
        costs.filled.add(0)
    sec = costs.seconds
    log.info("auto: auto_budget = %g x the default plan (head %d epochs, then top %d of %d groups for %d steps in "
             "%d epoch(s); ~%.0f s here) for the whole auto phase%s: ~%.0f s. Head phase %.1f s; search up to ~%.0f s;"
             " the winner's training the rest", base.auto_budget, head_epochs, quarter, n, unit_steps, tune_epochs,
             sec(default), capped, sec(total), seconds, sec(budget.limit - budget.spent))
    log.info("%s; the shipped recipe here: %s", bound.describe(lim, sec), ref.describe(n))
    if min_trial > 1:
        short = "" if min_trial * per_epoch >= MIN_TRIAL_STEPS else \
            f"; fewer than {MIN_TRIAL_STEPS}: no trial trains more epochs than the winner's {max_trial}"
        log.info("auto: an epoch is %d batches: every trial trains at least %d epoch(s) (%d steps%s)", per_epoch,
                 min_trial, min_trial * per_epoch, short)
    if steps:
        log.info("auto: an epoch is %d batches: each trial epoch trains the first %d of a fresh shuffle "
                 "(epoch_steps), up to %d of them", per_epoch, steps, max_trial)
    rule_k = 0 if len(advice.phases) == 1 else (
        advice.phases[-1].get("freeze_options", {}).get("k", n))
    # The fine-tuning lrs are the auto phase's lr / 3.3, / 10 and / 30: the usual "10x lower" second phase and
    # half a decade either side; the trials measure which is best. (An lr range test from the trained head
    # reads a low, noisy loss and misplaced it by 6x and more: docs/freeze.md.)
    centre = base.lr / 10
    log.info("auto: fine-tuning lrs %s (the auto phase's lr %g / 3.3, / 10 and / 30)",
             ", ".join(f"{centre * f:.2g}" for f in space.lr_factors), base.lr)
    grid = trials.candidates(n, centre, head_lr if head_epochs else base.lr, rule_k, space.depths, space.lr_factors)
    states = [trials.TrialState(c) for c in grid]
    head = next(s for s in states if s.candidate.k == 0)
    if head_epochs:
        runner.record_prefix(head, seconds, costs.phase(0, head_epochs))

    def before(st):
        return st.epochs, st.seconds, 0.0 if st.candidate.k in costs.filled else costs.fill(st.candidate.k)

    def measured(st, was, share=1.0):
        nonlocal total, lim, default
        if cal.after(st, *was, share=share):  # its seconds are replayed from the journal on --resume: the same bound
            default, lim, total = cal.default_cost(), cal.lim, cal.lim.total
            budget.limit = search_limit()
            log.info("auto: the first fine-tuning trial (%s, %.1f s%s) measured training backbone groups at %.2g x "
                     "the head phase's seconds per FLOP; %s", st.candidate.name, st.seconds - was[1],
                     f" on 1 of {accelerator.num_processes} processes" if share < 1 else "", costs.deep,
                     bound.describe(lim, sec))

    def train(st, e):
        was = before(st)
        runner.train(st, e, tune_name)
        measured(st, was)
    side_by_side = parallel.rungs(runner, recipe, base, tune_name, before, measured)
    room = budget.limit > budget.spent
    whole_grid = room and trials.full_grid_affordable(grid, costs, budget.limit - budget.spent)
    if room and not whole_grid and min_trial >= max_trial and not steps:
        search_share = 1.0  # each lr and depth trial a whole training: nothing kept for the winner's
        budget.limit = search_limit()
        log.info("auto: every trial trains the winner's %d epoch(s), its lr annealed to zero: the best is the "
                 "final model, so the search may spend the whole bound (~%.0f s)", max_trial,
                 sec(budget.limit - budget.spent))
    # The incumbent: the shipped recipe's fine-tuning phase as a user copying it trains it (its share of the
    # groups, epochs, lr, schedule and warm-up; whole epochs; its last epoch kept), after the same head phase;
    # a searched plan must beat it on validation. Where it wins, auto is the copied recipe: on four unseen
    # data sets every gap between them came from where the two differed (benchmarks/RESULTS.md).
    tune = dict(ref.tune)
    shipped = trials.TrialState(trials.Candidate(ref.depth(n), float(f"{ref.tune_lr * scale:.3g}"), n, prior=-1),
                                scheduler=tune.get("scheduler", "constant"), steps=per_epoch if steps else 0,
                                tag="shipped", settings=tune | trials.KEEP_LAST)
    shipped_epochs = ref.tune_epochs
    if room:
        log.info("auto: first the shipped recipe's plan, the incumbent: top %d at lr %.3g (%s) for %d epoch(s), "
                 "as in %s", shipped.candidate.k, shipped.candidate.lr,
                 ", ".join(f"{k} {v}" for k, v in tune.items()), shipped_epochs, ref.recipe)
        # It may spend the whole bound, not only the search's share: when it wins it is the final model as trained
        # (on MNIST-5k the auto_budget bound left the share too small for it, and the searched winner scored 0.9797
        # against the copy's 0.9866).
        fits = budget.spent + costs.trial(shipped.candidate.k, shipped_epochs, shipped.steps) <= total
        stages.one_shot(shipped, shipped_epochs, costs, budget, train, "shipped plan", always=fits)
    if shipped.epochs and budget.limit <= budget.spent:
        log.info("auto: the shipped plan spent what the search may: no other plan measured")
        winner = shipped
    elif not room:  # no room to measure: the rule's plan as it is
        log.info("auto: auto_budget = %g leaves nothing to search; training the rule's plan", base.auto_budget)
        winner = next(s for s in states if s.candidate.prior == 0)
        winner.status = "winner (not measured)"
    elif whole_grid:
        log.info("auto: successive halving over all %d candidates (criterion %s):", len(states), vplan.criterion)
        winner = search.successive_halving(states, costs, budget, max_trial, train, vplan.criterion, log.info,
                                           min_trial, noise, side_by_side)
    else:
        states, winner = stages.two_stage(states, head, quarter, costs, budget, max_trial, train, vplan.criterion,
                                          min_trial, noise, side_by_side, MIN_TRIAL_STEPS,
                                          must_measure=not shipped.epochs)
    if winner is not shipped and shipped.epochs:  # ties go to the incumbent
        if search.score(shipped, vplan.criterion) >= search.score(winner, vplan.criterion):
            winner.status = "cut"
            winner = shipped
        else:
            shipped.status = "cut"
    winner.status = "winner" if winner.epochs else winner.status
    states = [shipped, *states]
    log.info("%s", bound.cuts(states, min_trial, lim))
    head_won = winner.candidate.k == 0 and bool(prefix)  # the head phase itself won: anneal the head alone
    kept = trials.winner_cache(runner.shared_cache, winner.candidate.k, n)
    if side_by_side is not None:  # a process that trained no trial at the winner's depth lacks its cache: keep
        from accelerate.utils import gather_object  # none, so that all fill it together (a gather each)
        kept = kept if all(gather_object([bool(kept)])) else {}
    # whether the search filled the winner's cache, not whether this process still holds it: a resumed search
    # may not have refilled it, and must plan the same anneal as an uninterrupted one
    anneal = _anneal_epochs(winner, costs, total - budget.spent, shipped_epochs if winner is shipped else most,
                            refill=winner.candidate.k not in costs.filled)
    if not anneal:
        log.info("auto: the winner's trial is its whole training (lr annealed to zero%s): nothing more",
                 ", stopped early" if winner.stopped else "")
    else:
        log.info("auto: the winner trains %d more epoch(s) with its lr annealed to zero (what the budget leaves, "
                 "at most %d epochs in all: no more than %d steps; ~%.0f s)", anneal, most, FINE_TUNE_STEPS,
                 sec(costs.phase(winner.candidate.k, anneal)))
    phases = prefix + (winner.candidate.final_phases(base, 0, anneal, anneal_name, anneal_name) if head_won else
                       winner.candidate.final_phases(base, winner.epochs, anneal, tune_name, anneal_name,
                                                     winner.steps or steps, winner.scheduler, winner.settings))
    final = advise.expand_auto(recipe, phases)
    result = search.SearchResult(
        [search.TrialRow.of(s, list(model.backbone.group_names), default) for s in states], winner.candidate.name,
        phases, vplan.criterion,
        {"auto_budget": base.auto_budget, "auto_minutes": base.auto_minutes, "total": round(total / default, 4),
         "limit": round(budget.limit / default, 4), "anneal_epochs": anneal,
         "spent": round(budget.spent / default, 4), "default_plan_seconds_estimate": round(sec(default), 1),
         "bound_by": lim.by, "shipped_recipe": round(lim.reference / default, 4), "shipped_times": bound.TIMES,
         "deep_factor": costs.deep,
         "flops_per_example": [round(f) for f in costs.group_flops]},
        vplan.to_dict(),
        {"case": advice.case, "phases": advice.phases, "reasons": advice.reasons}, round(time.time() - t0, 2),
        task.primary_metric)
    log.info("auto: search took %.0f s measured, the winner's training ~%.0f s more (the whole auto phase may cost "
             "~%.0f s; %.2f x the default plan's estimated cost spent)\n%s\nauto: winner %s; the run continues with %s",
             result.seconds, sec(costs.phase(winner.candidate.k, anneal)), sec(total), budget.spent / default,
             result.table(), winner.candidate.name,
             " then ".join(p["name"] for p in phases))
    runner.shared_cache.clear()  # every depth but the winner's (``kept``)
    if kept:
        log.info("auto: the run keeps the search's cache at the winner's depth (%s) for its phases",
                 next(iter(kept))[0].label)
    if accelerator.is_main_process:
        runner.adopt(winner, run_dir, final, splits.classes)
        rundir.write_json(saved, result.to_dict())  # before the journal goes: a kill between them loses nothing
        shutil.rmtree(Path(run_dir) / "auto", ignore_errors=True)  # trial checkpoints: the JSON keeps the record
        if winner.epochs:
            search.plot(result, Path(run_dir) / "auto_search.png")
    accelerator.wait_for_everyone()
    return Outcome(revised(plan, recipe, registry, backbone, index, phases, f"the search's winner {result.winner}"),
                   splits, result, kept, range(index, index + len(phases)))
