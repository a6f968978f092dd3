"""The phase trainer on Accelerate: per phase, freeze, build the optimizer, prepare, train, validate."""
from __future__ import annotations

import dataclasses
import logging
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from . import rundir
from .data.splits import Splits, make_splits
from .errors import UserError
from .interfaces import Backbone, DataContext, ImagePreprocessing
from .cache import CachedDataset, build_cache, cache_bytes
from .model import TransferModel, apply_phase, format_audit, frozen_prefix
from .optim import build_optimizer, build_scheduler
from .recipe import Recipe, apply_overrides, load_and_validate, parse_recipe, to_toml, validate

log = logging.getLogger("tlhub")
WEIGHT_WORDS = ("", "none", "imagenet", "pretrained", "default")


@dataclass
class RunResult:
    """What ``tlhub.run`` returns: where the run went and what it measured."""

    run_dir: Path
    metrics: dict
    history: list[dict]
    classes: list[str]
    model: Any = field(repr=False, default=None)


def resolve_recipe(recipe_or_path, overrides=()) -> Recipe:
    if isinstance(recipe_or_path, Recipe):
        r = recipe_or_path
        if overrides:
            raw = apply_overrides(r.to_dict(), list(overrides))
            r = parse_recipe(raw, path=r.path, base_dir=r.base_dir)
        errors = validate(r)
        if errors:
            raise UserError(errors=errors)
        return r
    return load_and_validate(recipe_or_path, overrides)


def build_model(recipe: Recipe, registry, num_classes: int) -> TransferModel:
    from .options import resolve_options
    spec = registry.get("backbones", recipe.model.backbone)
    opts, errs = resolve_options("model.backbone_options", recipe.model.backbone_options, spec.options)
    if errs:
        raise UserError(errors=errs)
    weights = recipe.model.weights
    if weights.lower() not in WEIGHT_WORDS:
        candidate = Path(recipe.base_dir) / Path(weights).expanduser()
        if candidate.exists():
            weights = str(candidate.resolve())
    backbone = spec.build(weights, opts)
    if not isinstance(backbone, Backbone):
        raise TypeError(f"backbone {spec.name!r} (plugin {spec.plugin}) built {type(backbone)!r}, not a Backbone")
    hspec = registry.get("heads", recipe.model.head)
    hopts, errs = resolve_options("model.head_options", recipe.model.head_options, hspec.options)
    if errs:
        raise UserError(errors=errs)
    return TransferModel(backbone, hspec.build(backbone.feature_dim, num_classes, hopts))


def make_datasets(backbone: Backbone, recipe: Recipe, splits: Splits):
    """Datasets per split plus (collate_fn, train transform deterministic?)."""
    prep = backbone.preprocessing
    if isinstance(prep, ImagePreprocessing):
        from .data.images import ImageDataset, build_transform
        size = recipe.data.image_size or prep.size
        out, deterministic = {}, True
        for name in ("train", "val", "test"):
            tf, det = build_transform(prep, size, recipe.data.augment, train=name == "train")
            deterministic &= det
            split = getattr(splits, name)
            out[name] = ImageDataset(split.items, split.labels, tf)
        return out, None, deterministic
    from .data.text import TextDataset
    out = {name: TextDataset(getattr(splits, name).items, getattr(splits, name).labels, prep)
           for name in ("train", "val", "test")}
    truncated = sum(d.truncated for d in out.values())
    if truncated:
        log.info("data: %d text(s) longer than max_length=%d were truncated", truncated, prep.max_length)
    return out, out["train"].collate, True


def _loader(ds, batch_size, shuffle, collate, workers, seed):
    return torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=shuffle, collate_fn=collate,
                                       num_workers=workers, generator=torch.Generator().manual_seed(seed))


def setup_logging(run_dir: Path | None, main: bool, quiet: bool) -> None:
    log.handlers.clear()
    log.setLevel(logging.INFO)
    log.propagate = False
    if main and not quiet:
        h = logging.StreamHandler(sys.stdout)
        h.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(h)
    if main and run_dir is not None:
        fh = logging.FileHandler(run_dir / "run.log", encoding="utf-8")
        fh.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        log.addHandler(fh)
    if not log.handlers:
        log.addHandler(logging.NullHandler())


