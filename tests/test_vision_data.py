"""Image data sources: mnist (IDX reader), mnist-5k, digits, cifar10, image-folder."""
import gzip
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import tlhub.plugins as plugins
from tlhub.errors import UserError
from tlhub.interfaces import DataContext
from tlhub.options import resolve_options
from tlhub_vision import net

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]  # from its SOURCE.md


def load(name, base=Path("."), **options):
    spec = plugins.get_registry().get("data-sources", name)
    opts, errors = resolve_options("data.options", options, spec.options)
    assert not errors, errors
    return spec.load(opts, DataContext(Path(base), seed=0, log=lambda msg: None))


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setenv(net.OFFLINE_ENV, "1")


def write_idx(path: Path, arr: np.ndarray, gz: bool):
    header = bytes([0, 0, 8, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    raw = header + arr.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)


# ------------------------------------------------------------------ mnist

@pytest.mark.skipif(not (SHARED / "mnist").is_dir(), reason=f"the official MNIST test set is not at {SHARED / 'mnist'}")
def test_mnist_official_test_set(offline):
    data = load("mnist", root=str(SHARED / "mnist"), split="test")
    assert data.classes == [str(i) for i in range(10)] and data.train is None
    assert len(data.test) == 10000 and data.test.labels[:10] == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert [Counter(data.test.labels)[i] for i in range(10)] == MNIST_TEST_COUNTS
    img = data.test.items[0]
    assert img.shape == (28, 28) and img.dtype == np.uint8 and img.max() == 255
    # the default split ("both") takes what is there; asking for train names the missing file
    assert len(load("mnist", root=str(SHARED / "mnist")).test) == 10000
    with pytest.raises(UserError, match="train-images-idx3-ubyte"):
        load("mnist", root=str(SHARED / "mnist"), split="train", download=False)


def test_mnist_idx_plain_and_gzipped(tmp_path, offline):
    rng = np.random.default_rng(0)
    raw = tmp_path / "MNIST" / "raw"  # torchvision's download layout
    raw.mkdir(parents=True)
    write_idx(raw / "train-images-idx3-ubyte", rng.integers(0, 256, (20, 28, 28)), gz=False)
    write_idx(raw / "train-labels-idx1-ubyte", np.arange(20) % 10, gz=False)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (10, 28, 28)), gz=True)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.arange(10), gz=True)
    data = load("mnist", base=tmp_path, root=".")  # relative to the recipe folder
    assert len(data.train) == 20 and len(data.test) == 10 and data.test.labels == list(range(10))


def test_mnist_bad_files(tmp_path, offline):
    write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((10, 28, 28)), gz=False)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.arange(9), gz=False)
    with pytest.raises(UserError, match="do not match"):
        load("mnist", root=str(tmp_path), split="test")
    data = (tmp_path / "t10k-images-idx3-ubyte").read_bytes()
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(data[:-100])
    with pytest.raises(UserError, match="truncated"):
        load("mnist", root=str(tmp_path), split="test")
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(b"not an idx file")
    with pytest.raises(UserError, match="magic"):
        load("mnist", root=str(tmp_path), split="test")


def test_mnist_offline_without_files_fails_fast(tmp_path, monkeypatch):
    with pytest.raises(UserError, match="t10k-images-idx3-ubyte"):
        load("mnist", root=str(tmp_path), split="test", download=False)
    # download wanted, network unreachable: the real probe, against a closed local port
    from tlhub_vision import sources
    monkeypatch.setattr(sources, "offline_reason", lambda host: net.offline_reason("127.0.0.1", port=9))
    start = time.monotonic()
    with pytest.raises(UserError, match="cannot be downloaded") as exc:
        load("mnist", root=str(tmp_path / "cache"))
    assert time.monotonic() - start < 10
    assert "train-images-idx3-ubyte" in str(exc.value) and not (tmp_path / "cache").exists()


# ------------------------------------------------------------------ embedded sets

def test_mnist5k():
    data = load("mnist-5k")
    assert data.classes == [str(i) for i in range(10)] and data.val is None and data.test is None
    assert len(data.train) == 5000 and Counter(data.train.labels) == {i: 500 for i in range(10)}
    img = data.train.items[0]
    assert img.shape == (28, 28) and img.dtype == np.uint8 and img.max() > 200


