"""QuorumPeer: the one object a host drives.  It owns FastLeaderElection and the current ZAB role.

States (reference section 3): LOOKING runs FLE; its decision starts a Leader (LEADING) or a Learner
(FOLLOWING for voters, OBSERVING for observers).  A role that fails (timeout, lost quorum, fatal packet,
counter rollover) raises RoleFailed; the peer then goes back to LOOKING with `Ready.reset = True` so the
host rebuilds the replica from storage (R3; ZOOKEEPER-2845, -3642).

Invariant I7 (advertise only durable state): the FLE vote and the ACKEPOCH carry the last zxid of the
*durable* log.  When a role ends with Appends still unsynced, the peer enters LOOKING at once but starts
the election round (FastLeaderElection.look) only when persisted() reports every Append durable; so a role
also always starts with an entirely durable log.

Applies: only txns both committed and locally durable are handed out (ZOOKEEPER-4882), and only while a
role is broadcasting (a learner learns that its sync history is committed from UPTODATE; the leader from
its NEWLEADER quorum).  Nothing is applied while LOOKING.  See ready.py for the HOST RULES; in particular
rule 5: a reset rebuilds the replica from the newest snapshot plus the durable txns <= `applied_zxid`.

While the deferred round waits, FLE still answers with the vote of the role just left; a server that
believes that may follow us and time out (liveness only, and only until persisted() arrives).

Messages that arrive for a role the peer is not in are dropped, except FOLLOWERINFO/OBSERVERINFO received
while LOOKING: the last one per sid is kept and replayed if this peer becomes LEADING, because a learner
whose election finished first sends it only once per connection (Java's learner would retry connecting).

This module does no I/O and reads no clock; `now_ms` arrives with every input.
"""

from collections.abc import Callable

import coordcore.zxid as zx
from coordcore.errors import ProtocolError
from coordcore.zab import messages as m
from coordcore.zab.election import FastLeaderElection, Notification, PeerState, Vote
from coordcore.zab.history import History
from coordcore.zab.leader import Leader
from coordcore.zab.learner import Learner
from coordcore.zab.quorum import QuorumConfig
from coordcore.zab.ready import (Append, InstallSnapshot, PeerDurable, Ready, SetAcceptedEpoch, SetCurrentEpoch,
                                 Truncate)
from coordcore.zab.role import Role, RoleFailed

__all__ = ["QuorumPeer", "PeerDurable", "Ready", "NotBroadcasting", "Append", "SetAcceptedEpoch",
           "SetCurrentEpoch", "Truncate", "InstallSnapshot"]


class NotBroadcasting(Exception):
    """propose()/next_zxid() on a peer that is not a leader in BROADCAST."""


