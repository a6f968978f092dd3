"""``tlhub plugins``: loaded plugins, versions and hooks."""
from __future__ import annotations

import json

import click

from tlhub.cli.base import user_errors
from tlhub.plugins import plugin_infos


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@user_errors
def plugins(as_json):
    """List loaded plugins with their versions and the hooks they implement."""
    infos = plugin_infos()
    if as_json:
        click.echo(json.dumps([i.__dict__ for i in infos], indent=2))
        return
    for i in infos:
        status = f"FAILED: {i.error}" if i.error else ", ".join(i.hooks)
        click.echo(f"{i.name:<32} {i.distribution} {i.version:<10} {status}")
