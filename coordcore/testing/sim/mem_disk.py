"""MemDisk: a MemoryStorage seen through the SimDisk queries the checker asks (replica mode).

Every host action goes to the real :class:`~coordcore.storage.memory.MemoryStorage` (append, sync,
the epoch setters, truncate, install_snapshot, save_snapshot, crash, load), so replica mode runs the
storage contract the servers use.  Beside it MemDisk keeps a *mirror* of what the contract says the
storage now holds -- the unsynced appends, and zxid -> txn for every txn held durably (in the log or
covered by a kept snapshot) -- because the checker must know which txns a disk holds durably
(DUR, ACKQ, LOST) and MemoryStorage's snapshots are opaque tree bytes.  Each load() compares the
mirror with what MemoryStorage returns, so a storage that forgets or invents a txn is a STORE
violation, not a silent skew.

A crash that keeps a prefix of the unsynced appends (the kernel had written those pages) is
``truncate(last kept zxid)`` and then ``crash()``, as memory.py's docstring suggests: truncate makes
the kept prefix durable and drops the rest.  No snapshot can be newer than an unsynced append (a
server snapshots only what it applied, which is durable), so the truncate never drops one.

What MemoryStorage lacks for this (so the mirror supplies it): reading back the pending txns and
the txns a snapshot covers.  Nothing else was missing.
"""
from __future__ import annotations

from coordcore import zxid as zx
from coordcore.storage.api import DurableState, StorageError
from coordcore.storage.memory import MemoryStorage
from coordcore.testing.sim.checker import Violation
from coordcore.testing.sim.disk import HostRuleError


class MemDisk:
    def __init__(self) -> None:
        self.storage = MemoryStorage()
        self.pending: list[tuple[int, bytes]] = []
        self.durable: dict[int, bytes] = {}
        self.snapshot_histories: dict[int, list[tuple[int, bytes]]] = {}   # kept snapshot zxid -> txns it covers
        self.last_durable_zxid = 0
        self.snapshot_zxid = 0
        self.snapshot_history: list[tuple[int, bytes]] = []                # of the snapshot last loaded

    # -- queries (the SimDisk interface the checker and ZabHost use)

    @property
    def accepted_epoch(self) -> int:
        return self.storage.accepted_epoch

    @property
    def current_epoch(self) -> int:
        return self.storage.current_epoch

    @property
    def last_zxid(self) -> int:
        return self.pending[-1][0] if self.pending else self.last_durable_zxid

    def holds_durably(self, zxid: int, txn: bytes) -> bool:
        return self.durable.get(zxid) == txn

    def history(self) -> list[tuple[int, bytes]]:
        return sorted(self.durable.items()) + self.pending

    def epoch_rule_broken(self) -> str | None:
        last_epoch = zx.epoch(self.last_durable_zxid)
        if not self.accepted_epoch >= self.current_epoch >= last_epoch:
            return (f"acceptedEpoch={self.accepted_epoch} currentEpoch={self.current_epoch} "
                    f"epoch(last logged {zx.fmt(self.last_durable_zxid)})={last_epoch}")
        return None

    # -- host actions

    def _flush(self) -> bool:
        if not self.pending:
            return False
        for z, t in self.pending:
            self.durable[z] = t
        self.last_durable_zxid = self.pending[-1][0]
        self.pending = []
        return True

    def append(self, zxid: int, txn: bytes) -> None:
        try:
            self.storage.append(zxid, txn)
        except StorageError as e:
            raise HostRuleError(f"Append({zx.fmt(zxid)}) refused: {e}") from None
        self.pending.append((zxid, bytes(txn)))

    def sync(self, up_to: int | None = None) -> bool:
        """fsync.  MemoryStorage syncs every pending append; reporting persisted(up_to) for fewer is fine."""
        if not self.pending:
            return False
        self.storage.sync()
        return self._flush()

    def set_accepted_epoch(self, epoch: int) -> None:
        self._epoch_write(self.storage.set_accepted_epoch, epoch, "SetAcceptedEpoch")

    def set_current_epoch(self, epoch: int) -> None:
        self._epoch_write(self.storage.set_current_epoch, epoch, "SetCurrentEpoch")

    def _epoch_write(self, setter, epoch: int, what: str) -> None:
        try:
            setter(epoch)
        except StorageError as e:
            raise HostRuleError(f"{what}({epoch}) refused: {e}") from None
        self._flush()

    def truncate(self, zxid: int) -> None:
        try:
            self.storage.truncate(zxid)
        except StorageError as e:
            raise HostRuleError(f"Truncate({zx.fmt(zxid)}) refused: {e}") from None
        self.pending = [t for t in self.pending if t[0] <= zxid]
        self._flush()
        self.durable = {z: t for z, t in self.durable.items() if z <= zxid}
        self.snapshot_histories = {z: h for z, h in self.snapshot_histories.items() if z <= zxid}
        self.last_durable_zxid = max(self.durable, default=max(self.snapshot_histories, default=0))

    def install_snapshot(self, zxid: int, data: bytes, history: list[tuple[int, bytes]]) -> None:
        try:
            self.storage.install_snapshot(zxid, data)
        except StorageError as e:
            raise HostRuleError(f"InstallSnapshot({zx.fmt(zxid)}) refused: {e}") from None
        self.pending = []
        self.durable = dict(history)
        self.snapshot_histories = {zxid: list(history)}
        self.last_durable_zxid = zxid

    def save_snapshot(self, zxid: int, data: bytes, history: list[tuple[int, bytes]]) -> None:
        self.storage.save_snapshot(zxid, data)
        self.snapshot_histories[zxid] = list(history)
        kept = set(self.storage.snapshot_zxids)
        self.snapshot_histories = {z: h for z, h in self.snapshot_histories.items() if z in kept}

    def crash(self, keep_pending: int = 0) -> int:
        kept = self.pending[:keep_pending]
        lost = len(self.pending) - len(kept)
        if kept:
            self.truncate(kept[-1][0])
        self.storage.crash()
        self.pending = []
        return lost

    def load(self, sid: int) -> DurableState:
        """storage.load(), checked against the mirror.  A refusal is a violation: every state the
        host rules can leave on a disk must load (the sync window included, storage/epochs.py)."""
        try:
            state = self.storage.load()
        except StorageError as e:
            raise Violation("I6", f"server {sid} cannot restart from its storage: {e}") from None
        self._flush()
        self.snapshot_zxid = state.snapshot_zxid
        if state.snapshot_zxid:
            history = self.snapshot_histories.get(state.snapshot_zxid)
            if history is None:
                raise Violation("STORE", f"server {sid}: storage loads snapshot {zx.fmt(state.snapshot_zxid)} "
                                         f"the host never wrote")
            self.snapshot_history = history
        else:
            self.snapshot_history = []
        expect = [(z, t) for z, t in sorted(self.durable.items()) if z > state.snapshot_zxid]
        if list(state.txns) != expect:
            raise Violation("STORE", f"server {sid}: storage loads {len(state.txns)} txns after snapshot "
                                     f"{zx.fmt(state.snapshot_zxid)}, the contract says {len(expect)} "
                                     f"(first difference near {_first_diff(state.txns, expect)})")
        return state


def _first_diff(a, b) -> str:
    for x, y in zip(a, b):
        if x != y:
            return f"{zx.fmt(x[0])} vs {zx.fmt(y[0])}"
    return "the end"
