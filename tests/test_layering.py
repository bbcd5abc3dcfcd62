"""Import layering (DESIGN.md section 2, STYLE.md "Dependency rules"), checked on the source with ast.

One walker (`uses`) reads every import statement, including ones inside functions, `if TYPE_CHECKING:`
blocks and relative imports (resolved to absolute module names); attribute chains such as
`coordcore.tree.txn` reached through a bare `import coordcore`; and, for pure code, the builtins that do
I/O or import by name (`open`, `__import__`, `exec`, ...).  Every file in coordcore/ and recipes/ falls
under exactly one entry of RULES, and a test requires that every coordcore subpackage and top-level module
has one, so a new package cannot go unchecked.  A failure names the file, the line and the rule broken.

This file does not check what happens at run time (a module handed in as an argument, say); it checks
what the source says.
"""
from __future__ import annotations

import ast
import pathlib
import sys
from dataclasses import dataclass

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
COORDCORE = ROOT / "coordcore"
RECIPES = ROOT / "recipes"
FIRST_PARTY = frozenset({"coordcore", "recipes"})

# Standard-library modules pure code may use: an allowlist, so that a clock (datetime), randomness
# (secrets, uuid), the process (sys, signal, subprocess) or files (io, tempfile) cannot slip in unnoticed.
# Everything here computes; nothing here reads a clock, a file, a socket or an RNG.  Add a module
# deliberately, with that check done.  logging is allowed by STYLE.md: the shell decides where it goes.
PURE_STDLIB = frozenset({
    "__future__", "typing", "dataclasses", "enum", "collections",  # records, states, containers
    "struct", "re", "base64", "hashlib", "ipaddress",               # codecs, paths, digest ACLs, ip ACLs
    "heapq", "bisect", "itertools", "functools",                     # zab: queues, ordered histories
    "logging",
})
# Builtins that do I/O or import by name without an import statement the allowlist could see.
PURE_FORBIDDEN_BUILTINS = frozenset({"open", "__import__", "exec", "eval", "compile", "input", "breakpoint"})

ANY = None  # in a Rule field: no restriction


@dataclass(frozen=True)
class Rule:
    text: str                                  # the rule, as the failure message states it
    internal: tuple[str, ...] | None           # first-party modules allowed; each allows its submodules,
                                               # except "coordcore" itself: its __init__ (version constants) only
    stdlib: frozenset[str] | None = ANY        # allowed standard-library top-level modules
    third_party: frozenset[str] | None = ANY   # allowed third-party top-level packages
    pure: bool = False                         # also flags PURE_FORBIDDEN_BUILTINS

    def allows_internal(self, name: str) -> bool:
        if self.internal is ANY:
            return True
        return any(name == a or (a != "coordcore" and name.startswith(a + ".")) for a in self.internal)


def pure(text: str, *internal: str) -> Rule:
    return Rule(text + "; pure: stdlib only from PURE_STDLIB, no open()/__import__/exec/eval",
                internal, stdlib=PURE_STDLIB, third_party=frozenset(), pure=True)


STDLIB_ONLY = Rule("stdlib only (STYLE: errors, zxid, config sit below every layer)", (), third_party=frozenset())
TOOL = Rule("a command-line tool: a composition root, may import anything", ANY)

