"""pytest fixtures for plugin authors (registered through the ``pytest11`` entry point ``tlhub``).

    def test_my_backbone_trains(tlhub_tiny_source, tlhub_run_dir, tmp_path):
        recipe = tmp_path / "r.toml"
        recipe.write_text(f'''
    [model]
    backbone = "my-backbone"
    [data]
    source = "{tlhub_tiny_source}"
    [[phases]]
    epochs = 1
    [output]
    dir = "{tlhub_run_dir}"
    ''')
        assert tlhub.run(recipe).metrics["accuracy"] >= 0

Without the entry point, enable it with ``-p tlhub.pytest_plugin`` or import the fixtures into a
test module (``from tlhub.pytest_plugin import tlhub_run_dir``). Importing this module is cheap:
torch and numpy load only when a fixture is used.
"""
from __future__ import annotations

import pytest


@pytest.fixture
def tlhub_tiny_dataset():
    """A tiny synthetic image ``SourceData``: 3 classes x 8 16x16 RGB arrays, train split only."""
    # local: pytest loads this plugin at every start; tlhub.testing loads when a fixture is used
    from tlhub.testing import tiny_image_data
    return tiny_image_data(classes=3, per_class=8, size=16, seed=0)


@pytest.fixture
def tlhub_tiny_source(tlhub_tiny_dataset):
    """The name of a data source, registered in this process for this test, that returns
    ``tlhub_tiny_dataset`` (for in-process ``tlhub.run``; ``tlhub run`` subprocesses do not see it)."""
    # local: pytest loads this plugin at every start; tlhub.testing loads when a fixture is used
    from tlhub.testing import TinyImageSource, registered
    with registered(TinyImageSource("tlhub-tiny-dataset", tlhub_tiny_dataset)):
        yield "tlhub-tiny-dataset"


@pytest.fixture
def tlhub_run_dir(tmp_path):
    """A fresh, empty run directory in ``tmp_path``: use it as a recipe's ``output.dir``."""
    path = tmp_path / "run"
    path.mkdir()
    return path