def run(recipe_or_path, overrides=(), overwrite: bool = False, quiet: bool = False) -> RunResult:
    """Train every phase of a recipe and score the test split; see ``RunResult``."""
    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration, broadcast_object_list, set_seed

    from .plugins import get_registry

    recipe = resolve_recipe(recipe_or_path, overrides)
    registry = get_registry()
    # Under torchrun on a machine without GPUs, Accelerate picks gloo only when told it is on CPU.
    cpu_ddp = int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available()
    accelerator = Accelerator(cpu=cpu_ddp, mixed_precision=recipe.train.mixed_precision,
                              gradient_accumulation_steps=recipe.train.grad_accum,
                              log_with=recipe.train.log_with or None,
                              dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True))
    main = accelerator.is_main_process
    threads = recipe.train.threads or max(1, (os.cpu_count() or 1) // accelerator.num_processes)
    torch.set_num_threads(threads)

    holder = [None]
    if main:
        holder[0] = str(rundir.make_run_dir(rundir.choose_run_dir(recipe, overwrite)))
    if accelerator.num_processes > 1:
        broadcast_object_list(holder)
    run_dir = Path(holder[0])
    setup_logging(run_dir, main, quiet)
    t_start = time.time()
    log.info("tlhub: run %s -> %s (%d process(es), %s, %d thread(s) each)", recipe.path or "recipe", run_dir,
             accelerator.num_processes, accelerator.device, threads)
    if main:
        rundir.write_atomic(run_dir / "recipe.toml", f"# resolved recipe of {recipe.path}\n" + to_toml(recipe))
        (run_dir / "history.jsonl").unlink(missing_ok=True)

    set_seed(recipe.train.seed)
    splits = make_splits(recipe, registry, DataContext(Path(recipe.base_dir), recipe.data.split_seed,
                                                       log=log.info))
    log.info("data: %s, %d classes, train %d / val %d / test %d", recipe.data.source, len(splits.classes),
             len(splits.train), len(splits.val), len(splits.test))
    if splits.skipped:
        log.info("data: skipped %d unreadable item(s), listed in %s", len(splits.skipped), run_dir / "skipped.txt")
        if main:
            rundir.write_atomic(run_dir / "skipped.txt", "\n".join(splits.skipped) + "\n")

    set_seed(recipe.train.seed)
    model = build_model(recipe, registry, len(splits.classes))
    datasets, collate, deterministic = make_datasets(model.backbone, recipe, splits)
    if recipe.train.log_with:
        accelerator.init_trackers(recipe.stem, config={"recipe": recipe.path})

    history: list[dict] = []
    for index, phase in enumerate(recipe.phases):
        model = run_phase(accelerator, model, recipe, registry, index, phase, datasets, collate, run_dir, history,
                          deterministic)

    metrics, preds, probs = evaluate_split(accelerator, model, datasets["test"], collate, recipe, splits)
    metrics["classes"] = splits.classes
    if main:
        from .export import write_outputs
        write_outputs(run_dir, recipe, model, splits, metrics, preds, probs)
    if recipe.train.log_with:
        accelerator.log({f"test/{k}": v for k, v in metrics.items() if isinstance(v, float)})
        accelerator.end_training()
    elapsed = time.time() - t_start
    log.info("test: %s (%d examples) in %.0f s total", ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()
                                                            if isinstance(v, float)), len(splits.test), elapsed)
    log.info("results: %s (metrics.json, history.jsonl, model/, confusion_matrix.png, learning_curves.png, "
             "samples)", run_dir)
    accelerator.wait_for_everyone()
    return RunResult(run_dir, metrics, history, splits.classes, model)


def _input_name(model, start: int) -> str:
    return "raw" if start == 0 else ("pooled-cache" if start > model.n_groups else f"cache-after-{start}-groups")


def _collate_of(ds, collate):
    return ds.collate if isinstance(ds, CachedDataset) else collate


def _cached_start(model: TransferModel, audit) -> int:
    """Where cached tensors enter the model: after the frozen prefix, or pooled features (n + 1)."""
    k = frozen_prefix(audit)
    return model.n_groups + 1 if k == model.n_groups else k


