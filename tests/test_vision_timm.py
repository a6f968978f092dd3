"""The built-in ``timm`` backbone of tlhub-vision: groups from timm's group_matcher, weights from the
Hugging Face cache, the Hub (when online) or a local file, and a clear offline error."""
from __future__ import annotations

import json
import time

import pytest
import torch
from click.testing import CliRunner

import tlhub.plugins as plugins
from tlhub.errors import UserError
from tlhub.testing import check_backbone

timm = pytest.importorskip("timm")
torch.set_num_threads(1)
SMALL = "resnet10t"  # 5M parameters, built without weights in every test


def build(weights: str, model: str = SMALL, **args):
    from tlhub_vision.timm_models import build_timm
    return build_timm(weights, {"model": model, "model_args": args})


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """Empty Hugging Face and torch hub caches, and no way to the network."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    monkeypatch.setenv("TLHUB_OFFLINE", "1")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # tests/conftest.py sets it; each test picks one
    return tmp_path


def test_registered_by_tlhub_vision_and_listed():
    spec = plugins.get_registry().get("backbones", "timm")
    assert spec.plugin == "vision" and spec.modality == "image" and spec.default_weights == "imagenet"
    from tlhub.cli import cli
    res = CliRunner().invoke(cli, ["list", "backbones"])
    assert res.exit_code == 0
    assert any(line.split()[:2] == ["timm", "vision"] for line in res.output.splitlines()), res.output


def test_model_option_is_required():
    spec = plugins.get_registry().get("backbones", "timm")
    with pytest.raises(UserError, match="model.backbone_options.model"):
        plugins.get_registry().resolve("backbones", "timm", {}, "model.backbone_options")
    assert {o.name for o in spec.options} == {"model", "model_args"}


def test_contract_and_group_names_from_group_matcher():
    bb = check_backbone("timm", options={"model": SMALL})
    assert bb.group_names == ["stem", "blocks.1", "blocks.2", "blocks.3", "blocks.4"]
    assert bb.feature_dim == 512 and bb.preprocessing.size == 176  # from timm's pretrained_cfg
    reference = timm.create_model(SMALL, num_classes=0)
    assert sorted(bb.state_dict()) == sorted(f"model.{k}" for k in reference.state_dict())


@pytest.mark.parametrize("model, args", [("test_convnext", {}), ("test_vit", {"img_size": 64}),
                                         ("mobilenetv3_small_050", {})])
def test_other_architectures(model, args):
    bb = check_backbone("timm", options={"model": model, "model_args": args})
    assert bb.group_names[0] == "stem" and len(bb.group_names) >= 3


def test_unknown_model_and_bad_model_args():
    with pytest.raises(UserError, match="did you mean 'resnet10t'"):
        build("none", model="resnet10")
    with pytest.raises(UserError, match="model_args"):
        build("none", img_size=3)


@pytest.mark.parametrize("env", ["TLHUB_OFFLINE", "HF_HUB_OFFLINE"])
def test_pretrained_offline_fails_fast(offline, monkeypatch, env):
    monkeypatch.delenv("TLHUB_OFFLINE")
    monkeypatch.setenv(env, "1")
    t0 = time.monotonic()
    with pytest.raises(UserError) as exc:
        build("imagenet")
    assert time.monotonic() - t0 < 10
    msg = str(exc.value)
    assert f"{env} is set" in msg and "timm/resnet10t" in msg and 'model.weights = "path/to/' in msg


def test_offline_error_exits_2_at_validate(offline, tmp_path, tlhub_tiny_source):
    from tlhub.cli import cli
    recipe = tmp_path / "r.toml"
    recipe.write_text(f'[model]\nbackbone = "timm"\nbackbone_options = {{ model = "{SMALL}" }}\n'
                      f'[data]\nsource = "{tlhub_tiny_source}"\n[[phases]]\nname = "head"\nepochs = 1\n'
                      f'[output]\ndir = "{tmp_path / "run"}"\n')
    res = CliRunner().invoke(cli, ["run", str(recipe)])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert "not in the local cache and cannot be downloaded" in res.output


def _fake_hf_cache(root, repo_id: str, state) -> None:
    """The layout huggingface_hub writes: models--org--name/{refs/main, snapshots/<rev>/model.safetensors}."""
    from safetensors.torch import save_file
    repo = root / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0" * 40)
    snap = repo / "snapshots" / ("0" * 40)
    snap.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(snap / "model.safetensors"))


def test_pretrained_from_the_hf_cache_without_network(offline):
    torch.manual_seed(3)
    reference = timm.create_model(SMALL)  # stands in for the downloaded ImageNet weights
    _fake_hf_cache(offline / "hf", timm.models.get_pretrained_cfg(SMALL).hf_hub_id, reference.state_dict())
    bb = build("imagenet")
    assert torch.equal(bb.model.conv1[0].weight, reference.conv1[0].weight)


def test_online_path_asks_timm_to_download(monkeypatch, offline):
    """Online and not cached: timm.create_model(pretrained=True) with no file overlay (timm downloads)."""
    from tlhub_vision import timm_models
    monkeypatch.delenv("TLHUB_OFFLINE")
    monkeypatch.setattr(timm_models, "offline_reason", lambda host: None)  # the probe says: reachable
    seen = {}
    real = timm.create_model

    def fake_create(name, **kw):
        seen.update(kw)
        return real(name, num_classes=0)
    monkeypatch.setattr(timm, "create_model", fake_create)
    build("imagenet")
    assert seen["pretrained"] is True and "pretrained_cfg_overlay" not in seen


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_local_weights_file(tmp_path, suffix):
    from safetensors.torch import save_file
    torch.manual_seed(5)
    reference = timm.create_model(SMALL)  # with its classifier: dropped when loading
    path = tmp_path / f"weights{suffix}"
    if suffix == ".safetensors":
        save_file(reference.state_dict(), str(path))
    else:
        torch.save(reference.state_dict(), path)
    bb = build(str(path))
    assert torch.equal(bb.model.layer4[0].conv1.weight, reference.layer4[0].conv1.weight)


def test_bad_weights_files(tmp_path):
    torch.save(timm.create_model("resnet18").state_dict(), tmp_path / "other.pth")
    with pytest.raises(UserError, match="do not fit this architecture"):
        build(str(tmp_path / "other.pth"))
    with pytest.raises(UserError, match="not found"):
        build(str(tmp_path / "missing.pth"))
    torch.save({"model": torch.nn.Linear(2, 2)}, tmp_path / "pickled.pth")  # a module, not tensors
    with pytest.raises(UserError, match="weights_only=True"):
        build(str(tmp_path / "pickled.pth"))


def test_a_recipe_trains(tlhub_tiny_source, tlhub_run_dir, tmp_path):
    import tlhub
    recipe = tmp_path / "timm.toml"
    recipe.write_text(f'''
[model]
backbone = "timm"
weights = "none"
backbone_options = {{ model = "{SMALL}" }}

[data]
source = "{tlhub_tiny_source}"
image_size = 32
batch_size = 8

[[phases]]
name = "head"
epochs = 1
lr = 0.01
freeze = "frozen"

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
    # not staged: the frozen backbone's pooled features are cached, a frozen prefix is not (it saves nothing)
    log = (tlhub_run_dir / "run.log").read_text()
    assert "cache: pooled features" in log
    assert "cache: none (this backbone runs its groups in one pass" in log
    plan = json.loads((tlhub_run_dir / "plan.json").read_text())
    assert [p["cache"]["pooled"] for p in plan["phases"]] == [True, False]
    assert [p["cache"]["groups"] for p in plan["phases"]] == [5, 0]


def test_unknown_model_is_caught_by_validate(tmp_path):
    from tlhub.cli import cli
    recipe = tmp_path / "r.toml"
    recipe.write_text('[model]\nbackbone = "timm"\nbackbone_options = { model = "convnext_tinyy" }\n'
                      '[data]\nsource = "synthetic"\n[[phases]]\nname = "head"\n')
    res = CliRunner().invoke(cli, ["validate", str(recipe)])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert "unknown timm model 'convnext_tinyy' (did you mean 'convnext_tiny'" in res.output
