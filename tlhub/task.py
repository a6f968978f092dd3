"""Tasks as plugins: what a model predicts and how it is trained and scored.

A plugin registers a ``TaskSpec`` from its ``register_tasks(register)`` hook (single-label
``classification`` is registered that way too, by ``tlhub.plugins.builtins.tasks``); a recipe names it
with ``[model] task`` (default ``"classification"``). ``spec.load()`` returns the ``Task``, which the
trainer, the LR finder and test scoring call instead of writing a loss or an argmax themselves:

- ``num_outputs(classes)``: the head's output size;
- ``loss(outputs, targets)``: the training loss of a batch (a scalar tensor);
- ``batch_score(outputs, targets)``: the running training score of a batch (summed, divided by the
  examples seen), logged beside the loss;
- ``decode(outputs)``: ``(predictions, scores)`` of a split, e.g. argmax classes and softmax
  probabilities;
- ``primary_metric``: the validation score early stopping, ``restore_best`` and the auto search rank
  by (higher is better), computed by ``evaluate(outputs, targets)`` with the loss;
- ``stratified``: whether splits are carved per label.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from tlhub.options import Opt


@dataclass(frozen=True)
class TaskSpec:
    """A task: ``load() -> Task``; ``options``: what a recipe may set for it (none for the built-ins yet)."""

    name: str
    summary: str
    load: Callable[[], "Task"]
    options: tuple[Opt, ...] = ()
    plugin: str = ""


class Task:
    """The runtime half of a task (see the module docstring). Subclass and override."""

    name: str = ""
    primary_metric: str = ""
    stratified: bool = True

    def num_outputs(self, classes: list[str]) -> int:
        raise NotImplementedError

    def loss(self, outputs: Any, targets: Any) -> Any:
        raise NotImplementedError

    def batch_score(self, outputs: Any, targets: Any) -> Any:
        """The batch's training score summed over its examples (a tensor)."""
        raise NotImplementedError

    def evaluate(self, outputs: Any, targets: Any) -> dict:
        """``{"loss", primary_metric, "n"}`` of a whole split's outputs."""
        raise NotImplementedError

    def decode(self, outputs: Any) -> tuple[Any, Any]:
        """``(predictions, scores)`` of a split's outputs."""
        raise NotImplementedError
