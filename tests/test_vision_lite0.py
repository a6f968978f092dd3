"""The embedded EfficientNet-Lite0 weights are mapped correctly: sensible ImageNet predictions."""
import numpy as np
import pytest
import torch
from PIL import Image

from tlhub_vision.backbones import build_lite0, lite0_model

torch.set_num_threads(1)

# ImageNet indices (timm.data.ImageNetInfo): buildings for china.jpg, flowers for flower.jpg
BUILDINGS = {442: "bell cote", 449: "boathouse", 483: "castle", 497: "church", 538: "dome", 663: "monastery",
             668: "mosque", 698: "palace", 832: "stupa", 858: "tile roof"}
FLOWERS = {985: "daisy", 738: "pot, flowerpot", 883: "vase"}


def prepare(arr: np.ndarray) -> torch.Tensor:
    """Centre square crop, 224 px, mean = std = 0.5 (what the backbone declares)."""
    im = Image.fromarray(arr)
    w, h = im.size
    s = min(w, h)
    im = im.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s)).resize((224, 224), Image.BILINEAR)
    x = torch.tensor(np.asarray(im), dtype=torch.float32).permute(2, 0, 1)[None] / 255.0
    return (x - 0.5) / 0.5


@pytest.fixture(scope="module")
def images():
    from sklearn.datasets import load_sample_images
    china, flower = load_sample_images().images
    return torch.cat([prepare(china), prepare(flower)])


def test_natural_images_predict_plausible_classes(images):
    from timm.data import ImageNetInfo
    model = lite0_model("imagenet").eval()
    with torch.no_grad():
        probs = model(images).softmax(-1)
    top5 = probs.topk(5).indices.tolist()
    info = ImageNetInfo()
    names = [[info.index_to_description(i) for i in row] for row in top5]
    assert top5[0][0] in BUILDINGS, f"china.jpg top-5: {names[0]}"
    assert top5[1][0] in FLOWERS, f"flower.jpg top-5: {names[1]}"
    assert probs[0, top5[0][0]] > 0.15 and probs[1, top5[1][0]] > 0.1  # confident, not near-uniform
    assert info.index_to_description(698).startswith("palace")  # the class list is the one we think


def test_backbone_features_equal_timm_pre_logits(images):
    model = lite0_model("imagenet").eval()
    backbone = build_lite0("imagenet", {}).eval()
    with torch.no_grad():
        expected = model.forward_head(model.forward_features(images), pre_logits=True)
        assert torch.allclose(backbone(images), expected, atol=1e-5)
