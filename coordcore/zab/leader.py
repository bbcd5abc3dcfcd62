"""The ZAB leader role: discovery (epoch agreement), per-learner sync, broadcast, pings and timeouts.

Phases (reference sections 5-8):

DISCOVERY  collect FOLLOWERINFO from voters until they plus the leader form a quorum; then e' = max(every
           acceptedEpoch heard, our own) + 1, persisted as acceptedEpoch BEFORE any LEADERINFO goes out
           (the SetAcceptedEpoch write precedes the messages in the same Ready; HOST RULE 2).
EPOCH      collect ACKEPOCH; an acker with a non -1 epoch and (currentEpoch, lastZxid) ahead of ours means
           FLE picked the wrong server: abdicate.  On a quorum of non -1 voter acks (plus us) persist
           currentEpoch = e' and start syncing every learner that acked.
SYNC       per learner: DIFF / TRUNC / SNAP, the history after that point as one Proposal frame plus a
           Commit, then NEWLEADER (e', 0).  On a quorum of NEWLEADER ACKs (plus us) the whole history is
           committed (Medeiros' COMMIT-LD): activate, send UPTODATE.
BROADCAST  propose (batched frames), commit in zxid order on a quorum of durable ACKs (ours counts only
           after our own persisted()), COMMIT to voters, INFORM to observers.  Late learners are synced
           the same way, voters also get the outstanding proposals.

Sync choice for a learner whose last zxid is p (6.1, with the coordcore rule of ZOOKEEPER-1154):
p is a point of our window -> DIFF; p is not, but something of our window is <= p -> TRUNC to the last
zxid we have <= p (the last common zxid: equal zxids are equal txns); p older than the window -> SNAP
from snapshot_provider().  Never a DIFF on top of a tail we do not have.

Timeouts (section 8, all from now_ms): each discovery/sync wait must finish within initLimit ticks or we
abdicate; in BROADCAST, every tick, the voters that sent anything within syncLimit ticks plus us must
be a quorum, else we abdicate; a synced voter that has not ACKed the oldest proposal we sent IT within
syncLimit ticks is dropped, even if that proposal has meanwhile committed on the others' ACKs (it stops
getting PINGs, times out and rejoins through a new sync); PING every tick/2; abdicate before the zxid
counter would reach 0xffffffff (ZOOKEEPER-1277).

Bad input from one learner (ProtocolError) drops that learner only; it never ends the leadership.
This module does no I/O; it writes through the peer's Ready.
"""

import enum
from collections import deque
from dataclasses import dataclass, field

import coordcore.zxid as zx
from coordcore.errors import ProtocolError
from coordcore.zab import messages as m
from coordcore.zab.ready import Append, SetAcceptedEpoch, SetCurrentEpoch
from coordcore.zab.role import Role, RoleFailed

COUNTER_LIMIT = 0xFFFFFFFF  # never used as a counter: the leader abdicates first (tests lower it)


def _counter_limit() -> int:
    return COUNTER_LIMIT  # read at call time, so a test can start "near the limit" without a gap


class Phase(enum.IntEnum):
    DISCOVERY = 0
    EPOCH = 1
    SYNC = 2
    BROADCAST = 3


class Stage(enum.IntEnum):
    """Where one learner is in its handshake with us."""
    INFO = 0        # FOLLOWERINFO/OBSERVERINFO received, e' not fixed yet
    EPOCH_SENT = 1  # LEADERINFO sent
    EPOCH_ACKED = 2 # ACKEPOCH received, waiting for our ACKEPOCH quorum
    SYNCING = 3     # history + NEWLEADER sent; live traffic is forwarded from now on
    SYNCED = 4      # ACKed NEWLEADER
    UPTODATE = 5    # UPTODATE sent


@dataclass(slots=True)
class LearnerHandle:
    sid: int
    is_voter: bool
    accepted_epoch: int
    deadline_ms: int
    stage: Stage = Stage.INFO
    last_zxid: int = 0
    current_epoch: int = -1
    acked_zxid: int = 0
    sync_end_zxid: int = 0  # the last zxid of the history we sent it before NEWLEADER
    synced_ms: int = 0      # when its NEWLEADER ACK arrived: its syncLimit clock starts no earlier
    # Voters only: the live PROPOSAL frames sent to it and not yet wholly ACKed, oldest first, as
    # (last zxid of the frame, ms it was sent).  The head's time is when its oldest un-ACKed proposal
    # went out (a frame goes out at once).  Bounded: a head older than syncLimit gets the voter dropped.
    unacked: deque = field(default_factory=deque)


