"""The click group and the boundary where user mistakes become one message and exit status 2."""
from __future__ import annotations

import functools
import sys

import click

from tlhub.errors import UserError


def user_errors(fn):
    """Turn ``UserError`` into 'error: ...' lines on stderr and exit 2; real bugs keep their traceback."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UserError as exc:
            for line in exc.errors or [str(exc)]:
                click.echo(f"error: {line}", err=True)
            sys.exit(getattr(exc, "exit_code", 2))
        except OSError as exc:  # an output the user cannot write (read-only, full, no such folder): no traceback
            # local: loads when the command runs, so that `tlhub --help` stays fast
            from tlhub.artifacts.writable import os_error_message
            message = os_error_message(exc)
            if message is None:
                raise
            click.echo(f"error: {message}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tlhub")
def cli():
    """tlhub: transfer learning from a TOML recipe (backbone + head + freeze policy per phase)."""
