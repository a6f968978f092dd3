"""Write a finished run: metrics, the model folder (safetensors + config.json), samples and pictures."""
from __future__ import annotations

import json
import logging
from pathlib import Path

from tlhub import __version__
from tlhub.artifacts import rundir
from tlhub.modality import DataSettings
from tlhub.plugins import get_registry
from tlhub.recipe import to_toml
from tlhub.reporting.pictures import write_report
from tlhub.reporting.samples import write_samples

log = logging.getLogger("tlhub")


def preprocessing_config(modality, backbone, recipe) -> dict:
    """``config.json``'s ``preprocessing``: the modality's name and what it needs to read inputs again."""
    return {"modality": modality.name, **modality.config(backbone, DataSettings.of(recipe))}


def write_model(model_dir: Path, recipe, model, classes: list[str], mixed_precision: str = "no", task=None) -> None:
    """``model/``: weights (safetensors, never pickle), config.json, the recipe, the tokenizer for text."""
    from safetensors.torch import save_file


    model_dir.mkdir(parents=True, exist_ok=True)
    registry = get_registry()
    spec = registry.get("backbones", recipe.model.backbone)
    modality = registry.source_modality(recipe.data.source)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with rundir.atomic_path(model_dir / "model.safetensors") as tmp:
        save_file(state, str(tmp), metadata={"format": "pt", "tlhub": __version__, "classes": json.dumps(classes)})
    config = {
        "tlhub_version": __version__,
        "backbone": recipe.model.backbone, "backbone_plugin": spec.plugin,
        "backbone_options": recipe.model.backbone_options, "weights_origin": recipe.model.weights or "default",
        "head": recipe.model.head, "head_options": recipe.model.head_options, "task": recipe.model.task,
        "classes": classes, "preprocessing": preprocessing_config(modality, model.backbone, recipe),
        "channels_last": bool(getattr(model, "channels_last", False)),
        "mixed_precision": mixed_precision,  # the autocast it was trained and tested in ("no": fp32)
    }
    # The backbone saves what a rebuild needs offline (a text plugin: tokenizer + architecture config); only
    # options its descriptor declares are kept.
    declared = {o.name for o in spec.options}
    offline = {k: v for k, v in model.backbone.save_extras(model_dir).items() if k in declared}
    if offline:
        config["offline_backbone_options"] = offline
    if task is not None and (task.state or task.options):  # thresholds, the target scale: used by predict
        config["task_options"], config["task_state"] = task.options, task.state
    rundir.write_json(model_dir / "config.json", config)
    rundir.write_atomic(model_dir / "recipe.toml", to_toml(recipe))


def write_outputs(run_dir: Path, recipe, model, splits, metrics, preds, outputs, mixed_precision: str = "no") -> None:
    task = splits.task or get_registry().task(recipe.model.task)
    drawn = task.pictures(run_dir, splits.classes, splits.test.labels, outputs.float().numpy(), metrics)
    if drawn:  # the report page shows them in its test section
        metrics["pictures"] = [p.name for p in drawn]
        for path in drawn:
            log.info("picture: %s", path)
    rundir.write_json(run_dir / "metrics.json", metrics)
    write_model(run_dir / "model", recipe, model, splits.classes, mixed_precision, splits.task)
    write_samples(run_dir, get_registry().source_modality(recipe.data.source), splits, outputs)
    for path in write_report(run_dir):
        log.info("picture: %s", path)