class Leader(Role):
    def __init__(self, peer, now_ms: int) -> None:
        self.peer = peer
        self.history = peer.history
        # Our durable state at election (I7: the peer starts roles only with a fully durable log).
        self.summary = (peer.current_epoch, self.history.last_zxid)
        self.phase = Phase.DISCOVERY
        self.epoch: int | None = None
        self.deadline_ms = now_ms + peer.init_limit * peer.tick_ms
        self.handles: dict[int, LearnerHandle] = {}
        self.half_tick_ms = max(1, peer.tick_ms // 2)
        self.next_ping_ms = now_ms + self.half_tick_ms
        self.next_check_ms = now_ms + peer.tick_ms
        self.next_counter = 1
        self.last_proposed = 0
        self.batch: list[tuple[int, bytes]] = []
        self.batch_prev = 0  # the zxid just before the batch
        self.batch_ms = 0    # when the batch's first proposal was made: the frame's send time
        self.pending_syncs: list[tuple[int, int, int]] = []  # (zxid, sid, token)
        self.serving = False
        self._handlers = {
            m.FollowerInfo: self.on_follower_info, m.ObserverInfo: self.on_observer_info,
            m.AckEpoch: self.on_ack_epoch, m.Ack: self.on_ack, m.Ping: self.on_ping,
            m.Request: self.on_request, m.Revalidate: self.on_revalidate, m.Sync: self.on_sync,
        }
        self._try_fix_epoch(now_ms)  # a one-voter ensemble needs nobody

    # ================================================================ dispatch
    def on_message(self, from_sid: int, msg, now_ms: int) -> None:
        handler = self._handlers.get(type(msg))
        try:
            if handler is None:
                raise ProtocolError(f"leader got an unexpected {type(msg).__name__}")
            h = self.handles.get(from_sid)
            if h is not None and h.stage >= Stage.SYNCED:
                h.deadline_ms = now_ms + self.peer.sync_limit * self.peer.tick_ms
            handler(from_sid, msg, now_ms)
        except ProtocolError:
            self._drop(from_sid)

    def _drop(self, sid: int) -> None:
        self.handles.pop(sid, None)
        self.pending_syncs = [p for p in self.pending_syncs if p[1] != sid]

    def _send(self, sid: int, msg) -> None:
        self.flush()  # batched proposals go first: the link is FIFO and commits refer to them
        self.peer.send(sid, msg)

    # ================================================================ discovery
    def on_follower_info(self, sid: int, msg: m.FollowerInfo, now_ms: int) -> None:
        if not self.peer.quorum.is_voter(sid):
            raise ProtocolError(f"FOLLOWERINFO from non-voter {sid}")
        self._on_info(sid, msg, True, now_ms)

    def on_observer_info(self, sid: int, msg: m.ObserverInfo, now_ms: int) -> None:
        if not self.peer.quorum.is_observer(sid):
            raise ProtocolError(f"OBSERVERINFO from non-observer {sid}")
        self._on_info(sid, msg, False, now_ms)

    def _on_info(self, sid: int, msg, is_voter: bool, now_ms: int) -> None:
        if msg.sid != sid or msg.protocol_version != m.PROTOCOL_VERSION or msg.accepted_epoch < 0:
            raise ProtocolError(f"bad learner info from {sid}: {msg}")
        if self.epoch is not None and msg.accepted_epoch > self.epoch:
            # It promised a higher epoch (an attempt that failed) and can never ACK ours, so it would
            # follow us, fail and come back forever (ZooKeeper's learner does).  Step down: the next
            # round's e' is above every acceptedEpoch of its quorum, so this ends after a few rounds.
            raise RoleFailed(f"learner {sid} promised epoch {msg.accepted_epoch} > our {self.epoch}")
        self._drop(sid)  # a reconnect starts the handshake over
        first_deadline = now_ms + (self.peer.init_limit + self.peer.sync_limit) * self.peer.tick_ms
        h = self.handles[sid] = LearnerHandle(sid, is_voter, msg.accepted_epoch, first_deadline)
        if self.epoch is None:
            self._try_fix_epoch(now_ms)
        else:
            self._send_leader_info(h)

    def _try_fix_epoch(self, now_ms: int) -> None:
        voters = {h.sid for h in self.handles.values() if h.is_voter} | {self.peer.sid}
        if not self.peer.quorum.is_quorum(voters):
            return
        accepted = [h.accepted_epoch for h in self.handles.values()] + [self.peer.accepted_epoch]
        self.epoch = max(accepted) + 1
        self.peer.write(SetAcceptedEpoch(self.epoch))  # durable before the LEADERINFOs below (R2)
        self.peer.set_established(self.epoch)
        self.phase = Phase.EPOCH
        self.deadline_ms = now_ms + self.peer.init_limit * self.peer.tick_ms
        for h in self.handles.values():
            self._send_leader_info(h)
        self._try_establish(now_ms)

    def _send_leader_info(self, h: LearnerHandle) -> None:
        self._send(h.sid, m.LeaderInfo(self.epoch))
        h.stage = Stage.EPOCH_SENT

    def on_ack_epoch(self, sid: int, msg: m.AckEpoch, now_ms: int) -> None:
        h = self.handles.get(sid)
        if h is None or h.stage != Stage.EPOCH_SENT or msg.current_epoch < -1 or msg.last_zxid < 0:
            raise ProtocolError(f"unexpected ACKEPOCH from {sid}")
        h.last_zxid, h.current_epoch, h.stage = msg.last_zxid, msg.current_epoch, Stage.EPOCH_ACKED
        if self.phase == Phase.EPOCH:
            if msg.current_epoch != -1 and (msg.current_epoch, msg.last_zxid) > self.summary:
                raise RoleFailed(f"learner {sid} is ahead of the leader: "
                                 f"({msg.current_epoch}, {zx.fmt(msg.last_zxid)}) > {self.summary}")
            self._try_establish(now_ms)
        else:
            self._sync_learner(h)
            if self.phase == Phase.SYNC:
                self._try_activate(now_ms)

    def _try_establish(self, now_ms: int) -> None:
        counted = {h.sid for h in self.handles.values()
                   if h.is_voter and h.stage == Stage.EPOCH_ACKED and h.current_epoch != -1} | {self.peer.sid}
        if self.phase != Phase.EPOCH or not self.peer.quorum.is_quorum(counted):
            return
        self.peer.write(SetCurrentEpoch(self.epoch))
        self.phase = Phase.SYNC
        self.deadline_ms = now_ms + self.peer.init_limit * self.peer.tick_ms
        for h in list(self.handles.values()):
            if h.stage == Stage.EPOCH_ACKED:
                self._sync_learner(h)
        self._try_activate(now_ms)

    # ================================================================ sync
    def _sync_learner(self, h: LearnerHandle) -> None:
        self.flush()  # the batch goes live to the others; this learner gets it in its history below
        hist = self.history
        p = h.last_zxid
        if hist.contains(p):
            head, start = m.Diff(p), p
        else:
            common = hist.last_at_or_below(p)
            if common is not None:
                head, start = m.Trunc(common), common
            else:
                snap_zxid, data = self.peer.snapshot_provider()
                if not hist.contains(snap_zxid):
                    raise AssertionError(f"snapshot at {zx.fmt(snap_zxid)} is outside the history window")
                head, start = m.Snap(snap_zxid, data), snap_zxid
        # During SYNC our whole log becomes committed by the NEWLEADER quorum; later only what committed.
        commit_point = hist.last_zxid if self.phase == Phase.SYNC else hist.committed_zxid
        txns = hist.after(start, None if h.is_voter else commit_point)  # observers: committed only
        self._send(h.sid, head)
        if txns:
            self._send(h.sid, m.Proposal(tuple(txns), start))
        if commit_point > 0:
            self._send(h.sid, m.Commit(commit_point))
        h.sync_end_zxid = txns[-1][0] if txns else start
        self._send(h.sid, m.NewLeader(zx.make(self.epoch, 0), h.sync_end_zxid))
        h.stage = Stage.SYNCING

    def on_ack(self, sid: int, msg: m.Ack, now_ms: int) -> None:
        h = self.handles.get(sid)
        if h is None:
            return  # a dropped learner's late ACK
        if zx.counter(msg.zxid) == 0:
            self._on_newleader_ack(h, msg.zxid, now_ms)
            return
        if not h.is_voter or h.stage < Stage.SYNCING:
            return
        # "Up to": every txn <= zxid is durable there.  Also accepted before the NEWLEADER ACK
        # (ZOOKEEPER-4394/-4685); unknown zxids beyond our log are clipped.
        h.acked_zxid = max(h.acked_zxid, min(msg.zxid, self.history.last_zxid))
        self._forget_acked(h)
        self._try_commit()

    @staticmethod
    def _forget_acked(h: LearnerHandle) -> None:
        while h.unacked and h.unacked[0][0] <= h.acked_zxid:
            h.unacked.popleft()

    def _on_newleader_ack(self, h: LearnerHandle, zxid: int, now_ms: int) -> None:
        if h.stage >= Stage.SYNCED:
            return  # a duplicate, or a Java-style UPTODATE ACK: ignored (6.1)
        if h.stage != Stage.SYNCING or zx.epoch(zxid) != self.epoch:
            raise ProtocolError(f"unexpected NEWLEADER ACK {zx.fmt(zxid)} from {h.sid}")
        h.stage = Stage.SYNCED
        h.deadline_ms = now_ms + self.peer.sync_limit * self.peer.tick_ms
        h.synced_ms = now_ms
        # It ACKs NEWLEADER only once everything sent before it is durable (6.2 step 3), so this also
        # acknowledges the outstanding proposals of its sync history.
        if h.is_voter:
            h.acked_zxid = max(h.acked_zxid, h.sync_end_zxid)
            self._forget_acked(h)
        if self.phase == Phase.SYNC:
            self._try_activate(now_ms)
        elif self.phase == Phase.BROADCAST:
            self._send_uptodate(h)
            self._try_commit()

    def _send_uptodate(self, h: LearnerHandle) -> None:
        self._send(h.sid, m.UpToDate(zx.make(self.epoch, 0)))
        h.stage = Stage.UPTODATE

    def _try_activate(self, now_ms: int) -> None:
        acked = {h.sid for h in self.handles.values() if h.is_voter and h.stage >= Stage.SYNCED} | {self.peer.sid}
        if self.phase != Phase.SYNC or not self.peer.quorum.is_quorum(acked):
            return
        assert self.history.durable_zxid == self.history.last_zxid, "leader log must be durable to activate"
        self.phase = Phase.BROADCAST
        self.history.commit(self.history.last_zxid)
        self.last_proposed = zx.make(self.epoch, 0)
        self.serving = True
        self.next_check_ms = now_ms + self.peer.tick_ms
        self.peer.became_serving(self.epoch)
        for h in self.handles.values():
            if h.stage == Stage.SYNCED:
                h.deadline_ms = now_ms + self.peer.sync_limit * self.peer.tick_ms
                self._send_uptodate(h)

    # ================================================================ broadcast
    def next_zxid(self) -> int | None:
        if not self.serving or self.next_counter >= _counter_limit():
            return None
        return zx.make(self.epoch, self.next_counter)

    def propose(self, txn: bytes, now_ms: int) -> int:
        zxid = zx.make(self.epoch, self.next_counter)
        self.next_counter += 1
        if not self.batch:
            self.batch_prev = self.history.last_zxid
            self.batch_ms = now_ms
        self.history.append(zxid, txn)
        self.peer.write(Append(zxid, txn))  # our own ACK waits for persisted() (R1)
        self.batch.append((zxid, txn))
        self.last_proposed = zxid
        return zxid

    def check_rollover(self) -> None:
        if self.next_counter >= _counter_limit():
            self.flush()
            raise RoleFailed("zxid counter would reach 0xffffffff: abdicating (ZOOKEEPER-1277)")

    def flush(self) -> None:
        if not self.batch:
            return
        frame = m.Proposal(tuple(self.batch), self.batch_prev)
        sent = (self.batch[-1][0], self.batch_ms)
        self.batch = []
        for h in self.handles.values():
            if h.is_voter and h.stage >= Stage.SYNCING:
                self.peer.send(h.sid, frame)
                if sent[0] > h.acked_zxid:  # (an ACK cannot beat its frame, but a test can feed one)
                    h.unacked.append(sent)

    def on_persisted(self, now_ms: int) -> None:
        self._try_commit()

    def _try_commit(self) -> None:
        if self.phase != Phase.BROADCAST:
            return
        acks = [(self.history.durable_zxid, self.peer.sid)]
        acks += [(h.acked_zxid, h.sid) for h in self.handles.values() if h.is_voter and h.stage >= Stage.SYNCING]
        acks.sort(reverse=True)
        seen: set[int] = set()
        point = None
        for zxid, sid in acks:
            seen.add(sid)
            if self.peer.quorum.is_quorum(seen):
                point = zxid
                break
        old = self.history.committed_zxid
        if point is None or min(point, self.last_proposed) <= old:
            return
        new = min(point, self.last_proposed)
        self.history.commit(new)
        informed = None
        for h in self.handles.values():
            if h.stage < Stage.SYNCING:
                continue
            if h.is_voter:
                self._send(h.sid, m.Commit(new))
            else:
                informed = informed or m.Inform(tuple(self.history.after(old, new)), old)
                self._send(h.sid, informed)
        self._release_syncs()

    # ================================================================ requests, sessions, sync
    def on_ping(self, sid: int, msg: m.Ping, now_ms: int) -> None:
        self.peer.out.touches.extend(msg.touches)

    def on_request(self, sid: int, msg: m.Request, now_ms: int) -> None:
        if self.serving and sid in self.handles:
            self.peer.out.requests.append((sid, msg.payload))

    def on_revalidate(self, sid: int, msg: m.Revalidate, now_ms: int) -> None:
        if self.serving and sid in self.handles:
            self.peer.out.revalidations.append((sid, msg.session_id, msg.timeout_ms))

    def revalidated(self, to_sid: int, session_id: int, valid: bool) -> None:
        if to_sid in self.handles:
            self._send(to_sid, m.RevalidateReply(session_id, valid))

    def on_sync(self, sid: int, msg: m.Sync, now_ms: int) -> None:
        if not self.serving:
            return
        # Answer once every proposal made before this SYNC has committed (Leader.processSync).
        self.pending_syncs.append((self.history.last_zxid, sid, msg.token))
        self._release_syncs()

    def _release_syncs(self) -> None:
        committed = self.history.committed_zxid
        if not any(z <= committed for z, _, _ in self.pending_syncs):
            return
        keep = []
        for z, sid, token in self.pending_syncs:
            if z <= committed:
                self._send(sid, m.SyncReply(token, z))
            else:
                keep.append((z, sid, token))
        self.pending_syncs = keep

    # ================================================================ time and links
    def tick(self, now_ms: int) -> None:
        if self.phase != Phase.BROADCAST and now_ms >= self.deadline_ms:
            raise RoleFailed(f"leader: {self.phase.name} not done within initLimit")
        self._drop_stuck_handshakes(now_ms)
        if now_ms >= self.next_ping_ms:
            self.next_ping_ms = now_ms + self.half_tick_ms
            # Only a learner that was sent UPTODATE gets the committed zxid: it can then tell a lost
            # UPTODATE, INFORM or COMMIT from one still on its way (the link is FIFO).
            zxid = self.last_proposed or self.history.last_zxid
            plain, full = m.Ping(zxid), m.Ping(zxid, (), self.history.committed_zxid)
            for h in self.handles.values():
                if h.stage >= Stage.EPOCH_SENT:
                    self._send(h.sid, full if h.stage == Stage.UPTODATE else plain)
        if self.phase == Phase.BROADCAST and now_ms >= self.next_check_ms:
            self.next_check_ms = now_ms + self.peer.tick_ms
            self._check_sync_limit(now_ms)
            alive = {h.sid for h in self.handles.values()
                     if h.is_voter and h.stage >= Stage.SYNCED and h.deadline_ms > now_ms}
            if not self.peer.quorum.is_quorum(alive | {self.peer.sid}):
                raise RoleFailed("leader: lost the quorum for syncLimit")

    def _drop_stuck_handshakes(self, now_ms: int) -> None:
        # Java's LearnerHandler reads the handshake with an initLimit socket timeout: a learner that
        # has not ACKed NEWLEADER by its first deadline (initLimit + syncLimit ticks after it
        # connected) is dropped, so it stops getting PINGs, times out and reconnects.
        for h in list(self.handles.values()):
            if h.stage < Stage.SYNCED and now_ms >= h.deadline_ms:
                self._drop(h.sid)

    def _check_sync_limit(self, now_ms: int) -> None:
        # Java's per-LearnerHandler SyncLimitCheck: a learner must ACK the oldest proposal sent to it
        # within syncLimit ticks, whether or not the others' ACKs have committed it meanwhile (a voter
        # whose fsync stalls would otherwise fall ever further behind while counting as alive, since
        # its PINGs keep coming).  Observers are never sent PROPOSALs, so they never have any.  The
        # clock starts at the NEWLEADER ACK at the earliest: before it the learner may be busy with a
        # long sync, which the handshake's own deadline bounds.
        # And, like the LearnerHandler's syncLimit socket read timeout, a synced learner (voter or
        # observer) not heard from for syncLimit ticks -- it answers every PING -- is dropped: it is
        # no longer counted, sent to, or listened to (a request or revalidation it sent before the
        # silence and that arrives later is ignored, since it has no handle any more).
        limit = self.peer.sync_limit * self.peer.tick_ms
        for h in list(self.handles.values()):
            if h.stage < Stage.SYNCED:
                continue
            if (h.unacked and now_ms - max(h.unacked[0][1], h.synced_ms) > limit) or now_ms >= h.deadline_ms:
                self._drop(h.sid)

    def link_lost(self, sid: int, now_ms: int) -> None:
        self._drop(sid)

    def next_deadline_ms(self) -> int | None:
        times = [self.next_ping_ms]
        times.append(self.next_check_ms if self.phase == Phase.BROADCAST else self.deadline_ms)
        return min(times)
