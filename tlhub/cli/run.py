"""``tlhub run``: train a recipe."""
from __future__ import annotations

import click

import tlhub
from tlhub.cli.base import user_errors


@click.command()
@click.argument("recipe", type=click.Path(dir_okay=False))
@click.argument("overrides", nargs=-1)
@click.option("--overwrite", is_flag=True, help="Replace the run in output.dir; the new run is built beside it and swapped in when it finishes.")
@click.option("--resume", is_flag=False, flag_value="latest", default=None, metavar="[RUN_DIR]",
              help="Continue from the newest whole checkpoint of RUN_DIR (default: output.dir, or the newest "
                   "runs/<recipe>-* with checkpoints).")
@click.option("--quiet", "-q", is_flag=True, help="Log to run.log only.")
@user_errors
def run(recipe, overrides, overwrite, resume, quiet):
    """Train RECIPE; OVERRIDES are key=value with TOML values (phases.1.epochs=2 data.batch_size=64)."""
    result = tlhub.run(recipe, overrides, overwrite=overwrite, quiet=quiet, resume=resume)
    name = result.primary_metric
    score = result.metrics.get(name)
    if score is not None:
        click.echo(f"test {name.replace('_', ' ')} {score:.4f}; results in {result.run_dir}")
    page = result.run_dir / "report.html"
    if quiet and page.is_file():  # otherwise the log's last lines said so
        click.echo(f"report: {page}")
