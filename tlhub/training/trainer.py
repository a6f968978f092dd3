"""The phase trainer on Accelerate: per phase, freeze, build the optimizer, prepare, train, validate."""
from __future__ import annotations

import json
import logging
import os
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import torch

from tlhub import precision
from tlhub.artifacts import rundir
from tlhub.artifacts.environment import describe_environment
from tlhub.data.batching import flat
from tlhub.data.splits import Splits, make_splits
from tlhub.errors import UserError
from tlhub.export.model import write_outputs
from tlhub.interfaces import Backbone, DataContext
from tlhub.metrics import float_scores, format_scores
from tlhub.modality import DataSettings
from tlhub.model import ModelSpec, add_head, build_backbone, group_layouts
from tlhub.plugins import get_registry
from tlhub.recipe import (
    Checked,
    Recipe,
    apply_overrides,
    check,
    load_and_check,
    parse_recipe,
    to_toml,
)
from tlhub.recipe.plan import RunPlan, build_plan, cached_layouts
from tlhub.reporting import html as report_html  # called as report_html.X: tests replace it
from tlhub.training import checkpoint, datapin, phase, runfolder  # phase.run_phase: tests replace it
from tlhub.training.phase import Interrupted, RunContext, StopFlag, _loader, predict_loader
from tlhub.training.runfolder import find_resume_dir  # noqa: F401 (tlhub.training.trainer.find_resume_dir)
from tlhub.training.validation import warning

log = logging.getLogger("tlhub")


@dataclass
class RunResult:
    """What ``tlhub.run`` returns: where the run went and what it measured."""

    run_dir: Path
    metrics: dict
    history: list[dict]
    classes: list[str]
    model: Any = field(repr=False, default=None)
    timings: list[dict] = field(default_factory=list)
    primary_metric: str = "accuracy"  # the task's: what the run ranked epochs by


def resolve_recipe(recipe_or_path, overrides=()) -> Recipe:
    return resolve_checked(recipe_or_path, overrides).recipe


def resolve_checked(recipe_or_path, overrides=()) -> Checked:
    """The validated recipe and the run plan validation built (``tlhub.recipe.check``)."""
    if isinstance(recipe_or_path, Recipe):
        r = recipe_or_path
        if overrides:
            raw = apply_overrides(r.to_dict(), list(overrides))
            r = parse_recipe(raw, path=r.path, base_dir=r.base_dir)
        return check(r)
    return load_and_check(recipe_or_path, overrides)


def plan_of(checked: Checked, backbone: Backbone, registry) -> RunPlan:
    """The plan validation built, which must describe the loaded backbone's groups; built here, once, when
    validation could not build the architecture without weights."""
    if checked.plan is None:
        return build_plan(checked.recipe, registry, group_layouts(backbone))
    names = tuple(g.name for g in group_layouts(backbone))
    if names != checked.plan.group_names:  # a backbone plugin whose meta-device build differs from its real one
        raise RuntimeError(f"backbone {checked.recipe.model.backbone!r}: its groups {names} differ from those of "
                           f"its architecture without weights {checked.plan.group_names} (the plugin's bug)")
    return checked.plan


def make_datasets(backbone: Backbone, recipe: Recipe, splits: Splits, registry=None):
    """Datasets per split, the collate function and whether the training transform is deterministic: built
    by the data's modality (``tlhub.modality``), i.e. the recipe's data source's."""
    ds = (registry or get_registry()).source_modality(recipe.data.source).datasets(backbone, DataSettings.of(recipe), splits)
    return {"train": ds.train, "val": ds.val, "test": ds.test}, ds.collate, ds.deterministic


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


def _resume_command(recipe: Recipe | str, overrides, run_dir: Path) -> str:
    import shlex
    path = recipe.path if isinstance(recipe, Recipe) else recipe
    parts = ["tlhub", "run", path or "RECIPE", *overrides, "--resume", str(run_dir)]
    return " ".join(shlex.quote(p) for p in parts)


