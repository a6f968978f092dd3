"""The split a run trains on, pinned at its start: ``--resume`` on changed data is refused.

``splits.json`` holds, per split, the number of examples and a SHA-256 over each example's identity
(its path or text, or its pixels when it lives in memory) and label, in split order. A resume that
would train on a different split (images added to the folder, a file edited, a changed seed) could put
training examples into the test split; it is refused with what changed.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from tlhub.errors import UserError

FILE = "splits.json"
SPLITS = ("train", "val", "test")


def _item_bytes(item) -> bytes:
    if isinstance(item, (str, Path)):
        return str(item).encode("utf-8", "surrogatepass")
    if isinstance(item, (bytes, bytearray)):
        return bytes(item)
    try:
        import numpy as np
        arr = np.asarray(item)
        if arr.dtype != object:  # a large array: its shape and first MiB stand for it (cheap for big sets)
            return str(arr.shape).encode() + arr.reshape(-1).view(np.uint8)[: 1 << 20].tobytes()
    except Exception:  # noqa: BLE001 - anything numpy cannot view falls back to its repr
        pass
    return repr(item).encode()


def fingerprint(splits) -> dict:
    out = {}
    for name in SPLITS:
        split = getattr(splits, name)
        h = hashlib.sha256()
        for item, label in zip(split.items, split.labels):
            b = _item_bytes(item)
            h.update(len(b).to_bytes(8, "little") + b + _label_bytes(label))
        out[name] = {"examples": len(split.labels), "sha256": h.hexdigest()}
    out["classes"] = list(splits.classes)
    return out


def check(run_dir: Path, splits, resuming: bool) -> dict:
    """The fingerprint of ``splits``; on a resume, refuse (UserError) when it differs from the pinned one."""
    now = fingerprint(splits)
    path = run_dir / FILE
    if not resuming or not path.is_file():  # a run from before the pin: nothing to compare with
        return now
    try:
        pinned = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"--resume: cannot read {path} ({exc}); the split this run trained on is unknown") from None
    changes = []
    for name in SPLITS:
        a, b = (pinned.get(name) or {}), now[name]
        if a.get("examples") != b["examples"]:
            changes.append(f"{name}: {a.get('examples')} -> {b['examples']} examples")
        elif a.get("sha256") != b["sha256"]:
            changes.append(f"{name}: the same number of examples ({b['examples']}) but different ones or labels")
    if pinned.get("classes") is not None and pinned.get("classes") != now["classes"]:
        changes.append(f"classes: {pinned.get('classes')} -> {now['classes']}")
    if changes:
        raise UserError(errors=[f"--resume: the data changed since {run_dir} started, so examples could move "
                                f"between train and test; restore the data or start a new run:"]
                        + [f"  {c}" for c in changes])
    return now


def _label_bytes(label) -> bytes:
    """A class index as before tasks; a float target array (multi-hot labels, values) by its bytes."""
    import numpy as np  # as _item_bytes: numpy only when a run pins its data
    if isinstance(label, (int, np.integer)):
        return int(label).to_bytes(8, "little", signed=True)
    return np.asarray(label, dtype=np.float32).tobytes()
