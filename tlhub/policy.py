"""The FreezePolicy contract (torch-free so listing policies stays cheap)."""
from __future__ import annotations


class FreezePolicy:
    """Decides which backbone parameters train in a phase."""

    def trainable(self, groups: list[tuple[str, list[str]]]) -> set[str]:
        """Names of the parameters that train, given the backbone's ordered parameter groups."""
        raise NotImplementedError
