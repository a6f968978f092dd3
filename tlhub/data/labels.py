"""Raw labels to class names, shared by the table, file and Hugging Face data sources."""
from __future__ import annotations

import re

from tlhub.errors import UserError

# a label written as a decimal number ("1.0", "-2.50"): the same class as the number, as JSON reads it
_DECIMAL = re.compile(r"-?\d+\.\d+")


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
    text = str(v).strip()
    if isinstance(v, str) and _DECIMAL.fullmatch(text):
        return label_name(float(text))  # "1.0" == 1.0 == "1" (a CSV column of 1 and 1.0 is one class)
    return text


def check_classes(classes: list[str], source: str) -> None:
    if len(classes) < 2:
        found = f"only {classes[0]!r}" if classes else "none"
        raise UserError(f"data: source {source!r} gives {len(classes)} class ({found}); classification needs at "
                        f"least 2 -- check the label column / the files")
