"""Images to tensors: 3 channels, the recipe's size, the backbone's normalization, optional augmentation."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from PIL import Image

from tlhub.interfaces import ImagePreprocessing


def to_pil(item: Any) -> Image.Image:
    """A PIL RGB image from a PIL image, an array (HxW or HxWxC), a path, or an encoded
    ``{"bytes", "path"}`` record (a Hugging Face ``datasets`` Image read with decode=False)."""
    if isinstance(item, Image.Image):
        img = item
    elif isinstance(item, dict):
        source = io.BytesIO(item["bytes"]) if item.get("bytes") else item["path"]
        with Image.open(source) as f:
            img = f.copy()
    elif isinstance(item, (str, Path)):
        with Image.open(item) as f:
            img = f.copy()
    else:
        arr = np.asarray(item)
        if arr.dtype != np.uint8:
            hi = float(arr.max()) if arr.size else 1.0
            arr = (arr * (255.0 / hi if hi > 1.0 else 255.0)).clip(0, 255).astype(np.uint8)
        if arr.ndim == 3 and arr.shape[0] in (1, 3) and arr.shape[-1] not in (1, 3):
            arr = arr.transpose(1, 2, 0)
        img = Image.fromarray(arr.squeeze(-1) if arr.ndim == 3 and arr.shape[-1] == 1 else arr)
    return img.convert("RGB")


def augment_is_random(augment) -> bool:
    """Whether the training transform draws randomly (then the training split cannot be cached)."""
    return augment is not None and (augment.crop_padding > 0 or bool(augment.flip) or augment.rotation > 0
                                    or augment.color_jitter > 0)


def build_transform(prep: ImagePreprocessing, size: int, augment, train: bool) -> tuple[Callable, bool]:
    """(transform, deterministic) for one split."""
    from torchvision import transforms as T

    steps: list = [T.Resize((size, size))]
    random = train and augment_is_random(augment)
    if random:
        if augment.crop_padding > 0:
            steps.append(T.RandomCrop(size, padding=augment.crop_padding))
        if augment.flip:
            steps.append(T.RandomHorizontalFlip())
        if augment.rotation > 0:
            steps.append(T.RandomRotation(augment.rotation))
        if augment.color_jitter > 0:
            j = augment.color_jitter
            steps.append(T.ColorJitter(brightness=j, contrast=j, saturation=j))
    steps += [T.ToTensor(), T.Normalize(prep.mean, prep.std)]
    return T.Compose(steps), not random


class ImageDataset(torch.utils.data.Dataset):
    def __init__(self, items, labels, transform):
        self.items, self.labels, self.transform = items, list(labels), transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        return self.transform(to_pil(self.items[i])), self.labels[i]
