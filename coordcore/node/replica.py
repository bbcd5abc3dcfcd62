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
    replica.touch(session_id, now_ms)               any packet on a session keeps it alive
    replica.connection_closed(conn)                 the host lost a connection: drop its watches and bindings
    replica.tick(now_ms)                            session expiry (once a tick), container/TTL reaping (its interval)
    replica.persisted(zxid)                         every append through zxid is durable (fsynced)

Output, ``ready = replica.ready()`` (take it after any input; it holds what accumulated since)::

    ready.writes    storage actions in order (zab.ready: Append, and in an ensemble the epoch, truncate
                    and snapshot writes): append, sync, then persisted(last appended zxid)
    ready.messages  [(to sid, message)] for the peers (none when standalone)
    ready.deliver   [(kind, conn, a, b)]  in exactly this order:
                      EVENT    a watch notification        a = event type, b = path
                      REPLY    the answer to a request     a = reply token p, b = (err, body)
                      SESSION  a new session is ready      a = session id, b = (timeout ms, passwd)
                      CLOSE    close once what is queued on conn is flushed
                      DROP     close at once, reading nothing more (its session moved to another connection)
    ready.expired   session ids whose expiry this turn decided (for the host's log)
    ready.reaped    paths of containers/TTL nodes whose deletion this turn decided

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

from coordcore.node.node import Node
from coordcore.node.proposer import Proposer
from coordcore.storage.api import DurableState
from coordcore.tree import txn as T
from coordcore.wire import proto as P
from coordcore.zab.solo import Solo

EVENT, REPLY, SESSION, CLOSE, DROP = "event", "reply", "session", "close", "drop"


class Connect(IntEnum):
    """What a client handshake comes to."""
    REFUSED = 0       # the client has seen a newer zxid than this server: close, it will try another
    INVALID = 1       # unknown, closing or expired session, or a wrong password: answer 0/0, then close
    ESTABLISHED = 2   # a session resumed: answer with (session id, timeout, passwd) now
    PENDING = 3       # a new session is being created: SESSION is delivered once it is durable


@dataclass(slots=True)
class Ready:
    writes: list = field(default_factory=list)
    messages: list = field(default_factory=list)
    deliver: list = field(default_factory=list)
    expired: list = field(default_factory=list)
    reaped: list = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.writes or self.messages or self.deliver or self.expired or self.reaped)


_NEW_SESSION = object()  # the reply token of a createSession txn


