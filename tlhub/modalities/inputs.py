"""The input checks of the built-in modalities, shared by every predict path (``tlhub.load``'s PyTorch ``Predictor``, the ONNX Runtime
``OnnxPredictor``, and anything that serves a model): the same inputs refused with the same words.

Text: strings only, not blank, valid UTF-8 (a command line or file read with ``surrogateescape`` keeps
undecodable bytes as lone surrogates, which tokenizers would either crash on or label as noise).
Images: a path, PIL image, ``{"bytes", "path"}`` record or array of 2 or 3 dimensions with 1, 3 or 4
channels, decoded here with Pillow's decompression-bomb limit turned into a refusal. No torch here: the
ONNX path must run without it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from tlhub.errors import UserError


def is_pair(item: Any) -> bool:
    """A sentence pair: a tuple of two strings (a list is a list of texts, not a pair)."""
    return isinstance(item, tuple) and len(item) == 2 and all(isinstance(t, str) for t in item)


def as_text_items(inputs: Any) -> list:
    """``inputs`` (one string or sentence pair, or a sequence of them) as a checked list of texts."""
    items = [inputs] if isinstance(inputs, str) or is_pair(inputs) else _listed(inputs, "texts")
    check_texts(items)
    return items


def as_image_items(inputs: Any) -> list:
    """``inputs`` (one image input or a sequence of them; also a 4-D array = a batch) as a list."""
    if isinstance(inputs, (str, Path, dict)) or type(inputs).__module__.startswith("PIL."):
        return [inputs]
    ndim = getattr(inputs, "ndim", None)
    if ndim is not None and hasattr(inputs, "shape"):  # a numpy array or a torch tensor
        if ndim == 4:
            return list(inputs)
        if ndim in (2, 3):
            return [inputs]
        raise UserError(f"an image array or tensor must have 2, 3 or 4 dimensions, got shape {tuple(inputs.shape)}")
    return _listed(inputs, "images")


def _listed(inputs: Any, what: str) -> list:
    if isinstance(inputs, (bytes, bytearray)):
        raise UserError(f"expected {what}, got bytes (decode text as UTF-8; pass images as paths or arrays)")
    try:
        return list(inputs)
    except TypeError:
        raise UserError(f"expected {what} (one, or a list of them), got {type(inputs).__name__}") from None


def check_texts(items: list) -> None:
    """Refuse what a text model would label anyway without reading it: non-strings, blank or undecodable text."""
    errors = []
    for i, t in enumerate(items):
        if is_pair(t):  # a sentence pair: both sentences checked as texts
            try:
                check_texts(list(t))
            except UserError as exc:
                errors += [f"input {i + 1}: {'first' if e.startswith('input 1') else 'second'} sentence: "
                           f"{e.split(': ', 1)[1]}" for e in exc.errors]
            continue
        if not isinstance(t, str):
            errors.append(f"input {i + 1}: this model takes text (strings); got {type(t).__name__}")
        elif not t.strip():
            errors.append(f"input {i + 1}: empty or blank text; a text model has nothing to label")
        else:
            try:
                t.encode("utf-8")
            except UnicodeEncodeError:  # bytes that were not UTF-8, kept by Python as lone surrogates
                errors.append(f"input {i + 1}: not valid UTF-8 text ({t.encode('utf-8', 'replace')[:40]!r})")
    if errors:
        raise UserError(errors=errors)


def check_array(arr: Any) -> None:
    """An image array (numpy, or a tensor as ``[C, H, W]``) that can be an image at all."""
    shape = tuple(getattr(arr, "shape", ()))
    channels_ok = len(shape) == 2 or (len(shape) == 3 and (shape[0] in (1, 3, 4) or shape[-1] in (1, 3, 4)))
    if not channels_ok or 0 in shape:
        raise UserError(f"an image array must be HxW, HxWxC or CxHxW with 1, 3 or 4 channels, got shape {shape}")


def read_image(item: Any):
    """``item`` as an RGB PIL image (``tlhub.data.decode.to_pil``), or a ``UserError`` that names it."""
    from PIL import Image

    # local: tlhub.data.decode imports Pillow and numpy; only image inputs need them
    from tlhub.data.decode import to_pil

    what = str(item) if isinstance(item, (str, Path)) else type(item).__name__
    if hasattr(item, "shape") and not isinstance(item, (str, Path)):
        check_array(item)
    try:
        return to_pil(item)  # Pillow raises past twice its pixel limit (179 MP), as training's decode check does
    except Image.DecompressionBombError as exc:
        raise UserError(f"{what}: cannot read the image: refused as a decompression bomb "
                        f"({type(exc).__name__}: {exc})") from None
    except (OSError, ValueError, TypeError, KeyError, SyntaxError) as exc:  # missing, not an image, bad record
        raise UserError(f"{what}: cannot read the image ({type(exc).__name__}: {exc})") from None
