"""``tlhub compare RUN RUN ...``: runs side by side, as a table and as compare.html."""
from __future__ import annotations

import click

from tlhub.cli.base import user_errors


@click.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option("--out", default="compare.html", show_default=True, type=click.Path(),
              help="The page to write (a folder: compare.html inside it).")
@click.option("--overwrite", is_flag=True, help="Replace an existing --out file.")
@user_errors
def compare(runs, out, overwrite):
    """Compare finished runs: recipe differences, time per phase, validation and test scores; writes a page
    with the validation curves overlaid. Refuses runs of different tasks or label sets."""
    # local: loads when the command runs, so that `tlhub --help` stays fast
    from tlhub.reporting.compare import (
        compare_runs,
        format_comparison,
        output_path,
        write_compare_html,
    )
    from tlhub.reporting.rundata import damaged_files
    path = output_path(out, overwrite)  # before reading anything: never replace a file by surprise
    with damaged_files(", ".join(runs)):
        comparison = compare_runs(list(runs))
        click.echo(format_comparison(comparison))
        click.echo(f"page: {write_compare_html(comparison, path)}")
