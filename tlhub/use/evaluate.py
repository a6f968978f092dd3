"""Scoring a trained model on a registered data source (``tlhub eval``)."""
from __future__ import annotations

import logging
from pathlib import Path

from tlhub.artifacts import rundir
from tlhub.data.splits import Splits
from tlhub.errors import UserError
from tlhub.interfaces import DataContext, Split
from tlhub.options import resolve_options
from tlhub.plugins import get_registry
from tlhub.reporting.pictures import write_report
from tlhub.reporting.samples import write_samples
from tlhub.use.load import Predictor

log = logging.getLogger("tlhub")


# ---------------------------------------------------------------------- scoring on a data source

EVAL_SPLITS = ("test", "val", "train", "all")
# what eval.metrics defaulted to before it meant "the task's own": model folders of regression and multi-label
# runs saved from then name these, which their tasks do not score
LEGACY_DEFAULT = ["accuracy", "f1", "precision", "recall"]


def _training_recipe(model_dir: Path) -> dict:
    """The recipe saved beside the model (raw TOML), or {} when absent or unreadable; the few values eval
    reads from it are checked, so a damaged file is an error naming it, not a traceback or another split."""
    import tomllib
    path = model_dir / "recipe.toml"
    try:
        recipe = tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return {}
    data, ev = recipe.get("data", {}), recipe.get("eval", {})
    ok = isinstance(data, dict) and isinstance(ev, dict)
    if ok:
        seed, frac, metrics = data.get("split_seed", 0), data.get("test_split", 0.1), ev.get("metrics", [])
        ok = (isinstance(seed, int) and not isinstance(seed, bool)
              and isinstance(frac, (int, float)) and not isinstance(frac, bool) and 0 < frac < 1
              and isinstance(metrics, list) and all(isinstance(m, str) for m in metrics))
    if not ok:
        raise UserError(f"{path}: data.split_seed, data.test_split or eval.metrics is not what tlhub wrote; "
                        "the model folder's recipe is damaged")
    return recipe


def load_eval_split(predictor: Predictor, source: str, options: dict, split: str = "test",
                    base_dir: str | Path = ".", say=log.info):
    """``(Split, source classes)`` of ``source`` with labels mapped onto the model's classes.

    ``split="test"`` takes the source's test split; a source without one has its test split carved
    the way the trainer carves it (``data.test_split`` and ``data.split_seed`` of the model's saved
    recipe), so scoring a model on its own training source reproduces the run's test split.
    ``"all"`` takes every example the source gives.
    """

    if split not in EVAL_SPLITS:
        raise UserError(f"--split: must be one of {', '.join(EVAL_SPLITS)}, got {split!r}")
    spec = get_registry().get("data-sources", source)
    if spec.modality != predictor.modality:
        raise UserError(f"data source {source!r} gives {spec.modality} data but the model takes {predictor.modality}")
    opts, errs = resolve_options("--option", options, spec.options)
    if errs:
        raise UserError(errors=errs)
    data_cfg = _training_recipe(predictor.model_dir).get("data", {})
    seed = int(data_cfg.get("split_seed", 0))
    task = predictor.task
    # read into the model's classes (its order: the trainer's, for its own source), then carved as the trainer does
    data = task.encode(spec.load(opts, DataContext(Path(base_dir), seed, log=say)), source, predictor.classes)
    parts = {"train": data.train, "val": data.val, "test": data.test}
    if split == "all":
        chosen = [s for s in parts.values() if s is not None]
        picked = Split([i for s in chosen for i in s.items], [y for s in chosen for y in s.labels])
    elif parts[split] is not None:
        picked = parts[split]
    elif split == "test" and data.train is not None:
        frac = float(data_cfg.get("test_split", 0.1))
        picked = task.carve(data.train, frac, seed + 1)[1]
        how = "of each class " if task.stratified else ""
        say(f"data: {source!r} has no test split; held out {frac:g} {how}as the trainer does (split_seed {seed})")
    else:
        raise UserError(f"data source {source!r} gives no {split} split (use --split all)")
    if len(picked) == 0:
        raise UserError(f"data source {source!r}: the {split} split is empty")
    return Split(list(picked.items), list(picked.labels)), list(predictor.classes)


def evaluate_source(predictor: Predictor, source: str, options: dict | None = None, split: str = "test",
                    out_dir: str | Path | None = None, batch_size: int = 64, base_dir: str | Path = ".",
                    say=log.info) -> dict:
    """Score ``predictor`` on a registered data source; with ``out_dir``, write the run-style files there.

    Writes ``metrics.json`` (the model's metrics: the task's own unless its recipe named others, and the
    confusion matrix), ``samples.json`` (+ ``samples.safetensors`` for images) and the pictures of
    ``tlhub.reporting.pictures.write_report``. Returns the metrics.
    """
    registry = get_registry()

    names = _training_recipe(predictor.model_dir).get("eval", {}).get("metrics") or []
    # A received model folder's recipe names the metrics: names only, checked before anything runs.
    errors = predictor.task.metric_errors(names, registry)
    if errors and names == LEGACY_DEFAULT:  # an older regression or multi-label model: its task's own
        names, errors = [], []
    if errors:
        raise UserError(errors=[f"{predictor.model_dir / 'recipe.toml'}: {e}" for e in errors])
    data, _ = load_eval_split(predictor, source, dict(options or {}), split, base_dir, say)
    outputs = predictor.predict_proba(data.items, batch_size)
    metrics = predictor.task.metrics(outputs, list(data.labels), predictor.classes, names, registry)
    metrics.update({"test_examples": len(data), "classes": predictor.classes, "source": source, "split": split,
                    "model": str(predictor.model_dir)})
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        rundir.write_json(out / "metrics.json", metrics)
        splits = Splits(predictor.classes, data, data, data, task=predictor.task)
        write_samples(out, predictor.modality_impl, splits, outputs)
        write_report(out)
    return metrics
