"""Replica: one server's pure side behind a step API, in the style of etcd raft's ``Ready``.

The host (runtime/serve.py; later the simulator) feeds it inputs and carries out what it returns.
It decides everything -- which txn, which zxid, which session expires, which connection closes --
and the host only moves bytes, calls fsync and reports back.

Inputs::

    replica.connect(conn, request, passwd, now_ms)  a client handshake -> (Connect decision, detail)
    replica.submit(conn, p, now_ms)                 a client write; p is the host's reply token (.op .req .xid)
    replica.read(op, request, conn)                 a read, answered at once from the applied tree
    replica.read_after_writes(conn, p)              a read behind the connection's writes in flight: it
                                                    is answered (REPLY) right after the last of them applies
    replica.sync(conn, p)                           a client's sync: answered once this server applied all
                                                    the leader had decided before it
    replica.touch(session_id, now_ms)               any packet on a session keeps it alive
    replica.connection_closed(conn)                 the host lost a connection: drop its watches and bindings
    replica.tick(now_ms)                            session expiry (once a tick), container/TTL reaping (its interval)
    replica.persisted(zxid)                         every append through zxid is durable (fsynced)
    replica.receive(from_sid, message, now_ms)      ensemble: a peer's message
    replica.link_lost(sid, now_ms)                  ensemble: the link to a peer broke

Output, ``ready = replica.ready()`` (take it after any input; it holds what accumulated since)::

    ready.writes    storage actions in order (zab.ready: Append, and in an ensemble the epoch, truncate
                    and snapshot writes): append, sync, then persisted(last appended zxid)
    ready.messages  [(to sid, message)] for the peers (none when standalone)
    ready.deliver   [(kind, conn, a, b)]  in exactly this order:
                      EVENT    a watch notification        a = event type, b = path
                      REPLY    the answer to a request     a = reply token p, b = (err, body)
                      SESSION  a session is ready          a = session id, b = (timeout ms, passwd)
                      INVALID  a resumed session turned out invalid (answer 0/0, then close)
                      CLOSE    close once what is queued on conn is flushed
                      DROP     close at once, reading nothing more (its session moved to another connection)
    ready.expired   session ids whose expiry this turn decided (for the host's log)
    ready.reaped    paths of containers/TTL nodes whose deletion this turn decided
    ready.refused   (from sid, reason) forwarded requests refused as malformed (for the host's log)
    ready.reset     rebuild from storage (ensemble: the peer left its role, or synced by TRUNC/SNAP):
                    the host loads its storage and calls rebuild(state, ready.applied_zxid)
    ready.serving   whether clients may be served; when it turns False the host closes every client

An ensemble member (``peer=`` a zab QuorumPeer) serves while the peer is in BROADCAST.  Its leader
decides every txn: its own clients' writes, and what learners forward (forward.py).  A learner
forwards its clients' writes and new sessions, asks the leader to revalidate a resumed session,
reports touches in its pings, and answers its clients when the leader's txn is applied locally.
Only the leader expires sessions and reaps; a new leader gives every session a full fresh timeout.

Obligations the host can rely on: nothing in ``deliver`` reveals a txn before it is durable; a txn's
watch notifications come before the reply to the request that made it; replies to one connection's
requests come in the order it sent them, and a read sent after a write sees that write (and no later
one): it is answered against the tree right after that write applied.

Reply tokens are the host's objects; the replica reads their ``op``, ``req``, ``xid`` and ``is_write``.

Commits come from the consensus core, never from the replica: a txn is applied when the core hands
it out in its Ready.applies (committed and locally durable).  Standalone, the core is zab.solo.Solo, an
ensemble of one whose own durable ACK is the quorum, so ``persisted(Z)`` commits every txn through Z; an
ensemble member's core is a zab QuorumPeer.  The pipeline is the same.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import IntEnum

from coordcore import zxid as Z
from coordcore.errors import Err, ProtocolError
from coordcore.node import forward as F
from coordcore.node.node import Node
from coordcore.node.proposer import Proposer
from coordcore.storage.api import DurableState
from coordcore.tree import txn as T
from coordcore.wire import proto as P
from coordcore.zab.solo import Solo

EVENT, REPLY, SESSION, INVALID, CLOSE, DROP = "event", "reply", "session", "invalid", "close", "drop"


class Connect(IntEnum):
    """What a client handshake comes to."""
    REFUSED = 0       # not serving, or the client has seen a newer zxid than this server: close
    INVALID = 1       # unknown, closing or expired session, or a wrong password: answer 0/0, then close
    ESTABLISHED = 2   # a session resumed: answer with (session id, timeout, passwd) now
    PENDING = 3       # decided later: SESSION (or INVALID) is delivered once the ensemble agreed
    READ_ONLY = 4     # read-only mode: a read-only session, answered now with read_only=True (see
                      # Replica.read_only_session: its id, and the passwd to answer with)


@dataclass(slots=True)
class Ready:
    writes: list = field(default_factory=list)
    messages: list = field(default_factory=list)
    deliver: list = field(default_factory=list)
    expired: list = field(default_factory=list)
    reaped: list = field(default_factory=list)
    refused: list = field(default_factory=list)
    reset: bool = False
    applied_zxid: int = 0
    serving: bool = True
    state_changed: bool = False

    def __bool__(self) -> bool:
        return bool(self.writes or self.messages or self.deliver or self.expired or self.reaped
                    or self.refused or self.reset or self.state_changed)


class Replica:
    def __init__(self, *, state: DurableState, now_ms: int, tick_ms: int, server_id: int,
                 min_session_timeout_ms: int, max_session_timeout_ms: int, reap_interval_ms: int,
                 extended_types: bool = False, super_digest: str | None = None, enforce_quota: bool = False,
                 reconfig_enabled: bool = False, peer=None, read_only_enabled: bool = False):
        self.tick_ms = tick_ms
        self.server_id = server_id
        self.prep_settings = dict(extended_types=extended_types, super_digest=super_digest,
                                  enforce_quota=enforce_quota, reconfig_enabled=reconfig_enabled)
        self.min_session_timeout_ms = min_session_timeout_ms
        self.max_session_timeout_ms = max_session_timeout_ms
        self.reap_interval_ms = reap_interval_ms
        self._now = now_ms
        self.next_expiry_ms = now_ms + tick_ms  # sessions are checked once a tick, reaping once an interval
        self.next_reap_ms = now_ms + reap_interval_ms
        self._ready = Ready()
        self.proposer: Proposer | None = None
        if peer is None:
            self._build_node(state, None, now_ms)  # standalone: every logged txn is committed
            self.consensus = Solo(self.node.last_applied)
            self._lead(now_ms)
        else:
            # an ensemble member starts from its snapshot; the peer hands out the logged txns as they
            # prove committed (zab.ready, host rule 5)
            self._build_node(state, state.snapshot_zxid, now_ms)
            self.consensus = peer
            peer.snapshot_provider = self.snapshot_of_applied
        self._serving = self.consensus.serving
        self._ensemble = peer is not None
        if peer is not None:
            self.leading_since_ms: int | None = None
        # read-only mode (readonlymode.enabled): a member out of broadcast for READ_ONLY_AFTER serves
        # reads to clients that asked for a read-only session, and refuses their writes (NOTREADONLY)
        self.read_only_enabled = read_only_enabled and peer is not None
        self._not_serving_since = now_ms
        self._ro_conns: dict[object, int] = {}       # read-only connection -> its session id
        self._ro_sessions: dict[int, bytes] = {}     # read-only session id -> passwd (local, never replicated)
        if peer is not None:
            self._role_changed(now_ms)  # (a peer starts LOOKING; this only matters to a test's fake)

    def _build_node(self, state: DurableState, upto_zxid: int | None, now_ms: int) -> None:
        if upto_zxid is not None:
            state = DurableState(snapshot_zxid=state.snapshot_zxid, snapshot=state.snapshot,
                                 txns=[t for t in state.txns if t[0] <= upto_zxid])
        self._adopt(Node(tick_ms=self.tick_ms, server_id=self.server_id, state=state, now_ms=now_ms))

    def _adopt(self, node: Node) -> None:
        """Serve from `node`, with none of the state the previous node's clients and proposals left."""
        self.node = node
        self.node.set_notify(self._notify)
        self.session_conns: dict[int, object] = {}   # session id -> the connection it is bound to
        self._new_sessions: dict[int, object] = {}   # session id being created -> its connection
        self._creating: dict[object, int] = {}       # and back
        self._inflight: deque = deque()              # (txn, conn, token) this replica proposed, not applied
        self._forwarded: dict[tuple, tuple] = {}     # learner: (session id, cxid) -> (conn, token)
        self._revalidating: dict[int, tuple] = {}    # learner: session id -> (conn, timeout ms, passwd)
        self._queues: dict[object, deque] = {}       # connection -> its writes in flight and the reads behind them
        self._syncs: dict[int, tuple] = {}           # ensemble: sync token -> (conn, p)
        self._parked: dict[object, deque] = {}       # ensemble: conn with a sync in flight -> what it sent after
        self._next_sync = 0
        self._owners: dict[int, int] = {}            # ensemble leader: session id -> sid of the member serving it

    def _lead(self, now_ms: int) -> None:
        """Become the one that decides txns: the applied tree is the whole committed history now."""
        self._owners = {}  # a new leader knows no owners: the first member to act for a session owns it
        self.leading_since_ms = now_ms  # mntr zk_leader_uptime counts from here (ZooKeeper: zk.startup())
        nxt = self.consensus.next_zxid()
        self.proposer = Proposer(self.node.committed, self.node.sessions, epoch=Z.epoch(nxt),
                                 last_zxid=nxt - 1, **self.prep_settings)

    def rebuild(self, state: DurableState, applied_zxid: int, now_ms: int) -> None:
        """After Ready.reset: the replica as storage has it, through the peer's applied point."""
        self._build_node(state, applied_zxid, now_ms)
        self.proposer = None

    def reset_in_place(self, applied_zxid: int, now_ms: int) -> bool:
        """After Ready.reset, when the replica already is what rebuild() would make: False if not.

        It is when it has applied exactly the txns through the peer's applied point: the peer hands out
        only committed, locally durable txns, in zxid order, so that tree is the newest snapshot plus
        the logged txns <= applied_zxid -- host rule 5's rebuild -- and reading storage again would only
        cost time that grows with the data (a member leaving its role at 500k znodes spent seconds
        rebuilding before its election could start).  Everything a rebuild drops goes here too:
        session deadlines and closing marks, watches, the txns and forwards in flight, the proposer.
        Not after a SNAP or TRUNC that moved the applied point, nor when the Ready's own applies are
        not applied yet (the applied points differ then): those rebuild from storage."""
        if self.node.last_applied != applied_zxid:
            return False
        self._adopt(self.node.restarted(now_ms))
        self.proposer = None
        return True

    def snapshot_of_applied(self) -> tuple[int, bytes]:
        """(zxid, snapshot bytes) of the applied state: what a leader sends a learner it syncs by SNAP."""
        return self.node.last_applied, self.node.snapshot_bytes()

    # ------------------------------------------------------------------ outputs
    def ready(self) -> Ready:
        out = self._ready
        if not out and self.consensus.out.is_empty():
            return out  # nothing happened: no need to make new lists (the host asks after every input)
        writes, messages = [], []
        for _ in range(READY_ROUNDS_MAX):
            c = self.consensus.ready()
            writes += c.writes
            messages += c.messages
            if c.reset:
                out.reset = True
                out.applied_zxid = c.applied_zxid
                self._close_all()
            elif c.applies:
                self._apply(c.applies)
            if c.state_changed or c.reset:
                self._role_changed(self._now)
            if not c.reset and (c.requests or c.touches or c.revalidations or c.revalidated):
                self._peer_services(c)  # (a reset ended the role that was asked)
            if c.synced:
                self._synced(c.synced)
            if self.consensus.out.is_empty():
                break  # else deciding forwarded requests proposed more: take that too
        self._ready = Ready()
        out.writes, out.messages = writes, messages
        out.serving = self._serving
        return out

    @property
    def unlogged(self) -> int:
        """Txns decided since the last ready(): the host's group commit waits a turn while this grows."""
        return len(self.consensus.out.writes)

    @property
    def last_applied(self) -> int:
        return self.node.committed.last_zxid

    @property
    def serving(self) -> bool:
        return self._serving

    def _notify(self, conn, event_type, path) -> None:
        self._ready.deliver.append((EVENT, conn, event_type, path))

    def _propose(self, txn: T.Txn, conn, token) -> None:
        zxid = self.consensus.propose(T.encode(txn))
        assert zxid == txn.zxid, "the proposer and the consensus core disagree on the next zxid"
        self._inflight.append((txn, conn, token))

    def _enqueue(self, conn, p) -> None:
        q = self._queues.get(conn)
        if q is None:
            self._queues[conn] = deque((p,))
        else:
            q.append(p)

    def _role_changed(self, now_ms: int) -> None:
        c = self.consensus
        serving = c.serving
        if serving and c.next_zxid() is not None:
            if self.proposer is None:
                self._lead(now_ms)
                self.node.sessions.refresh_all(now_ms)  # a new leader: every session a full timeout
        else:
            self.proposer = None
            self.leading_since_ms = None
        if self._serving and not serving:
            self._close_all()
            self._not_serving_since = now_ms
        if serving and not self._serving and self._ro_conns:
            # back in broadcast: read-only clients reconnect for a read-write session (as ZooKeeper's
            # read-only server shuts down, closing every connection)
            for conn in self._ro_conns:
                self._ready.deliver.append((DROP, conn, None, None))
            self._ro_conns.clear()
            self._ro_sessions.clear()
        if serving != self._serving:
            self._ready.state_changed = True
        self._serving = serving

    def _close_all(self) -> None:
        """Clients are served only in broadcast: every connection this replica knows is closed."""
        # An ordered set (a dict), not a set: the DROPs come in a reproducible order, which the
        # simulator's byte-for-byte replay needs (a set of connections iterates by object hash).
        conns = dict.fromkeys([*self.session_conns.values(), *self._creating, *self._queues,
                               *(conn for conn, _, _ in self._revalidating.values()), *self._ro_conns])
        self._ro_conns.clear()
        self._ro_sessions.clear()
        for conn in conns:
            self._ready.deliver.append((DROP, conn, None, None))
        self.session_conns.clear()
        self._new_sessions.clear()
        self._creating.clear()
        self._forwarded.clear()
        self._revalidating.clear()
        self._queues.clear()
        self._inflight.clear()
        self._syncs.clear()
        self._parked.clear()

    # ------------------------------------------------------------------ inputs: clients
    def connect(self, conn, req: P.ConnectRequest, passwd: bytes, now_ms: int):
        """Judge a handshake.  Returns (Connect, timeout ms); `passwd` is fresh randomness for a new session.
        The timeout is the one asked for, clamped to the limits; an ensemble member resuming a session
        answers the session's own (replicated) timeout instead, since a resume does not renegotiate it."""
        self._now = now_ms
        node = self.node
        if not self._serving and req.read_only and self.read_only_mode(now_ms):
            return self._connect_read_only(conn, req, passwd)
        if not self._serving or req.last_zxid_seen > node.committed.last_zxid:
            return Connect.REFUSED, 0
        timeout = min(max(req.timeout_ms, self.min_session_timeout_ms), self.max_session_timeout_ms)
        if req.session_id == 0:
            if self.proposer is not None:
                txn = self.proposer.prep_create_session(timeout, passwd, now_ms)
                sid = txn.session_id
                if self._ensemble:
                    self._owners[sid] = self.server_id
                self._propose(txn, None, None)
            else:
                sid = node.sessions.allocate_id()
                self.consensus.forward(F.encode_session(sid, timeout, passwd))
            self._new_sessions[sid] = conn
            self._creating[conn] = sid
            return Connect.PENDING, timeout
        old = self.session_conns.get(req.session_id)
        if old is not None and old is not conn:
            self._ready.deliver.append((DROP, old, None, None))
        sess = node.sessions.get(req.session_id)
        if sess is None or sess.closing or sess.passwd != req.passwd:
            return Connect.INVALID, 0
        if not isinstance(self.consensus, Solo):
            # An ensemble's session table is replicated state (snapshots carry it; a new leader expires
            # by it), so a resume does not renegotiate the timeout its createSession txn carried: the
            # client is told that one, the one it is expired by, and no member's table changes alone.
            # (Scenario C4 found both: a resume on the leader changed only the leader's table, and a
            # client told the timeout it asked for pinged too rarely for the one it had.)
            timeout = sess.timeout_ms
        if self.proposer is None:  # a learner: the leader decides whether the session still lives
            self._revalidating[req.session_id] = (conn, timeout, sess.passwd)
            self.consensus.revalidate(req.session_id, timeout)
            return Connect.PENDING, timeout
        node.sessions.touch(req.session_id, now_ms, timeout)  # (standalone: the resume renegotiates it)
        if self._ensemble:
            self._owners[req.session_id] = self.server_id  # the session moved to the leader itself
        self.session_conns[req.session_id] = conn
        return Connect.ESTABLISHED, timeout

    def read_only_mode(self, now_ms: int) -> bool:
        """Whether this member serves read-only clients now: read-only mode is on and the member has been
        out of broadcast for READ_ONLY_AFTER_MS or a tick, whichever is longer (ZooKeeper waits the same
        before it starts its read-only server, so an ordinary election does not flap clients)."""
        return (self.read_only_enabled and not self._serving
                and now_ms - self._not_serving_since >= max(READ_ONLY_AFTER_MS, self.tick_ms))

    def _connect_read_only(self, conn, req: P.ConnectRequest, passwd: bytes):
        """A read-only session: a new one is local to this member (never replicated, gone with its
        connection); a session the member knows, replicated or read-only, resumes with its password."""
        node = self.node
        timeout = min(max(req.timeout_ms, self.min_session_timeout_ms), self.max_session_timeout_ms)
        if req.session_id == 0:
            sid = node.sessions.allocate_id()
            self._ro_sessions[sid] = passwd
        else:
            sid = req.session_id
            sess = node.sessions.get(sid)
            known = self._ro_sessions.get(sid)
            if sess is not None and not sess.closing and sess.passwd == req.passwd:
                passwd, timeout = sess.passwd, sess.timeout_ms
            elif known is not None and known == req.passwd:
                passwd = known
            else:
                return Connect.INVALID, 0
        self._ro_conns[conn] = sid
        self.read_only_session = (sid, passwd)
        return Connect.READ_ONLY, timeout

    read_only_session: tuple[int, bytes] = (0, b"")

    def accepts_requests(self, session_id: int) -> bool:
        """False once the session is gone or closing: its requests get SESSIONEXPIRED."""
        sess = self.node.sessions.sessions.get(session_id)
        return (sess is not None and not sess.closing) or session_id in self._ro_sessions

    def submit(self, conn, p, now_ms: int) -> None:
        """A client write: decided by the leader (answered once durable and applied, in order)."""
        self._now = now_ms
        if self._ro_conns and conn in self._ro_conns:
            if p.op == _CLOSE_SESSION:  # a read-only session is local: closing it is closing the connection
                self._ready.deliver.append((REPLY, conn, p, (0, b"")))
                self._ready.deliver.append((CLOSE, conn, None, None))
            else:
                self._ready.deliver.append((REPLY, conn, p, (_NOTREADONLY, b"")))
            return
        if self._parked and conn in self._parked:
            self._parked[conn].append((self.submit, p))
            return
        op = p.op
        proposer = self.proposer
        if proposer is not None:
            if self._ensemble and not self._owns(conn.session_id, self.server_id):
                txn = proposer.prep_error(conn.session_id, p.xid, Err.SESSIONMOVED, now_ms)
            else:
                txn = proposer.prep_request(op, p.req, conn.session_id, p.xid, conn.auth, now_ms)
            zxid = self.consensus.propose(T.encode(txn))
            assert zxid == txn.zxid, "the proposer and the consensus core disagree on the next zxid"
            self._inflight.append((txn, conn, p))
        else:
            self.consensus.forward(F.encode_write(conn.session_id, p.xid, op, p.req, conn.auth))
            self._forwarded[(conn.session_id, p.xid)] = (conn, p)
        q = self._queues.get(conn)
        if q is None:
            self._queues[conn] = deque((p,))
        else:
            q.append(p)
        if op == _CLOSE_SESSION:
            sess = self.node.sessions.sessions.get(conn.session_id)
            if sess is not None:
                sess.closing = True

    def read(self, op, req, conn) -> tuple[int, bytes]:
        return self.node.read(op, req, conn)

    def read_after_writes(self, conn, p):
        """A read sent behind writes of the same connection still in flight: answered (REPLY) once the
        last of them is applied.  Returns the answer at once if none is in flight."""
        if self._parked and conn in self._parked:
            self._parked[conn].append((self._read_parked, p))
            return None
        q = self._queues.get(conn)
        if q is None:
            return self.node.read(p.op, p.req, conn)
        q.append(p)
        return None

    def sync(self, conn, p):
        """A client's sync: answered once this server has applied everything the leader decided before it
        (ZooKeeper's guarantee; like ZooKeeper's it is not a quorum round, ZOOKEEPER-1675).  Standalone
        that is everything this server decided, so it is a read behind the connection's writes.  In an
        ensemble, what the connection sends after it waits until it is answered, so a later write of the
        same session can never be applied before the sync's answer is settled.  Returns the answer at once,
        or None (then REPLY follows)."""
        if isinstance(self.consensus, Solo):
            return self.read_after_writes(conn, p)
        if self._ro_conns and conn in self._ro_conns:
            return _NOTREADONLY, b""  # (ZooKeeper's read-only server refuses sync too)
        if self._parked and conn in self._parked:
            self._parked[conn].append((self.sync, p))
            return None
        self._next_sync += 1
        token = self._next_sync
        self._syncs[token] = (conn, p)
        self._parked[conn] = deque()
        self.consensus.sync(token)
        return None

    def _read_parked(self, conn, p, now_ms=None) -> None:
        reply = self.read_after_writes(conn, p)
        if reply is not None:
            self._ready.deliver.append((REPLY, conn, p, reply))

    def _synced(self, tokens) -> None:
        """Syncs the consensus core has settled: answer them, then let their connections go on."""
        for token in tokens:
            entry = self._syncs.pop(token, None)
            if entry is None:
                continue  # its connection was closed
            conn, p = entry
            self._ready.deliver.append((REPLY, conn, p, self.node.read(p.op, p.req, conn)))
            parked = self._parked.pop(conn, None)
            while parked:
                step, q = parked.popleft()
                if step == self.sync:
                    r = self.sync(conn, q)
                    if r is not None:
                        self._ready.deliver.append((REPLY, conn, q, r))
                    if conn in self._parked:  # parked again behind this one: hand it the rest
                        self._parked[conn].extend(parked)
                        break
                else:
                    step(conn, q, self._now)

    def touch(self, session_id: int, now_ms: int) -> None:
        sessions = self.node.sessions
        sessions.touch(session_id, now_ms)
        if self.proposer is None and session_id:  # a learner reports it in its next ping
            sess = sessions.sessions.get(session_id)
            if sess is not None:
                self.consensus.touch(session_id, sess.timeout_ms)

    def connection_closed(self, conn) -> None:
        self.node.watches.remove_watcher(conn)
        if self._ro_conns:
            ro = self._ro_conns.pop(conn, None)
            if ro is not None and ro not in self._ro_conns.values():
                self._ro_sessions.pop(ro, None)
        sid = self._creating.pop(conn, None)
        if sid is not None:
            self._new_sessions.pop(sid, None)
        self._queues.pop(conn, None)
        if self._parked.pop(conn, None) is not None:
            for token in [t for t, (c, _) in self._syncs.items() if c is conn]:
                del self._syncs[token]
        sid = conn.session_id
        if sid and self.session_conns.get(sid) is conn:
            del self.session_conns[sid]

    # ------------------------------------------------------------------ inputs: time and peers
    def tick(self, now_ms: int) -> None:
        """Leader: expire sessions past their deadline (once a tick), reap due containers and TTL nodes."""
        self._now = now_ms
        self.consensus.tick(now_ms)
        proposer = self.proposer
        if proposer is None or self.consensus.next_zxid() is None:
            # The tick may just have ended the peer's leadership (lost quorum: it abdicates); the
            # proposer goes at the next ready(), and until then nothing may be proposed.
            # (Found by the simulator: coordcore sim --mode replica --seed 24 --tolerate I6-SYNC
            # --link-lost-odds 1 raised NotBroadcasting from an expiry's closeSession.)
            return
        ready = self._ready
        if now_ms >= self.next_expiry_ms:
            self.next_expiry_ms = now_ms + self.tick_ms
            for sid in proposer.expired_sessions(now_ms):
                ready.expired.append(sid)
                self._propose(proposer.prep_close_session(sid, now_ms), None, None)
        if now_ms >= self.next_reap_ms:
            self.next_reap_ms = now_ms + self.reap_interval_ms
            for path in proposer.reap_candidates(now_ms):
                txn = proposer.prep_internal_delete(path, now_ms)
                if txn is not None:
                    ready.reaped.append(path)
                    self._propose(txn, None, None)

    def receive(self, from_sid: int, msg, now_ms: int) -> None:
        """A message from a peer (ensemble only)."""
        self._now = now_ms
        self.consensus.receive(from_sid, msg, now_ms)

    def link_lost(self, sid: int, now_ms: int) -> None:
        """The link to peer `sid` broke (ensemble only)."""
        self._now = now_ms
        self.consensus.link_lost(sid, now_ms)

    def persisted(self, zxid: int) -> None:
        """Every append through `zxid` is durable (the consensus core decides what that commits)."""
        self.consensus.persisted(zxid)

    def _owns(self, session_id: int, sid: int) -> bool:
        """Leader: may member `sid` act for this session?  Writes carry their member; a session is owned
        by the member it was created or last revalidated on (or, after an election, the first to act
        for it).  A write from another member is refused with SESSIONMOVED, so a delayed write from a
        connection the client already left cannot change anything (ZOOKEEPER-710)."""
        owner = self._owners.get(session_id)
        if owner is None:
            self._owners[session_id] = sid
            return True
        return owner == sid

    def _peer_services(self, c) -> None:
        """Leader: decide forwarded requests, take touches, judge revalidations; learner: their answers."""
        now = self._now
        node, proposer = self.node, self.proposer
        if proposer is not None:
            for from_sid, payload in c.requests:
                try:
                    fwd = F.decode(payload)
                except ProtocolError as e:
                    self._ready.refused.append((from_sid, str(e)))
                    continue
                if type(fwd) is F.ForwardedSession:
                    self._owners[fwd.session_id] = from_sid
                    self._propose(proposer.prep_create_session(fwd.timeout_ms, fwd.passwd, now,
                                                               session_id=fwd.session_id), None, None)
                elif not self.accepts_requests(fwd.session_id):
                    self._propose(proposer.prep_error(fwd.session_id, fwd.cxid, Err.SESSIONEXPIRED, now), None, None)
                elif not self._owns(fwd.session_id, from_sid):
                    self._propose(proposer.prep_error(fwd.session_id, fwd.cxid, Err.SESSIONMOVED, now), None, None)
                else:
                    self._propose(proposer.prep_request(fwd.op, fwd.req, fwd.session_id, fwd.cxid, fwd.auth, now),
                                  None, None)
                    if fwd.op == P.CLOSE_SESSION:
                        node.sessions.sessions[fwd.session_id].closing = True
            for session_id, timeout_ms in c.touches:
                node.sessions.touch(session_id, now)
            for from_sid, session_id, timeout_ms in c.revalidations:
                valid = self.accepts_requests(session_id)
                if valid:
                    self._owners[session_id] = from_sid  # the session moved to that member
                    # a touch, not a new timeout: the replicated session table keeps the one its
                    # createSession txn carried, so every member's table stays equal
                    node.sessions.touch(session_id, now)
                self.consensus.revalidated(from_sid, session_id, valid)
        for session_id, valid in c.revalidated:
            entry = self._revalidating.pop(session_id, None)
            if entry is None:
                continue
            conn, timeout_ms, passwd = entry
            if valid and self.accepts_requests(session_id):
                self.session_conns[session_id] = conn
                self._ready.deliver.append((SESSION, conn, session_id, (timeout_ms, passwd)))
            else:
                self._ready.deliver.append((INVALID, conn, None, None))

    def _apply(self, applies) -> None:
        """Apply committed, durable txns in zxid order; deliver their events and the replies they owe."""
        inflight = self._inflight
        node = self.node
        apply, reply_body, read = node.apply_committed, node.reply_body, node.read
        queues, forwarded = self._queues, self._forwarded
        deliver = self._ready.deliver
        for zxid, data in applies:
            if inflight and inflight[0][0].zxid == zxid:
                txn, conn, token = inflight.popleft()  # ours: no need to decode what we encoded
            else:
                txn = T.decode(data)
                conn, token = forwarded.pop((txn.session_id, txn.cxid), _NOBODY) if forwarded else _NOBODY
            result = apply(txn)
            t = txn.type
            if t < 0 and t != _T_ERROR:
                self._session_txn_applied(txn, conn)
            if conn is None:
                continue
            q = queues.get(conn)
            if q is None or q[0] is not token:
                # An earlier request of this connection never became a txn: a learner's forward was
                # lost with a broken link to the leader that the peer has not noticed yet.  Answering
                # this one would reorder the connection's replies, so close it instead: the client
                # sees a connection loss for everything in flight, which is what ZooKeeper gives.
                # (Found by the simulator: coordcore sim --mode replica --seed 78 --voters 5
                # --link-lost-odds 1 answered xid 7 before xids 5 and 6.)
                if q is not None:
                    self._abandon(conn)
                continue
            deliver.append((REPLY, conn, token, reply_body(token.op, token.req, txn, result)))
            if t == _T_CLOSE_SESSION or (t == _T_ERROR and txn.body[0] == _SESSIONMOVED):
                # a moved session's old connection is closed once told (ZooKeeper does the same)
                deliver.append((CLOSE, conn, None, None))
            q.popleft()  # this write; the reads sent after it see the tree as it is now
            if q:
                while q and not q[0].is_write:
                    r = q.popleft()
                    deliver.append((REPLY, conn, r, read(r.op, r.req, conn)))
            if not q:
                del queues[conn]
        if self.proposer is not None:
            self.proposer.applied(applies[-1][0])

    def _session_txn_applied(self, txn: T.Txn, conn) -> None:
        """A createSession or closeSession applied: bind the new session, or close what was bound to it."""
        deliver = self._ready.deliver
        if txn.type == _T_CLOSE_SESSION:
            self._owners.pop(txn.session_id, None)
            bound = self.session_conns.pop(txn.session_id, None)
            if bound is not None and bound is not conn:
                deliver.append((CLOSE, bound, None, None))
        elif self._new_sessions:
            waiting = self._new_sessions.pop(txn.session_id, None)
            if waiting is not None:  # (else its connection closed meanwhile, or it is not ours)
                del self._creating[waiting]
                self.session_conns[txn.session_id] = waiting
                deliver.append((SESSION, waiting, txn.session_id, txn.body))

    def _abandon(self, conn) -> None:
        """Drop a connection whose replies can no longer come in order; forget what it has in flight."""
        self._ready.deliver.append((DROP, conn, None, None))
        self._queues.pop(conn, None)
        for key in [k for k, (c, _) in self._forwarded.items() if c is conn]:
            del self._forwarded[key]


_NOBODY = (None, None)
_T_ERROR, _T_CLOSE_SESSION, _CLOSE_SESSION = T.T_ERROR, T.T_CLOSE_SESSION, P.CLOSE_SESSION
_SESSIONMOVED = int(Err.SESSIONMOVED)
_NOTREADONLY = int(Err.NOTREADONLY)
READ_ONLY_AFTER_MS = 2000  # out of broadcast this long before serving read-only clients (as ZooKeeper)
READY_ROUNDS_MAX = 4  # consensus Readies folded into one replica Ready (proposals made while handling one)
