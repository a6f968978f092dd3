"""Built-in tasks, registered like a plugin's: ``classification``, ``multilabel``, ``regression`` (``tlhub.tasks``)."""
from __future__ import annotations

from tlhub.hookspecs import hookimpl
from tlhub.options import Opt
from tlhub.task import TaskSpec


def _classification():
    # local: tlhub.tasks.classification imports numpy; `tlhub list` must not
    from tlhub.tasks.classification import Classification
    return Classification()


def _multilabel():
    # local: tlhub.tasks.multilabel imports numpy; `tlhub list` must not
    from tlhub.tasks.multilabel import MultiLabel
    return MultiLabel()


def _regression():
    # local: tlhub.tasks.regression imports numpy; `tlhub list` must not
    from tlhub.tasks.regression import Regression
    return Regression()


def _unit(value) -> str:
    return "" if isinstance(value, list) and all(isinstance(v, str) for v in value) else "must be a list of names"


@hookimpl
def register_tasks(register):
    register(TaskSpec("classification", "single-label classification: one class per example, cross-entropy, "
                                        "ranked by accuracy", _classification, options=(
        Opt("threshold", str, "argmax", "two classes: 'f1' tunes the second class's decision threshold on the "
                                        "validation split for its F1 (stored with the model); 'argmax': the "
                                        "most probable class", choices=("argmax", "f1")),)))
    register(TaskSpec("multilabel", "multi-label classification: any number of labels per example, sigmoid + "
                                    "binary cross-entropy, thresholds per label tuned on validation, ranked by "
                                    "macro F1", _multilabel, options=(
        Opt("separator", str, "", "what separates labels in a label cell ('': any of , | ;)"),
        Opt("label_names", list, [], "names of integer label ids (id i is the i-th name); empty: ids are names",
            check=_unit),
        Opt("pos_weight", bool, False, "weigh each label's positives by negatives/positives in train (BCE "
                                       "pos_weight, capped at 100)"),
        Opt("allow_empty", bool, False, "allow examples with no label at all"))))
    register(TaskSpec("regression", "regression: one or several float targets, standardised for training, MSE "
                                    "or Huber loss, ranked by Pearson's r", _regression, options=(
        Opt("loss", str, "mse", "training loss on the standardised targets", choices=("mse", "huber")),
        Opt("clip", bool, False, "clip predictions to the training split's range"),
        Opt("target_names", list, [], "names of the target columns, in order (empty: the columns' own names; a "
                                      "file without a header names them by index)", check=_unit))))
