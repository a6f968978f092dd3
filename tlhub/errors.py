"""The one error type for user mistakes: the CLI turns it into a message and exit status 2."""
from __future__ import annotations

import difflib
from typing import Iterable


class UserError(Exception):
    """A mistake of the user's (bad recipe, unknown name, bad file). Never shown as a traceback."""

    def __init__(self, message: str | None = None, errors: Iterable[str] | None = None):
        self.errors = list(errors or ([] if message is None else [message]))
        super().__init__("\n".join(self.errors))


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """' (did you mean 'x'?)' when a close match exists, else ''."""
    close = difflib.get_close_matches(str(name), list(choices), n=3, cutoff=0.6)
    if not close:
        return ""
    return " (did you mean " + " or ".join(repr(c) for c in close) + "?)"
