"""What belongs to a modality or a task stays in its plugin: the core never branches on a modality's name,
never checks a backbone's preprocessing type, and never computes a task's loss itself."""
from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PKG = REPO / "tlhub"
# The built-in modality and task implementations and the datasets they build: the only places allowed.
MODALITY_HOMES = ("tlhub/modalities/", "tlhub/data/images.py", "tlhub/data/text.py")
TASK_HOMES = ("tlhub/tasks/",)

MODALITY_NAME = re.compile(r"""['"](image|text|audio)['"]""")
PREPROCESSING_TYPES = {"ImagePreprocessing", "TextPreprocessing"}
TASK_LOSSES = {"cross_entropy", "CrossEntropyLoss", "binary_cross_entropy_with_logits", "BCEWithLogitsLoss",
               "mse_loss", "MSELoss", "huber_loss", "HuberLoss"}


def _names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} | \
        {n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)}


def modality_branches(source: str) -> list[str]:
    """``x.modality == "image"``-style comparisons and ``isinstance(x, ImagePreprocessing)`` checks."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            consts = [s.value for s in sides if isinstance(s, ast.Constant) and isinstance(s.value, str)]
            if any("modality" in _names(s) for s in sides) and any(MODALITY_NAME.fullmatch(repr(c)) for c in consts):
                found.append(f"line {node.lineno}: compares a modality with {consts}")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "isinstance" \
                and len(node.args) == 2 and _names(node.args[1]) & PREPROCESSING_TYPES:
            found.append(f"line {node.lineno}: isinstance(..., {sorted(_names(node.args[1]) & PREPROCESSING_TYPES)})")
    return found


def task_losses(source: str) -> list[str]:
    return [f"line {n.lineno}: {name}" for n in ast.walk(ast.parse(source))
            if isinstance(n, (ast.Name, ast.Attribute))
            and (name := n.id if isinstance(n, ast.Name) else n.attr) in TASK_LOSSES]


def _core_files(homes: tuple[str, ...]):
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(REPO).as_posix()
        if not rel.startswith(homes):
            yield rel, path.read_text()


def test_no_modality_branch_outside_the_modality_implementations():
    offenders = {rel: hits for rel, src in _core_files(MODALITY_HOMES) if (hits := modality_branches(src))}
    assert not offenders, f"modality-specific code outside tlhub/modalities: {offenders}"


def test_the_modality_check_can_fail():
    assert modality_branches('if predictor.modality == "image":\n    pass\n')
    assert modality_branches('if "text" != run.modality:\n    pass\n')
    assert modality_branches("ok = isinstance(bb.preprocessing, ImagePreprocessing)\n")
    assert not modality_branches("if a.modality != b.modality:\n    pass\n")  # a generic compatibility check


def test_no_task_loss_outside_the_task_implementations():
    offenders = {rel: hits for rel, src in _core_files(TASK_HOMES) if (hits := task_losses(src))}
    assert not offenders, f"a task's loss written outside tlhub/tasks: {offenders}"


def test_the_task_check_can_fail():
    assert task_losses("loss = torch.nn.functional.cross_entropy(logits, y)\n")
    assert task_losses("from torch.nn.functional import cross_entropy\nloss = cross_entropy(x, y)\n")
    assert not task_losses("loss = task.loss(logits, y)\n")
