"""One phase: freeze, cache the frozen prefix, build the optimizer, prepare, train epochs, checkpoint."""
from __future__ import annotations

import dataclasses
import itertools
import logging
import math
import signal
import time
from dataclasses import dataclass, field

import torch

from tlhub.artifacts import rundir
from tlhub.data.batching import LengthGroupedBatches, by_length
from tlhub.errors import UserError
from tlhub.model import RAW, Entry, TransferModel, apply_states
from tlhub.recipe.plan import CacheEntry
from tlhub.training import checkpoint, lr_find
from tlhub.training.cache import (
    CachedDataset,
    Shard,
    build_cache,
    cache_bytes,
    spill_files,
)
from tlhub.training.early_stop import Best, snapshot
from tlhub.training.optim import build_optimizer, build_scheduler

log = logging.getLogger("tlhub")


class Interrupted(UserError):
    """SIGINT/SIGTERM: a checkpoint was written; the message shows how to resume."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class StopFlag:
    """Set by SIGINT/SIGTERM; the loop checks it after each optimizer step."""

    signum: int = 0
    previous: dict = field(default_factory=dict)

    def install(self) -> None:
        import threading
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            self.previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum, frame):
        if self.signum:  # a second Ctrl-C stops at once
            raise KeyboardInterrupt
        self.signum = signum
        log.info("signal %s received: writing a checkpoint after this step", signal.Signals(signum).name)

    def restore(self) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


@dataclass
class RunContext:
    """What every phase shares."""

    accelerator: object
    recipe: object
    registry: object
    datasets: dict
    collate: object
    deterministic: bool
    run_dir: object
    history: list
    identity: dict
    stop: StopFlag
    resume_command: str
    plan: object = None  # tlhub.recipe.plan.RunPlan
    shared_cache: dict | None = None  # see phase_inputs
    timings: list = field(default_factory=list)  # per phase: wall seconds, cache-filling seconds

    configured_task: object = None  # the run's Task with its options and state (Splits.task)

    @property
    def task(self):
        """The recipe's ``tlhub.task.Task``: its loss, training score and validation scores."""
        return self.configured_task or self.registry.task(self.recipe.model.task)


def _short(metric: str) -> str:
    return "acc" if metric == "accuracy" else metric  # the log's words before tasks


def _collate_of(ds, collate):
    return ds.collate if isinstance(ds, CachedDataset) else collate


def _shard(accelerator) -> Shard:
    """Each process fills its share of the cache; the shares are gathered (see ``Shard``)."""
    if accelerator.num_processes == 1:
        return Shard()
    from accelerate.utils import gather_object
    return Shard(accelerator.process_index, accelerator.num_processes, gather_object)


def phase_inputs(accelerator, model, recipe, index, cache: CacheEntry, datasets, collate, deterministic, run_dir,
                 shared: dict | None = None):
    """(train dataset, val dataset, entry of the training inputs, audit line) for one phase, as its plan's
    ``cache`` decided.

    ``shared``: caches by entry kept across phases whose frozen prefix is known to be the same weights
    (the trials of one ``freeze = "auto"`` search); None: built for this phase only.
    """
    t = recipe.train
    if not cache.groups:
        return datasets["train"], datasets["val"], RAW, f"cache: {cache.note}"
    if cache.train != deterministic:  # the plan asked the modality (Modality.augments); its datasets disagree
        raise RuntimeError(f"modality of data source {recipe.data.source!r}: augments() says the training inputs "
                           f"{'do not change' if cache.train else 'change'} every epoch, its datasets say otherwise")
    entry = cache.entry
    what = cache.what
    d = recipe.data
    kw = dict(batch_size=d.eval_batch_size or 2 * d.batch_size, store_dtype=t.cache_dtype,
              budget_mb=t.cache_memory_mb, show_progress=accelerator.is_local_main_process,
              autocast=accelerator.autocast, shard=_shard(accelerator), group_by_length=d.group_by_length)
    t0 = time.time()
    tag = f"phase{index}" if shared is None else f"shared-{entry.label}"
    if shared is not None and (entry, deterministic) in shared:
        train, val = shared[(entry, deterministic)]
        return (train if deterministic else datasets["train"]), val, (entry if deterministic else RAW), \
            f"cache: {what}, filled by the search and reused"
    val = build_cache(model, datasets["val"], collate, entry, spill_path=run_dir / "cache" / f"{tag}-val",
                      desc="caching val", **kw)
    if not deterministic:
        if shared is not None:
            shared[(entry, deterministic)] = (None, val)
        return datasets["train"], val, RAW, (f"cache: validation split caches {what}; training split NOT cached "
                                             f"(random augmentation changes the input every epoch)")
    train = build_cache(model, datasets["train"], collate, entry,
                        spill_path=run_dir / "cache" / f"{tag}-train", desc="caching train", **kw)
    if shared is not None:
        shared[(entry, deterministic)] = (train, val)
    mb = (cache_bytes(train) + cache_bytes(val)) / 2**20
    return train, val, entry, (f"cache: {what}, {t.cache_dtype}, {mb:.1f} MB for train+val, filled in "
                               f"{time.time() - t0:.1f} s; epochs train only the rest")


