"""The ``tlhub`` command: one module per command, attached to the group here."""
from __future__ import annotations

from tlhub.cli.advise import advise
from tlhub.cli.base import cli, user_errors
from tlhub.cli.compare import compare
from tlhub.cli.eval import eval_cmd
from tlhub.cli.export import export
from tlhub.cli.list import list_
from tlhub.cli.plugins import plugins
from tlhub.cli.predict import predict
from tlhub.cli.report import report
from tlhub.cli.run import run
from tlhub.cli.serve import serve
from tlhub.cli.show import show
from tlhub.cli.validate import validate

for _command in (run, validate, show, plugins, list_, report, compare, predict, eval_cmd, advise, export, serve):
    cli.add_command(_command)

__all__ = ["cli", "main", "user_errors"]


def main():
    cli(prog_name="tlhub")