# Keys: "coordcore/<subpackage>/" (the whole subtree), "coordcore/<module>.py", "recipes/..." likewise.
RULES: dict[str, Rule] = {
    "coordcore/wire/": pure("wire <- errors, zxid", "coordcore.errors", "coordcore.zxid", "coordcore.wire"),
    "coordcore/tree/": pure("tree <- wire, errors, zxid",
                            "coordcore.errors", "coordcore.zxid", "coordcore.wire", "coordcore.tree"),
    # zab treats txns as opaque bytes: it never imports tree, node, storage or runtime, and of wire only the
    # jute codec (DESIGN.md section 2; STYLE.md's dependency table).
    "coordcore/zab/": pure("zab <- wire.jute, errors, zxid; never tree, node, storage, runtime",
                           "coordcore.errors", "coordcore.zxid", "coordcore.wire.jute", "coordcore.zab"),
    "coordcore/node/": pure("node <- zab, tree, wire, storage.api (never a storage backend), errors, zxid, config",
                            "coordcore.errors", "coordcore.zxid", "coordcore.config", "coordcore.zab",
                            "coordcore.tree", "coordcore.wire", "coordcore.storage.api", "coordcore.node"),
    # Snapshots and txns are opaque bytes to storage; it knows nothing of the tree or the protocol.
    "coordcore/storage/": Rule("storage <- errors, zxid (snapshots and txns are opaque bytes)",
                               ("coordcore.errors", "coordcore.zxid", "coordcore.storage")),
    # The shell reaches the tree only through node.  zab as a whole (STYLE names only a codec module)
    # because the next issue's host loop drives zab.peer.QuorumPeer from here.
    "coordcore/runtime/": Rule("runtime <- node, wire, zab, storage, config, errors, zxid; never tree "
                               "(reached through node) nor testing",
                               ("coordcore", "coordcore.config", "coordcore.errors", "coordcore.zxid",
                                "coordcore.node", "coordcore.wire", "coordcore.zab", "coordcore.storage",
                                "coordcore.runtime")),
    "coordcore/testing/": Rule("testing (launchers, simulator) may import anything in coordcore", ANY),
    # Importing any coordcore module runs this file first, so it must stay a leaf or every layer above
    # would drag in whatever it imports.
    "coordcore/__init__.py": Rule("coordcore/__init__.py imports nothing from coordcore and nothing third-party "
                                  "(it runs before every coordcore module)", (), third_party=frozenset()),
    "coordcore/errors.py": STDLIB_ONLY,
    "coordcore/zxid.py": STDLIB_ONLY,
    "coordcore/config.py": STDLIB_ONLY,
    "coordcore/logs.py": Rule("logs <- stdlib and structlog only", (), third_party=frozenset({"structlog"})),
    "coordcore/__main__.py": TOOL,
    "coordcore/cli.py": TOOL,
    "coordcore/bench.py": TOOL,
    "coordcore/bench_ensemble.py": TOOL,
    "coordcore/launch.py": TOOL,
    "recipes/": Rule("recipes import kazoo, tenacity, structlog and the stdlib, never coordcore "
                     "(they must run unchanged on real ZooKeeper)",
                     ("recipes",), third_party=frozenset({"kazoo", "tenacity", "structlog"})),
    "recipes/contenders.py": pure("recipes/contenders.py is the pure part of recipes: no kazoo, never coordcore",
                                  "recipes.errors", "recipes.contenders"),
}

# STYLE.md: within zab the roles never import each other; `peer` switches between them (etcd's r.step swap).
ZAB_ROLES = frozenset({"leader", "learner", "follower", "observer"})

# The command-line tools are composition roots: `coordcore bench --side-by-side` starts an Apache
# ZooKeeper and a coordcore process through the launchers, and `coordcore ensemble` (launch.py) starts
# an ensemble through coordcore.testing.ensembles.  They are the only modules above the server allowed to reach into coordcore.testing;
# the server itself (wire, tree, zab, node, storage, runtime, config) never may.
TOOLS = frozenset({"coordcore/__main__.py", "coordcore/cli.py", "coordcore/bench.py", "coordcore/bench_ensemble.py",
                   "coordcore/launch.py"})

# (`coordcore bench --side-by-side --ensemble N`, bench_ensemble.py, starts both ensembles the same way.)
# Known violations, as (file, imported module), each to be deleted by the change that removes it.  The
# test fails on any other violation, and on an entry here that no longer happens.  Empty since the write
# pipeline moved into node (serve.py no longer encodes txns or names watch kinds).
EXPECTED_VIOLATIONS: frozenset = frozenset()


# ---------------------------------------------------------------------------------------------- walker

@dataclass(frozen=True, order=True)
class Use:
    line: int
    name: str     # absolute module name, or the builtin's name for kind "builtin"
    kind: str     # "import" or "builtin"


