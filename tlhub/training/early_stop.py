"""Early stopping and best-epoch restore, decided on the validation split (as Keras, HF Trainer, Lightning).

A phase's epochs are ranked by the task's primary validation score (``tlhub.task.Task.primary_metric``:
accuracy for classification, macro F1 for multi-label, Pearson's r for regression), ties broken by the
lower validation loss (accuracy alone moves in steps of 1/n on a small split). Patience runs out only when
neither the score nor the loss has improved for ``early_stop`` epochs: a loss still falling means the model is still learning. ``Best`` is stored in every checkpoint (its numbers in
``state.json``, the weights in ``best.safetensors``), so a resumed phase stops and restores exactly as
an uninterrupted one would.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch


@dataclass
class Best:
    epoch: int = 0                # 0: no epoch validated yet
    score: float = -math.inf     # the task's primary metric (higher is better)
    loss: float = float("inf")
    bad_epochs: int = 0           # epochs since the score or the loss last improved
    lowest_loss: float = float("inf")
    stopped: bool = False         # the phase ended early (patience exhausted)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict | None) -> Best:
        if not d:
            return cls()
        d = dict(d)
        if "accuracy" in d:  # checkpoints written before tasks: the score was the accuracy
            d["score"] = d.pop("accuracy")
        return cls(**d)

    def update(self, epoch: int, score: float, loss: float) -> bool:
        """Record one epoch's validation scores; True when it is the best so far."""
        better = (score, -loss) > (self.score, -self.loss)
        self.bad_epochs = 0 if better or loss < self.lowest_loss else self.bad_epochs + 1
        self.lowest_loss = min(self.lowest_loss, loss)
        if better:
            self.epoch, self.score, self.loss = epoch, score, loss
        return better

    def should_stop(self, patience: int) -> bool:
        return bool(patience) and self.bad_epochs >= patience


def snapshot(model) -> dict[str, torch.Tensor]:
    """A CPU copy of the model's weights (the best epoch's, kept for ``restore_best``)."""
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
