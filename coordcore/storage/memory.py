"""MemoryStorage: the :class:`coordcore.storage.api.Storage` contract held in memory.

For unit tests and the deterministic simulator.  It keeps two layers, like a
real disk: *durable* state (the log, the snapshots and the two epochs: what
sync(), save_snapshot(), the epoch setters, truncate() and install_snapshot()
made permanent when they returned) and *pending* appends.  :meth:`crash` models
kill -9 / power loss: pending appends vanish and the storage must be load()ed
again, as a restarted server would.

It follows DiskStorage's rules so code tested on one behaves on the other:
load() before anything else; zxids strictly increasing; load() first makes
pending appends durable; the newest 3 snapshots are kept and txns they all
cover are dropped; the epochs are checked and initialised by the same code
(:func:`coordcore.storage.epochs.resolve`); truncate refuses the same cuts;
every refusal is a StorageError.

What it does not model: torn writes or corruption (truncated_bytes is 0), or a
crash *inside* one call.  It does not need to for the multi-step operations:
on disk a crash inside an epoch write or install_snapshot leaves the state of
before or after the call, which crash() before or after the call gives; a crash
inside truncate(z) leaves a prefix of the old history between z and the old
end, which a simulator gets by calling truncate(y) for some y >= z, then
crash().  (Only DiskStorage's currentEpoch.tmp repair has no equivalent here.)
"""
from __future__ import annotations

import threading

from coordcore import zxid as Z
from coordcore.storage import epochs
from coordcore.storage.api import DurableState, StorageError
from coordcore.storage.txnlog import MAX_TXN_BYTES, MAX_ZXID

SNAPSHOTS_KEPT = 3


