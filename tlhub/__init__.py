"""tlhub: declarative transfer learning (backbone + head + freeze policy per phase, from a TOML recipe)."""
from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["run", "load", "Predictor", "Prediction", "load_recipe", "UserError", "__version__"]

from tlhub.errors import UserError
from tlhub.recipe import load_recipe


def run(recipe, overrides=(), *, overwrite: bool = False, quiet: bool = False, resume: str | None = None):
    """Train from a recipe path (or a ``Recipe``) and return the finished ``RunResult``.

    ``overrides``: ``key=value`` strings as on the command line (``["phases.1.epochs=2"]``).
    ``overwrite``: replace an existing ``output.dir``. ``resume``: a run directory (or ``"latest"``)
    to continue from its newest whole checkpoint. The result has ``metrics``, ``history``,
    ``run_dir``, ``classes``, ``timings``, the trained ``model`` and the task's ``primary_metric``.
    """
    # Here, above both: the auto search trains with tlhub.training, so the trainer is handed it
    from tlhub.auto.driver import search_auto
    from tlhub.training.trainer import run as _run
    return _run(recipe, overrides=overrides, overwrite=overwrite, quiet=quiet, resume=resume,
                search_auto=search_auto)


def load(path, device: str = "cpu", mixed_precision: str = "auto"):
    """Load a trained model (a run directory or its ``model/`` folder) as a ``Predictor``; see ``tlhub.use.load``."""
    # local: keeps `import tlhub` (every entry point runs it) to tlhub.errors and tlhub.recipe
    from tlhub.use.load import load as _load
    return _load(path, device=device, mixed_precision=mixed_precision)


def __getattr__(name):  # Predictor and Prediction without importing torch at ``import tlhub``
    if name in ("Predictor", "Prediction"):
        # local: keeps `import tlhub` (every entry point runs it) to tlhub.errors and tlhub.recipe
        from tlhub.use import load as predict
        return getattr(predict, name)
    raise AttributeError(f"module 'tlhub' has no attribute {name!r}")
