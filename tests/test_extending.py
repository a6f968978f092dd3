"""A modality and a task from outside the core, through the same hooks as the built-ins.

``VectorsPlugin`` adds a ``vectors`` modality (rows of numbers, fed to backbones that take ``vector``
input), a backbone and a data source for it, and a ``smoothed-classification`` task: nothing in tlhub
knows any of them, and a run, predict, ONNX export and the report go through.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import tlhub
from tlhub.errors import UserError
from tlhub.hookspecs import hookimpl
from tlhub.interfaces import SequentialBackbone, SourceData, Split
from tlhub.modality import Datasets, InputPipeline, Modality, ModalitySpec, OnnxIO, SampleView
from tlhub.options import Opt
from tlhub.registry import BackboneSpec, DataSourceSpec
from tlhub.task import TaskSpec
from tlhub.tasks.classification import Classification
from tlhub.testing import check_backbone, check_data_source, registered

DIM = 6


class VectorDataset(torch.utils.data.Dataset):
    def __init__(self, items, labels):
        self.x = torch.tensor(np.asarray(items, dtype=np.float32))
        self.labels = list(labels)  # the frozen-prefix cache keeps them beside the cached states

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return self.x[i], self.labels[i]


class VectorInputs(InputPipeline):
    def batch(self, items, device):
        return torch.tensor(np.asarray(items, dtype=np.float32), device=device)


class Vectors(Modality):
    name = "vectors"
    noun = "vectors"
    json_help = "lists of numbers"

    def datasets(self, backbone, data, splits):
        parts = [VectorDataset(getattr(splits, s).items, getattr(splits, s).labels) for s in ("train", "val", "test")]
        return Datasets(*parts)

    def config(self, backbone, data):
        return {"dim": DIM, "scale": data.options["scale"]}

    def config_problems(self, prep):
        return [] if prep.get("dim") == DIM else [f"preprocessing: dim must be {DIM}, got {prep.get('dim')!r}"]

    def as_items(self, inputs):
        rows = [inputs] if inputs and not isinstance(inputs[0], (list, tuple, np.ndarray)) else list(inputs)
        bad = [i + 1 for i, r in enumerate(rows) if len(r) != DIM]
        if bad:
            raise UserError(f"input {bad[0]}: a vector of {DIM} numbers is expected")
        return rows

    def inputs(self, prep, backbone=None, model_dir=None):
        return VectorInputs()

    def example_batch(self, backbone, n=2):
        return torch.randn(n, DIM, generator=torch.Generator().manual_seed(0))

    def onnx_io(self, pipeline, backbone):
        return OnnxIO({"values": self.example_batch(backbone)}, {"values": {0: "batch"}}, lambda values: values)

    def onnx_feeder(self, prep, folder):
        return lambda items: {"values": np.asarray(items, dtype=np.float32)}

    def from_json(self, value, what, limits=None):
        if not (isinstance(value, list) and len(value) == DIM):
            raise ValueError(f"{what}: expected a list of {DIM} numbers")
        return value

    def sample_view(self, item, size):
        return SampleView(text=", ".join(f"{v:.2f}" for v in item))


def _blobs(options, ctx):
    rng = np.random.default_rng(ctx.seed)
    centers = rng.normal(0, 3, (3, DIM))
    labels = [i % 3 for i in range(240)]
    items = [(centers[y] + rng.normal(0, 1, DIM)).tolist() for y in labels]
    return SourceData(["a", "b", "c"], train=Split(items, labels))


def _mlp(weights, options):
    stages = [("in", nn.Sequential(nn.Linear(DIM, 16), nn.ReLU())), ("out", nn.Sequential(nn.Linear(16, 8), nn.ReLU()))]
    bb = SequentialBackbone(stages, nn.Identity(), 8, None, modality="vector")
    return bb


class SmoothedClassification(Classification):
    name = "smoothed-classification"

    def loss(self, outputs, targets):
        return nn.functional.cross_entropy(outputs, targets, label_smoothing=0.1)


class VectorsPlugin:
    @hookimpl
    def register_modalities(self, register):
        register(ModalitySpec("vectors", "rows of numbers", Vectors, feeds=("vector",),
                              options=(Opt("scale", float, 1.0, "a made-up preprocessing option"),)))

    @hookimpl
    def register_tasks(self, register):
        register(TaskSpec("smoothed-classification", "classification with label smoothing", SmoothedClassification))

    @hookimpl
    def register_backbones(self, register):
        register(BackboneSpec("vector-mlp", "a two-group MLP on vectors", "vector", _mlp))

    @hookimpl
    def register_data_sources(self, register):
        register(DataSourceSpec("blobs", "three gaussian blobs", "vectors", _blobs))


RECIPE = """
[model]
backbone = "vector-mlp"
head = "linear"
task = "{task}"
[data]
source = "blobs"
preprocess = {{ scale = 2.0 }}
batch_size = 16
[[phases]]
name = "head"
epochs = 3
lr = 0.05
freeze = "frozen"
[[phases]]
name = "all"
epochs = 2
lr = 0.01
freeze = "none"
[output]
dir = "{out}"
"""


def _recipe(tmp_path: Path, task: str = "classification", **replace) -> Path:
    text = RECIPE.format(task=task, out=(tmp_path / "run").as_posix())
    for old, new in replace.items():
        text = text.replace(old, new)
    path = tmp_path / "vectors.toml"
    path.write_text(text)
    return path


def test_a_modality_and_task_from_outside_pass_the_contract_checks(tmp_path):
    with registered(VectorsPlugin()) as reg:
        assert "vectors" in reg.names("modalities") and "smoothed-classification" in reg.names("tasks")
        check_backbone("vector-mlp")
        check_data_source("blobs", tmp_path=tmp_path)


def test_a_modality_and_task_from_outside_train_predict_export_and_report(tmp_path):
    pytest.importorskip("onnxruntime")
    from tlhub.export.onnx import export_onnx
    from tlhub.use.onnx import OnnxPredictor
    with registered(VectorsPlugin()):
        result = tlhub.run(_recipe(tmp_path, "smoothed-classification"), quiet=True)
        assert result.metrics["accuracy"] > 0.8  # three well-separated blobs; chance is 1/3
        config = json.loads((result.run_dir / "model" / "config.json").read_text())
        assert config["preprocessing"] == {"modality": "vectors", "dim": DIM, "scale": 2.0}
        assert config["task"] == "smoothed-classification"
        samples = json.loads((result.run_dir / "samples.json").read_text())
        assert samples["modality"] == "vectors" and samples["thumbnails"] is False
        assert all(len(it["text"].split(", ")) == DIM for it in samples["items"])
        assert "Worst predictions" in (result.run_dir / "report.html").read_text()

        predictor = tlhub.load(result.run_dir)
        rows = [[0.0] * DIM, [1.0] * DIM]
        probs = predictor.predict_proba(rows)
        assert probs.shape == (2, 3) and np.allclose(probs.sum(1), 1, atol=1e-5)
        with pytest.raises(UserError, match=f"a vector of {DIM} numbers"):
            predictor.predict([[1.0, 2.0]])

        exported = export_onnx(result.run_dir)
        assert exported.modality == "vectors" and exported.inputs == ["values"]
        assert np.abs(OnnxPredictor(exported.path).predict_proba(rows) - probs).max() < 1e-4


def test_validate_checks_the_modality_feeds_the_backbone_and_its_options(tmp_path):
    from tlhub.recipe import load_and_validate
    with registered(VectorsPlugin()):
        with pytest.raises(UserError) as bad:
            load_and_validate(_recipe(tmp_path, **{'backbone = "vector-mlp"': 'backbone = "tiny-cnn"',
                                                   "scale = 2.0": "scale = 2.0, bogus = 1"}))
    errors = "\n".join(bad.value.errors)
    assert "gives vectors data, which feeds vector backbones, but backbone 'tiny-cnn' takes image input" in errors
    assert "data.preprocess" in errors and "bogus" in errors


def test_an_unknown_task_is_refused_before_training(tmp_path):
    from tlhub.recipe import load_and_validate
    with registered(VectorsPlugin()):
        with pytest.raises(UserError, match="model.task: unknown task 'smoothed'"):
            load_and_validate(_recipe(tmp_path, "smoothed"))


def test_the_extending_page_documents_every_method_and_its_task_example_runs():
    import re
    import types

    from tlhub.modality import Modality
    from tlhub.task import Task
    page = (Path(__file__).resolve().parents[1] / "docs" / "extending.md").read_text(encoding="utf-8")
    public = [n for cls in (Modality, Task) for n in vars(cls) if not n.startswith("_")]
    missing = [n for n in public if f"`{n}" not in page]
    assert not missing, f"docs/extending.md does not mention: {missing}"
    block = next(b for b in re.findall(r"```python\n(.*?)```", page, re.S) if "def register_tasks" in b)
    module = types.ModuleType("doc_task")
    exec(compile(block, "docs/extending.md", "exec"), module.__dict__)
    with registered(module) as reg:
        task = reg.task("smoothed-classification")
        logits, y = torch.tensor([[4.0, 0.0]]), torch.tensor([0])
        assert task.loss(logits, y) > nn.functional.cross_entropy(logits, y)  # smoothing costs a confident hit


class OptimPlugin:
    """An optimizer and a schedule from outside, through the hooks the built-in ones use."""

    calls: list = []

    @hookimpl
    def register_optimizers(self, register):
        from tlhub.registry import OptimizerSpec

        def nesterov(groups, phase):
            OptimPlugin.calls.append("optimizer")
            return torch.optim.SGD(groups, lr=phase.lr, momentum=0.9, nesterov=True)
        register(OptimizerSpec("sgd-nesterov", "SGD with Nesterov momentum", nesterov))

    @hookimpl
    def register_schedulers(self, register):
        from tlhub.registry import SchedulerSpec

        def halves(progress):
            OptimPlugin.calls.append("schedule")
            return 1.0 if progress < 0.5 else 0.5
        register(SchedulerSpec("step-half", "the lr, then half of it", halves))


def test_optimizers_and_schedules_from_outside_are_used_by_a_run(tmp_path):
    from tlhub.recipe import load_and_validate
    recipe = _recipe(tmp_path, **{'lr = 0.01': 'lr = 0.01\noptimizer = "sgd-nesterov"\nscheduler = "step-half"'})
    with registered(VectorsPlugin(), OptimPlugin()) as reg:
        assert {"adam", "adamw", "sgd", "sgd-nesterov"} <= set(reg.names("optimizers"))
        assert {"constant", "cosine", "linear", "step-half"} <= set(reg.names("schedulers"))
        OptimPlugin.calls.clear()
        tlhub.run(recipe, quiet=True)
        assert "optimizer" in OptimPlugin.calls and "schedule" in OptimPlugin.calls
    with pytest.raises(UserError, match="phases.1.optimizer: unknown optimizer 'sgd-nesterov'"):
        load_and_validate(recipe)  # without the plugin the name is unknown, before anything trains


def test_plugins_import_only_the_public_modules():
    import ast
    import re
    repo = Path(__file__).resolve().parents[1]
    page = (repo / "docs" / "extending.md").read_text(encoding="utf-8")
    section = page.split("## What a plugin may import", 1)[1].split("\n## ", 1)[0]
    public = set(re.findall(r"`(tlhub(?:\.[a-z_]+)*)`", section))
    assert {"tlhub.modality", "tlhub.task", "tlhub.interfaces", "tlhub.testing"} <= public
    offenders = []
    for path in sorted([*(repo / "plugins").rglob("*.py"), *(repo / "docs").rglob("*.py")]):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else []
            offenders += [f"{path.relative_to(repo)}: {n}" for n in names
                          if n.split(".")[0] == "tlhub" and n not in public]
    assert not offenders, f"plugins import tlhub modules that are not public (docs/extending.md): {offenders}"
