"""Write a finished run: metrics, the model folder (safetensors + config.json), samples and pictures."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from tlhub import __version__
from tlhub.artifacts import rundir
from tlhub.modality import DataSettings
from tlhub.plugins import get_registry

log = logging.getLogger("tlhub")


def preprocessing_config(modality, backbone, recipe) -> dict:
    """``config.json``'s ``preprocessing``: the modality's name and what it needs to read inputs again."""
    return {"modality": modality.name, **modality.config(backbone, DataSettings.of(recipe))}


def write_model(model_dir: Path, recipe, model, classes: list[str], mixed_precision: str = "no", task=None) -> None:
    """``model/``: weights (safetensors, never pickle), config.json, the recipe, the tokenizer for text."""
    from safetensors.torch import save_file

    from tlhub.recipe import to_toml

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


def pick_samples(wrong, losses, n: int = 9) -> list[int]:
    """Indices of up to ``n`` test examples: mistakes first, each part highest loss first (fastai's top losses)."""
    order = sorted(range(len(losses)), key=lambda i: -losses[i])
    return ([i for i in order if wrong[i]] + [i for i in order if not wrong[i]])[:n]


THUMBNAIL_SIDE = 128  # pixels of each report thumbnail (images are shown at least this large)


def write_samples(run_dir: Path, modality, splits, outputs) -> None:
    """``samples.json`` (the worst test predictions as the task describes them, with the modality's caption
    text where it has one) and ``samples.safetensors`` (their thumbnails, where the modality draws them)."""
    task = splits.task
    outputs = outputs.detach().float().cpu().numpy() if hasattr(outputs, "detach") else outputs
    rows = task.sample_rows(splits.classes, list(splits.test.labels), outputs)
    idx = pick_samples([r["wrong"] if task.name != "classification" else r.pop("wrong") for r in rows],
                       [r["loss"] for r in rows])  # classification's samples.json as before tasks
    views = [modality.sample_view(splits.test.items[i], THUMBNAIL_SIDE) for i in idx]
    items = []
    for i, view in zip(idx, views):
        row = {"index": i, **rows[i]}
        if view.text is not None:
            row["text"] = view.text
        items.append(row)
    images = [v.image for v in views if v.image is not None]
    drawn = bool(images) and len(images) == len(views)
    # "thumbnails": the report shows these examples as pictures (samples.safetensors), else as a text table
    rundir.write_json(run_dir / "samples.json", {"modality": modality.name, "task": task.name, "items": items,
                                                 "thumbnails": drawn})
    if drawn:
        import numpy as np
        from safetensors.torch import save_file
        with rundir.atomic_path(run_dir / "samples.safetensors") as tmp:
            save_file({"images": torch.from_numpy(np.stack(images)).to(torch.uint8)}, str(tmp))


def write_outputs(run_dir: Path, recipe, model, splits, metrics, preds, outputs, mixed_precision: str = "no") -> None:
    rundir.write_json(run_dir / "metrics.json", metrics)
    write_model(run_dir / "model", recipe, model, splits.classes, mixed_precision, splits.task)
    write_samples(run_dir, get_registry().source_modality(recipe.data.source), splits, outputs)
    try:
        from tlhub.reporting.pictures import write_report
    except ImportError:  # pictures come with the report module
        return
    for path in write_report(run_dir):
        log.info("picture: %s", path)