def module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_module(name: str) -> bool:
    """A first-party module or package that exists under ROOT."""
    base = ROOT.joinpath(*name.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def uses(path: pathlib.Path) -> list[Use]:
    """Every import in the file, as absolute module names, and every use of a forbidden builtin.

    `from m import a` yields m.a when m.a is a first-party module on disk, otherwise m (a is then a name
    defined in m); so `from coordcore.storage import api` is an import of coordcore.storage.api, as
    `import coordcore.storage.api` is.  For other packages only the top-level name matters to the rules.
    """
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    out: set[Use] = set()
    binds_coordcore = False
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                out.add(Use(node.lineno, a.name, "import"))
                binds_coordcore |= a.asname is None and a.name.split(".")[0] == "coordcore"
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for a in node.names:
                sub = base + "." + a.name
                is_sub = a.name != "*" and base.split(".")[0] in FIRST_PARTY and is_module(sub)
                out.add(Use(node.lineno, sub if is_sub else base, "import"))
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id in PURE_FORBIDDEN_BUILTINS:
            out.add(Use(node.lineno, node.id, "builtin"))
    if binds_coordcore:
        # `import coordcore` (or `import coordcore.wire`) binds the root, and `coordcore.tree.txn` then
        # reaches any module something else loaded: count the longest module such a chain names.
        attributes = [n for n in ast.walk(tree) if isinstance(n, ast.Attribute)]
        part_of_longer = {id(n.value) for n in attributes}  # only whole chains: a.b.c, not also a.b
        for node in attributes:
            if id(node) not in part_of_longer:
                chain, inner = [node.attr], node.value
                while isinstance(inner, ast.Attribute):
                    chain.append(inner.attr)
                    inner = inner.value
                if isinstance(inner, ast.Name) and inner.id == "coordcore":
                    name = "coordcore"
                    for part in reversed(chain):
                        if not is_module(name + "." + part):
                            break
                        name += "." + part
                    out.add(Use(node.lineno, name, "import"))
    return sorted(out)


def imports(path: pathlib.Path) -> list[tuple[int, str]]:
    return [(u.line, u.name) for u in uses(path) if u.kind == "import"]


# ----------------------------------------------------------------------------------------------- rules

def py_files(directory: pathlib.Path) -> list[pathlib.Path]:
    return sorted(p for p in directory.rglob("*.py") if "__pycache__" not in p.parts)


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def rel(path: pathlib.Path) -> str:
    return path.relative_to(ROOT).as_posix()


def rule_key(path: pathlib.Path) -> str:
    """The RULES key a file falls under: the file itself if it has an entry, else its coordcore subpackage
    (coordcore/<pkg>/) or its top-level coordcore module; anything else in recipes/ is "recipes/"."""
    parts = path.relative_to(ROOT).parts
    if rel(path) in RULES:
        return rel(path)
    if parts[0] == "recipes":
        return "recipes/"
    return f"coordcore/{parts[1]}/" if len(parts) > 2 else rel(path)


def violations(path: pathlib.Path) -> list[tuple[int, str, str]]:
    """(line, what, rule broken) for every use in the file that its rule does not allow."""
    key = rule_key(path)
    rule = RULES.get(key)
    if rule is None:
        return [(0, "-", f"no rule in RULES covers {key}: add one (tests/test_layering.py)")]
    where = f"{key} ({rule.text})"
    out = []
    for u in uses(path):
        root = u.name.split(".")[0]
        if u.kind == "builtin":
            if rule.pure:
                out.append((u.line, f"{u.name}()", f"{where}: builtin {u.name} does I/O or imports by name"))
        elif root in FIRST_PARTY:
            if not rule.allows_internal(u.name):
                out.append((u.line, u.name, f"{where}: may import only {rule.internal}"))
        elif root in sys.stdlib_module_names:
            if rule.stdlib is not ANY and root not in rule.stdlib:
                out.append((u.line, u.name, f"{where}: stdlib {root} is not in PURE_STDLIB"))
        elif rule.third_party is not ANY and root not in rule.third_party:
            out.append((u.line, u.name, f"{where}: third-party {root} is not allowed here"))
    parts = path.relative_to(ROOT).with_suffix("").parts
    if parts[:2] == ("coordcore", "zab") and parts[-1] in ZAB_ROLES:
        for u in uses(path):
            other = u.name.split(".")
            if other[:2] == ["coordcore", "zab"] and len(other) > 2 and other[2] in ZAB_ROLES - {parts[-1]}:
                out.append((u.line, u.name, "zab: the roles never import each other; peer switches between "
                                            "them (STYLE.md)"))
    return out


def report(path: pathlib.Path, found: list[tuple[int, str, str]]) -> str:
    return "\n".join(f"{rel(path)}:{line}: imports {what}: breaks {rule}" if line else f"{rel(path)}: {rule}"
                     for line, what, rule in found)


ALL_FILES = py_files(COORDCORE) + py_files(RECIPES)


# ----------------------------------------------------------------------------------------------- tests

def test_pure_packages_exist():
    for pkg in ("wire", "tree", "node"):
        assert (COORDCORE / pkg / "__init__.py").is_file(), f"coordcore/{pkg} is missing"
    assert (RECIPES / "contenders.py").is_file(), "recipes/contenders.py is missing"


def test_every_coordcore_package_and_module_has_a_rule():
    # A new coordcore/<pkg>/ (zab, say) must be given its layer before its first file can pass.
    missing = []
    for child in sorted(COORDCORE.iterdir()):
        if child.is_dir() and child.name != "__pycache__" and py_files(child):
            key = f"coordcore/{child.name}/"
        elif child.suffix == ".py":
            key = f"coordcore/{child.name}"
        else:
            continue
        if key not in RULES:
            missing.append(key)
    assert not missing, f"no layering rule in tests/test_layering.py RULES for: {missing}"


@pytest.mark.parametrize("path", ALL_FILES, ids=rel)
def test_file_imports_only_what_its_layer_allows(path):
    found = [v for v in violations(path) if (rel(path), v[1]) not in EXPECTED_VIOLATIONS]
    assert not found, "\n" + report(path, found)


def test_expected_violations_are_still_real():
    # An entry whose import is gone must go too, so the list only ever shrinks to empty.
    stale = [(f, m) for f, m in sorted(EXPECTED_VIOLATIONS)
             if not (ROOT / f).is_file() or m not in {v[1] for v in violations(ROOT / f)}]
    assert not stale, f"these no longer happen; delete them from EXPECTED_VIOLATIONS: {stale}"


def test_node_uses_the_storage_contract_not_a_backend():
    storage = [(rel(p), line, name) for p in py_files(COORDCORE / "node") for line, name in imports(p)
               if within(name, "coordcore.storage")]
    assert any(within(name, "coordcore.storage.api") for _, _, name in storage), \
        "coordcore.node should depend on coordcore.storage.api (DurableState)"
    bad = [s for s in storage if not within(s[2], "coordcore.storage.api")]
    assert not bad, f"coordcore.node imports storage backends (only storage.api is allowed): {bad}"


def test_nothing_in_coordcore_imports_testing():
    bad = [f"{rel(p)}:{line}: imports {name}" for p in py_files(COORDCORE)
           if p.relative_to(COORDCORE).parts[0] != "testing" and rel(p) not in TOOLS
           for line, name in imports(p) if within(name, "coordcore.testing")]
    assert not bad, ("nothing in coordcore outside coordcore/testing (and the tools cli.py, bench.py) may "
                     f"import coordcore.testing: testing sits above the product; found: {bad}")


# ------------------------------------------------------------------------------- tests of the checker

@pytest.fixture
def fake_root(tmp_path, monkeypatch):
    """A temporary tree with a few real module names, so imports resolve as in the package."""
    for f in ("coordcore/__init__.py", "coordcore/errors.py", "coordcore/node/__init__.py",
              "coordcore/node/acl.py", "coordcore/storage/__init__.py", "coordcore/storage/disk.py",
              "coordcore/storage/api.py", "coordcore/tree/__init__.py", "coordcore/tree/txn.py",
              "coordcore/zab/__init__.py", "coordcore/zab/leader.py", "coordcore/zab/learner.py",
              "coordcore/runtime/__init__.py", "recipes/__init__.py", "recipes/errors.py"):
        (tmp_path / f).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / f).touch()
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    return tmp_path


