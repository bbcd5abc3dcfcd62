"""ScriptClient: a ZooKeeper client handle that a scripted scenario drives packet by packet.

``Script(mode="replica")`` runs real Replicas; this is the client a test puts in front of them.  Each
method is one thing a client sends -- a handshake to a named server (new session or resume, carrying
the last zxid it saw), a write, a read (with or without a watch), a ``sync``, a ping -- and every
thing the server delivers back is recorded in arrival order in ``seen``: ``("event", type, path)``,
``("reply", xid, err)``, ``("session", id)``, ``("invalid",)``, ``("lost", why)``.  A test asserts on
that order (a watch event before the read reply that shows the change) and on ``replies[xid]``.

Like the seeded simulator's clients it checks as it goes: replies on one connection in the order sent
(ORDER), the zxid of each reply never below one it saw before (CZXID), and every answered write is
reported to the checker (ACKQ: only after a quorum holds its txn; LOST: it must survive).  Nothing here
acts by chance and nothing reconnects by itself: after a ``lost`` the test decides what comes next.
"""
from __future__ import annotations

from dataclasses import dataclass

from coordcore import zxid as zx
from coordcore.errors import Err
from coordcore.node.replica import Connect
from coordcore.testing.sim.checker import Violation
from coordcore.testing.sim.replica_clients import OPEN, SimConn, Token, check_reply_order
from coordcore.wire import proto as P
from coordcore.wire.jute import Reader

NO_PASSWD = b"\x00" * 16


@dataclass(frozen=True, slots=True)
class Reply:
    err: int
    body: bytes
    zxid: int       # the server's applied zxid when it answered (the reply header's zxid)
    sid: int        # the server that answered

    def data(self) -> bytes | None:
        """The node data of a getData reply."""
        return Reader(self.body).buffer()


