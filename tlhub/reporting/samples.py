"""The worst test predictions of a run, for the report: ``samples.json`` and ``samples.safetensors``.

Written by the trainer at the end of a run and by ``tlhub eval --samples``; drawn by ``pictures``."""
from __future__ import annotations

from pathlib import Path

import torch

from tlhub.artifacts import rundir


def pick_samples(labels, preds, losses=None, n: int = 9) -> list[int]:
    """Indices of up to ``n`` test examples: mistakes first, each part highest loss first (fastai's top losses)."""
    order = sorted(range(len(labels)), key=lambda i: -losses[i]) if losses is not None else range(len(labels))
    wrong = [i for i in order if labels[i] != preds[i]]
    right = [i for i in order if labels[i] == preds[i]]
    return (wrong + right)[:n]


THUMBNAIL_SIDE = 128  # pixels of each report thumbnail (images are shown at least this large)


def write_samples(run_dir: Path, modality, splits, preds, probs) -> None:
    """``samples.json`` (the worst test predictions, with the modality's caption text where it has one) and
    ``samples.safetensors`` (their thumbnails, where the modality draws them)."""
    labels = [int(y) for y in splits.test.labels]
    preds = [int(p) for p in preds]
    # Cross-entropy of each test example: -log p(true class).
    p_true = probs.detach().float().cpu()[torch.arange(len(labels)), labels] if labels else torch.zeros(0)
    losses = (-p_true.clamp_min(1e-12).log()).tolist()
    idx = pick_samples(labels, preds, losses)
    views = [modality.sample_view(splits.test.items[i], THUMBNAIL_SIDE) for i in idx]
    items = []
    for i, view in zip(idx, views):
        row = {"index": i, "true": splits.classes[labels[i]], "pred": splits.classes[preds[i]],
               "prob": round(float(probs[i, preds[i]]), 4), "prob_true": round(float(probs[i, labels[i]]), 4),
               "loss": round(losses[i], 4)}
        if view.text is not None:
            row["text"] = view.text
        items.append(row)
    images = [v.image for v in views if v.image is not None]
    drawn = bool(images) and len(images) == len(views)
    # "thumbnails": the report shows these examples as pictures (samples.safetensors), else as a text table
    rundir.write_json(run_dir / "samples.json", {"modality": modality.name, "items": items, "thumbnails": drawn})
    if drawn:
        import numpy as np
        from safetensors.torch import save_file
        with rundir.atomic_path(run_dir / "samples.safetensors") as tmp:
            save_file({"images": torch.from_numpy(np.stack(images)).to(torch.uint8)}, str(tmp))