def run(recipe_or_path, overrides=(), overwrite: bool = False, quiet: bool = False,
        resume: str | None = None, search_auto: Callable[..., Any] | None = None) -> RunResult:
    """Train every phase of a recipe and score the test split; see ``RunResult``.

    ``resume``: a run directory (or "latest") to continue from its newest whole checkpoint.
    ``search_auto``: what turns a ``freeze = "auto"`` phase into ordinary phases (``tlhub.auto.driver``'s,
    passed in by ``tlhub.run``: the search trains with this package, so this package cannot import it).
    """
    opened: list[runfolder.OpenedRun] = []  # set by the main process: the run folder and its lock
    try:
        result = _run(recipe_or_path, overrides, overwrite, quiet, resume, opened, search_auto)
    except BaseException as exc:
        op = opened[0] if opened else None
        full = op is not None and (isinstance(exc, rundir.DiskFull) or rundir.is_disk_full(exc))
        runfolder.close_run(op, rundir.DiskFull(str(exc)) if full and not isinstance(exc, UserError) else exc)
        if full:
            path = recipe_or_path.path if isinstance(recipe_or_path, Recipe) else str(recipe_or_path)
            raise runfolder.disk_full(op, exc, _resume_command(path, list(overrides), op.rd.path)) from None
        raise
    runfolder.close_run(opened[0] if opened else None, None)
    return result


def _kernels(device: torch.device, deterministic: bool) -> None:
    """GPU kernels: cuDNN's autotuned convolutions and cuBLAS's split reductions sum in a different order
    from run to run, so neither the same seed nor a resume would give the same weights twice (CPU kernels
    are deterministic already). Process-wide switches, set again by every run."""
    if device.type != "cuda":
        return
    if deterministic:  # cuBLAS reads this when its first handle is made, i.e. at the run's first matmul
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = deterministic, not deterministic
    torch.use_deterministic_algorithms(deterministic, warn_only=True)  # ops without one warn, not fail


def _grouped_convs(recipe: Recipe, registry) -> int:
    """The backbone's grouped convolutions for ``mixed_precision = "auto"``, read from the shapes-only layout that
    validate built already; 0 where the architecture cannot be built here (the run then reports why)."""
    if recipe.train.mixed_precision != precision.AUTO:
        return 0
    try:
        return sum(g.grouped_convs for g in cached_layouts(ModelSpec.from_recipe(recipe), registry))
    except UserError:
        return 0


def _check_gpus_per_process() -> None:
    """One GPU per process: NCCL refuses two ranks on one GPU, deep inside the first collective."""
    local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    if local > 1 and torch.cuda.is_available() and torch.cuda.device_count() < local:
        n = torch.cuda.device_count()
        raise UserError(f"{local} processes were started on this machine but it has {n} GPU(s): start at most "
                        f"{n} (torchrun --nproc_per_node {n}), or hide the GPUs (CUDA_VISIBLE_DEVICES=) "
                        "to train on the CPU")


