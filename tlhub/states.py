"""Typed states between a backbone's groups, and what the frozen-prefix cache stores.

A state is a plain tensor (image feature maps ``[B, C, H, W]``), ``TokenStates`` (text: hidden states
with their attention mask) or ``Pooled`` (the ``[B, feature_dim]`` features the head takes). The type,
not the number of tensors, says what a state is: a pooled batch of two examples is still ``Pooled``.

``split`` cuts a batched state into one state per example (what the cache stores) and ``collate``
batches them again; ``to`` moves every tensor of a state (device or dtype); both also accept the
tuples of tensors older plugins pass between groups.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch


class _TensorFields:
    """Shared by the state dataclasses: ``.to(...)`` as on a tensor (Accelerate and DDP call it), batch size."""

    def map(self, fn: Callable[[torch.Tensor], torch.Tensor]):
        return dataclasses.replace(self, **{f.name: fn(getattr(self, f.name)) for f in dataclasses.fields(self)})

    def to(self, *args, **kwargs):
        return self.map(lambda t: t.to(*args, **kwargs))

    def __len__(self) -> int:
        return len(getattr(self, dataclasses.fields(self)[0].name))


@dataclass
class TokenStates(_TensorFields):
    """Text states between groups: ``hidden`` ``[B, T, D]`` and the 2-D attention ``mask`` ``[B, T]`` (non-zero: a real
    token; a backbone may use the value, e.g. 1 and 2 for the two sentences of a pair encoded apart)."""

    hidden: torch.Tensor
    mask: torch.Tensor


@dataclass
class Pooled(_TensorFields):
    """Pooled features ``[B, feature_dim]``: what the head takes (a backbone's ``pool`` passes them through)."""

    features: torch.Tensor


State = Any  # torch.Tensor | TokenStates | Pooled | tuple of tensors (older plugins)


def to(state: State, *args, **kwargs) -> State:
    """``state`` with every tensor moved/cast as ``Tensor.to(*args, **kwargs)`` would; dicts and tuples too."""
    if isinstance(state, torch.Tensor):
        return state.to(*args, **kwargs)
    if isinstance(state, _TensorFields):
        return state.to(*args, **kwargs)
    if isinstance(state, dict):
        return {k: to(v, *args, **kwargs) for k, v in state.items()}
    if isinstance(state, (tuple, list)):
        return type(state)(to(v, *args, **kwargs) for v in state)
    return state


def map_floats(state: State, fn: Callable[[torch.Tensor], torch.Tensor]) -> State:
    """``fn`` applied to the floating-point tensors of ``state`` (masks and ids keep their type)."""
    def f(t):
        return fn(t) if t.is_floating_point() else t
    if isinstance(state, torch.Tensor):
        return f(state)
    if isinstance(state, _TensorFields):
        return state.map(f)
    return tuple(map_floats(s, fn) for s in state)


def split(state: State) -> list[State]:
    """One state per example of a batched state. ``TokenStates`` are cut to the example's last real token
    (padding would only cost memory) and copied, so one stored example does not keep its batch alive."""
    if isinstance(state, TokenStates):
        ends = token_ends(state.mask).tolist()
        return [TokenStates(state.hidden[i, :n].clone(), state.mask[i, :n].clone()) for i, n in enumerate(ends)]
    if isinstance(state, Pooled):
        return [Pooled(f) for f in state.features.unbind(0)]
    if isinstance(state, torch.Tensor):
        return list(state.unbind(0))
    return list(zip(*[s.unbind(0) for s in state]))


def token_ends(mask: torch.Tensor) -> torch.Tensor:
    """Per row of a ``[B, T]`` attention mask: one past its last real token (1 for an all-padding row).
    What ``split`` and the token cache keep of each example."""
    pos = torch.arange(mask.shape[1], device=mask.device)
    return torch.where(mask.ne(0), pos + 1, 0).amax(1).clamp(min=1)


def collate(items: list[State]) -> State:
    """Inverse of ``split``: per-example tensors of unequal length are zero-padded along their first dim
    (for ``TokenStates`` that pads the mask with zeros, i.e. masked out)."""
    first = items[0]
    if isinstance(first, _TensorFields):
        names = [f.name for f in dataclasses.fields(first)]
        return type(first)(**{n: _stack([getattr(it, n) for it in items]) for n in names})
    if isinstance(first, torch.Tensor):
        return _stack(items)
    return tuple(_stack([it[j] for it in items]) for j in range(len(first)))


def fixed_shape(state: State) -> bool:
    """Every example of this kind of state has the same shape (images, pooled features): one array per
    field holds a whole split. Token states vary in length and are stored per example."""
    return isinstance(state, (torch.Tensor, Pooled))


def tensors(state: State) -> list[torch.Tensor]:
    """The tensors of one state, in field order."""
    if isinstance(state, torch.Tensor):
        return [state]
    if isinstance(state, _TensorFields):
        return [getattr(state, f.name) for f in dataclasses.fields(state)]
    return list(state)


def rebuild(kind: type, parts: list[torch.Tensor]) -> State:
    """A state of type ``kind`` (``type(state)``) made of ``parts``: the inverse of ``tensors``."""
    if issubclass(kind, torch.Tensor):
        return parts[0]
    if issubclass(kind, _TensorFields):
        return kind(*parts)
    return tuple(parts)


def _stack(ts: list[torch.Tensor]) -> torch.Tensor:
    if all(t.shape == ts[0].shape for t in ts):
        return torch.stack(ts)
    return torch.nn.utils.rnn.pad_sequence(ts, batch_first=True)
