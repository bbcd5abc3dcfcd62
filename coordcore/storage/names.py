"""File names that carry a zxid in hex after a prefix (log.<zxid>, snapshot.<zxid>)."""
from __future__ import annotations

import os

_HEX = frozenset("0123456789abcdef")


def zxid_name(prefix: str, zxid: int) -> str:
    return f"{prefix}{zxid:x}"


def parse_zxid_name(prefix: str, name: str) -> int | None:
    """The zxid in ``name``, or None if the name is not ``prefix`` + lowercase hex."""
    if not name.startswith(prefix):
        return None
    digits = name[len(prefix):]
    if not digits or any(c not in _HEX for c in digits):
        return None
    return int(digits, 16)


def list_zxid_files(directory: str, prefix: str) -> list[tuple[int, str]]:
    """(zxid, path) of every ``prefix``+hex file in ``directory``, oldest first."""
    found = []
    for name in os.listdir(directory):
        zxid = parse_zxid_name(prefix, name)
        if zxid is not None:
            found.append((zxid, os.path.join(directory, name)))
    found.sort()
    return found
