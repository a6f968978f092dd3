"""The worst test predictions of a run, for the report: ``samples.json`` and ``samples.safetensors``.

Written by the trainer at the end of a run and by ``tlhub eval --samples``; drawn by ``pictures``."""
from __future__ import annotations

from pathlib import Path

import torch

from tlhub.artifacts import rundir


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
                                                 "thumbnails": drawn, "outputs_are": task.outputs_are})
    if drawn:
        import numpy as np
        from safetensors.torch import save_file
        with rundir.atomic_path(run_dir / "samples.safetensors") as tmp:
            save_file({"images": torch.from_numpy(np.stack(images)).to(torch.uint8)}, str(tmp))
