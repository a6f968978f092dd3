"""Tiny data and in-process plugin registration for tests."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

from tlhub import plugins
from tlhub.hookspecs import hookimpl
from tlhub.interfaces import SourceData, Split
from tlhub.registry import DataSourceSpec

# ------------------------------------------------------------------ data for tests

def tiny_image_data(classes: int = 3, per_class: int = 8, size: int = 16, seed: int = 0):
    """A tiny learnable image ``SourceData``: a square of each class's colour and position on noise."""
    import numpy as np


    if not 2 <= classes <= 6:
        raise ValueError("classes must be between 2 and 6")
    colors = [(230, 40, 40), (40, 230, 40), (40, 40, 230), (230, 230, 40), (230, 40, 230), (40, 230, 230)]
    rng = np.random.default_rng(seed)
    q = max(size // 4, 1)
    items, labels = [], []
    for c in range(classes):
        row, col = divmod(c, 2)
        for _ in range(per_class):
            img = rng.integers(0, 80, (size, size, 3)).astype(np.uint8)
            img[row * q: row * q + 2 * q, col * 2 * q: col * 2 * q + 2 * q, :] = colors[c]
            items.append(img)
            labels.append(c)
    return SourceData([f"class{c}" for c in range(classes)], train=Split(items, labels))


class TinyImageSource:
    """A plugin object that registers the data source ``name`` returning ``data`` (default ``tiny_image_data()``)."""

    def __init__(self, name: str = "tlhub-tiny-dataset", data=None):
        self.name, self.data = name, data

    @hookimpl
    def register_data_sources(self, register):
        register(DataSourceSpec(self.name, "tiny synthetic images (tlhub.testing)", "image",
                                lambda options, ctx: self.data if self.data is not None else tiny_image_data()))


@contextmanager
def registered(*plugin_objects: Any) -> Iterator[Any]:
    """Register plugin objects (in this process) on top of the installed plugins; yield the registry.

        with registered(my_plugin_module):
            check_backbone("my-backbone")
            tlhub.run("recipe.toml")          # in-process runs see the plugin too

    Subprocesses (``tlhub run`` on the command line) only see installed entry points.
    """
    with plugins.use_registry(plugins.make_registry(extra=plugin_objects)) as registry:
        yield registry
