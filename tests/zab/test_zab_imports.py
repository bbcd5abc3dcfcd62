"""coordcore/zab is pure (the shared interface): only a short list of stdlib modules and the pure
coordcore modules below it.  tests/test_layering.py may grow to cover this; until then, this guards it."""
import ast
import pathlib

import pytest

ZAB = pathlib.Path(__file__).resolve().parents[2] / "coordcore" / "zab"
STDLIB = {"dataclasses", "typing", "enum", "collections", "struct", "heapq", "bisect", "itertools", "functools"}
INTERNAL = ("coordcore.errors", "coordcore.zxid", "coordcore.wire.jute", "coordcore.zab")


def imported(path):
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            yield "coordcore.zab." + (node.module or "") if node.level else node.module


@pytest.mark.parametrize("path", sorted(ZAB.glob("*.py")), ids=lambda p: p.name)
def test_zab_imports_only_the_allowed_modules(path):
    bad = [name for name in imported(path)
           if name.split(".")[0] not in STDLIB
           and not any(name == a or name.startswith(a + ".") for a in INTERNAL)]
    assert not bad, f"coordcore/zab/{path.name} imports {bad}"
