"""Measure before choosing a freeze plan: data size per class, and linear probes on frozen features.

``measure(recipe)`` loads the recipe's data and its backbone (with the recipe's weights, frozen),
runs up to ``max_train`` training and ``max_eval`` validation examples through it once, and fits the
task's linear probe (``Task.probe``: a logistic regression for classes, one per label for multi-label, a
ridge regression for values) on the pooled activations after each of the top parameter groups (images:
global average pooling; text: the mask-weighted mean over tokens) and on the backbone's final
features, scored by the task's primary metric (accuracy, macro F1, Pearson's r). That shows how well the
frozen features already predict the targets, and after which group they stop getting better.

The four-case rule (CS231n's transfer-learning notes, made measurable):

* **size** -- *small* when the median number of training examples per class is below
  ``SMALL_PER_CLASS`` (300), else *large* (``Task.support``: positives per label for multi-label, all the
  examples for each regression target).
* **similarity** -- *similar* when the probe on the final frozen features reaches a skill of at
  least ``SIMILAR_SKILL`` (0.5), where skill = (score - chance) / (1 - chance) and chance is the score of a
  prediction that ignores the input (``Task.chance``: the most common class's frequency in the probe's
  validation examples, so 2 balanced classes need 75 % accuracy and 10 need 55 %; predicting every label for
  multi-label; 0 for Pearson's r); else *different*.
* **where features stop helping** -- the group whose probe is best; an earlier group counts only when
  it beats the final features by ``STOP_MARGIN`` (0.02) or one standard error of the final probe's score
  (``Task.score_se``), whichever is larger.

Plans (base learning rate ``lr`` and optimizer from the recipe's first phase):

======================  =================================================================
small, similar          one phase: backbone frozen, train the head (a classifier on frozen
                        features); fine-tuning would overfit little data for little gain
large, similar          head (frozen) then ``top_k`` ~ a quarter of the groups at ``lr/100``
small, different        head (frozen) then ``top_k`` = the groups above the best-probing one
                        (at least a third of the groups) at ``lr/10``, weight decay 1e-4
large, different        head (frozen, short) then every group (``none``) at ``lr/100``, cosine
======================  =================================================================

Fine-tuning phases keep BatchNorm in eval mode (see the design guide: batch statistics at the
unfreeze collapse small-data runs). ``plan_phases(recipe)`` returns the phases as dicts of
``[[phases]]`` keys; ``expand_auto`` applies them. ``freeze = "auto"`` itself no longer follows this rule
blindly: it measures candidate plans (``tlhub.auto.search``), and the rule only orders them.
"""
from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tlhub.data.batching import by_length
from tlhub.data.splits import Splits, limit_split, make_splits
from tlhub.errors import UserError
from tlhub.interfaces import DataContext, Split
from tlhub.modality import DataSettings
from tlhub.model import ModelSpec, build_model
from tlhub.plugins import get_registry
from tlhub.recipe import parse_recipe, validate
from tlhub.states import Pooled, TokenStates, to
from tlhub.task import count_outputs, proportion_se, singular

SMALL_PER_CLASS = 300
SIMILAR_SKILL = 0.5
STOP_MARGIN = 0.02
PROBE_DEPTH = 4      # probe the outputs of the top PROBE_DEPTH - 1 groups below the last, plus the features
AUTO = "auto"


@dataclass
class Probe:
    """A linear probe's score (the task's primary metric) on pooled activations after one parameter group."""

    group: str
    index: int          # group index (input to output); the final features have the last index
    dim: int
    score: float
    final: bool = False  # the backbone's own pooled features (what the head sees)


