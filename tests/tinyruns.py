"""Short runs of tests/recipes/tiny.toml (tiny-cnn on synthetic squares, seconds each) for report tests."""
from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def train_tiny(run_dir: Path, seed: int = 0, *extra: str) -> Path:
    import tlhub
    overrides = ["phases.0.epochs=2", "phases.1.epochs=1", f"train.seed={seed}", f'output.dir="{run_dir}"', *extra]
    tlhub.run(REPO / "tests" / "recipes" / "tiny.toml", overrides, quiet=True)
    return run_dir
