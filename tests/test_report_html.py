"""report.html: one self-contained page per run, built from the run directory, checked in headless Chromium."""
from __future__ import annotations

import html
import json
import re

import pytest
from click.testing import CliRunner
from tinyruns import train_tiny, train_tiny_text

from tlhub.cli import cli
from tlhub.reporting.html import write_html_report
from tlhub.testing.browser import find_chromium, look_at


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    return train_tiny(tmp_path_factory.mktemp("report") / "run")


def test_run_writes_a_self_contained_page(tiny_run):
    page = (tiny_run / "report.html").read_text(encoding="utf-8")
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    assert f"{metrics['accuracy']:.4f}" in page
    for heading in ("Recipe and plan", "Learning curves", "confusion matrix", "Per class, worst F1 first",
                    "Worst predictions", "Time per phase", "Environment"):
        assert heading in page, heading
    # Nothing is fetched: every picture is a data: URI, and no address points off the page.
    srcs = re.findall(r'<img[^>]*src="([^"]*)"', page)
    assert len(srcs) >= 2 + 1 and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert not re.search(r'(src|href)="(https?:)?//', page) and "<script" not in page
    # The plan's per-phase BatchNorm modes and learning rates, the environment, the cache fill.
    assert "top_k" in page and "BatchNorm eval · lr 0.003" in page and "lr 0.01<" in page
    env = json.loads((tiny_run / "environment.json").read_text())
    assert env["processes"] == 1 and env["threads_per_process"] >= 1 and env["packages"]["torch"] in page
    assert "cache fill (s)" in page and "pooled-cache" in page


def test_worst_predictions_are_the_highest_losses(tiny_run):
    items = json.loads((tiny_run / "samples.json").read_text())["items"]
    wrong = [i for i in items if i["true"] != i["pred"]]
    right = [i for i in items if i["true"] == i["pred"]]
    assert items == wrong + right  # mistakes first
    for part in (wrong, right):
        assert [i["loss"] for i in part] == sorted((i["loss"] for i in part), reverse=True)
    for i in items:
        assert i["loss"] == pytest.approx(-__import__("math").log(max(i["prob_true"], 1e-12)), abs=2e-3)


def test_report_command_rewrites_the_page(tiny_run):
    (tiny_run / "report.html").unlink()
    result = CliRunner().invoke(cli, ["report", str(tiny_run)])
    assert result.exit_code == 0, result.output
    assert str(tiny_run / "report.html") in result.output and (tiny_run / "report.html").is_file()


def test_report_refuses_a_folder_that_is_not_a_run(tmp_path):
    result = CliRunner().invoke(cli, ["report", str(tmp_path)])
    assert result.exit_code == 2 and "no metrics.json" in result.output


def test_text_run_page_escapes_user_text(tmp_path):
    """Sentences and class names go through html.escape: a sentence with markup shows as text."""
    classes = ["<b>neg</b>", "pos & co"]
    (tmp_path / "metrics.json").write_text(json.dumps(
        {"accuracy": 0.75, "confusion_matrix": [[2, 1], [0, 1]], "classes": classes, "test_examples": 4}))
    items = [{"index": 3, "true": classes[0], "pred": classes[1], "prob": 0.9, "prob_true": 0.1, "loss": 2.3026,
              "text": "<script>alert('x')</script> a \"quoted\" line"},
             {"index": 0, "true": classes[1], "pred": classes[1], "prob": 0.6, "prob_true": 0.6, "loss": 0.5108,
              "text": "fine"}]
    (tmp_path / "samples.json").write_text(json.dumps({"modality": "text", "items": items}))
    (tmp_path / "recipe.toml").write_text('# resolved recipe of <evil>.toml\n[model]\nbackbone = "x</pre>"\n')
    page = write_html_report(tmp_path).read_text(encoding="utf-8")
    assert "<script" not in page and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "&lt;b&gt;neg&lt;/b&gt;" in page and "pos &amp; co" in page and "x&lt;/pre&gt;" in page
    # Per-class rows worst F1 first: <b>neg</b> (recall 2/3, precision 1) vs pos (recall 1, precision 1/2).
    rows = re.findall(r"<tr[^>]*><td>([^<]*)</td><td class=\"n\">", page)
    assert rows[:2] == ["pos &amp; co", "&lt;b&gt;neg&lt;/b&gt;"]
    # Files an older run lacks are named, not crashed on.
    assert "plan.json not found" in page and "timings.json not found" in page and "environment.json not found" in page


def test_text_run_page_shows_the_sentences(tmp_path):
    pytest.importorskip("transformers")
    pytest.importorskip("tlhub_text")
    run_dir = train_tiny_text(tmp_path)
    page = (run_dir / "report.html").read_text(encoding="utf-8")
    items = json.loads((run_dir / "samples.json").read_text())["items"]
    assert items and all("text" in i and "loss" in i for i in items)
    assert "<em>" not in page and "<blink>" not in page  # the sentences' and labels' markup shows as text
    for i in items:
        assert html.escape(i["text"]) in page and html.escape(i["true"]) in page
    assert "p(predicted)" in page and "<img" in page  # the table of sentences, and the two pictures


BROWSER = find_chromium()


@pytest.mark.skipif(isinstance(BROWSER, str), reason=f"headless browser unavailable: {BROWSER}")
def test_page_renders_in_chromium(tiny_run):
    import io

    import numpy as np
    from PIL import Image

    view = look_at(tiny_run / "report.html", browser=BROWSER)
    assert len(view.images) >= 3
    for img in view.images:  # every picture decoded, none broken
        assert img["complete"] and img["naturalWidth"] > 0 and img["naturalHeight"] > 0, img
    assert view.console_errors == []
    acc = json.loads((tiny_run / "metrics.json").read_text())["accuracy"]
    assert f"{acc:.4f}\ntest accuracy" in view.text  # the number, as rendered, next to its label
    shot = np.asarray(Image.open(io.BytesIO(view.screenshot)).convert("L"), dtype=np.float32)
    assert shot.shape[0] >= 2000 and shot.std() > 10  # the whole page, not a blank one


def test_a_failing_page_does_not_fail_the_run(tmp_path, monkeypatch):
    """Every result is on disk before the page is drawn: a page bug warns and names the command that retries."""
    import tlhub.reporting.html as report_html

    def broken(run_dir):
        raise RuntimeError("drawing failed")

    monkeypatch.setattr(report_html, "write_html_report", broken)
    run_dir = train_tiny(tmp_path / "run")
    assert (run_dir / "metrics.json").is_file() and (run_dir / "model" / "model.safetensors").is_file()
    assert not (run_dir / "report.html").exists()
    log = (run_dir / "run.log").read_text(encoding="utf-8")
    assert "report.html not written (RuntimeError: drawing failed)" in log and f"tlhub report {run_dir}" in log
