"""``tlhub eval``: score a trained model on a data source."""
from __future__ import annotations

from pathlib import Path

import click

from tlhub.cli.base import user_errors
from tlhub.cli.options import DEVICE_HELP, key_values
from tlhub.errors import UserError


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
    from tlhub.use.evaluate import evaluate_source  # local: tlhub.use.evaluate imports torch; `tlhub --help` must not
    from tlhub.use.load import load  # local: loads when the command runs, so that `tlhub --help` stays fast

    predictor = load(model, device=device)
    if out is None:
        run_dir = predictor.model_dir.parent if predictor.model_dir.name == "model" else predictor.model_dir
        out = run_dir / f"eval-{source}-{split}"
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out: {out} is a file, not a folder")
    # local: loads when the command runs, so that `tlhub --help` stays fast
    from tlhub.artifacts.rundir import is_run_dir
    if out.exists() and (is_run_dir(out) or (out / "config.json").is_file() or (out / "model").is_dir()):
        raise UserError(f"--out: {out} is a run or model folder; eval writes its own metrics.json and pictures, "
                        f"which would pass for the run's: choose another folder (default: RUN_DIR/eval-SOURCE-SPLIT)")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise UserError(f"--out: {out} already exists and is not empty; pass --overwrite or choose another folder")
    # local: loads when the command runs, so that `tlhub --help` stays fast
    from tlhub.artifacts.writable import writable_folder
    writable_folder(out, "--out")  # before scoring: the predictions are not lost to an unwritable folder
    metrics = evaluate_source(predictor, source, key_values(options, "--option"), split, out, batch_size,
                              base_dir=Path.cwd(), say=lambda m: click.echo(m, err=True))
    # local: loads when the command runs, so that `tlhub --help` stays fast
    from tlhub.metrics import format_scores
    click.echo(f"{source} ({split}, {metrics['test_examples']} examples): {format_scores(metrics)}")
    click.echo(f"results in {out}")
