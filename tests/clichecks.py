"""CLI helpers shared by the hostile and reliability tests: run a command in process, check a refusal."""
from __future__ import annotations

import hashlib
from pathlib import Path

from click.testing import CliRunner

from tlhub.cli import cli


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def refused(res, *needles):
    """Exit 2, no traceback, every needle in the message."""
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    for n in needles:
        assert n in res.output, res.output


def snapshot(folder: Path) -> dict[str, str]:
    """Every file's hash: what a command that must change nothing is compared against."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}
