"""Built-in tasks, registered like a plugin's: single-label ``classification`` (see ``tlhub.tasks``)."""
from __future__ import annotations

from tlhub.hookspecs import hookimpl
from tlhub.task import TaskSpec


def _classification():
    from tlhub.tasks.classification import Classification
    return Classification()


@hookimpl
def register_tasks(register):
    register(TaskSpec("classification", "single-label classification: one class per example, cross-entropy, "
                                        "ranked by accuracy", _classification))
