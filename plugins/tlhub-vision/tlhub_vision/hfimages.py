"""``hf-images``: image classification data from Hugging Face ``datasets``: a Hub id (cached, or
downloaded when online), a ``save_to_disk`` folder, or the ``imagefolder`` builder on a local folder.

Opening, split rules and labels are shared with the text source (``tlhub.data.hfsource``). Images
stay encoded: an ``Image`` column is read with ``decode=False``, so each item is the small
``{"bytes", "path"}`` record and is decoded per batch by ``tlhub.data.images.to_pil``, not held
in memory as pixels.
"""
from __future__ import annotations

from tlhub.data.hfsource import Items, Origin, load_labelled
from tlhub.interfaces import DataContext, SourceData

ORIGIN = Origin("hf-images", "use the image-folder source on a folder of class sub-folders", builder="imagefolder")


def _read(ds, col: str):
    import datasets
    if isinstance(ds.features[col], datasets.Image):
        return ds.cast_column(col, datasets.Image(decode=False))[col]
    return ds[col]  # arrays (e.g. Array2D / nested lists): to_pil converts them


def _image(value):
    if value is None or (isinstance(value, dict) and not (value.get("bytes") or value.get("path"))):
        return None
    return value


IMAGES = Items("image_column", _read, _image, "no image")


def load_hf_images(options: dict, ctx: DataContext) -> SourceData:
    return load_labelled(options, ctx, ORIGIN, IMAGES)
