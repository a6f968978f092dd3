"""The search in two stages, when one epoch of every candidate costs more than half the search budget: the
lr where trials are cheap, then the depths at it (``tlhub.auto.driver`` plans the budget and calls this)."""
from __future__ import annotations

import logging

from tlhub.auto import search, trials

log = logging.getLogger("tlhub")

LR_STAGE_SHARE = 0.25  # of the search budget, what measuring the lr may spend (when the whole grid is too dear)


def one_shot(st, epochs: int, costs, budget, train, label: str, status: str | None = None,
              always: bool = False, reserve: tuple[float, ...] = ()) -> None:
    """Run one first-rung trial of ``epochs`` (of its own ``steps``) if the budget pays for it and a trial
    costing ``reserve`` after it (the first of them it pays for; or ``always``), and log its line; else mark it
    skipped."""
    cost = costs.trial(st.candidate.k, epochs, st.steps)
    # room for the first of ``reserve`` the budget still pays for (nothing to keep when none can run anyway)
    reserve = next((r for r in reserve if budget.affords(r)), 0.0)
    if not always and not budget.affords(cost + reserve):
        st.status = "skipped: over budget" if not budget.affords(cost) else "skipped: room kept for a deeper trial"
        return
    search.run_trial(st, epochs, costs, budget, train)
    st.rung, st.status = 0, status or label
    log.info(search.trial_line(label, st, budget))


