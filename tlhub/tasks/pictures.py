"""The test split's pictures of the tasks whose scores a confusion matrix cannot show (``Task.pictures``).

Regression: predicted against true (the diagonal is a perfect score) beside the residuals' histogram.
Multi-label: per-label F1 on the test split, worst first, with each label's tuned threshold and support.
Both are drawn at the end of the run from the test outputs; the report page shows them.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from tlhub.reporting.pictures import _pyplot, _save  # the report's figure helpers (Agg backend, atomic write)


def regression_png(pred: np.ndarray, y: np.ndarray, names: list[str], scores: dict, path: Path) -> Path:
    """One row per target (at most 4): scatter of predicted vs true, and the residuals (predicted - true)."""
    from matplotlib.ticker import MaxNLocator
    plt = _pyplot()
    k = min(pred.shape[1], 4)
    fig, axes = plt.subplots(k, 2, figsize=(11, 4.6 * k), squeeze=False)
    for j in range(k):
        p, t = pred[:, j], y[:, j]
        ax = axes[j][0]
        ax.scatter(t, p, s=6 if len(t) > 500 else 16, alpha=0.35 if len(t) > 500 else 0.7, color="#1565c0",
                   edgecolors="none")
        lo, hi = float(min(t.min(), p.min())), float(max(t.max(), p.max()))
        ax.plot([lo, hi], [lo, hi], color="gray", linestyle="--", linewidth=1, label="predicted = true")
        r = float(np.corrcoef(p, t)[0, 1]) if len(t) > 1 and p.std() and t.std() else 0.0
        ax.set_title(f"{names[j]}: predicted vs true (Pearson {r:.4f}, n={len(t)})")
        ax.set_xlabel("true")
        ax.set_ylabel("predicted")
        ax.legend(loc="upper left", fontsize=8)
        res = p - t
        ax = axes[j][1]
        ax.hist(res, bins=40, color="#6a1b9a", alpha=0.8)
        ax.axvline(0, color="gray", linestyle="--", linewidth=1)
        ax.set_title(f"residuals: MAE {np.abs(res).mean():.4f}, RMSE {np.sqrt((res ** 2).mean()):.4f}")
        ax.set_xlabel("predicted - true")
        ax.set_ylabel("test examples")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    if pred.shape[1] > k:
        fig.suptitle(f"the first {k} of {pred.shape[1]} targets (all of them are scored in metrics.json)")
    return _save(fig, path)


def per_label_png(per_label: dict, scores: dict, path: Path) -> Path:
    """Horizontal bars of per-label F1, worst at the top, labelled with support and threshold."""
    plt = _pyplot()
    rows = sorted(per_label.items(), key=lambda kv: kv[1]["f1"])
    n = len(rows)
    fig, ax = plt.subplots(figsize=(9, max(3.0, 0.32 * n + 1.4)))
    f1 = [v["f1"] for _, v in rows]
    macro = float(np.mean(f1)) if f1 else 0.0
    colors = ["#c62828" if v < macro else "#2e7d32" for v in f1]
    ax.barh(range(n), f1, color=colors, alpha=0.85)
    ax.set_yticks(range(n), [name for name, _ in rows], fontsize=8)
    for i, (_, v) in enumerate(rows):
        inside = v["f1"] > 0.78  # no room right of the bar: written inside its end, in white
        ax.text(v["f1"] - 0.01 if inside else v["f1"] + 0.01, i,
                f"F1 {v['f1']:.2f}  n={v['support']}  t={v['threshold']:.2f}", va="center", fontsize=7,
                ha="right" if inside else "left", color="white" if inside else "black")
    ax.axvline(macro, color="gray", linestyle="--", linewidth=1, label=f"macro F1 {macro:.4f}")
    ax.invert_yaxis()  # the worst label on top
    ax.set_xlim(0, 1)
    ax.set_xlabel("F1 on the test split (t: the label's decision threshold, tuned on validation)")
    ax.set_title(f"Per-label F1, worst first (micro F1 {scores.get('micro_f1', 0.0):.4f}, mean average precision "
                 f"{scores.get('mean_average_precision', 0.0):.4f})")
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)