class Replica:
    def __init__(self, *, state: DurableState, now_ms: int, tick_ms: int, server_id: int,
                 min_session_timeout_ms: int, max_session_timeout_ms: int, reap_interval_ms: int,
                 extended_types: bool = False, super_digest: str | None = None, enforce_quota: bool = False,
                 reconfig_enabled: bool = False):
        self.node = node = Node(tick_ms=tick_ms, server_id=server_id, state=state, now_ms=now_ms)
        node.set_notify(self._notify)
        self.consensus = Solo(node.last_applied)
        self.proposer = Proposer(node.committed, node.sessions, epoch=self.consensus.epoch,
                                 last_zxid=node.last_applied, extended_types=extended_types,
                                 super_digest=super_digest, enforce_quota=enforce_quota,
                                 reconfig_enabled=reconfig_enabled)
        self.min_session_timeout_ms = min_session_timeout_ms
        self.max_session_timeout_ms = max_session_timeout_ms
        self.tick_ms = tick_ms
        self.reap_interval_ms = reap_interval_ms
        self.next_expiry_ms = now_ms + tick_ms  # sessions are checked once a tick, reaping once an interval
        self.next_reap_ms = now_ms + reap_interval_ms
        self.session_conns: dict[int, object] = {}   # session id -> the connection it is bound to
        self._creating: dict[object, int] = {}       # connection -> zxid of its pending createSession
        self._inflight: deque = deque()              # (txn, conn, token) this replica proposed, not applied
        self._queues: dict[object, deque] = {}       # connection -> its writes in flight and the reads behind them
        self._ready = Ready()

    # ------------------------------------------------------------------ outputs
    def ready(self) -> Ready:
        c = self.consensus.ready()
        if c.applies:
            self._apply(c.applies)
        r = self._ready
        self._ready = Ready()
        r.writes = c.writes
        r.messages = c.messages
        return r

    @property
    def unlogged(self) -> int:
        """Txns decided since the last ready(): the host's group commit waits a turn while this grows."""
        return len(self.consensus.out.writes)

    @property
    def last_applied(self) -> int:
        return self.node.committed.last_zxid

    def _notify(self, conn, event_type, path) -> None:
        self._ready.deliver.append((EVENT, conn, event_type, path))

    def _propose(self, txn: T.Txn, conn, token) -> None:
        zxid = self.consensus.propose(T.encode(txn))
        assert zxid == txn.zxid, "the proposer and the consensus core disagree on the next zxid"
        self._inflight.append((txn, conn, token))

    # ------------------------------------------------------------------ inputs: clients
    def connect(self, conn, req: P.ConnectRequest, passwd: bytes, now_ms: int):
        """Judge a handshake.  Returns (Connect, timeout ms); `passwd` is fresh randomness for a new session."""
        node = self.node
        if req.last_zxid_seen > node.committed.last_zxid:
            return Connect.REFUSED, 0
        timeout = min(max(req.timeout_ms, self.min_session_timeout_ms), self.max_session_timeout_ms)
        if req.session_id == 0:
            txn = self.proposer.prep_create_session(timeout, passwd, now_ms)
            self._creating[conn] = txn.zxid
            self._propose(txn, conn, _NEW_SESSION)
            return Connect.PENDING, timeout
        old = self.session_conns.get(req.session_id)
        if old is not None and old is not conn:
            self._ready.deliver.append((DROP, old, None, None))
        sess = node.sessions.get(req.session_id)
        if sess is None or sess.closing or sess.passwd != req.passwd:
            return Connect.INVALID, 0
        node.sessions.touch(req.session_id, now_ms, timeout)
        self.session_conns[req.session_id] = conn
        return Connect.ESTABLISHED, timeout

    def accepts_requests(self, session_id: int) -> bool:
        """False once the session is gone or closing: its requests get SESSIONEXPIRED."""
        sess = self.node.sessions.sessions.get(session_id)
        return sess is not None and not sess.closing

    def submit(self, conn, p, now_ms: int) -> None:
        """A client write: decided now (answered once durable and applied, in submission order)."""
        op = p.op
        txn = self.proposer.prep_request(op, p.req, conn.session_id, p.xid, conn.auth, now_ms)
        self._propose(txn, conn, p)
        q = self._queues.get(conn)
        if q is None:
            self._queues[conn] = deque((p,))
        else:
            q.append(p)
        if op == P.CLOSE_SESSION:
            sess = self.node.sessions.sessions.get(conn.session_id)
            if sess is not None:
                sess.closing = True

    def read(self, op, req, conn) -> tuple[int, bytes]:
        return self.node.read(op, req, conn)

    def read_after_writes(self, conn, p):
        """A read sent behind writes of the same connection still in flight: answered (REPLY) once the
        last of them is applied.  Returns the answer at once if none is in flight."""
        q = self._queues.get(conn)
        if q is None:
            return self.node.read(p.op, p.req, conn)
        q.append(p)
        return None

    def touch(self, session_id: int, now_ms: int) -> None:
        self.node.sessions.touch(session_id, now_ms)

    def connection_closed(self, conn) -> None:
        self.node.watches.remove_watcher(conn)
        self._creating.pop(conn, None)
        self._queues.pop(conn, None)
        sid = conn.session_id
        if sid and self.session_conns.get(sid) is conn:
            del self.session_conns[sid]

    # ------------------------------------------------------------------ inputs: time
    def tick(self, now_ms: int) -> None:
        """Expire sessions past their deadline; reap due containers and TTL nodes when the interval is up."""
        proposer = self.proposer
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

    # ------------------------------------------------------------------ inputs: durability
    def persisted(self, zxid: int) -> None:
        """Every append through `zxid` is durable (the consensus core decides what that commits)."""
        self.consensus.persisted(zxid)

    def _apply(self, applies) -> None:
        """Apply committed, durable txns in zxid order; deliver their events and the replies they owe."""
        inflight = self._inflight
        node = self.node
        apply, reply_body, read = node.apply_committed, node.reply_body, node.read
        queues = self._queues
        deliver = self._ready.deliver
        for zxid, data in applies:
            if inflight and inflight[0][0].zxid == zxid:
                txn, conn, token = inflight.popleft()  # ours: no need to decode what we encoded
            else:
                txn, conn, token = T.decode(data), None, None
            result = apply(txn)
            t = txn.type
            if t == T.T_CLOSE_SESSION:
                bound = self.session_conns.pop(txn.session_id, None)
                if bound is not None and bound is not conn:
                    deliver.append((CLOSE, bound, None, None))
            if conn is None:
                continue
            if token is _NEW_SESSION:
                if self._creating.get(conn) == txn.zxid:  # else the connection closed meanwhile
                    del self._creating[conn]
                    self.session_conns[txn.session_id] = conn
                    deliver.append((SESSION, conn, txn.session_id, txn.body))
                continue
            deliver.append((REPLY, conn, token, reply_body(token.op, token.req, txn, result)))
            if t == T.T_CLOSE_SESSION:
                deliver.append((CLOSE, conn, None, None))
            q = queues.get(conn)
            if q is not None:
                q.popleft()  # this write; the reads sent after it see the tree as it is now
                while q and not q[0].is_write:
                    r = q.popleft()
                    deliver.append((REPLY, conn, r, read(r.op, r.req, conn)))
                if not q:
                    del queues[conn]
        if self.proposer is not None:
            self.proposer.applied(applies[-1][0])
