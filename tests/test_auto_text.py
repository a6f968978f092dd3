"""freeze = "auto" on text: the prior's linear probes tokenize the training and validation examples (and an
empty test split) through the text modality, then the search runs (a random 2-layer BERT, seconds)."""
from __future__ import annotations

import json
import random

from taskruns import WORDS, write_recipe


def test_auto_on_text_probes_searches_and_trains(tmp_path):
    import tlhub
    rng = random.Random(0)
    lines = ["text\tlabel"]
    for _ in range(120):
        words = rng.sample(WORDS, 3)
        lines.append(f"{' '.join(words)}\t{'pos' if 'great' in words else 'neg'}")
    (tmp_path / "cls.tsv").write_text("\n".join(lines) + "\n")
    recipe = write_recipe(tmp_path, "classification", "tsv", 'path = "cls.tsv", text_column = "text", '
                          'label_column = "label"', epochs=2)
    res = tlhub.run(recipe, ["phases.0.freeze=auto", "phases.0.auto_budget=2"], quiet=True)
    data = json.loads((res.run_dir / "auto_search.json").read_text())
    assert data["rule"]["case"]  # the probes ran
    assert any(t["epochs"] for t in data["trials"]) and data["winner"]
    assert 0 <= res.metrics["accuracy"] <= 1 and res.metrics["test_examples"] > 0
