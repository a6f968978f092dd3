"""tlhub.testing: the contract checks pass on real components and fail clearly on broken ones."""
from __future__ import annotations

import random

import pytest
import torch
from torch import nn

from tlhub import plugins
from tlhub.hookspecs import hookimpl
from tlhub.interfaces import Backbone, ImagePreprocessing, SequentialBackbone, SourceData, Split
from tlhub.options import Opt
from tlhub.policy import FreezePolicy
from tlhub.pytest_plugin import tlhub_run_dir, tlhub_tiny_dataset, tlhub_tiny_source  # noqa: F401 (fixtures)
from tlhub.registry import BackboneSpec, DataSourceSpec, FreezePolicySpec, HeadSpec
from tlhub.testing import (EXAMPLE_GROUPS, check_backbone, check_data_source, check_freeze_policy, check_head,
                           registered)

POLICY_OPTIONS = {"top_k": {"k": 2}, "from_group": {"group": "blocks.1"}, "pattern": {"regex": r"\.bias$"}}


def _registered(kind: str, plugin: str | None = None) -> list[str]:
    reg = plugins.get_registry()
    names = [n for n in reg.names(kind) if plugin is None or reg.get(kind, n).plugin == plugin]
    plugins.reset()
    return names


# ------------------------------------------------------------------ real components pass

@pytest.mark.parametrize("name", _registered("backbones", "tiny"))
def test_tiny_plugin_backbones_pass(name):
    bb = check_backbone(name)
    assert isinstance(bb, Backbone)


def test_tiny_backbone_with_options_and_custom_input():
    bb = check_backbone("tiny-cnn", options={"width": 4}, input=torch.randn(3, 3, 24, 24))
    assert bb.feature_dim == 8


@pytest.mark.parametrize("name", _registered("heads", "tlhub.plugins.builtins.heads"))
def test_builtin_heads_pass(name):
    check_head(name)


def test_mlp_head_options():
    head = check_head("mlp", options={"hidden": [8, 4], "activation": "gelu"}, in_features=5, num_classes=7)
    assert head(torch.randn(2, 5)).shape == (2, 7)


@pytest.mark.parametrize("name", _registered("freeze-policies", "tlhub.plugins.builtins.freeze_policies"))
def test_builtin_freeze_policies_pass(name):
    trainable = check_freeze_policy(name, POLICY_OPTIONS.get(name))
    every = [p for _, params in EXAMPLE_GROUPS for p in params]
    expected = {"frozen": set(), "none": set(every),
                "top_k": set(EXAMPLE_GROUPS[-2][1] + EXAMPLE_GROUPS[-1][1]),
                "from_group": {p for _, params in EXAMPLE_GROUPS[2:] for p in params},
                "pattern": {p for p in every if p.endswith(".bias")}}
    assert trainable == expected[name]


def test_tiny_plugin_data_source_passes(tmp_path):
    data = check_data_source("synthetic", {"classes": 3, "per_class": 5}, tmp_path)
    assert len(data.classes) == 3 and len(data.train) == 15


def test_required_option_missing_is_a_clear_failure():
    with pytest.raises(AssertionError, match=r"freeze policy 'top_k'.*required option is missing"):
        check_freeze_policy("top_k")


def test_unknown_name_says_how_to_install():
    with pytest.raises(AssertionError, match="is the plugin installed"):
        check_backbone("no-such-backbone")


def test_text_backbone_passes(tmp_path):
    pytest.importorskip("transformers")
    testing = pytest.importorskip("tlhub_text.testing")
    if "hf" not in _registered("backbones", "text"):
        pytest.skip("tlhub-text is not installed")
    folder = testing.save_tiny_model(tmp_path / "tiny-bert")
    bb = check_backbone("hf", weights="pretrained", options={"model": str(folder), "max_length": 16})
    assert bb.modality == "text" and bb.feature_dim == 32


# ------------------------------------------------------------------ broken components fail clearly

def _spec(build, name="broken", **kw) -> BackboneSpec:
    return BackboneSpec(name, "a deliberately broken backbone", "image", build, **kw)


def _stages(width=4):
    return [("stem", nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU())),
            ("block", nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.ReLU()))]


def _pool():
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())


PREP = ImagePreprocessing((0.5,) * 3, (0.5,) * 3, 16)


def test_good_reference_backbone_passes():
    check_backbone(_spec(lambda w, o: SequentialBackbone(_stages(), _pool(), 4, PREP)))


