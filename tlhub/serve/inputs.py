"""Request bodies to model inputs: JSON values (``{"inputs": [...]}``) and uploaded files are read here,
then decoded by the model's modality (``Modality.from_json`` / ``from_upload``: PIL images, texts, ...),
and anything else is refused with a ``BadRequest`` that says what was wrong. The app never branches on
modality. Nothing here opens a path a client names: files arrive as bytes, texts as strings.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from tlhub.modality import UnsupportedInput, json_kind
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


class Decoder:
    """How a model's inputs arrive over HTTP, as its modality reads them (``Modality.from_json`` /
    ``from_upload``): a modality's ``ValueError`` becomes a 422 answer, ``UnsupportedInput`` a 415."""

    def __init__(self, modality: Any, settings: ServeSettings):
        self.modality, self.settings = modality, settings
        self.json_help: str = modality.json_help  # what a JSON input is, for error messages and the API

    def from_json(self, values: list[Any]) -> list[Any]:
        return [self._call(self.modality.from_json, v, f"input {i + 1}", self.settings)
                for i, v in enumerate(values)]

    def from_files(self, uploads: list[Upload]) -> list[Any]:
        return [self._call(self.modality.from_upload, u.data, u.filename, f"file {u.filename or u.field!r}",
                           self.settings) for u in uploads]

    @staticmethod
    def _call(fn, *args):
        try:
            return fn(*args)
        except UnsupportedInput as exc:
            raise BadRequest(415, str(exc)) from None
        except ValueError as exc:
            raise BadRequest(422, str(exc)) from None


def decoder_for(modality: Any, settings: ServeSettings) -> Decoder:
    """The decoder of a loaded ``tlhub.modality.Modality`` (a predictor's ``modality_impl``)."""
    return Decoder(modality, settings)


# ------------------------------------------------------------------ bodies

def from_json_body(body: bytes, decoder: Decoder, settings: ServeSettings) -> list[Any]:
    try:
        doc = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest(400, f"malformed JSON body ({exc})") from None
    if not isinstance(doc, dict) or "inputs" not in doc:
        raise BadRequest(422, f'expected a JSON object {{"inputs": [...]}} of {decoder.json_help}, got {json_kind(doc)}')
    values = doc["inputs"]
    if isinstance(values, str):  # one input needs no list
        values = [values]
    if not isinstance(values, list):
        raise BadRequest(422, f'"inputs" must be a list of {decoder.json_help}, got {json_kind(values)}')
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

