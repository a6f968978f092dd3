"""``tlhub advise``: measure a recipe's data and backbone, then plan its phases."""
from __future__ import annotations

import json
from pathlib import Path

import click

from tlhub.cli.base import user_errors
from tlhub.errors import UserError


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
    groups, and applies the small/large x similar/different rule; see tlhub.auto.advise.
    """
    from tlhub.auto import advise as adv
    from tlhub.recipe import load_recipe

    if write and Path(write).exists() and not overwrite:
        raise UserError(f"--write: {write} already exists; pass --overwrite to replace it")
    from tlhub.recipe import apply_overrides, load_toml
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
