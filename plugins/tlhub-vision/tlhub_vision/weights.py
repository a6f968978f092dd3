"""Weights from torchvision's hub cache, a quick download, or a local .pth/.safetensors file.

Offline use is a first-class path: a cached file loads without touching the network, and when
nothing is cached a 3 s probe decides before any download starts, so a user never waits on
retries; the error names the cache file to copy and the recipe key to set instead.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import urlparse

from tlhub.errors import UserError

from .net import offline_reason, socket_timeout

IMAGENET_NAMES = ("", "default", "imagenet", "pretrained")
NONE_NAMES = ("none",)
_HASH = re.compile(r"-([a-f0-9]*)\.")  # torchvision file names carry a sha256 prefix


def weight_kind(weights: str) -> str:
    """'imagenet', 'none' or 'path'."""
    w = weights.strip().lower()
    if w in IMAGENET_NAMES:
        return "imagenet"
    if w in NONE_NAMES:
        return "none"
    return "path"


def hub_cache_file(url: str) -> Path:
    """Where ``torch.hub.load_state_dict_from_url`` keeps ``url``: <hub dir>/checkpoints/<file name>."""
    import torch
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)


def fetch_url(url: str, what: str) -> dict:
    """The state dict at ``url``, from the hub cache or downloaded into it."""
    dst = hub_cache_file(url)
    if not dst.is_file():
        _download(url, dst, what)
    try:
        return read_state_dict(dst, what)
    except UserError as exc:
        raise UserError(f"{exc} (a broken cache file: delete it to download it again)") from None


def _download(url: str, dst: Path, what: str) -> None:
    import torch
    why = offline_reason(urlparse(url).hostname or "")
    if why is None:
        m = _HASH.search(dst.name)
        try:
            dst.parent.mkdir(parents=True, exist_ok=True)
            with socket_timeout(30):
                torch.hub.download_url_to_file(url, str(dst), hash_prefix=m.group(1) if m else None)
            return
        except Exception as exc:  # network, disk or hash failure: the same two ways out
            why = f"download failed: {type(exc).__name__}: {exc}"
    raise UserError(f"{what}: ImageNet weights are not in the torch hub cache and cannot be downloaded "
                    f"({why}). Either copy {dst.name} (from {url}) to {dst}, or point the recipe at a "
                    f"local copy: model.weights = \"path/to/{dst.name}\"")


def read_state_dict(path: str | Path, what: str) -> dict:
    """Tensors from a .safetensors file or a .pth/.pt/.bin file read with ``weights_only=True``.

    Common wrappers are unpacked ({"state_dict": ...}, {"model": ...}, a "module." prefix).
    """
    import torch
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{what}: weights file not found: {p} (model.weights takes 'imagenet', 'none' "
                        "or the path of a .pth or .safetensors file)")
    try:
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file
            sd = load_file(str(p))
        else:
            sd = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as exc:
        if type(exc).__name__ != "UnpicklingError":  # by name: tlhub's code imports no pickle module at all
            raise UserError(f"{what}: cannot read weights file {p} (corrupt or truncated?): "
                            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{what}: refused to load {p}: it is not a plain tensor file (torch.load with "
                        f"weights_only=True, which never runs pickled code, rejected it: {first}). "
                        "Re-save it with torch.save(model.state_dict(), ...) or as .safetensors") from None
    for key in ("state_dict", "model"):
        if isinstance(sd, dict) and isinstance(sd.get(key), dict):
            sd = sd[key]
    if not isinstance(sd, dict) or not sd or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise UserError(f"{what}: {p} does not hold a state dict (a mapping of parameter names to tensors)")
    if all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return dict(sd)


def load_into(module, sd: dict, what: str, source: str, ignore: tuple[str, ...] = ()) -> None:
    """Load ``sd`` into ``module`` strictly, except keys starting with ``ignore`` (a classifier
    tlhub replaces anyway) and BatchNorm ``num_batches_tracked`` counters (old files lack them).

    A mismatch is a UserError listing a few missing/unexpected keys and shape differences.
    """
    expected = {k: v for k, v in module.state_dict().items() if not k.startswith(ignore)}
    given = {k: v for k, v in sd.items() if not k.startswith(ignore)}
    missing = [k for k in expected if k not in given and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in given if k not in expected]
    shapes = [f"{k} {tuple(given[k].shape)} vs {tuple(expected[k].shape)}"
              for k in given if k in expected and given[k].shape != expected[k].shape]
    if missing or unexpected or shapes:
        parts = []
        for label, keys in (("missing keys", missing), ("unexpected keys", unexpected),
                            ("shape mismatches (file vs model)", shapes)):
            if keys:
                parts.append(f"{len(keys)} {label} (e.g. {', '.join(keys[:5])})")
        raise UserError(f"{what}: the weights in {source} do not fit this architecture: " + "; ".join(parts)
                        + ". Is it a state dict of another model?")
    module.load_state_dict(given, strict=False)


def remap_by_order(src: dict, template: dict, what: str, source: str) -> dict:
    """Rename ``src`` keys onto ``template`` keys position by position, checking every shape.

    For checkpoints of the same architecture from another code base (lukemelas EfficientNet keys
    onto timm's); one shape difference means the orders do not correspond, so it raises.
    """
    if len(src) != len(template):
        raise UserError(f"{what}: {source} has {len(src)} tensors, the model {len(template)}; "
                        "cannot map them by order")
    out = {}
    for (ks, vs), (kt, vt) in zip(src.items(), template.items()):
        if tuple(vs.shape) != tuple(vt.shape):
            raise UserError(f"{what}: {source}: tensor {ks} {tuple(vs.shape)} does not match {kt} "
                            f"{tuple(vt.shape)} when mapping by order")
        out[kt] = vs
    return out
