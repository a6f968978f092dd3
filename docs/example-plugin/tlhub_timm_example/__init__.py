"""The ``tlhub`` entry point of tlhub-timm-example: registers the ``timm-example`` backbone.

tlhub-vision has a built-in ``timm`` backbone; this plugin is the template for third-party plugins,
so its backbone has its own name.

Only the descriptor lives here. torch and timm are imported by ``build``, so ``tlhub list`` and
``tlhub plugins`` stay fast and never build a model.
"""
from __future__ import annotations

from tlhub.hookspecs import hookimpl
from tlhub.options import Opt
from tlhub.registry import BackboneSpec

__version__ = "0.1.0"
DEFAULT_MODEL = "resnet10t"


def build(weights: str, options: dict):
    from .backbone import build_timm  # heavy imports happen here, not at registration
    return build_timm(weights, options)


@hookimpl
def register_backbones(register):
    register(BackboneSpec(
        "timm-example", "any timm image model by name (option model); groups from timm's group_matcher",
        "image", build, default_weights="pretrained", options=(
            Opt("model", str, DEFAULT_MODEL, "timm model name, e.g. 'resnet10t', 'efficientnet_b0', "
                                             "'convnext_atto' (python -c \"import timm; print(timm.list_models())\")"),
            Opt("model_args", dict, {}, "extra keyword arguments of timm.create_model, e.g. "
                                        "{drop_path_rate = 0.1} or {img_size = 64} for a ViT"),
        )))
