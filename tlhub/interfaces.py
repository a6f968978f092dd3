"""Contracts between the core and plugins: Backbone, FreezePolicy, data sources' output.

Backbones run as an ordered list of parameter groups (input to output). Running a prefix of the
groups once and the rest many times is what frozen-prefix caching builds on.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import nn

from tlhub import states
from tlhub.policy import FreezePolicy  # noqa: F401  (re-exported)
from tlhub.states import Pooled, TokenStates  # noqa: F401  (re-exported)


@dataclass(frozen=True)
class ImagePreprocessing:
    """What a pretrained image backbone expects: per-channel mean/std and native resolution."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    size: int


@dataclass(frozen=True)
class TextPreprocessing:
    """What a text backbone expects: its tokenizer (a ``transformers`` tokenizer) and max length."""

    tokenizer: Any
    max_length: int


class Backbone(nn.Module):
    """A feature extractor made of ordered parameter groups.

    Subclasses provide ``groups`` (name and module per group, input to output, covering every
    parameter exactly once), ``run_group(i, state)`` and ``pool(state)``. The default
    ``forward`` runs every group then pools to ``[batch, feature_dim]``.
    """

    modality: str = "image"
    feature_dim: int = 0
    preprocessing: ImagePreprocessing | TextPreprocessing | None = None
    # False when the state between groups is not a real intermediate (e.g. the input passed through
    # until the last group runs the whole network): the frozen-prefix cache then only caches pooled
    # features of a fully frozen backbone, since a partial prefix would save no compute.
    staged: bool = True

    @property
    def group_names(self) -> list[str]:
        return [name for name, _ in self.groups()]

    def groups(self) -> list[tuple[str, nn.Module]]:
        raise NotImplementedError

    def run_group(self, index: int, state: Any) -> Any:
        return self.groups()[index][1](state)

    def pool(self, state: Any) -> torch.Tensor:
        raise NotImplementedError

    def run_groups(self, state: Any, start: int = 0, stop: int | None = None) -> Any:
        stop = len(self.groups()) if stop is None else stop
        for i in range(start, stop):
            state = self.run_group(i, state)
        return state

    def features(self, state: Any) -> torch.Tensor:
        """``[batch, feature_dim]`` features of the state after the last group: ``Pooled`` states (a pooler
        group's output, or pooled features from the cache) are already pooled; others go through ``pool``."""
        return state.features if isinstance(state, Pooled) else self.pool(state)

    def forward(self, x: Any) -> torch.Tensor:
        return self.features(self.run_groups(x))

    # Frozen-prefix caching stores the state after a prefix of groups per example and batches it again
    # (``TokenStates`` go end to end into two arrays, tlhub.training.cache.TokenArrays, unless a
    # backbone overrides these two methods).
    def split_state(self, state: Any) -> list[Any]:
        """One state per example of a batched state (a tensor, ``TokenStates``, ``Pooled`` or a tuple of
        tensors); see ``tlhub.states.split``."""
        return states.split(state)

    def collate_state(self, items: list[Any]) -> Any:
        """Inverse of ``split_state``; per-example tensors of unequal length are zero-padded along dim 0
        (for ``TokenStates`` that pads the attention mask with zeros, i.e. masked out)."""
        return states.collate(items)

    def save_extras(self, folder: Path) -> dict:
        """Write what a saved model needs besides its weights into ``folder`` (e.g. a tokenizer and the
        architecture's config) and return backbone options, relative to the model folder, that rebuild
        this backbone from there without a network (``{"model": "tokenizer"}``); default: nothing."""
        return {}

    def param_groups(self) -> list[tuple[str, list[str]]]:
        """Parameter names (as in ``named_parameters()``) of each group, in order."""
        owner = {id(p): n for n, p in self.named_parameters()}
        return [(name, [owner[id(p)] for p in module.parameters()]) for name, module in self.groups()]


class SequentialBackbone(Backbone):
    """A backbone given as ``[(group name, module), ...]`` applied in order, then ``pool``."""

    def __init__(self, stages: Sequence[tuple[str, nn.Module]], pool: nn.Module, feature_dim: int,
                 preprocessing: ImagePreprocessing | TextPreprocessing | None, modality: str = "image"):
        super().__init__()
        self._names = [n for n, _ in stages]
        self.stages = nn.ModuleList([m for _, m in stages])
        self.pooling = pool
        self.feature_dim = feature_dim
        self.preprocessing = preprocessing
        self.modality = modality

    def groups(self) -> list[tuple[str, nn.Module]]:
        return list(zip(self._names, self.stages))

    def run_group(self, index: int, state: Any) -> Any:
        return self.stages[index](state)

    def pool(self, state: Any) -> torch.Tensor:
        return self.pooling(state)


@dataclass
class Split:
    """Examples of one split: items (image, path, array, text or a (text, text) pair) and their labels.

    From a data source: class indexes into ``SourceData.classes``, or raw labels (``SourceData.raw``). After
    the recipe's task encoded them (``tlhub.task.Task.encode``): its per-example targets (an int class, a
    multi-hot or a values float32 array)."""

    items: Sequence[Any]
    labels: Sequence[Any]

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class SourceData:
    """What a data source returns. Missing splits are carved from ``train`` by the core."""

    classes: list[str]
    train: Split | None = None
    val: Split | None = None
    test: Split | None = None
    skipped: list[str] = field(default_factory=list)  # "item: reason" lines, written to the run dir
    # True: labels are raw values as the source read them (a string like "3,27" or "anger|joy", a number,
    # a list, or a tuple of several columns' values) and ``classes`` is empty or the columns' names; the
    # recipe's task parses them (tlhub.task.Task.encode). False: labels index ``classes``.
    raw: bool = False


@dataclass(frozen=True)
class DataContext:
    """What a data source may use: the folder relative paths resolve against, the seed, a logger."""

    base_dir: Path
    seed: int
    log: Callable[[str], None] = print

    def path(self, p: str | Path) -> Path:
        p = Path(p).expanduser()
        return p if p.is_absolute() else (self.base_dir / p)

