"""Modalities as plugins: the one object that knows how a kind of data (images, text, audio, ...) becomes
model input, everywhere tlhub meets data.

A plugin registers a ``ModalitySpec`` from its ``register_modalities(register)`` hook (image and text are
registered that way too, by tlhub's built-in plugin ``tlhub.plugins.builtins.modalities``). The spec is a
cheap descriptor (listing it imports nothing heavy); ``spec.load()`` returns the ``Modality``, whose
methods the core calls instead of branching on a modality's name:

- training: ``datasets`` (train/val/test datasets from a data source's items, collation, whether the
  training transform is deterministic), ``channels_last`` (whether the channels-last memory format
  applies to the backbone input);
- the exported model: ``config`` (what goes into ``config.json``'s ``preprocessing`` table),
  ``config_problems`` (its schema, checked before a model loads);
- predicting: ``as_items`` (a user's inputs -> checked items), ``inputs`` (items -> a batch), ``expand`` (command-line
  arguments -> inputs, e.g. a folder -> its files);
- ONNX: ``onnx_io`` (example batch, names, dynamic axes, and the model input from the graph's tensors),
  ``onnx_metadata``, ``onnx_save`` (files beside the ``.onnx``), ``onnx_feeder`` (items -> numpy feeds,
  without torch where the modality can);
- serving: ``from_json`` / ``from_upload`` (request values and uploaded files -> items);
- reports: ``sample_view`` (a test item as a caption text and/or an RGB thumbnail).

A modality feeds backbones whose ``BackboneSpec.modality`` (the backbone's input kind) is in ``feeds``:
an audio modality that turns sounds into spectrogram images feeds ``("image",)`` backbones.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from tlhub.options import Opt


@dataclass(frozen=True)
class ModalitySpec:
    """A modality: ``load() -> Modality``; ``feeds``: the backbone input kinds it can feed;
    ``options``: its ``[data.preprocess]`` options (validated like every other option table)."""

    name: str
    summary: str
    load: Callable[[], "Modality"]
    feeds: tuple[str, ...] = ()
    options: tuple[Opt, ...] = ()
    plugin: str = ""


@dataclass
class Datasets:
    """What a modality builds from a run's splits: one torch ``Dataset`` per split, each item
    ``(model input, label)``, with a ``labels`` attribute (the split's labels in order: the frozen-prefix
    cache keeps them beside the cached states) and, optionally, ``lengths`` (each example's size: batches
    are then grouped by length when ``data.group_by_length`` is on); ``collate`` batches them (None: torch's default); ``deterministic``: the
    training transform draws nothing at random (so the training split may be cached); ``lengths``: per
    split, each example's size for length-grouped batching (None: not applicable)."""

    train: Any
    val: Any
    test: Any
    collate: Callable | None = None
    deterministic: bool = True
    lengths: dict[str, list[int]] | None = None

    def split(self, name: str) -> Any:
        return {"train": self.train, "val": self.val, "test": self.test}[name]


@dataclass(frozen=True)
class DataSettings:
    """The recipe's data settings a modality reads: the image size (0: the backbone's), the augmentation
    table (or None), whether batches are grouped by length, and the resolved ``[data.preprocess]`` options."""

    image_size: int = 0
    augment: Any = None
    group_by_length: bool = False
    options: dict = field(default_factory=dict)
    pairs: bool = False  # the source gives sentence pairs (its ``text_pair`` option)

    @classmethod
    def of(cls, recipe) -> "DataSettings":
        d = recipe.data
        return cls(d.image_size or 0, d.augment, bool(getattr(d, "group_by_length", False)),
                   dict(getattr(d, "preprocess", None) or {}), bool((d.options or {}).get("text_pair")))


@dataclass(frozen=True)
class OnnxIO:
    """How a model of this modality is traced to ONNX: named example tensors, their dynamic axes, and
    ``model_input(*tensors)`` that turns the graph's inputs back into what the model takes."""

    example: dict[str, Any]
    axes: dict[str, dict[int, str]]
    model_input: Callable[..., Any]


@dataclass(frozen=True)
class SampleView:
    """A test example as the report shows it: caption text and/or an ``HxWx3`` uint8 thumbnail."""

    text: str | None = None
    image: Any = None


def json_kind(v: Any) -> str:
    """A JSON value's kind in words, for messages about request values ("a number", "a list", ...)."""
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null",
            int: "a number", float: "a number"}.get(type(v), type(v).__name__)


