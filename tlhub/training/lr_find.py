"""The learning-rate range test (Smith 2015, "Cyclical learning rates"; fastai's ``lr_find``).

Train for a short run while the learning rate grows exponentially from ``lr_min`` to ``lr_max``,
record the loss after every step, smooth it (an exponential moving average with bias correction,
as fastai does) and stop once it diverges. The suggestion is the lr at the smoothed minimum divided
by 10 (fastai's ``minimum`` rule: the minimum itself is already too hot to train at); the steepest
descent is reported beside it. Model and optimizer are restored afterwards: the test trains nothing.

Written by hand rather than with ``torch-lr-finder``: tlhub's model takes cached frozen-prefix
tensors (``model(x, entry=...)``), which that library's loop cannot pass.
"""
from __future__ import annotations

import copy
import itertools
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from tlhub import states

LR_MIN, LR_MAX, STEPS, BETA, DIVERGE = 1e-7, 1.0, 100, 0.98, 4.0
MIN_DROP = 0.02  # the smoothed loss must fall by this fraction somewhere, or the sweep found no descent
RISE = 0.10  # the edge: the last lr where the smoothed loss is within this of its level (see ``edge``)


@dataclass
class LRFind:
    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    suggestion: float   # lr at the smoothed minimum / 10
    steepest: float     # lr of the steepest smoothed descent
    minimum: float      # lr at the smoothed minimum
    stopped: str = ""   # why the sweep ended early ('' when it ran all steps)
    descent: bool = True  # False: the smoothed loss never fell by MIN_DROP; the suggestion means little
    edge: float = 0.0   # the last lr before the smoothed loss climbs for good (see ``edge``)

    def to_dict(self) -> dict:
        return asdict(self)

    def format(self) -> str:
        if not self.descent:
            return (f"lr range test: {len(self.lrs)} steps from {self.lrs[0]:.1e} to {self.lrs[-1]:.1e}: the smoothed "
                    f"loss never fell by {MIN_DROP:.0%}, so it suggests nothing; keep a written lr")
        return (f"lr range test: {len(self.lrs)} steps from {self.lrs[0]:.1e} to {self.lrs[-1]:.1e}"
                f"{' (' + self.stopped + ')' if self.stopped else ''}; smoothed loss lowest at {self.minimum:.2e}, "
                f"steepest descent at {self.steepest:.2e}, last within {RISE:.0%} of its level at "
                f"{self.edge:.2e}; suggested lr {self.suggestion:.2e} (minimum / 10)")


def suggest(lrs: list[float], losses: list[float], beta: float = BETA) -> tuple[list[float], float, float, float]:
    """(smoothed losses, suggestion, steepest, minimum) from a sweep; pure, for tests and replots."""
    smoothed, avg = [], 0.0
    for i, loss in enumerate(losses, start=1):
        avg = beta * avg + (1 - beta) * loss
        smoothed.append(avg / (1 - beta ** i))
    # ignore the first steps: the bias-corrected average is still mostly one noisy loss
    skip = min(len(lrs) // 10, 10)
    lo = min(range(skip, len(smoothed)), key=lambda i: smoothed[i])
    logs = [math.log10(x) for x in lrs]
    grads = [(smoothed[i + 1] - smoothed[i]) / (logs[i + 1] - logs[i]) for i in range(skip, max(skip, lo))]
    steep = lrs[skip + min(range(len(grads)), key=lambda i: grads[i])] if grads else lrs[lo]
    return smoothed, lrs[lo] / 10, steep, lrs[lo]


def edge(lrs: list[float], smoothed: list[float], rise: float = RISE) -> float:
    """The last lr at which the smoothed loss is within ``rise`` of its level (the lower quartile of the sweep;
    the sweep's last lr if the loss never climbs). On weights that are already good (a trained head) the curve
    is flat until it climbs: where its minimum falls is noise, and so is a single early dip, but the last
    point before the final climb is not."""
    skip = min(len(lrs) // 10, 10)
    body = sorted(smoothed[skip:])
    limit = body[len(body) // 4] * (1 + rise)
    return lrs[max((i for i in range(skip, len(smoothed)) if smoothed[i] <= limit), default=len(lrs) - 1)]


def range_test(model, loader, optimizer, loss_fn, entry=None, lr_min: float = LR_MIN, lr_max: float = LR_MAX,
               steps: int = STEPS, diverge: float = DIVERGE) -> LRFind:
    """Sweep ``optimizer``'s learning rates (their ratios kept) over ``steps`` batches of ``loader``."""
    model_state = copy.deepcopy(model.state_dict())
    opt_state = copy.deepcopy(optimizer.state_dict())
    base = [g["lr"] for g in optimizer.param_groups]
    top = max(base)
    ratio = [b / top for b in base]
    gamma = (lr_max / lr_min) ** (1 / max(1, steps - 1))
    lrs, losses, stopped = [], [], ""
    was_training = model.training
    device = next(model.parameters()).device
    model.train()
    batches = itertools.islice(itertools.cycle(loader), steps) if len(loader) else iter(())
    try:
        for i, (x, y) in enumerate(batches):
            lr = lr_min * gamma ** i
            for g, r in zip(optimizer.param_groups, ratio):
                g["lr"] = lr * r
            x, y = states.to(x, device), y.to(device)  # the loader is not prepared by Accelerate here
            loss = loss_fn(model(x) if entry is None else model(x, entry=entry), y)
            if not torch.isfinite(loss.detach()):
                stopped = f"loss not finite at lr {lr:.1e}"
                break
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            lrs.append(lr)
            losses.append(loss.item())
            smooth = suggest(lrs, losses)[0][-1]
            if i > steps // 10 and smooth > diverge * min(suggest(lrs, losses)[0]):
                stopped = f"loss diverged at lr {lr:.1e}"
                break
    finally:
        model.load_state_dict(model_state)
        optimizer.load_state_dict(opt_state)
        for g, b in zip(optimizer.param_groups, base):
            g["lr"] = b
        model.train(was_training)
    if len(lrs) < 5:
        raise ValueError(f"lr range test: only {len(lrs)} step(s) ran ({stopped or 'too few batches'})")
    smoothed, suggestion, steep, lo = suggest(lrs, losses)
    skip = min(len(lrs) // 10, 10)
    descent = min(smoothed[skip:]) <= smoothed[skip] * (1 - MIN_DROP)
    return LRFind(lrs, losses, smoothed, suggestion, steep, lo, stopped, descent, edge(lrs, smoothed))


def plot(result: LRFind, path: str | Path, title: str = "lr range test") -> Path:
    """Loss (raw and smoothed) against lr on a log axis, the suggestion and the minimum marked."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    ax.plot(result.lrs, result.losses, color="#bbbbbb", lw=0.8, label="loss per step")
    ax.plot(result.lrs, result.smoothed, color="#1565c0", lw=1.8, label="smoothed")
    ax.axvline(result.minimum, color="#888888", ls=":", label=f"minimum {result.minimum:.1e}")
    ax.axvline(result.suggestion, color="#c62828", ls="--", label=f"suggestion {result.suggestion:.1e}")
    if result.edge:
        ax.axvline(result.edge, color="#2e7d32", ls="-.", label=f"edge (+{RISE:.0%}) {result.edge:.1e}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    hi = max(result.smoothed[: max(1, len(result.smoothed))])
    ax.set_ylim(min(result.smoothed) * 0.9, min(hi, 2.5 * min(result.smoothed)) * 1.1 + 1e-9)
    ax.set_title(title)
    ax.legend(fontsize=8)
    path = Path(path)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
