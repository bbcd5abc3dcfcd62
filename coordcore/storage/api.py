"""The storage contract the server core depends on.  No I/O here.

Txns and snapshots are opaque bytes to storage; each txn is identified by its
zxid (a positive 64-bit int, strictly increasing in the log).  The runtime uses
it like this:

    state = storage.load()                 # on start: newest valid snapshot + txns after it
    storage.append(zxid, txn_bytes)        # buffered, many times
    storage.sync()                         # group commit: one fsync makes all appended txns durable
    storage.save_snapshot(zxid, data)      # consistent snapshot at exactly `zxid`
    storage.close()

Durability obligations: after sync() returns, every appended txn survives a
kill -9 or power loss.  A torn or CRC-failing record at the *tail* of the log
(a crash mid-write) is cut off by load(); corruption followed by valid records
(in the middle) raises CorruptLogError, because serving on would lose
acknowledged writes silently.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


class CorruptLogError(Exception):
    """The txn log or every snapshot is corrupt in a way that is not a torn tail."""


@dataclass(slots=True)
class DurableState:
    snapshot_zxid: int = 0                  # 0 = no snapshot
    snapshot: bytes | None = None           # opaque bytes written by save_snapshot
    txns: list[tuple[int, bytes]] = field(default_factory=list)  # (zxid, txn) with zxid > snapshot_zxid, ascending
    truncated_bytes: int = 0                # bytes of torn tail that load() cut off (for logging)

    @property
    def last_zxid(self) -> int:
        return self.txns[-1][0] if self.txns else self.snapshot_zxid


class Storage(Protocol):
    def load(self) -> DurableState: ...
    def append(self, zxid: int, txn: bytes) -> None: ...
    def sync(self) -> None: ...
    def save_snapshot(self, zxid: int, data: bytes) -> None: ...
    def close(self) -> None: ...
