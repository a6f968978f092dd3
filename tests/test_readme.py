"""The README opens with exactly two commands, and .ci/run runs the second one as written."""
from __future__ import annotations

import re

from conftest import REPO


def quickstart_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    section = text.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", section, re.S)]


def test_two_quickstart_commands_and_ci_in_sync():
    cmds = quickstart_commands()
    assert len(cmds) == 2 and all("\n" not in c for c in cmds)
    assert cmds[0].endswith("tlhub run recipes/mnist5k_lite0.toml")
    assert (REPO / "recipes" / "mnist5k_lite0.toml").is_file()
    ci_lines = [ln.strip() for ln in (REPO / ".ci" / "run").read_text().splitlines()]
    assert cmds[1] in ci_lines
