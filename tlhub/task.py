"""Tasks as plugins: what a model predicts, how its labels are read, how it is trained, scored and decoded.

A plugin registers a ``TaskSpec`` from its ``register_tasks(register)`` hook (``classification``,
``multilabel`` and ``regression`` are registered that way too, by ``tlhub.plugins.builtins.tasks``); a
recipe names it with ``[model] task`` (default ``"classification"``) and its options with
``[model] task_options``. ``spec.load()`` returns the ``Task``; ``task.configured(options, state)`` a copy
for one run or one saved model. The core calls it instead of knowing the label type:

Labels and splits (no torch):
- ``encode(data, source, classes)``: a data source's ``SourceData`` -> the same with per-example targets
  (an int class, a multi-hot float32 array, a float32 array of values) and ``classes`` (class, label or
  target-column names); raw labels (``data.raw``) are parsed here, bad ones are a ``UserError``;
- ``carve(split, fraction, seed)``: ``(rest, held_out)`` (stratified per class or label, or random);
- ``check(name, split, classes, require_all)``: error lines for a split's targets;
- ``fit(train)``: task state fitted on the training split (the regression target scale, label counts).

Training (torch, imported by the methods: ``predict`` from ONNX never imports torch):
- ``num_outputs(classes)``, ``loss(outputs, targets)``, ``batch_score(outputs, targets)`` (summed over the
  batch's examples, logged as ``train_<train_score>``), ``evaluate(outputs, targets)`` (``{"loss",
  primary_metric, "n"}``: ``primary_metric`` is what early stopping, ``restore_best`` and the auto search
  rank by, higher is better);
- ``tune(outputs, targets)``: state fitted on the validation split's outputs after training (thresholds);
  ``tunes``: whether it fits anything for these options (default: whether ``tune`` is overridden).

Outputs:
- ``transform(logits)``: the model's outputs as users see them (softmax, sigmoid, de-standardised values);
  the ONNX graph's ``probabilities`` output is this too;
- ``metrics(outputs, targets, classes, names, registry)``: the test scores (``default_metrics`` when
  ``names``, the recipe's ``eval.metrics``, is empty) -- ``outputs`` are ``transform``-ed, as numpy;
- ``metric_errors(names, registry)``: errors for ``eval.metrics`` names this task cannot score, found before
  training (default: every name must be one of ``default_metrics``);
- ``predictions(classes, outputs)``: ``Prediction`` objects (numpy only);
- ``decode(logits)``: ``(predictions, outputs)`` tensors of a split (for samples and reports);
- ``sample_rows(classes, targets, outputs)``: per test example ``(loss-like badness, true, predicted,
  extra)`` for the worst-examples table.

Measuring before training (``freeze = "auto"`` and ``tlhub advise``; a task without ``probe`` cannot use them):
- ``probe(train_x, train_y, val_x, val_y, seed)``: the primary metric of a linear model (sklearn) fitted on
  frozen features ``[n, d]`` (numpy) and scored on validation ones; ``probes``: whether it is defined;
- ``chance(val_y)``: the primary metric of a prediction that ignores the input (the majority class);
- ``score_se(score, n, val_y)``: the standard error of the primary metric at ``score`` on ``n`` examples
  like ``val_y`` (default: a proportion's, as accuracy's), which sets how large validation must be;
- ``support(train_y, classes)``: training examples per output (per class, positives per label, per target):
  the four-case rule's "small data";
- ``perfect_score``: the primary metric's best value, or None when it has none: a search whose best trial is
  within a standard error of it runs no more trials.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any, Callable

from tlhub.options import Opt


@dataclass(frozen=True)
class TaskSpec:
    """A task: ``load() -> Task``; ``options``: its ``[model] task_options`` (``tlhub.options.Opt``)."""

    name: str
    summary: str
    load: Callable[[], "Task"]
    options: tuple[Opt, ...] = ()
    plugin: str = ""


@dataclass(frozen=True)
class Prediction:
    """One prediction. Classification: the most probable class ``label``, its ``prob`` and every class's
    ``probs``. Multi-label: ``labels`` over their thresholds (``label``/``prob``: the most probable one) and
    every label's ``probs``. Regression: ``value`` (one number per target column in ``values``)."""

    label: str | None = None
    prob: float | None = None
    probs: dict[str, float] = field(default_factory=dict)
    labels: list[str] | None = None
    values: dict[str, float] | None = None

    @property
    def value(self) -> float | None:
        return next(iter(self.values.values())) if self.values else None

    def to_dict(self) -> dict:
        if self.values is not None:
            return {"value": self.value, "values": dict(self.values)}
        out = {"label": self.label, "prob": self.prob, "probs": dict(self.probs)}
        if self.labels is not None:
            out["labels"] = list(self.labels)
        return out

    def __str__(self) -> str:
        if self.values is not None:
            return ", ".join(f"{k} {format_value(v)}" for k, v in self.values.items()) if len(self.values) > 1 \
                else format_value(self.value)
        if self.labels is not None:
            return ", ".join(f"{c} ({self.probs[c]:.3f})" for c in self.labels) or "(no label)"
        return f"{self.label} ({self.prob:.3f})"