def test_digits():
    data = load("digits")
    assert len(data.train) == 1797 and len(data.classes) == 10
    stack = np.stack(data.train.items)
    assert stack.shape == (1797, 8, 8) and stack.dtype == np.uint8 and stack.max() == 255


def test_cifar10_missing_batches(tmp_path, offline):
    with pytest.raises(UserError, match="cifar-10-batches-py"):
        load("cifar10", root=str(tmp_path), download=False)
    with pytest.raises(UserError, match="cannot be downloaded"):
        load("cifar10", root=str(tmp_path))


# ------------------------------------------------------------------ image-folder

def png(path: Path, value: int, size=32):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size, 3), value, np.uint8)).save(path)


def test_image_folder_skips_bad_files(tmp_path):
    for c in ("cat", "dog"):
        for i in range(3):
            png(tmp_path / "pets" / c / f"{i}.png", 40 * i)
    (tmp_path / "pets" / "cat" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(tmp_path / "full.jpg")
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "pets" / "dog" / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (tmp_path / "pets" / "dog" / "notes.txt").write_text("not an image")
    (tmp_path / "pets" / "dog" / ".DS_Store").write_bytes(b"\0")
    src = load("image-folder", base=tmp_path, path="pets")
    assert src.classes == ["cat", "dog"] and src.val is None and src.test is None
    assert len(src.train) == 6 and Counter(src.train.labels) == {0: 3, 1: 3}
    assert all(Path(p).is_file() for p in src.train.items)
    skipped = sorted(src.skipped)
    assert len(skipped) == 3
    assert skipped[0].startswith(str(tmp_path / "pets" / "cat" / "corrupt.png") + ": ")
    assert skipped[1].startswith(str(tmp_path / "pets" / "dog" / "notes.txt") + ": extension")
    assert skipped[2].startswith(str(tmp_path / "pets" / "dog" / "truncated.jpg") + ": ")


def test_image_folder_split_folders(tmp_path):
    for split, n in (("train", 3), ("val", 1), ("test", 2)):
        for c in ("a", "b"):
            for i in range(n):
                png(tmp_path / split / c / f"{i}.png", 10 * i)
    src = load("image-folder", path=str(tmp_path))
    assert (len(src.train), len(src.val), len(src.test)) == (6, 2, 4)
    png(tmp_path / "test" / "zebra" / "0.png", 1)
    with pytest.raises(UserError, match="zebra"):
        load("image-folder", path=str(tmp_path))


def test_image_folder_errors(tmp_path):
    with pytest.raises(UserError, match="not a folder"):
        load("image-folder", path=str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no class sub-folders"):
        load("image-folder", path=str(tmp_path / "empty"))
    png(tmp_path / "data" / "a" / "0.png", 1)
    (tmp_path / "data" / "b").mkdir()
    with pytest.raises(UserError, match=r"class folder .*b has no readable image"):
        load("image-folder", path=str(tmp_path / "data"))
    (tmp_path / "data" / "b" / "bad.png").write_bytes(b"nope")
    with pytest.raises(UserError, match="no readable image"):
        load("image-folder", path=str(tmp_path / "data"))


@pytest.mark.skipif(not (SHARED / "cifar10-jpg").is_dir(), reason=f"no CIFAR-10 JPEG subset at {SHARED / 'cifar10-jpg'}")
def test_image_folder_cifar10_jpg():
    src = load("image-folder", path=str(SHARED / "cifar10-jpg"))
    assert src.classes[:3] == ["airplane", "automobile", "bird"] and len(src.classes) == 10
    assert (len(src.train), len(src.test), src.val, src.skipped) == (5000, 5000, None, [])


# ------------------------------------------------------------------ through the core's splits

@pytest.mark.skipif(not (SHARED / "mnist").is_dir(), reason=f"the official MNIST test set is not at {SHARED / 'mnist'}")
def test_mnist5k_with_official_test_source(offline):
    from tlhub.data.splits import make_splits
    from tlhub.recipe import parse_recipe
    recipe = parse_recipe({"model": {"backbone": "efficientnet_lite0"}, "phases": [{}],
                           "data": {"source": "mnist-5k", "val_split": 0.1,
                                    "test": {"source": "mnist", "options": {"root": str(SHARED / "mnist")}}}})
    splits = make_splits(recipe, plugins.get_registry(), DataContext(Path("."), 0, log=lambda m: None))
    assert splits.counts() == {"train": 4500, "val": 500, "test": 10000}
