"""Raw labels to class names, shared by the table, file and Hugging Face data sources."""
from __future__ import annotations

from tlhub.errors import UserError


def class_names(values) -> list[str]:
    """Sorted class names of raw labels: numerically when every label is an integer, else as text."""
    names = {label_name(v) for v in values}
    try:
        return sorted(names, key=int)
    except ValueError:
        return sorted(names)


def label_name(v) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v).strip()


def check_classes(classes: list[str], source: str) -> None:
    if len(classes) < 2:
        found = f"only {classes[0]!r}" if classes else "none"
        raise UserError(f"data: source {source!r} gives {len(classes)} class ({found}); classification needs at "
                        f"least 2 -- check the label column / the files")