def _save(ctx: RunContext, model, optimizer, scheduler, index, epochs_done, steps_done, accum, entry,
          best: Best | None = None, best_weights: dict | None = None, done: bool = False) -> None:
    """Checkpoint position: ``epochs_done`` whole epochs of phase ``index`` plus ``steps_done`` batches.

    ``done``: the phase is over before its last epoch (early stop) or its best weights were restored.
    """
    if not ctx.accelerator.is_main_process:
        return
    state = {"phase_index": index, "epoch": epochs_done, "step": steps_done, "history": ctx.history,
             "accum": accum, "identity": ctx.identity, "cache_key": {"phase": index, "entry": entry.label},
             "best": best.to_dict() if best else None, "done": done}
    path = checkpoint.save(ctx.run_dir, ctx.accelerator.unwrap_model(model), optimizer, scheduler, state,
                           ctx.recipe.train.keep_checkpoints, best=best_weights)
    log.debug("checkpoint %s", path)


def run_phase(ctx: RunContext, model: TransferModel, index: int, resume=None) -> TransferModel:
    """Train phase ``index``; ``resume`` is a checkpoint inside this phase to continue from."""
    from tqdm.auto import tqdm

    accelerator, recipe = ctx.accelerator, ctx.recipe
    plan = dataclasses.replace(ctx.plan.phases[index], head_params=sum(p.numel() for p in model.head.parameters()))
    if plan.is_auto:
        raise RuntimeError(f"phase {index + 1} is freeze = 'auto': the search revises the plan before it runs")
    phase = plan.settings  # what trains: the plan's, never the recipe's table read again
    audit = apply_states(model, list(plan.groups), plan.train_names)
    log.info("phase %d/%d %r: %s", index + 1, len(ctx.plan.phases), plan.name, plan.describe())
    log.info(plan.table())
    d = recipe.data
    seed = recipe.train.seed + 1000 * index
    t_phase = time.time()
    model.to(accelerator.device)  # before the cache fill, which runs where the weights are (prepare moves it too)
    train_ds, val_ds, entry, cache_note = phase_inputs(accelerator, model, recipe, index, plan.cache, ctx.datasets,
                                                       ctx.collate, ctx.deterministic, ctx.run_dir,
                                                       ctx.shared_cache)
    log.info("  %s", cache_note)
    cache_seconds = time.time() - t_phase
    train_loader = _loader(train_ds, d.batch_size, True, _collate_of(train_ds, ctx.collate), d.workers, seed,
                           d.group_by_length)
    val_loader = _loader(val_ds, d.eval_batch_size or 2 * d.batch_size, False, _collate_of(val_ds, ctx.collate),
                         d.workers, seed, d.group_by_length)
    optimizer = build_optimizer(model, phase, plan.lrs)
    if phase.lr_find and resume is None:  # a resumed phase keeps the lr it measured (in the optimizer state)
        _measure_lr(ctx, model, optimizer, train_loader, entry, index)
    # Accelerate's seedable sampler takes torch's initial seed when prepared: make it the phase's own,
    # so a resumed run shuffles exactly like an uninterrupted one.
    torch.manual_seed(seed)
    prepared, optimizer, train_loader, val_loader = accelerator.prepare(model, optimizer, train_loader, val_loader)
    val_entry = plan.cache.entry if isinstance(val_ds, CachedDataset) else RAW
    # epoch_steps: an epoch is the first batches of each epoch's shuffle (Lightning's limit_train_batches)
    batches = min(len(train_loader), phase.epoch_steps * recipe.train.grad_accum) if phase.epoch_steps \
        else len(train_loader)
    steps_per_epoch = math.ceil(batches / recipe.train.grad_accum)
    if batches < len(train_loader):
        log.info("  epoch_steps = %d: each epoch trains the first %d of %d shuffled batches", phase.epoch_steps,
                 batches, len(train_loader))
    scheduler = build_scheduler(optimizer, phase, steps_per_epoch * phase.epochs)
    task = ctx.task

    first_epoch, skip, accum = 1, 0, None
    best, best_weights = Best(), None
    if resume is not None:
        checkpoint.load_into(resume, model, optimizer, scheduler)
        first_epoch, skip, accum = resume.state["epoch"] + 1, resume.state["step"], resume.state["accum"]
        best, best_weights = Best.from_dict(resume.state.get("best")), checkpoint.load_best(resume)
        log.info("  resumed from %s: epoch %d, %d batch(es) already done", resume.path.name, first_epoch, skip)
    every = recipe.train.checkpoint_steps
    last_epoch = first_epoch - 1

    for epoch in range(first_epoch, phase.epochs + 1):
        t0 = time.time()
        if not skip:  # a mid-epoch resume restored the RNG state of that step instead
            torch.manual_seed(seed + epoch)
        if hasattr(train_loader, "set_epoch"):
            train_loader.set_epoch(epoch)
        prepared.train()
        loss_sum = torch.tensor(accum[0] if skip else 0.0, dtype=torch.float64)
        # the task's summed training score: a count of right answers, or a float (a regression's error)
        correct = torch.tensor(float(accum[1]) if skip else 0.0, dtype=torch.float64)
        seen = torch.tensor(int(accum[2]) if skip else 0, dtype=torch.long)
        # Skip by iterating: the epoch's shuffled order stays exactly that of an uninterrupted run.
        loader = itertools.islice(train_loader, skip, batches) if skip or batches < len(train_loader) \
            else train_loader
        bar = tqdm(loader, desc=f"{phase.name} {epoch}/{phase.epochs}", leave=False, initial=skip,
                   total=batches, disable=None if accelerator.is_local_main_process else True, unit="batch")
        for step, (x, y) in enumerate(bar, start=skip):
            with accelerator.accumulate(prepared):
                logits = prepared(x, entry=entry)
                loss = task.loss(logits, y)
                if not torch.isfinite(loss):
                    raise UserError(f"phase {phase.name!r} epoch {epoch} step {step + 1}: the loss is {loss.item()}; "
                                    f"stopped (the last good checkpoint is kept). Lower the learning rate "
                                    f"(phases.{index}.lr) or check the data")
                accelerator.backward(loss)
                optimizer.step()
                optimizer.zero_grad()
                if accelerator.sync_gradients:
                    scheduler.step()
            loss_sum += loss.detach().double().cpu() * len(y)
            correct += task.batch_score(logits.detach(), y).cpu().double()
            seen += len(y)
            bar.set_postfix(loss=f"{loss.item():.3f}")
            done = step + 1
            if done < batches and accelerator.sync_gradients and \
                    (ctx.stop.signum or (every and done % every == 0)):
                _save(ctx, prepared, optimizer, scheduler, index, epoch - 1, done,
                      [float(loss_sum), float(correct), int(seen)], entry, best, best_weights)
                if ctx.stop.signum:
                    name = signal.Signals(ctx.stop.signum).name
                    raise Interrupted(f"interrupted by {name} in phase {phase.name!r}, epoch {epoch}, step {done}; "
                                      f"checkpoint written in {ctx.run_dir / 'checkpoints'}. Resume with:\n"
                                      f"  {ctx.resume_command}", 128 + ctx.stop.signum)
        skip = 0
        train_seconds = time.time() - t0
        totals = accelerator.reduce(torch.stack([loss_sum, correct.double(), seen.double()]).to(accelerator.device),
                                    reduction="sum").cpu()
        val = evaluate_loader(accelerator, prepared, val_loader, entry=val_entry, task=task)
        row = {"phase": phase.name, "phase_index": index, "epoch": epoch,
               "train_loss": float(totals[0] / totals[2]), f"train_{task.train_score}": float(totals[1] / totals[2]),
               "val_loss": val["loss"], f"val_{task.primary_metric}": val[task.primary_metric],
               "lr": optimizer.param_groups[-1]["lr"], "seconds": round(time.time() - t0, 3),
               "train_seconds": round(train_seconds, 3), "steps": batches,
               "examples": int(totals[2]), "val_examples": val["n"], "train_input": entry.label}
        ctx.history.append(row)
        if accelerator.is_main_process:
            rundir.append_jsonl(ctx.run_dir / "history.jsonl", row)
        if recipe.train.log_with:
            accelerator.log({f"{phase.name}/{k}": v for k, v in row.items() if isinstance(v, float)},
                            step=len(ctx.history))
        log.info("  %s epoch %d/%d: train loss %.4f %s %.4f | val loss %.4f %s %.4f | %.1f s", phase.name, epoch,
                 phase.epochs, row["train_loss"], _short(task.train_score), row[f"train_{task.train_score}"],
                 row["val_loss"], _short(task.primary_metric), val[task.primary_metric], row["seconds"])
        last_epoch = epoch
        if best.update(epoch, val[task.primary_metric], row["val_loss"]) and phase.restore_best:
            best_weights = snapshot(accelerator.unwrap_model(prepared))
        best.stopped = best.should_stop(phase.early_stop) and epoch < phase.epochs
        _save(ctx, prepared, optimizer, scheduler, index, epoch, 0, None, entry, best, best_weights,
              done=best.stopped)
        if best.stopped:
            log.info("  early stop: no better validation score for %d epoch(s) since epoch %d (val %s %.4f)",
                     best.bad_epochs, best.epoch, _short(task.primary_metric), best.score)
            break
        if ctx.stop.signum:
            name = signal.Signals(ctx.stop.signum).name
            raise Interrupted(f"interrupted by {name} after phase {phase.name!r} epoch {epoch}; checkpoint written "
                              f"in {ctx.run_dir / 'checkpoints'}. Resume with:\n  {ctx.resume_command}",
                              128 + ctx.stop.signum)
    if phase.restore_best and best_weights is not None and best.epoch != last_epoch:
        accelerator.unwrap_model(prepared).load_state_dict(best_weights)
        log.info("  restore_best: weights of epoch %d (val %s %.4f, loss %.4f) instead of epoch %d", best.epoch,
                 _short(task.primary_metric), best.score, best.loss, last_epoch)
        _save(ctx, prepared, optimizer, scheduler, index, last_epoch, 0, None, entry, best, best_weights, done=True)
    cached_mb = sum(cache_bytes(ds) for ds in (train_ds, val_ds) if isinstance(ds, CachedDataset)) / 2**20
    ctx.timings.append({"phase": phase.name, "seconds": round(time.time() - t_phase, 3),
                        "cache_seconds": round(cache_seconds, 3), "cache_mb": round(cached_mb, 1),
                        "train_input": entry.label,
                        "resumed": resume is not None})
    model = accelerator.unwrap_model(prepared)
    spilled = spill_files(train_ds) + spill_files(val_ds)
    del train_ds, val_ds, train_loader, val_loader
    for f in spilled:  # each process removes its own spill files: they are only valid for this phase
        f.unlink(missing_ok=True)
    accelerator.free_memory()  # the next phase re-wraps: DDP must see the new requires_grad (pytorch #22049)
    return model


