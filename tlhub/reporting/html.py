"""``report.html``: one self-contained page per run, drawn from the run directory's files alone.

Top to bottom: test scores and time; the recipe and the per-phase plan; learning curves (phase
boundaries marked); the confusion matrix; per-class precision/recall/F1, worst first; the worst
predictions (highest test loss, mistakes first: thumbnails for images, sentences for text); time per
phase with the cache fill; the environment. Static HTML with embedded PNGs: it opens from disk,
offline, and needs no script.
"""
from __future__ import annotations

import io
import time
from pathlib import Path

from tlhub.artifacts.rundir import write_atomic
from tlhub.reporting.htmlkit import Cell, esc, figure, num, page, png_uri, table
from tlhub.reporting.rundata import (
    RunFiles, damaged_files, drawn_samples, epoch_rows, is_mistake, load_run, per_class_scores, read_samples_images,
)
from tlhub.task import count_outputs

REPORT = "report.html"


def write_html_report(run_dir: str | Path) -> Path:
    """Write ``report.html`` in ``run_dir`` (replacing an older one) and return its path."""
    run = load_run(run_dir)
    out = run.path / REPORT
    with damaged_files(run_dir):
        text = render(run)
    write_atomic(out, text)
    return out


def render(run: RunFiles) -> str:
    sections = [header(run), plan_section(run), curves_section(run), test_section(run), mistakes_section(run),
                timings_section(run), environment_section(run)]
    return page(f"tlhub report: {run.name}", "\n".join(sections))


def _fmt_seconds(s) -> str:
    if s is None:
        return "—"
    s = float(s)
    return f"{s:.1f} s" if s < 120 else f"{s / 60:.1f} min ({s:.0f} s)"


def header(run: RunFiles) -> str:
    model, data = run.recipe.get("model", {}), run.recipe.get("data", {})
    what = ", ".join(x for x in (
        f"backbone {model['backbone']}" if model.get("backbone") else "",
        f"head {model['head']}" if model.get("head") else "",
        f"data {data['source']}" if data.get("source") else "",
        count_outputs(len(run.classes), (run.samples or {}).get("outputs_are") or "classes") if run.classes else "")
        if x)
    tiles = []
    for i, (k, v) in enumerate(run.scalar_metrics().items()):
        tiles.append(f'<div class="tile{" main" if i == 0 else ""}"><div class="v">{num(v)}</div>'
                     f'<div class="k">test {esc(k)}</div></div>')
    n = run.metrics.get("test_examples")
    if n is not None:
        tiles.append(f'<div class="tile"><div class="v">{num(int(n))}</div><div class="k">test examples</div></div>')
    tiles.append(f'<div class="tile"><div class="v">{esc(_fmt_seconds(run.total_seconds))}</div>'
                 f'<div class="k">total time</div></div>')
    after = run.metrics.get("after_phase") or {}
    extra = ""
    if after:
        keys = sorted({k for s in after.values() for k in s})
        extra = ("<h3>Test scores after each phase</h3>" +
                 table(["phase", *keys], [[p, *[num(s.get(k)) for k in keys]] for p, s in after.items()],
                       numeric=set(range(1, len(keys) + 1))))
    source = f" from <code>{esc(run.recipe_source)}</code>" if run.recipe_source else ""
    finished = time.strftime("%Y-%m-%d %H:%M", time.localtime((run.path / "metrics.json").stat().st_mtime))
    source += f"; finished {finished}"
    return (f"<h1>Run {esc(run.name)}</h1>\n<p class=\"sub\">{esc(what)}{source}</p>\n"
            f'<div class="tiles">{"".join(tiles)}</div>{extra}')


def plan_section(run: RunFiles) -> str:
    """One table, a column per phase: what each group does in each phase reads across a row."""
    out = ["<h2>Recipe and plan</h2>"]
    phases = (run.plan or {}).get("phases") or []
    if not phases:
        out.append('<p class="note">(plan.json not found in the run directory)</p>')
    items = []
    for i, p in enumerate(phases):
        if "groups" not in p or p.get("search"):  # a search that did not finish (older runs: no "groups")
            items.append(f"<li>phase {i + 1}: freeze = auto (planned at the start of the run)</li>")
            continue
        opts = f" {p['freeze_options']}" if p.get("freeze_options") else ""
        cache = (p.get("cache") or {}).get("note")
        items.append(f"<li><b>phase {i + 1} &lsquo;{esc(p['name'])}&rsquo;</b>: {p['epochs']} epoch(s), freeze "
                     f"{esc(p['freeze'])}{esc(opts)}{f'; cache: {esc(cache)}' if cache else ''}</li>")
    for r in (run.plan or {}).get("revisions") or []:  # the search's outcome: what the auto phase became
        items.append(f"<li>revised: phase {r['phase'] + 1} &lsquo;{esc(r['name'])}&rsquo; (freeze = auto) became "
                     f"{esc(', '.join(r['phases']))}: {esc(r['reason'])}</li>")
    if phases:
        out.append(f"<ul>{''.join(items)}</ul>")
        out.append(plan_table(run.plan.get("groups") or [], phases))
    if run.recipe_text:
        out.append("<h3>Resolved recipe (recipe.toml)</h3>")
        out.append(f'<pre class="recipe">{esc(run.recipe_text)}</pre>')
    return "\n".join(out)


