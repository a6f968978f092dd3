"""Request bodies to model inputs: the one place that knows how each modality arrives over HTTP.

``DECODERS`` maps a model's modality to its decoder; the app never branches on modality itself.
A decoder turns JSON values (``{"inputs": [...]}``) and uploaded files into what ``tlhub.use``'s
predictors take (PIL images, texts), and refuses anything else with a ``BadRequest`` that says what
was wrong. Nothing here opens a path a client names: images arrive as bytes, texts as strings.
"""
from __future__ import annotations

import base64
import binascii
import io
import json
import re
import warnings
from dataclasses import dataclass
from typing import Any, Protocol

from tlhub.serve.settings import ServeSettings


class BadRequest(Exception):
    """A client mistake: answered with ``status`` and ``{"error": message}``; the server serves on."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Upload:
    """One uploaded file of a multipart request: its form field, file name and bytes."""

    field: str
    filename: str
    data: bytes


class Decoder(Protocol):
    """How one modality's inputs arrive: JSON values and/or uploaded files."""

    json_help: str  # what a JSON input is, for error messages and the OpenAPI description

    def from_json(self, values: list[Any]) -> list[Any]: ...

    def from_files(self, uploads: list[Upload]) -> list[Any]: ...


class ImageDecoder:
    json_help = "base64-encoded image files (a data: URL prefix is allowed)"

    def __init__(self, settings: ServeSettings):
        self.max_pixels = settings.max_image_pixels

    def from_json(self, values: list[Any]) -> list[Any]:
        out = []
        for i, v in enumerate(values):
            what = f"input {i + 1}"
            if not isinstance(v, str):
                raise BadRequest(422, f"{what}: expected a base64 string of an image file, got {_kind(v)}")
            v = re.sub(r"^data:[^,]*;base64,", "", v.strip())
            try:
                data = base64.b64decode(v, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise BadRequest(422, f"{what}: not valid base64 ({exc})") from None
            out.append(self.image(data, what))
        return out

    def from_files(self, uploads: list[Upload]) -> list[Any]:
        return [self.image(u.data, f"file {u.filename or u.field!r}") for u in uploads]

    def image(self, data: bytes, what: str):
        """An RGB PIL image, decoded in full here so a broken file fails its own request, not a batch."""
        from PIL import Image, UnidentifiedImageError

        from tlhub.data.decode import to_pil
        if not data:
            raise BadRequest(422, f"{what}: empty file")
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            try:
                img = Image.open(io.BytesIO(data))
                w, h = img.size  # read from the header: nothing is decompressed yet
                if w * h > self.max_pixels:
                    raise BadRequest(422, f"{what}: {w}x{h} = {w * h:,} pixels is over the limit of "
                                          f"{self.max_pixels:,} (a decompression bomb?); send a smaller image")
                img.load()
                return to_pil(img)
            except UnidentifiedImageError:
                raise BadRequest(422, f"{what}: not an image file PIL can read ({len(data):,} bytes)") from None
            except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
                raise BadRequest(422, f"{what}: refused as a decompression bomb ({exc})") from None
            except (OSError, ValueError, SyntaxError, EOFError) as exc:  # truncated or corrupt data
                raise BadRequest(422, f"{what}: cannot decode the image ({type(exc).__name__}: {exc})") from None


class TextDecoder:
    json_help = "strings, one text per input"

    def __init__(self, settings: ServeSettings):
        self.max_chars = settings.max_text_chars

    def from_json(self, values: list[Any]) -> list[Any]:
        for i, v in enumerate(values):
            what = f"input {i + 1}"
            if not isinstance(v, str):
                raise BadRequest(422, f"{what}: expected a string, got {_kind(v)}")
            if not v.strip():
                raise BadRequest(422, f"{what}: empty or blank text; a text model has nothing to label")
            if len(v) > self.max_chars:
                raise BadRequest(422, f"{what}: {len(v):,} characters is over the limit of {self.max_chars:,}")
            try:
                v.encode("utf-8")
            except UnicodeEncodeError:  # a lone surrogate from a JSON \ud800 escape
                raise BadRequest(422, f"{what}: not valid Unicode text") from None
        return list(values)

    def from_files(self, uploads: list[Upload]) -> list[Any]:
        raise BadRequest(415, 'a text model takes JSON {"inputs": ["a sentence", ...]}, not uploaded files')


DECODERS: dict[str, type] = {"image": ImageDecoder, "text": TextDecoder}


def decoder_for(modality: str, settings: ServeSettings) -> Decoder:
    if modality not in DECODERS:
        raise ValueError(f"no request decoder for modality {modality!r} (known: {sorted(DECODERS)})")
    return DECODERS[modality](settings)


# ------------------------------------------------------------------ bodies

def from_json_body(body: bytes, decoder: Decoder, settings: ServeSettings) -> list[Any]:
    try:
        doc = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest(400, f"malformed JSON body ({exc})") from None
    if not isinstance(doc, dict) or "inputs" not in doc:
        raise BadRequest(422, f'expected a JSON object {{"inputs": [...]}} of {decoder.json_help}, got {_kind(doc)}')
    values = doc["inputs"]
    if isinstance(values, str):  # one input needs no list
        values = [values]
    if not isinstance(values, list):
        raise BadRequest(422, f'"inputs" must be a list of {decoder.json_help}, got {_kind(values)}')
    check_count(len(values), settings)
    return decoder.from_json(values)


def from_form(form: Any, decoder: Decoder, settings: ServeSettings) -> list[Any]:
    """Multipart form: each uploaded file is one input; text fields named ``inputs`` go the JSON way."""
    uploads, values = [], []
    for field, value in form.multi_items():
        if isinstance(value, str):
            if field == "inputs":
                values.append(value)
        else:
            uploads.append(Upload(field, value.filename or "", value.file.read()))
    check_count(len(uploads) + len(values), settings)
    return (decoder.from_files(uploads) if uploads else []) + (decoder.from_json(values) if values else [])


def check_count(n: int, settings: ServeSettings) -> None:
    if n == 0:
        raise BadRequest(422, "no inputs in the request")
    if n > settings.max_inputs:
        raise BadRequest(422, f"{n} inputs in one request is over the limit of {settings.max_inputs}; split it")


def _kind(v: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null",
            int: "a number", float: "a number"}.get(type(v), type(v).__name__)