def _measure_lr(ctx: RunContext, model, optimizer, loader, entry: Entry, index: int) -> None:
    """``lr = "auto"``: the lr range test (tlhub.training.lr_find) sets the phase's learning rates, their
    ratios (lr_mult, layer_decay) kept; the main process's result is used by every process."""
    phase = ctx.plan.phases[index].settings
    found, lr = None, phase.lr
    if ctx.accelerator.is_main_process:
        try:
            found = lr_find.range_test(model, loader, optimizer, ctx.task.loss, entry=entry,
                                       steps=lr_find.STEPS)
            lr = found.suggestion if found.descent else phase.lr
            lr_find.plot(found, _lr_find_png(ctx.run_dir, phase.name), title=f"lr range test: phase {phase.name!r}")
        except ValueError as exc:
            log.info("  lr = \"auto\": %s; keeping lr %g", exc, phase.lr)
    if ctx.accelerator.num_processes > 1:
        from accelerate.utils import broadcast_object_list
        box = [lr]
        broadcast_object_list(box)
        lr = box[0]
    for g in optimizer.param_groups:
        g["lr"] = g["lr"] * lr / phase.lr
    if found is not None:
        log.info("  lr = \"auto\": %s; the phase trains at %.3g (%s)", found.format(), lr,
                 _lr_find_png(ctx.run_dir, phase.name))


