"""The package's shape: no import cycles, no oversized module, a core that knows no plugin, unchanged results."""
from __future__ import annotations

import ast
import json
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest
import torch
from recorded import assert_matches_recorded

REPO = Path(__file__).resolve().parents[1]
PKG = REPO / "tlhub"


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module of tlhub that ``path`` imports, at module level or inside a function."""
    names = set()
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([node.module] if node.module else []))
            names.add(base)
            names.update(f"{base}.{a.name}" for a in node.names)
    return names


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PKG.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        deps = set()
        for target in _imports(path):
            while target and target not in modules:
                target = target.rpartition(".")[0]
            # a package's own __init__ and its parents are not edges (importing tlhub.x.y runs them anyway)
            if target and target != name and not name.startswith(target + ".") and target != "tlhub":
                deps.add(target)
        graph[name] = deps
    return graph


def test_no_import_cycle_inside_tlhub():
    try:
        list(TopologicalSorter(_graph()).static_order())
    except CycleError as exc:
        pytest.fail(f"import cycle: {' -> '.join(exc.args[1])}")


def test_the_cycle_check_can_fail():
    graph = {"a": {"b"}, "b": {"a"}}
    with pytest.raises(CycleError):
        list(TopologicalSorter(graph).static_order())


def test_no_module_over_400_lines():
    long = {str(p.relative_to(REPO)): n for p in PKG.rglob("*.py") if (n := len(p.read_text().splitlines())) > 400}
    assert not long, f"modules over 400 lines: {long}"


def test_core_imports_no_plugin_and_no_transformers():
    banned = ("transformers", "tlhub_vision", "tlhub_text")
    offenders = {}
    for path in PKG.rglob("*.py"):
        bad = sorted(n for n in _imports(path) if n.split(".")[0] in banned)
        if bad:
            offenders[str(path.relative_to(REPO))] = bad
    assert not offenders, f"the core imports plugin-only packages: {offenders}"


@pytest.mark.recorded
@pytest.mark.skipif(torch.cuda.is_available(), reason="the golden figures were recorded on a CPU; a run here "
                    "trains on the GPU, whose kernels sum in another order")
def test_tiny_recipe_scores_what_it_scored_before_the_layout_change(tmp_path):
    """Recorded from the flat-layout code (see tests/data/tiny_golden.json) on another CPU: counts, labels and
    decisions must match exactly, losses and rates within float summation order (tests/recorded.py)."""
    import tlhub
    golden = json.loads((REPO / "tests" / "data" / "tiny_golden.json").read_text())
    result = tlhub.run(REPO / "tests" / "recipes" / "tiny.toml", overrides=[f"output.dir={tmp_path / 'run'}"],
                       quiet=True)
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    history = [{k: v for k, v in json.loads(line).items() if "seconds" not in k}
               for line in (result.run_dir / "history.jsonl").read_text().splitlines()]
    assert_matches_recorded(metrics, golden["metrics"])
    assert_matches_recorded(history, golden["history"])
