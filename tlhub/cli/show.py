"""``tlhub show``: the resolved recipe, or its plan."""
from __future__ import annotations

import click

from tlhub.cli.base import user_errors
from tlhub.plugins import get_registry
from tlhub.recipe import load_and_validate, to_toml


@click.command()
@click.argument("recipe", type=click.Path(dir_okay=False))
@click.argument("overrides", nargs=-1)
@click.option("--plan", "as_plan", is_flag=True,
              help="Print the run plan instead: per phase, every group's state, BatchNorm mode and learning rate.")
@user_errors
def show(recipe, overrides, as_plan):
    """Print the resolved recipe (defaults filled in, overrides applied) as TOML, or with --plan its plan."""
    r = load_and_validate(recipe, overrides)
    if not as_plan:
        click.echo(to_toml(r), nl=False)
        return
    # local: tlhub.recipe.plan imports torch; `tlhub --help` must not
    from tlhub.recipe.plan import build_plan
    click.echo(build_plan(r, get_registry()).format())
