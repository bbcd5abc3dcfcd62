"""MemoryStorage: the :class:`coordcore.storage.api.Storage` contract held in memory.

For unit tests and the deterministic simulator.  It keeps two layers, like a
real disk: *durable* state (what sync() and save_snapshot() made permanent) and
*pending* appends.  :meth:`crash` models kill -9 / power loss: pending appends
vanish and the storage must be load()ed again, as a restarted server would.

It follows DiskStorage's rules so code tested on one behaves on the other:
load() before append(); zxids strictly increasing; load() first makes pending
appends durable; the newest 3 snapshots are kept and txns they all cover are
dropped.  It does not model torn writes or corruption (truncated_bytes is 0).
"""
from __future__ import annotations

import threading

from coordcore.storage.api import DurableState

SNAPSHOTS_KEPT = 3


class MemoryStorage:
    """In-memory Storage with crash(); thread-safe like DiskStorage."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._log: list[tuple[int, bytes]] = []           # durable txns, ascending
        self._snapshots: list[tuple[int, bytes]] = []     # durable snapshots, ascending zxid
        self._pending: list[tuple[int, bytes]] = []
        self._last_zxid: int | None = None                # None until load()
        self._closed = False
        self.sync_count = 0                               # syncs that made something durable

    def load(self) -> DurableState:
        with self._lock:
            self._closed = False
            self._flush()
            snapshot_zxid, snapshot = self._snapshots[-1] if self._snapshots else (0, None)
            txns = [t for t in self._log if t[0] > snapshot_zxid]
            state = DurableState(snapshot_zxid=snapshot_zxid, snapshot=snapshot, txns=txns)
            self._last_zxid = state.last_zxid
            return state

    def append(self, zxid: int, txn: bytes) -> None:
        with self._lock:
            last = self._last_zxid
            if last is None:
                raise RuntimeError("load() must be called before append()"
                                   + (" (storage is closed)" if self._closed else ""))
            if zxid <= last:
                raise ValueError(f"zxid {zxid:#x} is not above the last appended zxid {last:#x}")
            self._pending.append((zxid, bytes(txn)))
            self._last_zxid = zxid

    def sync(self) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("storage is closed")
            self._flush()

    def save_snapshot(self, zxid: int, data: bytes) -> None:
        with self._lock:
            if self._last_zxid is None:
                raise RuntimeError("load() must be called before save_snapshot()")
            self._snapshots = [s for s in self._snapshots if s[0] != zxid]
            self._snapshots.append((zxid, bytes(data)))
            self._snapshots.sort(key=lambda s: s[0])
            del self._snapshots[:-SNAPSHOTS_KEPT]
            oldest = self._snapshots[0][0]
            self._log = [t for t in self._log if t[0] > oldest]
            self._last_zxid = max(self._last_zxid, zxid)

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._flush()
            self._closed = True
            self._last_zxid = None

    def crash(self) -> None:
        """Lose every append not yet synced; the next user must load() again."""
        with self._lock:
            self._pending = []
            self._last_zxid = None
            self._closed = False

    # -- inspection for tests and the simulator

    @property
    def durable_zxids(self) -> list[int]:
        """zxids of the txns held durably in the log (after purging)."""
        with self._lock:
            return [z for z, _ in self._log]

    @property
    def pending_count(self) -> int:
        with self._lock:
            return len(self._pending)

    def _flush(self) -> None:
        if self._pending:
            self._log.extend(self._pending)
            self._pending = []
            self.sync_count += 1