def write(root: pathlib.Path, relpath: str, source: str) -> pathlib.Path:
    path = root / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source)
    return path


@pytest.mark.parametrize("source, expected", [
    ("import time", {"time"}),
    ("from os import path", {"os"}),
    ("def f():\n    import socket as s", {"socket"}),
    ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import asyncio", {"typing", "asyncio"}),
    ("from coordcore.storage import disk", {"coordcore.storage.disk"}),
    ("from coordcore.storage import api, disk", {"coordcore.storage.api", "coordcore.storage.disk"}),
    ("from ..storage import disk", {"coordcore.storage.disk"}),
    ("from . import acl", {"coordcore.node.acl"}),
    ("from . import something_in_init", {"coordcore.node"}),
    ("from coordcore.tree.txn import encode", {"coordcore.tree.txn"}),
    ("import coordcore\nx = coordcore.tree.txn.encode", {"coordcore", "coordcore.tree.txn"}),
    ("import coordcore.errors\nx = coordcore.storage.disk.X", {"coordcore.errors", "coordcore.storage.disk"}),
])
def test_the_checker_sees_every_form_of_import(fake_root, source, expected):
    assert {name for _, name in imports(write(fake_root, "coordcore/node/x.py", source))} == expected


@pytest.mark.parametrize("relpath, source, rule", [
    # each rule, broken once
    ("coordcore/zab/x.py", "from coordcore.tree import txn", "zab <- wire.jute"),
    ("coordcore/zab/x.py", "import coordcore.storage.disk", "never tree, node, storage, runtime"),
    ("coordcore/zab/x.py", "from coordcore.runtime import serve", "zab <-"),
    ("coordcore/zab/x.py", "from coordcore.wire import proto", "zab <-"),
    ("coordcore/zab/x.py", "import datetime", "stdlib datetime is not in PURE_STDLIB"),
    ("coordcore/zab/x.py", "import random", "stdlib random is not in PURE_STDLIB"),
    ("coordcore/zab/x.py", "import importlib", "stdlib importlib is not in PURE_STDLIB"),
    ("coordcore/zab/x.py", "import structlog", "third-party structlog"),
    ("coordcore/zab/x.py", "def f(p):\n    return open(p).read()", "builtin open"),
    ("coordcore/zab/x.py", "m = __import__('time')", "builtin __import__"),
    ("coordcore/zab/leader.py", "from coordcore.zab import learner", "the roles never import each other"),
    ("coordcore/zab/learner.py", "from .leader import Leader", "the roles never import each other"),
    ("coordcore/wire/x.py", "import secrets", "not in PURE_STDLIB"),
    ("coordcore/tree/x.py", "import coordcore.node", "tree <-"),
    ("coordcore/node/x.py", "from coordcore.storage import disk", "never a storage backend"),
    ("coordcore/node/x.py", "import uuid", "not in PURE_STDLIB"),
    ("coordcore/runtime/x.py", "from coordcore.tree import txn", "never tree"),
    ("coordcore/runtime/x.py", "import coordcore\nx = coordcore.tree.txn", "never tree"),
    ("coordcore/runtime/x.py", "from coordcore.testing import servers", "nor testing"),
    ("coordcore/storage/x.py", "from coordcore.node import acl", "storage <- errors, zxid"),
    ("coordcore/errors.py", "import structlog", "stdlib only"),
    ("coordcore/__init__.py", "from coordcore import errors", "imports nothing from coordcore"),
    ("coordcore/brandnew/x.py", "import os", "no rule in RULES covers coordcore/brandnew/"),
    ("coordcore/brandnew.py", "import os", "no rule in RULES covers coordcore/brandnew.py"),
    ("recipes/lock.py", "from coordcore.testing import servers", "never coordcore"),
    ("recipes/lock.py", "import requests", "third-party requests"),
    ("recipes/contenders.py", "import kazoo", "third-party kazoo"),
    ("recipes/contenders.py", "import time", "not in PURE_STDLIB"),
])
def test_each_rule_catches_a_violation(fake_root, relpath, source, rule):
    found = violations(write(fake_root, relpath, source))
    assert any(rule in broken for _, _, broken in found), found


