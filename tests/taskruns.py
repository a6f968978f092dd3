"""Tiny multi-label, regression and sentence-pair runs (a random 2-layer BERT of tlhub_text.testing, seconds
each) shared by tests/test_tasks.py."""
from __future__ import annotations

import random
from pathlib import Path

WORDS = ["great", "bad", "fun", "movie", "film", "story", "plot", "actor"]  # in the tiny tokenizer's vocabulary
LABELS = ("great", "bad", "fun")


def write_recipe(root: Path, task: str, source: str, options: str, task_options: str = "", epochs: int = 6,
                 backbone_options: str = "") -> Path:
    from tlhub_text.testing import save_tiny_model
    folder = root / "tiny-bert"
    if not folder.is_dir():
        save_tiny_model(folder)
    recipe = root / f"{task}.toml"
    recipe.write_text(f"""[model]
backbone = "hf"
backbone_options = {{ model = "{folder.as_posix()}", max_length = 24{", " + backbone_options if backbone_options else ""} }}
task = "{task}"
task_options = {{ {task_options} }}
[data]
source = "{source}"
options = {{ {options} }}
batch_size = 8
[train]
threads = 1
[[phases]]
name = "all"
epochs = {epochs}
lr = 0.003
freeze = "none"
restore_best = true
[output]
dir = "{(root / ('run-' + task)).as_posix()}"
""")
    return recipe


def multilabel_data(root: Path, n: int = 120, seed: int = 0) -> Path:
    """Texts of 3 words; the labels are the LABELS words among them (``great|fun``), ``none`` when none is."""
    rng = random.Random(seed)
    lines = ["text\tlabels"]
    for i in range(n):
        words = rng.sample(WORDS, 3)
        labels = [w for w in words if w in LABELS] or ["none"]
        lines.append(f"{' '.join(words)} {i}\t{'|'.join(labels)}")
    path = root / "ml.tsv"
    path.write_text("\n".join(lines) + "\n")
    return path


def pair_data(root: Path, n: int = 120, seed: int = 0) -> Path:
    """Sentence pairs scored by how many LABELS words the two sentences hold together (0-6, plus noise)."""
    rng = random.Random(seed)
    lines = ["s1\ts2\tscore"]
    for _ in range(n):
        a, b = rng.sample(WORDS, 3), rng.sample(WORDS, 3)
        score = sum(w in LABELS for w in a + b)
        lines.append(f"{' '.join(a)}\t{' '.join(b)}\t{score + rng.random() * 0.2:.3f}")
    path = root / "pairs.tsv"
    path.write_text("\n".join(lines) + "\n")
    return path
