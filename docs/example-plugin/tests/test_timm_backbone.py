"""tlhub-timm-example's own tests: tlhub's contract checks plus what is special about this plugin.

Run them with the plugin installed: ``pip install -e .`` then ``pytest`` in this folder.
The fixtures ``tlhub_run_dir`` and ``tlhub_tiny_source`` come from tlhub's pytest plugin.
"""
from __future__ import annotations

import time

import pytest
import torch

from tlhub.errors import UserError
from tlhub.testing import check_backbone

torch.set_num_threads(1)


def test_registered_without_building_anything():
    import subprocess
    import sys
    code = ("import sys, tlhub.plugins as p; r = p.get_registry(); s = r.get('backbones', 'timm-example'); "
            "print(s.plugin, s.modality, 'timm' in sys.modules, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["timm-example", "image", "False", "False"]


def test_default_model_passes_the_contract():
    bb = check_backbone("timm-example")  # weights="none": random init, no network
    assert bb.group_names == ["stem", "blocks.1", "blocks.2", "blocks.3", "blocks.4"]
    assert bb.feature_dim == 512 and bb.preprocessing.size == 176


@pytest.mark.parametrize("model, args", [("mobilenetv3_small_050", {}), ("test_convnext", {}),
                                         ("test_vit", {"img_size": 64})])
def test_other_architectures_pass_the_contract(model, args):
    bb = check_backbone("timm-example", options={"model": model, "model_args": args})
    assert bb.group_names[0] == "stem" and len(bb.group_names) >= 3


def test_groups_are_views_not_copies():
    """Parameter names stay model.<timm name>, once each; the state dict has no duplicates."""
    import timm
    bb = check_backbone("timm-example")
    reference = timm.create_model("resnet10t", num_classes=0)
    assert sorted(bb.state_dict()) == sorted(f"model.{k}" for k in reference.state_dict())


def test_unknown_model_and_bad_model_args_are_user_errors():
    from tlhub_timm_example import build
    with pytest.raises(UserError, match="did you mean 'resnet10t'"):
        build("none", {"model": "resnet10", "model_args": {}})
    with pytest.raises(UserError, match="model_args"):
        build("none", {"model": "resnet10t", "model_args": {"img_size": 3}})


def test_pretrained_offline_fails_fast(monkeypatch, tmp_path):
    from tlhub_timm_example import build
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("TLHUB_OFFLINE", "1")
    t0 = time.time()
    with pytest.raises(UserError, match="not in the local cache and offline mode is set"):
        build("pretrained", {"model": "resnet10t", "model_args": {}})
    assert time.time() - t0 < 10


def _fake_hf_cache(root, repo_id: str, state) -> None:
    """The layout huggingface_hub writes: models--org--name/{refs/main, snapshots/<rev>/model.safetensors}."""
    from safetensors.torch import save_file
    repo = root / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0" * 40)
    snap = repo / "snapshots" / ("0" * 40)
    snap.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(snap / "model.safetensors"))


def test_pretrained_loads_from_the_cache_without_network(monkeypatch, tmp_path):
    import timm
    from tlhub_timm_example import build
    reference = timm.create_model("resnet10t")  # stands in for the downloaded ImageNet weights
    cfg = timm.models.get_pretrained_cfg("resnet10t")
    _fake_hf_cache(tmp_path / "hub", cfg.hf_hub_id, reference.state_dict())
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("TLHUB_OFFLINE", "1")
    bb = build("pretrained", {"model": "resnet10t", "model_args": {}})
    assert torch.equal(bb.model.conv1[0].weight, reference.conv1[0].weight)


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_local_checkpoint(tmp_path, suffix):
    import timm
    from safetensors.torch import save_file
    from tlhub_timm_example import build
    reference = timm.create_model("resnet10t")
    path = tmp_path / f"weights{suffix}"
    if suffix == ".safetensors":
        save_file(reference.state_dict(), str(path))
    else:
        torch.save(reference.state_dict(), path)
    bb = build(str(path), {"model": "resnet10t", "model_args": {}})
    assert torch.equal(bb.model.layer4[0].conv1.weight, reference.layer4[0].conv1.weight)
    torch.save(timm.create_model("resnet18").state_dict(), tmp_path / "other.pth")
    with pytest.raises(UserError, match="cannot load weights"):
        build(str(tmp_path / "other.pth"), {"model": "resnet10t", "model_args": {}})


def test_a_recipe_trains_in_process(tlhub_tiny_source, tlhub_run_dir, tmp_path):
    import tlhub
    recipe = tmp_path / "timm.toml"
    recipe.write_text(f'''
[model]
backbone = "timm-example"
weights = "none"
backbone_options = {{ model = "resnet10t" }}

[data]
source = "{tlhub_tiny_source}"
image_size = 32
batch_size = 8

[[phases]]
name = "head"
epochs = 1
lr = 0.01

[[phases]]
name = "top"
epochs = 1
lr = 0.001
freeze = "top_k"
freeze_options = {{ k = 2 }}

[train]
threads = 1

[output]
dir = "{tlhub_run_dir}"
''')
    result = tlhub.run(recipe, quiet=True)
    assert [row["phase"] for row in result.history] == ["head", "top"]
    assert (tlhub_run_dir / "model" / "model.safetensors").is_file()
