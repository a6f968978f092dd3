"""Freeze policies and BatchNorm modes: frozen means no grad AND fixed running statistics."""
from __future__ import annotations

import pytest
import torch

from tlhub import plugins
from tlhub.errors import UserError
from tlhub.model import TransferModel, apply_phase, frozen_prefix
from tlhub.options import resolve_options


def tiny_model(width=4):
    reg = plugins.get_registry()
    bb = reg.get("backbones", "tiny-cnn").build("none", {"width": width})
    return TransferModel(bb, torch.nn.Linear(bb.feature_dim, 3))


def trainable_for(model, name, **options):
    spec = plugins.get_registry().get("freeze-policies", name)
    opts, errs = resolve_options("o", options, spec.options)
    assert not errs
    return spec.build(opts).trainable(model.backbone.param_groups())


def groups_trained(model, trainable):
    return [g for g, params in model.backbone.param_groups() if set(params) <= trainable and params]


@pytest.mark.parametrize("name,options,expected", [
    ("frozen", {}, []),
    ("none", {}, ["stem", "block1", "block2", "head_conv"]),
    ("top_k", {"k": 1}, ["head_conv"]),
    ("top_k", {"k": 3}, ["block1", "block2", "head_conv"]),
    ("top_k", {"k": 4}, ["stem", "block1", "block2", "head_conv"]),
    ("from_group", {"group": "block2"}, ["block2", "head_conv"]),
])
def test_group_policies(name, options, expected):
    model = tiny_model()
    assert groups_trained(model, trainable_for(model, name, **options)) == expected


def test_pattern_policy_selects_by_parameter_name():
    model = tiny_model()
    t = trainable_for(model, "pattern", regex=r"\.1\.(weight|bias)$")  # only the BatchNorm affine params
    assert t and all(n.endswith((".1.weight", ".1.bias")) for n in t)


def test_bad_policy_options():
    model = tiny_model()
    with pytest.raises(UserError, match="did you mean 'block2'"):
        trainable_for(model, "from_group", group="blok2")
    with pytest.raises(UserError, match="not a valid regular expression"):
        trainable_for(model, "pattern", regex="(")
    spec = plugins.get_registry().get("freeze-policies", "top_k")
    assert resolve_options("phases.0.freeze_options", {}, spec.options)[1] == [
        "phases.0.freeze_options.k: required option is missing (number of top groups to train)"]


def _snapshot(model):
    state = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    return state


def _train_steps(model, steps=5):
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    torch.manual_seed(0)
    for _ in range(steps):
        model.train()  # must not undo frozen/eval BatchNorm
        x = torch.randn(8, 3, 16, 16) * 3 + 1
        loss = torch.nn.functional.cross_entropy(model(x), torch.randint(0, 3, (8,)))
        opt.zero_grad()
        loss.backward()
        opt.step()


@pytest.mark.parametrize("bn", ["eval", "train", "frozen"])
def test_frozen_groups_bit_identical_and_bn_modes(bn):
    model = tiny_model()
    audit = apply_phase(model, trainable_for(model, "top_k", k=2), bn, {})
    assert [g.bn_mode for g in audit] == ["frozen", "frozen", bn, bn]
    before = _snapshot(model)
    _train_steps(model)
    after = model.backbone.state_dict()
    for key, value in before.items():
        group = {"0": "stem", "1": "block1", "2": "block2", "3": "head_conv"}[key.split(".")[1]]
        same = torch.equal(value, after[key])
        if group in ("stem", "block1"):  # frozen: weights AND running statistics unchanged
            assert same, key
        elif "running" in key:
            assert same == (bn != "train"), key  # eval/frozen keep statistics, train updates them
        elif ".1." in key and key.endswith(("weight", "bias")):
            assert same == (bn == "frozen"), key  # BN affine trains unless 'frozen'
        elif key.endswith("weight") and ".0." in key:
            assert not same, key  # conv weights of trainable groups move


def test_bn_groups_override_and_frozen_prefix():
    model = tiny_model()
    audit = apply_phase(model, trainable_for(model, "top_k", k=2), "eval", {"head_conv": "train"})
    assert [g.bn_mode for g in audit] == ["frozen", "frozen", "eval", "train"]
    assert frozen_prefix(audit) == 2
    audit = apply_phase(model, trainable_for(model, "frozen"), "eval", {})
    assert frozen_prefix(audit) == 4
    with pytest.raises(UserError, match="no group 'nope'"):
        apply_phase(model, set(), "eval", {"nope": "train"})


def test_param_groups_cover_every_parameter_once():
    model = tiny_model()
    names = [p for _, ps in model.backbone.param_groups() for p in ps]
    assert sorted(names) == sorted(n for n, _ in model.backbone.named_parameters())
    assert len(names) == len(set(names))
