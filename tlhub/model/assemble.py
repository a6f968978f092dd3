"""The one place a model is assembled: backbone (with weights) + head, from a recipe or a saved config."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tlhub.interfaces import Backbone
from tlhub.model.freezing import group_layouts
from tlhub.model.transfer import TransferModel

WEIGHT_WORDS = ("", "none", "imagenet", "pretrained", "default")


@dataclass(frozen=True)
class ModelSpec:
    """What to build: component names, their options, the weights, and where they were written (for errors)."""

    backbone: str
    head: str
    weights: str = "none"
    backbone_options: dict = field(default_factory=dict)
    head_options: dict = field(default_factory=dict)
    where: str = "model"  # "model" for a recipe's [model] section, "config.json" for a saved model
    base_dir: str = "."  # weights paths resolve against it

    @classmethod
    def from_recipe(cls, recipe) -> ModelSpec:
        m = recipe.model
        return cls(m.backbone, m.head, m.weights, dict(m.backbone_options), dict(m.head_options), "model",
                   str(recipe.base_dir))


def build_backbone(spec: ModelSpec, registry) -> Backbone:
    """The backbone with its weights (the step that fails when weights are missing offline)."""
    bspec, opts = registry.resolve("backbones", spec.backbone, spec.backbone_options, f"{spec.where}.backbone_options")
    weights = spec.weights
    if weights.lower() not in WEIGHT_WORDS:
        candidate = Path(spec.base_dir) / Path(weights).expanduser()
        if candidate.exists():
            weights = str(candidate.resolve())
    backbone = bspec.build(weights, opts)
    if not isinstance(backbone, Backbone):
        raise TypeError(f"backbone {bspec.name!r} (plugin {bspec.plugin}) built {type(backbone)!r}, not a Backbone")
    return backbone


def add_head(backbone: Backbone, spec: ModelSpec, registry, num_classes: int) -> TransferModel:
    hspec, hopts = registry.resolve("heads", spec.head, spec.head_options, f"{spec.where}.head_options")
    return TransferModel(backbone, hspec.build(backbone.feature_dim, num_classes, hopts))


def build_model(spec: ModelSpec, registry, num_classes: int) -> TransferModel:
    return add_head(build_backbone(spec, registry), spec, registry, num_classes)


def backbone_layouts(spec: ModelSpec, registry) -> list:
    """The backbone's groups (parameter names and sizes, BatchNorm layers) without loading weights or allocating
    them: the architecture is built with weights='none' on PyTorch's meta device (shapes only)."""
    import torch

    with torch.device("meta"):
        backbone = build_backbone(ModelSpec(spec.backbone, spec.head, "none", spec.backbone_options,
                                            spec.head_options, spec.where, spec.base_dir), registry)
    return group_layouts(backbone)
