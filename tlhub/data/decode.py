"""Images to arrays with PIL and numpy only: what the trainer's eval transform does, without torch.

``to_pil`` is the one way every image item (path, PIL image, array, encoded record) becomes a PIL
image; ``to_chw`` repeats torchvision's ``Resize((s, s))`` (PIL bilinear) + ``ToTensor`` + ``Normalize``
in float32, so a model served through ONNX Runtime sees the same numbers as in training.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image


def to_pil(item: Any) -> Image.Image:
    """A PIL RGB image from a PIL image, an array (HxW, HxWxC or CxHxW), a path, or an encoded
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


def to_chw(img: Image.Image, size: int, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """``[3, size, size]`` float32: resized (PIL bilinear, as torchvision does for PIL images),
    scaled to 0..1 and normalized with ``mean``/``std``."""
    arr = np.asarray(img.resize((size, size), Image.BILINEAR), dtype=np.uint8)
    x = arr.astype(np.float32) / np.float32(255.0)
    x = (x - np.asarray(mean, dtype=np.float32)) / np.asarray(std, dtype=np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))
