"""Snapshot files: atomic write, validated read, listing and retention.

A snapshot is ``snapshot.<zxid in hex>`` (lower-case, unpadded, like ZooKeeper's
``snapshot.<zxid>``) holding opaque bytes -- the tree's serialised form is not
this module's business.  Layout (big-endian)::

    magic b"CCSNAPSH" | version u32 | crc u32 | zxid u64 | length u64 | data (length bytes)

``crc`` is CRC-32 of ``zxid|length|data``.  A file is valid only if magic,
version, crc, length (== the file's size minus the header) and the zxid in the
name all agree, so a truncated, bit-flipped or renamed file is never loaded.

Writes go to ``<name>.tmp``, are fsynced, renamed into place and the directory
fsynced: a crash leaves either the old set of snapshots or the new one, plus
perhaps a ``.tmp`` file that :func:`remove_temp_files` deletes.

A snapshot received from a leader is first written, in the same format, as
``install.<zxid in hex>``: a name load() does not take for a snapshot, so the
file can become the commit point of a multi-step install (see
:meth:`coordcore.storage.disk.DiskStorage.install_snapshot`).

What this module does not do: decide when to snapshot, or purge log segments.
"""
from __future__ import annotations

import os
import struct
import zlib
from typing import Iterable

from coordcore.storage.names import list_zxid_files, parse_zxid_name, zxid_name
from coordcore.storage.txnlog import fsync_dir

MAGIC = b"CCSNAPSH"
VERSION = 1
PREFIX = "snapshot."
INSTALL_PREFIX = "install."
TMP_SUFFIX = ".tmp"

_HEADER = struct.Struct(">8sIIQQ")       # magic, version, crc, zxid, length
_ZXID_LEN = struct.Struct(">QQ")
HEADER_SIZE = _HEADER.size               # 32


class SnapshotInvalid(Exception):
    """One snapshot file cannot be used (the message says why)."""


def snapshot_name(zxid: int) -> str:
    return zxid_name(PREFIX, zxid)


def parse_snapshot_name(name: str) -> int | None:
    """The zxid encoded in a snapshot file name, or None if it is not one."""
    return parse_zxid_name(PREFIX, name)


def list_snapshots(snap_dir: str) -> list[tuple[int, str]]:
    """(zxid, path) of every snapshot file in ``snap_dir``, newest first (not validated)."""
    return list_zxid_files(snap_dir, PREFIX)[::-1]


def install_name(zxid: int) -> str:
    return zxid_name(INSTALL_PREFIX, zxid)


def list_installs(snap_dir: str) -> list[tuple[int, str]]:
    """(zxid, path) of every committed ``install.<zxid>`` file, oldest first (not validated)."""
    return list_zxid_files(snap_dir, INSTALL_PREFIX)


def _crc(zxid: int, data: bytes | memoryview) -> int:
    return zlib.crc32(data, zlib.crc32(_ZXID_LEN.pack(zxid, len(data))))


def write_snapshot(snap_dir: str, zxid: int, data: bytes, *, fsync: bool = True) -> str:
    """Atomically create ``snapshot.<zxid>``; returns its path.  Replaces an existing one."""
    return write_snapshot_chunks(snap_dir, zxid, len(data), (data,), fsync=fsync)


def write_snapshot_chunks(snap_dir: str, zxid: int, length: int, chunks: Iterable[bytes], *,
                          fsync: bool = True, name: str | None = None) -> str:
    """Like :func:`write_snapshot` for data that arrives in pieces, ``length`` bytes in all.

    Only one piece is held at a time; the header goes in last (its CRC covers the whole body). Raises
    ValueError, leaving no file, if the pieces do not add up to ``length``.  ``name`` replaces the
    file name ``snapshot.<zxid>`` (for ``install.<zxid>``).
    """
    path = os.path.join(snap_dir, name or snapshot_name(zxid))
    tmp = path + TMP_SUFFIX
    try:
        with open(tmp, "wb") as f:
            f.write(bytes(HEADER_SIZE))
            crc, written = zlib.crc32(_ZXID_LEN.pack(zxid, length)), 0
            for piece in chunks:
                crc = zlib.crc32(piece, crc)
                written += len(piece)
                f.write(piece)
            if written != length:
                raise ValueError(f"snapshot body is {written} bytes, {length} were announced")
            f.seek(0)
            f.write(_HEADER.pack(MAGIC, VERSION, crc, zxid, length))
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    if fsync:
        fsync_dir(snap_dir)
    return path


def read_snapshot(path: str, zxid: int) -> bytes:
    """The data of a valid snapshot file named for ``zxid``; SnapshotInvalid otherwise."""
    with open(path, "rb") as f:
        head = f.read(HEADER_SIZE)
        if len(head) < HEADER_SIZE:
            raise SnapshotInvalid(f"{path}: {len(head)} bytes, shorter than the {HEADER_SIZE}-byte header")
        magic, version, crc, stored_zxid, length = _HEADER.unpack(head)
        if magic != MAGIC:
            raise SnapshotInvalid(f"{path}: not a coordcore snapshot (bad magic {magic!r})")
        if version != VERSION:
            raise SnapshotInvalid(f"{path}: unsupported snapshot version {version} (expected {VERSION})")
        if stored_zxid != zxid:
            raise SnapshotInvalid(f"{path}: holds zxid {stored_zxid:#x}, its name says {zxid:#x}")
        size = os.fstat(f.fileno()).st_size - HEADER_SIZE
        if size != length:
            raise SnapshotInvalid(f"{path}: header says {length} data bytes, file has {size}")
        data = f.read(length)  # the body read once, into the object returned (no second copy)
    if len(data) != length:
        raise SnapshotInvalid(f"{path}: header says {length} data bytes, could read {len(data)}")
    if _crc(zxid, data) != crc:
        raise SnapshotInvalid(f"{path}: CRC mismatch")
    return data


def remove_temp_files(snap_dir: str) -> list[str]:
    """Delete ``snapshot.*.tmp`` and ``install.*.tmp`` left by a crash mid-write; returns their paths."""
    gone = []
    for name in os.listdir(snap_dir):
        if name.startswith((PREFIX, INSTALL_PREFIX)) and name.endswith(TMP_SUFFIX):
            path = os.path.join(snap_dir, name)
            os.unlink(path)
            gone.append(path)
    return gone


def retain_newest(snap_dir: str, keep: int) -> tuple[list[str], int | None]:
    """Delete all but the ``keep`` newest snapshot files (by zxid).

    Returns (deleted paths, zxid of the oldest snapshot kept or None if none).
    Validity is not checked here -- reading every snapshot on each save would
    cost as much as writing one; load() falls back past invalid ones.
    """
    snaps = list_snapshots(snap_dir)
    kept, doomed = snaps[:keep], snaps[keep:]
    for _, path in doomed:
        os.unlink(path)
    return [path for _, path in doomed], (kept[-1][0] if kept else None)
