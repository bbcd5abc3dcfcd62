"""A small data-driven test runner in the style of etcd raft's testdata/*.txt (cockroachdb/datadriven).

A script is a series of test cases separated by blank lines; ``#`` lines are comments:

    # a comment
    command pos1 key=value key=(a,b,c)
    optional input lines
    ----
    the expected output,
    up to the next blank line

An expected output that itself contains blank lines is fenced by a doubled separator (``----`` twice
before it and twice after it); the rewriter picks that form by itself.  Running a script calls
``handler(case) -> str`` for every case in order and compares; the first difference fails (later cases
usually depend on the state earlier ones built).  With ``rewrite=True`` (pytest ``--rewrite``, see
tests/conftest.py) the actual outputs replace the expected ones in the file, comments and layout kept,
so the diff can be reviewed in version control.

This module knows nothing about what the commands mean; each test file supplies the handler.
"""
from __future__ import annotations

import difflib
import pathlib
from collections.abc import Callable
from dataclasses import dataclass, field

SEPARATOR = "----"


@dataclass
class Case:
    """One command of a script: `cmd`, its arguments, its input lines and the expected output."""

    path: str
    line: int
    cmd: str
    positional: list[str] = field(default_factory=list)
    kwargs: dict[str, list[str]] = field(default_factory=dict)
    input: str = ""
    expected: str = ""

    @property
    def pos(self) -> str:
        return f"{self.path}:{self.line}"

    def has(self, key: str) -> bool:
        return key in self.kwargs

    def get(self, key: str, default: str | None = None) -> str | None:
        """The value of key=value (the first value of key=(a,b)), or `default`."""
        vals = self.kwargs.get(key)
        return vals[0] if vals else default

    def get_int(self, key: str, default: int | None = None) -> int | None:
        value = self.get(key)
        return default if value is None else int(value, 0)

    def get_list(self, key: str, default: list[str] | None = None) -> list[str]:
        return list(self.kwargs.get(key, default or []))

    def fail(self, message: str) -> AssertionError:
        return AssertionError(f"{self.pos}: {self.cmd}: {message}")


def _split_args(text: str) -> list[str]:
    """Whitespace-separated words, keeping key=(a, b) together."""
    words, current, depth = [], "", 0
    for ch in text:
        if ch.isspace() and depth == 0:
            if current:
                words.append(current)
            current = ""
            continue
        depth += ch == "("
        depth -= ch == ")"
        current += ch
    if depth:
        raise ValueError(f"unbalanced parentheses in {text!r}")
    if current:
        words.append(current)
    return words


def _parse_directive(path: str, line: int, text: str) -> Case:
    words = _split_args(text)
    case = Case(path=path, line=line, cmd=words[0])
    for word in words[1:]:
        key, eq, value = word.partition("=")
        if not eq:
            case.positional.append(word)
        elif value.startswith("(") and value.endswith(")"):
            case.kwargs[key] = [v.strip() for v in value[1:-1].split(",") if v.strip()]
        else:
            case.kwargs[key] = [value]
    return case


def parse(text: str, path: str = "<script>") -> tuple[list[Case], list[str | int]]:
    """The cases of a script, plus a layout to rewrite it: verbatim text chunks and, for each case,
    its index where its expected output goes."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    cases: list[Case] = []
    layout: list[str | int] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip() or line.lstrip().startswith("#"):
            layout.append(line + "\n")
            i += 1
            continue
        case = _parse_directive(path, i + 1, line)
        start = i
        i += 1
        inputs = []
        while i < len(lines) and lines[i] != SEPARATOR:
            if not lines[i].strip():
                raise ValueError(f"{path}:{start + 1}: {case.cmd!r} has no {SEPARATOR!r} line")
            inputs.append(lines[i])
            i += 1
        if i == len(lines):
            raise ValueError(f"{path}:{start + 1}: {case.cmd!r} has no {SEPARATOR!r} line")
        i += 1  # the separator
        case.input = "\n".join(inputs)
        layout.append("\n".join(lines[start:i]) + "\n")
        expected = []
        if i < len(lines) and lines[i] == SEPARATOR:  # fenced output: runs to a doubled separator
            i += 1
            while i + 1 < len(lines) and not (lines[i] == SEPARATOR and lines[i + 1] == SEPARATOR):
                expected.append(lines[i])
                i += 1
            if i + 1 >= len(lines):
                raise ValueError(f"{path}:{start + 1}: fenced output of {case.cmd!r} is not closed")
            i += 2
        else:
            while i < len(lines) and lines[i].strip():
                expected.append(lines[i])
                i += 1
        case.expected = "\n".join(expected)
        layout.append(len(cases))
        cases.append(case)
    return cases, layout


def _format_output(output: str) -> str:
    if not output:
        return ""
    if any(not line.strip() for line in output.split("\n")):
        return f"{SEPARATOR}\n{output}\n{SEPARATOR}\n{SEPARATOR}\n"
    return output + "\n"


def _normalize(output: str) -> str:
    return "\n".join(line.rstrip() for line in output.strip("\n").split("\n")) if output.strip() else ""


def run_file(path: str | pathlib.Path, handler: Callable[[Case], str], *, rewrite: bool = False) -> None:
    """Run every case of the script at `path` through `handler`; compare, or rewrite the file."""
    path = pathlib.Path(path)
    cases, layout = parse(path.read_text(encoding="utf-8"), path.name)
    actual: list[str] = []
    for case in cases:
        output = _normalize(handler(case))
        if not rewrite and output != case.expected:
            diff = "\n".join(difflib.unified_diff(case.expected.split("\n"), output.split("\n"),
                                                  "expected", "actual", lineterm=""))
            raise AssertionError(f"{case.pos}: output of {case.cmd!r} differs (if the change is intended, "
                                 f"rerun with --rewrite and review the diff):\n{diff}")
        actual.append(output)
    if rewrite:
        text = "".join(chunk if isinstance(chunk, str) else _format_output(actual[chunk]) for chunk in layout)
        path.write_text(text, encoding="utf-8")
