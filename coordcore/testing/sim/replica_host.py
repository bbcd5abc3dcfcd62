"""ReplicaHost: a simulated server running the real Replica (node + tree) over a real QuorumPeer over a
MemoryStorage -- the "replica mode" of the simulator (``coordcore sim --mode replica``).

Where :class:`~coordcore.testing.sim.zab_host.ZabHost` drives a bare QuorumPeer with opaque txns, this
host drives :class:`coordcore.node.replica.Replica` with ``peer=`` a QuorumPeer, exactly as
runtime/serve.py drives one with a Solo core, and obeys the HOST RULES of coordcore/zab/ready.py for
the Ready the replica passes on:

1. ``writes`` in order on the storage (an Append is buffered; anything else syncs first);
2. ``messages`` through the SimNetwork;
3. sync the Appends -- at once, or later when the disk is slow -- then ``replica.persisted(z)``;
4. ``deliver`` to the simulated clients (replies, watch events, sessions, closes);
5. on ``reset``: ``storage.load()``, then ``replica.rebuild(state, applied_zxid, now)``.

A crash is MemoryStorage.crash() (unsynced appends lost, maybe a prefix kept; see mem_disk.py); the
restart loads the storage and builds a new QuorumPeer (PeerDurable from what was loaded) and a new
Replica over it.  The crash sites between the steps are ZabHost's.

What the checker sees of the replica: the txns the peer hands out (recorded by a QuorumPeer subclass
that only watches ``ready()``), so the opaque-mode invariants (I2, PFX, DUR, LOST, ...) hold as before;
and after every event a digest of each member's tree and session table at its applied zxid (TREE).
The clients (replica_clients.py) check the rest: replies only for txns a quorum durably holds (ACKQ),
client-seen zxids never decreasing (CZXID), and every acknowledged write in the converged history.

Not modelled: client<->server latency and loss (a client's packet reaches its server at once; a
crash or a close loses the connection), sync(), SASL/auth ops, and reconfig.
"""
from __future__ import annotations

import hashlib

from coordcore import zxid as zx
from coordcore.errors import Err
from coordcore.node.node import Node
from coordcore.node.replica import CLOSE, DROP, EVENT, INVALID, REPLY, SESSION, Connect, Replica
from coordcore.storage.api import DurableState
from coordcore.testing.sim.checker import Violation
from coordcore.testing.sim.disk import HostRuleError
from coordcore.testing.sim.mem_disk import MemDisk
from coordcore.testing.sim.replica_clients import SimConn, Token, Workload
from coordcore.testing.sim.zab_host import READY_ROUNDS_MAX, ZabHost
from coordcore.tree import txn as T
from coordcore.wire import proto as P
from coordcore.zab import messages as m
from coordcore.zab.election import Notification, PeerState
from coordcore.zab.peer import (Append, InstallSnapshot, PeerDurable, QuorumPeer, SetAcceptedEpoch,
                                SetCurrentEpoch, Truncate)

MIN_SESSION_TIMEOUT_TICKS = 2
MAX_SESSION_TIMEOUT_TICKS = 20
REAP_INTERVAL_TICKS = 5


class RecordingPeer(QuorumPeer):
    """A QuorumPeer whose host hears every Ready it hands the Replica (nothing else differs)."""

    def ready(self):
        r = super().ready()
        self.host._peer_ready(r)
        return r


