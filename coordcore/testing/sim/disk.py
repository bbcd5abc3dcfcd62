"""SimDisk: one simulated server's data directory, obeying the host rules of the ensemble step API.

What it models: a txn log whose appends are *pending* (in the OS page cache) until a sync makes them
*durable*; two epoch files (acceptedEpoch, currentEpoch) written atomically and durably; a snapshot
(zxid, bytes) installed durably; and a truncation of the log to a zxid that also drops newer
snapshots.  :meth:`crash` is kill -9: every pending append is lost, except that, when the scheduler
asks for it, a prefix of them survives (the kernel had already written those pages) -- a real disk
may keep any prefix of unsynced appends, never a suffix with a hole.

What it does not model: torn records and CRC failures (the storage package's own tests cover those),
file sizes, or the snapshots a server takes by itself.

It is the simulator's stand-in until ``MemoryStorage`` grows the epoch/truncate/install API with the
same semantics.  Host rule 1 lives in :meth:`execute`: any non-Append write first syncs every pending
append, then takes effect durably.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field

from coordcore import zxid as zx

_ENTRY = struct.Struct(">qI")


def encode_history(history: list[tuple[int, bytes]]) -> bytes:
    """A snapshot's bytes: the applied history itself, so the checker knows which txns it holds."""
    return b"".join(_ENTRY.pack(z, len(t)) + t for z, t in history)


def decode_history(data: bytes) -> list[tuple[int, bytes]]:
    out, pos = [], 0
    while pos < len(data):
        z, n = _ENTRY.unpack_from(data, pos)
        pos += _ENTRY.size
        out.append((z, bytes(data[pos:pos + n])))
        pos += n
    return out


@dataclass(slots=True)
class Loaded:
    """What a restarting server reads from its disk (the shape of ``storage.load()``)."""

    accepted_epoch: int
    current_epoch: int
    snapshot_zxid: int
    snapshot: bytes | None
    txns: list[tuple[int, bytes]]

    @property
    def last_zxid(self) -> int:
        return self.txns[-1][0] if self.txns else self.snapshot_zxid


class HostRuleError(AssertionError):
    """A Ready asked the disk for something the host rules forbid (e.g. an Append that goes backwards)."""


@dataclass(slots=True)
class SimDisk:
    accepted_epoch: int = 0
    current_epoch: int = 0
    snapshot_zxid: int = 0
    snapshot: bytes | None = None
    snapshot_history: list[tuple[int, bytes]] = field(default_factory=list)
    log: list[tuple[int, bytes]] = field(default_factory=list)        # durable, ascending, > snapshot_zxid
    pending: list[tuple[int, bytes]] = field(default_factory=list)    # appended, not yet synced
    durable: dict[int, bytes] = field(default_factory=dict)           # zxid -> txn held durably (snapshot + log)
    sync_count: int = 0

    # -- queries the checker uses

    @property
    def last_durable_zxid(self) -> int:
        return self.log[-1][0] if self.log else self.snapshot_zxid

    @property
    def last_zxid(self) -> int:
        return self.pending[-1][0] if self.pending else self.last_durable_zxid

    def holds_durably(self, zxid: int, txn: bytes) -> bool:
        return self.durable.get(zxid) == txn

    def history(self) -> list[tuple[int, bytes]]:
        """Every txn this disk holds (snapshot, durable log, pending), in zxid order."""
        return self.snapshot_history + self.log + self.pending

    def epoch_rule_broken(self) -> str | None:
        """I6 on the durable state: acceptedEpoch >= currentEpoch >= epoch(last logged zxid)."""
        last_epoch = zx.epoch(self.last_durable_zxid)
        if not self.accepted_epoch >= self.current_epoch >= last_epoch:
            return (f"acceptedEpoch={self.accepted_epoch} currentEpoch={self.current_epoch} "
                    f"epoch(last logged {zx.fmt(self.last_durable_zxid)})={last_epoch}")
        return None

    # -- host actions

    def append(self, zxid: int, txn: bytes) -> None:
        if zxid <= self.last_zxid:
            raise HostRuleError(f"Append({zx.fmt(zxid)}) is not above the last logged zxid {zx.fmt(self.last_zxid)}")
        self.pending.append((zxid, bytes(txn)))

    def sync(self, up_to: int | None = None) -> bool:
        """fsync: pending appends (those <= up_to, or all) become durable.  True if anything moved."""
        if not self.pending:
            return False
        if up_to is None or self.pending[-1][0] <= up_to:
            moved, self.pending = self.pending, []
        else:
            k = 0
            while k < len(self.pending) and self.pending[k][0] <= up_to:
                k += 1
            moved, self.pending = self.pending[:k], self.pending[k:]
        if not moved:
            return False
        self.log.extend(moved)
        for z, t in moved:
            self.durable[z] = t
        self.sync_count += 1
        return True

    def set_accepted_epoch(self, epoch: int) -> None:
        self.sync()
        self.accepted_epoch = epoch

    def set_current_epoch(self, epoch: int) -> None:
        self.sync()
        self.current_epoch = epoch

    def truncate(self, zxid: int) -> list[tuple[int, bytes]]:
        """Keep txns <= zxid; drop a snapshot newer than the cut (coordcore rule R5).  Returns what went."""
        self.sync()
        removed = [t for t in self.log if t[0] > zxid]
        self.log = [t for t in self.log if t[0] <= zxid]
        if self.snapshot_zxid > zxid:
            removed = [t for t in self.snapshot_history if t[0] > zxid] + removed
            # The snapshot is gone; what it held up to the cut survives only if the log still has it,
            # which is why R5 makes the log reach back to the oldest retained snapshot.  This disk keeps
            # one snapshot and no log below it, so the kept prefix moves into the log.
            self.log = [t for t in self.snapshot_history if t[0] <= zxid] + self.log
            self.snapshot_zxid, self.snapshot, self.snapshot_history = 0, None, []
        for z, _ in removed:
            self.durable.pop(z, None)
        return removed

    def install_snapshot(self, zxid: int, data: bytes) -> list[tuple[int, bytes]]:
        """Replace the whole history by a snapshot at zxid.  Returns the txns no longer held."""
        self.sync()
        history = decode_history(data)
        if history and history[-1][0] != zxid:
            raise HostRuleError(f"InstallSnapshot({zx.fmt(zxid)}) carries a history ending at {zx.fmt(history[-1][0])}")
        old = self.durable
        self.snapshot_zxid, self.snapshot, self.snapshot_history = zxid, bytes(data), history
        self.log = []
        self.durable = dict(history)
        return [(z, t) for z, t in old.items() if self.durable.get(z) != t]

    def save_snapshot(self, zxid: int, history: list[tuple[int, bytes]]) -> None:
        """The server's own periodic snapshot of its applied state; the log below it is purged."""
        self.sync()
        self.snapshot_zxid, self.snapshot, self.snapshot_history = zxid, encode_history(history), list(history)
        self.log = [t for t in self.log if t[0] > zxid]

    def crash(self, keep_pending: int = 0) -> int:
        """kill -9: pending appends are lost except the first `keep_pending`.  Returns how many were lost."""
        kept = self.pending[:keep_pending]
        lost = len(self.pending) - len(kept)
        self.pending = []
        if kept:
            self.log.extend(kept)
            for z, t in kept:
                self.durable[z] = t
        return lost

    def load(self) -> Loaded:
        """What a (re)starting server reads: pending appends were written, so they are read back too."""
        self.sync()
        return Loaded(self.accepted_epoch, self.current_epoch, self.snapshot_zxid, self.snapshot, list(self.log))
