"""One process training alone while the run's other processes train something else.

Under ``accelerate launch`` / ``torchrun`` every phase is data-parallel: Accelerate wraps the model in DDP,
shards the loaders and sums the scores over processes. The ``freeze = "auto"`` search can instead give each
process trials of its own (``tlhub.auto.parallel``); such a trial must not exchange anything with the other
processes, whose collectives would wait on it forever. ``SoloAccelerator`` is the part of Accelerate's
``Accelerator`` that ``tlhub.training.phase.run_phase`` uses, without the collectives: no DDP, no sharding,
scores summed over this process only, and this process writes its own checkpoints. Mixed precision and the
device stay the run's. Written by hand because Accelerate keeps one distributed state per process.
"""
from __future__ import annotations

import contextlib
from typing import Any

import torch


class SoloAccelerator:
    num_processes = 1
    process_index = 0
    is_main_process = True  # the trial's own folder: this process writes its checkpoints
    sync_gradients = True   # one optimizer step per batch: the search runs side by side only without grad_accum

    def __init__(self, accelerator: Any):
        self._run = accelerator
        self.device = accelerator.device
        self.is_local_main_process = accelerator.is_local_main_process  # one progress bar per machine at most
        self.project_configuration = accelerator.project_configuration

    def autocast(self):
        return self._run.autocast()

    def prepare(self, *objs):
        out = []
        for obj in objs:
            if isinstance(obj, torch.nn.Module):
                obj = obj.to(self.device)
            elif isinstance(obj, torch.utils.data.DataLoader):
                sampler = obj.batch_sampler
                if hasattr(sampler, "set_epoch"):  # what Accelerate's loader forwards: a new shuffle each epoch
                    obj.set_epoch = sampler.set_epoch
            out.append(obj)
        return tuple(out) if len(out) != 1 else out[0]

    @contextlib.contextmanager
    def accumulate(self, model):
        yield

    def backward(self, loss: torch.Tensor) -> None:
        loss.backward()

    def reduce(self, tensor: torch.Tensor, reduction: str = "sum") -> torch.Tensor:
        return tensor

    def gather_for_metrics(self, obj):
        return obj

    def unwrap_model(self, model):
        return model

    def wait_for_everyone(self) -> None:
        pass

    def free_memory(self) -> None:
        pass

    def log(self, values: dict, step: int | None = None) -> None:
        pass  # the trackers belong to the run; a trial's curve is in its history and in auto_search.json
