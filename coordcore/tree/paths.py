"""Path rules: validation (ZooKeeper's PathUtils), parent/name split."""
from __future__ import annotations


def _bad_char(ch: str) -> bool:
    c = ord(ch)
    return (
        c == 0
        or 0x01 <= c <= 0x1F
        or 0x7F <= c <= 0x9F
        or 0xD800 <= c <= 0xF8FF
        or 0xFFF0 <= c <= 0xFFFF
        or c > 0xFFFF  # Java sees a surrogate pair, which it rejects
    )


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
    for part in path[1:].split("/"):
        if part == "" or part == "." or part == "..":
            return False
    for ch in path:
        if _bad_char(ch):
            return False
    return True


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
