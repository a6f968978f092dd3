"""Contract of every registered image backbone, and the plugin's cheap registration."""
import os
import subprocess
import sys

import pytest
import torch

import tlhub.plugins as plugins
from tlhub.interfaces import SequentialBackbone
from tlhub.options import resolve_options

torch.set_num_threads(1)

VISION = {"resnet18": 512, "resnet50": 2048, "mobilenet_v2": 1280, "mobilenet_v3_small": 576,
          "mobilenet_v3_large": 960, "efficientnet_lite0": 1280}


def build(name, weights="none"):
    """As the core does: declared option defaults resolved, then build."""
    spec = plugins.get_registry().get("backbones", name)
    given = {"model": "resnet10t"} if name == "timm" else {}  # timm needs a model name; the smallest here
    options, errors = resolve_options("model.backbone_options", given, spec.options)
    assert not errors
    return spec.build(weights, options)


def image_backbones():
    reg = plugins.get_registry()
    return [n for n in reg.names("backbones") if reg.get("backbones", n).modality == "image"]


def test_vision_backbones_registered():
    reg = plugins.get_registry()
    for name in VISION:
        spec = reg.get("backbones", name)
        assert spec.plugin == "vision" and spec.modality == "image" and spec.default_weights == "imagenet"
    for name in ("mnist", "mnist-5k", "digits", "cifar10", "image-folder"):
        assert reg.get("data-sources", name).modality == "image"


def test_listing_imports_no_heavy_module():
    code = ("import sys, tlhub.plugins as p; r = p.get_registry(); assert 'resnet18' in r.names('backbones'); "
            "heavy = [m for m in ('torch', 'torchvision', 'timm') if m in sys.modules]; "
            "assert not heavy, heavy")
    env = dict(os.environ, TLHUB_PLUGINS="vision")  # other installed plugins are not under test here
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=60)


@pytest.mark.parametrize("name", image_backbones())
def test_backbone_contract(name):
    torch.manual_seed(0)
    backbone = build(name)
    assert backbone.modality == "image" and backbone.preprocessing is not None
    if name in VISION:
        assert backbone.feature_dim == VISION[name]
    feats = backbone(torch.randn(2, 3, 32, 32))
    assert feats.shape == (2, backbone.feature_dim)
    # groups: input to output, every parameter exactly once, pooling parameter-free
    names = [n for n, _ in backbone.named_parameters()]
    grouped = [p for _, params in backbone.param_groups() for p in params]
    assert sorted(grouped) == sorted(names) and len(grouped) == len(set(grouped))
    assert all(params for _, params in backbone.param_groups()), "empty group"
    assert len(set(backbone.group_names)) == len(backbone.group_names)
    if isinstance(backbone, SequentialBackbone):
        assert not list(backbone.pooling.parameters())
    # running the groups one at a time is the same as forward (what prefix caching relies on)
    state = torch.randn(2, 3, 32, 32)
    backbone.eval()
    with torch.no_grad():
        full = backbone(state)
        half = backbone.run_groups(state, 0, 2)
        assert torch.allclose(backbone.pool(backbone.run_groups(half, 2)), full, atol=1e-5)
        # no group writes into its input in place: a cached state must survive being run again
        for i in range(len(backbone.groups())):
            before = state.clone()
            after = backbone.run_group(i, state)
            assert torch.equal(state, before), f"group {i} modified its input"
            state = after
    backbone.train()
    backbone(torch.randn(2, 3, 32, 32)).sum().backward()
    assert all(p.grad is not None for p in backbone.parameters())


def test_group_names():
    assert build("resnet18").group_names == ["stem", "layer1", "layer2", "layer3", "layer4"]
    assert build("mobilenet_v2").group_names == ["stem"] + [f"blocks.{i}" for i in range(17)] + ["conv_head"]
    assert build("efficientnet_lite0").group_names == ["stem"] + [f"blocks.{i}" for i in range(7)] + ["conv_head"]
    lite = build("efficientnet_lite0")
    assert lite.preprocessing.mean == (0.5, 0.5, 0.5) and lite.preprocessing.size == 224
