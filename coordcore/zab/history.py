"""One server's in-memory view of its txn log: what is logged, durable, committed and applied.

The window holds every txn after `base_zxid`, contiguous and ascending.  `base_zxid` is a point of the
history whose state is known without the txns: the snapshot the peer started from (or installed), or the
last txn trimmed off the front.  The window keeps

* every txn above the applied point (not yet handed to the replica), and
* the last `keep` applied txns before it (ZooKeeper's committedLog, commitLogCount = 500),

so a leader can DIFF any learner whose last zxid lies in [base_zxid, last_zxid] and must SNAP older ones.
Trimming happens only in `take_applies`, on txns handed out by an *earlier* call: a host that built a
snapshot from the replica's applied state therefore always finds the txns after it still in the window.

Rules enforced here (each a ValueError, which the roles turn into a fatal protocol error):
* gap-free: a txn must directly follow the previous one, (e, c) -> (e, c+1) or (e', 1) with e' > e
  (ZOOKEEPER-4925: never build or ship a history with a hole);
* durable, committed and applied never exceed the log, and applied <= min(committed, durable)
  (ZOOKEEPER-4882: memory never runs ahead of the disk);
* truncation never cuts below the committed point (committed txns are never lost).

This module does no I/O and knows nothing about roles or messages.
"""

import bisect

import coordcore.zxid as zx

Txn = tuple[int, bytes]


def follows(prev: int, zxid: int) -> bool:
    """True if `zxid` may directly follow `prev` in a gap-free history."""
    if zx.epoch(zxid) == zx.epoch(prev):
        return zx.counter(zxid) == zx.counter(prev) + 1
    return zx.epoch(zxid) > zx.epoch(prev) and zx.counter(zxid) == 1


class History:
    __slots__ = ("base_zxid", "_zxids", "_txns", "durable_zxid", "committed_zxid", "applied_zxid", "_handed")

    def __init__(self, snapshot_zxid: int, txns) -> None:
        self.base_zxid = snapshot_zxid
        self._zxids: list[int] = []
        self._txns: list[bytes] = []
        self.applied_zxid = snapshot_zxid   # the replica was built from the snapshot only
        self.committed_zxid = snapshot_zxid  # a snapshot holds applied, hence committed, state
        self.durable_zxid = snapshot_zxid
        self._handed = snapshot_zxid         # applied point as of the previous take_applies()
        for zxid, txn in txns:
            self.append(zxid, txn)
        self.durable_zxid = self.last_zxid   # what storage.load() returned is durable

    # ---------------------------------------------------------------- queries
    @property
    def last_zxid(self) -> int:
        return self._zxids[-1] if self._zxids else self.base_zxid

    def __len__(self) -> int:
        return len(self._zxids)

    def contains(self, zxid: int) -> bool:
        """True if `zxid` is a point of this history inside the window (the base counts)."""
        if zxid == self.base_zxid:
            return True
        i = bisect.bisect_left(self._zxids, zxid)
        return i < len(self._zxids) and self._zxids[i] == zxid

    def last_at_or_below(self, zxid: int) -> int | None:
        """The newest point of the window <= zxid, or None if zxid is older than the window."""
        if zxid < self.base_zxid:
            return None
        i = bisect.bisect_right(self._zxids, zxid)
        return self._zxids[i - 1] if i else self.base_zxid

    def after(self, zxid: int, upto: int | None = None) -> list[Txn]:
        """The txns with zxid > `zxid` (and <= `upto`), ascending; `zxid` must be inside the window."""
        lo = bisect.bisect_right(self._zxids, zxid)
        hi = len(self._zxids) if upto is None else bisect.bisect_right(self._zxids, upto)
        return list(zip(self._zxids[lo:hi], self._txns[lo:hi]))

    def txns(self) -> list[Txn]:
        return list(zip(self._zxids, self._txns))

    # ---------------------------------------------------------------- changes
    def append(self, zxid: int, txn: bytes) -> None:
        if not follows(self.last_zxid, zxid):
            raise ValueError(f"gap in history: {zx.fmt(zxid)} after {zx.fmt(self.last_zxid)}")
        self._zxids.append(zxid)
        self._txns.append(txn)

    def persisted(self, zxid: int) -> bool:
        """The host synced the log up to `zxid`; True if that made more txns durable."""
        new = min(zxid, self.last_zxid)
        if new <= self.durable_zxid:
            return False
        self.durable_zxid = new
        return True

    def commit(self, zxid: int) -> None:
        if zxid > self.last_zxid:
            raise ValueError(f"commit of {zx.fmt(zxid)} beyond the log ({zx.fmt(self.last_zxid)})")
        self.committed_zxid = max(self.committed_zxid, zxid)

    def take_applies(self, keep: int) -> list[Txn]:
        """Txns newly committed AND durable, in order; marks them applied and trims older applied txns."""
        self._trim(keep)
        upto = min(self.committed_zxid, self.durable_zxid)
        out = self.after(self.applied_zxid, upto) if upto > self.applied_zxid else []
        if out:
            self.applied_zxid = out[-1][0]
        self._handed = self.applied_zxid
        return out

    def truncate(self, zxid: int) -> None:
        """Drop every txn > zxid (TRUNC)."""
        if zxid < self.committed_zxid:
            raise ValueError(f"truncation to {zx.fmt(zxid)} would cut committed txns "
                             f"(committed {zx.fmt(self.committed_zxid)})")
        i = bisect.bisect_right(self._zxids, zxid)
        del self._zxids[i:], self._txns[i:]
        self.durable_zxid = min(self.durable_zxid, self.last_zxid)

    def install_snapshot(self, zxid: int) -> None:
        """Replace everything by a snapshot of committed state at `zxid` (SNAP)."""
        self.base_zxid = zxid
        self._zxids, self._txns = [], []
        self.durable_zxid = self.committed_zxid = self.applied_zxid = self._handed = zxid

    def _trim(self, keep: int) -> None:
        # Only txns handed out before this call may go: the replica has certainly applied them.
        i = bisect.bisect_right(self._zxids, self._handed) - keep
        if i > max(64, keep // 4):  # trim in chunks: list deletion from the front is O(n)
            self.base_zxid = self._zxids[i - 1]
            del self._zxids[:i], self._txns[:i]
