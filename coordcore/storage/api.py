"""The storage contract the server core depends on.  No I/O here.

Txns and snapshots are opaque bytes to storage; each txn is identified by its
zxid (a positive 64-bit int, strictly increasing in the log; epoch << 32 |
counter, see :mod:`coordcore.zxid`).  The runtime uses it like this:

    state = storage.load()                 # on start: newest valid snapshot + txns after it + epochs
    storage.append(zxid, txn_bytes)        # buffered, many times
    storage.sync()                         # group commit: one fsync makes all appended txns durable
    storage.save_snapshot(zxid, data)      # consistent snapshot at exactly `zxid` of state the log covers
    storage.set_accepted_epoch(e)          # ZAB discovery: the epoch this server promised
    storage.set_current_epoch(e)           # ZAB sync: the epoch whose history this server adopted
    storage.truncate(zxid)                 # ZAB TRUNC: keep exactly the txns <= zxid
    storage.install_snapshot(zxid, data)   # ZAB SNAP: the history becomes exactly this snapshot
    storage.close()

Obligations of every backend (DiskStorage, MemoryStorage; tests/storage runs
one contract suite over both).  "Durable" means it survives kill -9 and power
loss, and a later load() on a new handle sees it.

1. load() MUST be called before any other operation except sync() and close().
   It returns the newest valid snapshot, every txn after it in zxid order, and
   the two epochs.  Pending appends of this handle are written first.
2. After sync() returns, every txn appended before it is durable.  Until then
   an appended txn may or may not survive a crash.
3. A torn or CRC-failing record at the *tail* of the log (a crash mid-write) is
   cut off by load(); corruption followed by valid records (in the middle)
   raises CorruptLogError, because serving on would lose acknowledged writes
   silently.
4. Epochs (invariant I6 of the ZAB reference): load() checks
   ``acceptedEpoch >= currentEpoch >= epoch(last logged zxid)`` and raises
   StorageError naming the values otherwise -- with one repair, as ZooKeeper's
   (ZOOKEEPER-1653/-2354): when currentEpoch is too old and a new value that
   was being written when the server died (DiskStorage: a complete
   ``currentEpoch.tmp``) satisfies the check, that value is used and made
   durable.  An epoch never stored reads as 0 (a fresh or standalone data
   dir); if the history already holds zxids of epoch e > 0, the missing epoch
   is initialised to e and stored (ZooKeeper's upgrade path).
5. set_accepted_epoch(e) / set_current_epoch(e): durable when they return, and
   every txn appended before the call is made durable first (host rule 1 of
   the ZAB interface: any non-append write syncs the appends before it).
   Both epochs only grow; a call that would lower one, set currentEpoch above
   acceptedEpoch, or below the epoch of the last logged zxid, is a caller bug
   and raises StorageError without changing anything.
6. truncate(zxid): when it returns, the history is durably exactly the txns
   <= zxid: later log records and pending appends above zxid are gone, and so
   is every snapshot newer than zxid (coordcore rule R5).  Pending appends <=
   zxid are kept and made durable.  Appends then continue above the new last
   zxid (the largest zxid <= zxid still held, which is zxid itself when it
   was logged).  The exact rule for which cuts are possible: the log is only
   ever purged of txns that the oldest snapshot kept covers, so the history
   <= zxid is still held iff *no snapshot is newer than zxid* (then the
   snapshots and log reach zxid unchanged) *or a valid snapshot <= zxid
   exists* (the log continues it).  Otherwise -- every snapshot is newer than
   zxid, and txns <= zxid may have been purged into them -- truncate raises
   StorageError and changes nothing, pending appends included: the caller
   needs a SNAP.  (With no snapshot at all nothing was ever purged, so even
   truncate(0) works.)  A crash during truncate leaves a prefix of the old
   history at least as long as the truncated one, never a history with a
   hole.  The rule assumes what save_snapshot is given is a replica's own
   state, covered by its log; a leader's snapshot goes to install_snapshot.
7. install_snapshot(zxid, data): when it returns, the history is durably
   exactly this snapshot: load() returns it with no txns, whatever was logged
   or snapshotted before (at any zxid, also above zxid -- a follower's
   divergent tail) and every pending append is gone, and appends continue
   above zxid.  A crash during install leaves the old history or the new one.
8. Misuse (an operation before load(), after close(), a zxid that does not
   increase, an epoch that would shrink) raises StorageError.  So does a
   backend that can no longer be trusted (DiskStorage after a failed fsync).

Threading: append() and sync() may run on different threads; truncate(),
install_snapshot() and the epoch setters must not race with append() (the
host executes a Ready's writes in order).  Appends that do race with them are
dropped if they lie above the cut or the installed snapshot.

Callers own the *order* of these writes (acceptedEpoch before ACKEPOCH; history
durable, then currentEpoch, then the NEWLEADER ACK); storage only makes each
one durable and refuses states that break I6.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


class StorageError(RuntimeError):
    """The storage refused: misuse, a state it cannot reach or load, a bad directory or an earlier I/O failure."""


class CorruptLogError(StorageError):
    """The txn log or every snapshot is corrupt in a way that is not a torn tail.

    A StorageError, so ``except StorageError`` catches every refusal; kept apart
    because it needs an operator (or a SNAP from a leader), not a code fix.
    """


@dataclass(slots=True)
class DurableState:
    snapshot_zxid: int = 0                  # 0 = no snapshot
    snapshot: bytes | None = None           # opaque bytes written by save_snapshot / install_snapshot
    txns: list[tuple[int, bytes]] = field(default_factory=list)  # (zxid, txn) with zxid > snapshot_zxid, ascending
    truncated_bytes: int = 0                # bytes of torn tail that load() cut off (for logging)
    accepted_epoch: int = 0                 # the last epoch promised (LEADERINFO accepted); 0 if never set
    current_epoch: int = 0                  # the epoch of the last NEWLEADER adopted; 0 if never set

    @property
    def last_zxid(self) -> int:
        return self.txns[-1][0] if self.txns else self.snapshot_zxid


class Storage(Protocol):
    def load(self) -> DurableState: ...
    def append(self, zxid: int, txn: bytes) -> None: ...
    def sync(self) -> None: ...
    def save_snapshot(self, zxid: int, data: bytes) -> None: ...
    def set_accepted_epoch(self, epoch: int) -> None: ...
    def set_current_epoch(self, epoch: int) -> None: ...
    def truncate(self, zxid: int) -> None: ...
    def install_snapshot(self, zxid: int, data: bytes) -> None: ...
    def close(self) -> None: ...