class ScriptClient:
    def __init__(self, script, name: str, timeout_ms: int) -> None:
        self.script = script
        self.sim = script.sim
        self.name = name
        self.sim.client_seq += 1
        self.ip = f"10.1.0.{self.sim.client_seq}"
        self.timeout_ms = timeout_ms   # what it asks for in a handshake
        self.negotiated_ms = 0         # what the server answered it has (a real client pings at a third)
        self.session_id = 0
        self.passwd = NO_PASSWD
        self.last_zxid = 0
        self.xid = 0
        self.conn: SimConn | None = None
        self.outstanding: list[Token] = []
        self.replies: dict[int, Reply] = {}
        self.seen: list[tuple] = []
        self.events: list[tuple[int, str, int]] = []   # (event type, path, server) in arrival order

    # -- what the client sends

    def connect(self, sid: int) -> Connect:
        """Handshake with server `sid`: a new session, or a resume of the one it has."""
        sim = self.sim
        if self.conn is not None:
            self.close_conn()
        sim.conn_seq += 1
        conn = SimConn(self, sid, sim.conn_seq)
        self.conn = conn
        req = P.ConnectRequest(0, self.last_zxid, self.timeout_ms, self.session_id, self.passwd, False, True)
        host = self.script.host(sid)
        decision, timeout_ms = host.client_connect(self, conn, req, sim.rng.randbytes(16))
        sim.log(f"client {self.name} connect -> {sid} session={self.session_id:#x} "
                f"last_zxid={zx.fmt(self.last_zxid)}: {decision.name}")
        if decision is Connect.REFUSED:
            conn.open = False
            self.conn = None
        elif decision is Connect.INVALID:
            self.session_invalid(conn)
            host.client_closed(conn)
            conn.open = False
        elif decision is Connect.ESTABLISHED:
            conn.waiting = False
            conn.session_id = self.session_id
            self.negotiated_ms = timeout_ms
        return decision

    @property
    def ready(self) -> bool:
        """Connected with its session established."""
        return self.conn is not None and self.conn.open and not self.conn.waiting

    def request(self, op: int, req) -> int:
        """Send a request on the current connection; returns its xid (see replies[xid])."""
        assert self.ready, f"client {self.name} has no established connection"
        self.xid += 1
        token = Token(op, req, self.xid, op in P.WRITE_OPS)
        self.outstanding.append(token)
        self.sim.log(f"client {self.name} -> {self.conn.sid} xid={self.xid} {P.OP_NAMES.get(op, op)} {req!r}"[:300])
        self.script.host(self.conn.sid).client_request(self.conn, token)
        return token.xid

    def create(self, path: str, data: bytes = b"", flags: int = 0) -> int:
        return self.request(P.CREATE, P.Create(path, data, OPEN, flags, -1))

    def set_data(self, path: str, data: bytes, version: int = -1) -> int:
        return self.request(P.SET_DATA, P.SetData(path, data, version))

    def delete(self, path: str, version: int = -1) -> int:
        return self.request(P.DELETE, P.PathVersion(path, version))

    def get_data(self, path: str, watch: bool = False) -> int:
        return self.request(P.GET_DATA, P.PathWatch(path, watch))

    def exists(self, path: str, watch: bool = False) -> int:
        return self.request(P.EXISTS, P.PathWatch(path, watch))

    def close_session(self) -> int:
        return self.request(P.CLOSE_SESSION, P.EMPTY)

    def sync(self, path: str = "/") -> int:
        assert self.ready, f"client {self.name} has no established connection"
        self.xid += 1
        token = Token(P.SYNC, P.PathOnly(path), self.xid, False)
        self.outstanding.append(token)
        self.sim.log(f"client {self.name} -> {self.conn.sid} xid={self.xid} sync {path}")
        self.script.host(self.conn.sid).client_sync(self.conn, token)
        return token.xid

    def ping(self) -> None:
        if self.ready:
            self.script.host(self.conn.sid).client_touch(self.conn)

    def close_conn(self) -> None:
        """Close the connection (the session lives on until it expires or is resumed)."""
        conn, self.conn, self.outstanding = self.conn, None, []
        if conn is not None and conn.open:
            conn.open = False
            self.script.host(conn.sid).client_closed(conn)

    # -- what the server delivers (ReplicaHost calls these)

    def session_ready(self, conn: SimConn, session_id: int, timeout_ms: int, passwd: bytes) -> None:
        assert conn is self.conn, f"client {self.name}: session set up on a connection it left"
        if self.session_id and self.session_id != session_id:
            raise Violation("REPLICA", f"client {self.name} resumed {self.session_id:#x} but got {session_id:#x}")
        self.session_id = conn.session_id = session_id
        self.passwd = passwd
        self.negotiated_ms = timeout_ms
        conn.waiting = False
        self.seen.append(("session", session_id))

    def session_invalid(self, conn: SimConn) -> None:
        self.seen.append(("invalid",))
        self.session_id, self.passwd = 0, NO_PASSWD
        if self.conn is conn:
            self.conn, self.outstanding = None, []

    def lost(self, conn: SimConn, why: str) -> None:
        conn.open = False
        if self.conn is conn:
            self.seen.append(("lost", why))
            self.conn, self.outstanding = None, []

    def event(self, conn: SimConn, event_type: int, path: str) -> None:
        if conn is self.conn:
            self.seen.append(("event", event_type, path))
            self.events.append((event_type, path, conn.sid))

    def replied(self, conn: SimConn, token: Token, answer, zxid: int, txn, host) -> None:
        if conn is not self.conn:
            return  # a reply on a connection the client left is never read
        self.last_zxid = check_reply_order(self.name, conn, token, self.outstanding, self.last_zxid, zxid)
        err, body = answer
        if txn is not None:
            self.sim.checker.client_acked(host.sid, txn[0], txn[1], self.sim.disks)
        self.replies[token.xid] = Reply(int(err), body, zxid, conn.sid)
        self.seen.append(("reply", token.xid, int(err)))
        self.sim.log(f"client {self.name} <- {conn.sid} xid={token.xid} err={err} zxid={zx.fmt(zxid)}")
        if err == Err.SESSIONEXPIRED:
            self.session_invalid(conn)
            host.client_closed(conn)
            conn.open = False
        elif token.op == P.CLOSE_SESSION:
            self.session_id, self.passwd = 0, NO_PASSWD