def two_stage(states, head, quarter: int, costs, budget, max_epochs: int, train, criterion, min_epochs: int = 1,
              noise=None, side_by_side=None, min_steps: int = 1, must_measure: bool = True):
    """When one epoch of the whole grid costs over half the search budget: the lr is measured where trials
    are cheapest (the top quarter, on cached features), then the depths at that lr by successive halving
    (or, where the lr trials trained part of an epoch or each the winner's whole training, one-shot trials as
    long: ``one_shot_depths``).

    The lr trials are one-shot runs whose lr decays to zero over their epochs (cosine), as the winner's
    training will end: a short trial at a constant lr favours the lowest lr, which moves the weights
    least. Together they get ``LR_STAGE_SHARE`` of the search budget (1 to ``max_epochs`` epochs each); the
    first runs whatever the budget when the search has measured nothing yet (``must_measure``).
    (States that ran, in the table's order; winner)."""
    grid = [s.candidate for s in states]
    if search.settled([head], criterion, noise):  # no fine-tuning trial could show a gain on this split
        for st in states:
            st.status = st.status if st.epochs else search.SETTLED
        head.status = "winner"
        log.info("auto: the head alone is within the validation split's noise of a perfect score: no trial run")
        return states, head
    room = LR_STAGE_SHARE * max(0.0, budget.limit - budget.spent)
    n_lr = sum(1 for s in states if s.candidate.k == quarter)
    each = (room - (0.0 if quarter in costs.filled else costs.fill(quarter))) / n_lr  # one shared fill
    epochs = max(1, min(max_epochs, max(min_epochs, int(each // costs.trial_epoch(quarter)))))
    # On a large training split one epoch each can cost several times the stage's share: the trials then
    # train the batches the share pays for (at least ``min_steps``), one epoch with the lr annealed over them.
    steps = 0 if each >= costs.trial_epoch(quarter) else max(min_steps, costs.steps_within(quarter, each))
    steps = 0 if costs.trial_epoch(quarter, steps) >= costs.trial_epoch(quarter) else steps
    lr_states = [trials.TrialState(s.candidate, scheduler="cosine", steps=steps)
                 for s in states if s.candidate.k == quarter]
    what = f"{steps} batches" if steps else f"{epochs} epoch(s)"
    log.info("auto: one epoch of all %d candidates would spend over half the search budget: the lr first, at the "
             "cheapest depth (top %d, %s each, lr annealed), then the depths at the best lr",
             len(states), quarter, what)
    as_long = bool(steps) or epochs >= max_epochs  # part of an epoch each, or each a whole training: depths as long
    # Where the depths train as long as the lr trials, a further lr trial runs only if one trial at the next
    # depth still fits after it: on 240 photos three lr trials at the top 2 (equal on validation) left no room
    # for the top 4, which the copied recipe trains (3 points better on test; benchmarks/RESULTS.md).
    deeper = sorted(c.k for c in grid if c.k > quarter)
    reserve = tuple(costs.trial(deeper[0], e, steps) for e in sorted({epochs, max(1, epochs // 2)}, reverse=True)
                    ) if as_long and deeper else ()
    for st in lr_states:
        # room is kept for the next depth once one lr is measured, not before: that depth needs an lr
        one_shot(st, epochs, costs, budget, train, "lr stage", always=must_measure and st is lr_states[0],
                 reserve=reserve if any(s.epochs for s in lr_states) else ())
    if not any(s.epochs for s in lr_states):  # the incumbent (measured before) spent what the search had
        return [head, *lr_states], head
    best_lr = search.best([s for s in lr_states if s.epochs], criterion)
    lr = best_lr.candidate.lr
    if as_long:
        depths, winner = one_shot_depths(grid, best_lr, head, epochs, steps, costs, budget, train, criterion)
        return [head, *lr_states, *depths], winner
    depths = [next(s for s in states if s.candidate == trials.at(grid, k, lr))
              for k in sorted({c.k for c in grid} - {0})]
    log.info("auto: lr %.2g chosen at top %d; successive halving over the depths at it (criterion %s):", lr,
             quarter, criterion)
    winner = search.successive_halving([head, *depths], costs, budget, max_epochs, train, criterion, log.info,
                                       min_epochs, noise, side_by_side)
    if search.score(best_lr, criterion) > search.score(winner, criterion):  # e.g. no depth trial was affordable
        winner.status, best_lr.status = "cut", "winner"
        winner = best_lr
    return [head, *lr_states, *depths], winner


def one_shot_depths(grid, best_lr, head, epochs: int, steps: int, costs, budget, train, criterion):
    """The depths at the lr trials' length (``epochs`` of ``steps`` batches, 0: whole epochs), when those
    trained part of an epoch (a large training split) or each trained the winner's whole training (a small one).

    Every depth then trains what one lr trial trained, one-shot with the lr annealed, and the top quarter's
    best lr trial is that depth's measurement. Fresh constant-lr trials would, on a large split, cost the
    search more than the whole hand-written recipe and compare the top quarter at twice its lr trial's length
    (benchmarks/RESULTS.md, the auto part); on a small one, train the top quarter again instead of a deeper
    plan (on 240 photos the search then never reached the depth that won by 3 points). One rung: a one-shot
    trial ends at lr 0 and cannot be continued, so the best of them (or the head) is the winner.
    (Depth trials run; winner)."""
    lr, quarter = best_lr.candidate.lr, best_lr.candidate.k
    depths = [trials.TrialState(trials.at(grid, k, lr), scheduler="cosine", steps=steps)
              for k in sorted({c.k for c in grid} - {0, quarter})]
    log.info("auto: lr %.2g chosen at top %d; the deeper plans at it, %s each like the lr trials, one-shot "
             "(criterion %s):", lr, quarter, f"{steps} batches" if steps else f"{epochs} epoch(s)", criterion)
    for st in sorted(depths, key=lambda s: costs.trial(s.candidate.k, epochs, steps)):  # cheapest first
        # Whole epochs: a depth the budget cannot pay for at the lr trials' length trains the most epochs it
        # pays for, down to half of them, its lr still annealed to zero over them (on 100 CIFAR images the
        # bound paid for no trial of the top 4 at 8 epochs, the length of the copied recipe's 5 and more).
        fit = epochs
        while not steps and fit > max(1, epochs // 2) and not budget.affords(costs.trial(st.candidate.k, fit)):
            fit -= 1
        one_shot(st, fit, costs, budget, train, "depth", "ran")
    measured = [head, best_lr, *(s for s in depths if s.epochs)]
    winner = search.best(measured, criterion)
    for st in measured:
        if st is not winner and st.status == "ran":
            st.status = "cut"
    winner.status = "winner"
    return depths, winner