def phase_inputs(accelerator, model, recipe, index, audit, datasets, collate, deterministic, run_dir):
    """(train dataset, val dataset, start group of the training inputs, audit line) for one phase."""
    t = recipe.train
    k = frozen_prefix(audit)
    n = model.n_groups
    if not t.cache:
        return datasets["train"], datasets["val"], 0, "cache: off (train.cache = false)"
    if k == 0:
        return datasets["train"], datasets["val"], 0, "cache: none (the first group trains)"
    start = _cached_start(model, audit)
    what = "pooled features" if start > n else f"the state after {k} of {n} frozen groups ({audit[k - 1].name})"
    d = recipe.data
    kw = dict(batch_size=d.eval_batch_size or 2 * d.batch_size, store_dtype=t.cache_dtype,
              budget_mb=t.cache_memory_mb, show_progress=accelerator.is_local_main_process)
    t0 = time.time()
    val = build_cache(model, datasets["val"], collate, (0, start), spill_path=run_dir / "cache" / f"phase{index}-val",
                      desc="caching val", **kw)
    if not deterministic:
        return datasets["train"], val, 0, (f"cache: validation split caches {what}; training split NOT cached "
                                           f"(random augmentation changes the input every epoch)")
    train = build_cache(model, datasets["train"], collate, (0, start),
                        spill_path=run_dir / "cache" / f"phase{index}-train", desc="caching train", **kw)
    mb = (cache_bytes(train) + cache_bytes(val)) / 2**20
    return train, val, start, (f"cache: {what}, {t.cache_dtype}, {mb:.1f} MB for train+val, filled in "
                               f"{time.time() - t0:.1f} s; epochs train only the rest")


