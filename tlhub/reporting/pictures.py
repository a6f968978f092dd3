"""Pictures of a finished run, drawn only from the files in its run directory.

``write_report(run_dir)`` writes what the files allow (a missing file skips its picture):
  confusion_matrix.png  from metrics.json   (counts in the cells, accuracy in the title)
  learning_curves.png   from history.jsonl  (loss and accuracy over all phases, phases marked)
  samples.png           from samples.json + samples.safetensors (image runs: a 3x3 grid)
  samples.md            from samples.json   (text runs: a small table)
Reading only the run directory means a report can be redrawn later, anywhere, without the model.
"""
from __future__ import annotations

from pathlib import Path

from tlhub.artifacts.rundir import atomic_path, write_atomic
from tlhub.reporting.rundata import damaged_files, drawn_samples, is_mistake, load_run, read_samples_images, score_text

MISTAKE = "#c62828"


def write_report(run_dir: str | Path) -> list[Path]:
    run_dir = Path(run_dir)
    run = load_run(run_dir, finished=False)  # every file read and type-checked before a picture is drawn
    written: list[Path] = []
    with damaged_files(run_dir):
        if run.metrics.get("confusion_matrix"):
            written.append(confusion_matrix_png(run.metrics, run_dir / "confusion_matrix.png"))
        if run.history:
            written.append(learning_curves_png(run.history, run_dir / "learning_curves.png"))
        samples = run.samples
        if samples and samples.get("items"):
            items = sorted(enumerate(samples["items"]), key=lambda t: not is_mistake(t[1]))  # mistakes first
            # what the modality drew (thumbnails) is shown as a picture; what it captioned as a table
            if drawn_samples(run_dir, samples):
                images = read_samples_images(run_dir / "samples.safetensors")
                if images is not None:
                    written.append(samples_png(items, images, run_dir / "samples.png"))
            else:
                written.append(samples_md(items, run_dir / "samples.md"))
    return written


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt
    return plt


def _save(fig, path: Path) -> Path:
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110, bbox_inches="tight", format=path.suffix.lstrip(".") or "png")
    finally:
        _pyplot().close(fig)
    return path


def confusion_matrix_png(metrics: dict, path: Path) -> Path:
    import numpy as np
    plt = _pyplot()
    cm = np.asarray(metrics["confusion_matrix"], dtype=np.int64)
    n = len(cm)
    classes = [str(c) for c in metrics.get("classes") or range(n)]
    side = min(max(4.5, 0.55 * n + 2.5), 16)
    fig, ax = plt.subplots(figsize=(side + 1, side))
    im = ax.imshow(cm, cmap="Blues", vmin=0)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    if n <= 30:  # beyond that the numbers cannot be read anyway
        threshold = cm.max() / 2 if cm.size else 0
        size = 9 if n <= 12 else 7
        for i in range(n):
            for j in range(n):
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=size,
                        color="white" if cm[i, j] > threshold else "black")
    rotate = max((len(c) for c in classes), default=0) > 3
    ax.set_xticks(range(n), classes, rotation=45 if rotate else 0, ha="right" if rotate else "center")
    ax.set_yticks(range(n), classes)
    thr = metrics.get("threshold")  # two classes decided at a tuned threshold, not the argmax
    ax.set_xlabel("predicted" + (f" ({classes[-1]} where its probability >= {thr:.3g})" if thr is not None else ""))
    ax.set_ylabel("true")
    acc = metrics.get("accuracy")
    title = "Confusion matrix" + (f": accuracy {acc:.4f}" if acc is not None else "")
    ax.set_title(f"{title} (n={int(cm.sum())})")
    return _save(fig, path)


def score_metric(rows: list[dict]) -> str:
    """The validation score the history ranks epochs by: ``val_<task's primary metric>`` (accuracy before tasks)."""
    names = [k[4:] for r in rows[:1] for k in r if k.startswith("val_") and k not in ("val_loss", "val_examples")]
    return names[0] if names else "accuracy"


def learning_curves_png(history: list[dict], path: Path) -> Path:
    from matplotlib.ticker import MaxNLocator
    plt = _pyplot()
    rows = sorted(history, key=lambda r: (r.get("phase_index", 0), r.get("epoch", 0)))
    phases: list[tuple[str, int, int]] = []  # (name, first x, last x)
    xs = []
    for r in rows:
        name = str(r.get("phase", r.get("phase_index", "")))
        if not phases or phases[-1][0] != name:
            phases.append((name, len(xs) + 1, len(xs) + 1))
        xs.append(len(xs) + 1)
        phases[-1] = (phases[-1][0], phases[-1][1], xs[-1])
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax, metric in zip(axes, ("loss", score_metric(rows))):
        for split, style in (("train", "-"), ("val", "--")):
            pts = [(x, r[f"{split}_{metric}"]) for x, r in zip(xs, rows) if r.get(f"{split}_{metric}") is not None]
            if pts:
                ax.plot(*zip(*pts), style, marker="o", markersize=3, label=f"{split} {metric}")
        for i, (name, first, last) in enumerate(phases):
            if i:
                ax.axvline(first - 0.5, color="gray", linestyle=":", linewidth=1)
            ax.text((first + last) / 2, 1.01, name, transform=ax.get_xaxis_transform(),
                    ha="center", va="bottom", fontsize=9, color="dimgray")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
        ax.set_xlabel("epoch (all phases)")
        ax.set_ylabel(metric)
        ax.set_xlim(0.5, len(xs) + 0.5)
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize=8)
    fig.suptitle("Learning curves", y=1.04)
    return _save(fig, path)


def samples_png(items: list[tuple[int, dict]], images, path: Path) -> Path:
    plt = _pyplot()
    fig, axes = plt.subplots(3, 3, figsize=(8, 8.6))
    for ax in axes.flat:
        ax.axis("off")
    for ax, (i, item) in zip(axes.flat, [t for t in items if t[0] < len(images)][:9]):
        ax.imshow(images[i], interpolation="nearest")
        wrong = is_mistake(item)
        title = f"true {item['true']} / pred {item['pred']} ({score_text(item)})"
        if len(title) > 30:  # long class names: two lines rather than overlapping neighbours
            title = title.replace(" / ", " /\n", 1)
        ax.set_title(title, fontsize=9,
                     color=MISTAKE if wrong else "black", fontweight="bold" if wrong else "normal")
    fig.suptitle("Test samples (mistakes first, in red)")
    fig.tight_layout()
    return _save(fig, path)


def samples_md(items: list[tuple[int, dict]], path: Path) -> Path:
    def cell(s, width=None) -> str:
        s = " ".join(str(s).split()).replace("|", "\\|")
        return s if width is None or len(s) <= width else s[: width - 1] + "…"

    probs = all(isinstance(item.get("prob"), (int, float)) for _, item in items[:9])  # classes: p(predicted)
    lines = [f"| text | true | pred | {'prob' if probs else 'score'} |", "|---|---|---|---:|"]
    for _, item in items[:9]:
        mark = " ✗" if is_mistake(item) else ""
        score = f"{float(item['prob']):.2f}" if probs else score_text(item)
        lines.append(f"| {cell(item.get('text', ''), 120)} | {cell(item['true'])} | {cell(item['pred'])}{mark} "
                     f"| {score} |")
    write_atomic(path, "Test samples (mistakes first, marked ✗)\n\n" + "\n".join(lines) + "\n")
    return path
