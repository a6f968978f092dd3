"""tlhub.reporting.pictures draws from the run directory's files alone."""
import json

import numpy as np
import pytest

from tlhub.reporting.pictures import write_report

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def make_run(run_dir, modality="image"):
    rng = np.random.default_rng(0)
    cm = (np.eye(10) * 950 + rng.integers(0, 25, (10, 10))).astype(int)
    (run_dir / "metrics.json").write_text(json.dumps({
        "accuracy": float(np.trace(cm) / cm.sum()), "f1": 0.9, "confusion_matrix": cm.tolist(), "classes": CLASSES}))
    rows = []
    for pi, (phase, epochs) in enumerate([("head", 4), ("finetune", 3)]):
        for e in range(1, epochs + 1):
            k = len(rows) + 1
            rows.append({"phase": phase, "phase_index": pi, "epoch": e, "train_loss": 2 / k, "train_accuracy": 1 - 0.5 / k,
                         "val_loss": 2.2 / k, "val_accuracy": 1 - 0.6 / k})
    (run_dir / "history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    items = [{"true": CLASSES[i], "pred": CLASSES[(i + (i % 3 == 0)) % 10], "prob": 0.5 + i / 20,
              "text": f"a | sentence\nnumber {i}"} for i in range(9)]
    (run_dir / "samples.json").write_text(json.dumps({"modality": modality, "items": items,
                                                      "thumbnails": modality == "image"}))
    if modality == "image":
        from safetensors.numpy import save_file
        save_file({"images": rng.integers(0, 255, (9, 32, 32, 3), dtype=np.uint8)},
                  str(run_dir / "samples.safetensors"))
    return items


def test_image_run_report(tmp_path):
    make_run(tmp_path)
    written = write_report(tmp_path)
    names = sorted(p.name for p in written)
    assert names == ["confusion_matrix.png", "learning_curves.png", "samples.png"]
    for p in written:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000


def test_text_run_report(tmp_path):
    items = make_run(tmp_path, modality="text")
    written = write_report(tmp_path)
    assert sorted(p.name for p in written) == ["confusion_matrix.png", "learning_curves.png", "samples.md"]
    md = (tmp_path / "samples.md").read_text(encoding="utf-8")
    rows = [line for line in md.splitlines() if line.startswith("| a")]
    assert len(rows) == 9 and "\\|" in rows[0]  # pipes escaped, newlines folded
    mistakes = sum(i["true"] != i["pred"] for i in items)
    assert all("✗" in r for r in rows[:mistakes]) and not any("✗" in r for r in rows[mistakes:])


def test_missing_files_skip_their_pictures(tmp_path):
    assert write_report(tmp_path) == []
    make_run(tmp_path)
    (tmp_path / "samples.safetensors").unlink()
    (tmp_path / "history.jsonl").unlink()
    assert [p.name for p in write_report(tmp_path)] == ["confusion_matrix.png"]


@pytest.mark.parametrize("n", [2, 40])
def test_confusion_matrix_sizes(tmp_path, n):
    cm = np.full((n, n), 3).tolist()
    (tmp_path / "metrics.json").write_text(json.dumps({"accuracy": 1 / n, "confusion_matrix": cm,
                                                       "classes": [f"c{i}" for i in range(n)]}))
    assert [p.name for p in write_report(tmp_path)] == ["confusion_matrix.png"]