@dataclass
class Advice:
    """Measurements, the case concluded and the recommended phases."""

    classes: list[str]
    train_counts: dict[str, int]
    n_groups: int
    group_names: list[str]
    probe_train: int
    probe_eval: int
    chance: float
    probes: list[Probe]
    size: str
    similarity: str
    stop_group: str
    phases: list[dict]
    reasons: list[str] = field(default_factory=list)
    seconds: float = 0.0
    metric: str = "accuracy"     # the task's primary metric, what the probes score
    train_examples: int = 0      # in the training split (0: the sum of train_counts, one class each)
    outputs_are: str = "classes"  # what train_counts count examples of: classes, labels (positives), targets

    @property
    def case(self) -> str:
        return f"{self.size} data, {self.similarity}"

    @property
    def final(self) -> Probe:
        return self.probes[-1]

    @property
    def skill(self) -> float:
        return skill(self.final.score, self.chance)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d.update(case=self.case, skill=round(self.skill, 4), thresholds={
            "small_per_class": SMALL_PER_CLASS, "similar_skill": SIMILAR_SKILL, "stop_margin": STOP_MARGIN})
        return d

    def format(self) -> str:
        counts = sorted(self.train_counts.values())
        one = singular(self.outputs_are)
        lines = [f"data: {self.train_examples or sum(counts)} training examples, "
                 f"{count_outputs(len(counts), self.outputs_are)}; "
                 f"per {one} min {counts[0]}, "
                 f"median {statistics.median(counts):g}, max {counts[-1]}"]  # a label's: the examples that have it
        if len(counts) <= 20:
            lines.append("  " + ", ".join(f"{c} {n}" for c, n in self.train_counts.items()))
        else:
            few = sorted(self.train_counts.items(), key=lambda kv: kv[1])[:5]
            lines.append("  fewest: " + ", ".join(f"{c} {n}" for c, n in few))
        lines.append(f"linear probes on frozen features ({self.probe_train} train / {self.probe_eval} validation "
                     f"examples; chance {self.chance:.3f}; {self.n_groups} groups):")
        width = max(len(p.group) for p in self.probes) + 11
        for p in self.probes:
            name = p.group + (" (features)" if p.final else "")
            bar = "#" * int(round(20 * max(0.0, p.score)))
            mark = "  <- features stop helping here" if p.group == self.stop_group and not p.final else ""
            lines.append(f"  after {name:<{width}} dim {p.dim:>5}  {self.metric} {p.score:.3f}  {bar:<20}{mark}")
        lines.append(f"case: {self.case} (median per {one} {statistics.median(counts):g} "
                     f"{'<' if self.size == 'small' else '>='} {SMALL_PER_CLASS}; final-feature skill "
                     f"{self.skill:.2f} {'>=' if self.similarity == 'similar' else '<'} {SIMILAR_SKILL})")
        lines += [f"  {r}" for r in self.reasons]
        lines.append("plan:")
        for p in self.phases:
            freeze = p["freeze"] + (f" k={p['freeze_options']['k']}" if "freeze_options" in p else "")
            extra = "".join(f", {k} {p[k]}" for k in ("scheduler", "warmup", "weight_decay", "bn") if k in p)
            lines.append(f"  [[phases]] {p['name']}: freeze {freeze}, {p['epochs']} epochs, {p['optimizer']} "
                         f"lr {p['lr']:g}{extra}")
        lines.append(f"({self.seconds:.1f} s)")
        return "\n".join(lines)


def stop_margin(se: float) -> float:
    """How much better an earlier group must probe: ``STOP_MARGIN`` or one standard error ``se`` of the final
    probe's score, whichever is larger (small validation sets are noisy)."""
    return max(STOP_MARGIN, se)


def skill(score: float, chance: float) -> float:
    """A score rescaled so that chance is 0 and perfect is 1."""
    return (score - chance) / max(1e-9, 1.0 - chance)


# ---------------------------------------------------------------------- measuring

def pool_state(state: Any):
    """A state between groups as ``[batch, dim]``: mean over space (images) or over unmasked tokens (text)."""
    import torch

    if isinstance(state, Pooled):  # a pooler group's output
        return state.features.float()
    if isinstance(state, TokenStates):
        m = state.mask.ne(0).unsqueeze(-1).to(state.hidden.dtype)
        return (state.hidden * m).sum(1).float() / m.sum(1).clamp(min=1e-9).float()
    if isinstance(state, torch.Tensor):
        if state.ndim in (3, 4):  # [B, C, H, W] feature maps, [B, T, D] tokens
            return state.float().mean(dim=(2, 3) if state.ndim == 4 else 1)
        return state.float().reshape(len(state), -1)
    if isinstance(state, (tuple, list)) and state:  # an older plugin's tuple state: its first tensor
        return pool_state(state[0])
    raise TypeError(f"cannot pool a state of type {type(state).__name__}")


def _loader(backbone, recipe, registry, tr, va, batch_size: int):
    """Loaders of the training and validation examples, built by the data's modality without augmentation
    (probes see every example as evaluation does)."""
    import torch

    settings = dataclasses.replace(DataSettings.of(recipe), augment=None)
    ds = registry.source_modality(recipe.data.source).datasets(backbone, settings, Splits([], tr, va, Split([], [])))
    out = []
    for d in (ds.train, ds.val):
        lengths = getattr(d, "lengths", None) if recipe.data.group_by_length else None
        if lengths is not None:  # batches pad to their longest text: similar lengths pad little
            out.append(torch.utils.data.DataLoader(d, batch_sampler=by_length(lengths, batch_size),
                                                   collate_fn=ds.collate))
        else:
            out.append(torch.utils.data.DataLoader(d, batch_size=batch_size, shuffle=False, collate_fn=ds.collate))
    return out


