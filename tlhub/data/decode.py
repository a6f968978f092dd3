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
    ``{"bytes", "path"}`` record (a Hugging Face ``datasets`` Image read with decode=False).

    Values wider than 8 bits (16-bit PNGs, 32-bit integer or float images and arrays) are scaled to
    0..255 by the range their type holds, never clipped: 1000 in a 16-bit image is nearly black.
    """
    if isinstance(item, Image.Image):
        img = item
    elif isinstance(item, dict):
        source = io.BytesIO(item["bytes"]) if item.get("bytes") else item["path"]
        with Image.open(source) as f:
            img = f.copy()
            img.format = f.format
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


def decode_error(path: str | Path) -> str | None:
    """None when the image file decodes fully, else why not (how training and predict skip bad files)."""
    try:
        with Image.open(path) as im:
            im.load()
        return None
    except Exception as exc:  # PIL raises several types for bad files (and DecompressionBombError)
        return f"{type(exc).__name__}: {exc}"


def to_uint8(arr: np.ndarray) -> np.ndarray:
    """8-bit values from any numeric array, scaled by the range its type implies.

    uint16: 0..65535; floats within [0, 1]: 0..1; other values within [0, 255]: as they are; other
    integers within [0, 65535]: 16-bit; anything else: its own min..max. Ranges count finite values
    only; nan becomes the minimum, +-inf the maximum / minimum.
    """
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == bool:
        return arr.astype(np.uint8) * 255
    a = arr.astype(np.float64)
    finite = a[np.isfinite(a)]  # the range of the real values: one inf pixel must not black out the rest
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    a = np.nan_to_num(a, nan=lo, posinf=hi, neginf=lo)
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
    return np.rint(a * (255.0 / top)).clip(0, 255).astype(np.uint8)


def to_chw(img: Image.Image, size: int, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """``[3, size, size]`` float32: resized (PIL bilinear, as torchvision does for PIL images),
    scaled to 0..1 and normalized with ``mean``/``std``."""
    arr = np.asarray(img.resize((size, size), Image.BILINEAR), dtype=np.uint8)
    x = arr.astype(np.float32) / np.float32(255.0)
    x = (x - np.asarray(mean, dtype=np.float32)) / np.asarray(std, dtype=np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))
