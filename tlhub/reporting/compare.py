"""Runs side by side: recipe differences, time per phase, validation and test scores, overlaid curves.

``compare_runs(paths)`` reads the run directories and refuses (``UserError``) runs whose scores do not
compare: different tasks (image vs text) or different label sets. ``format_comparison`` is the table
``tlhub compare`` prints; ``write_compare_html`` the page with the validation curves overlaid.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from tlhub.artifacts.rundir import write_atomic
from tlhub.artifacts.writable import writable_folder
from tlhub.errors import UserError
from tlhub.reporting.htmlkit import esc, fig_png, num, page, png_uri, table
from tlhub.reporting.pictures import _pyplot, score_metric
from tlhub.reporting.rundata import RunFiles, epoch_rows, load_run

IGNORED_KEYS = ("output.",)  # where a run was written says nothing about how it was trained


@dataclass(frozen=True)
class Row:
    label: str
    values: tuple[str, ...]  # one formatted value per run


@dataclass
class Comparison:
    runs: list[RunFiles]
    names: list[str]  # short, unique column names
    recipe: list[Row] = field(default_factory=list)  # only the keys whose values differ
    time: list[Row] = field(default_factory=list)
    val: list[Row] = field(default_factory=list)
    test: list[Row] = field(default_factory=list)

    def sections(self) -> list[tuple[str, list[Row]]]:
        return [("recipe differences", self.recipe), ("time (s)", self.time),
                ("validation", self.val), ("test", self.test)]


def compare_runs(paths) -> Comparison:
    if len(paths) < 2:
        raise UserError("tlhub compare: give at least two run directories")
    runs = [load_run(p) for p in paths]
    seen: dict[Path, str] = {}
    for r, p in zip(runs, paths):
        key = r.path.resolve()
        if key in seen:
            raise UserError(f"tlhub compare: {p} and {seen[key]} are the same run directory")
        seen[key] = str(p)
    check_comparable(runs)
    c = Comparison(runs, _names(runs))
    c.recipe = recipe_differences(runs)
    c.time = time_rows(runs)
    c.val = val_rows(runs)
    c.test = test_rows(runs)
    return c


def check_comparable(runs: list[RunFiles]) -> None:
    """Scores of different tasks or label sets would be set side by side as if they measured the same thing."""
    first = runs[0]
    for r in runs[1:]:
        if run_task(r) != run_task(first):
            raise UserError(f"tlhub compare: {first.path} and {r.path} are different tasks ({run_task(first)} vs "
                            f"{run_task(r)}); their scores do not compare")
        if r.modality != first.modality:
            raise UserError(f"tlhub compare: {first.path} and {r.path} are different tasks ({first.modality} vs "
                            f"{r.modality} classification); their scores do not compare")
        if sorted(r.classes) != sorted(first.classes):
            only_a = sorted(set(first.classes) - set(r.classes))
            only_b = sorted(set(r.classes) - set(first.classes))
            raise UserError(errors=[
                (f"tlhub compare: {first.path} and {r.path} have different label sets "
                 f"({len(first.classes)} vs {len(r.classes)} classes); their scores do not compare"),
                f"  only in {first.path}: {_short(only_a)}", f"  only in {r.path}: {_short(only_b)}"])


def run_task(run: RunFiles) -> str:
    """The run's task (``[model] task`` of its recipe; runs before tasks were classification)."""
    model = (run.recipe or {}).get("model") if isinstance(run.recipe, dict) else None
    task = model.get("task") if isinstance(model, dict) else None
    return task if isinstance(task, str) and task else "classification"


def _short(names: list[str], n: int = 8) -> str:
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "") if names else "(none)"


def _names(runs: list[RunFiles]) -> list[str]:
    names = [r.name for r in runs]
    if len(set(names)) < len(names):  # same folder name under different parents
        names = [f"{r.path.resolve().parent.name}/{r.name}" for r in runs]
    if len(set(names)) < len(names):
        names = [f"{i + 1}: {n}" for i, n in enumerate(names)]
    return names


