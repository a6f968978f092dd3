"""The ``image`` modality: files, PIL images and arrays -> ``[3, S, S]`` tensors normalized the backbone's way."""
from __future__ import annotations

import base64
import binascii
import io
import re
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

from tlhub.data.decode import decode_error, to_chw, to_pil
from tlhub.errors import UserError
from tlhub.modalities.inputs import as_image_items, read_image
from tlhub.modality import (
    DataSettings, Datasets, InputPipeline, Modality, OnnxIO, SampleView, UnsupportedInput, json_kind,
)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
MAX_PIXELS = 50_000_000  # a served image over this is refused before it is decompressed (tlhub serve's default)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_tensor(x: Any) -> bool:
    return type(x).__module__.startswith("torch") and hasattr(x, "ndim")


class ImageInputs(InputPipeline):
    """Paths, PIL images, ``{"bytes", "path"}`` records, arrays and tensors -> a normalized batch."""

    def __init__(self, prep: dict):
        # local: tlhub.data.images and tlhub.interfaces import torch; `tlhub predict` on an ONNX model must not
        from tlhub.data.images import build_transform
        from tlhub.interfaces import ImagePreprocessing
        self.image_size = int(prep["image_size"])
        self.mean, self.std = tuple(prep["mean"]), tuple(prep["std"])
        ip = ImagePreprocessing(self.mean, self.std, self.image_size)
        self.transform = build_transform(ip, self.image_size, None, train=False)[0]

    def batch(self, items: Sequence, device: Any) -> Any:
        import torch
        return torch.stack([self.image(item) for item in items]).to(device)

    def image(self, item: Any):
        if _is_tensor(item):
            return self.tensor_image(item)
        return self.transform(read_image(item))

    def tensor_image(self, t):
        """A raw image tensor ``[C, H, W]`` / ``[H, W]`` (0..1 floats or uint8), resized only when its side
        differs from the trained size, then normalized (it is not expected to be normalized already)."""
        import torch
        from torchvision.transforms import functional as TF
        t = t.detach().cpu()
        t = t.float() / 255.0 if t.dtype == torch.uint8 else t.float()
        if t.ndim == 2:
            t = t.unsqueeze(0)
        if t.ndim != 3 or t.shape[0] not in (1, 3):
            raise UserError(f"an image tensor must be [C, H, W] with 1 or 3 channels, got shape {tuple(t.shape)}")
        if t.shape[0] == 1:
            t = t.expand(3, -1, -1)
        if tuple(t.shape[1:]) != (self.image_size, self.image_size):
            t = TF.resize(t, [self.image_size, self.image_size], antialias=True)
        return TF.normalize(t, list(self.mean), list(self.std))


