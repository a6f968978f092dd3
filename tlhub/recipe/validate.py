"""Validation against the registry and the backbone's real groups: every error of a recipe at once."""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tlhub.errors import UserError, did_you_mean
from tlhub.modality import DataSettings
from tlhub.options import resolve_options
from tlhub.plugins import get_registry
from tlhub.recipe.schema import Recipe, apply_overrides, load_toml, parse_recipe
from tlhub.registry import unknown_message


@dataclass(frozen=True)
class Checked:
    """A recipe that validated, and its run plan: what ``tlhub run`` then runs without resolving it again.
    ``plan`` is None when the backbone's architecture cannot be built without its weights here (e.g. a hub
    model not in the local cache): the run builds the plan once from the loaded backbone."""

    recipe: Recipe
    plan: Any = None  # tlhub.recipe.plan.RunPlan


def validate(recipe: Recipe, registry=None) -> list[str]:
    """Errors from resolving component names and their options against the registry."""
    return _check(recipe, registry)[0]


def check(recipe: Recipe, registry=None) -> Checked:
    """``recipe`` and its run plan, or ``UserError`` with every error of the recipe at once."""
    errors, plan = _check(recipe, registry)
    if errors:
        raise UserError(errors=errors)
    if not recipe.eval.metrics:  # "the task's own", named: `tlhub show` and the saved recipe list them
        own = list((registry or get_registry()).task(recipe.model.task).chosen_metrics(recipe.eval.metrics))
        recipe = replace(recipe, eval=replace(recipe.eval, metrics=own))
    return Checked(recipe, plan)


def _check(recipe: Recipe, registry=None) -> tuple[list[str], Any]:
    reg = registry or get_registry()
    errors: list[str] = []

    def check(kind: str, name: str, opts: dict, where: str, opts_where: str):
        if not name:  # reported as missing already
            return None
        table = reg.items[kind]
        if name not in table:
            # local: tlhub.recipe.plan imports torch; `import tlhub` must not
            from tlhub.recipe.plan import unknown_freeze_policy
            errors.append(f"{where}: " + (unknown_freeze_policy(name, reg) if kind == "freeze-policies"
                                          else unknown_message(kind, name, table, reg.provider)))
            return None
        errors.extend(resolve_options(opts_where, opts, getattr(table[name], "options", ()))[1])
        return table[name]

    bb = check("backbones", recipe.model.backbone, recipe.model.backbone_options, "model.backbone",
               "model.backbone_options")
    check("tasks", recipe.model.task, recipe.model.task_options, "model.task", "model.task_options")
    check("heads", recipe.model.head, recipe.model.head_options, "model.head", "model.head_options")
    src = check("data-sources", recipe.data.source, recipe.data.options, "data.source", "data.options")
    if recipe.data.test is not None and recipe.data.test.source:
        check("data-sources", recipe.data.test.source, recipe.data.test.options, "data.test.source",
              "data.test.options")
    for i, p in enumerate(recipe.phases):
        for kind, key in (("optimizers", "optimizer"), ("schedulers", "scheduler")):
            name = getattr(p, key)
            if isinstance(name, str) and not name.strip():
                errors.append(f"phases.{i}.{key}: must name a registered {kind[:-1]} (`tlhub list {kind}`), got ''")
            elif isinstance(name, str):
                check(kind, name, {}, f"phases.{i}.{key}", f"phases.{i}.{key}")
        if p.freeze == "auto":  # planned by `tlhub advise` at the start of the run
            errors += _auto_task_errors(recipe, reg, i)
            continue
        check("freeze-policies", p.freeze, p.freeze_options, f"phases.{i}.freeze", f"phases.{i}.freeze_options")
    if src is not None:
        errors += _modality_errors(recipe, reg, src, bb)
    plan = None
    if bb is not None and not any(e.startswith("model.backbone") for e in errors):
        plan_errors, plan = _plan(recipe, reg)
        errors += plan_errors
    errors += _setup_errors(recipe, reg)
    return list(dict.fromkeys(errors)), None if errors else plan  # the plan may repeat a name error found above


def _auto_task_errors(recipe: Recipe, reg, index: int) -> list[str]:
    """The auto search measures the frozen features with the task's linear probe (``Task.probe``) first: a task
    without one cannot use it."""
    if recipe.model.task not in reg.items["tasks"] or reg.task(recipe.model.task).probes:
        return []  # an unknown task is reported as such
    return [f"phases.{index}.freeze: 'auto' measures the frozen features with the task's linear probe, but task "
            f"{recipe.model.task!r} defines none (Task.probe); name a freeze policy (e.g. 'top_k') for this task"]


