"""The simulator's invariant checker: called after every event, it raises Violation on the first break.

Invariants (ids as in the ZAB reference, section 11, plus the host-rule checks):

* I1   at most one leader establishes each epoch (a server becoming LEADING and serving in epoch e).
* I2   a zxid names one txn everywhere: every Append, snapshot and proposal agrees on zxid -> bytes.
* PFX  applied histories are prefixes of one another (the global committed sequence G is the longest
       one; every server's applied history must match G position by position).
* ORD  applies are in zxid order and gap-free per server (gap-free = the next element of G).
* DUR  a server applies only txns its disk holds durably (ZOOKEEPER-4882).
* ACKQ a client write is acknowledged (its proposing leader applied it) only when a quorum of voters'
       disks durably hold it.
* LOST no committed txn is lost: a leader that starts serving epoch e holds every txn of G from
       earlier epochs; at the end every acknowledged write is in every server's applied history.
* I6   acceptedEpoch >= currentEpoch >= epoch(last logged zxid) on every disk, durably, at all times.
       Except the sync window I6-SYNC (currentEpoch < epoch(last logged) <= acceptedEpoch: a learner made
       its sync history, txns of the new epoch among them, durable before writing currentEpoch, as ZAB's
       order requires); storage loads that state and keeps the older currentEpoch (storage/epochs.py).
* HOST an ACK(z) is sent only when nothing <= z is still pending on the sender's disk, and an ACK of
       NEWLEADER/UPTODATE (counter 0) only after currentEpoch >= its epoch is durable (ZOOKEEPER-3911).
* I8   a PROPOSAL of epoch e is sent only by the leader that established e, and only while a quorum of
       voters' disks durably hold currentEpoch >= e (the NEWLEADER quorum).
* TREE (replica mode) at equal applied zxid, every server's tree and session table are equal (a
       digest of the replica's snapshot bytes, compared against the first server that reached it).
* ACKQ (replica mode) a client's write is answered only when a quorum of voters' disks durably hold
       the txn that answered it; every answered write is acknowledged for LOST.
* CZXID, ORDER (replica mode, checked by the clients): a client never sees its zxid go backwards,
       and replies on a connection come in request order (replica_clients.py).
* LIVE once faults heal, a leader serves within a bounded time and every server converges.

FLE-only runs add: every vote a server sends names a voter and carries that voter's true
(zxid, currentEpoch); decisions are well formed (LEADING names yourself, observers only OBSERVE);
after a fault-free restart of everyone, all servers decide the best voter by (epoch, zxid, sid).

The checker never looks inside a QuorumPeer: it sees only what a host sees (Ready values, disks,
the public state attributes), so it checks any implementation of the step API.
"""
from __future__ import annotations

from coordcore import zxid as zx
from coordcore.zab.quorum import QuorumConfig


class Violation(AssertionError):
    def __init__(self, invariant: str, detail: str) -> None:
        super().__init__(f"{invariant}: {detail}")
        self.invariant = invariant
        self.detail = detail