def test_group_missing_a_parameter_fails():
    class Leaky(SequentialBackbone):
        def __init__(self):
            super().__init__(_stages(), _pool(), 4, PREP)
            self.scale = nn.Parameter(torch.ones(()))  # used in forward, but in no group

        def pool(self, state):
            return super().pool(state) * self.scale

    with pytest.raises(AssertionError, match=r"backbone 'broken': 1 parameter\(s\) are in no group: scale"):
        check_backbone(_spec(lambda w, o: Leaky()))


def test_parameter_in_two_groups_fails():
    class Twice(SequentialBackbone):
        def groups(self):
            return super().groups() + [("again", self.stages[0])]

        def run_group(self, index, state):
            return state if index == 2 else super().run_group(index, state)

    with pytest.raises(AssertionError, match=r"in more than one group: stages\.0\.0\.bias in stem, again"):
        check_backbone(_spec(lambda w, o: Twice(_stages(), _pool(), 4, PREP)))


def test_wrong_feature_dim_fails():
    with pytest.raises(AssertionError, match=r"forward gave features of shape \(2, 4\), expected .* \(2, 7\)"):
        check_backbone(_spec(lambda w, o: SequentialBackbone(_stages(), _pool(), 7, PREP)))


def test_missing_preprocessing_fails():
    with pytest.raises(AssertionError, match="preprocessing must be a ImagePreprocessing"):
        check_backbone(_spec(lambda w, o: SequentialBackbone(_stages(), _pool(), 4, None)))


def test_modality_mismatch_fails():
    spec = BackboneSpec("broken", "x", "text", lambda w, o: SequentialBackbone(_stages(), _pool(), 4, PREP))
    with pytest.raises(AssertionError, match="descriptor says modality 'text'"):
        check_backbone(spec)


def test_staged_execution_that_differs_from_forward_fails():
    class Skips(SequentialBackbone):
        def run_group(self, index, state):
            return state if index == 1 else super().run_group(index, state)  # forward does not skip

        def forward(self, x):
            return self.pool(self.stages[1](self.stages[0](x)))

    with pytest.raises(AssertionError, match=r"running groups \[0, 0\) then \[0, 2\) and pool\(\) does not equal"):
        check_backbone(_spec(lambda w, o: Skips(_stages(), _pool(), 4, PREP)))


def test_partial_ranges_not_implemented_fails():
    class Whole(SequentialBackbone):
        def run_groups(self, state, start=0, stop=None):
            if (start, stop) not in ((0, None), (0, 2)):
                raise NotImplementedError("only whole")
            return super().run_groups(state, start, stop)

    with pytest.raises(AssertionError, match="raised NotImplementedError"):
        check_backbone(_spec(lambda w, o: Whole(_stages(), _pool(), 4, PREP)))


def test_unused_parameter_fails():
    class Dead(SequentialBackbone):
        def __init__(self):
            stages = _stages()
            stages[1][1].register_parameter("unused", nn.Parameter(torch.zeros(1)))
            super().__init__(stages, _pool(), 4, PREP)

    with pytest.raises(AssertionError, match=r"group 'block': no gradient reaches 1 parameter\(s\) \(stages\.1\.unused\)"):
        check_backbone(_spec(lambda w, o: Dead()))


def test_not_a_backbone_and_bad_options_fail():
    with pytest.raises(AssertionError, match="not a tlhub.interfaces.Backbone"):
        check_backbone(_spec(lambda w, o: nn.Linear(2, 2)))
    spec = _spec(lambda w, o: None, options=(Opt("depth", int, "three", "depth"),))
    with pytest.raises(AssertionError, match="option 'depth' default: expected an integer"):
        check_backbone(spec)


def test_broken_head_fails():
    spec = HeadSpec("wrong", "ignores num_classes", lambda i, n, o: nn.Linear(i, 5))
    with pytest.raises(AssertionError, match=r"head 'wrong': build\(16, 2, options\) gave logits of shape \(4, 5\), expected \(4, 2\)"):
        check_head(spec)


def test_broken_freeze_policies_fail():
    class Invents(FreezePolicy):
        def trainable(self, groups):
            return {"not.a.param"}

    class Dice(FreezePolicy):
        def trainable(self, groups):
            return {p for _, params in groups for p in params if random.random() < 0.5}

    class Mutates(FreezePolicy):
        def trainable(self, groups):
            groups.pop()
            return set()

    with pytest.raises(AssertionError, match="names that are not parameters of the groups: not.a.param"):
        check_freeze_policy(FreezePolicySpec("invents", "x", lambda o: Invents()))
    random.seed(0)
    with pytest.raises(AssertionError, match="not deterministic|choose different"):
        check_freeze_policy(FreezePolicySpec("dice", "x", lambda o: Dice()))
    with pytest.raises(AssertionError, match="modified the groups"):
        check_freeze_policy(FreezePolicySpec("mutates", "x", lambda o: Mutates()))
    with pytest.raises(AssertionError, match="must return a set"):
        check_freeze_policy(FreezePolicySpec("list", "x", lambda o: type("L", (FreezePolicy,), {
            "trainable": lambda self, g: [p for _, ps in g for p in ps]})()))


