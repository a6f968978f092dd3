"""Built-in modalities, registered like a plugin's: ``image`` and ``text`` (see ``tlhub.modalities``)."""
from __future__ import annotations

from tlhub.hookspecs import hookimpl
from tlhub.modality import ModalitySpec


def _image():
    # local: a registry entry is a descriptor; the modality's code loads when it is built
    from tlhub.modalities.image import ImageModality
    return ImageModality()


def _text():
    # local: a registry entry is a descriptor; the modality's code loads when it is built
    from tlhub.modalities.text import TextModality
    return TextModality()


@hookimpl
def register_modalities(register):
    register(ModalitySpec("image", "pictures: files, PIL images or arrays, resized and normalized for the backbone",
                          _image, feeds=("image",)))
    register(ModalitySpec("text", "sentences: strings through the backbone's tokenizer", _text, feeds=("text",)))
