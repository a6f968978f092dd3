"""Commands that use a trained model or measure before training: ``predict``, ``eval`` and ``advise``."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from .cli import user_errors
from .errors import UserError

DEVICE_HELP = "cpu (default), cuda, cuda:N or auto (a GPU when one is visible)."


def _key_values(items, flag: str) -> dict:
    from .recipe import parse_value
    out = {}
    for item in items:
        key, eq, text = item.partition("=")
        if not eq or not key.strip():
            raise UserError(f"{flag} {item!r}: expected key=value (the value in TOML: 3, 0.5, true, \"x\", [1, 2])")
        out[key.strip()] = parse_value(text.strip())
    return out


def _cell(text: str, width: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + "…"


@click.command()
@click.argument("model", type=click.Path())
@click.argument("inputs", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON list: input, label, prob and every class's probs.")
@click.option("--top", default=1, show_default=True, help="Classes shown per input in the table.")
@click.option("--batch-size", default=64, show_default=True, help="Inputs per forward pass.")
@click.option("--device", default="cpu", show_default=True, help=DEVICE_HELP)
@user_errors
def predict(model, inputs, as_json, top, batch_size, device):
    """Predict with a trained MODEL (a run directory or its model/ folder).

    INPUTS: image files or folders of images for an image model, texts for a text model; `-` reads
    one input per line from stdin (paths or texts).
    """
    from .predict import collect_images, load

    predictor = load(model, device=device)
    items: list[str] = []
    for arg in inputs:
        if arg == "-":
            items += [line.rstrip("\r\n") for line in sys.stdin if line.strip()]
        else:
            items.append(arg)
    if predictor.modality == "image":
        items = collect_images(items)
    if not items:
        raise UserError("no inputs to predict (stdin was empty)")
    preds = predictor.predict(items, batch_size=batch_size)
    if as_json:
        click.echo(json.dumps([{"input": i, **p.to_dict()} for i, p in zip(items, preds)], indent=2))
        return
    top = max(1, top)
    shown = [_cell(i, 60) for i in items]
    width = max(len("input"), *(len(s) for s in shown))
    lw = max(len("label"), *(len(c) for c in predictor.classes))
    click.echo(f"{'input':<{width}}  {'label':<{lw}}  {'prob':>6}")
    for s, p in zip(shown, preds):
        ranked = sorted(p.probs.items(), key=lambda kv: -kv[1])[:top]
        click.echo(f"{s:<{width}}  " + "  ".join(f"{c:<{lw}}  {v:>6.4f}" for c, v in ranked))


@click.command(name="eval")
@click.argument("model", type=click.Path())
@click.option("--data", "source", required=True, help="A registered data source (tlhub list data-sources).")
@click.option("--option", "-o", "options", multiple=True, help="Data source option key=value (repeatable).")
@click.option("--split", default="test", show_default=True, type=click.Choice(["test", "val", "train", "all"]),
              help="Which examples to score: the source's test split (carved as the trainer does when the "
                   "source has none) or all of them.")
@click.option("--out", "out", type=click.Path(file_okay=False), default=None,
              help="Folder for metrics.json and pictures [default: RUN_DIR/eval-SOURCE-SPLIT].")
@click.option("--overwrite", is_flag=True, help="Write into a non-empty --out folder.")
@click.option("--batch-size", default=64, show_default=True, help="Inputs per forward pass.")
@click.option("--device", default="cpu", show_default=True, help=DEVICE_HELP)
@user_errors
def eval_cmd(model, source, options, split, out, overwrite, batch_size, device):
    """Score a trained MODEL on a data source; write metrics.json and pictures into --out."""
    from .predict import evaluate_source, load

    predictor = load(model, device=device)
    if out is None:
        run_dir = predictor.model_dir.parent if predictor.model_dir.name == "model" else predictor.model_dir
        out = run_dir / f"eval-{source}-{split}"
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise UserError(f"--out: {out} already exists and is not empty; pass --overwrite or choose another folder")
    metrics = evaluate_source(predictor, source, _key_values(options, "--option"), split, out, batch_size,
                              base_dir=Path.cwd(), say=lambda m: click.echo(m, err=True))
    from .metrics import format_scores
    click.echo(f"{source} ({split}, {metrics['test_examples']} examples): {format_scores(metrics)}")
    click.echo(f"results in {out}")


@click.command()
@click.argument("recipe", type=click.Path(dir_okay=False))
@click.argument("overrides", nargs=-1)
@click.option("--write", "write", type=click.Path(dir_okay=False), default=None,
              help="Write the recipe with the recommended phases to this TOML file.")
@click.option("--overwrite", is_flag=True, help="Replace an existing --write file.")
@click.option("--max-examples", default=2000, show_default=True, help="Training examples the linear probes use.")
@click.option("--json", "as_json", is_flag=True, help="Measurements and plan as JSON.")
@user_errors
def advise(recipe, overrides, write, overwrite, max_examples, as_json):
    """Measure RECIPE's data and frozen backbone, then recommend the phases (freeze plan) to train.

    Counts examples per class, fits linear probes on frozen features after the top parameter
    groups, and applies the small/large x similar/different rule; see tlhub.advise.
    """
    from . import advise as adv
    from .recipe import load_recipe

    if write and Path(write).exists() and not overwrite:
        raise UserError(f"--write: {write} already exists; pass --overwrite to replace it")
    from .recipe import apply_overrides, load_toml
    r = load_recipe(recipe, overrides)
    raw = apply_overrides(load_toml(recipe), list(overrides))
    advice = adv.measure(r, max_train=max_examples, say=lambda m: click.echo(m, err=True))
    if as_json:
        click.echo(json.dumps(advice.to_dict(), indent=2))
    else:
        click.echo(advice.format())
    if write:
        path = adv.write_recipe(r, advice, write, overwrite=overwrite, raw=raw)
        click.echo(f"wrote {path}; run it with: tlhub run {path}", err=as_json)
