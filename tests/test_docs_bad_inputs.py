"""docs/bad-inputs.md names only tests that exist."""
from __future__ import annotations

import re

from conftest import REPO


def test_every_named_test_exists():
    text = (REPO / "docs" / "bad-inputs.md").read_text()
    names = set(re.findall(r"`(test_[a-z0-9_]+)`", text))
    assert len(names) > 30
    defined = set()
    for path in (REPO / "tests").glob("test_*.py"):
        defined |= set(re.findall(r"^def (test_[a-z0-9_]+)", path.read_text(), re.M))
    assert sorted(names - defined) == []
