"""Built-in freeze policies: frozen, none, top_k, from_group, pattern."""
from __future__ import annotations

import re

from tlhub.errors import UserError, did_you_mean
from tlhub.hookspecs import hookimpl
from tlhub.options import REQUIRED, Opt
from tlhub.policy import FreezePolicy
from tlhub.registry import FreezePolicySpec


class GroupPolicy(FreezePolicy):
    """Trains the groups whose index ``select(n_groups, names)`` returns."""

    def __init__(self, select):
        self.select = select

    def trainable(self, groups):
        names = [n for n, _ in groups]
        keep = set(self.select(len(groups), names))
        return {p for i, (_, params) in enumerate(groups) if i in keep for p in params}


class PatternPolicy(FreezePolicy):
    def __init__(self, regex: str):
        try:
            self.regex = re.compile(regex)
        except re.error as exc:
            raise UserError(f"freeze pattern {regex!r} is not a valid regular expression: {exc}") from None

    def trainable(self, groups):
        found = {p for _, params in groups for p in params if self.regex.search(p)}
        if not found:  # a typo would otherwise freeze the whole backbone without a word
            raise UserError(f"freeze_options.regex: {self.regex.pattern!r} matches no parameter name (groups: "
                            f"{', '.join(n for n, _ in groups)}; names look like "
                            f"{next((p for _, ps in groups for p in ps), '?')!r})")
        return found


def _top_k(options):
    k = options["k"]
    if k < 1:
        raise UserError(f"freeze_options.k: must be >= 1, got {k} (freeze = \"frozen\" trains no group)")

    def select(n, names):
        if k > n:  # would silently train everything
            raise UserError(f"freeze_options.k: the backbone has {n} groups ({', '.join(names)}), got k = {k}; "
                            f"freeze = \"none\" trains them all")
        return range(n - k, n)
    return GroupPolicy(select)


def _from_group(options):
    group = options["group"]

    def select(n, names):
        if group not in names:
            raise UserError(f"freeze_options.group: the backbone has no group {group!r}{did_you_mean(group, names)} "
                            f"(groups: {', '.join(names)})")
        return range(names.index(group), n)
    return GroupPolicy(select)


@hookimpl
def register_freeze_policies(register):
    register(FreezePolicySpec("frozen", "the whole backbone frozen; only the head trains",
                              lambda options: GroupPolicy(lambda n, names: ())))
    register(FreezePolicySpec("none", "every backbone parameter trains (full fine-tuning)",
                              lambda options: GroupPolicy(lambda n, names: range(n))))
    register(FreezePolicySpec("top_k", "the last k parameter groups train, the rest stay frozen", _top_k,
                              options=(Opt("k", int, REQUIRED, "number of top groups to train (1 .. the number of groups)"),)))
    register(FreezePolicySpec("from_group", "the named parameter group and every group after it train",
                              _from_group, options=(Opt("group", str, REQUIRED, "first trainable group"),)))
    register(FreezePolicySpec("pattern", "parameters whose name matches a regular expression train",
                              lambda options: PatternPolicy(options["regex"]),
                              options=(Opt("regex", str, REQUIRED, "regex searched in parameter names"),)))
