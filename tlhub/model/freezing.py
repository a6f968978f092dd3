"""How a phase freezes the model: the per-group rule (shared by the run plan and the trainer) and applying it.

A group with no trainable parameter runs wholly in eval mode (no dropout or drop-path) and its
BatchNorm is 'frozen' (no grad, eval mode). A trainable group's BatchNorm follows ``bn_default`` or
``bn_groups[name]``: 'frozen', 'eval' (affine trains, running statistics fixed) or 'train' (batch
statistics, running statistics update).
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from tlhub.errors import UserError, did_you_mean
from tlhub.model.transfer import TransferModel

_BN = nn.modules.batchnorm._BatchNorm
_CONV = nn.modules.conv._ConvNd


@dataclass(frozen=True)
class GroupState:
    """One backbone group in one phase: parameter counts, BatchNorm layers and their mode."""

    name: str
    params: int
    trainable: int
    bn_layers: int
    bn_mode: str

    @property
    def state(self) -> str:
        return "frozen" if self.trainable == 0 else ("trainable" if self.trainable == self.params else "partial")


@dataclass(frozen=True)
class GroupLayout:
    """What the rule needs to know of a group: parameter names and sizes, BatchNorm layers and their parameters."""

    name: str
    params: dict[str, int]  # parameter name -> numel, in named_parameters() order
    bn_layers: int
    bn_params: frozenset[str]
    staged: bool = True  # the backbone's ``staged``: False makes only a fully frozen backbone cacheable
    grouped_convs: int = 0  # convolutions with groups > 1 (depthwise): bf16 trains them slower on a CPU


def group_layouts(backbone) -> list[GroupLayout]:
    """Layouts of a backbone's groups (works on a meta-device backbone: only shapes are read)."""
    named = dict(backbone.named_parameters())
    owner = {id(p): n for n, p in named.items()}
    out = []
    for gname, module in backbone.groups():
        bns = [m for m in module.modules() if isinstance(m, _BN)]
        bn_params = frozenset(owner[id(p)] for m in bns for p in m.parameters(recurse=False))
        grouped = sum(1 for m in module.modules() if isinstance(m, _CONV) and m.groups > 1)
        out.append(GroupLayout(gname, {owner[id(p)]: p.numel() for p in module.parameters()}, len(bns), bn_params,
                               bool(getattr(backbone, "staged", True)), grouped))
    return out


def resolve_groups(layouts: list[GroupLayout], trainable: set[str], bn_default: str,
                   bn_groups: dict) -> tuple[list[GroupState], set[str]]:
    """(per-group states, names of the parameters that really train): the freezing rule, without a model."""
    train_names: set[str] = set()
    states = []
    for g in layouts:
        chosen = [n for n in g.params if n in trainable]
        mode = "frozen" if not chosen else bn_groups.get(g.name, bn_default)
        if mode == "frozen":
            chosen = [n for n in chosen if n not in g.bn_params]
        train_names.update(chosen)
        states.append(GroupState(g.name, sum(g.params.values()), sum(g.params[n] for n in chosen), g.bn_layers, mode))
    return states, train_names


def apply_phase(model: TransferModel, trainable: set[str], bn_default: str, bn_groups: dict) -> list[GroupState]:
    """Set requires_grad and BatchNorm modes for one phase (see the module docstring); return the audit."""
    bb = model.backbone
    unknown = set(bn_groups) - set(bb.group_names)
    if unknown:
        g = sorted(unknown)[0]
        raise UserError(f"bn_groups: the backbone has no group {g!r}{did_you_mean(g, bb.group_names)} "
                        f"(groups: {', '.join(bb.group_names)})")
    audit, train_names = resolve_groups(group_layouts(bb), trainable, bn_default, bn_groups)
    return apply_states(model, audit, train_names)


def apply_states(model: TransferModel, audit: list[GroupState], train_names) -> list[GroupState]:
    """Put a phase's resolved group states (a ``PhasePlan``'s) into effect on the model."""
    bb = model.backbone
    if [g.name for g in audit] != bb.group_names:
        raise ValueError(f"plan groups {[g.name for g in audit]} do not match the backbone's {bb.group_names}")
    for n, p in bb.named_parameters():
        p.requires_grad_(n in train_names)
    for p in model.head.parameters():
        p.requires_grad_(True)
    model._keep_eval = []
    for (_, module), g in zip(bb.groups(), audit):
        if g.bn_mode in ("frozen", "eval"):
            model._keep_eval.extend(m for m in module.modules() if isinstance(m, _BN))
        if g.trainable == 0:
            model._keep_eval.append(module)  # a wholly frozen group is a fixed feature extractor
    model.train()
    return list(audit)


def frozen_prefix(audit: list[GroupState]) -> int:
    """How many leading groups are wholly frozen (no trainable parameter, BatchNorm frozen)."""
    k = 0
    for g in audit:
        if g.trainable or g.bn_mode != "frozen":
            break
        k += 1
    return k


def format_audit(audit: list[GroupState], head_params: int | None, lrs: dict[str, float] | None = None) -> str:
    """The per-group table printed per phase; with ``lrs`` (group -> learning rate) a column for them."""
    width = max(len(g.name) for g in audit + [GroupState("head", 0, 0, 0, "")])
    lr_col = (lambda name: f"  {lrs[name]:.3g}" if name in lrs else "  -") if lrs is not None else (lambda name: "")
    lines = [f"  {'group':<{width}}  {'state':<9} {'params':>10} {'trainable':>10}  {'batchnorm':<12}"
             + ("  lr" if lrs is not None else "")]
    for g in audit:
        bn = f"{g.bn_layers} x {g.bn_mode}" if g.bn_layers else "-"
        lines.append(f"  {g.name:<{width}}  {g.state:<9} {g.params:>10,} {g.trainable:>10,}  {bn:<12}"
                     + lr_col(g.name))
    hp = "?" if head_params is None else f"{head_params:,}"
    lines.append(f"  {'head':<{width}}  {'trainable':<9} {hp:>10} {hp:>10}  {'-':<12}"
                 + lr_col("head"))
    return "\n".join(l.rstrip() for l in lines)
