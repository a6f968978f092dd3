"""The package's shape: no import cycles (between modules or between folders), no oversized module, a core that
knows no plugin, unchanged results."""
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


def _folder(module: str) -> str:
    """The layer a module belongs to: its first-level folder of tlhub/ (or top-level module; "tlhub": __init__)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _folder_cycle(graph: dict[str, set[str]]) -> str | None:
    """One cycle among the folders of ``graph`` (a module graph as ``_graph()`` builds it), written with the
    module imports behind each step, or None. A folder cycle needs no module cycle: a.x -> b.y and b.z -> a.w."""
    why: dict[tuple[str, str], list[str]] = {}
    for module, deps in graph.items():
        for dep in deps:
            if _folder(module) != _folder(dep):
                why.setdefault((_folder(module), _folder(dep)), []).append(f"{module} -> {dep}")
    folders: dict[str, set[str]] = {_folder(m): set() for m in graph}
    for a, b in why:
        folders[a].add(b)
    try:
        list(TopologicalSorter(folders).static_order())
    except CycleError as exc:
        cycle = exc.args[1]  # [n1, ..., nk, n1], each depending on the next
        steps = [f"{a} -> {b} ({', '.join(sorted(why[a, b]))})" for a, b in zip(cycle, cycle[1:])]
        return "; ".join(steps)
    return None


def test_no_import_cycle_between_folders_of_tlhub():
    """Folders are layers: artifacts (files) below recipe/reporting/use, export above those, training above
    export, auto above training; a lower folder never imports a higher one, not even inside a function."""
    cycle = _folder_cycle(_graph())
    assert cycle is None, f"import cycle between folders: {cycle}"


def test_the_folder_cycle_check_can_fail():
    no_module_cycle = {"tlhub.a.x": {"tlhub.b.y"}, "tlhub.b.y": set(), "tlhub.b.z": {"tlhub.a.w"}, "tlhub.a.w": set()}
    list(TopologicalSorter(no_module_cycle).static_order())  # the module check passes it ...
    cycle = _folder_cycle(no_module_cycle)  # ... the folder check does not
    assert cycle is not None and "tlhub.a.x -> tlhub.b.y" in cycle and "tlhub.b.z -> tlhub.a.w" in cycle, cycle
    layered = {"tlhub.a.x": {"tlhub.b.y"}, "tlhub.a.w": {"tlhub.b.y", "tlhub.errors"}, "tlhub.b.y": {"tlhub.errors"},
               "tlhub.errors": set(), "tlhub": {"tlhub.a.x"}}
    assert _folder_cycle(layered) is None


def test_the_trainer_searches_only_with_the_search_it_is_handed(tmp_path):
    """training/ cannot import auto/ (auto trains with it): tlhub.run hands the search down; without it a
    freeze = "auto" recipe stops before a run folder is made."""
    from tlhub.training import trainer
    out = tmp_path / "run"
    with pytest.raises(TypeError, match="search_auto"):
        trainer.run(REPO / "tests" / "recipes" / "tiny.toml", ["phases.0.freeze=auto", "phases.0.lr=0.03",
                                                               f"output.dir={out}"], quiet=True)
    assert not out.exists()


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