def plan_table(names: list[str], phases: list[dict]) -> str:
    params = {}
    for p in phases:
        params.update({g["name"]: g["params"] for g in p.get("groups") or []})
    rows = []
    for name in [*names, "head"]:
        row = [name, Cell(num(int(params[name])) if name in params else "—", True)]
        for p in phases:
            row.append(_plan_cell(p, name))
        rows.append(row)
    headers = ["group", "params", *[f"phase {i + 1} {p.get('name', '')}".strip() for i, p in enumerate(phases)]]
    return table(headers, rows, numeric={1})


def _plan_cell(p: dict, name: str) -> Cell:
    if "groups" not in p or p.get("search"):
        return Cell("auto", css="frozen")
    lr = (p.get("lrs") or {}).get(name)
    if name == "head":
        return Cell(f"trainable<br><small>lr {_lr(lr)}</small>", css="trainable", raw=True)
    g = next((g for g in p["groups"] if g["name"] == name), None)
    if g is None:
        return Cell("—")
    bn = f"BatchNorm {esc(g['bn_mode'])}" if g.get("bn_layers") else ""
    if g["state"] == "frozen":
        return Cell("frozen" + (f"<br><small>{bn}</small>" if bn and g.get("bn_mode") != "frozen" else ""),
                    css="frozen", raw=True)
    detail = " · ".join(x for x in (bn, f"lr {_lr(lr)}") if x)
    return Cell(f"{esc(g['state'])}<br><small>{detail}</small>", css="trainable", raw=True)


def _lr(v) -> str:
    return "—" if v is None else f"{float(v):.3g}"


def curves_section(run: RunFiles) -> str:
    return ("<h2>Learning curves</h2>\n" + figure(run.path / "learning_curves.png",
                                                   "training and validation loss and accuracy per epoch") +
            '\n<p class="note">Dotted lines mark the phase boundaries; each phase is named above the curves.</p>')


def test_section(run: RunFiles) -> str:
    """The confusion matrix beside the per-class scores (they wrap under it when the matrix is wide); for a task
    without one (regression, multi-label), the pictures its task drew (``Task.pictures``) and its per-label or
    per-target scores."""
    drawn = [n for n in run.metrics.get("pictures") or [] if isinstance(n, str) and "/" not in n]
    if drawn and not run.metrics.get("confusion_matrix"):
        figs = "".join(f"<div>{figure(run.path / n, n)}</div>" for n in drawn)
        return f'<h2>Test split</h2>\n<div class="row">{figs}</div>{per_item_table(run.metrics)}'
    cm = figure(run.path / "confusion_matrix.png", "confusion matrix of the test split")
    return (f'<h2>Test split: confusion matrix and per-class scores</h2>\n<div class="row"><div>{cm}</div>'
            f"<div>{classes_table(run)}</div></div>")


def per_item_table(metrics: dict) -> str:
    """``per_label`` / ``per_target`` scores of metrics.json as a table, worst first by their first column."""
    for key, what in (("per_label", "label"), ("per_target", "target")):
        per = metrics.get(key)
        if not isinstance(per, dict) or not per or not all(isinstance(v, dict) for v in per.values()):
            continue
        cols = list(next(iter(per.values())))
        first = cols[0]
        order = sorted(per, key=lambda k: per[k].get(first) if isinstance(per[k].get(first), (int, float)) else 0)

        def cell(v) -> Cell:
            return Cell("—" if v is None else (f"{v:.4f}" if isinstance(v, float) else str(v)), True)
        rows = [[name, *[cell(per[name].get(c)) for c in cols]] for name in order]
        return (f"<h3>Per {what}, worst {esc(first)} first</h3>\n"
                + table([what, *[c.replace("_", " ") for c in cols]], rows, numeric=set(range(1, len(cols) + 1))))
    return ""


def classes_table(run: RunFiles) -> str:
    scores = per_class_scores(run)
    if not scores:
        return '<p class="note">(no confusion matrix in metrics.json)</p>'

    def bar(v: float) -> Cell:  # a bar behind the number: the weak classes stand out without reading
        pct = round(100 * v)
        style = f"background: linear-gradient(90deg, #d7ecd9 {pct}%, transparent {pct}%)"
        return Cell(f'<span style="display:block;{style}">{v:.4f}</span>', True, raw=True)

    rows = [[s.name, Cell(num(s.support), True), Cell(num(s.predicted), True), bar(s.precision), bar(s.recall),
             bar(s.f1)] for s in scores]
    mean_f1 = sum(s.f1 for s in scores) / len(scores)
    below = ["bad" if s.f1 < mean_f1 else "" for s in scores]
    return (f'<h3>Per class, worst F1 first</h3>\n<p class="note">red: F1 below the macro average ({mean_f1:.4f})</p>' +
            table(["class", "test examples", "predicted", "precision", "recall", "F1"], rows, below,
                  numeric={1, 2, 3, 4, 5}))


