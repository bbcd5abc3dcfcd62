"""Path rules: validation (ZooKeeper's PathUtils), parent/name split."""
from __future__ import annotations

import re


# Characters ZooKeeper's PathUtils rejects.  Java checks UTF-16 code units, so anything outside the
# BMP (a surrogate pair there) is rejected too.
_BAD_CHARS = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\uf8ff\ufff0-\U0010ffff]")
_BAD_PARTS = re.compile(r"//|/\.\.?(?:/|$)")


def is_valid(path: str, sequential: bool = False) -> bool:
    """True if `path` is acceptable for a write (a trailing '/' only when sequential)."""
    if not path or path[0] != "/":
        return False
    if len(path) == 1:
        return not sequential
    if sequential:
        path = path + "1"  # the suffix will follow, as ZooKeeper validates it
    if path[-1] == "/":
        return False
    # Every write checks its path, so the common case skips the regexes: an empty, '.' or '..'
    # segment needs "//" or "/." somewhere, and in ASCII the bad characters are exactly the
    # non-printable ones.
    if ("//" in path or "/." in path) and _BAD_PARTS.search(path) is not None:
        return False
    if path.isascii():
        return path.isprintable()
    return _BAD_CHARS.search(path) is None


def split(path: str) -> tuple[str, str]:
    """'/a/b' -> ('/a', 'b'); '/a' -> ('/', 'a')."""
    i = path.rfind("/")
    return (path[:i] or "/", path[i + 1:])


def join(parent: str, name: str) -> str:
    return parent + name if parent == "/" else parent + "/" + name


def sequence_suffix(counter: int) -> str:
    return "%010d" % counter


def int32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - 0x100000000 if v & 0x80000000 else v
