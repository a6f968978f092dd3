"""Regression: one or several float targets per example, standardised with the training split's mean and
standard deviation for training (MSE or Huber) and mapped back in the model's output, ranked by Pearson's r
(the mean over target columns)."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from tlhub.errors import UserError
from tlhub.task import Prediction, Task, format_value
from tlhub.tasks import linear_probes
from tlhub.tasks.common import as_array, encode_splits
from tlhub.tasks.pictures import regression_png

if TYPE_CHECKING:  # tlhub.interfaces imports torch; an ONNX model's predictions never do
    from tlhub.interfaces import SourceData, Split

# torch is imported by the methods that need it: predicting with an ONNX model never imports torch


def _number(v, column: str, split: str, row: int) -> float:
    try:
        x = float(str(v).strip()) if not isinstance(v, (int, float)) or isinstance(v, bool) else float(v)
    except ValueError:
        x = None
    if x is None or isinstance(v, bool) or not math.isfinite(x):
        raise UserError(f"data: the {split} split's example {row + 1} has target {v!r} in {column!r}; regression "
                        f"targets are finite numbers")
    return x


class Regression(Task):
    name = "regression"
    primary_metric = "pearson"
    outputs_are = "targets"
    train_score = "mae"  # mean absolute error in the targets' units, logged beside the loss
    stratified = False  # carved at random
    default_metrics = ("pearson", "spearman", "mae", "rmse")
    perfect_score = 1.0

    # labels and splits
    def encode(self, data: SourceData, source: str, classes: list[str] | None = None) -> SourceData:
        if data.raw:  # values as read: one per example, or a tuple of several columns'
            columns = [str(c) for c in data.classes] or ["value"]
        else:  # classes named by numbers (folders "0", "15", "30"): each class is its value
            columns = ["value"]
            names = [str(c) for c in data.classes]
            values = [_number(c, "class name", "train", i) for i, c in enumerate(names)]
        named = [str(n) for n in self.options.get("target_names") or []]
        if named and len(named) != len(columns):
            raise UserError(f"model.task_options.target_names: {len(named)} name(s) for {len(columns)} target "
                            f"column(s) ({', '.join(columns)})")
        ours = classes or named or columns
        if len(ours) != len(columns):
            raise UserError(f"data.test: {len(columns)} target column(s), but the model has {len(ours)}")
        counters: dict[str, int] = {}

        def encode(y, split):
            row = counters[split] = counters.get(split, -1) + 1
            if not data.raw:
                return np.asarray([values[int(y)]], dtype=np.float32)
            ys = list(y) if isinstance(y, (list, tuple)) else [y]
            if len(ys) != len(columns):
                raise UserError(f"data: the {split} split's example {row + 1} has {len(ys)} target(s), not "
                                f"{len(columns)}")
            return np.asarray([_number(v, c, split, row) for v, c in zip(ys, columns)], dtype=np.float32)
        return encode_splits(data, ours, encode)

    def carve(self, split: Split, fraction: float, seed: int) -> tuple[Split, Split]:
        # local: tlhub.data.splits imports torch; `tlhub predict` on an ONNX model must not
        from tlhub.data.splits import random_split
        return random_split(split, fraction, seed)

    def check(self, name: str, split: Split, classes: list[str], require_all: bool) -> list[str]:
        return [f"data: the {name} split is empty"] if len(split) == 0 else []

    def fit(self, train: Split) -> dict:
        y = as_array(train.labels).astype(np.float64)
        std = y.std(0)
        return {"mean": y.mean(0).tolist(), "std": np.where(std > 0, std, 1.0).tolist(),
                "min": y.min(0).tolist(), "max": y.max(0).tolist()}

    def describe(self) -> str:
        s = self.state
        return (f"regression: targets standardised with the training split's mean {_fmt(s['mean'])} and std "
                f"{_fmt(s['std'])}, {self.options.get('loss', 'mse')} loss"
                + (f"; outputs clipped to [{_fmt(s['min'])}, {_fmt(s['max'])}]" if self.options.get("clip") else ""))

    # measuring before training (chance: 0, the r of a constant prediction)
    def probe(self, train_x, train_y, val_x, val_y, seed: int = 0) -> float:
        """Pearson's r of a ridge regression per target (the mean over targets)."""
        y = np.asarray(val_y, dtype=np.float64).reshape(len(val_x), -1)
        return _pearson(linear_probes.values(train_x, train_y, val_x), y)

    def score_se(self, score: float, n: int, val_y) -> float:
        """Pearson's r on ``n`` pairs: (1 - r^2) / sqrt(n - 3) (through Fisher's z), at least 1 / n (a finite
        split never measures r = 1 exactly)."""
        if n <= 3:
            return 1.0
        r = min(1.0, max(-1.0, score))
        return max((1 - r * r) / math.sqrt(n - 3), 1.0 / n)

    # training
    def num_outputs(self, classes: list[str]) -> int:
        return len(classes)

    def _scale(self, like):
        import torch
        mean = torch.tensor(self.state["mean"], dtype=like.dtype, device=like.device)
        return mean, torch.tensor(self.state["std"], dtype=like.dtype, device=like.device)

    def loss(self, outputs, targets):
        import torch.nn.functional as F
        mean, std = self._scale(outputs)
        z = (targets.to(outputs.dtype) - mean) / std
        if self.options.get("loss", "mse") == "huber":
            return F.huber_loss(outputs, z)
        return F.mse_loss(outputs, z)

    def batch_score(self, outputs, targets):
        return (self.transform(outputs.float()) - targets.float()).abs().mean(-1).sum()

    def evaluate(self, outputs, targets) -> dict:
        pred, y = self.transform(outputs.float()).numpy(), targets.float().numpy()
        return {"loss": float(self.loss(outputs.float(), targets.float())), "pearson": _pearson(pred, y),
                "n": len(targets)}

    # outputs
    def transform(self, logits):
        mean, std = self._scale(logits)
        out = logits * std + mean
        if self.options.get("clip"):
            lo, hi = (self._scale(logits)[0].new_tensor(self.state[k]) for k in ("min", "max"))
            out = out.clamp(lo, hi)
        return out

    def decode(self, logits):
        values = self.transform(logits.float())
        return values, values

    def metrics(self, outputs, targets, classes: list[str], names, registry) -> dict:
        from scipy.stats import spearmanr
        pred, y = np.asarray(outputs, dtype=np.float64), as_array(targets).astype(np.float64)
        err = pred - y
        spear = [spearmanr(pred[:, j], y[:, j]).statistic for j in range(y.shape[1])]
        scores = {"pearson": _pearson(pred, y), "spearman": float(np.nanmean(spear)) if len(y) > 1 else 0.0,
                  "mae": float(np.abs(err).mean()), "rmse": float(np.sqrt((err ** 2).mean()))}
        out = {k: scores[k] for k in self.chosen_metrics(names)}
        if len(classes) > 1:
            out["per_target"] = {c: {"pearson": _pearson(pred[:, [j]], y[:, [j]]),
                                     "mae": float(np.abs(err[:, j]).mean())} for j, c in enumerate(classes)}
        return out

    def predictions(self, classes: list[str], outputs) -> list[Prediction]:
        return [Prediction(values={c: float(v) for c, v in zip(classes, row)}) for row in outputs]

    def sample_rows(self, classes: list[str], targets, outputs) -> list[dict]:
        pred, y = np.asarray(outputs, dtype=np.float64), as_array(targets).astype(np.float64)
        err = np.abs(pred - y).mean(1)
        tol = 0.1 * np.asarray(self.state.get("std", [1.0])).mean()  # "wrong": off by over a tenth of a std
        return [{"true": _fmt(y[i].tolist()), "pred": _fmt(pred[i].tolist()), "error": round(float(err[i]), 4),
                 "loss": round(float(err[i]), 4), "wrong": bool(err[i] > tol)} for i in range(len(y))]


    def pictures(self, run_dir, classes: list[str], targets, outputs, scores: dict) -> list:
        from pathlib import Path
        pred, y = np.asarray(outputs, dtype=np.float64), as_array(targets).astype(np.float64)
        if len(y) < 2:
            return []
        return [regression_png(pred, y, classes, scores, Path(run_dir) / "predicted_vs_true.png")]


def _pearson(pred: np.ndarray, y: np.ndarray) -> float:
    """Pearson's r, the mean over target columns; 0 for a column where either side is constant."""
    rs = []
    for j in range(y.shape[1]):
        a, b = pred[:, j] - pred[:, j].mean(), y[:, j] - y[:, j].mean()
        denom = math.sqrt(float((a * a).sum() * (b * b).sum()))
        rs.append(float((a * b).sum() / denom) if denom > 0 else 0.0)
    return float(np.mean(rs)) if rs else 0.0


def _fmt(values) -> str:
    return ", ".join(format_value(v) for v in values)
