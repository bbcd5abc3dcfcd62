"""The ZAB learner role: a follower (voter) or an observer, from FOLLOWERINFO to BROADCAST.

Handshake (reference sections 5-6.2), in this strict order:

1. send FOLLOWERINFO / OBSERVERINFO with our durable acceptedEpoch;
2. LEADERINFO(e'): e' > acceptedEpoch -> SetAcceptedEpoch(e') then ACKEPOCH(lastZxid, currentEpoch);
   e' == acceptedEpoch -> ACKEPOCH(lastZxid, -1); e' < acceptedEpoch -> fatal (back to LOOKING);
3. exactly one sync head: DIFF(p) keeps our log (p must be our last zxid); TRUNC(z) -> Truncate(z) + reset;
   SNAP(z, data) -> InstallSnapshot + reset (the replica is rebuilt from it);
4. Proposal / Commit frames: each frame names the zxid it follows, which must be our last (so a lost or
   reordered frame is caught even across epochs); every txn must follow the previous one
   (ZOOKEEPER-4925) and is
   logged (Append); nothing is ACKed and nothing is applied yet (ZOOKEEPER-2355); commits are only
   provisional until UPTODATE (a leader that dies before its NEWLEADER quorum had committed nothing);
5. NEWLEADER(e', 0): wait until persisted() covers everything received, THEN SetCurrentEpoch(e'), THEN
   ACK(e', 0) (ZOOKEEPER-3911, -4646, -4643, -4785: the epoch and the ACK must never precede the durable
   history);
6. between NEWLEADER and UPTODATE: log proposals, ACK them once durable (always after the NEWLEADER ACK),
   record commits (ZOOKEEPER-4394, -4685);
7. UPTODATE: serve; apply everything committed and durable; the peer rewrites its vote's peerEpoch.

BROADCAST: Proposal (followers) is logged and ACKed "up to" the durable zxid after persisted(); a gap is
fatal.  Commit(z) must name a logged txn (ZooKeeper exits on UNMATCHED_TXN_COMMIT; we go LOOKING).
Inform (observers) carries committed txns.  Applying is the peer's job: committed AND durable only.

Timeouts: the leader must be heard within initLimit ticks until NEWLEADER, then within syncLimit ticks;
every packet from it extends the deadline.  PINGs are answered with the sessions touched since the last
answer; a PING naming a zxid (proposed or committed) beyond our log means a frame was lost without the
link breaking, and we resync; a committed zxid we hold repairs a lost COMMIT.  Any failure raises RoleFailed or ProtocolError; the peer then goes LOOKING with a reset.
Packets from any sid but our leader are ignored (a deposed leader may still be talking).
"""

import enum

import coordcore.zxid as zx
from coordcore.errors import ProtocolError
from coordcore.zab import messages as m
from coordcore.zab.ready import Append, InstallSnapshot, SetAcceptedEpoch, SetCurrentEpoch, Truncate
from coordcore.zab.role import Role, RoleFailed


class Phase(enum.IntEnum):
    WAIT_LEADERINFO = 0
    WAIT_SYNC_HEAD = 1   # ACKEPOCH sent
    SYNC = 2             # DIFF/TRUNC/SNAP received, collecting the history
    NEWLEADER = 3        # NEWLEADER received, waiting for the history to be durable
    WAIT_UPTODATE = 4    # NEWLEADER ACKed
    BROADCAST = 5