def _lr_find_png(run_dir, name: str):
    """The lr range test's picture: a phase name is free text (``a/b``, ``..``), a file name is not."""
    import re
    return run_dir / f"lr_find-{re.sub(r'[^A-Za-z0-9_.-]+', '_', name).strip('.') or 'phase'}.png"


def _loader(ds, batch_size, shuffle, collate, workers, seed, group_by_length=False):
    """Batches in random (``shuffle``) or dataset order; text (datasets with ``lengths``) grouped by length
    when asked. A length-grouped evaluation loader's ``order`` is the example order it yields."""
    batch_size = min(batch_size, max(1, len(ds)))  # same batches; a huge batch_size would overflow the sampler
    lengths = getattr(ds, "lengths", None) if group_by_length else None
    if lengths is None:
        return torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=shuffle, collate_fn=collate,
                                           num_workers=workers, generator=torch.Generator().manual_seed(seed))
    batches = LengthGroupedBatches(lengths, batch_size, seed) if shuffle else by_length(lengths, batch_size)
    return torch.utils.data.DataLoader(ds, batch_sampler=batches, collate_fn=collate, num_workers=workers)


@torch.no_grad()
def predict_loader(accelerator, model, loader, entry: Entry = RAW):
    """(logits, labels) over the whole split, gathered across processes without padding duplicates."""
    was_training = model.training
    model.eval()
    all_logits, all_labels = [], []
    for x, y in loader:
        with accelerator.autocast():  # the run's mixed precision, also for a model unwrapped after its phase
            logits = model(x, entry=entry)
        logits, y = accelerator.gather_for_metrics((logits.float(), y))
        all_logits.append(logits.cpu())
        all_labels.append(y.cpu())
    model.train(was_training)
    return torch.cat(all_logits), torch.cat(all_labels)


def evaluate_loader(accelerator, model, loader, entry: Entry = RAW, task=None) -> dict:
    """The task's validation scores (``Task.evaluate``: the loss, its primary metric, the count)."""
    logits, labels = predict_loader(accelerator, model, loader, entry)
    return task.evaluate(logits, labels)
