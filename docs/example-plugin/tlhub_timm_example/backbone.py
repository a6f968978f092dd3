"""Any timm model as a ``tlhub.interfaces.Backbone``.

Parameter groups come from timm itself: ``model.group_matcher(coarse=True)`` maps parameter names
to ordered groups (stem, blocks.0, ..., the final norm), the same grouping timm uses for layer-wise
learning-rate decay. Each tlhub group is a light container module that *refers to* the model's
modules (and loose parameters such as a ViT's ``cls_token``) without owning them, so parameter and
state-dict names stay ``model.<timm name>``, each parameter exactly once.

Execution is not staged: timm has no generic way to stop a model after a given group. The state
passed between groups is therefore the input image itself, and the last group runs the whole
``forward_features``; ``pool`` is ``forward_head(x, pre_logits=True)``. Every ``run_groups`` split
point gives the same features as ``forward``, so freezing, per-group learning rates and BatchNorm
modes work as with any backbone, but frozen-prefix caching only saves work when the whole backbone
is frozen (it then caches the pooled features).
"""
from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from torch import nn

from tlhub.errors import UserError, did_you_mean
from tlhub.interfaces import Backbone, ImagePreprocessing

PRETRAINED_WORDS = ("", "default", "pretrained", "imagenet")
HF_FILES = ("model.safetensors", "pytorch_model.bin")


class GroupView(nn.Module):
    """The modules and loose parameters of one group. Kept out of the backbone's submodules, so it
    owns nothing: ``parameters()`` and ``modules()`` (BatchNorm modes) reach the model's own objects."""

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
                if suffix is not None and tuple(suffix) == (99999,):  # timm's MATCH_PREV_GROUP
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


class TimmBackbone(Backbone):
    modality = "image"
    # The state between groups is the input image, not an activation (see the module docstring):
    # tools that look inside intermediate states (linear probes per group) should skip them.
    staged = False

    def __init__(self, model: nn.Module, model_name: str):
        super().__init__()
        from timm.models import group_parameters

        self.model = model  # the only submodule: names are model.<timm name>
        self.model_name = model_name
        self.feature_dim = int(getattr(model, "head_hidden_size", None) or model.num_features)
        cfg = dict(getattr(model, "pretrained_cfg", None) or {})
        size = int((cfg.get("input_size") or (3, 224, 224))[-1])
        self.preprocessing = ImagePreprocessing(tuple(cfg.get("mean", (0.485, 0.456, 0.406))),
                                                tuple(cfg.get("std", (0.229, 0.224, 0.225))), size)
        try:
            matcher = model.group_matcher(coarse=True)
            grouped = group_parameters(model, matcher)
            groups = [grouped[k] for k in sorted(grouped)]
        except (AttributeError, NotImplementedError):  # no group_matcher: one group per top-level child
            matcher = None
            groups = [[f"{c}.{n}" for n, _ in m.named_parameters()] for c, m in model.named_children()]
            groups = [g for g in groups if g]
            rest = [n for n, _ in model.named_parameters(recurse=False)]
            if rest:
                groups = [rest] + groups
        params = dict(model.named_parameters())
        group_of = {id(params[n]): i for i, names in enumerate(groups) for n in names}
        self._names = _group_names(matcher, groups)
        # a plain list: the views must not become submodules (that would duplicate parameter names)
        self._views: list[GroupView] = _views(model, group_of, len(groups))

    def groups(self) -> list[tuple[str, nn.Module]]:
        return list(zip(self._names, self._views))

    def run_group(self, index: int, state: Any) -> Any:
        # Not staged (see the module docstring): earlier groups pass the image through.
        if index == len(self._names) - 1:
            return self.model.forward_features(state)
        return state

    def pool(self, state: Any) -> torch.Tensor:
        return self.model.forward_head(state, pre_logits=True)

    def extra_repr(self) -> str:
        return f"timm model {self.model_name!r}, groups: {', '.join(self._names)}"


# ------------------------------------------------------------------ weights

