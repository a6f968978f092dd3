"""``tlhub list KIND``: registered components without building any model."""
from __future__ import annotations

import click

from tlhub.cli.base import user_errors
from tlhub.plugins import get_registry

KIND_CHOICES = ("modalities", "tasks", "backbones", "heads", "freeze-policies", "data-sources", "metrics", "optimizers",
                "schedulers")


@click.command(name="list")
@click.argument("kind", type=click.Choice(KIND_CHOICES))
@user_errors
def list_(kind):
    """List registered components of KIND (name, plugin, summary) without building any model."""
    table = get_registry().items[kind]
    if not table:
        click.echo(f"no {kind} registered")
        return
    width = max(len(n) for n in table)
    pw = max(len(s.plugin) for s in table.values())
    for name in sorted(table):
        spec = table[name]
        click.echo(f"{name:<{width}}  {spec.plugin:<{pw}}  {spec.summary}")
