"""Single-label classification: one class per example, softmax outputs, cross-entropy, ranked by accuracy."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from tlhub.task import Task


class Classification(Task):
    name = "classification"
    primary_metric = "accuracy"
    stratified = True  # splits keep each class's share

    def num_outputs(self, classes: list[str]) -> int:
        return len(classes)

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(outputs, targets)

    def batch_score(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return (outputs.argmax(-1) == targets).sum()

    def evaluate(self, outputs: torch.Tensor, targets: torch.Tensor) -> dict:
        return {"loss": float(F.cross_entropy(outputs, targets)),
                "accuracy": float((outputs.argmax(-1) == targets).float().mean()), "n": len(targets)}

    def decode(self, outputs: torch.Tensor) -> tuple[Any, Any]:
        probs = outputs.softmax(-1)
        return probs.argmax(-1), probs