class QuorumPeer:
    def __init__(self, sid: int, quorum: QuorumConfig, *, tick_ms: int, init_limit: int, sync_limit: int,
                 durable: PeerDurable, now_ms: int, snapshot_provider: Callable[[], tuple[int, bytes]],
                 finalize_wait_ms: int = 200, commit_log_count: int = 500) -> None:
        if not quorum.is_member(sid):
            raise ValueError(f"sid {sid} is not in the quorum configuration")
        if tick_ms <= 0 or init_limit <= 0 or sync_limit <= 0:
            raise ValueError("tick_ms, init_limit and sync_limit must be positive")
        self.sid = sid
        self.quorum = quorum
        self.tick_ms = tick_ms
        self.init_limit = init_limit
        self.sync_limit = sync_limit
        self.commit_log_count = commit_log_count
        self.snapshot_provider = snapshot_provider
        self.history = History(durable.snapshot_zxid, durable.txns)
        self.accepted_epoch = durable.accepted_epoch
        self.current_epoch = durable.current_epoch
        last_epoch = zx.epoch(self.history.last_zxid)
        if not (self.accepted_epoch >= self.current_epoch and self.accepted_epoch >= last_epoch):
            raise ValueError(f"epoch invariant broken: acceptedEpoch {self.accepted_epoch} must be >= "
                             f"currentEpoch {self.current_epoch} and >= epoch(last zxid) {last_epoch}")
        # currentEpoch < epoch(last zxid) <= acceptedEpoch is the one tolerated break of I6: a crash after
        # a sync history was made durable but before SetCurrentEpoch (6.2 step 3 puts the epoch write
        # last on purpose; ZooKeeper refuses to start here, ZOOKEEPER-1653/-2354).  Those txns came from
        # a leader whose NEWLEADER we never ACKed, so we keep advertising the older currentEpoch: the
        # vote ranks lower and the next leader commits or truncates that tail like any other (I4).
        self.fle = FastLeaderElection(sid, quorum, finalize_wait_ms=finalize_wait_ms)
        self.state = PeerState.LOOKING
        self.leader_sid: int | None = None
        self.epoch = self.current_epoch
        self.role: Role | None = None
        self.out = Ready()
        self._now = now_ms
        self._look_pending = True
        self._held_notifications: dict[int, Notification] = {}  # sender -> its newest, while LOOKING
        #                                                          before the round began
        self._early_infos: dict[int, m.FollowerInfo | m.ObserverInfo] = {}
        self._local_syncs: list[tuple[int, int]] = []  # (zxid to have applied, token)
        self._after_step(now_ms)

    # ================================================================ inputs
    def receive(self, from_sid: int, msg, now_ms: int) -> None:
        """An election Notification or a ZAB packet from `from_sid`."""
        self._now = now_ms
        if isinstance(msg, Notification):
            if msg.sender != from_sid:  # the link names the sender, not the payload
                msg = Notification(msg.leader, msg.zxid, msg.election_epoch, msg.state, from_sid, msg.peer_epoch)
            if self._look_pending and self.role is None:
                # LOOKING, but the round starts only once the log is durable (I7).  ZooKeeper queues what
                # arrives meanwhile for lookForLeader; answering it with the finished role's vote and
                # dropping it made the sender's round wait for a resend (200 ms and more) at failovers.
                self.fle.validate(msg)
                self._held_notifications[msg.sender] = msg  # a sender's newest vote supersedes its others
            else:
                self.fle.receive(msg, now_ms)
        elif self.role is not None:
            self._guarded(lambda: self.role.on_message(from_sid, msg, now_ms))
        elif isinstance(msg, (m.FollowerInfo, m.ObserverInfo)) and self.quorum.is_member(from_sid):
            self._early_infos[from_sid] = msg
        self._after_step(now_ms)

    def tick(self, now_ms: int) -> None:
        self._now = now_ms
        self.fle.tick(now_ms)
        if self.role is not None:
            self._guarded(lambda: self.role.tick(now_ms))
        self._after_step(now_ms)

    def persisted(self, zxid: int) -> None:
        """The host synced every Append of earlier Readies up to `zxid`."""
        if self.history.persisted(zxid) and self.role is not None:
            self._guarded(lambda: self.role.on_persisted(self._now))
        self._after_step(self._now)

    def link_lost(self, sid: int, now_ms: int) -> None:
        self._now = now_ms
        if self.role is not None:
            self._guarded(lambda: self.role.link_lost(sid, now_ms))
        self._after_step(now_ms)

    def next_zxid(self) -> int | None:
        """The zxid the next propose() gets; None unless leading in BROADCAST."""
        role = self.role
        return role.next_zxid() if isinstance(role, Leader) else None

    def propose(self, txn: bytes) -> int:
        """Leader in BROADCAST only: log and broadcast `txn`; returns its zxid."""
        role = self.role
        if not isinstance(role, Leader) or role.next_zxid() is None:
            raise NotBroadcasting("propose() needs a leader in BROADCAST")
        zxid = role.propose(txn, self._now)
        self._guarded(role.check_rollover)
        self._after_step(self._now)
        return zxid

    def forward(self, payload: bytes) -> None:
        """Learner: send a client write to the leader (REQUEST).  Ignored unless serving."""
        if isinstance(self.role, Learner) and self.role.serving:
            self.role.forward(payload)

    def touch(self, session_id: int, timeout_ms: int) -> None:
        """A local client touched its session: learners report it in the next PING reply."""
        if isinstance(self.role, Learner):
            self.role.touch(session_id, timeout_ms)
        elif isinstance(self.role, Leader):
            self.out.touches.append((session_id, timeout_ms))

    def revalidate(self, session_id: int, timeout_ms: int) -> None:
        """A client reconnected here: ask the leader (on the leader: ask the local replica)."""
        if isinstance(self.role, Learner) and self.role.serving:
            self.role.revalidate(session_id, timeout_ms)
        elif isinstance(self.role, Leader) and self.role.serving:
            self.out.revalidations.append((self.sid, session_id, timeout_ms))

    def revalidated(self, to_sid: int, session_id: int, valid: bool) -> None:
        """Leader: the replica's verdict on a revalidation it got in Ready.revalidations."""
        if not isinstance(self.role, Leader):
            return
        if to_sid == self.sid:
            self.out.revalidated.append((session_id, valid))
        else:
            self.role.revalidated(to_sid, session_id, valid)

    def sync(self, token: int) -> None:
        """A client `sync`: Ready.synced gets `token` once this server applied everything the leader had
        proposed before it (ZOOKEEPER-1675: like ZooKeeper, this is not a quorum round).  Ignored unless
        serving (clients are disconnected then)."""
        role = self.role
        if isinstance(role, Learner) and role.serving:
            role.sync(token)
        elif isinstance(role, Leader) and role.serving:
            self._local_syncs.append((role.history.last_zxid, token))
        self._after_step(self._now)

    # ================================================================ output
    def ready(self) -> Ready:
        """Everything accumulated since the last call; obey the HOST RULES (ready.py)."""
        if self.role is not None:
            self.role.flush()
        out, self.out = self.out, Ready()
        out.applied_zxid = self.history.applied_zxid
        return out

    @property
    def serving(self) -> bool:
        return self.role is not None and self.role.serving

    @property
    def applied_zxid(self) -> int:
        """The last txn handed out in Ready.applies (or the snapshot the peer started from)."""
        return self.history.applied_zxid

    @property
    def last_zxid(self) -> int:
        """The last logged zxid (durable or not)."""
        return self.history.last_zxid

    def next_deadline_ms(self) -> int | None:
        times = [t for t in (self.fle.next_deadline_ms(),
                             self.role.next_deadline_ms() if self.role is not None else None) if t is not None]
        return min(times) if times else None

    # ================================================================ for the roles
    def write(self, w) -> None:
        if isinstance(w, SetAcceptedEpoch):
            self.accepted_epoch = w.epoch
        elif isinstance(w, SetCurrentEpoch):
            self.current_epoch = w.epoch
        self.out.writes.append(w)

    def send(self, to_sid: int, msg) -> None:
        self.out.messages.append((to_sid, msg))

    def request_reset(self) -> None:
        self.out.reset = True

    def set_established(self, epoch: int) -> None:
        self.epoch = epoch

    def became_serving(self, epoch: int) -> None:
        """The role reached BROADCAST: report it and rewrite our vote's peerEpoch (ZOOKEEPER-1732)."""
        self.out.state_changed = True
        self.fle.update_peer_epoch(epoch)

    # ================================================================ internals
    def _guarded(self, step: Callable[[], object]) -> None:
        try:
            step()
        except RoleFailed:
            self._leave_role()
        except ProtocolError:
            # Only a learner lets a peer's error escape (the leader drops the offending learner itself):
            # the link to our leader is unusable, so this role is over.
            self._leave_role()

    def _leave_role(self) -> None:
        if self.role is not None:
            self.role.flush()
        self.role = None
        self.state = PeerState.LOOKING
        self.leader_sid = None
        self.epoch = self.current_epoch
        self._local_syncs.clear()
        self.out.reset = True
        self.out.state_changed = True
        self._look_pending = True

    def _after_step(self, now_ms: int) -> None:
        if self._look_pending and self.role is None and self.history.durable_zxid >= self.history.last_zxid:
            self._look_pending = False
            self.fle.look(now_ms, self.history.last_zxid, self.current_epoch)
            held, self._held_notifications = self._held_notifications, {}
            for n in held.values():
                self.fle.receive(n, now_ms)
        decision = self.fle.take_decision()
        if decision is not None and self.role is None:
            self._start_role(decision[0], decision[1], now_ms)
        self.out.messages.extend(self.fle.take_messages())
        if self.role is not None and self.role.serving:
            applies = self.history.take_applies(self.commit_log_count)
            if applies:
                self.out.applies.extend(applies)
                if isinstance(self.role, Learner):
                    self.role.applied(self.history.applied_zxid)
            self._release_local_syncs()

    def _release_local_syncs(self) -> None:
        if self._local_syncs:
            done = [t for z, t in self._local_syncs if z <= self.history.applied_zxid]
            self._local_syncs = [(z, t) for z, t in self._local_syncs if z > self.history.applied_zxid]
            self.out.synced.extend(done)

    def _start_role(self, state: PeerState, vote: Vote, now_ms: int) -> None:
        self.fle.established(state, vote)
        self.state = state
        self.leader_sid = vote.leader
        self.out.state_changed = True
        if state == PeerState.LEADING:
            leader = Leader(self, now_ms)
            self.role = leader
            early, self._early_infos = self._early_infos, {}
            for sid, info in early.items():
                self._guarded(lambda: leader.on_message(sid, info, now_ms))
        else:
            self._early_infos.clear()
            self.role = Learner(self, vote.leader, now_ms)
        if self.role is not None:  # a replayed info may already have failed the role
            self.out.messages.extend(self.fle.take_messages())
