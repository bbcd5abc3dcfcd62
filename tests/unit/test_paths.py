"""Path rules (reference section 10, ZooKeeper's PathUtils), split and int32 wrap."""
from __future__ import annotations

import random

import pytest

from coordcore.tree import paths


@pytest.mark.parametrize("path, sequential, valid", [
    ("/", False, True),
    ("/a", False, True),
    ("/a/b/c", False, True),
    ("/a/.b", False, True),           # a dot-prefixed name is fine
    ("/a/b.", False, True),
    ("/a/...", False, True),          # only "." and ".." components are special
    ("/zookeeper", False, True),
    ("/\u00e9t\u00e9", False, True),  # BMP letters
    ("/a\u4e2d", False, True),
    ("/a\ufeff", False, True),         # just below U+FFF0
    ("", False, False),
    ("a", False, False),
    ("a/b", False, False),
    ("/a/", False, False),            # trailing slash ...
    ("/a/", True, True),              # ... only when sequential (the suffix becomes the name)
    ("/a", True, True),
    ("/a//b", False, False),
    ("//", False, False),
    ("/a//", True, False),
    ("/.", False, False),
    ("/..", False, False),
    ("/a/./b", False, False),
    ("/a/../b", False, False),
    ("/a/.", False, False),
    ("/a/..", False, False),
    ("/a\x00b", False, False),
    ("/a\x01", False, False),
    ("/a\x1f", False, False),
    ("/a\x7f", False, False),
    ("/a\x9f", False, False),
    ("/a\xa0", False, True),          # first character after the C1 range
    ("/a\ud800", False, False),
    ("/a\ue000", False, False),       # private use area is in U+D800..U+F8FF
    ("/a\uf8ff", False, False),
    ("/a\uf900", False, True),
    ("/a\ufff0", False, False),
    ("/a\uffff", False, False),
    ("/a\U0001F600", False, False),   # outside the BMP: surrogates in Java
    ("/\U00010000", False, False),
])
def test_is_valid(path, sequential, valid):
    assert paths.is_valid(path, sequential) is valid


def _valid_by_regex_only(path: str, sequential: bool) -> bool:
    """is_valid without its fast paths: the two rules written as regular expressions."""
    if not path or path[0] != "/":
        return False
    if len(path) == 1:
        return not sequential
    if sequential:
        path += "1"
    return (path[-1] != "/" and paths._BAD_PARTS.search(path) is None
            and paths._BAD_CHARS.search(path) is None)


@pytest.mark.parametrize("seed", range(3))
def test_is_valid_fast_path_agrees_with_the_rules(seed):
    rng = random.Random(seed)
    alphabet = ["/", "/", ".", "a", "-", "_", " ", "\x00", "\x1f", "\x7e", "\x7f", "\x80", "\x9f", "\xa0",
                "\u00e9", "\ud800", "\uf8ff", "\uf900", "\ufff0", "\U0001F600", "0"]
    for _ in range(5000):
        path = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 9)))
        if rng.random() < 0.7:
            path = "/" + path
        for sequential in (False, True):
            assert paths.is_valid(path, sequential) is _valid_by_regex_only(path, sequential), repr(path)


@pytest.mark.parametrize("path, parent, name", [
    ("/a", "/", "a"),
    ("/a/b", "/a", "b"),
    ("/a/b/c", "/a/b", "c"),
    ("/a/", "/a", ""),
])
def test_split(path, parent, name):
    assert paths.split(path) == (parent, name)
    if name:
        assert paths.join(parent, name) == path


@pytest.mark.parametrize("value, wrapped", [
    (0, 0),
    (2**31 - 1, 2**31 - 1),
    (2**31, -2**31),
    (2**32 - 1, -1),
    (2**32, 0),
    (-1, -1),
    (-2**31 - 1, 2**31 - 1),
])
def test_int32_wraps_like_java(value, wrapped):
    assert paths.int32(value) == wrapped


@pytest.mark.parametrize("counter, suffix", [
    (0, "0000000000"),
    (42, "0000000042"),
    (2**31 - 1, "2147483647"),
    (-2**31, "-2147483648"),
    (-1, "-000000001"),
])
def test_sequence_suffix(counter, suffix):
    assert paths.sequence_suffix(counter) == suffix
