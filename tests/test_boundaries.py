"""Import boundaries, read from the source with `ast` (nothing is imported):

- the library (``pipeline/``) never imports Prefect, the model code (``models``) or the flows, not
  even inside a function or under ``TYPE_CHECKING``: it runs without them, and the flows and the
  model code build on it, never the reverse;
- the flows train models only through the public entry point
  (`models.registry.train_configured_model`), never through ``models.training``'s internals.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def imported_names(source: str, filename: str = "<source>") -> Iterator[tuple[int, str]]:
    """(line, dotted name) for every absolute import in ``source``, wherever it sits.

    ``from a.b import c`` yields both ``a.b`` and ``a.b.c`` (``c`` may be a module);
    ``importlib.import_module("a.b")`` and ``__import__("a.b")`` with a literal name count too.
    Relative imports stay inside their own package, so they cannot cross a boundary.
    """
    for node in ast.walk(ast.parse(source, filename=filename)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module
            for alias in node.names:
                yield node.lineno, f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Call) and _is_dynamic_import(node.func) and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                yield node.lineno, first.value


def _is_dynamic_import(func: ast.expr) -> bool:
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
    return name in ("import_module", "__import__")


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def forbidden_in_pipeline(name: str) -> bool:
    top = name.split(".")[0]
    return top in ("models", "flows", "prefect") or top.startswith("prefect_")


def forbidden_in_flows(name: str) -> bool:
    return _within(name, "models.training")


def violations(package: str, forbidden: Callable[[str], bool], root: Path = REPO) -> list[str]:
    """One line per forbidden import in the package's modules: module, line and what it imports."""
    found = []
    for path in sorted((root / package).rglob("*.py")):
        module = ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
        for line, name in imported_names(path.read_text(encoding="utf-8"), str(path)):
            if forbidden(name):
                found.append(f"{module} (line {line}) imports {name}")
    return sorted(set(found))


def _modules(package: str) -> list[Path]:
    return sorted((REPO / package).rglob("*.py"))


def test_pipeline_imports_neither_prefect_nor_models_nor_flows() -> None:
    assert len(_modules("pipeline")) > 10  # the walk really found the library
    found = violations("pipeline", forbidden_in_pipeline)
    assert not found, "pipeline/ must not depend on Prefect, models or flows:\n" + "\n".join(found)


def test_flows_train_only_through_the_public_entry_point() -> None:
    assert (REPO / "flows" / "train.py") in _modules("flows")
    found = violations("flows", forbidden_in_flows)
    assert not found, (
        "flows/ must train through models.registry.train_configured_model, not models.training:\n"
        + "\n".join(found)
    )


@pytest.mark.parametrize(
    ("source", "name"),
    [
        ("import prefect", "prefect"),
        ("import models.classifier as c", "models.classifier"),
        ("from models.training import train_model", "models.training.train_model"),
        ("from models import training", "models.training"),
        ("def f():\n    from flows.common import flow_settings\n", "flows.common"),
        ("if TYPE_CHECKING:\n    from prefect import Task\n", "prefect.Task"),
        ("import importlib\nimportlib.import_module('models.registry')", "models.registry"),
        ("__import__('prefect_dask')", "prefect_dask"),
    ],
)
def test_the_check_sees_every_kind_of_import(source: str, name: str) -> None:
    assert name in [found for _, found in imported_names(source)]


def test_the_rules_match_packages_not_prefixes() -> None:
    assert forbidden_in_pipeline("prefect.artifacts") and forbidden_in_pipeline("models")
    assert not forbidden_in_pipeline("modelsx") and not forbidden_in_pipeline("pipeline.models")
    assert forbidden_in_flows("models.training.TrainingArguments")
    assert not forbidden_in_flows("models.registry.train_configured_model")
    assert not forbidden_in_flows("models.trainings")


def test_a_violation_names_the_module_and_the_import(tmp_path: Path) -> None:
    package = tmp_path / "pkg" / "sub"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("import json\n", encoding="utf-8")
    (package / "job.py").write_text("def run():\n    from models.training import train_model\n", "utf-8")
    assert violations("pkg", forbidden_in_pipeline, root=tmp_path) == [
        "pkg.sub.job (line 2) imports models.training",
        "pkg.sub.job (line 2) imports models.training.train_model",
    ]