class ReplicaHost(ZabHost):
    def __init__(self, sim, sid: int) -> None:
        super().__init__(sim, sid)
        self.disk = MemDisk()
        self.replica: Replica | None = None
        self.conns: set = set()              # open client connections to this server
        self._peer_calls = 0                 # peer.ready() calls inside the current replica.ready()
        self._fresh: list[tuple[int, bytes]] = []   # txns applied during the current replica.ready()
        self._reset_seen = False
        self.digest_zxid: int | None = None

    @staticmethod
    def make_workload(sim) -> Workload:
        return Workload(sim)

    # -- life cycle

    def start(self) -> None:
        sim = self.sim
        state = self.disk.load(self.sid)
        self.up = True
        self.incarnation += 1
        self.timer_ms = None
        self.sync_tail_ms = 0
        self.serving_epoch = None
        self.conns = set()
        self.digest_zxid = None
        # HOST RULE 5 at start: the replica is the newest snapshot, nothing replayed.
        self.applied = list(self.disk.snapshot_history)
        sim.checker.reloaded(self.sid)
        self._check_replica()
        durable = PeerDurable(state.accepted_epoch, state.current_epoch, state.snapshot_zxid, tuple(state.txns))
        sim.log(f"START {self.sid} accepted={state.accepted_epoch} current={state.current_epoch} "
                f"snapshot={zx.fmt(state.snapshot_zxid)} last={zx.fmt(state.last_zxid)} txns={len(state.txns)}")
        cfg = sim.cfg
        try:
            peer = RecordingPeer(self.sid, sim.quorum, tick_ms=cfg.tick_ms, init_limit=cfg.init_limit,
                                 sync_limit=cfg.sync_limit, durable=durable, now_ms=sim.now,
                                 snapshot_provider=self._snapshot, finalize_wait_ms=cfg.finalize_wait_ms)
        except ValueError as e:
            raise Violation("I6", f"server {self.sid} cannot restart from its storage: {e}") from None
        peer.host = self
        fle = getattr(peer, "fle", None)
        if fle is not None and hasattr(fle, "max_notification_interval_ms"):
            fle.max_notification_interval_ms = cfg.max_notification_interval_ms
        self.peer = peer
        self.replica = Replica(state=state, now_ms=sim.now, tick_ms=cfg.tick_ms, server_id=self.sid,
                               min_session_timeout_ms=MIN_SESSION_TIMEOUT_TICKS * cfg.tick_ms,
                               max_session_timeout_ms=MAX_SESSION_TIMEOUT_TICKS * cfg.tick_ms,
                               reap_interval_ms=REAP_INTERVAL_TICKS * cfg.tick_ms, extended_types=True,
                               peer=peer)
        # The Replica installed itself as the peer's snapshot source; wrap it so the checker learns
        # which txns a snapshot sent by SNAP covers (the bytes are an opaque tree).
        peer.snapshot_provider = self._snapshot
        self.drive()

    def crash(self, keep_pending: int) -> int:
        self.up = False
        self.peer = None
        self.replica = None
        self.timer_ms = None
        self.serving_epoch = None
        for conn in sorted(self.conns, key=lambda c: c.cid):
            conn.client.lost(conn, "server crashed")
        self.conns = set()
        try:
            lost = self.disk.crash(keep_pending)
        except HostRuleError as e:
            raise Violation("HOST", f"server {self.sid}: {e}") from None
        self.sim.checker.disk_changed(self.sid, self.disk)
        return lost

    def _snapshot(self) -> tuple[int, bytes]:
        z, data = self.replica.snapshot_of_applied()
        last = self.applied[-1][0] if self.applied else 0
        if z != last:
            raise Violation("REPLICA", f"server {self.sid}: snapshot_of_applied() at {zx.fmt(z)} but the peer "
                                       f"handed out txns through {zx.fmt(last)}")
        self.sim.snapshot_histories[data] = list(self.applied)
        return z, data

    def take_snapshot(self) -> None:
        """The server snapshots its applied state by itself (ZooKeeper's snapCount)."""
        if self.replica is None or not self.applied or self.paused_until > self.sim.now:
            return
        z = self.applied[-1][0]
        if z <= self.disk.snapshot_zxid or z in self.disk.snapshot_histories:
            return
        z2, data = self.replica.snapshot_of_applied()
        self.disk.save_snapshot(z, data, self.applied)
        self.sim.log(f"SNAPSHOT {self.sid} at {zx.fmt(z)}")
        self.sim.checker.disk_changed(self.sid, self.disk)

    # -- inputs

    def receive(self, src: int, msg) -> None:
        self.replica.receive(src, msg, self.sim.now)
        self.drive()

    def tick(self) -> None:
        self.replica.tick(self.sim.now)
        self.drive()

    def link_lost(self, other: int) -> None:
        self.replica.link_lost(other, self.sim.now)
        self.drive()

    def _report_persisted(self, zxid: int) -> None:
        self.replica.persisted(zxid)

    def client_write(self, payload: bytes) -> None:  # the opaque workload of zab mode
        raise AssertionError("replica mode drives clients through replica_clients.Workload")

    # -- what the clients do (replica_clients.py calls these)

    def client_connect(self, client, conn: SimConn, req: P.ConnectRequest, passwd: bytes):
        decision, timeout = self.replica.connect(conn, req, passwd, self.sim.now)
        if decision in (Connect.PENDING, Connect.ESTABLISHED):
            self.conns.add(conn)
        self.drive()
        return decision, timeout

    def client_closed(self, conn: SimConn) -> None:
        """The client closed its connection (it moves to another server)."""
        self.conns.discard(conn)
        if self.replica is not None:
            self.replica.connection_closed(conn)
            if not self._driving:  # (a client reacting to a delivery: the loop already running goes on)
                self.drive()

    def client_touch(self, conn: SimConn) -> None:
        self.replica.touch(conn.session_id, self.sim.now)
        self.drive()

    def client_request(self, conn: SimConn, token: Token) -> None:
        replica, now = self.replica, self.sim.now
        if not replica.accepts_requests(conn.session_id):
            self._reply(conn, token, (int(Err.SESSIONEXPIRED), b""))  # as clients.py answers it
            return
        replica.touch(conn.session_id, now)
        if token.is_write:
            replica.submit(conn, token, now)
        else:
            answer = (replica.sync if token.op == P.SYNC else replica.read_after_writes)(conn, token)
            if answer is not None:
                self.drive()  # a read can fire nothing, but resumed watches come before its reply
                self._reply(conn, token, answer)
        self.drive()

    def _reply(self, conn: SimConn, token: Token, answer, txn: tuple[int, bytes] | None = None) -> None:
        conn.client.replied(conn, token, answer, self.replica.last_applied, txn, self)

    # -- the host loop

    def _peer_ready(self, r) -> None:
        """Called from inside replica.ready() for each peer.ready() the replica takes."""
        self._peer_calls += 1
        if self._peer_calls > 1 and (r.reset or r.state_changed):
            raise Violation("REPLICA", f"server {self.sid}: the Replica's second peer.ready() in one turn "
                                       f"carries reset={r.reset} state_changed={r.state_changed}, which "
                                       f"Replica.ready() does not act on")
        if r.reset:
            self._reset_seen = True
            return  # the Replica does not apply this Ready's applies: the rebuild covers them
        sim, checker = self.sim, self.sim.checker
        for z, t in r.applies:
            self.applied.append((z, t))
            self._fresh.append((z, t))
            checker.applied(self.sid, self.applied, self.disk, sim.disks)
            if sim.trace is not None:
                sim.log(f"apply {self.sid} {zx.fmt(z)} {_txn_text(t)}")

    _driving = False

    def drive(self) -> None:
        self._driving = True
        try:
            self._drive()
        finally:
            self._driving = False

    def _drive(self) -> None:
        for _ in range(READY_ROUNDS_MAX):
            if not self.up:
                return
            self._peer_calls = 0
            self._fresh = []
            self._reset_seen = False
            r = self.replica.ready()
            if not r and not self._fresh:
                break
            self._process(r)
            if self.up:
                self._observe_state()
        else:
            raise Violation("API", f"server {self.sid}'s ready() never runs dry")
        if not self.up:
            return
        peer, replica = self.peer, self.replica
        mine = self.applied[-1][0] if self.applied else 0
        if mine != peer.applied_zxid or replica.last_applied != peer.applied_zxid:
            raise Violation("REPLICA", f"server {self.sid}: peer.applied_zxid is {zx.fmt(peer.applied_zxid)}, the "
                                       f"peer handed out txns through {zx.fmt(mine)}, the tree is at "
                                       f"{zx.fmt(replica.last_applied)}")
        if self.digest_zxid != replica.last_applied:
            self.digest_zxid = replica.last_applied
            self.sim.checker.replica_state(self.sid, replica.last_applied, self.digest())
        t = peer.next_deadline_ms()
        if replica.proposer is not None:  # the leader expires sessions and reaps on its own clock
            t = min(x for x in (t, replica.next_expiry_ms, replica.next_reap_ms) if x is not None)
        self.schedule_timer(t)

    def digest(self) -> bytes:
        """The applied tree and session table, as the replica would snapshot them."""
        return hashlib.blake2b(self.replica.node.snapshot_bytes(), digest_size=16).digest()

    def _process(self, r) -> None:
        sim, disk, checker = self.sim, self.disk, self.sim.checker
        self._observe_state()  # a leader may propose in the very Ready that made it serve
        if not self._write_send_sync(r):
            return
        for kind, conn, a, b in r.deliver:
            self._deliver(kind, conn, a, b)
        if r.expired or r.reaped:
            sim.log(f"leader {self.sid} expired={[hex(s) for s in r.expired]} reaped={r.reaped}")
        for from_sid, reason in r.refused:
            raise Violation("REPLICA", f"server {self.sid} refused a request forwarded by {from_sid}: {reason}")
        if r.reset:
            if not self._reset_seen:
                raise Violation("REPLICA", f"server {self.sid}: Ready.reset without a peer reset")
            self._reset(r.applied_zxid)
        elif self._reset_seen:
            raise Violation("REPLICA", f"server {self.sid}: the peer asked for a reset the Replica did not pass on")
        if r.state_changed:
            p = self.peer
            sim.log(f"state {self.sid} {p.state.name} serving={r.serving} leader={p.leader_sid} epoch={p.epoch}")

    def _deliver(self, kind, conn: SimConn, a, b) -> None:
        if not conn.open:
            self.sim.count("deliver_to_closed")
            return
        client = conn.client
        if kind is REPLY:
            txn = self._txn_of(conn, a) if a.is_write else None
            self._reply(conn, a, b, txn)
        elif kind is EVENT:
            self.sim.count("watch_events")
        elif kind is SESSION:
            client.session_ready(conn, a, b[0], b[1])
        elif kind is INVALID:
            client.session_invalid(conn)
            self._close(conn)
        elif kind is CLOSE or kind is DROP:
            client.lost(conn, "closed" if kind is CLOSE else "dropped")
            self._close(conn)
        else:
            raise Violation("REPLICA", f"server {self.sid}: unknown delivery {kind!r}")

    def _close(self, conn: SimConn) -> None:
        self.conns.discard(conn)
        conn.open = False
        self.replica.connection_closed(conn)

    def _txn_of(self, conn: SimConn, token: Token) -> tuple[int, bytes]:
        """The txn that answers this write: applied in this same turn (Replica._apply replies at once)."""
        for z, t in reversed(self._fresh):
            txn = T.decode(t)
            if txn.session_id == conn.session_id and txn.cxid == token.xid:
                return z, t
        raise Violation("REPLICA", f"server {self.sid} answers write xid={token.xid} of session "
                                   f"{conn.session_id:#x} without applying its txn in the same turn")

    def _write(self, w) -> None:
        if not isinstance(w, InstallSnapshot):
            return super()._write(w)
        sim, checker = self.sim, self.sim.checker
        history = sim.snapshot_histories.get(w.data)
        if history is None or (history and history[-1][0] != w.zxid):
            raise Violation("API", f"server {self.sid}: InstallSnapshot {zx.fmt(w.zxid)} of bytes no leader's "
                                   f"snapshot_provider returned at that zxid")
        for z, t in history:
            checker.saw_txn(f"InstallSnapshot on {self.sid}", z, t)
        try:
            self.disk.install_snapshot(w.zxid, w.data, history)
        except HostRuleError as e:
            raise Violation("HOST", f"server {self.sid}: {e}") from None
        sim.log(f"write {self.sid} InstallSnapshot {zx.fmt(w.zxid)} ({len(w.data)} bytes)")
        checker.disk_changed(self.sid, self.disk)

    def _reset(self, applied_zxid: int) -> None:
        """HOST RULE 5: load the storage, rebuild the replica through the peer's applied point."""
        state = self.disk.load(self.sid)  # checks the epochs again, as a restart would
        if state.snapshot_zxid > applied_zxid:
            raise Violation("API", f"server {self.sid}: reset to {zx.fmt(applied_zxid)} below the newest snapshot "
                                   f"{zx.fmt(state.snapshot_zxid)}")
        # As runtime/serve.py does: keep the replica's own tree when it already is the rebuild's result
        # (Replica.reset_in_place) and go on with it; the sim also builds a node from storage beside it
        # and requires the same digest, so every such reset of every seed checks that claim.
        if self.replica.reset_in_place(applied_zxid, self.sim.now):
            upto = DurableState(snapshot_zxid=state.snapshot_zxid, snapshot=state.snapshot,
                                txns=[t for t in state.txns if t[0] <= applied_zxid])
            rebuilt = Node(tick_ms=self.replica.tick_ms, server_id=self.replica.server_id, state=upto,
                           now_ms=self.sim.now)
            if rebuilt.snapshot_bytes() != self.replica.node.snapshot_bytes():
                raise Violation("REPLICA", f"server {self.sid}: the replica kept in place at "
                                           f"{zx.fmt(applied_zxid)} differs from one rebuilt from storage")
            self.sim.count("reset_in_place")
        else:
            self.replica.rebuild(state, applied_zxid, self.sim.now)
            self.sim.count("reset_from_storage")
        self.applied = list(self.disk.snapshot_history) + [t for t in state.txns if t[0] <= applied_zxid]
        self.conns = set()   # the replica dropped every connection (DROP was delivered)
        self.digest_zxid = None
        self.sim.log(f"reset {self.sid} replica rebuilt up to {zx.fmt(self.replica.last_applied)}")
        self.sim.checker.reloaded(self.sid)
        self._check_replica()

    # -- convergence

    @staticmethod
    def convergence_gap(sim) -> str | None:
        gap = ZabHost.convergence_gap(sim)
        if gap is not None:
            return gap
        for s in sim.sids:
            if not sim.hosts[s].replica.serving:
                return f"server {s}'s replica is not serving"
        return None

    @staticmethod
    def final_check(sim) -> None:
        ZabHost.final_check(sim)
        digests = {s: h.digest() for s, h in sim.hosts.items()}
        if len(set(digests.values())) != 1:
            raise Violation("TREE", f"converged servers' trees differ: "
                                    f"{ {s: d.hex()[:8] for s, d in digests.items()} }")
        sim.workload.final_check()

    def describe(self) -> str:
        text = super().describe()
        if self.up:
            text += f"[tree={zx.fmt(self.replica.last_applied)},clients={len(self.conns)}]"
        return text


def _txn_text(t: bytes) -> str:
    txn = T.decode(t)
    return f"{_TYPE_NAMES.get(txn.type, txn.type)} s={txn.session_id:#x} cxid={txn.cxid} {txn.body!r}"[:200]


_TYPE_NAMES = {T.T_CREATE: "create", T.T_DELETE: "delete", T.T_SET_DATA: "setData", T.T_SET_ACL: "setACL",
               T.T_CHECK: "check", T.T_MULTI: "multi", T.T_CREATE_SESSION: "createSession",
               T.T_CLOSE_SESSION: "closeSession", T.T_ERROR: "error"}

__all__ = ["ReplicaHost", "RecordingPeer", "PeerState", "SetAcceptedEpoch", "SetCurrentEpoch", "Truncate"]
