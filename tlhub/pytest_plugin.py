"""pytest fixtures for plugin authors (registered through the ``pytest11`` entry point ``tlhub``).

    def test_train_a_little(tlhub_tiny_dataset, tlhub_run_dir):
        assert len(tlhub_tiny_dataset.classes) == 3
        ...  # write a recipe with output.dir = tlhub_run_dir and run it

Without the entry point, enable it with ``-p tlhub.pytest_plugin`` or import the fixtures into a
test module (``from tlhub.pytest_plugin import tlhub_run_dir``). Importing this module is cheap:
torch and numpy load only when a fixture is used.
"""
from __future__ import annotations

import pytest


@pytest.fixture
def tlhub_tiny_dataset():
    """A tiny synthetic image ``SourceData``: 3 classes x 8 16x16 RGB arrays, train split only."""
    from tlhub.testing import tiny_image_data
    return tiny_image_data(classes=3, per_class=8, size=16, seed=0)


@pytest.fixture
def tlhub_run_dir(tmp_path):
    """A fresh, empty run directory in ``tmp_path``: use it as a recipe's ``output.dir``."""
    path = tmp_path / "run"
    path.mkdir()
    return path
