"""Write a finished run: metrics, the model folder (safetensors + config.json), samples and pictures."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from tlhub import __version__
from tlhub.artifacts import rundir
from tlhub.interfaces import ImagePreprocessing, TextPreprocessing

log = logging.getLogger("tlhub")


def preprocessing_config(prep, recipe) -> dict:
    if isinstance(prep, ImagePreprocessing):
        return {"modality": "image", "mean": list(prep.mean), "std": list(prep.std),
                "image_size": recipe.data.image_size or prep.size}
    if isinstance(prep, TextPreprocessing):
        return {"modality": "text", "max_length": prep.max_length}
    return {"modality": "unknown"}


def write_model(model_dir: Path, recipe, model, classes: list[str], mixed_precision: str = "no") -> None:
    """``model/``: weights (safetensors, never pickle), config.json, the recipe, the tokenizer for text."""
    from safetensors.torch import save_file

    from tlhub.plugins import get_registry
    from tlhub.recipe import to_toml

    model_dir.mkdir(parents=True, exist_ok=True)
    spec = get_registry().get("backbones", recipe.model.backbone)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with rundir.atomic_path(model_dir / "model.safetensors") as tmp:
        save_file(state, str(tmp), metadata={"format": "pt", "tlhub": __version__, "classes": json.dumps(classes)})
    prep = model.backbone.preprocessing
    config = {
        "tlhub_version": __version__,
        "backbone": recipe.model.backbone, "backbone_plugin": spec.plugin,
        "backbone_options": recipe.model.backbone_options, "weights_origin": recipe.model.weights or "default",
        "head": recipe.model.head, "head_options": recipe.model.head_options,
        "classes": classes, "preprocessing": preprocessing_config(prep, recipe),
        "channels_last": bool(getattr(model, "channels_last", False)),
        "mixed_precision": mixed_precision,  # the autocast it was trained and tested in ("no": fp32)
    }
    # The backbone saves what a rebuild needs offline (a text plugin: tokenizer + architecture config); only
    # options its descriptor declares are kept.
    declared = {o.name for o in spec.options}
    offline = {k: v for k, v in model.backbone.save_extras(model_dir).items() if k in declared}
    if offline:
        config["offline_backbone_options"] = offline
    rundir.write_json(model_dir / "config.json", config)
    rundir.write_atomic(model_dir / "recipe.toml", to_toml(recipe))


def pick_samples(labels, preds, losses=None, n: int = 9) -> list[int]:
    """Indices of up to ``n`` test examples: mistakes first, each part highest loss first (fastai's top losses)."""
    order = sorted(range(len(labels)), key=lambda i: -losses[i]) if losses is not None else range(len(labels))
    wrong = [i for i in order if labels[i] != preds[i]]
    right = [i for i in order if labels[i] == preds[i]]
    return (wrong + right)[:n]


def write_samples(run_dir: Path, model, splits, preds, probs, image_size: int) -> None:
    labels = [int(y) for y in splits.test.labels]
    preds = [int(p) for p in preds]
    # Cross-entropy of each test example: -log p(true class).
    p_true = probs.detach().float().cpu()[torch.arange(len(labels)), labels] if labels else torch.zeros(0)
    losses = (-p_true.clamp_min(1e-12).log()).tolist()
    idx = pick_samples(labels, preds, losses)
    text = isinstance(model.backbone.preprocessing, TextPreprocessing)
    items = []
    for i in idx:
        row = {"index": i, "true": splits.classes[labels[i]], "pred": splits.classes[preds[i]],
               "prob": round(float(probs[i, preds[i]]), 4), "prob_true": round(float(probs[i, labels[i]]), 4),
               "loss": round(losses[i], 4)}
        if text:
            row["text"] = str(splits.test.items[i])
        items.append(row)
    rundir.write_json(run_dir / "samples.json", {"modality": "text" if text else "image", "items": items})
    if not text and idx:
        import numpy as np
        from safetensors.torch import save_file

        from tlhub.data.images import to_pil
        size = max(image_size, 64)
        imgs = [np.asarray(to_pil(splits.test.items[i]).resize((size, size))) for i in idx]
        with rundir.atomic_path(run_dir / "samples.safetensors") as tmp:
            save_file({"images": torch.from_numpy(np.stack(imgs)).to(torch.uint8)}, str(tmp))


def write_outputs(run_dir: Path, recipe, model, splits, metrics, preds, probs, mixed_precision: str = "no") -> None:
    rundir.write_json(run_dir / "metrics.json", metrics)
    write_model(run_dir / "model", recipe, model, splits.classes, mixed_precision)
    prep = model.backbone.preprocessing
    size = (recipe.data.image_size or prep.size) if isinstance(prep, ImagePreprocessing) else 0
    write_samples(run_dir, model, splits, preds, probs, size)
    try:
        from tlhub.reporting.pictures import write_report
    except ImportError:  # pictures come with the report module
        return
    for path in write_report(run_dir):
        log.info("picture: %s", path)
