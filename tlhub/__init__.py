"""tlhub: declarative transfer learning (backbone + head + freeze policy per phase, from a TOML recipe)."""
from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["run", "load_recipe", "UserError", "__version__"]

from .errors import UserError
from .recipe import load_recipe


def run(recipe, overrides=(), **kwargs):
    """Train from a recipe path (or a ``Recipe``) and return the finished run (metrics, paths)."""
    from .train import run as _run
    return _run(recipe, overrides=overrides, **kwargs)