def format_value(v: float) -> str:
    """A predicted value with four significant digits, trailing zeros kept and no exponent for everyday sizes:
    ``5.000`` (not ``5``: a clipped prediction is still a measurement), ``0.2500``, ``312457``."""
    if v == 0 or not math.isfinite(v):
        return "0.000" if v == 0 else str(v)
    digits = 3 - math.floor(math.log10(abs(v)))  # decimals for four significant digits
    return f"{v:.4g}" if digits > 7 or digits < -12 else f"{v:.{max(digits, 0)}f}"


def proportion_se(p: float, n: int) -> float:
    """Standard error of a proportion ``p`` (an accuracy) measured on ``n`` examples, in the Agresti-Coull form
    (two successes and two failures added): 1.0 on 20 examples is not taken as exact."""
    n_adj = max(0, n) + 4
    p_adj = (p * max(0, n) + 2) / n_adj
    return math.sqrt(p_adj * (1 - p_adj) / n_adj)


def singular(outputs_are: str) -> str:
    """``class``, ``label``, ``target``: one of a task's outputs (``Task.outputs_are``). A word that is not an
    English plural (a plugin's) is kept as it is."""
    if not outputs_are.endswith("s"):
        return outputs_are
    return outputs_are[:-2] if outputs_are.endswith("sses") else outputs_are[:-1]


def count_outputs(n: int, outputs_are: str) -> str:
    """``2 classes``, ``1 class``, ``1 target``, ``28 labels``: a count in a task's word, for logs and the report."""
    return f"{n} {outputs_are if n != 1 else singular(outputs_are)}"