def _offline() -> bool:
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes") for v in ("TLHUB_OFFLINE", "HF_HUB_OFFLINE"))


def _reachable(url: str, timeout: float = 3.0) -> bool:
    """A quick TCP probe, so an offline machine fails in seconds instead of hanging on retries."""
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname, parsed.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


def cached_weights(cfg: dict) -> str | None:
    """The local file timm would download for ``cfg``, if it is already cached (HF hub or torch hub)."""
    hub_id = cfg.get("hf_hub_id")
    if hub_id:
        try:
            from huggingface_hub import constants, try_to_load_from_cache
        except ImportError:
            pass
        else:
            cache_dir = os.environ.get("HF_HUB_CACHE") or constants.HF_HUB_CACHE
            for filename in ([cfg["hf_hub_filename"]] if cfg.get("hf_hub_filename") else HF_FILES):
                found = try_to_load_from_cache(hub_id, filename, cache_dir=cache_dir)
                if isinstance(found, str) and os.path.isfile(found):
                    return found
    url = cfg.get("url")
    if url:
        path = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)
        if path.is_file():
            return str(path)
    return None


def pretrained_source(model_name: str) -> dict:
    """``pretrained_cfg_overlay`` for ``timm.create_model``: a cached file, or {} to download; else UserError."""
    import timm

    cfg = timm.models.get_pretrained_cfg(model_name)
    cfg = cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg or {})
    if not (cfg.get("hf_hub_id") or cfg.get("url") or cfg.get("file")):
        raise UserError(f"model.weights: timm has no pretrained weights for {model_name!r}; "
                        f"use weights = \"none\" or a local checkpoint file")
    local = cached_weights(cfg)
    if local:
        return {"file": local}
    where = cfg.get("hf_hub_id") and f"Hugging Face repo {cfg['hf_hub_id']!r}" or cfg.get("url")
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co") if cfg.get("hf_hub_id") else cfg["url"]
    if _offline() or not _reachable(endpoint):
        why = "offline mode is set (TLHUB_OFFLINE / HF_HUB_OFFLINE)" if _offline() \
            else f"{urlparse(endpoint).hostname} cannot be reached"
        raise UserError(f"model.weights: pretrained weights of timm model {model_name!r} ({where}) are not in the "
                        f"local cache and {why}; run once with network access to cache them, or set "
                        f"weights = \"none\" (random init) or the path of a .safetensors/.pth checkpoint")
    return {}


def build_timm(weights: str, options: dict) -> TimmBackbone:
    """``weights``: 'none', 'pretrained' (also '', 'default', 'imagenet') or a checkpoint path."""
    import timm

    name = options["model"]
    if not timm.is_model(name):
        base = name.split(".")[0]
        raise UserError(f"model.backbone_options.model: unknown timm model {name!r}"
                        f"{did_you_mean(base, timm.list_models())}")
    kwargs: dict[str, Any] = dict(options.get("model_args") or {})
    word = weights.strip().lower()
    if word == "none":
        kwargs["pretrained"] = False
    elif word in PRETRAINED_WORDS:
        kwargs["pretrained"] = True
        overlay = pretrained_source(name)
        if overlay:
            kwargs["pretrained_cfg_overlay"] = overlay
    else:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise UserError(f"model.weights: {weights!r} is not 'none', 'pretrained' or an existing file")
        # timm reads .safetensors with safetensors and anything else with torch.load(weights_only=True)
        kwargs.update(pretrained=True, pretrained_cfg_overlay={"file": str(path)})
    try:
        model = timm.create_model(name, num_classes=0, **kwargs)
    except TypeError as exc:
        raise UserError(f"model.backbone_options.model_args: timm model {name!r} rejects {exc}") from None
    except (RuntimeError, ValueError, OSError) as exc:
        if kwargs.get("pretrained"):
            raise UserError(f"model.weights: cannot load weights into timm model {name!r}: "
                            f"{' '.join(str(exc).split())[:400]}") from None
        raise
    return TimmBackbone(model, name)
