"""validate is the contract: whatever `tlhub validate` accepts gets a run past setup.

Hypothesis mutates tests/recipes/tiny.toml field by field (boundary numbers, wrong types, unknown names
where a name goes) and runs each recipe up to the first phase: ``run_phase`` is replaced by one that
raises ``PastSetup``, so plan, data, model, trackers, metrics and the output folder are all built.
Accepted by validate -> the run reaches ``PastSetup`` (no UserError, no other exception); rejected by
validate -> the run refuses with a UserError too. The one exception: what only the loaded data can
tell (``DATA_DEPENDENT``: a carved split left empty, a class missing from a limited train split).
"""
from __future__ import annotations

import copy
import math
import os
import re
import tempfile
from pathlib import Path
from unittest import mock

import pytest
import tomllib
from conftest import REPO
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tlhub.errors import UserError

tomli_w = pytest.importorskip("tomli_w")

BASE = tomllib.loads((REPO / "tests" / "recipes" / "tiny.toml").read_text())

# Numbers at the edges; "huge" only where a huge value costs no memory before the first step.
SMALL = [0, -1, 1, 2, 3, 0.5, 1.5, math.nan, math.inf, -math.inf, "3", True, [], {}]
NUMBERS = SMALL + [2**31, 2**63 - 1, 2**64, 1e300, -1e300, 1e-300]
FRACTIONS = [0.0, 0.1, 0.5, 0.99, 1.0, -0.1, 1.5, math.nan, 2, "half", True]


def names(*valid: str) -> list:
    return [*valid, "nosuch", "", "Tiny", 3, [valid[0]] if valid else []]


FIELDS: dict[str, list] = {
    "model.backbone": names("tiny-cnn") + ["tiny_cnn"],
    "model.head": names("linear", "mlp"),
    "model.weights": ["", "none", "nosuch.safetensors", 3],
    "model.head_options": [{}, {"hidden": []}, {"dropout": 0.5}, {"bogus": 1}, "mlp"],
    "model.head_options.hidden": [[], [1], [16, 8], [0], [-5], ["a"], [1.5], 16, [True]],
    "model.head_options.dropout": [0, 0.5, 0.999, 1, -0.1, math.nan, "x"],
    "data.source": names("synthetic", "digits") + ["synthetik"],
    "data.image_size": [1, 2, 8, 16, 0, -1, 1.5, "16", math.nan, True],
    "data.val_split": FRACTIONS,
    "data.test_split": FRACTIONS,
    "data.split_seed": NUMBERS,
    "data.batch_size": NUMBERS + [7, 13],
    "data.eval_batch_size": NUMBERS + [5],
    "data.workers": [0, -1, 1.5, "x", True],
    "data.limit": NUMBERS + [5, 11, 33],
    "data.group_by_length": [True, False, 1, "yes"],
    "data.options": [{}, {"classes": 2}, {"bogus": 1}, [], "x"],
    "data.options.classes": [1, 2, 3, 6, 7, 0, -1, 1.5, "4", math.nan],
    "data.options.per_class": [1, 2, 3, 5, 0, -1, 1.5, "4"],
    "data.options.size": [1, 4, 16, 0, -1, "16"],
    "data.augment.crop_padding": [0, 1, 4, -2, 1.5, math.nan, "x"],
    "data.augment.flip": [True, False, 1, "yes"],
    "data.augment.rotation": [0, 10, 360, 1e300, -5, math.nan, math.inf, "x"],
    "data.augment.color_jitter": [0, 0.5, 2, -0.5, math.nan, math.inf, "x"],
    "phases.0.name": ["head", "top", "", "a b", 3, "0"],
    "phases.1.name": ["head", "top", "", 3],
    "phases.0.epochs": NUMBERS,
    "phases.1.epochs": NUMBERS,
    "phases.0.optimizer": names("adam", "adamw", "sgd"),
    "phases.0.lr": NUMBERS + ["auto", 1e-4],
    "phases.1.lr": NUMBERS + ["auto"],
    "phases.0.lr_find": [True, False, 1, "yes"],
    "phases.0.weight_decay": NUMBERS,
    "phases.0.momentum": NUMBERS,
    "phases.1.scheduler": names("constant", "cosine", "linear"),
    "phases.1.warmup": FRACTIONS + [5, 10**6],
    "phases.0.freeze": names("frozen", "none", "top_k", "from_group", "pattern"),
    "phases.1.freeze": names("frozen", "none", "top_k", "from_group", "pattern"),
    "phases.1.freeze_options": [{}, {"k": 1}, {"k": 4}, {"k": 5}, {"group": "block2"}, {"group": "nosuch"},
                                {"regex": "block"}, {"regex": "("}, {"bogus": 1}, "x"],
    "phases.1.freeze_options.k": SMALL + [4, 5, 2**63 - 1],
    "phases.0.bn": names("eval", "train", "frozen"),
    "phases.1.bn_groups": [{}, {"block1": "train"}, {"nosuch": "train"}, {"block1": "nosuch"}, [], "x"],
    "phases.1.lr_mult": [{}, {"block2": 2.0}, {"head": 0.0}, {"nosuch": 1}, {"block2": -1}, {"block2": math.nan},
                         {"block2": "x"}, []],
    "phases.1.layer_decay": NUMBERS,
    "phases.0.early_stop": NUMBERS,
    "phases.0.restore_best": [True, False, 1],
    "train.seed": NUMBERS + [2**32 - 1, 2**32],
    "train.mixed_precision": names("no", "fp16", "bf16", "auto"),
    "train.grad_accum": SMALL + [7, 2**31],
    "train.threads": [0, 1, 2, -1, 1.5, "2", math.nan],
    "train.log_with": [[], ["tensorboard"], ["nosuchtracker"], "tensorboard", [3], ["all"]],
    "train.checkpoint_steps": NUMBERS,
    "train.keep_checkpoints": NUMBERS,
    "train.channels_last": [True, False, 1],
    "train.cache": [True, False, "no"],
    "train.cache_dtype": names("float32", "float16"),
    "train.cache_memory_mb": NUMBERS,
    "eval.metrics": [[], ["accuracy"], ["accuracy", "f1"], ["acuracy"], ["nosuch_metric"], "accuracy", [3]],
    "eval.each_phase": [True, False, 1],
    "bogus": [1], "model.bogus": [1], "phases.0.bogus": [1],
}


