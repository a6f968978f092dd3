"""``tlhub validate``: check recipes without training."""
from __future__ import annotations

import sys

import click

from tlhub.cli.base import user_errors
from tlhub.errors import UserError
from tlhub.recipe import load_and_validate


@click.command()
@click.argument("recipes", nargs=-1, required=True, type=click.Path(dir_okay=False))
@user_errors
def validate(recipes):
    """Check recipes (syntax, keys, types, component names and options) without training."""
    failed = 0
    for path in recipes:
        try:
            load_and_validate(path)
            click.echo(f"{path}: ok")
        except UserError as exc:
            failed += 1
            for line in exc.errors:  # file errors name the file already
                click.echo(f"error: {line}" if line.startswith(f"{path}:") else f"error: {path}: {line}", err=True)
    if failed:
        sys.exit(2)
