"""The data-driven script runner (tests/datadriven.py): parsing, comparing and rewriting."""
import pytest

import datadriven

SCRIPT = """\
# comments and blank lines are kept
echo a b=1 c=(x, y)
some input
----
a b=1 c=x,y some input

echo two
----
----
first

third
----
----

echo empty
----
"""


def echo(case):
    words = [*case.positional, *(f"{k}={','.join(v)}" for k, v in case.kwargs.items())]
    if case.input:
        words.append(case.input)
    if case.positional == ["two"]:
        return "first\n\nthird"
    if case.positional == ["empty"]:
        return ""
    return " ".join(words)


def test_parses_arguments_input_and_fenced_output():
    cases, _ = datadriven.parse(SCRIPT)
    assert [c.cmd for c in cases] == ["echo", "echo", "echo"]
    first = cases[0]
    assert first.positional == ["a"] and first.get("b") == "1" and first.get_list("c") == ["x", "y"]
    assert first.input == "some input" and first.line == 2
    assert cases[1].expected == "first\n\nthird"
    assert cases[2].expected == ""


def test_a_matching_script_passes_and_a_changed_output_fails_with_its_position(tmp_path):
    path = tmp_path / "s.txt"
    path.write_text(SCRIPT)
    datadriven.run_file(path, echo)
    with pytest.raises(AssertionError, match=r"s\.txt:2: output of 'echo' differs"):
        datadriven.run_file(path, lambda case: "something else")


def test_rewrite_records_the_actual_output_and_keeps_the_layout(tmp_path):
    path = tmp_path / "s.txt"
    path.write_text(SCRIPT.replace("a b=1 c=x,y some input", "stale"))
    datadriven.run_file(path, echo, rewrite=True)
    assert path.read_text() == SCRIPT
    datadriven.run_file(path, echo)


def test_a_case_without_separator_is_a_clear_error():
    with pytest.raises(ValueError, match="has no '----' line"):
        datadriven.parse("echo a\n\n")