def flatten(obj, prefix: str = "") -> dict[str, object]:
    """Dotted keys as overrides write them: ``train.seed``, ``phases.1.lr``."""
    out: dict[str, object] = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.update(flatten(v, f"{prefix}{k}."))
    elif isinstance(obj, list) and obj and all(isinstance(v, dict) for v in obj):
        for i, v in enumerate(obj):
            out.update(flatten(v, f"{prefix}{i}."))
    else:
        out[prefix[:-1]] = obj
    return out


def _value(v) -> str:
    import json
    return "—" if v is None else json.dumps(v, default=str)


def recipe_differences(runs: list[RunFiles]) -> list[Row]:
    flat = [flatten(r.recipe) for r in runs]
    keys = list(dict.fromkeys(k for f in flat for k in f))
    rows = [Row(k, tuple(_value(f.get(k)) for f in flat)) for k in keys
            if not k.startswith(IGNORED_KEYS) and len({_value(f.get(k)) for f in flat}) > 1]
    sources = [r.recipe_source or "—" for r in runs]
    if len(set(sources)) > 1:
        rows.insert(0, Row("recipe file", tuple(sources)))
    return rows


def _phase_labels(runs: list[RunFiles]) -> list[tuple[int, str]]:
    """(phase index, label) over all runs: 'phase 1 head'."""
    labels: dict[int, str] = {}
    for r in runs:
        for i, t in enumerate((r.timings or {}).get("phases") or []):
            labels.setdefault(i, f"phase {i + 1} {t.get('phase', '')}".strip())
        for row in r.history:
            i = int(row.get("phase_index", 0))
            labels.setdefault(i, f"phase {i + 1} {row.get('phase', '')}".strip())
    return sorted(labels.items())


def time_rows(runs: list[RunFiles]) -> list[Row]:
    rows = []
    for i, label in _phase_labels(runs):
        vals = []
        for r in runs:
            phases = (r.timings or {}).get("phases") or []
            t = phases[i] if i < len(phases) else None
            vals.append("—" if t is None else
                        f"{t['seconds']:.1f}" + (f" (cache {t['cache_seconds']:.1f})" if t.get("cache_seconds") else ""))
        rows.append(Row(label, tuple(vals)))
    rows.append(Row("total", tuple(num(r.total_seconds, 1) for r in runs)))
    return rows


def val_rows(runs: list[RunFiles]) -> list[Row]:
    rows = []
    per_run = [epoch_rows(r) for r in runs]
    for metric in (_val_score(per_run), "val_loss"):
        if not any(row.get(metric) is not None for rs in per_run for row in rs):
            continue
        for i, label in _phase_labels(runs):
            vals = []
            for rs in per_run:
                last = [row[metric] for row in rs if int(row.get("phase_index", 0)) == i and row.get(metric) is not None]
                vals.append(num(last[-1]) if last else "—")
            rows.append(Row(f"{metric.replace('_', ' ')} after {label}", tuple(vals)))
        best = min if metric == "val_loss" else max
        rows.append(Row(f"{'best' if best is max else 'lowest'} {metric.replace('_', ' ')}", tuple(
            num(best(v)) if (v := [row[metric] for row in rs if row.get(metric) is not None]) else "—"
            for rs in per_run)))
    return rows


def _val_score(per_run: list[list[dict]]) -> str:
    """The history's validation score: ``val_<the task's primary metric>`` (``val_accuracy`` for classification)."""
    return "val_" + score_metric([row for rs in per_run for row in rs[:1]])


def test_rows(runs: list[RunFiles]) -> list[Row]:
    keys = list(dict.fromkeys(k for r in runs for k in r.scalar_metrics()))
    rows = [Row(k, tuple(num(r.scalar_metrics().get(k)) for r in runs)) for k in keys]
    rows.append(Row("test examples", tuple(num(r.metrics.get("test_examples")) for r in runs)))
    return rows


