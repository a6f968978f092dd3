"""Any timm image model as a ``tlhub.interfaces.Backbone`` (backbone ``timm``).

Parameter groups come from timm itself: ``model.group_matcher(coarse=True)`` through
``timm.models.group_parameters`` (the grouping timm uses for layer-wise lr decay): ``stem``,
``blocks.N`` / ``stages.N``, then ``neck`` for what the matcher leaves out. Each group is a light
view that *refers to* the model's modules and loose parameters (a ViT's ``cls_token``) without
owning them, so state-dict names stay ``model.<timm name>``, each parameter exactly once.

Execution is not staged: timm has no generic way to stop a model after a given group, so the
state passed between groups is the input image and the last group runs ``forward_features``.
Every split gives the features of ``forward``; frozen-prefix caching saves work only when the
whole backbone is frozen (it then caches the pooled features). ``staged = False`` says so.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tlhub.errors import UserError, did_you_mean
from tlhub.interfaces import Backbone, ImagePreprocessing

from .net import offline_reason
from .weights import load_into, read_state_dict, weight_kind

HF_FILES = ("model.safetensors", "pytorch_model.bin")
_MATCH_PREV_GROUP = (99999,)  # timm's marker: "belongs to the previous group"


class GroupView(nn.Module):
    """The modules and loose parameters of one group, kept out of the backbone's submodules so
    ``parameters()`` and ``modules()`` (BatchNorm modes) reach the model's own objects."""

    def __init__(self, modules: list[nn.Module], params: list[nn.Parameter]):
        super().__init__()
        self.parts = nn.ModuleList(modules)
        self.loose = nn.ParameterList(params)


def _views(model: nn.Module, group_of: dict[int, int], n_groups: int) -> list[GroupView]:
    """Largest submodules whose parameters all fall in one group; the rest as loose parameters."""
    modules: list[list[nn.Module]] = [[] for _ in range(n_groups)]
    loose: list[list[nn.Parameter]] = [[] for _ in range(n_groups)]

    def visit(module: nn.Module, is_root: bool) -> None:
        ids = {group_of[id(p)] for p in module.parameters()}
        if not ids:
            return
        if len(ids) == 1 and not is_root:
            modules[ids.pop()].append(module)
            return
        for p in module.parameters(recurse=False):
            loose[group_of[id(p)]].append(p)
        for child in module.children():
            visit(child, False)

    visit(model, True)
    return [GroupView(m, p) for m, p in zip(modules, loose)]


def _group_names(matcher: Any, groups: list[list[str]]) -> list[str]:
    """'stem', 'blocks.1', ... from the matcher's keys and captured indices; unmatched: 'neck'."""
    specs = []
    if isinstance(matcher, dict):
        for key, spec in matcher.items():
            if spec is None:
                continue
            for rx, suffix in (spec if isinstance(spec, (list, tuple)) else [(spec, None)]):
                specs.append((re.compile(rx), key, suffix))

    def name_of(param: str) -> str | None:
        for rx, key, suffix in specs:
            m = rx.match(param)
            if m:
                if suffix is not None and tuple(suffix) == _MATCH_PREV_GROUP:
                    return None
                return ".".join([key, *(g for g in m.groups() if g is not None)])
        return "neck" if specs else None

    names: list[str] = []
    for i, params in enumerate(groups):
        name = next((n for n in map(name_of, params) if n), f"group{i}")
        while name in names:
            name += "_"
        names.append(name)
    return names


def _timm_groups(model: nn.Module) -> tuple[Any, list[list[str]]]:
    """(matcher or None, parameter names per group, input to output)."""
    from timm.models import group_parameters
    try:
        matcher = model.group_matcher(coarse=True)
        grouped = group_parameters(model, matcher)
        return matcher, [grouped[k] for k in sorted(grouped)]
    except (AttributeError, NotImplementedError):  # no group_matcher: one group per top-level child
        groups = [[f"{c}.{n}" for n, _ in m.named_parameters()] for c, m in model.named_children()]
        rest = [n for n, _ in model.named_parameters(recurse=False)]
        return None, [g for g in ([rest] + groups) if g]


