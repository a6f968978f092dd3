"""The one implementation behind tlhub's offline evaluate modules (accuracy, f1, precision, recall,
confusion_matrix): each module in this folder is two lines that pick a kind, so that ``evaluate.load``
can still load them by path without the network."""
import datasets
import evaluate
import numpy as np

KINDS = ("accuracy", "f1", "precision", "recall", "confusion_matrix")


def metric_class(kind: str) -> type:
    """An ``evaluate.Metric`` subclass computing ``kind`` from integer predictions and references."""
    if kind not in KINDS:
        raise ValueError(f"unknown metric kind {kind!r}")
    _KIND = kind

    class Metric(evaluate.Metric):
        def _info(self):
            return evaluate.MetricInfo(
                description=f"{_KIND} of integer class predictions (macro average for f1/precision/recall)",
                citation="",
                inputs_description="predictions: list of int, references: list of int",
                features=datasets.Features({"predictions": datasets.Value("int64"),
                                            "references": datasets.Value("int64")}),
            )

        def _compute(self, predictions, references, num_classes=None, average="macro"):
            p, r = np.asarray(predictions, dtype=np.int64), np.asarray(references, dtype=np.int64)
            n = int(num_classes or (max(p.max(initial=0), r.max(initial=0)) + 1))
            cm = np.zeros((n, n), dtype=np.int64)
            np.add.at(cm, (r, p), 1)
            if _KIND == "confusion_matrix":
                return {"confusion_matrix": cm.tolist()}
            if _KIND == "accuracy":
                return {"accuracy": float(np.trace(cm) / max(cm.sum(), 1))}
            tp = np.diag(cm).astype(float)
            precision = np.divide(tp, cm.sum(0), out=np.zeros(n), where=cm.sum(0) > 0)
            recall = np.divide(tp, cm.sum(1), out=np.zeros(n), where=cm.sum(1) > 0)
            f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(n), where=precision + recall > 0)
            value = {"precision": precision, "recall": recall, "f1": f1}[_KIND]
            present = cm.sum(1) > 0  # classes absent from the references do not drag the macro average
            return {_KIND: float(value[present].mean()) if average == "macro" else value.tolist()}

    Metric.__name__ = Metric.__qualname__ = f"{kind.title().replace('_', '')}Metric"
    return Metric
