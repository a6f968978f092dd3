"""Multi-label classification: any number of labels per example, sigmoid outputs, binary cross-entropy
(optionally weighted by label frequency), a decision threshold per label tuned on the validation split (by
the rule of two-class classification's tuned threshold), ranked by macro F1."""
from __future__ import annotations

import re
from typing import TYPE_CHECKING

import numpy as np

from tlhub.data.labels import class_names, label_name
from tlhub.errors import UserError
from tlhub.task import Prediction, Task, proportion_se
from tlhub.tasks import linear_probes
from tlhub.tasks.common import all_labels, as_array, encode_splits, f1_scores, f1_threshold
from tlhub.tasks.pictures import per_label_png

if TYPE_CHECKING:  # tlhub.interfaces imports torch; an ONNX model's predictions never do
    from tlhub.interfaces import SourceData, Split

# torch is imported by the methods that need it: predicting with an ONNX model never imports torch
MAX_POS_WEIGHT = 100.0  # a label seen once in 10,000 examples would otherwise dominate the loss


def _names(value, sep: str) -> list[str]:
    """A raw label set: a list (JSON, datasets sequences) or a string like ``"3,27"`` / ``"anger|joy"``."""
    if isinstance(value, (list, tuple)):
        return [label_name(v) for v in value if label_name(v)]
    text = str(value).strip()
    parts = text.split(sep) if sep else re.split(r"[,|;]", text)
    return [label_name(p) for p in parts if p.strip()]