def run_phase(accelerator, model: TransferModel, recipe, registry, index, phase, datasets, collate, run_dir,
              history, deterministic: bool = True) -> TransferModel:
    from tqdm.auto import tqdm

    from .options import resolve_options

    spec = registry.get("freeze-policies", phase.freeze)
    opts, errs = resolve_options(f"phases.{index}.freeze_options", phase.freeze_options, spec.options)
    if errs:
        raise UserError(errors=errs)
    policy = spec.build(opts)
    trainable = policy.trainable(model.backbone.param_groups())
    audit = apply_phase(model, trainable, phase.bn, phase.bn_groups)
    head_params = sum(p.numel() for p in model.head.parameters())
    log.info("phase %d/%d %r: %d epoch(s), %s lr %g, %s schedule, freeze %s %s", index + 1, len(recipe.phases),
             phase.name, phase.epochs, phase.optimizer, phase.lr, phase.scheduler, phase.freeze,
             opts or "")
    log.info(format_audit(audit, head_params))
    d = recipe.data
    seed = recipe.train.seed + 1000 * index
    train_ds, val_ds, start, cache_note = phase_inputs(accelerator, model, recipe, index, audit, datasets, collate,
                                                       deterministic, run_dir)
    log.info("  %s", cache_note)
    train_loader = _loader(train_ds, d.batch_size, True, _collate_of(train_ds, collate), d.workers, seed)
    val_loader = _loader(val_ds, d.eval_batch_size or 2 * d.batch_size, False, _collate_of(val_ds, collate),
                         d.workers, seed)
    optimizer = build_optimizer(model, phase)
    prepared, optimizer, train_loader, val_loader = accelerator.prepare(model, optimizer, train_loader, val_loader)
    val_start = _cached_start(model, audit) if isinstance(val_ds, CachedDataset) else 0
    steps_per_epoch = math.ceil(len(train_loader) / recipe.train.grad_accum)
    scheduler = build_scheduler(optimizer, phase, steps_per_epoch * phase.epochs)

    for epoch in range(1, phase.epochs + 1):
        t0 = time.time()
        torch.manual_seed(seed + epoch)
        if hasattr(train_loader, "set_epoch"):
            train_loader.set_epoch(epoch)
        prepared.train()
        loss_sum = torch.zeros((), dtype=torch.float64)
        correct = torch.zeros((), dtype=torch.long)
        seen = torch.zeros((), dtype=torch.long)
        bar = tqdm(train_loader, desc=f"{phase.name} {epoch}/{phase.epochs}", leave=False,
                   disable=None if accelerator.is_local_main_process else True, unit="batch")
        for step, (x, y) in enumerate(bar):
            with accelerator.accumulate(prepared):
                logits = prepared(x, start=start)
                loss = F.cross_entropy(logits, y)
                if not torch.isfinite(loss):
                    raise UserError(f"phase {phase.name!r} epoch {epoch} step {step}: the loss is {loss.item()}; "
                                    f"lower the learning rate (phases.{index}.lr) or check the data")
                accelerator.backward(loss)
                optimizer.step()
                optimizer.zero_grad()
                if accelerator.sync_gradients:
                    scheduler.step()
            loss_sum += loss.detach().double() * len(y)
            correct += (logits.argmax(-1) == y).sum().cpu()
            seen += len(y)
            bar.set_postfix(loss=f"{loss.item():.3f}")
        totals = accelerator.reduce(torch.stack([loss_sum, correct.double(), seen.double()]).to(accelerator.device),
                                    reduction="sum").cpu()
        val = evaluate_loader(accelerator, prepared, val_loader, start=val_start)
        row = {"phase": phase.name, "phase_index": index, "epoch": epoch,
               "train_loss": float(totals[0] / totals[2]), "train_accuracy": float(totals[1] / totals[2]),
               "val_loss": val["loss"], "val_accuracy": val["accuracy"],
               "lr": optimizer.param_groups[-1]["lr"], "seconds": round(time.time() - t0, 3),
               "examples": int(totals[2]), "val_examples": val["n"], "train_input": _input_name(model, start)}
        history.append(row)
        if accelerator.is_main_process:
            rundir.append_jsonl(run_dir / "history.jsonl", row)
        if recipe.train.log_with:
            accelerator.log({f"{phase.name}/{k}": v for k, v in row.items() if isinstance(v, float)},
                            step=len(history))
        log.info("  %s epoch %d/%d: train loss %.4f acc %.4f | val loss %.4f acc %.4f | %.1f s",
                 phase.name, epoch, phase.epochs, row["train_loss"], row["train_accuracy"], row["val_loss"],
                 row["val_accuracy"], row["seconds"])
    model = accelerator.unwrap_model(prepared)
    del train_ds, val_ds, train_loader, val_loader
    if accelerator.is_main_process:  # spilled cache files are only valid for this phase
        for f in (run_dir / "cache").glob(f"phase{index}-*.bin"):
            f.unlink()
    accelerator.free_memory()  # the next phase re-wraps: DDP must see the new requires_grad (pytorch #22049)
    return model


@torch.no_grad()
def predict_loader(accelerator, model, loader, start: int = 0):
    """(logits, labels) over the whole split, gathered across processes without padding duplicates."""
    was_training = model.training
    model.eval()
    all_logits, all_labels = [], []
    for x, y in loader:
        logits = model(x, start=start)
        logits, y = accelerator.gather_for_metrics((logits.float(), y))
        all_logits.append(logits.cpu())
        all_labels.append(y.cpu())
    model.train(was_training)
    return torch.cat(all_logits), torch.cat(all_labels)


def evaluate_loader(accelerator, model, loader, start: int = 0) -> dict:
    logits, labels = predict_loader(accelerator, model, loader, start)
    return {"loss": float(F.cross_entropy(logits, labels)), "accuracy": float((logits.argmax(-1) == labels).float().mean()),
            "n": len(labels)}


def evaluate_split(accelerator, model, dataset, collate, recipe, splits):
    from .metrics import compute_metrics
    d = recipe.data
    loader = accelerator.prepare(_loader(dataset, d.eval_batch_size or 2 * d.batch_size, False, collate, d.workers, 0))
    logits, labels = predict_loader(accelerator, model, loader)
    probs = logits.softmax(-1)
    preds = probs.argmax(-1)
    metrics = compute_metrics(recipe.eval.metrics, preds.tolist(), labels.tolist(), len(splits.classes))
    metrics["test_examples"] = len(labels)
    return metrics, preds, probs