def _run(recipe_or_path, overrides, overwrite, quiet, resume, opened, search_auto) -> RunResult:
    from accelerate import Accelerator
    from accelerate.utils import (
        DataLoaderConfiguration,
        broadcast_object_list,
        set_seed,
    )


    checked = resolve_checked(recipe_or_path, overrides)
    recipe = checked.recipe
    if search_auto is None and any(p.freeze == "auto" for p in recipe.phases):  # the caller's mistake, found early
        raise TypeError('a freeze = "auto" phase needs run(..., search_auto=...), which tlhub.run passes')
    registry = get_registry()
    # Under torchrun on a machine without GPUs, Accelerate picks gloo only when told it is on CPU.
    cpu_ddp = int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available()
    _check_gpus_per_process()
    from accelerate.state import AcceleratorState, PartialState

    AcceleratorState._reset_state()  # mixed precision is per run: one process may run several recipes
    # "auto" needs the device first: PartialState is the one Accelerator then adopts.
    prec = precision.resolve(recipe.train.mixed_precision, PartialState(cpu=cpu_ddp).device.type,
                             grouped_convs=_grouped_convs(recipe, registry))
    accelerator = Accelerator(cpu=cpu_ddp, mixed_precision=prec.mode,
                              gradient_accumulation_steps=recipe.train.grad_accum,
                              log_with=recipe.train.log_with or None, project_dir=".",
                              dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True))
    main = accelerator.is_main_process
    threads = recipe.train.threads or max(1, (os.cpu_count() or 1) // accelerator.num_processes)
    torch.set_num_threads(threads)
    _kernels(accelerator.device, recipe.train.deterministic)

    holder = [None, None]
    if main:
        opened.append(runfolder.open_run(recipe, overwrite, resume))
        holder[:] = [str(opened[0].rd.path), str(opened[0].rd.final)]
    if accelerator.num_processes > 1:
        broadcast_object_list(holder)
    run_dir, final_dir = Path(holder[0]), Path(holder[1])
    setup_logging(run_dir, main, quiet)
    ckpt = checkpoint.newest(run_dir) if resume is not None else None
    searched = any(p.freeze == "auto" for p in recipe.phases)
    if resume is not None and ckpt is None and not searched:  # an interrupted search continues (auto/journal.jsonl)
        raise UserError(f"--resume: no whole checkpoint in {run_dir / 'checkpoints'}; start a new run instead")
    t_start = time.time()
    log.info("tlhub: run %s -> %s (%d process(es), %s, %d thread(s) each, %s)", recipe.path or "recipe", run_dir,
             accelerator.num_processes, accelerator.device, threads, prec.describe())

    # Weights before data, and both problems in one message: an offline user hears about missing
    # weights and missing data at once, without first waiting for the data to load.
    set_seed(recipe.train.seed)
    problems: list[str] = []
    try:
        backbone = build_backbone(ModelSpec.from_recipe(recipe), registry)
    except UserError as exc:
        problems += exc.errors
    rng_after_backbone = torch.get_rng_state()  # the head's init must not depend on what loading data draws
    try:
        splits = make_splits(recipe, registry, DataContext(Path(recipe.base_dir), recipe.data.split_seed,
                                                           log=log.info))
    except UserError as exc:
        problems += exc.errors
    if problems:
        raise UserError(errors=problems)
    run_plan = plan_of(checked, backbone, registry)
    if main:
        rundir.write_json(run_dir / "plan.json", run_plan.to_dict())
    log.info("data: %s, %s", recipe.data.source, splits.summary())
    pinned = datapin.check(run_dir, splits, resuming=resume is not None)  # every process: all refuse together
    if main and not (run_dir / datapin.FILE).is_file():
        rundir.write_json(run_dir / datapin.FILE, pinned)
    stop = StopFlag()
    found = None
    if searched:  # measured: trials become ordinary phases
        stop.install()
        try:
            found = search_auto(accelerator, recipe, run_plan, registry, backbone, rng_after_backbone, splits,
                                run_dir, make_datasets, stop, resuming=resume is not None)
        except (Interrupted, KeyboardInterrupt):  # a trial saw the signal, or a second Ctrl-C
            raise _search_interrupted(stop, run_dir, _resume_command(recipe, list(overrides), run_dir)) from None
        finally:
            stop.restore()
        run_plan, splits = found.plan, found.splits if found.splits.task else replace(found.splits, task=splits.task)
        if main:  # the search's outcome: a revision of the plan (plan.json keeps what it replaced and why)
            rundir.write_json(run_dir / "plan.json", run_plan.to_dict())
        ckpt = checkpoint.newest(run_dir)  # the winner's trial: the run continues it
    if not searched:  # the search checks (and enlarges) the validation split itself
        _warn_small_val(run_plan, splits)
    phases = [p.settings for p in run_plan.phases]
    ran = replace(recipe, phases=tuple(phases))  # the recipe of what runs: the plan's phases (after a search, its)
    ident = checkpoint.identity(ran, splits.classes)
    history: list[dict] = []
    if ckpt is not None:
        diffs = checkpoint.differences(ckpt.state["identity"], ident)
        if diffs:
            raise UserError(errors=[f"--resume: the checkpoint in {run_dir} comes from a different recipe:"]
                            + [f"  {d}" for d in diffs])
        history = list(ckpt.state["history"])
        log.info("resume: from checkpoint %s (phase %d, %d epoch(s) and %d step(s) done)", ckpt.path.name,
                 ckpt.position[0] + 1, ckpt.position[1], ckpt.position[2])
    if main:
        rundir.write_json(run_dir / "environment.json", describe_environment(
            accelerator.device, accelerator.num_processes, threads, prec.mode, registry))
        rundir.write_atomic(run_dir / "recipe.toml", f"# resolved recipe of {recipe.path}\n" + to_toml(ran))
        rundir.write_atomic(run_dir / "history.jsonl", "".join(json.dumps(r) + "\n" for r in history))
        if splits.skipped:
            rundir.write_atomic(run_dir / "skipped.txt", "\n".join(splits.skipped) + "\n")
    if splits.skipped:
        log.info("data: skipped %d unreadable item(s), listed in %s", len(splits.skipped), run_dir / "skipped.txt")

    torch.set_rng_state(rng_after_backbone)
    model = add_head(backbone, ModelSpec.from_recipe(recipe), registry, splits.task.num_outputs(splits.classes))
    if recipe.train.channels_last and registry.source_modality(recipe.data.source).channels_last(backbone):
        model = model.use_channels_last()
        log.info("memory format: channels_last (train.channels_last = false for PyTorch's default)")
    datasets, collate, deterministic = make_datasets(model.backbone, recipe, splits, registry)
    if recipe.train.log_with:
        accelerator.project_configuration.logging_dir = str(run_dir / "tensorboard")
        accelerator.init_trackers(recipe.stem, config={"recipe": recipe.path})

    ctx = RunContext(accelerator, recipe, registry, datasets, collate, deterministic, run_dir, history, ident, stop,
                     _resume_command(recipe, list(overrides), run_dir), plan=run_plan, configured_task=splits.task)
    first_phase, resume_in = 0, None
    if ckpt is not None:
        checkpoint.load_model_only(ckpt, model)  # before the phase caches its frozen prefix
        first_phase, resume_in = checkpoint.resume_point(ckpt, phases)
    after_phase: dict[str, dict] = {}  # eval.each_phase: test scores of the phases this process ran
    stop.install()
    try:
        for index in range(first_phase, len(phases)):
            # the phases the search wrote may reuse its cache at the winner's depth (no second fill)
            ctx.shared_cache = found.caches if found and index in found.cache_phases else None
            model = phase.run_phase(ctx, model, index, resume=resume_in if index == first_phase else None)
            if recipe.eval.each_phase and index < len(phases) - 1:
                scores = evaluate_split(accelerator, model, datasets["test"], collate, recipe, splits)[0]
                after_phase[phases[index].name] = float_scores(scores)
                log.info("test after phase %d '%s': %s", index + 1, phases[index].name, format_scores(scores))
    finally:
        stop.restore()

    splits = tune_task(accelerator, model, datasets["val"], collate, recipe, splits)
    metrics, preds, probs = evaluate_split(accelerator, model, datasets["test"], collate, recipe, splits)
    if recipe.eval.each_phase:
        metrics["after_phase"] = {**after_phase, phases[-1].name: float_scores(metrics)}
    metrics["classes"] = splits.classes
    if main:
        write_outputs(run_dir, ran, model, splits, metrics, preds, probs, prec.mode)
    if recipe.train.log_with:
        accelerator.log({f"test/{k}": v for k, v in metrics.items() if isinstance(v, float)})
        accelerator.end_training()
    elapsed = time.time() - t_start
    log.info("test: %s (%d examples) in %.0f s total", format_scores(metrics), len(splits.test), elapsed)
    accelerator.wait_for_everyone()
    if main:
        rundir.write_json(run_dir / "timings.json", {"phases": ctx.timings, "total_seconds": round(elapsed, 3)})
        write_page(run_dir)
        if opened[0].rd.staged:
            rundir.commit(opened[0].rd)
            log.info("overwrite: the new run replaced the old one in %s", final_dir)
    shown = ("report.html", "metrics.json", "history.jsonl", "model", "confusion_matrix.png", "learning_curves.png",
             *metrics.get("pictures", ()), "samples.png", "samples.md")  # what this run's task and data wrote
    log.info("results: %s (%s)", final_dir, ", ".join(n + ("/" if n == "model" else "") for n in shown
                                                      if (final_dir / n).exists()))
    accelerator.wait_for_everyone()
    return RunResult(final_dir, metrics, history, splits.classes, model, ctx.timings, splits.task.primary_metric)


def _search_interrupted(stop, run_dir: Path, command: str) -> UserError:
    """Ctrl-C or SIGTERM during the auto search: the resume command (the search continues from its journal and
    the interrupted trial's checkpoint; ``auto/`` marks the folder as resumable)."""
    import signal

    (run_dir / "auto").mkdir(exist_ok=True)
    signum = stop.signum or signal.SIGINT
    return Interrupted(f"interrupted by {signal.Signals(signum).name} during the auto search (its finished trials are "
                       f"kept in {run_dir / 'auto'}). Resume with:\n  {command}", 128 + signum)


def write_page(run_dir: Path) -> None:
    """report.html last, from the files above; every result is already on disk, so a failure here only warns."""
    try:
        log.info("report: %s", report_html.write_html_report(run_dir))
    except Exception as exc:  # noqa: BLE001 - the run's results are written; `tlhub report` can retry
        if rundir.is_disk_full(exc):  # the run is not whole: one message with the resume command
            raise
        log.warning("report: report.html not written (%s: %s); `tlhub report %s` retries", type(exc).__name__,
                    exc, run_dir)


def _warn_small_val(plan: RunPlan, splits) -> None:
    decides = any(p.settings.early_stop or p.settings.restore_best for p in plan.phases)
    message = warning(len(splits.val), decides)
    if message:
        log.warning("%s", message)


def split_logits(accelerator, model, dataset, collate, recipe):
    """(logits, targets) of a whole split, in the split's order."""
    d = recipe.data
    plain = _loader(dataset, d.eval_batch_size or 2 * d.batch_size, False, collate, d.workers, 0, d.group_by_length)
    logits, labels = predict_loader(accelerator, model, accelerator.prepare(plain))
    if plain.batch_size is None:  # batches grouped by length: put predictions back in the split's order
        order = torch.tensor(flat(plain.batch_sampler))
        logits[order], labels[order] = logits.clone(), labels.clone()
    return logits, labels


def tune_task(accelerator, model, dataset, collate, recipe, splits: Splits) -> Splits:
    """The task's state fitted on the validation split's outputs of the trained model (multi-label: a
    threshold per label), merged into ``splits.task``; unchanged when the task tunes nothing."""
    task = splits.task
    if not task.tunes:
        return splits
    tuned = task.tune(*split_logits(accelerator, model, dataset, collate, recipe))
    log.info("task: tuned on the validation split: %s", ", ".join(f"{k} {v}" for k, v in tuned.items())[:300])
    return replace(splits, task=task.configured(state={**task.state, **tuned}))


def evaluate_split(accelerator, model, dataset, collate, recipe, splits):
    """The test scores of the recipe's task, its decoded predictions and transformed outputs."""
    logits, labels = split_logits(accelerator, model, dataset, collate, recipe)
    task = splits.task or get_registry().task(recipe.model.task)
    preds, outputs = task.decode(logits)
    metrics = task.metrics(outputs.float().numpy(), labels.numpy(), splits.classes, recipe.eval.metrics,
                           get_registry())
    metrics["test_examples"] = len(labels)
    return metrics, preds, outputs
