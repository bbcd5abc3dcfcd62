"""Layering: recipes import only kazoo, tenacity, structlog (and the standard library), never coordcore;
the pure contender module does no I/O and reads no clock."""

import ast
import pathlib
import sys

import pytest

RECIPES = pathlib.Path(__file__).resolve().parents[2] / "recipes"
ALLOWED_THIRD_PARTY = {"kazoo", "tenacity", "structlog", "recipes"}
PURE_FORBIDDEN = {"asyncio", "socket", "threading", "time", "random", "os", "kazoo"}


def imported_roots(path: pathlib.Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("path", sorted(RECIPES.glob("*.py")), ids=lambda p: p.name)
def test_recipes_import_only_allowed_packages(path):
    foreign = {r for r in imported_roots(path) if r not in sys.stdlib_module_names} - ALLOWED_THIRD_PARTY
    assert not foreign, f"{path.name} imports {sorted(foreign)}"
    assert "coordcore" not in imported_roots(path)


def test_contenders_module_is_pure():
    assert not imported_roots(RECIPES / "contenders.py") & PURE_FORBIDDEN