class MultiLabel(Task):
    name = "multilabel"
    primary_metric = "macro_f1"
    outputs_are = "labels"
    train_score = "exact_match"
    stratified = True  # carved per label, rarest first
    default_metrics = ("macro_f1", "micro_f1", "mean_average_precision", "exact_match")
    perfect_score = 1.0

    # labels and splits
    def encode(self, data: SourceData, source: str, classes: list[str] | None = None) -> SourceData:
        names_opt = list(self.options.get("label_names") or [])
        sep = self.options.get("separator", "")
        if not data.raw:  # class indexes (one label per example) or lists of them (datasets sequences)
            ours = classes or [str(c) for c in data.classes]
            n = len(data.classes)

            def from_index(y, split):
                idx = list(y) if isinstance(y, (list, tuple, np.ndarray)) else [y]
                bad = [int(i) for i in idx if not 0 <= int(i) < n]
                if bad:
                    raise UserError(f"data: the {split} split has label index {bad[0]} outside the {n} labels")
                return self._hot([str(data.classes[int(i)]) for i in idx], ours, split)
            return encode_splits(data, ours, from_index)
        columns = [str(c) for c in data.classes]
        if len(columns) > 1:  # several 0/1 columns, one per label (one column: label sets in it)
            ours = classes or columns
            return encode_splits(data, ours, lambda y, split: self._hot(self._columns(y, columns, split), ours, split))
        sets = [_names(y, sep) for y in all_labels(data)]
        if names_opt:  # integer ids index the names given
            def by_id(names):
                out = []
                for v in names:
                    if not re.fullmatch(r"\d+", v):
                        out.append(v)
                    elif int(v) >= len(names_opt):
                        raise UserError(f"data: label index {v} is out of range: task_options.label_names has "
                                        f"{len(names_opt)} names (0 to {len(names_opt) - 1})")
                    else:
                        out.append(str(names_opt[int(v)]))
                return out
            ours = classes or [str(n) for n in names_opt]
            return encode_splits(data, ours, lambda y, split: self._hot(by_id(_names(y, sep)), ours, split))
        ours = classes or class_names(v for s in sets for v in s)
        if not ours:
            raise UserError(f"data: source {source!r} gives no labels at all (every label set is empty)")
        return encode_splits(data, ours, lambda y, split: self._hot(_names(y, sep), ours, split))

    @staticmethod
    def _columns(y, columns: list[str], split: str) -> list[str]:
        values = list(y) if isinstance(y, (list, tuple)) else [y]
        out = []
        for c, v in zip(columns, values):
            v = label_name(v)
            if v not in ("0", "1", "true", "false"):
                raise UserError(f"data: the {split} split has {v!r} in label column {c!r}; multi-label columns "
                                f"hold 0 or 1")
            if v in ("1", "true"):
                out.append(c)
        return out

    def _hot(self, names: list[str], classes: list[str], split: str) -> np.ndarray:
        unknown = [n for n in names if n not in classes]
        if unknown:
            raise UserError(f"data: the {split} split has label {unknown[0]!r}, which is not one of the "
                            f"{len(classes)} labels ({', '.join(classes[:10])}{', ...' if len(classes) > 10 else ''})")
        if not names and not self.options.get("allow_empty", False):
            raise UserError(f"data: the {split} split has an example with an empty label set; multilabel needs at "
                            f"least one label per example (task_options.allow_empty = true to allow none)")
        hot = np.zeros(len(classes), dtype=np.float32)
        hot[[classes.index(n) for n in names]] = 1.0
        return hot

    def carve(self, split: Split, fraction: float, seed: int) -> tuple[Split, Split]:
        """Rarest label first: its examples not placed yet go to the held-out part until it has its share
        (at least one when the label has two examples or more, never all), the rest stay; examples without
        labels are drawn at random (iterative stratification, Sechidis et al. 2011, in one pass)."""
        # local: tlhub.data.splits imports torch; `tlhub predict` on an ONNX model must not
        from tlhub.data.splits import _take
        y = as_array(split.labels) > 0.5
        n = len(y)
        order = np.random.default_rng(seed).permutation(n)
        placed = np.zeros(n, dtype=bool)
        held = np.zeros(n, dtype=bool)
        counts = y.sum(0)
        for j in np.argsort(counts, kind="stable"):
            if counts[j] == 0:
                continue
            want = int(round(fraction * counts[j]))
            want = min(max(want, 1 if counts[j] >= 2 and fraction > 0 else 0), counts[j] - 1)
            need = want - int((held & y[:, j]).sum())
            for i in order[y[order, j] & ~placed[order]]:
                held[i], placed[i] = need > 0, True
                need -= 1
        free = order[~placed[order]]
        held[free[: int(round(fraction * len(free)))]] = True
        return _take(split, np.flatnonzero(~held).tolist()), _take(split, np.flatnonzero(held).tolist())

    def check(self, name: str, split: Split, classes: list[str], require_all: bool) -> list[str]:
        if len(split) == 0:
            return [f"data: the {name} split is empty"]
        if require_all:
            counts = as_array(split.labels).sum(0)
            empty = [classes[j] for j in range(len(classes)) if counts[j] == 0]
            if empty:
                return [f"data: label(s) with no {name} examples: {', '.join(empty[:20])}"]
        return []

    def fit(self, train: Split) -> dict:
        y = as_array(train.labels)
        pos = y.sum(0)
        state = {"label_counts": pos.astype(int).tolist(), "thresholds": [0.5] * y.shape[1]}
        if self.options.get("pos_weight", False):
            state["pos_weight"] = np.minimum((len(y) - pos) / np.maximum(pos, 1), MAX_POS_WEIGHT).round(4).tolist()
        return state

    def describe(self) -> str:
        w = self.state.get("pos_weight")
        if not w:
            return "multilabel: unweighted binary cross-entropy (task_options.pos_weight = true weighs rare labels up)"
        return (f"multilabel: binary cross-entropy with pos_weight = negatives/positives per label in train "
                f"(capped at {MAX_POS_WEIGHT:g}): min {min(w):.2f}, max {max(w):.2f}")

    # measuring before training
    def probe(self, train_x, train_y, val_x, val_y, seed: int = 0) -> float:
        """Macro F1 of one logistic regression per label, at thresholds tuned as ``evaluate`` tunes them."""
        logits, y = linear_probes.label_logits(train_x, train_y, val_x, seed), np.asarray(val_y) > 0.5
        thr = np.asarray(tune_thresholds(logits, y))
        return float(f1_scores(1 / (1 + np.exp(-logits)) >= thr, y)[0].mean())

    def chance(self, val_y) -> float:
        """Macro F1 of predicting every label for every example: 2p / (1 + p) for a label of prevalence p."""
        p = (np.asarray(val_y) > 0.5).mean(0)
        return float(np.mean(2 * p / (1 + p))) if p.size else 0.0

    def score_se(self, score: float, n: int, val_y) -> float:
        """A label's F1 = 2 TP / (2 TP + FP + FN) is taken as a proportion of that denominator, about twice its
        positives (``n`` x its prevalence in ``val_y``) where it predicts about as many as there are, at the
        macro score; macro F1 averages the labels present, so its standard error is the root of the sum of their
        squared errors over their number (rare labels dominate it); tests/test_auto_tasks.py holds it to a
        bootstrap's on synthetic splits."""
        p = (np.asarray(val_y) > 0.5).mean(0)
        present = p[p > 0]
        if not present.size:
            return proportion_se(score, 0)
        se = [proportion_se(score, max(1, int(round(2 * n * q)))) for q in present]
        return float(np.sqrt(np.sum(np.square(se)))) / len(se)

    def support(self, train_y, classes: list[str]) -> dict[str, int]:
        """Positive training examples per label."""
        pos = (np.asarray(train_y) > 0.5).sum(0)
        return {c: int(pos[j]) for j, c in enumerate(classes)}

    # training
    def num_outputs(self, classes: list[str]) -> int:
        return len(classes)

    def loss(self, outputs, targets):
        import torch
        import torch.nn.functional as F
        w = self.state.get("pos_weight")
        pw = torch.tensor(w, dtype=outputs.dtype, device=outputs.device) if w else None
        return F.binary_cross_entropy_with_logits(outputs, targets.to(outputs.dtype), pos_weight=pw)

    def batch_score(self, outputs, targets):
        return ((outputs > 0) == (targets > 0.5)).all(-1).sum()

    def evaluate(self, outputs, targets) -> dict:
        """The loss and macro F1 at thresholds tuned on these outputs: how the model will be used."""
        logits, y = outputs.float().numpy(), targets.numpy() > 0.5
        probs, thr = 1 / (1 + np.exp(-logits)), np.asarray(tune_thresholds(logits, y))
        return {"loss": float(self.loss(outputs.float(), targets.float())),
                "macro_f1": float(f1_scores(probs >= thr, y)[0].mean()), "n": len(targets)}

    def tune(self, outputs, targets) -> dict:
        return {"thresholds": tune_thresholds(outputs.float().numpy(), targets.numpy() > 0.5)}

    # outputs
    def transform(self, logits):
        return logits.sigmoid()

    def _thresholds(self, k: int) -> np.ndarray:
        return np.asarray(self.state.get("thresholds") or [0.5] * k, dtype=np.float32)

    def decode(self, logits):
        import torch
        probs = logits.float().sigmoid()
        return probs >= torch.from_numpy(self._thresholds(probs.shape[1])), probs

    def metrics(self, outputs, targets, classes: list[str], names, registry) -> dict:
        from sklearn.metrics import average_precision_score
        probs, y = np.asarray(outputs, dtype=np.float32), as_array(targets) > 0.5
        thr = self._thresholds(len(classes))
        per, micro = f1_scores(probs >= thr, y)
        support = y.sum(0)
        ap = [float(average_precision_score(y[:, j], probs[:, j])) if support[j] else None for j in range(len(classes))]
        scored = [a for a in ap if a is not None]
        scores = {"macro_f1": float(per.mean()), "micro_f1": micro,
                  "mean_average_precision": float(np.mean(scored)) if scored else 0.0,
                  "exact_match": float(((probs >= thr) == y).all(1).mean())}
        return {**{k: scores[k] for k in self.chosen_metrics(names)},
                "per_label": {c: {"f1": round(float(per[j]), 4), "support": int(support[j]),
                                  "threshold": round(float(thr[j]), 4), "average_precision": ap[j]}
                              for j, c in enumerate(classes)}}

    def predictions(self, classes: list[str], outputs) -> list[Prediction]:
        thr = self._thresholds(len(classes))
        out = []
        for row in outputs:
            best = int(row.argmax())
            out.append(Prediction(classes[best], float(row[best]), {c: float(p) for c, p in zip(classes, row)},
                                  labels=[c for c, p, t in zip(classes, row, thr) if p >= t]))
        return out

    def sample_rows(self, classes: list[str], targets, outputs) -> list[dict]:
        probs, y = np.clip(np.asarray(outputs, dtype=np.float64), 1e-7, 1 - 1e-7), as_array(targets) > 0.5
        pred = probs >= self._thresholds(len(classes))
        bce = -(y * np.log(probs) + ~y * np.log(1 - probs)).sum(1)
        rows = []
        for i in range(len(y)):
            fp = [classes[j] for j in np.flatnonzero(pred[i] & ~y[i])]
            fn = [classes[j] for j in np.flatnonzero(~pred[i] & y[i])]
            rows.append({"true": ", ".join(classes[j] for j in np.flatnonzero(y[i])),
                         "pred": ", ".join(classes[j] for j in np.flatnonzero(pred[i])),
                         "false_positives": fp, "false_negatives": fn, "loss": round(float(bce[i]), 4),
                         "wrong": bool(fp or fn)})
        return rows


    def pictures(self, run_dir, classes: list[str], targets, outputs, scores: dict) -> list:
        from pathlib import Path
        if not scores.get("per_label"):
            return []
        return [per_label_png(scores["per_label"], scores, Path(run_dir) / "per_label_f1.png")]


def tune_thresholds(logits: np.ndarray, y: np.ndarray) -> list[float]:
    """Per label, the threshold on its probability that maximises its F1 (``tlhub.tasks.common.f1_threshold``:
    Platt-calibrated, half the best F1; 0.5 for a label never or always true here)."""
    return [f1_threshold(logits[:, j], y[:, j]) for j in range(logits.shape[1])]