def test_broken_data_sources_fail(tmp_path):
    def source(data, modality="image"):
        return DataSourceSpec("bad", "x", modality, lambda o, c: data)

    img = torch.zeros(3, 8, 8).numpy().astype("uint8")
    with pytest.raises(AssertionError, match="gives 1 class"):
        check_data_source(source(SourceData(["a"], train=Split([img], [0]))), tmp_path=tmp_path)
    with pytest.raises(AssertionError, match=r"labels that are not integers in \[0, 2\): 2"):
        check_data_source(source(SourceData(["a", "b"], train=Split([img, img], [0, 2]))))
    with pytest.raises(AssertionError, match="2 items but 1 labels"):
        check_data_source(source(SourceData(["a", "b"], train=Split([img, img], [0]))))
    with pytest.raises(AssertionError, match=r"expected a str .*for a text source"):
        check_data_source(source(SourceData(["a", "b"], train=Split([img, img], [0, 1])), "text"))
    with pytest.raises(AssertionError, match="path that does not exist"):
        check_data_source(source(SourceData(["a", "b"], train=Split(["nope.png", "x.png"], [0, 1]))))
    with pytest.raises(AssertionError, match="no training examples"):
        check_data_source(source(SourceData(["a", "b"], test=Split([img], [0]))))


# ------------------------------------------------------------------ registered(), the hooks, the fixtures

class HeadsAndPolicies:
    """A plugin object implementing the two hooks the tiny test plugin does not."""

    @hookimpl
    def register_heads(self, register):
        register(HeadSpec("bilinear-ish", "two linear layers, no activation",
                          lambda i, n, o: nn.Sequential(nn.Linear(i, o["width"]), nn.Linear(o["width"], n)),
                          options=(Opt("width", int, 6, "hidden width"),)))

    @hookimpl
    def register_freeze_policies(self, register):
        register(FreezePolicySpec("first_only", "only the first group trains",
                                  lambda o: type("First", (FreezePolicy,), {
                                      "trainable": lambda self, g: set(g[0][1]) if g else set()})()))


def test_registered_plugin_object_register_heads_and_freeze_policies():
    with registered(HeadsAndPolicies()) as reg:
        assert reg.get("heads", "bilinear-ish").plugin == "HeadsAndPolicies-0"
        check_head("bilinear-ish", {"width": 3})
        assert check_freeze_policy("first_only") == set(EXAMPLE_GROUPS[0][1])
        info = [i for i in plugins.plugin_infos() if i.name == "HeadsAndPolicies-0"][0]
        assert info.hooks == ("register_freeze_policies", "register_heads")
    assert "bilinear-ish" not in plugins.get_registry().names("heads")


def test_registered_backbone_module_like_plugin():
    import types
    mod = types.ModuleType("my_plugin")

    @hookimpl
    def register_backbones(register):
        register(_spec(lambda w, o: SequentialBackbone(_stages(), _pool(), 4, PREP), name="mine"))
    mod.register_backbones = register_backbones
    with registered(mod):
        assert check_backbone("mine").group_names == ["stem", "block"]


def test_fixtures(tlhub_tiny_dataset, tlhub_run_dir, tmp_path):
    assert tlhub_run_dir.is_dir() and not any(tlhub_run_dir.iterdir()) and tlhub_run_dir.parent == tmp_path
    data = check_data_source(DataSourceSpec("fixture", "x", "image", lambda o, c: tlhub_tiny_dataset))
    assert data.classes == ["class0", "class1", "class2"] and len(data.train) == 24


def test_tiny_source_fixture_runs_a_recipe(tlhub_tiny_source, tlhub_run_dir, write_recipe):
    import tlhub
    recipe = write_recipe(f'''
[model]
backbone = "tiny-cnn"
[data]
source = "{tlhub_tiny_source}"
batch_size = 8
[[phases]]
epochs = 1
lr = 0.01
[output]
dir = "{tlhub_run_dir}"
''')
    result = tlhub.run(recipe, quiet=True)
    assert 0.0 <= result.metrics["accuracy"] <= 1.0
    assert (tlhub_run_dir / "metrics.json").is_file()
