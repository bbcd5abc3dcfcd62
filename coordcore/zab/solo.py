"""Solo: the consensus of a standalone server -- an ensemble of one, without election or epochs.

It gives the replica the step API a QuorumPeer gives it (next_zxid, propose, persisted, tick, ready ->
the same Ready), so a standalone server and an ensemble member run one write pipeline.  propose() logs
the txn (an Append in Ready.writes); persisted(Z) -- this server's own durable ACK is the whole quorum
-- commits every txn through Z, and Ready.applies hands them out in zxid order.  Nothing is ever
applied before it is durable, as in an ensemble.

zxids stay in the epoch the log already has (0 for a new data dir), as a standalone ZooKeeper's do:
there is no election, so there is no new epoch.  The counter simply runs on past 0xffffffff, as a
standalone ZooKeeper's does.

This module does no I/O and reads no clock.
"""
from collections import deque

from coordcore.zab.election import PeerState
from coordcore.zab.ready import Append, Ready

_new_append = tuple.__new__


class Solo:
    serving = True
    state = PeerState.LEADING
    sid = 0

    def __init__(self, last_zxid: int) -> None:
        self.last_zxid = last_zxid        # the last zxid logged (durable or not)
        self.applied_zxid = last_zxid     # a standalone server has applied everything it recovered
        self.epoch = last_zxid >> 32
        self.out = Ready()
        self._logged: deque = deque()     # (zxid, txn) appended, not yet durable

    def next_zxid(self) -> int:
        return self.last_zxid + 1

    def propose(self, txn: bytes) -> int:
        self.last_zxid = zxid = self.last_zxid + 1
        # Append((zxid, txn)) without the named tuple's Python-level __new__: this runs once per write
        self.out.writes.append(_new_append(Append, (zxid, txn)))
        return zxid

    def persisted(self, zxid: int) -> None:
        """Every Append through `zxid` is durable: a quorum of one, so they commit."""
        logged, applies = self._logged, self.out.applies
        if logged and logged[-1][0] <= zxid:
            applies.extend(logged)  # the usual case: the host synced everything it was handed
            logged.clear()
        else:
            while logged and logged[0][0] <= zxid:
                applies.append(logged.popleft())
        if applies:
            self.applied_zxid = applies[-1][0]

    def tick(self, now_ms: int) -> None:
        """No peers, no timeouts."""

    def ready(self) -> Ready:
        out, self.out = self.out, Ready()
        if out.writes:
            self._logged.extend(out.writes)  # an Append is a (zxid, txn) pair: what applies hand out
        out.applied_zxid = self.applied_zxid
        return out