def _features(backbone, loader, probe_at: list[int], device):
    """{group index: [n, dim] array} of pooled activations; the last index holds ``backbone.pool``."""
    import torch

    n = len(backbone.groups())
    feats: dict[int, list] = {i: [] for i in probe_at}
    labels: list = []
    backbone.eval().to(device)
    with torch.inference_mode():
        for x, y in loader:
            state = to(x, device)
            for i in range(n):
                state = backbone.run_group(i, state)
                if i in feats and i != n - 1:
                    feats[i].append(pool_state(state).cpu().numpy())
            feats[n - 1].append(backbone.features(state).float().cpu().numpy())
            labels.append(np.asarray(y))
    return {i: np.concatenate(v) for i, v in feats.items()}, np.concatenate(labels)


def check_recipe(recipe) -> None:
    """Registry checks of ``validate``, with ``freeze = "auto"`` phases allowed."""
    errors = [e for e in validate(recipe) if not any(e.startswith(f"phases.{i}.freeze:")
                                                      for i, p in enumerate(recipe.phases) if p.freeze == AUTO)]
    if errors:
        raise UserError(errors=errors)


def measure(recipe, max_train: int = 2000, max_eval: int = 1000, depth: int = PROBE_DEPTH,
            say: Callable[[str], None] = lambda m: None, backbone=None, splits=None, device=None) -> Advice:
    """Measure the recipe's data and frozen backbone and recommend phases; see the module docstring.

    ``backbone`` and ``splits``: already built ones (the trainer's), else built here. ``device``: where
    the probes run (the trainer passes its accelerator's; by default a GPU when there is one).
    """
    import torch


    t0 = time.time()
    check_recipe(recipe)
    if recipe.train.threads:
        torch.set_num_threads(recipe.train.threads)
    registry = get_registry()
    d = recipe.data
    if splits is None:
        splits = make_splits(recipe, registry, DataContext(Path(recipe.base_dir), d.split_seed, log=say))
    task = splits.task
    if not task.probes:
        raise UserError(no_probe(recipe.model.task))
    train_counts = task.support(np.asarray(list(splits.train.labels)), list(splits.classes))
    if backbone is None:
        torch.manual_seed(recipe.train.seed)  # as the trainer seeds before building: same random init, if any
        backbone = build_model(ModelSpec.from_recipe(recipe), registry, task.num_outputs(splits.classes)).backbone
    names = backbone.group_names
    n = len(names)
    probe_at = sorted(set(range(max(0, n - depth), n)))
    tr = limit_split(splits.train, max_train, d.split_seed, task)
    va = limit_split(splits.val, max_eval, d.split_seed, task)
    bs = d.eval_batch_size or max(64, 2 * d.batch_size)
    say(f"advise: running {len(tr)} + {len(va)} examples through the frozen backbone ({n} groups)")
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    train_loader, val_loader = _loader(backbone, recipe, registry, tr, va, bs)
    ftr, ytr = _features(backbone, train_loader, probe_at, device)
    fva, yva = _features(backbone, val_loader, probe_at, device)
    probes = [Probe(names[i], i, int(ftr[i].shape[1]), task.probe(ftr[i], ytr, fva[i], yva, recipe.train.seed),
                    final=i == n - 1) for i in probe_at]
    advice = decide(recipe, splits.classes, train_counts, names, probes, task.chance(yva), len(tr), len(va),
                    se=task.score_se(probes[-1].score, len(va), yva))
    advice.metric, advice.outputs_are, advice.train_examples = task.primary_metric, task.outputs_are, len(splits.train)
    advice.seconds = time.time() - t0
    return advice


# ---------------------------------------------------------------------- deciding

def _base(recipe) -> tuple[float, str]:
    phases = list(recipe.phases)
    first = next((p for p in phases if p.freeze == AUTO), phases[0] if phases else None)
    if first is None:
        return 1e-3, "adam"
    return float(first.lr), first.optimizer


def no_probe(task: str) -> str:
    """Why a task without ``Task.probe`` cannot be measured (``tlhub validate`` says it too)."""
    return (f"task {task!r} defines no linear probe (Task.probe), which freeze = \"auto\" and `tlhub advise` measure "
            f"with; name a freeze policy (e.g. 'top_k') for this task")


