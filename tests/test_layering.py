"""Import layering (DESIGN.md section 2, STYLE.md "Dependency rules"), checked on the source with ast.

Every import statement counts, including ones inside functions, `if TYPE_CHECKING:` blocks and
relative imports (resolved to absolute module names).  A failure names the file, the line and the rule.
"""
from __future__ import annotations

import ast
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
COORDCORE = ROOT / "coordcore"
RECIPES = ROOT / "recipes"

PURE_PACKAGES = ("wire", "tree", "node")
FORBIDDEN_IN_PURE = frozenset({"asyncio", "socket", "selectors", "threading", "time", "random", "os", "pathlib"})

# coordcore modules a layer may import (STYLE.md dependency table); a prefix allows its submodules.
ALLOWED_INTERNAL = {
    "wire": ("coordcore.errors", "coordcore.zxid", "coordcore.wire"),
    "tree": ("coordcore.errors", "coordcore.zxid", "coordcore.wire", "coordcore.tree"),
    "node": ("coordcore.errors", "coordcore.zxid", "coordcore.config", "coordcore.zab", "coordcore.tree",
             "coordcore.wire", "coordcore.storage.api", "coordcore.node"),
}


def module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: pathlib.Path) -> list[tuple[int, str]]:
    """(line, absolute module name) for every import in the file; `from m import a` also yields m.a."""
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            out.extend((node.lineno, a.name) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            out.append((node.lineno, base))
            out.extend((node.lineno, base + "." + a.name) for a in node.names if a.name != "*")
    return out


def py_files(directory: pathlib.Path) -> list[pathlib.Path]:
    return sorted(p for p in directory.rglob("*.py") if "__pycache__" not in p.parts)


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def rel(path: pathlib.Path) -> str:
    return path.relative_to(ROOT).as_posix()


PURE_FILES = [p for pkg in PURE_PACKAGES for p in py_files(COORDCORE / pkg)]


def test_pure_packages_exist():
    for pkg in PURE_PACKAGES:
        assert (COORDCORE / pkg / "__init__.py").is_file(), f"coordcore/{pkg} is missing"
    assert RECIPES.is_dir(), "recipes/ is missing"


@pytest.mark.parametrize("path", PURE_FILES, ids=rel)
def test_pure_core_does_no_io_and_reads_no_clock(path):
    bad = [f"line {line}: {name}" for line, name in imports(path)
           if name.split(".")[0] in FORBIDDEN_IN_PURE]
    assert not bad, (f"{rel(path)} is in a pure package and must not import "
                     f"{sorted(FORBIDDEN_IN_PURE)}; found: {bad}")


@pytest.mark.parametrize("path", PURE_FILES, ids=rel)
def test_pure_core_imports_only_lower_layers(path):
    layer = path.relative_to(COORDCORE).parts[0]
    allowed = ALLOWED_INTERNAL[layer]
    bad = [f"line {line}: {name}" for line, name in imports(path)
           if within(name, "coordcore") and name != "coordcore"
           and not any(within(name, a) for a in allowed)]
    assert not bad, f"{rel(path)} (layer {layer}) may import only {allowed}; found: {bad}"


def test_node_uses_the_storage_contract_not_a_backend():
    storage = [(rel(p), line, name) for p in py_files(COORDCORE / "node") for line, name in imports(p)
               if within(name, "coordcore.storage")]
    assert any(within(name, "coordcore.storage.api") for _, _, name in storage), \
        "coordcore.node should depend on coordcore.storage.api (DurableState)"
    bad = [s for s in storage if not within(s[2], "coordcore.storage.api")]
    assert not bad, f"coordcore.node imports storage backends (only storage.api is allowed): {bad}"


# The command-line tools are composition roots: `coordcore bench --side-by-side` starts an Apache
# ZooKeeper and a coordcore process through the launchers, as a future `coordcore ensemble` will start
# test ensembles.  They are the only modules above the server allowed to reach into coordcore.testing;
# the server itself (wire, tree, node, storage, runtime, config) never may.
TOOLS = {"cli.py", "bench.py"}


def test_nothing_in_coordcore_imports_testing():
    bad = [f"{rel(p)}:{line}: {name}" for p in py_files(COORDCORE)
           if "testing" not in p.relative_to(COORDCORE).parts[:1]
           and p.relative_to(COORDCORE).as_posix() not in TOOLS
           for line, name in imports(p) if within(name, "coordcore.testing")]
    assert not bad, ("nothing in coordcore outside coordcore/testing may import coordcore.testing "
                     f"(testing sits above the product); found: {bad}")


@pytest.mark.parametrize("path", py_files(RECIPES), ids=rel)
def test_recipes_never_import_coordcore(path):
    bad = [f"line {line}: {name}" for line, name in imports(path) if within(name, "coordcore")]
    assert not bad, f"{rel(path)} must run on real ZooKeeper and never import coordcore; found: {bad}"


def test_recipes_contenders_is_pure():
    path = RECIPES / "contenders.py"
    bad = [f"line {line}: {name}" for line, name in imports(path)
           if name.split(".")[0] in FORBIDDEN_IN_PURE | {"kazoo"}]
    assert not bad, f"{rel(path)} is the pure part of recipes; found: {bad}"


@pytest.mark.parametrize("source, expected", [
    ("import time", {"time"}),
    ("from os import path", {"os", "os.path"}),
    ("def f():\n    import socket as s", {"socket"}),
    ("from coordcore.storage import disk", {"coordcore.storage", "coordcore.storage.disk"}),
    ("from ..storage import disk", {"coordcore.storage", "coordcore.storage.disk"}),
    ("from . import acl", {"coordcore.node", "coordcore.node.acl"}),
])
def test_the_checker_sees_every_form_of_import(tmp_path, monkeypatch, source, expected):
    # A fake coordcore/node/x.py under a temporary root, so relative imports resolve as in the package.
    fake = tmp_path / "coordcore" / "node" / "x.py"
    fake.parent.mkdir(parents=True)
    fake.write_text(source)
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert {name for _, name in imports(fake)} == expected
