"""Shared fixtures: one torch thread per test process, the tiny plugin, recipes written to tmp."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def pytest_configure(config):
    import torch
    # Two cores, often two test processes: oversubscription is brutal. TLHUB_TEST_THREADS lets
    # test_portability.py rerun the recorded-figure tests with another thread count.
    torch.set_num_threads(int(os.environ.get("TLHUB_TEST_THREADS", "1")))


@pytest.fixture
def network_attempts(monkeypatch) -> list:
    """Every outgoing connection is refused and recorded: "fails fast offline" is checked as "tried no
    network", not as a wall-clock bound that a busy or slower machine could break."""
    import socket
    attempts: list = []

    def refuse(self_or_address, *args, **kwargs):
        attempts.append(args[0] if args and not isinstance(self_or_address, tuple) else self_or_address)
        raise OSError("network refused by the test")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    return attempts


@pytest.fixture(autouse=True)
def _fresh_registry():
    from tlhub import plugins
    plugins.reset()
    yield
    plugins.reset()


@pytest.fixture
def tiny_recipe_text() -> str:
    return (REPO / "tests" / "recipes" / "tiny.toml").read_text()


@pytest.fixture
def write_recipe(tmp_path):
    """write_recipe(text, name='r.toml') -> path of a recipe whose output goes under tmp_path."""
    def write(text: str, name: str = "r.toml") -> Path:
        p = tmp_path / name
        p.write_text(text)
        return p
    return write


@pytest.fixture
def tiny_recipe(write_recipe, tiny_recipe_text, tmp_path) -> Path:
    return write_recipe(tiny_recipe_text + f'\n[output]\ndir = "{tmp_path / "run"}"\n')


@pytest.fixture(scope="session")
def trained_image_model(tmp_path_factory) -> Path:
    """The run directory of a two-epoch run of tests/recipes/tiny.toml, shared by the tests that predict."""
    import tlhub
    from tlhub import plugins
    plugins.reset()
    root = tmp_path_factory.mktemp("hostile")
    recipe = root / "r.toml"
    recipe.write_text((REPO / "tests" / "recipes" / "tiny.toml").read_text() + f'\n[output]\ndir = "{root / "run"}"\n')
    return tlhub.run(recipe, ["phases.0.epochs=1", "phases.1.epochs=1"], quiet=True).run_dir