def decide(recipe, classes, train_counts, names, probes, chance, n_train, n_eval, se: float | None = None) -> Advice:
    """The four-case rule on measurements (pure: no model, no data). ``se``: the standard error of the final
    probe's score (default: an accuracy's on ``n_eval`` examples)."""
    n = len(names)
    median = statistics.median(train_counts.values()) if train_counts else 0
    size = "small" if median < SMALL_PER_CLASS else "large"
    final = probes[-1]
    similarity = "similar" if skill(final.score, chance) >= SIMILAR_SKILL else "different"
    best = max(probes, key=lambda p: (p.score, p.index))
    margin = stop_margin(proportion_se(final.score, n_eval) if se is None else se)
    stop = best if best.score >= final.score + margin else final
    above = n - 1 - stop.index  # groups above the one whose features probe best
    lr, opt = _base(recipe)
    reasons = []
    if stop is not final:
        reasons.append(f"features after {stop.group!r} probe {stop.score - final.score:+.3f} better than the "
                       f"final ones: the {above} group(s) above it are specialised to the pretraining task")
    else:
        earlier = max((p.score for p in probes[:-1]), default=0.0)
        if probes[:-1] and final.score >= earlier + margin:
            reasons.append(f"the probes still improve at the final features (+{final.score - earlier:.3f} over "
                           f"the best earlier group): the top groups help as they are")
        else:
            reasons.append(f"the probes are flat over the top groups (within {margin:.3f} of each other or below "
                           f"the final features)")
    head = {"name": "head", "freeze": "frozen", "optimizer": opt, "lr": lr}
    if size == "small" and similarity == "similar":
        reasons.append("little data and features that already predict the targets: train only the head; "
                       "fine-tuning would mostly overfit")
        phases = [dict(head, epochs=10)]
    elif similarity == "similar":
        k = max(1, above, round(n / 4))
        reasons.append(f"enough data to adapt the top without overfitting: fine-tune the top {k} group(s) at lr/100")
        phases = [dict(head, epochs=5), _finetune(opt, lr / 100, k, n, epochs=5)]
    elif size == "small":
        k = max(1, above, round(n / 3))
        reasons.append(f"little data, features that do not predict the targets well: keep the generic lower groups "
                       f"frozen and fine-tune the top {k} group(s) at lr/10 with weight decay")
        phases = [dict(head, epochs=10), _finetune(opt, lr / 10, k, n, epochs=10, weight_decay=1e-4)]
    else:
        reasons.append("plenty of data and features that do not predict the targets well: fine-tune every group "
                       "at lr/100 after a short head phase")
        phases = [dict(head, epochs=3), _finetune(opt, lr / 100, n, n, epochs=10)]
    return Advice(list(classes), dict(train_counts), n, list(names), n_train, n_eval, chance, list(probes),
                  size, similarity, stop.group, phases, reasons)


def _finetune(opt: str, lr: float, k: int, n: int, epochs: int, weight_decay: float = 0.0) -> dict:
    phase = {"name": "finetune", "epochs": epochs, "optimizer": opt, "lr": float(f"{lr:.3g}"),
             "scheduler": "cosine", "warmup": 0.1, "bn": "eval"}
    if k >= n:
        phase["freeze"] = "none"
    else:
        phase.update(freeze="top_k", freeze_options={"k": int(k)})
    if weight_decay:
        phase["weight_decay"] = weight_decay
    return phase


# ---------------------------------------------------------------------- using the plan

def plan_phases(recipe, **kwargs) -> list[dict]:
    """The recommended ``[[phases]]`` tables (dicts of PhaseCfg keys) for ``recipe``; measures first."""
    return measure(recipe, **kwargs).phases


def expand_auto(recipe, phases: list[dict] | None = None):
    """``recipe`` with its ``freeze = "auto"`` phase replaced by the planned phases (others kept in place)."""
    if not any(p.freeze == AUTO for p in recipe.phases):
        return recipe
    phases = plan_phases(recipe) if phases is None else phases
    raw = recipe.to_dict()
    out = []
    for p in raw["phases"]:
        out += [dict(q) for q in phases] if p["freeze"] == AUTO else [p]
    names = [p["name"] for p in out]
    for i, p in enumerate(out):  # keep phase names unique when auto phases sit beside named ones
        if names.count(p["name"]) > 1:
            p["name"] = f"{p['name']}{i + 1}"
    raw["phases"] = out
    return parse_recipe(raw, path=recipe.path, base_dir=recipe.base_dir)


def header(advice: Advice, src: str) -> list[str]:
    """Comment lines for a recipe written from ``advice`` (``tlhub advise --write``)."""
    return [f"Written by `tlhub advise {src}`: case {advice.case}.",
            f"Final frozen features probe {advice.metric} {advice.final.score:.3f} (chance {advice.chance:.3f}); "
            + (f"features stop helping after {advice.stop_group!r}." if advice.stop_group != advice.final.group
               else "the final features probe best.")]