class UnsupportedInput(ValueError):
    """A kind of input the modality does not take at all (e.g. files for text): HTTP 415, not 422."""


class InputPipeline:
    """A loaded model's inputs: ``batch`` turns a list of items (checked by ``Modality.as_items``) into
    what the model takes, on ``device``."""

    def batch(self, items: Sequence, device: Any) -> Any:
        raise NotImplementedError


class Modality:
    """The runtime half of a modality (see the module docstring). Subclass and override."""

    name: str = ""
    noun: str = "inputs"  # what one calls its inputs in messages, plural ("images", "texts", "recordings")

    # -- training
    def datasets(self, backbone: Any, data: DataSettings, splits: Any) -> Datasets:
        raise NotImplementedError

    def augments(self, data: DataSettings) -> bool:
        """Whether the training inputs change every epoch (random augmentation) under these settings: then the
        run plan caches only the validation split (``tlhub.recipe.plan``). Must agree with ``datasets``'s
        ``deterministic``; the trainer checks that it does."""
        return False

    def data_problems(self, data: DataSettings) -> list[str]:
        """The recipe's data settings this modality cannot use (e.g. an image augmentation for sound), one message
        each, named by their recipe key: ``tlhub validate`` reports them before any data loads."""
        return []

    def backbone_problem(self, backbone: Any) -> str:
        """Why this modality cannot feed the built ``backbone`` (e.g. its ``preprocessing`` is not what the
        modality reads; "" when it can): the contract kit's ``check_backbone`` asks it."""
        return ""

    def item_problem(self, item: Any) -> str:
        """Why a data source's item is not one this modality reads ("" when it is); the contract kit's
        ``check_data_source`` reads a sample of items with it."""
        return ""

    def channels_last(self, backbone: Any) -> bool:
        """Whether the backbone's input is an image batch, where channels-last memory may pay."""
        return False

    # -- the exported model
    def config(self, backbone: Any, data: DataSettings) -> dict:
        """The ``preprocessing`` table of ``config.json`` (tlhub adds ``"modality": name``)."""
        raise NotImplementedError

    def config_problems(self, prep: dict) -> list[str]:
        """What a predictor needs from ``prep`` and does not find ([] when fine). Must not import torch."""
        return []

    # -- predicting
    def as_items(self, inputs: Any) -> list:
        """A user's inputs (one, or a sequence of them) as a list, refusing what a model of this modality
        cannot read with a ``UserError`` (the same words on every predict path). Must not import torch."""
        raise NotImplementedError

    def inputs(self, prep: dict, backbone: Any = None, model_dir: Path | None = None) -> InputPipeline:
        raise NotImplementedError

    def expand(self, args: list[str], skipped: list[str]) -> list:
        """Command-line inputs of ``tlhub predict`` as items (e.g. a folder -> its files); unreadable
        entries go into ``skipped`` as "path: reason"."""
        return list(args)

    def example_batch(self, backbone: Any, n: int = 2) -> Any:
        """A small valid batch for the backbone (contract tests, ONNX tracing)."""
        raise NotImplementedError

    # -- ONNX
    def onnx_io(self, pipeline: InputPipeline, backbone: Any) -> OnnxIO:
        raise NotImplementedError

    def onnx_metadata(self, prep: dict) -> dict:
        """What an ONNX Runtime user needs besides ``prep`` to build the graph's inputs."""
        return {}

    def onnx_save(self, pipeline: InputPipeline, out_dir: Path) -> None:
        """Files an ONNX model needs beside it (e.g. a tokenizer)."""

    def onnx_feeder(self, prep: dict, folder: Path) -> Callable[[Sequence], dict]:
        """``feed(items) -> {input name: numpy array}`` for ONNX Runtime."""
        raise NotImplementedError

    # -- serving (``limits``: the server's settings, e.g. ``max_image_pixels``, ``max_text_chars``)
    json_help: str = "uploaded files"  # what one JSON input is, for error messages and the API description

    def from_json(self, value: Any, what: str, limits: Any = None) -> Any:
        """One JSON request value as an item (raise ``ValueError`` with a message for a bad one)."""
        raise UnsupportedInput(f"a {self.name} model takes uploaded files, not JSON values")

    def from_upload(self, data: bytes, filename: str, what: str, limits: Any = None) -> Any:
        """One uploaded file as an item (raise ``ValueError`` with a message for a bad one)."""
        raise UnsupportedInput(f"a {self.name} model does not take uploaded files")

    # -- reports
    def sample_view(self, item: Any, size: int) -> SampleView:
        return SampleView(text=str(item))
