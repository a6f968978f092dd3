"""Labelled examples from a Hugging Face ``datasets`` data set, for any modality.

Shared by the text source ``hf`` (tlhub-text) and the image source ``hf-images`` (tlhub-vision):
where the data comes from, which splits are used and how labels become classes is the same; only
the item column and what counts as a usable item differ (``Items``).

Where from: a Hub id (cached, or downloaded when online), a ``save_to_disk`` folder, or a packaged
builder (``imagefolder``) on a local folder. Offline and uncached fails in seconds: the Hub is
probed first and, when unreachable, ``datasets`` is told to use only its cache.

Split rules: ``train_split`` by name; ``val_split`` / ``test_split`` 'auto' take the first
labelled split among validation/valid/dev/val (resp. test), a name takes that split, and '' leaves
it to the core, which carves it from train (stratified, seeded).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from tlhub.data import hfhub as hub
from tlhub.data.labels import check_classes, class_names, label_name
from tlhub.errors import UserError, did_you_mean
from tlhub.interfaces import DataContext, SourceData, Split

AUTO = {"val": ("validation", "valid", "dev", "val"), "test": ("test",)}


@dataclass(frozen=True)
class Items:
    """What one modality takes from the item column."""

    option: str  # the option naming the column: "text_column", "image_column"
    read: Callable[[Any, str], Any]  # (split, column) -> the column's values
    usable: Callable[[Any], Any]  # value -> the item, or None when the example has no usable item
    missing: str  # why an example without an item is skipped: "no text", "no image"


@dataclass(frozen=True)
class Origin:
    """How to open the data set: the option names, the builder for a local folder, the alternatives."""

    source: str  # the data source's name, for messages
    alternatives: str  # what else the user can do offline, e.g. "the csv or jsonl source"
    builder: str = ""  # a packaged builder for options["folder"] ("imagefolder"); "" when none


def open_dataset(options: dict, ctx: DataContext, origin: Origin):
    import datasets

    folder_opt = options.get("folder", "")
    if folder_opt and origin.builder:
        folder = ctx.path(folder_opt)
        if not folder.is_dir():
            raise UserError(f"data.options.folder: no such folder {folder}")
        try:
            with hub.forced_offline():  # a packaged builder on local files needs no network
                return datasets.load_dataset(origin.builder, data_dir=str(folder))
        except Exception as exc:
            raise UserError(f"data.options.folder: the {origin.builder} builder cannot read {folder}: "
                            f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    if options["path"]:
        folder = ctx.path(options["path"])
        if not folder.is_dir():
            raise UserError(f"data.options.path: no such folder {folder} (expected one written by save_to_disk)")
        try:
            return datasets.load_from_disk(str(folder))
        except (FileNotFoundError, ValueError, OSError) as exc:
            raise UserError(f"data.options.path: {folder} is not a save_to_disk folder: {exc}") from None
    name, config = options["dataset"], options["config"] or None
    if not name:
        where = " or folder (a local folder for the imagefolder builder)" if origin.builder else ""
        raise UserError(f"data.options: give dataset (a Hugging Face dataset id) or path (a save_to_disk folder)"
                        f"{where}")
    label = f"{name!r}" + (f" (config {config!r})" if config else "")
    if hub.online():
        try:
            return datasets.load_dataset(name, config)
        except Exception as exc:  # DatasetNotFoundError, missing config, ... -- all the user's to fix
            raise UserError(f"data: cannot load dataset {label}: {str(exc).splitlines()[0]}") from None
    with hub.forced_offline():
        try:
            return datasets.load_dataset(name, config)
        except Exception:
            pass
    raise UserError(
        f"data: dataset {label} is not in the local Hugging Face datasets cache and cannot be downloaded: "
        f"{hub.why_offline()}. Provide it one of these ways: (1) run once with network to fill the cache, then "
        f"HF_HUB_OFFLINE=1 works; (2) on a machine with network, datasets.load_dataset({name!r}"
        f"{', ' + repr(config) if config else ''}).save_to_disk(FOLDER), copy FOLDER here and set "
        f"data.options.path = \"FOLDER\"; or (3) {origin.alternatives}")


def _labelled(y) -> bool:
    return y is not None and not (isinstance(y, int) and y < 0)  # ClassLabel uses -1 for "no label"


def _pick(dd, option: str, value: str, role: str, lab: str):
    """The split named by an option: 'auto' finds a labelled one, '' means 'carve it from train'."""
    if value == "":
        return None
    if value != "auto":
        if value not in dd:
            raise UserError(f"data.options.{option}: the dataset has no split {value!r} "
                            f"(splits: {', '.join(dd)}){did_you_mean(value, list(dd))}")
        return value
    for cand in AUTO[role]:
        if cand in dd and lab in dd[cand].column_names and any(_labelled(y) for y in dd[cand][lab]):
            return cand
    return None


def _check_column(option: str, col: str, columns: list[str], split: str) -> None:
    if col not in columns:
        raise UserError(f"data.options.{option}: split {split!r} has no column {col!r}"
                        f"{did_you_mean(col, columns)}; its columns are: {', '.join(map(repr, columns))}")


def load_labelled(options: dict, ctx: DataContext, origin: Origin, items: Items) -> SourceData:
    """``SourceData`` from the options every Hugging Face source shares (dataset, config, path,
    train/val/test_split, label_column) and the item column named by ``items.option``."""
    import datasets

    dd = open_dataset(options, ctx, origin)
    if isinstance(dd, datasets.Dataset):
        dd = datasets.DatasetDict({options["train_split"]: dd})
    ic, lc = options[items.option], options["label_column"]
    train = options["train_split"]
    if train not in dd:
        raise UserError(f"data.options.train_split: the dataset has no split {train!r} "
                        f"(splits: {', '.join(dd)}){did_you_mean(train, list(dd))}")
    for option, col in ((items.option, ic), ("label_column", lc)):
        _check_column(option, col, dd[train].column_names, train)
    chosen = {"train": train, "val": _pick(dd, "val_split", options["val_split"], "val", lc),
              "test": _pick(dd, "test_split", options["test_split"], "test", lc)}
    feature = dd[train].features[lc]
    named = list(feature.names) if isinstance(feature, datasets.ClassLabel) else None
    raw, skipped = {}, []
    for role, split in chosen.items():
        if split is None:
            continue
        ds = dd[split]
        for option, col in ((items.option, ic), ("label_column", lc)):
            _check_column(option, col, ds.column_names, split)
        rows = []
        for i, (value, y) in enumerate(zip(items.read(ds, ic), ds[lc])):
            item = items.usable(value)
            if item is None:
                skipped.append(f"{split}[{i}]: {items.missing}")
            elif y is None or (named is not None and int(y) < 0):
                skipped.append(f"{split}[{i}]: unlabelled")
            else:
                rows.append((item, named[int(y)] if named is not None else label_name(y)))
        if not rows:
            raise UserError(f"data.options.{role}_split: split {split!r} has no labelled examples (a hidden test "
                            f"set?); name another split, or '' to carve it from train")
        raw[role] = rows
    if skipped:
        ctx.log(f"data: {origin.source}: skipped {len(skipped)} example(s) ({items.missing} or unlabelled; "
                f"listed in the run's skipped.txt)")
    classes = named if named is not None else class_names(lab for r in raw.values() for _, lab in r)
    check_classes(classes, origin.source)
    index = {c: i for i, c in enumerate(classes)}
    splits = {role: Split([t for t, _ in r], [index[lab] for _, lab in r]) for role, r in raw.items()}
    return SourceData(list(classes), train=splits["train"], val=splits.get("val"), test=splits.get("test"),
                      skipped=skipped)