class TimmBackbone(Backbone):
    modality = "image"
    staged = False  # the state between groups is the input image (see the module docstring)

    def __init__(self, model: nn.Module, model_name: str):
        super().__init__()
        self.model = model  # the only submodule: names are model.<timm name>
        self.model_name = model_name
        self.feature_dim = int(getattr(model, "head_hidden_size", None) or model.num_features)
        cfg = dict(getattr(model, "pretrained_cfg", None) or {})
        size = int((cfg.get("input_size") or (3, 224, 224))[-1])
        self.preprocessing = ImagePreprocessing(tuple(cfg.get("mean", (0.485, 0.456, 0.406))),
                                                tuple(cfg.get("std", (0.229, 0.224, 0.225))), size)
        matcher, groups = _timm_groups(model)
        params = dict(model.named_parameters())
        group_of = {id(params[n]): i for i, names in enumerate(groups) for n in names}
        self._names = _group_names(matcher, groups)
        # a plain list: the views must not become submodules (that would duplicate parameter names)
        self._views: list[GroupView] = _views(model, group_of, len(groups))

    def groups(self) -> list[tuple[str, nn.Module]]:
        return list(zip(self._names, self._views))

    def run_group(self, index: int, state: Any) -> Any:
        if index == len(self._names) - 1:
            return self.model.forward_features(state)
        return state

    def pool(self, state: Any) -> torch.Tensor:
        return self.model.forward_head(state, pre_logits=True)

    def extra_repr(self) -> str:
        return f"timm model {self.model_name!r}, groups: {', '.join(self._names)}"


# ------------------------------------------------------------------ weights

def _hf_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes")


def cached_file(cfg: dict) -> str | None:
    """The file timm would download for ``cfg``, if already cached (Hugging Face or torch hub cache)."""
    hub_id = cfg.get("hf_hub_id")
    if hub_id:
        from huggingface_hub import constants, try_to_load_from_cache
        cache_dir = os.environ.get("HF_HUB_CACHE") or constants.HF_HUB_CACHE
        for filename in ([cfg["hf_hub_filename"]] if cfg.get("hf_hub_filename") else HF_FILES):
            found = try_to_load_from_cache(hub_id, filename, cache_dir=cache_dir)
            if isinstance(found, str) and os.path.isfile(found):
                return found
    url = cfg.get("url")
    if url:
        path = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url.split("?")[0])
        if path.is_file():
            return str(path)
    return None


def pretrained_overlay(name: str) -> dict:
    """``pretrained_cfg_overlay`` for ``timm.create_model``: the cached file, or {} to download.

    Offline and not cached: a UserError within seconds (the same probe as the torchvision backbones).
    """
    import timm
    cfg = timm.models.get_pretrained_cfg(name)
    cfg = cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg or {})
    what = f"model.weights (timm model {name!r})"
    if not (cfg.get("hf_hub_id") or cfg.get("url")):
        raise UserError(f"{what}: timm has no pretrained weights for this model; set weights = \"none\" "
                        "or the path of a .safetensors/.pth file")
    local = cached_file(cfg)
    if local:
        return {"file": local}
    if cfg.get("hf_hub_id"):
        endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
        where = f"Hugging Face repo {cfg['hf_hub_id']!r} ({endpoint}/{cfg['hf_hub_id']})"
    else:
        endpoint = where = cfg["url"]
    host = re.sub(r"^\w+://", "", endpoint).split("/")[0].split(":")[0]
    why = "HF_HUB_OFFLINE is set" if _hf_offline() else offline_reason(host)
    if why is not None:
        raise UserError(f"{what}: the pretrained weights are not in the local cache and cannot be downloaded "
                        f"({why}). Either run once with network access to cache {where}, or point the recipe "
                        f"at a local copy: model.weights = \"path/to/model.safetensors\"")
    return {}


def build_timm(weights: str, options: dict) -> TimmBackbone:
    """``weights``: 'imagenet' (also 'pretrained', '', 'default'), 'none' or a checkpoint path."""
    import timm

    name = options["model"]
    if not timm.is_model(name):
        raise UserError(f"model.backbone_options.model: unknown timm model {name!r}"
                        f"{did_you_mean(name.split('.')[0], timm.list_models())}")
    kwargs: dict[str, Any] = dict(options.get("model_args") or {})
    kind = weight_kind(weights)
    if kind == "imagenet":
        kwargs["pretrained"] = True
        overlay = pretrained_overlay(name)
        if overlay:
            kwargs["pretrained_cfg_overlay"] = overlay
    try:
        model = timm.create_model(name, num_classes=0, **kwargs)
    except TypeError as exc:
        raise UserError(f"model.backbone_options.model_args: timm model {name!r} rejects {exc}") from None
    except (RuntimeError, ValueError, OSError) as exc:
        if kind != "imagenet":
            raise
        raise UserError(f"model.weights: cannot load the pretrained weights of timm model {name!r}: "
                        f"{' '.join(str(exc).split())[:400]}") from None
    if kind == "path":
        # tlhub's safe reader (safetensors, or torch.load(weights_only=True)); the classifier is dropped
        classifier = str(model.pretrained_cfg.get("classifier") or "head") + "."
        load_into(model, read_state_dict(weights, f"timm:{name}"), f"timm:{name}", str(weights),
                  ignore=(classifier,))
    return TimmBackbone(model, name)
