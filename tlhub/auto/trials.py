"""Candidate plans, their cost, and short trials that train them through the ordinary phase trainer.

A trial is an ordinary recipe: the phases before the ``auto`` phase (or a generated head phase), then
one candidate phase with few epochs, built into a run plan and trained by ``run_phase`` in its own
folder under ``<run>/auto/``. Its checkpoints let a later rung continue it, and let the final run
start from the winner's weights: a candidate phase uses a constant learning rate, so its first
``e`` epochs are exactly the first ``e`` epochs of the same phase trained longer.

Cost is counted in floating-point operations (``torch.utils.flop_counter`` on one batch per group),
so the same recipe and seed give the same epochs per trial on any machine; seconds are measured
alongside for the table and the estimate printed before the search.
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from tlhub import states
from tlhub.model import group_layouts
from tlhub.model.transfer import Entry
from tlhub.recipe import parse_recipe
from tlhub.recipe.plan import LR_FACTORS, build_plan, search_depths
from tlhub.training import checkpoint
from tlhub.training import phase as training_phase  # called as training_phase.run_phase: tests replace it
from tlhub.training.cache import spill_files
from tlhub.training.checkpoint import identity
from tlhub.training.phase import RunContext
from tlhub.training.solo import SoloAccelerator

log = logging.getLogger("tlhub")

PATIENCE = 2           # early_stop of every searched phase (epochs without a better validation score)
# Every epoch trained, the last one kept: the anneal, and the shipped recipes' phases (the auto search's head phase
# and incumbent train as a copy of them would)
KEEP_LAST = {"early_stop": 0, "restore_best": False}


@dataclass(frozen=True)
class Candidate:
    """One plan for the ``auto`` phase: train the top ``k`` groups (0: only the head) at ``lr``."""

    k: int
    lr: float
    n_groups: int
    prior: int = 0     # order from the four-case rule (0 first); breaks ties

    @property
    def name(self) -> str:
        what = "head" if self.k == 0 else "all" if self.k >= self.n_groups else f"top{self.k}"
        return f"{what}@{self.lr:.2g}"

    @property
    def slug(self) -> str:
        return self.name.replace("@", "-lr")

    def phase(self, base, epochs: int, name: str, scheduler: str = "constant", epoch_steps: int = 0) -> dict:
        """The candidate as a ``[[phases]]`` table; ``base`` (the auto phase) gives optimizer and decay;
        ``epoch_steps`` caps the batches of each epoch (a trial on a large training split)."""
        p = {"name": name, "epochs": int(epochs), "optimizer": base.optimizer, "lr": float(f"{self.lr:.3g}"),
             "scheduler": scheduler, "bn": "eval", "early_stop": PATIENCE, "restore_best": True}
        if epoch_steps:
            p["epoch_steps"] = int(epoch_steps)
        if base.weight_decay:
            p["weight_decay"] = base.weight_decay
        if self.k == 0:
            p["freeze"] = "frozen"
        elif self.k >= self.n_groups:
            p["freeze"] = "none"
        else:
            p.update(freeze="top_k", freeze_options={"k": int(self.k)})
        return p

    def final_phases(self, base, trained: int, more: int, name: str, anneal: str, epoch_steps: int = 0,
                     scheduler: str = "constant", settings: dict | None = None) -> list[dict]:
        """The winner as the run trains it: its trial (``trained`` epochs at a constant lr, or one-shot with
        ``scheduler``, its table updated with ``settings``; the run continues from the trial's checkpoint), then
        ``more`` epochs with the lr
        decaying to zero (cosine), which settles the weights that a constant lr keeps moving (after a
        one-shot trial: a warm restart). A winner never trained is one cosine phase."""
        # Annealing keeps its last epoch: its last epochs, at the lowest lrs, are the point of it, and a
        # "best" epoch picked earlier on a validation split that cannot tell them apart would be noise
        # (benchmarks/RESULTS.md, the auto part).
        if trained <= 0:
            return [self.phase(base, more, name, "cosine") | KEEP_LAST]
        tried = self.phase(base, trained, name, scheduler, epoch_steps) | (settings or {})
        return [tried, self.phase(base, more, anneal, "cosine") | KEEP_LAST] if more else [tried]


@dataclass
class CostModel:
    """Forward FLOPs per example of each group and the head; training a group costs ~3x its forward.
    A trial's epoch trains ``trial_train`` examples (fewer than ``n_train`` when capped by ``epoch_steps``)."""

    group_flops: list[float]
    head_flops: float
    n_train: int
    n_val: int
    seconds_per_flop: float = 0.0
    cache: bool = True
    trial_train: int = 0  # examples one trial epoch trains (0: n_train)
    batch: int = 1        # examples per optimizer step, all processes together
    filled: set = field(default_factory=set)  # depths whose cache the search already holds (shared by trials)
    # A FLOP of training backbone groups (k > 0) over one of the head phase's work, measured by the first such
    # trial (tlhub.auto.bound.deep_factor); 1 until then.
    deep: float = 1.0

    def epoch(self, k: int, n_train: int | None = None) -> float:
        """One epoch (train + validate) with the top ``k`` groups trainable and the rest cached."""
        n, n_train = len(self.group_flops), self.n_train if n_train is None else n_train
        frozen, rest = sum(self.group_flops[: n - k]), sum(self.group_flops[n - k:])
        fixed = 0.0 if self.cache else frozen * (n_train + self.n_val)
        work = fixed + n_train * 3 * (rest + self.head_flops) + self.n_val * (rest + self.head_flops)
        return work * (self.deep if k else 1.0)

    def trial_examples(self, steps: int = 0) -> int:
        """Examples one trial epoch trains; ``steps``: its batches when a trial of its own trains fewer."""
        return min(self.n_train, steps * self.batch) if steps else self.trial_train or self.n_train

    def trial_epoch(self, k: int, steps: int = 0) -> float:
        """One trial epoch; ``steps``: its batches when a trial of its own trains fewer than the others."""
        return self.epoch(k, self.trial_examples(steps))

    def train_steps(self, k: int, steps: float) -> float:
        """``steps`` optimizer steps at depth ``k``, training only (no validation pass)."""
        return self.epoch(k, round(steps * self.batch)) - self.epoch(k, 0)

    def steps_within(self, k: int, flops: float) -> int:
        """The most batches one epoch at depth ``k`` (and its validation pass) may train within ``flops``."""
        per_example = self.epoch(k, 1) - self.epoch(k, 0)
        return max(0, int((flops - self.epoch(k, 0)) // max(per_example * self.batch, 1e-9)))

    def fill(self, k: int) -> float:
        """Running the frozen prefix once over train + validation (each phase, each continuation)."""
        n = len(self.group_flops)
        return sum(self.group_flops[: n - k]) * (self.n_train + self.n_val) if self.cache else 0.0

    def phase(self, k: int, epochs: int) -> float:
        return self.fill(k) + epochs * self.epoch(k)

    def trial(self, k: int, epochs: int, steps: int = 0) -> float:
        """A trial's cost: the cache of its depth is filled once for the whole search."""
        return (0.0 if k in self.filled else self.fill(k)) + epochs * self.trial_epoch(k, steps)

    def seconds(self, flops: float) -> float:
        return flops * self.seconds_per_flop


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_costs(model, dataset, collate, n_train: int, n_val: int, cache: bool, batch: int = 8) -> CostModel:
    """FLOPs per example of every group (one batch), and seconds per FLOP from one timed forward pass."""
    from torch.utils.flop_counter import FlopCounterMode
    loader = torch.utils.data.DataLoader(dataset, batch_size=min(batch, len(dataset)), collate_fn=collate)
    x, y = next(iter(loader))
    b = len(y)
    device = next(model.parameters()).device
    x = states.to(x, device)  # the loader is not prepared by Accelerate here
    bb = model.backbone
    flops, state = [], model.prepare_input(x)
    model.eval()
    with torch.no_grad():
        for i in range(model.n_groups):
            with FlopCounterMode(display=False) as fc:
                state = bb.run_group(i, state)
            flops.append(max(1.0, fc.get_total_flops() / b))
        with FlopCounterMode(display=False) as fc:
            model.head(bb.pool(state))
        head = max(1.0, fc.get_total_flops() / b)
        model(x)  # warm-up, then time one forward pass
        _sync(device)
        t0 = time.perf_counter()
        model(x)
        _sync(device)  # CUDA runs asynchronously: wait for the pass before reading the clock
        rate = (time.perf_counter() - t0) / max(1.0, b * (sum(flops) + head))
    return CostModel(flops, head, n_train, n_val, rate, cache)


def candidates(n_groups: int, lr_centre: float, head_lr: float, rule_k: int, depths=None,
               factors=LR_FACTORS) -> list[Candidate]:
    """Head only, and the top ``depths`` groups (the plan's search space: a quarter, half, all) at ``lr_centre``
    x ``factors``; ordered by the rule's prior (its depth first, then nearest depths; the centre lr first)."""
    depths = search_depths(n_groups) if depths is None else depths
    out = [Candidate(0, head_lr, n_groups)]
    for k in depths:
        for f in factors:
            out.append(Candidate(k, lr_centre * f, n_groups))
    order = sorted(out, key=lambda c: (c.k != 0 or rule_k != 0, abs(c.k - rule_k),
                                       abs(torch.tensor(c.lr / lr_centre).log().item()), c.k, c.lr))
    return [Candidate(c.k, c.lr, c.n_groups, prior=i) for i, c in enumerate(order)]


@dataclass
class TrialState:
    """Where one candidate stands: epochs trained, best validation epoch, cost so far."""

    candidate: Candidate
    scheduler: str = "constant"  # "cosine": a one-shot trial whose lr decays to zero over its epochs
    steps: int = 0               # batches per epoch of this trial alone (0: the runner's ``epoch_steps``)
    epochs: int = 0
    score: float = -1.0          # the best validation score (the task's primary metric)
    loss: float = float("inf")
    best_epoch: int = 0
    stopped: bool = False
    seconds: float = 0.0
    cost: float = 0.0
    rung: int = -1
    status: str = "not run"
    curve: list = field(default_factory=list)  # validation score per epoch
    tag: str = ""                # "shipped": the shipped recipe's plan, the incumbent (a folder of its own)
    settings: dict = field(default_factory=dict)  # its phase table's settings beyond the candidate's (the incumbent's)

    @property
    def folder(self) -> str:
        return self.candidate.slug + ("" if self.scheduler == "constant" else f"-{self.scheduler}") + \
            (f"-{self.tag}" if self.tag else "")


@contextlib.contextmanager
def quiet_log(level=logging.WARNING):
    """Trials log a line each; the per-epoch lines of ``run_phase`` would bury the table."""
    old = log.level
    log.setLevel(level)
    try:
        yield
    finally:
        log.setLevel(old)


@dataclass
class TrialRunner:
    """Trains prefix phases once and candidate phases in folders of their own, continuing them by resume."""

    accelerator: object
    recipe: object            # the recipe with its ``auto`` phase
    auto_index: int
    registry: object
    model: object
    datasets: dict
    collate: object
    deterministic: bool
    root: Path
    stop: object
    task: object              # the run's Task, fitted on its training split (Splits.task): loss and scores
    prefix: list = field(default_factory=list)     # [[phases]] dicts run before every candidate
    prefix_dir: Path | None = None
    epoch_steps: int = 0      # batches per trial epoch (0: the whole training split)
    shared_cache: dict = field(default_factory=dict)  # frozen-prefix caches by entry point, for every trial
    journal: object = None    # tlhub.auto.journal.Journal: finished trials, replayed by a resumed search

    @property
    def metric(self) -> str:
        """The task's primary metric: the history's ``val_<metric>`` a trial is scored by."""
        return self.task.primary_metric

    def trial_recipe(self, phases: list[dict]):
        raw = self.recipe.to_dict()
        raw["phases"] = [dict(p) for p in raw["phases"][: self.auto_index]] + list(self.prefix) + list(phases)
        raw["train"]["keep_checkpoints"] = 1
        return parse_recipe(raw, path=self.recipe.path, base_dir=self.recipe.base_dir)

    def _ctx(self, recipe, folder: Path, history: list, solo: bool = False):
        plan = build_plan(recipe, self.registry, group_layouts(self.model.backbone))
        accelerator = SoloAccelerator(self.accelerator) if solo else self.accelerator
        return RunContext(accelerator, recipe, self.registry, self.datasets, self.collate, self.deterministic,
                          folder, history, identity(recipe, []), self.stop, "", plan=plan,
                          shared_cache=self.shared_cache, configured_task=self.task)

    def run_prefix(self, resuming: bool = False) -> float:
        """Train the phases every candidate starts from (``resuming``: continue them from their newest
        checkpoint); seconds taken."""
        t0 = time.time()
        self.prefix_dir = self.root / "prefix"
        self.prefix_dir.mkdir(parents=True, exist_ok=True)
        recipe = self.trial_recipe([])
        ckpt = checkpoint.newest(self.prefix_dir) if resuming else None
        first, resume_in = 0, None
        if ckpt is not None:
            checkpoint.load_model_only(ckpt, self.model)
            first, resume_in = checkpoint.resume_point(ckpt, recipe.phases)
        ctx = self._ctx(recipe, self.prefix_dir, list(ckpt.state["history"]) if ckpt else [])
        for i in range(first, len(recipe.phases)):
            self.model = training_phase.run_phase(ctx, self.model, i, resume=resume_in if i == first else None)
        return time.time() - t0

    def replayed(self, state: TrialState, epochs: int) -> bool:
        """Whether the journal holds this call (a resumed search): then ``state`` has what it measured."""
        replayed = self.journal.replay(state.folder, epochs) if self.journal else None
        for key, value in (replayed or {}).items():
            setattr(state, key, value)
        return replayed is not None

    def train(self, state: TrialState, epochs: int, name: str, solo: bool = False) -> None:
        """Train ``state``'s candidate up to ``epochs`` epochs in total (continuing its checkpoint); a call the
        journal holds (a resumed search) restores what it measured instead. ``solo``: this process trains it
        alone, beside the other processes' trials (``tlhub.auto.parallel``, which replays and records them)."""
        if not solo and self.replayed(state, epochs):
            return
        folder = self.root / state.folder
        folder.mkdir(parents=True, exist_ok=True)
        base = self.recipe.phases[self.auto_index]
        recipe = self.trial_recipe([state.candidate.phase(base, epochs, name, state.scheduler,
                                                          state.steps or self.epoch_steps) | state.settings])
        index = len(recipe.phases) - 1
        resume = checkpoint.newest(folder)
        start = resume or checkpoint.newest(self.prefix_dir)
        if start is not None:
            checkpoint.load_model_only(start, self.model)
        ctx = self._ctx(recipe, folder, list(start.state["history"]) if start else [], solo)
        # a kill after the trial's last checkpoint but before its journal line: it trained these epochs already
        finished = resume is not None and not resume.state["step"] and (
            resume.state["epoch"] >= epochs or (resume.state.get("best") or {}).get("stopped"))
        t0 = time.time()
        if not finished:
            try:
                with quiet_log():
                    self.model = training_phase.run_phase(ctx, self.model, index, resume=resume)
            except BaseException:
                if self.journal and not solo:
                    self.journal.record_partial(state.folder, time.time() - t0)
                raise
        state.seconds += time.time() - t0 + (self.journal.take_partial(state.folder) if self.journal else 0.0)
        self._record(state, folder, index, last=not recipe.phases[index].restore_best)
        if self.journal and not solo:
            self.journal.record_trial(state.folder, epochs, state)

    def record_prefix(self, state: TrialState, seconds: float, cost: float) -> None:
        """The head-only candidate is the generated head phase itself, which keeps its last epoch (as the
        shipped recipe's head phase does): scored by that epoch, it costs nothing more and is not continued."""
        self._record(state, self.prefix_dir, len(self.prefix) + self.auto_index - 1, last=True)
        state.stopped, state.rung, state.status, state.seconds, state.cost = True, 0, "ran", seconds, cost

    def _record(self, state: TrialState, folder: Path, index: int, last: bool = False) -> None:
        """``state`` as the newest checkpoint in ``folder`` has it; ``last``: scored by its last epoch (a phase
        that keeps its last weights, the incumbent's), not its best."""
        ckpt = checkpoint.newest(folder)
        best = ckpt.state.get("best") or {}
        rows = [r for r in ckpt.state["history"] if r["phase_index"] == index]
        state.epochs = ckpt.state["epoch"]
        # the task's primary validation score ("accuracy" in checkpoints written before tasks)
        state.score = best.get("score", best.get("accuracy", -1.0))
        state.loss = best.get("loss", float("inf"))
        key = f"val_{self.metric}"
        if last and rows:
            state.score, state.loss = rows[-1][key], rows[-1]["val_loss"]
        # stopped: patience ran out. A restore of the best weights at the end of a rung also marks the
        # checkpoint done, but the trial goes on from those weights at the next rung.
        state.best_epoch, state.stopped = best.get("epoch", 0), bool(best.get("stopped"))
        state.curve = [round(r[key], 4) for r in rows]

    def adopt(self, state: TrialState, run_dir: Path, final_recipe, classes) -> Path | None:
        """Copy the winner's newest checkpoint (or the prefix's, when it never ran) into the run,
        re-labelled as the final recipe's, for the trainer to continue."""
        src = checkpoint.newest(self.root / state.folder)
        src = src or (checkpoint.newest(self.prefix_dir) if self.prefix_dir else None)
        if src is None:
            return None
        dest = Path(run_dir) / "checkpoints" / src.path.name
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(src.path, dest)
        st = json.loads((dest / "state.json").read_text())
        st["identity"] = checkpoint.identity(final_recipe, classes)
        (dest / "state.json").write_text(json.dumps(st))
        manifest = json.loads((dest / "manifest.json").read_text())
        manifest["state.json"] = {"size": (dest / "state.json").stat().st_size,
                                  "sha256": checkpoint._sha256(dest / "state.json")}
        (dest / "manifest.json").write_text(json.dumps(manifest))
        return dest


def full_grid_affordable(cands: list[Candidate], costs: CostModel, room: float) -> bool:
    """One epoch of every candidate costs at most half of ``room``: search the whole grid at once."""
    return sum(costs.trial(c.k, 1) for c in cands if c.k) <= room / 2


def at(cands: list[Candidate], k: int, lr: float) -> Candidate:
    """The candidate of depth ``k`` whose lr is nearest ``lr`` (on a log scale)."""
    return min((c for c in cands if c.k == k), key=lambda c: abs(math.log(c.lr / lr)))


def winner_cache(shared: dict, k: int, n_groups: int) -> dict:
    """The entries of the search's ``shared`` caches at depth ``k`` (the winner's), held in memory. A cache
    that spilled to files stays behind: its files live in the trial folders the search removes."""
    entry = Entry.after_frozen(n_groups - k, n_groups)
    return {key: pair for key, pair in shared.items() if key[0] == entry and not any(map(spill_files, pair))}