@pytest.mark.parametrize("relpath, source", [
    ("coordcore/zab/x.py", "import enum, heapq\nfrom coordcore.wire.jute import Reader\nfrom . import leader"),
    ("coordcore/zab/peer.py", "from coordcore.zab import leader, learner"),
    ("coordcore/node/x.py", "from coordcore.storage import api\nfrom coordcore.zab import leader"),
    ("coordcore/runtime/x.py", "import asyncio, structlog\nfrom coordcore import __version__"),
    ("coordcore/testing/sim/x.py", "import random\nfrom coordcore.tree import txn\nfrom coordcore.zab import leader"),
    ("recipes/lock.py", "import kazoo, tenacity, threading\nfrom recipes.errors import RecipeError"),
])
def test_what_the_rules_allow_passes(fake_root, relpath, source):
    assert violations(write(fake_root, relpath, source)) == []


def test_a_failure_names_file_line_and_rule(fake_root):
    path = write(fake_root, "coordcore/zab/x.py", "import enum\n\nimport time\n")
    assert report(path, violations(path)) == (
        "coordcore/zab/x.py:3: imports time: breaks coordcore/zab/ (zab <- wire.jute, errors, zxid; never tree, "
        "node, storage, runtime; pure: stdlib only from PURE_STDLIB, no open()/__import__/exec/eval): "
        "stdlib time is not in PURE_STDLIB")