def _thumbnails(run: RunFiles) -> list[bytes]:
    images = read_samples_images(run.path / "samples.safetensors")
    if images is None:
        return []
    from PIL import Image
    out = []
    for arr in images:
        img = Image.fromarray(arr.squeeze())
        if max(img.size) < 136:  # small digits: enlarge with sharp pixels rather than a blur
            img = img.resize((136, 136), Image.NEAREST)
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        out.append(buf.getvalue())
    return out


def mistakes_section(run: RunFiles) -> str:
    items = (run.samples or {}).get("items") or []
    title = "<h2>Worst predictions (mistakes first, highest test loss first)</h2>"
    if not items:
        return title + '\n<p class="note">(samples.json not found in the run directory)</p>'
    wrong = sum(is_mistake(i) for i in items)
    loss = {"classification": "loss = &minus;log p(true class).", "multilabel": "loss = binary cross-entropy summed "
            "over the labels; false positives and negatives at the tuned thresholds.",
            "regression": "loss = the absolute error."}.get((run.samples or {}).get("task", "classification"), "")
    lead = f'<p class="note">{wrong} of these {len(items)} test examples are mistakes (red). {loss}</p>'
    if not drawn_samples(run.path, run.samples or {}):  # the modality captions them (text) rather than drawing

        rows = [[it.get("text", ""), it["true"], it["pred"], Cell(num(it.get("prob")), True),
                 Cell(num(it.get("prob_true")), True), Cell(num(it.get("loss")), True)] for it in items]
        css = ["bad" if is_mistake(it) else "" for it in items]
        return "\n".join([title, lead, table(["text", "true", "predicted", "p(predicted)", "p(true)", "loss"],
                                             rows, css)])
    thumbs = _thumbnails(run)
    figs = []
    for k, it in enumerate(items):
        index = it.get("index", k)
        img = (f'<img src="{png_uri(thumbs[k])}" alt="test example {esc(index)}">' if k < len(thumbs) else "")
        bad = is_mistake(it)
        figs.append(f'<figure class="thumb{" bad" if bad else ""}">{img}<figcaption>'
                    f"true <b>{esc(it['true'])}</b><br>predicted <b>{esc(it['pred'])}</b> "
                    f"(p={num(it.get('prob'), 2)})<br>loss {num(it.get('loss'), 3)} · #{esc(index)}"
                    f"</figcaption></figure>")
    return "\n".join([title, lead, f'<div class="grid">{"".join(figs)}</div>'])


def timings_section(run: RunFiles) -> str:
    phases = (run.timings or {}).get("phases") or []
    if not phases:
        return "<h2>Time</h2>\n<p class=\"note\">(timings.json not found in the run directory)</p>"
    by_phase: dict[str, list[dict]] = {}
    for r in epoch_rows(run):
        by_phase.setdefault(str(r.get("phase")), []).append(r)
    rows = []
    for t in phases:
        epochs = by_phase.get(str(t["phase"]), [])
        train = [e["train_seconds"] for e in epochs if e.get("train_seconds") is not None]
        rows.append([t["phase"], Cell(num(t.get("seconds"), 1), True), Cell(num(t.get("cache_seconds"), 1), True),
                     t.get("train_input", ""), Cell(num(len(epochs)), True),
                     Cell(num(sum(train) / len(train), 2) if train else "—", True),
                     "yes" if t.get("resumed") else ""])
    total = (f'<p>Total {esc(_fmt_seconds(run.total_seconds))} (data loading, every phase, the test split '
             "and writing the outputs).</p>")
    return ("<h2>Time per phase</h2>\n" + table(["phase", "seconds", "cache fill (s)", "training input", "epochs",
                                                "train s/epoch", "resumed"], rows, numeric={1, 2, 4, 5}) + total)


def environment_section(run: RunFiles) -> str:
    env = run.environment
    if not env:
        return "<h2>Environment</h2>\n<p class=\"note\">(environment.json not found: a run from an older tlhub)</p>"
    rows = [["python", env.get("python")], ["tlhub", env.get("tlhub")],
            *[[k, v] for k, v in (env.get("packages") or {}).items()],
            ["device", f"{env.get('device')} ({env.get('device_name')})"],
            ["processes", env.get("processes")], ["threads per process", env.get("threads_per_process")],
            ["CPU cores", env.get("cpu_count")], ["mixed precision", env.get("mixed_precision")],
            ["platform", env.get("platform")],
            *[[f"plugin {k}", v] for k, v in (env.get("plugins") or {}).items()]]
    return "<h2>Environment</h2>\n" + table(["", "value"], [[k, "—" if v is None else v] for k, v in rows])