def _modality_errors(recipe: Recipe, reg, src, bb) -> list[str]:
    """The source's modality is registered, feeds the backbone's input kind, and its options resolve."""
    mod = reg.items["modalities"].get(src.modality)
    if mod is None:
        return [f"data.source: {recipe.data.source!r} gives {src.modality!r} data: "
                + unknown_message("modalities", src.modality, reg.items["modalities"], reg.provider)]
    errors = resolve_options("data.preprocess", recipe.data.preprocess, mod.options)[1]
    if not errors:  # the modality's own judgement of the data settings, once its options resolve
        errors += reg.modality(src.modality).data_problems(DataSettings.of(recipe))
    settings = DataSettings.of(recipe)
    if getattr(settings.augment, "swap_pairs", False) and not settings.pairs:
        errors.append(f"data.augment.swap_pairs: needs sentence pairs, but data source {recipe.data.source!r} gives "
                      f"single {reg.modality(src.modality).noun} (a text source's text_pair option names the "
                      f"second column)")
    if bb is not None and bb.modality not in mod.feeds:
        errors.append(f"data.source: {recipe.data.source!r} gives {src.modality} data, which feeds "
                      f"{' or '.join(mod.feeds) or 'no'} backbones, but backbone {recipe.model.backbone!r} takes "
                      f"{bb.modality} input")
    return errors


def _plan(recipe: Recipe, registry) -> tuple[list[str], Any]:
    """The run plan: group names and freeze options checked against the backbone's real groups (see
    tlhub.recipe.plan); (errors, plan or None)."""
    # function-local: tlhub.model imports torch, which `tlhub validate` needs only for a recipe that checks so far
    from tlhub.model.assemble import ModelSpec
    from tlhub.recipe.plan import build_plan, cached_layouts
    try:
        layouts = cached_layouts(ModelSpec.from_recipe(recipe), registry)
    except UserError as exc:  # the architecture cannot be built here (e.g. offline): the run reports why,
        # but a bad backbone option (an unknown timm model, a missing model folder) is the recipe's mistake
        return [m for m in (exc.errors or [str(exc)]) if m.startswith("model.backbone_options")], None
    try:
        return [], build_plan(recipe, registry, layouts)
    except UserError as exc:
        return exc.errors or [str(exc)], None
    except OverflowError:  # e.g. layer_decay = 1e300: out of range, which the schema has reported
        return [], None


def _setup_errors(recipe: Recipe, registry) -> list[str]:
    """What the run would otherwise find only at setup: output folder, trackers, metrics."""
    # local: keeps tlhub.artifacts.rundir out of `import tlhub` (every entry point runs it)
    from tlhub.artifacts.rundir import check_output_dir
    errors = check_output_dir(recipe.output.dir) if recipe.output.dir else []
    errors += weights_file_errors(recipe)
    errors += tracker_errors(recipe.train.log_with)
    # the task judges the names (classification: registered metrics; regression: its own); an unknown task
    # and names that are not strings are reported elsewhere
    if recipe.model.task in registry.items["tasks"] and all(isinstance(m, str) for m in recipe.eval.metrics):
        errors += registry.task(recipe.model.task).metric_errors(list(recipe.eval.metrics), registry)
    return errors


WEIGHT_FILE_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin", ".ckpt")


def weights_file_errors(recipe: Recipe) -> list[str]:
    """A ``model.weights`` file that is not there (resolved as the run resolves it: from the recipe's folder
    or the working directory); names that are not files (model ids, 'imagenet') are the backbone's to judge."""
    w = recipe.model.weights
    if not isinstance(w, str) or not w.lower().endswith(WEIGHT_FILE_SUFFIXES):
        return []
    path = Path(w).expanduser()
    if (Path(recipe.base_dir) / path).is_file() or path.is_file():
        return []
    return [f"model.weights: no such weights file: {w} (relative paths: from the recipe's folder {recipe.base_dir})"]


def tracker_errors(names) -> list[str]:
    """Accelerate's tracker names, and only those installed here (Accelerate raises on the others)."""
    from accelerate.tracking import LOGGER_TYPE_TO_CLASS
    from accelerate.tracking import get_available_trackers
    known = ["all", *LOGGER_TYPE_TO_CLASS]
    available = [str(getattr(t, "value", t)) for t in get_available_trackers()]
    errors = []
    for name in names:
        if not isinstance(name, str):
            continue  # reported by the schema
        if name not in known:
            errors.append(f"train.log_with: unknown tracker {name!r}{did_you_mean(name, known)} "
                          f"(Accelerate's trackers: {', '.join(known)})")
        elif name != "all" and name not in available:
            errors.append(f"train.log_with: tracker {name!r} is not installed (installed: "
                          f"{', '.join(available) or 'none'}); install its package or remove it")
    return errors


def load_and_validate(path: str | Path, overrides=()) -> Recipe:
    """Parse and resolve a recipe, reporting every error (syntax, types, values, names) at once."""
    return load_and_check(path, overrides).recipe


def load_and_check(path: str | Path, overrides=()) -> Checked:
    """``load_and_validate`` that keeps the run plan it built (``Checked``)."""
    raw = apply_overrides(load_toml(path), list(overrides))
    errors: list[str] = []
    recipe = parse_recipe(raw, path=str(path), base_dir=Path(path).resolve().parent, errors=errors)
    if errors:  # a recipe that does not parse is still checked against the registry: every error at once
        raise UserError(errors=errors + validate(recipe))
    return check(recipe)
