"""The trials of one rung side by side, one per process, under ``accelerate launch`` / ``torchrun``.

A data-parallel trial exchanges gradients every step and trains each process on a slice of every batch;
the trials of a rung are independent, so N processes can as well train N of them at once, each alone
(``tlhub.training.solo``) at the recipe's batch size, and exchange only their measurements at the end of
the rung. Every process then holds the same trial states, so the next decisions agree without a broadcast.
The journal (``tlhub.auto.journal``) is written by the main process after the rung, in the rung's order:
a resumed search replays whole rungs, and trains a rung it does not hold again from each trial's newest
checkpoint.
"""
from __future__ import annotations

import logging

from tlhub.auto.journal import MEASURED
from tlhub.auto.trials import TrialRunner, TrialState

log = logging.getLogger("tlhub")


def why_not(accelerator, recipe, phase) -> str:
    """Why the trials stay data-parallel ("" when they run side by side); ``phase``: the auto phase's settings."""
    if accelerator.num_processes < 2:
        return "one process"
    if phase.auto_trials == "data_parallel":
        return "auto_trials = 'data_parallel'"
    if recipe.train.grad_accum > 1:
        return f"train.grad_accum = {recipe.train.grad_accum}: a trial alone would step at another batch size"
    if phase.auto_trials == "auto" and accelerator.device.type == "cpu":
        # measured on 2 processes on 2 cores: the search took as long either way (benchmarks/RESULTS.md)
        return "CPU processes share the cores; auto_trials = 'side_by_side' runs them side by side anyway"
    return ""


def run_rung(runner: TrialRunner, planned: list[tuple[TrialState, int]], name: str) -> None:
    """Train each ``(state, total epochs)`` of the rung: process i takes trials i, i + N, ... (they are planned
    cheapest first, so each process gets a share of cheap and dear ones); then every process learns all
    measurements."""
    acc = runner.accelerator
    pending = list(planned)
    while pending and runner.replayed(*pending[0]):  # the rung as a resumed search recorded it
        pending.pop(0)
    if not pending:
        return
    mine = []
    for i in range(acc.process_index, len(pending), acc.num_processes):
        st, epochs = pending[i]
        runner.train(st, epochs, name, solo=True)
        mine.append((i, {k: getattr(st, k) for k in MEASURED}))
    from accelerate.utils import gather_object
    for i, measured in gather_object(mine):
        for key, value in measured.items():
            setattr(pending[i][0], key, value)
    if runner.journal:
        for st, epochs in pending:
            runner.journal.record_trial(st.folder, epochs, st)
    log.debug("auto: %d trial(s) side by side on %d processes", len(pending), acc.num_processes)


def rungs(runner: TrialRunner, recipe, phase, name: str, before, measured):
    """What trains a rung side by side (``search.successive_halving``'s ``side_by_side``), or None when the
    trials stay data-parallel (``why_not``); logs which. ``before(state)`` and ``measured(state, before, share)``
    are the search's bookkeeping around each trial: a trial had 1/N of the machine, so its seconds count 1/N."""
    acc = runner.accelerator
    alone = why_not(acc, recipe, phase)
    if alone:
        if acc.num_processes > 1:
            log.info("auto: trials run data-parallel on all %d processes (%s)", acc.num_processes, alone)
        return None
    log.info("auto: %d processes: the trials of a rung run side by side, one per process, each alone at batch "
             "size %d (the lr stage's one-shot trials stay data-parallel)", acc.num_processes, recipe.data.batch_size)

    def side_by_side(planned: list[tuple[TrialState, int]]) -> None:
        was = [before(st) for st, _ in planned]
        run_rung(runner, planned, name)
        for (st, _), w in zip(planned, was):
            measured(st, w, 1 / acc.num_processes)
    return side_by_side


def agree(accelerator, value):
    """The main process's ``value`` on every process (timings differ; decisions must not)."""
    if accelerator.num_processes > 1:
        from accelerate.utils import broadcast_object_list
        box = [value]
        broadcast_object_list(box)
        return box[0]
    return value
