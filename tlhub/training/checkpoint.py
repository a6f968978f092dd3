"""Checkpoints that survive a kill: written to a temporary folder, fsynced, then renamed.

A checkpoint folder holds ``model.safetensors`` and ``optimizer.safetensors`` (tensors only, never
pickle), ``state.json`` (phase, epoch, step, history, scheduler, RNG states, the recipe's identity)
and, written last, ``manifest.json`` with each file's size and SHA-256. A folder whose manifest is
missing or does not match its files (a kill or a full disk mid-write) is skipped on resume.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from tlhub.errors import UserError

log = logging.getLogger("tlhub")


@dataclass
class Checkpoint:
    path: Path
    state: dict

    @property
    def position(self) -> tuple[int, int, int]:
        return self.state["phase_index"], self.state["epoch"], self.state["step"]


def identity(recipe, classes: list[str]) -> dict:
    """What must match for a checkpoint to continue: model, classes, data pipeline, phases."""
    d = recipe.to_dict()
    data = {k: v for k, v in d["data"].items() if k not in ("workers", "eval_batch_size")}
    ident = {"model": d["model"], "classes": list(classes), "data": data, "phases": d["phases"],
             "train": {k: d["train"][k] for k in ("seed", "grad_accum", "mixed_precision")}}
    return json.loads(json.dumps(ident))  # the form it takes once stored (tuples become lists)


def differences(saved: dict, now: dict, prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(saved) | set(now)):
        a, b = saved.get(key, "<absent>"), now.get(key, "<absent>")
        where = f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            out += differences(a, b, where + ".")
        elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b) and a and isinstance(a[0], dict):
            for i, (x, y) in enumerate(zip(a, b)):
                out += differences(x, y, f"{where}.{i}.")
        elif a != b:
            out.append(f"{where}: checkpoint has {a!r}, recipe has {b!r}")
    return out


def _flatten_optimizer(sd: dict) -> tuple[dict[str, torch.Tensor], dict]:
    tensors, meta = {}, {"param_groups": sd["param_groups"], "state": {}}
    for idx, st in sd["state"].items():
        meta["state"][str(idx)] = {}
        for name, value in st.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{idx}.{name}"] = value.detach().cpu().contiguous()
            else:
                meta["state"][str(idx)][name] = value
    return tensors, meta


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict] = {int(i): dict(v) for i, v in meta["state"].items()}
    for key, value in tensors.items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def rng_state() -> tuple[dict, dict[str, torch.Tensor]]:
    np_state = np.random.get_state()
    py = random.getstate()
    meta = {"python": [py[0], list(py[1]), py[2]],
            "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])]}
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    return meta, tensors


def set_rng_state(meta: dict, tensors: dict[str, torch.Tensor]) -> None:
    py = meta["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = meta["numpy"]
    np.random.set_state((n[0], np.array(n[1], dtype=np.uint32), n[2], n[3], n[4]))
    torch.set_rng_state(tensors["rng.torch"])
    cuda = [tensors[k] for k in sorted(k for k in tensors if k.startswith("rng.cuda."))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fsync_write(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def save(run_dir: Path, model, optimizer, scheduler, state: dict, keep: int, best: dict | None = None) -> Path:
    """Write one checkpoint atomically and keep only the newest ``keep``.

    ``best``: the phase's best-so-far weights (``restore_best``), stored as ``best.safetensors``.
    """
    from safetensors.torch import save_file

    root = run_dir / "checkpoints"
    name = "p{phase_index}-e{epoch:04d}-s{step:06d}".format(**state)
    final = root / name
    tmp = root / f".tmp-{name}"
    try:
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        opt_tensors, opt_meta = _flatten_optimizer(optimizer.state_dict())
        rng_meta, rng_tensors = rng_state()
        model_state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(model_state, str(tmp / "model.safetensors"))
        save_file({**opt_tensors, **rng_tensors}, str(tmp / "optimizer.safetensors"))
        if best is not None:
            save_file({k: v.contiguous() for k, v in best.items()}, str(tmp / "best.safetensors"))
        full = dict(state, optimizer=opt_meta, scheduler=scheduler.state_dict(), rng=rng_meta)
        _fsync_write(tmp / "state.json", json.dumps(full).encode())
        for f in [f.name for f in tmp.glob("*.safetensors")]:
            with open(tmp / f, "rb") as fh:
                os.fsync(fh.fileno())
        manifest = {f.name: {"size": f.stat().st_size, "sha256": _sha256(f)} for f in sorted(tmp.iterdir())}
        _fsync_write(tmp / "manifest.json", json.dumps(manifest).encode())
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise UserError(f"cannot write a checkpoint in {root}: {exc.strerror or exc}; the previous checkpoint "
                        f"is kept") from None
    for old in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def verify(path: Path) -> str:
    """'' when the checkpoint folder is whole, else why not."""
    mf = path / "manifest.json"
    if not mf.is_file():
        return "no manifest (interrupted while writing)"
    try:
        manifest = json.loads(mf.read_text())
    except (OSError, ValueError) as exc:
        return f"unreadable manifest: {exc}"
    for name, info in manifest.items():
        f = path / name
        if not f.is_file():
            return f"{name} missing"
        if f.stat().st_size != info["size"] or _sha256(f) != info["sha256"]:
            return f"{name} truncated or corrupt"
    return ""


def newest(run_dir: Path) -> Checkpoint | None:
    root = run_dir / "checkpoints"
    if not root.is_dir():
        return None
    for path in sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")), reverse=True):
        why = verify(path)
        if why:
            log.info("resume: skipping checkpoint %s: %s", path.name, why)
            continue
        return Checkpoint(path, json.loads((path / "state.json").read_text()))
    return None


def resume_point(ckpt: Checkpoint, phases) -> tuple[int, Checkpoint | None]:
    """Where a run of ``phases`` continues from ``ckpt``: (the first phase to train, the checkpoint to continue
    inside it, or None when ``ckpt`` ended its phase: exactly on its last epoch, or after an early stop or a
    restore of the best weights)."""
    p, epochs_done, steps_done = ckpt.position
    if (epochs_done >= phases[p].epochs or ckpt.state.get("done")) and not steps_done:
        return p + 1, None
    return p, ckpt


def load_into(ckpt: Checkpoint, model, optimizer, scheduler) -> None:
    from safetensors.torch import load_file
    model.load_state_dict(load_file(str(ckpt.path / "model.safetensors")))
    tensors = load_file(str(ckpt.path / "optimizer.safetensors"))
    opt_tensors = {k: v for k, v in tensors.items() if not k.startswith("rng.")}
    optimizer.load_state_dict(_unflatten_optimizer(opt_tensors, ckpt.state["optimizer"]))
    scheduler.load_state_dict(ckpt.state["scheduler"])
    set_rng_state(ckpt.state["rng"], {k: v for k, v in tensors.items() if k.startswith("rng.")})


def load_model_only(ckpt: Checkpoint, model) -> None:
    from safetensors.torch import load_file
    model.load_state_dict(load_file(str(ckpt.path / "model.safetensors")))


def load_best(ckpt: Checkpoint) -> dict | None:
    """The best-so-far weights stored with ``ckpt`` (``restore_best``), or None."""
    from safetensors.torch import load_file
    path = ckpt.path / "best.safetensors"
    return load_file(str(path)) if path.is_file() else None
