"""The ``tlhub`` command. User mistakes become one message and exit status 2 at this boundary."""
from __future__ import annotations

import functools
import json
import sys

import click

from .errors import UserError

KIND_CHOICES = ("backbones", "heads", "freeze-policies", "data-sources")


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
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tlhub")
def cli():
    """tlhub: transfer learning from a TOML recipe (backbone + head + freeze policy per phase)."""


@cli.command()
@click.argument("recipe", type=click.Path(dir_okay=False))
@click.argument("overrides", nargs=-1)
@click.option("--overwrite", is_flag=True, help="Replace the contents of an existing output.dir.")
@click.option("--resume", is_flag=False, flag_value="latest", default=None, metavar="[RUN_DIR]",
              help="Continue from the newest whole checkpoint of RUN_DIR (default: output.dir, or the newest "
                   "runs/<recipe>-* with checkpoints).")
@click.option("--quiet", "-q", is_flag=True, help="Log to run.log only.")
@user_errors
def run(recipe, overrides, overwrite, resume, quiet):
    """Train RECIPE; OVERRIDES are key=value with TOML values (phases.1.epochs=2 data.batch_size=64)."""
    from .train import run as run_recipe
    result = run_recipe(recipe, overrides, overwrite=overwrite, quiet=quiet, resume=resume)
    acc = result.metrics.get("accuracy")
    if acc is not None:
        click.echo(f"test accuracy {acc:.4f}; results in {result.run_dir}")


@cli.command()
@click.argument("recipes", nargs=-1, required=True, type=click.Path(dir_okay=False))
@user_errors
def validate(recipes):
    """Check recipes (syntax, keys, types, component names and options) without training."""
    from .recipe import load_and_validate
    failed = 0
    for path in recipes:
        try:
            load_and_validate(path)
            click.echo(f"{path}: ok")
        except UserError as exc:
            failed += 1
            for line in exc.errors:
                click.echo(f"error: {path}: {line}", err=True)
    if failed:
        sys.exit(2)


@cli.command()
@click.argument("recipe", type=click.Path(dir_okay=False))
@click.argument("overrides", nargs=-1)
@user_errors
def show(recipe, overrides):
    """Print the resolved recipe (defaults filled in, overrides applied) as TOML."""
    from .recipe import load_and_validate, to_toml
    click.echo(to_toml(load_and_validate(recipe, overrides)), nl=False)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@user_errors
def plugins(as_json):
    """List loaded plugins with their versions and the hooks they implement."""
    from .plugins import plugin_infos
    infos = plugin_infos()
    if as_json:
        click.echo(json.dumps([i.__dict__ for i in infos], indent=2))
        return
    for i in infos:
        status = f"FAILED: {i.error}" if i.error else ", ".join(i.hooks)
        click.echo(f"{i.name:<32} {i.distribution} {i.version:<10} {status}")


@cli.command(name="list")
@click.argument("kind", type=click.Choice(KIND_CHOICES))
@user_errors
def list_(kind):
    """List registered components of KIND (name, plugin, summary) without building any model."""
    from .plugins import get_registry
    table = get_registry().items[kind]
    if not table:
        click.echo(f"no {kind} registered")
        return
    width = max(len(n) for n in table)
    pw = max(len(s.plugin) for s in table.values())
    for name in sorted(table):
        spec = table[name]
        click.echo(f"{name:<{width}}  {spec.plugin:<{pw}}  {spec.summary}")


@cli.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@user_errors
def report(run_dir):
    """Regenerate the pictures of a finished run from its files."""
    from pathlib import Path

    from .report import write_report
    if not (Path(run_dir) / "metrics.json").is_file():
        raise UserError(f"{run_dir}: not a finished tlhub run directory (no metrics.json)")
    for path in write_report(Path(run_dir)):
        click.echo(str(path))


# Commands that live in their own modules are attached here (one line each).
from .cli_use import advise, eval_cmd, predict  # noqa: E402
cli.add_command(predict)
cli.add_command(eval_cmd)
cli.add_command(advise)


def main():
    cli(prog_name="tlhub")
