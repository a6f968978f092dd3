"""Single-label classification: one class per example, softmax outputs, cross-entropy, ranked by accuracy.

Two classes may have the second's decision threshold tuned on the validation split (``task_options.threshold =
"f1"``): the threshold is then stored with the model and used by every surface that decides a class."""
from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

import numpy as np

from tlhub.data.labels import check_classes, class_names, label_name
from tlhub.errors import UserError
from tlhub.metrics import compute_metrics, metric_errors
from tlhub.task import Prediction, Task
from tlhub.tasks import linear_probes
from tlhub.tasks.common import all_labels, as_array, encode_splits, f1_scores, f1_threshold

if TYPE_CHECKING:  # tlhub.interfaces imports torch; an ONNX model's predictions never do
    from tlhub.interfaces import SourceData, Split

# torch is imported by the methods that need it: predicting with an ONNX model never imports torch


class Classification(Task):
    name = "classification"
    primary_metric = "accuracy"
    stratified = True  # splits keep each class's share
    default_metrics = ("accuracy", "f1", "precision", "recall")
    perfect_score = 1.0

    # labels and splits
    def encode(self, data: SourceData, source: str, classes: list[str] | None = None) -> SourceData:
        if data.raw:  # raw values from a table: class names, sorted (numerically when all are integers)
            names = class_names(all_labels(data)) if classes is None else classes
            if classes is None:
                check_classes(names, source)
            index = {c: i for i, c in enumerate(names)}
            unknown = sorted({label_name(y) for y in all_labels(data)} - set(index))
            if unknown:
                raise UserError(f"data source {source!r} has classes the model was not trained on: "
                                f"{', '.join(unknown[:10])} (its classes: {', '.join(names[:20])})")
            return encode_splits(data, names, lambda y, _: index[label_name(y)])
        their = [str(c) for c in data.classes]
        if classes is None:
            if len(their) < 2:
                raise UserError(f"data: source {source!r} gives {len(their)} class(es); classification needs at least 2")
            return data
        if their == classes:
            return data
        missing = [c for c in their if c not in classes]
        if missing:
            raise UserError(f"data source {source!r} has classes the model was not trained on: "
                            f"{', '.join(missing[:10])} (its classes: {', '.join(classes[:20])})")
        remap = [classes.index(c) for c in their]
        return encode_splits(data, classes, lambda y, _: remap[int(y)])

    def carve(self, split: Split, fraction: float, seed: int) -> tuple[Split, Split]:
        # local: tlhub.data.splits imports torch; `tlhub predict` on an ONNX model must not
        from tlhub.data.splits import stratified_split
        return stratified_split(split, fraction, seed)

    def check(self, name: str, split: Split, classes: list[str], require_all: bool) -> list[str]:
        errors = []
        if self.tunes and len(classes) != 2 and require_all:
            errors.append(f"model.task_options.threshold = 'f1' tunes the decision between two classes, but the data "
                          f"has {len(classes)}: {', '.join(classes[:10])} (leave it out: the most probable class wins)")
        if len(split) == 0:
            return [f"data: the {name} split is empty"]
        bad = sorted({int(y) for y in split.labels if not 0 <= int(y) < len(classes)})
        if bad:
            errors.append(f"data: the {name} split has labels outside the {len(classes)} classes: {bad[:10]}")
        if require_all:
            counts = Counter(int(y) for y in split.labels)
            empty = [classes[i] for i in range(len(classes)) if counts.get(i, 0) == 0]
            if empty:
                errors.append(f"data: class(es) with no {name} examples: {', '.join(map(str, empty[:20]))}")
        return errors

    @property
    def tunes(self) -> bool:  # a threshold only where the recipe asks for one
        return self.options.get("threshold", "argmax") == "f1"

    def tune(self, outputs, targets) -> dict:
        if not self.tunes:
            return {}
        logits = outputs.float().numpy()
        return {"threshold": f1_threshold(logits[:, 1] - logits[:, 0], as_array(targets) == 1)}

    def _decide(self, probs: np.ndarray) -> np.ndarray:
        """The predicted class of each row: the second class where its probability reaches the tuned
        threshold (two classes), else the most probable."""
        thr = self.state.get("threshold")
        if thr is None or probs.shape[1] != 2:
            return probs.argmax(-1)
        return (probs[:, 1] >= thr).astype(np.int64)

    # measuring before training (score_se: the default, a proportion's)
    def probe(self, train_x, train_y, val_x, val_y, seed: int = 0) -> float:
        return float((linear_probes.classes(train_x, train_y, val_x, seed) == np.asarray(val_y)).mean())

    def chance(self, val_y) -> float:
        """The majority class's share (2 balanced classes: 0.5)."""
        return max(Counter(np.asarray(val_y).tolist()).values()) / max(1, len(val_y))

    def support(self, train_y, classes: list[str]) -> dict[str, int]:
        counts = Counter(int(y) for y in np.asarray(train_y).tolist())
        return {c: counts.get(i, 0) for i, c in enumerate(classes)}

    # training
    def num_outputs(self, classes: list[str]) -> int:
        return len(classes)

    def loss(self, outputs, targets):
        import torch.nn.functional as F
        return F.cross_entropy(outputs, targets)

    def batch_score(self, outputs, targets):
        return (outputs.argmax(-1) == targets).sum()

    def evaluate(self, outputs, targets) -> dict:
        import torch.nn.functional as F
        return {"loss": float(F.cross_entropy(outputs, targets)),
                "accuracy": float((outputs.argmax(-1) == targets).float().mean()), "n": len(targets)}

    # outputs
    def transform(self, logits):
        return logits.softmax(-1)

    def decode(self, logits) -> tuple[Any, Any]:
        import torch
        probs = logits.float().softmax(-1)
        return torch.from_numpy(self._decide(probs.numpy())), probs

    def metrics(self, outputs, targets, classes: list[str], names, registry) -> dict:
        probs, y = np.asarray(outputs), [int(t) for t in targets]
        preds = self._decide(probs).tolist()
        out = compute_metrics(self.chosen_metrics(names), preds, y, len(classes), registry)
        if len(classes) == 2:  # the second class's own F1 (GLUE's MRPC F1: of the paraphrases)
            pred, true = np.asarray(preds) == 1, np.asarray(y) == 1
            out["positive_class"] = classes[1]
            out["positive_f1"] = float(f1_scores(pred[:, None], true[:, None])[0][0])
            if self.state.get("threshold") is not None:
                out["threshold"] = self.state["threshold"]
        return out

    def metric_errors(self, names: list[str], registry) -> list[str]:
        return metric_errors(names, registry)  # any registered metric of predicted and true classes

    def predictions(self, classes: list[str], outputs) -> list[Prediction]:
        out = []
        rows = np.asarray(outputs)
        for row, best in zip(rows, self._decide(rows).tolist()):
            out.append(Prediction(classes[best], float(row[best]), {c: float(p) for c, p in zip(classes, row)}))
        return out

    def sample_rows(self, classes: list[str], targets, outputs) -> list[dict]:
        probs = np.asarray(outputs, dtype=np.float32)
        rows, decided = [], self._decide(probs).tolist()
        for i, y in enumerate(int(t) for t in targets):
            pred = decided[i]
            loss = float(-np.log(np.maximum(probs[i, y], np.float32(1e-12))))  # cross-entropy: -log p(true class)
            rows.append({"true": classes[y], "pred": classes[pred], "prob": round(float(probs[i, pred]), 4),
                         "prob_true": round(float(probs[i, y]), 4), "loss": round(loss, 4), "wrong": pred != y})
        return rows
