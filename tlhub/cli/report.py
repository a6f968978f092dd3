"""``tlhub report RUN``: redraw a finished run's pictures and its page (report.html)."""
from __future__ import annotations

import click

from tlhub.cli.base import user_errors
from tlhub.errors import UserError


@click.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@user_errors
def report(run_dir):
    """Redraw the pictures and report.html of a finished run from its files."""
    from pathlib import Path

    # local: loads when the command runs, so that `tlhub --help` stays fast
    from tlhub.reporting.html import write_html_report
    from tlhub.reporting.pictures import write_report
    if not (Path(run_dir) / "metrics.json").is_file():
        raise UserError(f"{run_dir}: not a finished tlhub run directory (no metrics.json)")
    for path in write_report(Path(run_dir)):
        click.echo(str(path))
    click.echo(str(write_html_report(run_dir)))
