"""Imports of tlhub modules sit at the top of a module; one inside a function is there for a stated reason
(to keep torch, or another heavy package, out of a torch-free path such as ``tlhub --help`` / ``tlhub list``,
or to break an import-time cycle), written as a comment on its line or on the line above its import block.
The torch-free paths themselves are checked in fresh processes."""
from __future__ import annotations

import ast
import io
import subprocess
import sys
import tokenize
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PKG = REPO / "tlhub"
# comments that are tool pragmas, not reasons
PRAGMAS = ("noqa", "type:", "pragma", "pylint:", "fmt:", "isort:")


def _is_tlhub_import(node: ast.AST) -> bool:
    if isinstance(node, ast.ImportFrom):
        return bool(node.level) or (node.module or "").split(".")[0] == "tlhub"
    return isinstance(node, ast.Import) and any(a.name.split(".")[0] == "tlhub" for a in node.names)


def _comments(source: str) -> dict[int, str]:
    """Line number -> the text of the comment on that line (tokenize, so a '#' inside a string is no comment)."""
    return {tok.start[0]: tok.string.lstrip("#").strip()
            for tok in tokenize.generate_tokens(io.StringIO(source).readline) if tok.type == tokenize.COMMENT}


def _is_reason(comment: str | None) -> bool:
    """A reason has words of its own: a bare ``# noqa`` or ``# type: ignore`` is not one."""
    if not comment:
        return False
    words = [w for w in comment.split() if not w.lower().startswith(PRAGMAS)]
    return len(words) >= 3


def _statement_lists(node: ast.AST):
    for field in ("body", "orelse", "finalbody"):
        block = getattr(node, field, None)
        if isinstance(block, list) and block and isinstance(block[0], ast.stmt):
            yield block
    for handler in getattr(node, "handlers", []):
        yield handler.body


def bare_local_imports(source: str) -> list[int]:
    """Lines of the imports of tlhub modules inside a function body that carry no reason. The reason is a comment
    on the import's own line(s), or on the line right above the block of consecutive imports it belongs to."""
    comments = _comments(source)
    lines = source.splitlines()
    bare: set[int] = set()
    functions = [n for n in ast.walk(ast.parse(source)) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    for function in functions:
        for node in ast.walk(function):
            for block in _statement_lists(node):
                start = None  # first line of the current run of consecutive import statements
                previous_end = None
                for stmt in block:
                    is_import = isinstance(stmt, (ast.Import, ast.ImportFrom))
                    if not is_import:
                        start = None
                        continue
                    if start is None or stmt.lineno != previous_end + 1:
                        start = stmt.lineno
                    previous_end = stmt.end_lineno
                    if not _is_tlhub_import(stmt):
                        continue
                    own = any(_is_reason(comments.get(n)) for n in range(stmt.lineno, stmt.end_lineno + 1))
                    above = start - 1
                    block_reason = above >= 1 and lines[above - 1].strip().startswith("#") \
                        and _is_reason(comments.get(above))
                    if not (own or block_reason):
                        bare.add(stmt.lineno)
    return sorted(bare)


def test_every_function_local_tlhub_import_says_why():
    bare = [f"{path.relative_to(REPO)}:{line}" for path in sorted(PKG.rglob("*.py"))
            for line in bare_local_imports(path.read_text())]
    assert not bare, (f"{len(bare)} imports of tlhub modules inside a function without a reason (hoist them to the "
                      "top of the module, or say on the line (or above the block) why they stay local):\n"
                      + "\n".join(bare))


def test_the_local_import_check_can_fail():
    source = '''
import torch
from tlhub.errors import UserError


def f():
    from tlhub.model import build
    import tlhub.recipe
    return build


def g():
    # local: tlhub.model imports torch; `tlhub list` must not
    from tlhub.model import build
    from tlhub.recipe import plan
    import json
    return build, plan, json


def h():
    x = 1
    from tlhub.model import build  # local: tlhub.model imports torch; `tlhub list` must not
    from tlhub.recipe import plan  # noqa: F401
    if x:
        # local: cycle at import time
        from tlhub.auto import driver
    from .sibling import y
    import torch  # third-party imports are not this check's business
    return build, plan, driver, y, torch


class K:
    def m(self):
        # local: tlhub.model imports torch; `tlhub list` must not

        from tlhub.model import build
        return build
'''
    assert bare_local_imports(source) == [7, 8, 23, 27, 36]


def _in_fresh_process(code: str) -> str:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().splitlines()[-1]


KINDS = ["modalities", "tasks", "backbones", "heads", "freeze-policies", "data-sources", "metrics", "optimizers",
         "schedulers"]


@pytest.mark.parametrize("args", [["--help"], *[["list", kind] for kind in KINDS]], ids=lambda a: " ".join(a))
def test_help_and_list_import_no_torch(args):
    code = ("import sys; from click.testing import CliRunner; from tlhub.cli import cli; "
            f"r = CliRunner().invoke(cli, {args!r}); assert r.exit_code == 0, r.output; "
            "print(sorted(m for m in ('torch', 'torchvision', 'transformers') if m in sys.modules))")
    assert _in_fresh_process(code) == "[]"


def test_the_torch_check_can_fail():
    code = ("import sys; from click.testing import CliRunner; from tlhub.cli import cli; import tlhub.model; "
            "print(sorted(m for m in ('torch', 'torchvision', 'transformers') if m in sys.modules))")
    assert _in_fresh_process(code) != "[]"
