"""A small IDX reader (the MNIST file format), gzipped or not.

torchvision's MNIST class refuses a folder that lacks any of the four files (e.g. one holding
only the official test set), so tlhub reads the files itself; torchvision only downloads.
"""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from tlhub.errors import UserError

FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
# where torchvision's MNIST(root, download=True) puts them, besides root itself
SUBDIRS = (".", "raw", "MNIST/raw")


def find(root: Path, stem: str) -> Path | None:
    for sub in SUBDIRS:
        for name in (stem, stem + ".gz"):
            p = root / sub / name
            if p.is_file():
                return p
    return None


def read_idx(path: Path) -> np.ndarray:
    """The array in an IDX file (uint8 data only, as MNIST uses)."""
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError) as exc:
        raise UserError(f"mnist: cannot read {path}: {exc}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise UserError(f"mnist: {path} is not an IDX file of unsigned bytes (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise UserError(f"mnist: {path} is truncated (incomplete header)")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    size = int(np.prod(shape))
    if len(raw) - header != size:
        raise UserError(f"mnist: {path} holds {len(raw) - header} data bytes, its header promises {size} "
                        f"(shape {shape}); truncated or corrupt")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def read_split(root: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images [N, 28, 28], labels [N]) of 'train' or 'test' under ``root``."""
    stems = FILES[split]
    paths = [find(root, s) for s in stems]
    missing = [s for s, p in zip(stems, paths) if p is None]
    if missing:
        raise UserError(f"mnist: no {' or '.join(m + '[.gz]' for m in missing)} in {root} "
                        f"(looked in {', '.join(str(root / d) for d in SUBDIRS)})")
    images, labels = (read_idx(p) for p in paths)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise UserError(f"mnist: {paths[0]} and {paths[1]} do not match: images {images.shape}, "
                        f"labels {labels.shape}")
    return images, labels


def has_split(root: Path, split: str) -> bool:
    return all(find(root, s) is not None for s in FILES[split])