class Checker:
    def __init__(self, quorum: QuorumConfig, *, tolerate: frozenset[str] = frozenset(), count=None) -> None:
        self.quorum = quorum
        self.tolerate = tolerate
        self.count = count or (lambda key: None)
        self.txn_of: dict[int, bytes] = {}             # I2
        self.leader_of_epoch: dict[int, int] = {}      # I1
        self.committed: list[tuple[int, bytes]] = []   # G
        self.proposer: dict[int, int] = {}             # zxid -> sid of the leader that proposed it
        self.acked: dict[int, bytes] = {}              # acknowledged client writes
        self.applied_checked: dict[int, int] = {}      # sid -> length of its applied history already checked
        self.state_at: dict[int, tuple[int, bytes]] = {}   # TREE: applied zxid -> (first sid, digest)

    # -- I2

    def saw_txn(self, where: str, zxid: int, txn: bytes) -> None:
        known = self.txn_of.get(zxid)
        if known is None:
            self.txn_of[zxid] = txn
        elif known != txn:
            raise Violation("I2", f"{where}: zxid {zx.fmt(zxid)} names {txn!r} here but {known!r} elsewhere")

    # -- disks

    def disk_changed(self, sid: int, disk) -> None:
        broken = disk.epoch_rule_broken()
        if broken:
            last_epoch = zx.epoch(disk.last_durable_zxid)
            if disk.current_epoch < last_epoch <= disk.accepted_epoch and disk.accepted_epoch >= disk.current_epoch:
                # the sync window ZAB's order leaves (storage/epochs.py resolve): allowed, and counted
                self.count("I6-SYNC window")
                return
            raise Violation("I6", f"server {sid} disk: {broken}")

    # -- leaders

    def leader_serving(self, sid: int, epoch: int, history: list[tuple[int, bytes]]) -> None:
        """sid became LEADING and serving in `epoch`: I1, and it holds every earlier committed txn."""
        other = self.leader_of_epoch.get(epoch)
        if other is not None and other != sid:
            raise Violation("I1", f"servers {other} and {sid} both established epoch {epoch}")
        self.leader_of_epoch[epoch] = sid
        mine = dict(history)
        for z, t in self.committed:
            if zx.epoch(z) < epoch and mine.get(z) != t:
                acked = " (an acknowledged client write)" if z in self.acked else ""
                raise Violation("LOST", f"leader {sid} of epoch {epoch} serves without committed txn "
                                        f"{zx.fmt(z)} {t!r}{acked}")

    def proposed(self, sid: int, zxid: int, txn: bytes, disks: dict, epoch_of_leader: int) -> None:
        self.saw_txn(f"propose() on {sid}", zxid, txn)
        self.proposer[zxid] = sid
        self._check_proposal_epoch(sid, zxid, disks)

    def _check_proposal_epoch(self, sid: int, zxid: int, disks: dict) -> None:
        e = zx.epoch(zxid)
        if self.leader_of_epoch.get(e) != sid:
            raise Violation("I8", f"server {sid} proposes {zx.fmt(zxid)} but has not established epoch {e} "
                                  f"(established by {self.leader_of_epoch.get(e)})")
        holders = [s for s in self.quorum.voters if disks[s].current_epoch >= e]
        if not self.quorum.is_quorum(holders):
            raise Violation("I8", f"server {sid} proposes {zx.fmt(zxid)} while only voters {sorted(holders)} "
                                  f"durably hold currentEpoch >= {e}")

    # -- messages (host-rule checks on what a server sends)

    def sent_ack(self, sid: int, zxid: int, disk) -> None:
        if disk.pending and disk.pending[0][0] <= zxid:
            raise Violation("HOST", f"server {sid} sends ACK({zx.fmt(zxid)}) while {zx.fmt(disk.pending[0][0])} "
                                    f"is not yet durable")
        if zx.counter(zxid) == 0 and disk.current_epoch < zx.epoch(zxid):
            raise Violation("HOST", f"server {sid} sends ACK({zx.fmt(zxid)}) with currentEpoch "
                                    f"{disk.current_epoch} on disk")

    def sent_proposal(self, sid: int, zxid: int, txn: bytes, disks: dict, leader_epoch: int) -> None:
        self.saw_txn(f"PROPOSAL from {sid}", zxid, txn)
        if zx.epoch(zxid) == leader_epoch:
            self._check_proposal_epoch(sid, zxid, disks)

    # -- applies

    def applied(self, sid: int, history: list[tuple[int, bytes]], disk, is_voter_disks: dict) -> None:
        """history: the server's whole applied history, its newest entry just applied."""
        zxid, txn = history[-1]
        if len(history) > 1 and history[-2][0] >= zxid:
            raise Violation("ORD", f"server {sid} applies {zx.fmt(zxid)} after {zx.fmt(history[-2][0])}")
        if not disk.holds_durably(zxid, txn):
            raise Violation("DUR", f"server {sid} applies {zx.fmt(zxid)} which its disk does not hold durably")
        self.saw_txn(f"apply on {sid}", zxid, txn)
        self.match_prefix(sid, history)
        if self.proposer.get(zxid) == sid and zxid not in self.acked:
            holders = [s for s in self.quorum.voters if is_voter_disks[s].holds_durably(zxid, txn)]
            if not self.quorum.is_quorum(holders):
                raise Violation("ACKQ", f"leader {sid} acknowledges {zx.fmt(zxid)} durable only on {sorted(holders)}")
            self.acked[zxid] = txn

    def client_acked(self, sid: int, zxid: int, txn: bytes, disks: dict) -> None:
        """Server sid answered a client's write with txn (zxid, txn): ACKQ, and remember it for LOST."""
        holders = [s for s in self.quorum.voters if disks[s].holds_durably(zxid, txn)]
        if not self.quorum.is_quorum(holders):
            raise Violation("ACKQ", f"server {sid} answers a client's write {zx.fmt(zxid)} durable only on "
                                    f"{sorted(holders)}")
        self.saw_txn(f"reply on {sid}", zxid, txn)
        self.acked[zxid] = txn

    def replica_state(self, sid: int, zxid: int, digest: bytes) -> None:
        """TREE: server sid's tree and session table at applied zxid `zxid` have this digest."""
        known = self.state_at.get(zxid)
        if known is None:
            self.state_at[zxid] = (sid, digest)
        elif known[1] != digest:
            raise Violation("TREE", f"server {sid}'s tree and sessions at {zx.fmt(zxid)} differ from server "
                                    f"{known[0]}'s at the same zxid")

    def match_prefix(self, sid: int, history: list[tuple[int, bytes]]) -> None:
        g = self.committed
        start = self.applied_checked.get(sid, 0)
        for i in range(start, len(history)):
            if i < len(g):
                if g[i] != history[i]:
                    raise Violation("PFX", f"server {sid}'s applied history has {zx.fmt(history[i][0])} "
                                           f"{history[i][1]!r} at position {i}, others {zx.fmt(g[i][0])} {g[i][1]!r}")
            else:
                g.append(history[i])
        self.applied_checked[sid] = len(history)

    def reloaded(self, sid: int) -> None:
        """The server rebuilt its applied state from disk: check its whole history again."""
        self.applied_checked[sid] = 0

    # -- the end

    def final(self, histories: dict[int, list[tuple[int, bytes]]]) -> None:
        first_sid = min(histories)
        first = histories[first_sid]
        for sid, h in sorted(histories.items()):
            if h != first:
                raise Violation("LIVE", f"servers {first_sid} and {sid} did not converge: applied "
                                        f"{len(first)} vs {len(h)} txns, last {_last(first)} vs {_last(h)}")
        mine = dict(first)
        for z, t in sorted(self.acked.items()):
            if mine.get(z) != t:
                raise Violation("LOST", f"acknowledged write {zx.fmt(z)} {t!r} is not in the converged history")


def _last(h: list[tuple[int, bytes]]) -> str:
    return zx.fmt(h[-1][0]) if h else "none"