class Learner(Role):
    def __init__(self, peer, leader_sid: int, now_ms: int) -> None:
        self.peer = peer
        self.history = peer.history
        self.leader_sid = leader_sid
        self.is_voter = peer.quorum.is_voter(peer.sid)
        self.phase = Phase.WAIT_LEADERINFO
        self.epoch: int | None = None
        self.acked_zxid = 0
        self.sync_end_zxid = 0
        self.sync_commit_zxid = 0  # COMMITs seen before UPTODATE, applied to the history on UPTODATE
        self.touches: dict[int, int] = {}
        self.pending_syncs: list[tuple[int, int]] = []  # (zxid to have applied, token)
        self.asked_syncs: set[int] = set()
        self.asked_revalidations: dict[int, int] = {}   # session_id -> replies outstanding
        self.serving = False
        self._extend(now_ms)
        info = m.FollowerInfo if self.is_voter else m.ObserverInfo
        peer.send(leader_sid, info(peer.sid, peer.accepted_epoch))
        self._handlers = {
            m.LeaderInfo: self.on_leader_info, m.Diff: self.on_diff, m.Trunc: self.on_trunc,
            m.Snap: self.on_snap, m.Proposal: self.on_proposal, m.Commit: self.on_commit,
            m.Inform: self.on_inform, m.NewLeader: self.on_new_leader, m.UpToDate: self.on_uptodate,
            m.Ping: self.on_ping, m.RevalidateReply: self.on_revalidate_reply, m.SyncReply: self.on_sync_reply,
        }

    def _extend(self, now_ms: int) -> None:
        limit = self.peer.init_limit if self.phase < Phase.NEWLEADER else self.peer.sync_limit
        self.deadline_ms = now_ms + limit * self.peer.tick_ms

    # ================================================================ dispatch
    def on_message(self, from_sid: int, msg, now_ms: int) -> None:
        if from_sid != self.leader_sid:
            return
        handler = self._handlers.get(type(msg))
        if handler is None:
            raise ProtocolError(f"learner got an unexpected {type(msg).__name__}")
        handler(msg, now_ms)
        self._extend(now_ms)

    def _expect(self, *phases: Phase, what: str) -> None:
        if self.phase not in phases:
            raise ProtocolError(f"{what} in phase {self.phase.name}")

    # ================================================================ discovery
    def on_leader_info(self, msg: m.LeaderInfo, now_ms: int) -> None:
        self._expect(Phase.WAIT_LEADERINFO, what="LEADERINFO")
        accepted = self.peer.accepted_epoch
        if msg.epoch < accepted:
            raise RoleFailed(f"LEADERINFO epoch {msg.epoch} < our acceptedEpoch {accepted}")
        self.epoch = msg.epoch
        self.peer.set_established(msg.epoch)
        if msg.epoch > accepted:
            self.peer.write(SetAcceptedEpoch(msg.epoch))  # durable before the ACKEPOCH (R2)
            ack = m.AckEpoch(self.history.last_zxid, self.peer.current_epoch)
        else:
            ack = m.AckEpoch(self.history.last_zxid, -1)  # we cannot promise e' twice
        self.peer.send(self.leader_sid, ack)
        self.phase = Phase.WAIT_SYNC_HEAD

    # ================================================================ sync
    def on_diff(self, msg: m.Diff, now_ms: int) -> None:
        self._expect(Phase.WAIT_SYNC_HEAD, what="DIFF")
        if msg.zxid != self.history.last_zxid:
            raise ProtocolError(f"DIFF from {zx.fmt(msg.zxid)} but our log ends at "
                                f"{zx.fmt(self.history.last_zxid)}")
        self.phase = Phase.SYNC

    def on_trunc(self, msg: m.Trunc, now_ms: int) -> None:
        self._expect(Phase.WAIT_SYNC_HEAD, what="TRUNC")
        if msg.zxid > self.history.last_zxid:
            raise ProtocolError(f"TRUNC to {zx.fmt(msg.zxid)} beyond our log")
        try:
            self.history.truncate(msg.zxid)
        except ValueError as e:
            raise RoleFailed(str(e)) from None
        self.peer.write(Truncate(msg.zxid))
        self.peer.request_reset()
        self.phase = Phase.SYNC

    def on_snap(self, msg: m.Snap, now_ms: int) -> None:
        self._expect(Phase.WAIT_SYNC_HEAD, what="SNAP")
        self.history.install_snapshot(msg.zxid)
        self.peer.write(InstallSnapshot(msg.zxid, msg.data))
        self.peer.request_reset()  # the host loads the replica from the installed snapshot
        self.phase = Phase.SYNC

    def on_proposal(self, msg: m.Proposal, now_ms: int) -> None:
        if not self.is_voter and self.phase >= Phase.NEWLEADER:
            raise ProtocolError("observer got a live PROPOSAL")
        self._expect(Phase.SYNC, Phase.NEWLEADER, Phase.WAIT_UPTODATE, Phase.BROADCAST, what="PROPOSAL")
        self._log(msg.txns, msg.prev_zxid)

    def on_inform(self, msg: m.Inform, now_ms: int) -> None:
        if self.is_voter:
            raise ProtocolError("follower got an INFORM")
        self._expect(Phase.SYNC, Phase.NEWLEADER, Phase.WAIT_UPTODATE, Phase.BROADCAST, what="INFORM")
        self._log(msg.txns, msg.prev_zxid)
        if msg.txns:
            self._commit(msg.txns[-1][0])

    def _log(self, txns, prev_zxid: int) -> None:
        if prev_zxid != self.history.last_zxid:
            raise ProtocolError(f"frame follows {zx.fmt(prev_zxid)} but our log ends at "
                                f"{zx.fmt(self.history.last_zxid)}: a frame was lost or reordered")
        for zxid, txn in txns:
            try:
                self.history.append(zxid, txn)  # gap check (ZOOKEEPER-4925)
            except ValueError as e:
                raise ProtocolError(str(e)) from None
            self.peer.write(Append(zxid, txn))

    def on_commit(self, msg: m.Commit, now_ms: int) -> None:
        self._expect(Phase.SYNC, Phase.NEWLEADER, Phase.WAIT_UPTODATE, Phase.BROADCAST, what="COMMIT")
        if msg.zxid <= max(self.history.committed_zxid, self.sync_commit_zxid):
            return  # already known committed (a sync-history commit of what we had)
        if not self.history.contains(msg.zxid):
            raise ProtocolError(f"COMMIT of {zx.fmt(msg.zxid)} matches no pending proposal")
        self._commit(msg.zxid)

    def _commit(self, zxid: int) -> None:
        # Before UPTODATE a COMMIT is only provisional: a leader in its SYNC phase commits its whole
        # history, which becomes committed only with its NEWLEADER quorum.  If it dies first, the next
        # leader may rightly TRUNC that history, so it must not be recorded as committed yet.
        if self.phase < Phase.BROADCAST:
            self.sync_commit_zxid = max(self.sync_commit_zxid, zxid)
        else:
            self.history.commit(zxid)

    def on_new_leader(self, msg: m.NewLeader, now_ms: int) -> None:
        self._expect(Phase.SYNC, what="NEWLEADER")
        if msg.zxid != zx.make(self.epoch, 0):
            raise ProtocolError(f"NEWLEADER {zx.fmt(msg.zxid)} for epoch {self.epoch}")
        if msg.last_zxid != self.history.last_zxid:
            raise ProtocolError(f"NEWLEADER after {zx.fmt(msg.last_zxid)} but our log ends at "
                                f"{zx.fmt(self.history.last_zxid)}: part of the history was lost")
        self.phase = Phase.NEWLEADER
        self.sync_end_zxid = self.history.last_zxid  # the history NEWLEADER closes
        self._maybe_ack_new_leader()

    def _maybe_ack_new_leader(self) -> None:
        if self.history.durable_zxid < self.sync_end_zxid:
            return  # wait for persisted(): history durable -> currentEpoch -> ACK (6.2 step 3)
        self.peer.write(SetCurrentEpoch(self.epoch))
        self.peer.send(self.leader_sid, m.Ack(zx.make(self.epoch, 0)))
        # The NEWLEADER ACK vouches for the whole sync history (the leader counts it so, outstanding
        # proposals included); later proposals get ordinary "up to" ACKs, always after it.
        self.acked_zxid = self.sync_end_zxid
        self.phase = Phase.WAIT_UPTODATE
        self._ack_durable()

    def on_uptodate(self, msg: m.UpToDate, now_ms: int) -> None:
        self._expect(Phase.WAIT_UPTODATE, what="UPTODATE")
        self.phase = Phase.BROADCAST
        if self.sync_commit_zxid > self.history.committed_zxid:
            self.history.commit(self.sync_commit_zxid)  # the NEWLEADER quorum made it all committed
        self.serving = True
        self.peer.became_serving(self.epoch)

    def on_persisted(self, now_ms: int) -> None:
        if self.phase == Phase.NEWLEADER:
            self._maybe_ack_new_leader()
        elif self.phase >= Phase.WAIT_UPTODATE:
            self._ack_durable()

    def _ack_durable(self) -> None:
        durable = self.history.durable_zxid
        if self.is_voter and durable > self.acked_zxid:
            self.acked_zxid = durable
            self.peer.send(self.leader_sid, m.Ack(durable))

    # ================================================================ broadcast services
    def on_ping(self, msg: m.Ping, now_ms: int) -> None:
        # The leader sends every proposal before a PING naming it, on a FIFO link; a voter past NEWLEADER
        # that is behind the PING lost a PROPOSAL (a gap it could not see without further traffic).
        if (self.is_voter and self.phase >= Phase.NEWLEADER
                and msg.zxid > max(self.history.last_zxid, zx.make(self.epoch, 0))):
            raise ProtocolError(f"PING for {zx.fmt(msg.zxid)} but our log ends at {zx.fmt(self.history.last_zxid)}")
        if msg.committed_zxid and self.phase != Phase.BROADCAST:
            raise ProtocolError("PING of a broadcasting leader before our UPTODATE: UPTODATE was lost")
        if self.phase == Phase.BROADCAST and msg.committed_zxid > self.history.committed_zxid:
            # A COMMIT or INFORM was lost silently: an INFORM gap is fatal; a lost COMMIT is repaired.
            if not self.history.contains(msg.committed_zxid):
                raise ProtocolError(f"PING says {zx.fmt(msg.committed_zxid)} committed; we lack it")
            self.history.commit(msg.committed_zxid)
        touches, self.touches = tuple(self.touches.items()), {}
        self.peer.send(self.leader_sid, m.Ping(msg.zxid, touches))

    def forward(self, payload: bytes) -> None:
        self.peer.send(self.leader_sid, m.Request(payload))

    def touch(self, session_id: int, timeout_ms: int) -> None:
        self.touches[session_id] = timeout_ms

    # Replies are matched against what this role asked: a reply to a request of an earlier
    # connection (answered by the leader after we reconnected) must not answer anything here.
    def revalidate(self, session_id: int, timeout_ms: int) -> None:
        self.asked_revalidations[session_id] = self.asked_revalidations.get(session_id, 0) + 1
        self.peer.send(self.leader_sid, m.Revalidate(session_id, timeout_ms))

    def on_revalidate_reply(self, msg: m.RevalidateReply, now_ms: int) -> None:
        asked = self.asked_revalidations.get(msg.session_id, 0)
        if not asked:
            return
        if asked == 1:
            del self.asked_revalidations[msg.session_id]
        else:
            self.asked_revalidations[msg.session_id] = asked - 1
        self.peer.out.revalidated.append((msg.session_id, msg.valid))

    def sync(self, token: int) -> None:
        self.asked_syncs.add(token)
        self.peer.send(self.leader_sid, m.Sync(token))

    def on_sync_reply(self, msg: m.SyncReply, now_ms: int) -> None:
        if msg.token not in self.asked_syncs:
            return
        self.asked_syncs.discard(msg.token)
        # The COMMITs up to msg.zxid came before this reply (FIFO link); answer once we applied them.
        self.pending_syncs.append((msg.zxid, msg.token))
        self.applied(self.history.applied_zxid)

    def applied(self, applied_zxid: int) -> None:
        if self.pending_syncs:
            done = [t for z, t in self.pending_syncs if z <= applied_zxid]
            self.pending_syncs = [(z, t) for z, t in self.pending_syncs if z > applied_zxid]
            self.peer.out.synced.extend(done)

    # ================================================================ time and links
    def tick(self, now_ms: int) -> None:
        if now_ms >= self.deadline_ms:
            raise RoleFailed(f"learner: leader {self.leader_sid} silent too long in {self.phase.name}")

    def link_lost(self, sid: int, now_ms: int) -> None:
        if sid == self.leader_sid:
            raise RoleFailed(f"learner: link to leader {sid} lost")

    def next_deadline_ms(self) -> int | None:
        return self.deadline_ms