def format_comparison(c: Comparison) -> str:
    """A plain-text table: one column per run, one block per section."""
    width = max([len(row.label) for _, rows in c.sections() for row in rows] + [10])  # labels, indented by 2
    cols = [max([len(n)] + [len(row.values[j]) for _, rows in c.sections() for row in rows])
            for j, n in enumerate(c.names)]
    lines = [f"{'':{width + 2}}  " + "  ".join(f"{n:>{w}}" for n, w in zip(c.names, cols))]
    for title, rows in c.sections():
        lines.append(title + ":" + ("" if rows else " (none)"))
        for row in rows:
            lines.append(f"  {row.label:{width}}  " + "  ".join(f"{v:>{w}}" for v, w in zip(row.values, cols)))
    return "\n".join(lines)


def curves_png(c: Comparison) -> bytes | None:
    """Validation score (accuracy, or the task's primary metric) and loss per epoch (all phases in a row), one line
    per run, phase boundaries dotted."""
    from matplotlib.ticker import MaxNLocator

    per_run = [epoch_rows(r) for r in c.runs]
    if not any(per_run):
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax, metric in zip(axes, (_val_score(per_run), "val_loss")):
        for name, rows in zip(c.names, per_run):
            pts = [(x + 1, row[metric]) for x, row in enumerate(rows) if row.get(metric) is not None]
            if pts:
                ax.plot(*zip(*pts), marker="o", markersize=3, label=name)
        drawn = set()
        for rows in per_run:  # a boundary wherever a run's phase changes, named once
            start = 0
            for x in range(1, len(rows) + 1):
                if x == len(rows) or rows[x].get("phase_index") != rows[x - 1].get("phase_index"):
                    if (start, x) not in drawn:
                        drawn.add((start, x))
                        ax.text((start + x + 1) / 2, 1.01, str(rows[start].get("phase", "")), ha="center",
                                va="bottom", fontsize=9, color="dimgray", transform=ax.get_xaxis_transform())
                        if x < len(rows):
                            ax.axvline(x + 0.5, color="gray", linestyle=":", linewidth=1)
                    start = x
        ax.set_xlim(0.5, max(len(rows) for rows in per_run) + 0.5)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch (all phases; dotted: phase boundary)")
        ax.set_ylabel(metric.replace("_", " "))
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize=8)
    return fig_png(fig)


def render_html(c: Comparison, out: Path) -> str:
    runs = []
    for name, r in zip(c.names, c.runs):
        link = ""
        if (r.path / "report.html").is_file():
            rel = os.path.relpath(r.path.resolve() / "report.html", out.resolve().parent)
            link = f' (<a href="{esc(Path(rel).as_posix())}">report</a>)'
        runs.append(f"<li><b>{esc(name)}</b>: <code>{esc(r.path.resolve())}</code>{link}</li>")
    png = curves_png(c)
    body = [f"<h1>{len(c.runs)} runs side by side</h1>", f"<ul>{''.join(runs)}</ul>", "<h2>Validation curves</h2>",
            f'<img class="fig" src="{png_uri(png)}" alt="validation curves of every run">' if png
            else '<p class="note">(no history.jsonl in these runs)</p>']
    for title, rows in c.sections():
        body.append(f"<h2>{esc(title[0].upper() + title[1:])}</h2>")
        body.append(table(["", *c.names], [[row.label, *row.values] for row in rows],
                          numeric=set(range(1, len(c.names) + 1))) if rows else '<p class="note">(none)</p>')
    return page("tlhub compare: " + ", ".join(c.names), "\n".join(body))


def output_path(out: str | Path, overwrite: bool) -> Path:
    """Where compare.html goes (``out`` may be a folder); refuses to replace a file without ``overwrite``."""
    path = Path(out)
    if path.is_dir():
        path = path / "compare.html"
    if path.exists() and not overwrite:
        raise UserError(f"--out: {path} already exists; pass --overwrite to replace it or choose another --out")
    if not path.parent.is_dir():
        raise UserError(f"--out: folder {path.parent} does not exist")
    writable_folder(path.parent, "--out")
    return path


def write_compare_html(c: Comparison, path: Path) -> Path:
    write_atomic(path, render_html(c, path))
    return path