class MemoryStorage:
    """In-memory Storage with crash(); thread-safe like DiskStorage."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._log: list[tuple[int, bytes]] = []           # durable txns, ascending
        self._snapshots: list[tuple[int, bytes]] = []     # durable snapshots, ascending zxid
        self._accepted: int | None = None                 # durable epochs; None = never stored
        self._current: int | None = None
        self._pending: list[tuple[int, bytes]] = []
        self._last_zxid: int | None = None                # None until load()
        self._closed = False
        self.sync_count = 0                               # syncs that made something durable

    # ------------------------------------------------------------ contract

    def load(self) -> DurableState:
        with self._lock:
            self._closed = False
            self._last_zxid = None
            self._flush()
            snapshot_zxid, snapshot = self._snapshots[-1] if self._snapshots else (0, None)
            txns = [t for t in self._log if t[0] > snapshot_zxid]
            last = txns[-1][0] if txns else snapshot_zxid
            resolved = epochs.resolve(self._accepted, self._current, last, where="MemoryStorage")
            if resolved.write_accepted:
                self._accepted = resolved.accepted
            if resolved.write_current:
                self._current = resolved.current
            state = DurableState(snapshot_zxid=snapshot_zxid, snapshot=snapshot, txns=txns,
                                 accepted_epoch=resolved.accepted, current_epoch=resolved.current)
            self._last_zxid = last
            return state

    def append(self, zxid: int, txn: bytes) -> None:
        with self._lock:
            last = self._check_loaded("append")
            if zxid <= last:
                raise StorageError(f"zxid {zxid:#x} is not above the last appended zxid {last:#x}")
            if zxid > MAX_ZXID:
                raise StorageError(f"zxid {zxid:#x} does not fit in 64 bits")
            txn = bytes(txn)
            if len(txn) > MAX_TXN_BYTES:
                raise StorageError(f"txn of {len(txn)} bytes exceeds {MAX_TXN_BYTES}")
            self._pending.append((zxid, txn))
            self._last_zxid = zxid

    def sync(self) -> None:
        with self._lock:
            if self._closed:
                raise StorageError("storage is closed")
            self._flush()

    def save_snapshot(self, zxid: int, data: bytes) -> None:
        with self._lock:
            last = self._check_loaded("save_snapshot")
            self._snapshots = [s for s in self._snapshots if s[0] != zxid]
            self._snapshots.append((zxid, bytes(data)))
            self._snapshots.sort(key=lambda s: s[0])
            del self._snapshots[:-SNAPSHOTS_KEPT]
            oldest = self._snapshots[0][0]
            self._log = [t for t in self._log if t[0] > oldest]
            self._last_zxid = max(last, zxid)

    @property
    def accepted_epoch(self) -> int:
        with self._lock:
            return self._accepted or 0

    @property
    def current_epoch(self) -> int:
        with self._lock:
            return self._current or 0

    def set_accepted_epoch(self, epoch: int) -> None:
        epochs.check_value(epoch)
        with self._lock:
            self._check_loaded("set_accepted_epoch")
            accepted = self._accepted or 0
            if epoch < accepted:
                raise StorageError(f"acceptedEpoch only grows: {epoch} is below {accepted}")
            self._flush()
            if epoch != accepted:
                self._accepted = epoch

    def set_current_epoch(self, epoch: int) -> None:
        epochs.check_value(epoch)
        with self._lock:
            last = self._check_loaded("set_current_epoch")
            current, accepted = self._current or 0, self._accepted or 0
            if epoch < current:
                raise StorageError(f"currentEpoch only grows: {epoch} is below {current}")
            if epoch > accepted:
                raise StorageError(f"currentEpoch {epoch} would exceed acceptedEpoch {accepted}: "
                                   f"an epoch is accepted before it is adopted")
            if epoch < Z.epoch(last):
                raise StorageError(f"currentEpoch {epoch} is below epoch {Z.epoch(last)} of the last "
                                   f"appended zxid {last:#x}")
            self._flush()
            if epoch != current:
                self._current = epoch

    def truncate(self, zxid: int) -> None:
        """Keep exactly the txns <= ``zxid`` and the snapshots <= ``zxid`` (api.py obligation 6)."""
        with self._lock:
            self._check_loaded("truncate")
            newer = [z for z, _ in self._snapshots if z > zxid]
            older = [s for s in self._snapshots if s[0] <= zxid]
            if newer and not older:
                raise StorageError(
                    f"cannot truncate to {zxid:#x}: every snapshot is newer ("
                    + ", ".join(f"{z:#x}" for z in newer)
                    + f"), and the txns up to {zxid:#x} may have been purged into them; "
                      "this server needs a SNAP")
            self._pending = [t for t in self._pending if t[0] <= zxid]
            self._flush()
            self._snapshots = older
            self._log = [t for t in self._log if t[0] <= zxid]
            self._last_zxid = max([z for z, _ in older] + [z for z, _ in self._log[-1:]] + [0])

    def install_snapshot(self, zxid: int, data: bytes) -> None:
        """The history becomes exactly this snapshot (api.py obligation 7)."""
        if not 0 <= zxid <= MAX_ZXID:
            raise StorageError(f"snapshot zxid {zxid!r} is not a 64-bit zxid")
        with self._lock:
            self._check_loaded("install_snapshot")
            self._pending = []
            self._log = []
            self._snapshots = [(zxid, bytes(data))]
            self._last_zxid = zxid

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
    def snapshot_zxids(self) -> list[int]:
        """zxids of the snapshots held durably, oldest first."""
        with self._lock:
            return [z for z, _ in self._snapshots]

    @property
    def pending_count(self) -> int:
        with self._lock:
            return len(self._pending)

    # -- internals (under _lock)

    def _check_loaded(self, what: str) -> int:
        if self._closed:
            raise StorageError(f"storage is closed: load() must be called before {what}()")
        if self._last_zxid is None:
            raise StorageError(f"load() must be called before {what}()")
        return self._last_zxid

    def _flush(self) -> None:
        if self._pending:
            self._log.extend(self._pending)
            self._pending = []
            self.sync_count += 1