class ImageModality(Modality):
    name = "image"
    noun = "images"
    json_help = "base64-encoded image files (a data: URL prefix is allowed)"

    # -- training
    def datasets(self, backbone: Any, data: DataSettings, splits: Any) -> Datasets:
        # local: tlhub.data.images imports torch; `tlhub predict` on an ONNX model must not
        from tlhub.data.images import ImageDataset, build_transform
        prep = backbone.preprocessing
        size = data.image_size or prep.size
        out, deterministic = {}, True
        for name in ("train", "val", "test"):
            tf, det = build_transform(prep, size, data.augment, train=name == "train")
            deterministic &= det
            split = getattr(splits, name)
            out[name] = ImageDataset(split.items, split.labels, tf)
        return Datasets(out["train"], out["val"], out["test"], None, deterministic)

    def augments(self, data: DataSettings) -> bool:
        # local: tlhub.data.images imports torch; `tlhub predict` on an ONNX model must not
        from tlhub.data.images import augment_is_random
        return augment_is_random(data.augment)

    def backbone_problem(self, backbone: Any) -> str:
        # local: tlhub.interfaces imports torch; `tlhub predict` on an ONNX model must not
        from tlhub.interfaces import ImagePreprocessing
        prep = backbone.preprocessing
        return "" if isinstance(prep, ImagePreprocessing) else \
            f"preprocessing must be a ImagePreprocessing for {self.name} input, got {type(prep).__name__}"

    def item_problem(self, item: Any) -> str:
        if isinstance(item, (str, Path)) and not Path(item).is_file():
            return f"is a path that does not exist: {item}"
        try:
            img = to_pil(item)
        except Exception as exc:  # noqa: BLE001 - whatever the decoder raises, the item is unreadable
            return (f"is not an image tlhub can read ({type(item).__name__}: {type(exc).__name__}: {exc}); give PIL "
                    f"images, HxW / HxWxC arrays or image file paths")
        return "is an empty image" if img.width < 1 or img.height < 1 else ""

    def channels_last(self, backbone: Any) -> bool:
        return True

    def example_batch(self, backbone: Any, n: int = 2) -> Any:
        import torch
        size = min(int(getattr(backbone.preprocessing, "size", 0) or 64), 64)
        return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(0))

    # -- the exported model
    def config(self, backbone: Any, data: DataSettings) -> dict:
        prep = backbone.preprocessing
        return {"mean": list(prep.mean), "std": list(prep.std), "image_size": data.image_size or prep.size}

    def config_problems(self, prep: dict) -> list[str]:
        out = []
        size = prep.get("image_size")
        if not (_is_int(size) and size > 0):
            out.append("preprocessing: image_size is missing" if size is None
                       else f"preprocessing: image_size must be a positive integer, got {size!r}")
        for key in ("mean", "std"):
            v = prep.get(key)
            if not (isinstance(v, list) and len(v) == 3
                    and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)):
                out.append(f"preprocessing: {key} must be a list of 3 numbers, got {v!r}")
            elif key == "std" and any(x == 0 for x in v):
                out.append(f"preprocessing: std must not be 0, got {v!r}")
        return out

    # -- predicting
    def as_items(self, inputs: Any) -> list:
        return as_image_items(inputs)

    def inputs(self, prep: dict, backbone: Any = None, model_dir: Path | None = None) -> InputPipeline:
        return ImageInputs(prep)

    def expand(self, args: list[str], skipped: list[str]) -> list:
        """Files as given, folders expanded (recursively, sorted, by extension); a folder's files that do
        not decode are left out and listed in ``skipped``, as training skips them."""
        out: list[str] = []
        for a in args:
            p = Path(a).expanduser()
            if p.is_dir():
                found = sorted(str(f) for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS
                               and not any(part.startswith(".") for part in f.relative_to(p).parts))
                if not found:
                    raise UserError(f"{a}: folder holds no image ({', '.join(IMAGE_EXTENSIONS)})")
                bad = {f: why for f in found if (why := decode_error(f))}
                skipped += [f"{f}: {why}" for f, why in bad.items()]
                out += [f for f in found if f not in bad]
            elif p.is_file():
                out.append(str(p))
            else:
                raise UserError(f"{a}: no such image file or folder")
        return out

    # -- ONNX
    def onnx_io(self, pipeline: InputPipeline, backbone: Any) -> OnnxIO:
        import torch
        s = pipeline.image_size
        x = torch.randn(2, 3, s, s, generator=torch.Generator().manual_seed(0))
        return OnnxIO({"pixel_values": x}, {"pixel_values": {0: "batch"}}, lambda pixel_values: pixel_values)

    def onnx_metadata(self, prep: dict) -> dict:
        return {"input": "pixel_values", "layout": "NCHW", "color": "RGB", "resize": "bilinear (PIL)",
                "scale": 1 / 255}

    def onnx_feeder(self, prep: dict, folder: Path) -> Callable[[Sequence], dict]:
        import numpy as np

        size, mean, std = int(prep["image_size"]), prep["mean"], prep["std"]

        def feed(items: Sequence) -> dict:
            return {"pixel_values": np.stack([to_chw(read_image(i), size, mean, std) for i in items])}
        return feed

    # -- serving
    def from_json(self, value: Any, what: str, limits: Any = None) -> Any:
        if not isinstance(value, str):
            raise ValueError(f"{what}: expected a base64 string of an image file, got {json_kind(value)}")
        value = re.sub(r"^data:[^,]*;base64,", "", value.strip())
        try:
            data = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError(f"{what}: not valid base64 ({exc})") from None
        return self.from_upload(data, "", what, limits)

    def from_upload(self, data: bytes, filename: str, what: str, limits: Any = None) -> Any:
        """An RGB PIL image, decoded in full here so a broken file fails its own request, not a batch."""
        from PIL import Image, UnidentifiedImageError

        max_pixels = getattr(limits, "max_image_pixels", MAX_PIXELS)
        if not data:
            raise ValueError(f"{what}: empty file")
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            try:
                img = Image.open(io.BytesIO(data))
                w, h = img.size  # read from the header: nothing is decompressed yet
                if w * h > max_pixels:
                    raise ValueError(f"{what}: {w}x{h} = {w * h:,} pixels is over the limit of {max_pixels:,} "
                                     f"(a decompression bomb?); send a smaller image")
                img.load()
                return to_pil(img)
            except UnidentifiedImageError:
                raise ValueError(f"{what}: not an image file PIL can read ({len(data):,} bytes)") from None
            except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
                raise ValueError(f"{what}: refused as a decompression bomb ({exc})") from None
            except ValueError:
                raise
            except (OSError, SyntaxError, EOFError) as exc:  # truncated or corrupt data
                raise ValueError(f"{what}: cannot decode the image ({type(exc).__name__}: {exc})") from None

    # -- reports
    def sample_view(self, item: Any, size: int) -> SampleView:
        import numpy as np

        return SampleView(image=np.asarray(to_pil(item).resize((size, size))))


__all__ = ["ImageModality", "ImageInputs", "IMAGE_EXTENSIONS", "UnsupportedInput"]
