"""``hf-images``: image classification from Hugging Face datasets (save_to_disk folder, the imagefolder
builder, an id offline), columns by option, the split rules shared with the text ``hf`` source."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import tlhub.plugins as plugins
from tlhub.data.images import to_pil
from tlhub.errors import UserError
from tlhub.interfaces import DataContext
from tlhub.options import resolve_options

datasets = pytest.importorskip("datasets")
COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}


def load(base, **options):
    spec = plugins.get_registry().get("data-sources", "hf-images")
    opts, errors = resolve_options("data.options", options, spec.options)
    assert not errors, errors
    return spec.load(opts, DataContext(Path(base), seed=0, log=lambda msg: None))


def squares(n: int, seed: int) -> tuple[list[Image.Image], list[int]]:
    """Noisy 16x16 images of one colour per class, n per class."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for label, rgb in enumerate(COLOURS.values()):
        for _ in range(n):
            arr = np.clip(np.array(rgb) + rng.normal(0, 20, (16, 16, 3)), 0, 255).astype(np.uint8)
            images.append(Image.fromarray(arr))
            labels.append(label)
    return images, labels


@pytest.fixture(scope="module")
def disk(tmp_path_factory):
    """A DatasetDict (columns 'img' and 'fine_label', like CIFAR-100) written with save_to_disk."""
    root = tmp_path_factory.mktemp("hfimages")
    feats = datasets.Features({"img": datasets.Image(), "fine_label": datasets.ClassLabel(names=list(COLOURS))})

    def split(n, seed, unlabelled=False):
        images, labels = squares(n, seed)
        return datasets.Dataset.from_dict({"img": images, "fine_label": [-1] * len(labels) if unlabelled
                                           else labels}, features=feats)

    datasets.DatasetDict({"train": split(12, 0), "validation": split(3, 1),
                          "test": split(2, 2, unlabelled=True)}).save_to_disk(str(root / "dd"))
    return root


def test_registered():
    spec = plugins.get_registry().get("data-sources", "hf-images")
    assert spec.plugin == "vision" and spec.modality == "image"


def test_save_to_disk_with_auto_splits(disk):
    data = load(disk, path="dd", image_column="img", label_column="fine_label")
    assert data.classes == ["red", "green", "blue"]  # the ClassLabel's names, in its order
    assert len(data.train) == 36 and len(data.val) == 9
    assert data.test is None  # 'auto' skips the unlabelled test split, as the text source does
    img = to_pil(data.train.items[0])  # encoded records, decoded on use
    assert img.size == (16, 16) and img.mode == "RGB"
    assert np.asarray(img)[..., 0].mean() > 150  # the first class is red
    assert sorted(set(data.train.labels)) == [0, 1, 2]


def test_named_and_carved_splits(disk):
    data = load(disk, path="dd", image_column="img", label_column="fine_label", val_split="",
                test_split="validation")
    assert data.val is None and len(data.test) == 9
    with pytest.raises(UserError, match="no labelled examples"):
        load(disk, path="dd", image_column="img", label_column="fine_label", test_split="test")
    with pytest.raises(UserError, match="no split 'valid'.*did you mean 'validation'"):
        load(disk, path="dd", image_column="img", label_column="fine_label", val_split="valid")


def test_unknown_columns_suggest_the_right_one(disk):
    with pytest.raises(UserError, match=r"image_column: .*no column 'image' \(did you mean 'img'\?\)"):
        load(disk, path="dd", label_column="fine_label")
    with pytest.raises(UserError, match=r"label_column: .*no column 'fine_labels' \(did you mean 'fine_label'\?\)"):
        load(disk, path="dd", image_column="img", label_column="fine_labels")


def test_imagefolder_builder_on_a_local_folder(tmp_path):
    images, labels = squares(4, 3)
    names = list(COLOURS)
    for i, (img, y) in enumerate(zip(images, labels)):
        folder = tmp_path / "pics" / names[y]
        folder.mkdir(parents=True, exist_ok=True)
        img.save(folder / f"{i}.png")
    data = load(tmp_path, folder="pics")
    assert sorted(data.classes) == sorted(names) and len(data.train) == 12
    for item, y in zip(data.train.items, data.train.labels):  # each image under its own class folder
        assert np.asarray(to_pil(item)).mean(axis=(0, 1)).argmax() == np.argmax(COLOURS[data.classes[y]])
    with pytest.raises(UserError, match="no such folder"):
        load(tmp_path, folder="missing")


def test_nothing_given_and_offline_id(tmp_path, monkeypatch, network_attempts):
    with pytest.raises(UserError, match="give dataset.*or folder"):
        load(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError) as exc:
        load(tmp_path, dataset="tlhub-test-nonexistent/no-such-images")
    assert network_attempts == []
    assert "save_to_disk" in str(exc.value) and "image-folder source" in str(exc.value)


def test_a_recipe_trains_from_a_save_to_disk_dataset(disk, tlhub_run_dir, tmp_path):
    import json

    import tlhub
    recipe = tmp_path / "hf_images.toml"
    recipe.write_text(f'''
[model]
backbone = "tiny-cnn"
weights = "none"

[data]
source = "hf-images"
options = {{ path = "{disk / 'dd'}", image_column = "img", label_column = "fine_label" }}
image_size = 16
batch_size = 8

[[phases]]
name = "all"
epochs = 2
lr = 0.01

[train]
threads = 1

[output]
dir = "{tlhub_run_dir}"
''')
    result = tlhub.run(recipe, quiet=True)
    assert [row["phase"] for row in result.history] == ["all", "all"]
    metrics = json.loads((tlhub_run_dir / "metrics.json").read_text())
    assert 0.0 <= metrics["accuracy"] <= 1.0
    config = json.loads((tlhub_run_dir / "model" / "config.json").read_text())
    assert config["classes"] == list(COLOURS)  # the ClassLabel names travel with the model
    samples = json.loads((tlhub_run_dir / "samples.json").read_text())
    assert samples["modality"] == "image" and samples["items"]  # thumbnails decoded from the records
