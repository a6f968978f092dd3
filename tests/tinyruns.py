"""Short runs of tests/recipes/tiny.toml (tiny-cnn on synthetic squares, seconds each) for report tests."""
from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def train_tiny(run_dir: Path, seed: int = 0, *extra: str) -> Path:
    import tlhub
    overrides = ["phases.0.epochs=2", "phases.1.epochs=1", f"train.seed={seed}", f'output.dir="{run_dir}"', *extra]
    tlhub.run(REPO / "tests" / "recipes" / "tiny.toml", overrides, quiet=True)
    return run_dir


def train_tiny_text(root: Path) -> Path:
    """A one-phase run of a tiny random BERT (tlhub_text.testing) on 60 sentences with markup in texts and labels."""
    import json

    from tlhub_text.testing import save_tiny_model

    import tlhub
    folder = save_tiny_model(root / "tiny-bert")
    rows = [{"text": f"<em>{['great', 'awful'][i % 2]}</em> movie {i} \"quoted\" & more", "label": ["good <blink>", "bad & sad"][i % 2]}
            for i in range(60)]
    (root / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "r.toml").write_text(f"""[model]
backbone = "hf"
backbone_options = {{ model = "{folder.as_posix()}", max_length = 16 }}
head = "linear"
[data]
source = "jsonl"
options = {{ path = "data.jsonl" }}
batch_size = 8
[[phases]]
name = "head"
epochs = 1
lr = 0.01
freeze = "frozen"
[output]
dir = "{(root / 'run').as_posix()}"
""")
    return tlhub.run(root / "r.toml", quiet=True).run_dir
