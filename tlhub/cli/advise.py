"""``tlhub advise``: measure a recipe's data and backbone, search its freeze plan, or test learning rates."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import click

from tlhub.cli.base import user_errors
from tlhub.errors import UserError
from tlhub.recipe import apply_overrides, load_and_validate, load_toml


@click.command()
@click.argument("recipe", type=click.Path(dir_okay=False))
@click.argument("overrides", nargs=-1)
@click.option("--write", "write", type=click.Path(dir_okay=False), default=None,
              help="Write the recipe with the chosen phases to this TOML file (never replaces one).")
@click.option("--overwrite", is_flag=True, help="Replace an existing --write file.")
@click.option("--rule", is_flag=True, help="Only the four-case rule on linear probes (no trials; seconds).")
@click.option("--lr", "lr_only", is_flag=True, help="Only the lr range test of one phase (see --phase).")
@click.option("--phase", "phase_index", default=0, show_default=True, help="--lr: the phase tested (from 0).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Folder for the trials and auto_search.json/png, or --lr's lr_find.png (default: a temporary one; "
                   "--lr: the working directory).")
@click.option("--max-examples", default=2000, show_default=True, help="Training examples the linear probes use.")
@click.option("--json", "as_json", is_flag=True, help="Measurements and plan as JSON.")
@user_errors
def advise(recipe, overrides, write, overwrite, rule, lr_only, phase_index, out_dir, max_examples, as_json):
    """Measure RECIPE and choose its phases (freeze plan) the way freeze = "auto" does.

    By default runs the search of freeze = "auto" (short trials of candidate plans, judged on the
    validation split) and prints its table; --write saves the winner as an ordinary recipe that
    reproduces it without searching. --rule applies only the small/large x similar/different rule
    to linear probes; --lr runs only the lr range test. See docs/freeze.md.
    """
    from tlhub.auto import advise as adv  # local: tlhub.auto.advise imports torch; `tlhub --help` must not
    from tlhub.auto import standalone  # local: tlhub.auto.standalone imports torch; `tlhub --help` must not
    from tlhub.auto.writing import write_recipe  # local: loads when the command runs, so that `tlhub --help` stays fast

    if write and Path(write).exists() and not overwrite:
        raise UserError(f"--write: {write} already exists; pass --overwrite to replace it")
    if write:  # before the search: its minutes are not lost to an unwritable path
        # local: loads when the command runs, so that `tlhub --help` stays fast
        from tlhub.artifacts.writable import writable_folder
        writable_folder(Path(write).parent, "--write")
    if out_dir:
        # local: loads when the command runs, so that `tlhub --help` stays fast
        from tlhub.artifacts.writable import writable_folder
        writable_folder(out_dir, "--out")
    r = load_and_validate(recipe, overrides)
    raw = apply_overrides(load_toml(recipe), list(overrides))

    def say(message: str) -> None:
        click.echo(message, err=True)

    _log_to_stderr()
    if lr_only:
        plot = Path(out_dir or ".") / "lr_find.png"
        found = standalone.lr_range_test(r, phase_index, plot)
        click.echo(json.dumps(found.to_dict(), indent=2) if as_json else f"{found.format()}\nplot: {plot}")
        return
    if rule:
        advice = adv.measure(r, max_train=max_examples, say=say)
        click.echo(json.dumps(advice.to_dict(), indent=2) if as_json else advice.format())
        if write:
            path = write_recipe(r, advice.phases, write, adv.header(advice, recipe), overwrite=overwrite, raw=raw)
            click.echo(f"wrote {path}; run it with: tlhub run {path}", err=as_json)
        return
    with tempfile.TemporaryDirectory(prefix="tlhub-advise-") as tmp:
        result = standalone.search(r, Path(out_dir or tmp))[0]
    chosen = " then ".join(f"{p['name']} ({p['freeze']}, lr {p['lr']:g}, up to {p['epochs']} epochs)"
                           for p in result.phases)
    click.echo(json.dumps(result.to_dict(), indent=2) if as_json else
               f"{result.table()}\nwinner: {result.winner}; phases: {chosen}")
    if write:
        best = next(t.val_score for t in result.trials if t.status.startswith("winner"))
        header = [(f"Written by `tlhub advise {recipe}`: the winner of the freeze = \"auto\" search "
                   f"({result.winner}, best validation {result.metric} {best:.4f})."),
                  "Runs the chosen phases without searching (early_stop and restore_best decide on validation)."]
        given = list(raw.get("phases", []))
        at = next((i for i, p in enumerate(r.phases) if p.freeze == "auto"), None)
        phases = result.phases if at is None else given[:at] + result.phases + given[at + 1:]
        path = write_recipe(r, phases, write, header, overwrite=overwrite, raw=raw)
        click.echo(f"wrote {path}; run it with: tlhub run {path}", err=as_json)


def _log_to_stderr() -> None:
    """The search's log (estimate, rungs, decisions) on stderr: stdout keeps only the table or JSON."""
    import logging
    import sys
    log = logging.getLogger("tlhub")
    log.handlers.clear()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
