"""A finished run directory read into one typed object, for the report page and ``tlhub compare``.

Only files are read (never the model), and a missing optional file leaves its field empty, so runs
written by older versions still give a page.
"""
from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import tomllib

from tlhub.artifacts.rundir import read_jsonl, staged_target
from tlhub.errors import UserError


def _json(path: Path, kind: type = dict):
    """The file's JSON value (None when the file is absent), which must be a ``kind``."""
    if not path.is_file():
        return None
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno}); the file is damaged") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise UserError(f"{path}: not UTF-8 JSON text ({exc}); the file is damaged") from None
    if not isinstance(value, kind):
        raise UserError(f"{path}: expected a JSON {'object' if kind is dict else 'list'}, got "
                        f"{type(value).__name__}; the file is damaged or not written by tlhub")
    return value


def _history(path: Path) -> list[dict]:
    try:
        rows = read_jsonl(path)
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: not valid JSON lines ({exc.msg}); the file is damaged") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise UserError(f"{path}: not UTF-8 JSON text ({exc}); the file is damaged") from None
    if not all(isinstance(r, dict) for r in rows):
        raise UserError(f"{path}: every line must be a JSON object; the file is damaged or not written by tlhub")
    return rows


@contextmanager
def damaged_files(run_dir: str | Path):
    """Where a report is drawn from a run's files: a file whose content is not what tlhub wrote (a value of
    another type, a missing key, a truncated tensor file) is one message naming the run, not a traceback."""
    try:
        yield
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise UserError(f"{run_dir}: a run file holds something tlhub did not write ({type(exc).__name__}: "
                        f"{str(exc)[:200]}); the run folder is damaged or edited by hand") from None


def read_samples_images(path: Path):
    """The ``images`` array of ``samples.safetensors`` (None when absent); a damaged file is a UserError."""
    if not path.is_file():
        return None
    from safetensors.numpy import load_file
    try:
        images = load_file(str(path))["images"]
    except Exception as exc:  # SafetensorError, KeyError, ...: a truncated or foreign file
        raise UserError(f"{path}: not a readable samples file ({type(exc).__name__}: {exc}); "
                        "the file is damaged") from None
    if images.ndim not in (3, 4) or images.dtype.kind != "u":
        raise UserError(f"{path}: images of shape {images.shape} and type {images.dtype}; the file is damaged")
    return images


@dataclass
class RunFiles:
    """What a run directory holds; see README's run-directory description."""

    path: Path
    metrics: dict
    history: list[dict] = field(default_factory=list)
    plan: dict | None = None
    timings: dict | None = None
    recipe_text: str = ""
    recipe: dict = field(default_factory=dict)
    samples: dict | None = None
    environment: dict | None = None
    config: dict | None = None  # model/config.json

    @property
    def name(self) -> str:
        path = self.path.resolve()  # a staged --overwrite is named after the run it will replace
        return (staged_target(path) or path).name

    @property
    def classes(self) -> list[str]:
        return [str(c) for c in self.metrics.get("classes") or (self.config or {}).get("classes") or []]

    @property
    def modality(self) -> str:
        prep = (self.config or {}).get("preprocessing") or {}
        return prep.get("modality") or (self.samples or {}).get("modality") or "unknown"

    @property
    def recipe_source(self) -> str:
        """The recipe file the run was started from (the resolved recipe's first comment line)."""
        first = self.recipe_text.splitlines()[0] if self.recipe_text else ""
        return first.removeprefix("# resolved recipe of ").strip() if first.startswith("# resolved") else ""

    @property
    def total_seconds(self) -> float | None:
        return (self.timings or {}).get("total_seconds")

    def scalar_metrics(self) -> dict[str, float]:
        """The test split's single-number scores (accuracy, f1, ...), in metrics.json's order."""
        return {k: float(v) for k, v in self.metrics.items()
                if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "test_examples"}


def load_run(path: str | Path, finished: bool = True) -> RunFiles:
    """Read a run directory; ``UserError`` when it is not one (``finished``: it must have metrics.json)."""
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"{path}: no such run directory")
    metrics = _json(path / "metrics.json")
    if metrics is None and finished:
        raise UserError(f"{path}: not a finished tlhub run directory (no metrics.json)")
    metrics = metrics or {}
    try:
        recipe_text = (path / "recipe.toml").read_text(encoding="utf-8") if (path / "recipe.toml").is_file() else ""
        recipe = tomllib.loads(recipe_text)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path / 'recipe.toml'}: not valid TOML ({exc})") from None
    return RunFiles(path, metrics, _history(path / "history.jsonl"), _json(path / "plan.json"),
                    _json(path / "timings.json"), recipe_text, recipe, _json(path / "samples.json"),
                    _json(path / "environment.json"), _json(path / "model" / "config.json"))


@dataclass(frozen=True)
class ClassScore:
    name: str
    support: int  # true examples of the class in the test split
    predicted: int
    precision: float
    recall: float
    f1: float


def per_class_scores(run: RunFiles) -> list[ClassScore]:
    """Precision, recall and F1 of every class from the confusion matrix (rows true, columns predicted),
    worst F1 first; a class never predicted (or never present) scores 0 where the ratio is undefined."""
    cm = run.metrics.get("confusion_matrix") or []
    names = run.classes or [str(i) for i in range(len(cm))]
    out = []
    for i, row in enumerate(cm):
        tp, support = row[i], sum(row)
        predicted = sum(r[i] for r in cm)
        p = tp / predicted if predicted else 0.0
        r = tp / support if support else 0.0
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        out.append(ClassScore(names[i] if i < len(names) else str(i), support, predicted, p, r, f1))
    return sorted(out, key=lambda s: (s.f1, s.recall, s.name))


def epoch_rows(run: RunFiles) -> list[dict]:
    """history.jsonl in training order (phase, then epoch)."""
    return sorted(run.history, key=lambda r: (r.get("phase_index", 0), r.get("epoch", 0)))


def drawn_samples(run_dir: Path, samples: dict) -> bool:
    """Whether the modality drew thumbnails of the samples (runs before tlhub 0.3 say it by having the file)."""
    flag = samples.get("thumbnails")
    return bool(flag) if isinstance(flag, bool) else (Path(run_dir) / "samples.safetensors").is_file()


def is_mistake(item: dict) -> bool:
    """A sample the model got wrong: as its task judged it (``wrong``: a label set off by one label, a value
    off by a tenth of the targets' spread), else its true and predicted classes differ."""
    flag = item.get("wrong")
    return bool(flag) if isinstance(flag, bool) else item["true"] != item["pred"]


def score_text(item: dict, digits: int = 2) -> str:
    """The sample's score beside its prediction: p(predicted) for classes, the error of a value, else the loss."""
    for key, label in (("prob", "p"), ("error", "error"), ("loss", "loss")):
        if isinstance(item.get(key), (int, float)):
            return f"{label}={float(item[key]):.{digits}f}"
    return ""