# What only loading the data can tell (how many items and classes a source gives, hence whether a carved
# split or a limited train split holds every class): found at setup, before training, exit 2.
DATA_DEPENDENT = re.compile(r"^data: (the \w+ split is empty|class\(es\) with no \w+ examples|"
                            r"source '\w+' gives \d+ class)")


class PastSetup(Exception):
    """Raised by the stand-in for run_phase: the run got past its setup."""


def _stop(*args, **kwargs):
    raise PastSetup


def set_path(raw: dict, key: str, value) -> None:
    node = raw
    parts = key.split(".")
    for p in parts[:-1]:
        node = node[int(p)] if isinstance(node, list) else node.setdefault(p, {})
        if not isinstance(node, (dict, list)):
            return  # an earlier mutation made this a scalar
    if isinstance(node, dict):
        node[parts[-1]] = value


def _validate(path: Path) -> list[str]:
    from tlhub.recipe import load_and_validate
    try:
        load_and_validate(path)
    except UserError as exc:
        return exc.errors or [str(exc)]
    return []


def _setup(path: Path) -> str:
    """'past' or the UserError's message (any other exception propagates: a traceback for the user)."""
    import tlhub
    with mock.patch("tlhub.training.phase.run_phase", _stop):
        try:
            tlhub.run(path, quiet=True)
        except PastSetup:
            return "past"
        except UserError as exc:
            return "\n".join(exc.errors or [str(exc)])
    raise AssertionError("the run finished although every phase was stopped")


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(sorted(FIELDS)).flatmap(lambda k: st.tuples(st.just(k), st.sampled_from(FIELDS[k]))),
                min_size=1, max_size=3))
def test_whatever_validate_accepts_gets_past_setup(mutations):
    raw = copy.deepcopy(BASE)
    raw.setdefault("data", {})["limit"] = 24  # a few items per split: setup in well under a second
    for key, value in mutations:
        set_path(raw, key, value)
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        raw["output"] = {"dir": str(root / "run")}
        path = root / "r.toml"
        try:
            path.write_text(tomli_w.dumps(raw))
        except (TypeError, ValueError):  # e.g. a list of mixed types TOML cannot hold
            return
        os.chdir(root)  # anything written relative to the working directory lands in the temporary folder
        try:
            errors = _validate(path)
            outcome = _setup(path)
        finally:
            os.chdir(cwd)
    event("refused by validate" if errors else "past setup" if outcome == "past" else "refused by the data")
    if errors:
        assert outcome != "past", f"validate rejected {mutations} ({errors}) but the run got past setup"
    elif outcome != "past":
        unforeseen = [line for line in outcome.splitlines() if not DATA_DEPENDENT.match(line)]
        assert not unforeseen, f"validate accepted {mutations} but setup refused it: {outcome}"
