"""``hf``: a Hugging Face ``datasets`` id (cached, or downloaded when online) or a ``save_to_disk`` folder.

Opening the data set, the split rules and the labels are shared with the image source
(``tlhub.data.hfsource``); only what counts as a text lives here.
"""
from __future__ import annotations

from tlhub.data.hfsource import Items, Origin, load_labelled
from tlhub.interfaces import DataContext, SourceData

ORIGIN = Origin("hf", "export the examples to a file and use the csv, tsv, jsonl or text-files source")


def _text(value):
    return value.strip() if isinstance(value, str) and value.strip() else None


TEXT = Items("text_column", lambda ds, col: ds[col], _text, "no text")


def load_hf(options: dict, ctx: DataContext) -> SourceData:
    return load_labelled(options, ctx, ORIGIN, TEXT)
