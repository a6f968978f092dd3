"""Device placement, checked without a GPU: the run's device is PyTorch's "lazy" device (TorchScript's
lazy-tensor backend, in every CPU build), where an op that meets a CPU tensor fails at once, and a
TorchFunctionMode records the device of every tensor every op sees. Every tensor that meets the model
(cache fill, training, validation, test scoring, predict) must be on the model's device."""
from __future__ import annotations

import functools
import json
import os

import pytest
import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

import tlhub


@functools.cache
def _lazy_backend() -> str:
    """"" when the backend works, else why not; initialised once per process (a second init fails)."""
    try:
        import torch._lazy.ts_backend
        torch._lazy.ts_backend.init()
        torch.zeros(1, device="lazy")
    except Exception as exc:  # noqa: BLE001 - a torch build without the TorchScript lazy backend
        return str(exc)
    return ""


def _lazy_device():
    if _lazy_backend():
        pytest.skip(f"PyTorch's lazy-tensor backend is not available here: {_lazy_backend()}")
    return torch.device("lazy")


MOVES = {"to", "copy_", "set_", "_has_compatible_shallow_copy_type", "__set__", "__get__"}  # moving is not mixing


class DeviceLog(TorchFunctionMode):
    """Records the device types each op's tensors are on; mixing the model's device with a CPU tensor of
    more than one element is an error (0-dim CPU scalars may meet any device, as in PyTorch)."""

    def __init__(self, device: str):
        super().__init__()
        self.device, self.seen, self.mixed = device, {}, []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        tensors = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        kinds = {t.device.type for t in tensors if t.dim() > 0 or t.device.type != "cpu"}
        name = getattr(func, "__name__", str(func))
        if len(kinds) > 1 and name not in MOVES:
            self.mixed.append(f"{name}: {sorted(kinds)}")
        self.seen.setdefault(name, set()).update(kinds)
        return func(*args, **kwargs)


@pytest.fixture
def on_lazy(monkeypatch):
    """Accelerate's device is the lazy device: prepare() moves the model and batches there."""
    from accelerate import Accelerator
    device = _lazy_device()
    monkeypatch.setattr(Accelerator, "device", property(lambda self: device))
    return device


def test_every_tensor_meets_the_model_on_its_device(tiny_recipe, tmp_path, on_lazy, monkeypatch):
    log = DeviceLog("lazy")
    with log:
        # phase 1 caches pooled features before the model is prepared, phase 2 the state after 2 groups
        # with the model already on the device; the test split is scored after training.
        result = tlhub.run(tiny_recipe, ["phases.head.epochs=1", "phases.top.epochs=1", "data.batch_size=32",
                                         "eval.metrics=['accuracy']"], quiet=True)
    assert not log.mixed, sorted(set(log.mixed))[:10]
    assert [r["train_input"] for r in result.history] == ["pooled-cache", "cache-after-2-groups"]
    # every convolution (the cache fills included) and the head ran on the device, never on the CPU
    assert log.seen["conv2d"] == {"lazy"} and log.seen["linear"] == {"lazy"}
    assert result.metrics["test_examples"] == 16

    predictor = tlhub.load(result.run_dir, device="lazy")
    monkeypatch.setattr(torch, "inference_mode", torch.no_grad)  # lazy tensors have no inference-mode views
    with DeviceLog("lazy") as plog:
        probs = predictor.predict_proba([torch.rand(3, 16, 16) for _ in range(3)])
    assert probs.shape == (3, 4) and not plog.mixed and plog.seen["conv2d"] == {"lazy"}


def test_mixed_precision_covers_the_cache_fill(tiny_recipe, monkeypatch):
    """bf16 autocast (CPU) runs the frozen prefix during the cache fill; the cache stores train.cache_dtype."""
    from tlhub.training import cache

    dtypes, stored = [], []
    real = cache.build_cache

    def spy(model, *args, **kwargs):
        hook = model.backbone.stages[0].register_forward_hook(lambda m, i, out: dtypes.append(out.dtype))
        try:
            ds = real(model, *args, **kwargs)
        finally:
            hook.remove()
        first = ds[0][0]
        stored.append(str(getattr(first, "features", first).dtype))
        stored.extend(str(a.dtype) for a in getattr(getattr(ds, "rows", None), "arrays", ()))
        return ds

    monkeypatch.setattr("tlhub.training.phase.build_cache", spy)
    result = tlhub.run(tiny_recipe, ["phases.head.epochs=1", "phases.top.epochs=1", "train.mixed_precision='bf16'",
                                     "train.cache_dtype='float16'"], quiet=True)
    assert dtypes and set(dtypes) == {torch.bfloat16}  # the frozen prefix ran under autocast
    assert set(stored) == {"torch.float32", "float16"}  # stored float16, read back float32
    assert all(r["train_loss"] == r["train_loss"] for r in result.history)  # finite, not nan


def test_gpu_kernels_follow_train_deterministic(monkeypatch):
    """On a GPU the run switches cuDNN/cuBLAS to deterministic kernels (or back, for speed); on a CPU it
    leaves the process-wide switches alone."""
    from tlhub.training.trainer import _kernels
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    before = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark,
              torch.are_deterministic_algorithms_enabled())
    try:
        _kernels(torch.device("cpu"), True)
        assert (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark,
                torch.are_deterministic_algorithms_enabled()) == before
        _kernels(torch.device("cuda", 0), True)
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
        assert torch.are_deterministic_algorithms_enabled() and torch.is_deterministic_algorithms_warn_only_enabled()
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
        _kernels(torch.device("cuda", 0), False)
        assert not torch.backends.cudnn.deterministic and torch.backends.cudnn.benchmark
        assert not torch.are_deterministic_algorithms_enabled()
    finally:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = before[:2]
        torch.use_deterministic_algorithms(before[2])


def test_auto_search_runs_on_the_model_device(tiny_recipe, on_lazy, monkeypatch):
    """freeze = "auto" measures its costs, runs its trials and trains the winner on the model's device."""
    with DeviceLog("lazy") as log:
        result = tlhub.run(tiny_recipe, ["data.options.per_class=10", "phases.0.freeze=auto", "phases.0.lr=0.03",
                                         "data.batch_size=32", "eval.metrics=['accuracy']"], quiet=True)
    assert not log.mixed, sorted(set(log.mixed))[:10]
    assert log.seen["conv2d"] == {"lazy"} and log.seen["linear"] == {"lazy"}
    search = json.loads((result.run_dir / "auto_search.json").read_text())
    assert search["winner"] and len([t for t in search["trials"] if t["epochs"]]) >= 2