class Task:
    """The runtime half of a task (see the module docstring). Subclass and override."""

    name: str = ""
    primary_metric: str = ""
    train_score: str = "accuracy"       # what ``batch_score`` sums: history's ``train_<train_score>``
    stratified: bool = True
    default_metrics: tuple[str, ...] = ()
    outputs_are: str = "classes"        # what the data's ``classes`` name, for logs: "labels", "targets"
    perfect_score: float | None = None  # the primary metric's best value (1.0 for accuracy, F1, Pearson's r)

    def __init__(self, options: dict | None = None, state: dict | None = None):
        self.options = dict(options or {})
        self.state = dict(state or {})

    def configured(self, options: dict | None = None, state: dict | None = None) -> "Task":
        """A copy with these options (over the ones it has) and this state (replacing it)."""
        out = copy.copy(self)
        out.options = {**self.options, **(options or {})}
        out.state = dict(state if state is not None else self.state)
        return out

    # labels and splits
    def encode(self, data: Any, source: str, classes: list[str] | None = None) -> Any:
        raise NotImplementedError

    def carve(self, split: Any, fraction: float, seed: int) -> tuple[Any, Any]:
        raise NotImplementedError

    def check(self, name: str, split: Any, classes: list[str], require_all: bool) -> list[str]:
        return []

    def fit(self, train: Any) -> dict:
        return {}

    def describe(self) -> str:
        """A line for the run log about the fitted state (e.g. class weights); '' when nothing to say."""
        return ""

    # training
    def num_outputs(self, classes: list[str]) -> int:
        raise NotImplementedError

    def loss(self, outputs: Any, targets: Any) -> Any:
        raise NotImplementedError

    def batch_score(self, outputs: Any, targets: Any) -> Any:
        raise NotImplementedError

    def evaluate(self, outputs: Any, targets: Any) -> dict:
        raise NotImplementedError

    def tune(self, outputs: Any, targets: Any) -> dict:
        """State fitted on the validation split's logits (merged into ``state``); default: none."""
        return {}

    @property
    def tunes(self) -> bool:
        """Whether ``tune`` fits anything here: only then does the trainer predict the validation split for it."""
        return type(self).tune is not Task.tune

    # outputs
    def transform(self, logits: Any) -> Any:
        raise NotImplementedError

    def decode(self, logits: Any) -> tuple[Any, Any]:
        raise NotImplementedError

    def metrics(self, outputs: Any, targets: Any, classes: list[str], names, registry) -> dict:
        raise NotImplementedError

    def metric_errors(self, names: list[str], registry: Any) -> list[str]:
        """Errors for ``eval.metrics`` names this task does not score: by default it scores its own
        ``default_metrics`` only (a regression has no use for accuracy)."""
        if not self.default_metrics:
            return [f"eval.metrics: task {self.name!r} computes its own scores and takes no metric names (leave "
                    f"eval.metrics out)"] if names else []
        own = ", ".join(self.default_metrics)
        return [f"eval.metrics: task {self.name!r} scores {own}; {n!r} is not one of them (leave eval.metrics out "
                f"for all of them)" for n in names if n not in self.default_metrics]

    def chosen_metrics(self, names) -> tuple[str, ...]:
        """The metric names a test scores: the recipe's ``eval.metrics``, or ``default_metrics`` when empty."""
        return tuple(names) if names else self.default_metrics

    def predictions(self, classes: list[str], outputs: Any) -> list[Prediction]:
        raise NotImplementedError

    def sample_rows(self, classes: list[str], targets: Any, outputs: Any) -> list[dict]:
        raise NotImplementedError

    # measuring before training
    def probe(self, train_x: Any, train_y: Any, val_x: Any, val_y: Any, seed: int = 0) -> float:
        """The primary metric of a linear model fitted on frozen features; see the module docstring."""
        raise NotImplementedError

    @property
    def probes(self) -> bool:
        """Whether ``probe`` is defined: ``freeze = "auto"`` and ``tlhub advise`` measure with it."""
        return type(self).probe is not Task.probe

    def chance(self, val_y: Any) -> float:
        """The primary metric of a prediction that ignores the input; default 0."""
        return 0.0

    def score_se(self, score: float, n: int, val_y: Any) -> float:
        """Standard error of the primary metric at ``score`` on ``n`` examples; default: a proportion's."""
        return proportion_se(score, n)

    def support(self, train_y: Any, classes: list[str]) -> dict[str, int]:
        """Training examples per output; default: all of them for each."""
        return {c: len(train_y) for c in classes}

    def pictures(self, run_dir: Any, classes: list[str], targets: Any, outputs: Any, scores: dict) -> list[Any]:
        """The test split's pictures this task draws into ``run_dir`` beside ``scores`` (its metrics), shown by
        the report page; default: none (classification's confusion matrix is drawn from metrics.json)."""
        return []
