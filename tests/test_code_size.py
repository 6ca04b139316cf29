"""Code a reader takes in at once: no function over 60 lines in the packages, and no module over
400 lines unless its docstring says why it is one module ("over 400 lines because …")."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MODULES = sorted(
    path for package in ("pipeline", "models", "flows", "voc") for path in (REPO / package).rglob("*.py")
)
MAX_FUNCTION_LINES = 60
MAX_MODULE_LINES = 400


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(REPO)))
def test_functions_are_short(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    long = [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long, f"split these into named steps: {', '.join(long)}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(REPO)))
def test_long_modules_say_why(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    if len(text.splitlines()) > MAX_MODULE_LINES:
        docstring = ast.get_docstring(ast.parse(text)) or ""
        assert f"over {MAX_MODULE_LINES} lines because" in docstring, (
            f"{len(text.splitlines())} lines: split the module, or say in its docstring why it is one"
        )
