"""``tlhub validate``: check recipes without training."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from tlhub.cli.base import user_errors
from tlhub.errors import UserError
from tlhub.recipe import load_and_validate


@click.command()
@click.argument("recipes", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--data", "read_data", is_flag=True,
              help="Also load each recipe's data and carve its splits, as `tlhub run` does before training: bad "
                   "labels, missing pair columns, classes the task cannot take, empty splits.")
@click.option("--set", "-s", "overrides", multiple=True, metavar="KEY=VALUE",
              help="An override applied to every recipe, as `tlhub run RECIPE KEY=VALUE` takes it; repeatable.")
@user_errors
def validate(recipes, read_data, overrides):
    """Check recipes (syntax, keys, types, component names and options) without training."""
    failed = 0
    for path in recipes:
        try:
            recipe = load_and_validate(path, list(overrides))
            click.echo(f"{path}: ok" + (f" ({_data_summary(recipe)})" if read_data else ""))
        except UserError as exc:
            failed += 1
            for line in exc.errors:  # file errors name the file already
                click.echo(f"error: {line}" if line.startswith(f"{path}:") else f"error: {path}: {line}", err=True)
    if failed:
        sys.exit(2)


def _data_summary(recipe) -> str:
    """The run's own data setup (tlhub.data.splits.make_splits), so the two cannot disagree; UserError if it fails."""
    # local: loading data imports the data sources' libraries, which plain validate does not need
    from tlhub.data.splits import make_splits
    from tlhub.interfaces import DataContext
    from tlhub.plugins import get_registry
    splits = make_splits(recipe, get_registry(), DataContext(Path(recipe.base_dir), recipe.data.split_seed,
                                                             log=lambda _msg: None))
    return f"data: {splits.summary()}"
