"""The docs are kept honest by tests (after datasette's tests/test_docs.py).

Generated pages equal what the generator writes now; every hook is documented and exercised by a
test; every CLI command is documented; every recipe validates; every recipe key is documented.
"""
from __future__ import annotations

import difflib
import re

import pytest

from conftest import REPO

import importlib.util
import sys

# the generator is a developer tool outside the package (tools/docgen.py)
_spec = importlib.util.spec_from_file_location("docgen", REPO / "tools" / "docgen.py")
docgen = importlib.util.module_from_spec(_spec)
sys.modules["docgen"] = docgen
_spec.loader.exec_module(docgen)

DOCS = REPO / "docs"
REGENERATE = ".venv/bin/python tools/docgen.py"
RECIPES = sorted((REPO / "recipes").glob("**/*.toml")) + sorted((REPO / "tests" / "recipes").glob("**/*.toml"))


@pytest.fixture(scope="module")
def generated() -> dict[str, str]:
    return docgen.generate()


def _read(name: str) -> str:
    path = DOCS / name
    assert path.is_file(), f"docs/{name} is missing; run `{REGENERATE}`"
    return path.read_text(encoding="utf-8")


@pytest.mark.parametrize("name", docgen.GENERATED)
def test_generated_page_is_current(name, generated):
    current = _read(name)
    if current != generated[name]:
        diff = "".join(list(difflib.unified_diff(current.splitlines(True), generated[name].splitlines(True),
                                                 f"docs/{name}", "generated now", n=0))[:30])
        pytest.fail(f"docs/{name} is out of date with the code; regenerate it with `{REGENERATE}` "
                    f"(and commit the result). First differences:\n{diff}", pytrace=False)


def test_every_hook_is_documented():
    hooks_md = _read("hooks.md")
    names = docgen.hook_names()
    assert names, "no hook specifications found in tlhub/hookspecs.py"
    missing = [n for n in names if f"### `{n}(" not in hooks_md]
    assert not missing, f"hooks missing from docs/hooks.md: {missing}; run `{REGENERATE}`"


def test_every_hook_is_exercised_by_a_test():
    sources = {p: p.read_text(encoding="utf-8", errors="replace") for p in (REPO / "tests").rglob("*.py")
               if p.name != "test_docs.py"}
    unexercised = [n for n in docgen.hook_names() if not any(re.search(rf"\b{n}\b", s) for s in sources.values())]
    assert not unexercised, f"hooks no test under tests/ mentions (implement them in a test plugin): {unexercised}"


def test_every_cli_command_is_documented():
    cli_md = _read("cli.md")
    commands = [" ".join(path) for path, _, _ in docgen.walk_commands()]
    assert len(commands) > 1
    missing = [c for c in commands if f"## `{c}`" not in cli_md]
    assert not missing, f"commands missing from docs/cli.md: {missing}; run `{REGENERATE}`"


def _blocks(text: str) -> dict[str, str]:
    """Text under each '### ' heading."""
    parts = re.split(r"^### (.+)$", text, flags=re.M)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts), 2)}


def test_every_recipe_key_is_documented():
    blocks = _blocks(_read("recipes.md"))
    missing = []
    for heading, cls, path in docgen._sections():
        block = blocks.get(f"`{heading}`", "")
        for f in docgen.dataclasses.fields(cls):
            if f.name not in ("path", "base_dir") and f"| `{f.name}` |" not in block:
                missing.append(f"{path}.{f.name}")
    assert not missing, f"recipe keys missing from docs/recipes.md: {missing}; run `{REGENERATE}`"
    assert "phases.lr" in docgen.recipe_keys() and "data.augment.flip" in docgen.recipe_keys()


@pytest.mark.parametrize("path", RECIPES, ids=[str(p.relative_to(REPO)) for p in RECIPES])
def test_recipe_validates(path):
    from tlhub.recipe import load_and_validate
    load_and_validate(path)


@pytest.mark.parametrize("path", [p for p in RECIPES if (REPO / "recipes") in p.parents],
                         ids=lambda p: str(p.relative_to(REPO)))
def test_recipe_opens_with_how_to_run_it(path):
    head = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        head.append(line)
    assert head and "tlhub run" in "\n".join(head), \
        f"{path.relative_to(REPO)} must open with a comment that shows how to run it (`tlhub run ...`)"


def test_relative_links_in_docs_resolve():
    broken = []
    for md in sorted(DOCS.rglob("*.md")):
        for target in re.findall(r"\]\(([^)\s]+)\)", md.read_text(encoding="utf-8")):
            target = target.split("#", 1)[0]
            if not target or re.match(r"[a-z]+:", target):
                continue
            if not (md.parent / target).exists():
                broken.append(f"{md.relative_to(REPO)} -> {target}")
    assert not broken, f"broken links: {broken}"


def test_check_mode_reports_nothing_stale(tmp_path, capsys):
    for name, text in docgen.generate().items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    assert docgen.main(["--check", "--out", str(tmp_path)]) == 0
    (tmp_path / "cli.md").write_text("old", encoding="utf-8")
    assert docgen.main(["--check", "--out", str(tmp_path)]) == 1
    assert "stale" in capsys.readouterr().out


def _code_blocks(name: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", _read(name), re.S)


def test_quickstart_recipe_validates(tmp_path):
    from tlhub.recipe import load_and_validate
    recipe = _code_blocks("quickstart.md", "toml")[0]
    assert recipe.startswith("# first.toml") and "tlhub run first.toml" in recipe
    path = tmp_path / "first.toml"
    path.write_text(recipe, encoding="utf-8")
    load_and_validate(path)


def test_plugin_walkthrough_example_passes_the_contract_checks():
    import tomllib
    import types

    from tlhub.testing import check_backbone, check_freeze_policy, registered
    pyproject = next(b for b in _code_blocks("plugins.md", "toml") if "[project.entry-points.tlhub]" in b)
    entry = tomllib.loads(pyproject)["project"]["entry-points"]["tlhub"]
    source = next(b for b in _code_blocks("plugins.md", "python") if "def register_backbones" in b)
    module = types.ModuleType(entry["smallcnn"])
    exec(compile(source, "docs/plugins.md", "exec"), module.__dict__)
    with registered(module):
        bb = check_backbone("small-cnn", options={"width": 4})
        assert bb.group_names == ["stem", "stage1", "stage2"]
        # 40 % of tlhub.testing.EXAMPLE_GROUPS' five groups: the last two
        assert check_freeze_policy("top_fraction", {"fraction": 0.4}) == check_freeze_policy("top_k", {"k": 2})


def test_freeze_page_names_real_advise_constants():
    advise = pytest.importorskip("tlhub.auto.advise")
    names = set(re.findall(r"`([A-Z][A-Z_]{5,})`", _read("freeze.md")))
    assert names, "freeze.md no longer names the thresholds of tlhub/auto/advise.py"
    assert all(hasattr(advise, n) for n in names), f"not in tlhub/auto/advise.py: {sorted(n for n in names if not hasattr(advise, n))}"
