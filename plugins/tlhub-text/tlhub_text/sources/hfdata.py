"""``hf``: a Hugging Face ``datasets`` id (cached, or downloaded when online) or a ``save_to_disk`` folder.

Offline and uncached fails in seconds: the Hub is probed first and, when it cannot be reached,
``datasets`` is told to use only its cache instead of retrying downloads for half a minute.
"""
from __future__ import annotations

from tlhub.errors import UserError
from tlhub.interfaces import DataContext, SourceData, Split

from .. import hub
from .common import check_classes, class_names, label_name

AUTO = {"val": ("validation", "valid", "dev", "val"), "test": ("test",)}


def open_dataset(options: dict, ctx: DataContext):
    import datasets

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
        raise UserError("data.options: give dataset (a Hugging Face dataset id) or path (a save_to_disk folder)")
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
        f"data.options.path = \"FOLDER\"; or (3) export the examples to a file and use the csv, tsv, jsonl "
        f"or text-files source")


def _pick(dd, option: str, value: str, role: str, lab: str):
    """The split named by an option: 'auto' finds a labelled one, '' means 'carve it from train'."""
    names = list(dd)
    if value == "":
        return None
    if value != "auto":
        if value not in dd:
            raise UserError(f"data.options.{option}: the dataset has no split {value!r} (splits: {', '.join(names)})")
        return value
    for cand in AUTO[role]:
        if cand in dd and lab in dd[cand].column_names and any(_labelled(y) for y in dd[cand][lab]):
            return cand
    return None


def _labelled(y) -> bool:
    return y is not None and not (isinstance(y, int) and y < 0)  # ClassLabel uses -1 for "no label"


def load_hf(options: dict, ctx: DataContext) -> SourceData:
    import datasets

    dd = open_dataset(options, ctx)
    if isinstance(dd, datasets.Dataset):
        dd = datasets.DatasetDict({options["train_split"]: dd})
    tc, lc = options["text_column"], options["label_column"]
    train = options["train_split"]
    if train not in dd:
        raise UserError(f"data.options.train_split: the dataset has no split {train!r} (splits: {', '.join(dd)})")
    for option, col in (("text_column", tc), ("label_column", lc)):
        if col not in dd[train].column_names:
            raise UserError(f"data.options.{option}: the dataset has no column {col!r}; its columns are: "
                            f"{', '.join(map(repr, dd[train].column_names))}")
    chosen = {"train": train, "val": _pick(dd, "val_split", options["val_split"], "val", lc),
              "test": _pick(dd, "test_split", options["test_split"], "test", lc)}
    feature = dd[train].features[lc]
    named = list(feature.names) if isinstance(feature, datasets.ClassLabel) else None
    raw, skipped = {}, []
    for role, split in chosen.items():
        if split is None:
            continue
        ds = dd[split]
        for option, col in (("text_column", tc), ("label_column", lc)):
            if col not in ds.column_names:
                raise UserError(f"data.options.{option}: split {split!r} has no column {col!r}")
        rows = []
        for i, (text, y) in enumerate(zip(ds[tc], ds[lc])):
            if not isinstance(text, str) or not text.strip():
                skipped.append(f"{split}[{i}]: no text")
            elif y is None or (named is not None and int(y) < 0):
                skipped.append(f"{split}[{i}]: unlabelled")
            else:
                rows.append((text.strip(), named[int(y)] if named is not None else label_name(y)))
        if not rows:
            raise UserError(f"data.options.{role}_split: split {split!r} has no labelled examples (a hidden test "
                            f"set?); name another split, or '' to carve it from train")
        raw[role] = rows
    if len(skipped):
        ctx.log(f"data: hf: skipped {len(skipped)} example(s) without text or label")
    classes = named if named is not None else class_names(lab for r in raw.values() for _, lab in r)
    check_classes(classes, "hf")
    index = {c: i for i, c in enumerate(classes)}
    splits = {role: Split([t for t, _ in r], [index[lab] for _, lab in r]) for role, r in raw.items()}
    return SourceData(list(classes), train=splits["train"], val=splits.get("val"), test=splits.get("test"),
                      skipped=skipped)
