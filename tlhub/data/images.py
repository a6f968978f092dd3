"""Images to tensors: 3 channels, the recipe's size, the backbone's normalization, optional augmentation."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from PIL import Image

from tlhub.interfaces import ImagePreprocessing


def to_pil(item: Any) -> Image.Image:
    """A PIL RGB image from a PIL image, an array (HxW or HxWxC) or a path.

    Values wider than 8 bits (16-bit PNGs, 32-bit integer or float images and arrays) are scaled to
    0..255 by the range their type holds, never clipped: 1000 in a 16-bit image is nearly black.
    """
    if isinstance(item, Image.Image):
        img = item
    elif isinstance(item, (str, Path)):
        with Image.open(item) as f:
            img = f.copy()
            img.format = f.format
    else:
        arr = to_uint8(np.asarray(item))
        if arr.ndim == 3 and arr.shape[0] in (1, 3) and arr.shape[-1] not in (1, 3):
            arr = arr.transpose(1, 2, 0)
        img = Image.fromarray(arr.squeeze(-1) if arr.ndim == 3 and arr.shape[-1] == 1 else arr)
    if img.mode.startswith("I;16"):
        img = Image.fromarray(to_uint8(np.asarray(img).astype(np.uint16)))
    elif img.mode in ("I", "F"):
        arr = np.asarray(img)
        # Pillow before 10 opened 16-bit PNGs as "I": their range is 16 bits whatever the values
        img = Image.fromarray(to_uint8(arr.astype(np.uint16) if img.format == "PNG" and img.mode == "I" else arr))
    return img.convert("RGB")


def to_uint8(arr: np.ndarray) -> np.ndarray:
    """8-bit values from any numeric array, scaled by the range its type implies.

    uint16: 0..65535; floats within [0, 1]: 0..1; other values within [0, 255]: as they are; other
    integers within [0, 65535]: 16-bit; anything else: its own min..max.
    """
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == bool:
        return arr.astype(np.uint8) * 255
    a = arr.astype(np.float64)
    lo, hi = (float(np.nanmin(a)), float(np.nanmax(a))) if a.size else (0.0, 0.0)
    if arr.dtype == np.uint16:
        top = 65535.0
    elif lo >= 0 and hi <= 1 and np.issubdtype(arr.dtype, np.floating):
        top = 1.0
    elif lo >= 0 and hi <= 255:
        top = 255.0
    elif lo >= 0 and hi <= 65535 and np.issubdtype(arr.dtype, np.integer):
        top = 65535.0
    else:
        a, top = a - lo, max(hi - lo, 1e-12)
    return np.rint(np.nan_to_num(a) * (255.0 / top)).clip(0, 255).astype(np.uint8)


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
