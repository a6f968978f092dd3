"""Random and mutated recipes: every outcome is a valid recipe or tlhub's UserError, nothing else."""
from __future__ import annotations

import re
import tomllib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import REPO
from tlhub import plugins
from tlhub.errors import UserError
from tlhub.recipe import apply_overrides, parse_recipe, validate

BASE = tomllib.loads((REPO / "tests" / "recipes" / "tiny.toml").read_text())
REGISTRY = None

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                    st.text(max_size=12), st.lists(st.integers(-3, 300), max_size=3))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                      max_leaves=8)
KEYS = ["model.backbone", "model.head", "model.weights", "model.head_options", "model.head_options.hidden",
        "data.source", "data.batch_size", "data.val_split", "data.test_split", "data.augment", "data.test",
        "data.options", "data.options.classes", "phases", "phases.0", "phases.0.epochs", "phases.0.lr",
        "phases.1.freeze", "phases.1.freeze_options", "phases.1.freeze_options.k", "phases.0.bn",
        "phases.0.bn_groups", "phases.0.lr_mult", "phases.1.scheduler", "train", "train.seed", "eval.metrics",
        "output", "bogus", "model.bogus", "phases.0.bogus"]


def check(raw) -> None:
    global REGISTRY
    REGISTRY = REGISTRY or plugins.get_registry()
    try:
        errors: list[str] = []
        recipe = parse_recipe(raw, errors=errors)
        errors += validate(recipe, REGISTRY)
        if errors:
            raise UserError(errors=errors)
    except UserError as exc:
        assert exc.errors and all(isinstance(e, str) and e for e in exc.errors)


def set_path(raw, key, value):
    node = raw
    parts = key.split(".")
    for p in parts[:-1]:
        nxt = node[int(p)] if isinstance(node, list) and p.isdigit() and int(p) < len(node) else (
            node.get(p) if isinstance(node, dict) else None)
        if not isinstance(nxt, (dict, list)):
            return
        node = nxt
    last = parts[-1]
    if isinstance(node, dict):
        node[last] = value
    elif isinstance(node, list) and last.isdigit() and int(last) < len(node):
        node[int(last)] = value


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(KEYS), values), min_size=1, max_size=4))
def test_mutated_recipes(mutations):
    import copy
    raw = copy.deepcopy(BASE)
    for key, value in mutations:
        set_path(raw, key, value)
    check(raw)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=10), values, max_size=5))
def test_random_tables(raw):
    check(raw)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=30), max_size=4))
def test_random_overrides(items):
    try:
        raw = apply_overrides(BASE, items)
    except UserError:
        return
    check(raw)


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=200))
def test_random_toml_text(text):
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return
    check(raw)


def test_no_pickle_and_no_unsafe_torch_load_in_the_code():
    sources = [p for p in list((REPO / "tlhub").rglob("*.py")) + list((REPO / "plugins").rglob("*.py"))
               if ".egg-info" not in str(p)]
    assert len(sources) > 20
    for path in sources:
        text = path.read_text()
        assert not re.search(r"^\s*(import pickle|from pickle|import dill|import cloudpickle)", text, re.M), path
        for m in re.finditer(r"torch\.load\(", text):
            depth, i = 1, m.end()
            while depth and i < len(text):  # the whole argument list, nested parentheses included
                depth += {"(": 1, ")": -1}.get(text[i], 0)
                i += 1
            assert "weights_only=True" in text[m.end():i], (path, text[m.start():i])
