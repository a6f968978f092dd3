"""A tiny conv backbone with BatchNorm and a learnable synthetic image source, for tlhub's tests."""
from __future__ import annotations

from tlhub.hookspecs import hookimpl
from tlhub.options import Opt
from tlhub.registry import BackboneSpec, DataSourceSpec


def build_tiny(weights: str, options: dict):
    import torch
    from torch import nn

    from tlhub.errors import UserError
    from tlhub.interfaces import ImagePreprocessing, SequentialBackbone

    w = options["width"]

    def block(cin, cout, stride):
        return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())

    backbone = SequentialBackbone(
        [("stem", block(3, w, 1)), ("block1", block(w, w, 2)), ("block2", block(w, 2 * w, 2)),
         ("head_conv", block(2 * w, 2 * w, 1))],
        pool=nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()), feature_dim=2 * w,
        preprocessing=ImagePreprocessing((0.5, 0.5, 0.5), (0.5, 0.5, 0.5), 16))
    if weights not in ("", "none", "default"):
        from safetensors.torch import load_file
        try:
            backbone.load_state_dict(load_file(weights))
        except Exception as exc:
            raise UserError(f"model.weights: cannot load {weights}: {exc}") from None
    return backbone


def load_synthetic(options: dict, ctx):
    """Each class is a square of its own colour and position on noise: learnable in a few epochs."""
    import numpy as np

    from tlhub.interfaces import SourceData, Split

    n, per, size = options["classes"], options["per_class"], options["size"]
    rng = np.random.default_rng(options["seed"])
    items, labels = [], []
    for c in range(n):
        for _ in range(per):
            img = rng.integers(0, 80, (size, size, 3)).astype(np.uint8)
            row, col = divmod(c, 2)
            q = size // 4
            color = [(230, 40, 40), (40, 230, 40), (40, 40, 230), (230, 230, 40), (230, 40, 230), (40, 230, 230)][c]
            img[row * q + 1: row * q + 2 * q + 1, col * 2 * q + 1: col * 2 * q + 2 * q + 1, :] = color
            items.append(img)
            labels.append(c)
    return SourceData([f"class{c}" for c in range(n)], train=Split(items, labels))


@hookimpl
def register_backbones(register):
    register(BackboneSpec("tiny-cnn", "four conv+BatchNorm groups, for tests", "image", build_tiny,
                          options=(Opt("width", int, 8, "channels of the first conv"),)))


@hookimpl
def register_data_sources(register):
    register(DataSourceSpec("synthetic", "class-coloured squares on noise, for tests", "image", load_synthetic,
                            options=(Opt("classes", int, 4, "number of classes (2 to 6)",
                                         check=lambda v: "" if 2 <= v <= 6 else "must be in [2, 6]"),
                                     Opt("per_class", int, 40, "images per class", check=_positive),
                                     Opt("size", int, 16, "image side", check=_positive),
                                     Opt("seed", int, 0, "generator seed",
                                         check=lambda v: "" if 0 <= v < 2**32 else "must be in [0, 2**32)"))))


def _positive(v: int) -> str:
    return "" if v >= 1 else "must be >= 1"
