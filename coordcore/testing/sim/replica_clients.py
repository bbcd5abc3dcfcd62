"""Simulated ZooKeeper clients for replica mode: sessions, writes of every kind, reads, reconnects.

Each :class:`SimClient` is one ZooKeeper client handle: it connects to a server (a ConnectRequest
carrying its session id, password and the last zxid it saw), then sends writes -- create in every
mode (persistent, ephemeral, sequential, ephemeral sequential, container, TTL), setData and delete
with and without versions, multi -- and reads (getData, exists, getChildren, some setting watches),
pings, syncs, closes its session, and moves to another server with its session (resume) when its server
crashes, stops serving or simply at random.  A new session starts when the old one turns out
invalid (expired or closed).

What every client checks as it goes (the checker's client invariants):

* CZXID  the zxid in a reply header (the server's applied zxid at delivery) never goes backwards
         for a client, across reconnects: a server whose tree is behind must refuse the handshake.
* ORDER  replies on one connection come in the order the requests were sent.
* ACKQ   a write is answered only once a quorum of voters durably holds its txn.
* every write answered is recorded as acknowledged (with its zxid and txn bytes), so the checker's
  LOST rule (every acknowledged write is in the converged history of every server) covers it.

The client<->server link has no latency or loss: a request reaches the server at once and a reply
reaches the client when the server delivers it.  All choices come from the simulation's one rng.
"""
from __future__ import annotations

from coordcore import zxid as zx
from coordcore.errors import Err
from coordcore.node.acl import AuthInfo
from coordcore.node.replica import Connect
from coordcore.testing.sim.checker import Violation
from coordcore.wire import proto as P

OPEN = [(31, "world", "anyone")]
MAX_OUTSTANDING = 3
PATHS = ("/a", "/b", "/c", "/a/x", "/a/y", "/b/z")
# (opcode, flags): every create mode.  0 persistent, 1 ephemeral, 2 persistent sequential,
# 3 ephemeral sequential, 4 container, 5 persistent with TTL, 6 persistent sequential with TTL.
CREATE_MODES = ((P.CREATE, 0), (P.CREATE, 1), (P.CREATE, 2), (P.CREATE, 3), (P.CREATE2, 0), (P.CREATE2, 1),
                (P.CREATE_CONTAINER, 4), (P.CREATE_TTL, 5), (P.CREATE_TTL, 6))
READS = (P.GET_DATA, P.EXISTS, P.GET_CHILDREN, P.GET_CHILDREN2)


class SimConn:
    """One client connection to one server: what the Replica sees as `conn`."""
    __slots__ = ("client", "sid", "cid", "session_id", "auth", "watches", "open", "waiting", "last_xid",
                 "__weakref__")

    def __init__(self, client: "SimClient", sid: int, cid: int) -> None:
        self.client = client
        self.sid = sid
        self.cid = cid
        self.session_id = 0
        self.auth = AuthInfo(client.ip)
        self.watches = set()
        self.open = True
        self.waiting = True       # handshake not answered yet
        self.last_xid = 0         # of the last reply on this connection (ORDER)


class Token:
    """A request in flight: the reply token the Replica hands back."""
    __slots__ = ("op", "req", "xid", "is_write")

    def __init__(self, op: int, req, xid: int, is_write: bool) -> None:
        self.op, self.req, self.xid, self.is_write = op, req, xid, is_write


class SimClient:
    def __init__(self, sim, n: int) -> None:
        self.sim = sim
        self.n = n
        self.ip = f"10.0.0.{n + 1}"
        self.session_id = 0
        self.passwd = b"\x00" * 16
        tick = sim.cfg.tick_ms
        self.timeout_ms = sim.rng.choice((5, 10, 15)) * tick
        self.xid = 0
        self.last_zxid = 0
        self.conn: SimConn | None = None
        self.outstanding: list[Token] = []
        self.acked_ok = 0

    def log(self, text: str) -> None:
        self.sim.log(f"client {self.n} {text}")

    # -- the client's moves

    def act(self) -> None:
        sim = self.sim
        rng = sim.rng
        conn = self.conn
        if conn is None:
            return self.connect()
        host = sim.hosts[conn.sid]
        if host.paused_until > sim.now:
            return  # its server reads nothing now; the request would wait in the socket
        if conn.waiting:
            if rng.random() < 0.3:
                self.close_conn("gives up waiting for its session")
            return
        roll = rng.random()
        if roll < 0.04:
            self.close_conn("moves to another server")
            self.connect()
        elif roll < 0.07:
            self.request(P.CLOSE_SESSION, P.EMPTY, True)
        elif roll < 0.12:
            host.client_touch(conn)
        elif roll < 0.15:
            # sync: answered once this member applied what the leader had decided before it; what the
            # session sends meanwhile waits (Replica.sync).  Its reply must keep the order and zxid rules.
            self.request(P.SYNC, P.PathOnly(rng.choice(PATHS)), False)
        elif roll < 0.35:
            op = rng.choice(READS)
            self.request(op, P.PathWatch(rng.choice(PATHS), rng.random() < 0.3), False)
        else:
            self.request(*self.random_write(), True)

    def random_write(self) -> tuple[int, object]:
        rng = self.sim.rng
        kind = rng.random()
        if kind < 0.4:
            return self._create()
        if kind < 0.65:
            return P.SET_DATA, P.SetData(rng.choice(PATHS), b"d%d.%d" % (self.n, self.xid + 1),
                                         -1 if rng.random() < 0.5 else rng.randint(0, 3))
        if kind < 0.85:
            return P.DELETE, P.PathVersion(rng.choice(PATHS), -1 if rng.random() < 0.5 else rng.randint(0, 2))
        ops = []
        for _ in range(rng.randint(2, 3)):
            r = rng.random()
            if r < 0.4:
                op, req = self._create(multi=True)
            elif r < 0.7:
                op, req = P.SET_DATA, P.SetData(rng.choice(PATHS), b"m%d" % self.n, -1)
            elif r < 0.85:
                op, req = P.DELETE, P.PathVersion(rng.choice(PATHS), -1)
            else:
                op, req = P.CHECK, P.PathVersion(rng.choice(PATHS), rng.randint(-1, 1))
            ops.append((op, req))
        return P.MULTI, P.Multi(ops)

    def _create(self, multi: bool = False) -> tuple[int, object]:
        rng = self.sim.rng
        op, flags = rng.choice(CREATE_MODES[:4] if multi else CREATE_MODES)
        ttl = rng.randint(200, 3000) if op == P.CREATE_TTL else -1
        return op, P.Create(rng.choice(PATHS), b"c%d.%d" % (self.n, self.xid + 1), OPEN, flags, ttl)

    def connect(self) -> None:
        sim = self.sim
        up = [s for s in sim.sids if sim.hosts[s].up and sim.hosts[s].paused_until <= sim.now]
        if not up:
            return
        sid = sim.rng.choice(up)
        sim.conn_seq += 1
        conn = SimConn(self, sid, sim.conn_seq)
        self.conn = conn
        req = P.ConnectRequest(0, self.last_zxid, self.timeout_ms, self.session_id, self.passwd, False, True)
        decision, _ = sim.hosts[sid].client_connect(self, conn, req, sim.rng.randbytes(16))
        self.log(f"connect -> {sid} session={self.session_id:#x} last_zxid={zx.fmt(self.last_zxid)}: "
                 f"{decision.name}")
        sim.count("connect_" + decision.name.lower())
        if decision is Connect.REFUSED:
            conn.open = False
            self.conn = None
        elif decision is Connect.INVALID:
            self.session_invalid(conn)
            sim.hosts[sid].client_closed(conn)
            conn.open = False
        elif decision is Connect.ESTABLISHED:
            conn.waiting = False
            conn.session_id = self.session_id

    def close_conn(self, why: str) -> None:
        conn = self.conn
        self.log(f"closes its connection to {conn.sid} ({why})")
        self.conn = None
        self.outstanding = []
        if conn.open:
            conn.open = False
            self.sim.hosts[conn.sid].client_closed(conn)

    def request(self, op: int, req, is_write: bool) -> None:
        if len(self.outstanding) >= MAX_OUTSTANDING:
            return
        conn = self.conn
        host = self.sim.hosts[conn.sid]
        if self.outstanding and not host.replica.accepts_requests(conn.session_id):
            return  # the server would queue its SESSIONEXPIRED behind the replies in flight
        self.xid += 1
        token = Token(op, req, self.xid, is_write)
        self.outstanding.append(token)
        if self.sim.trace is not None:
            self.log(f"-> {conn.sid} xid={self.xid} {P.OP_NAMES.get(op, op)} {_req_text(req)}")
        host.client_request(conn, token)

    # -- what the server delivers

    def session_ready(self, conn: SimConn, session_id: int, timeout_ms: int, passwd: bytes) -> None:
        if conn is not self.conn:
            raise Violation("REPLICA", f"client {self.n}: session {session_id:#x} set up on a connection it "
                                       f"no longer uses")
        if self.session_id and self.session_id != session_id:
            raise Violation("REPLICA", f"client {self.n} resumed session {self.session_id:#x} but got "
                                       f"{session_id:#x}")
        self.session_id = conn.session_id = session_id
        self.passwd = passwd
        conn.waiting = False
        self.log(f"session {session_id:#x} ready on {conn.sid} (timeout {timeout_ms} ms)")

    def session_invalid(self, conn: SimConn) -> None:
        self.log(f"session {self.session_id:#x} invalid on {conn.sid}: starts a new one")
        self.sim.count("session_invalid")
        self.session_id = 0
        self.passwd = b"\x00" * 16
        if self.conn is conn:
            self.conn = None
            self.outstanding = []

    def lost(self, conn: SimConn, why: str) -> None:
        conn.open = False
        if self.conn is conn:
            self.log(f"lost its connection to {conn.sid} ({why})")
            self.conn = None
            self.outstanding = []

    def replied(self, conn: SimConn, token: Token, answer, zxid: int, txn, host) -> None:
        sim = self.sim
        err, _ = answer
        if conn is not self.conn:
            return  # a reply on a connection the client already left is never read
        self.last_zxid = check_reply_order(self.n, conn, token, self.outstanding, self.last_zxid, zxid)
        if txn is not None:
            z, t = txn
            sim.checker.client_acked(host.sid, z, t, sim.disks)
            if err == 0:
                self.acked_ok += 1
        if sim.trace is not None:
            self.log(f"<- {conn.sid} xid={token.xid} err={err} zxid={zx.fmt(zxid)}"
                     + (f" txn={zx.fmt(txn[0])}" if txn else ""))
        if err == Err.SESSIONEXPIRED:
            self.session_invalid(conn)
            host.client_closed(conn)
            conn.open = False
        elif token.op == P.CLOSE_SESSION:
            self.log(f"closed session {self.session_id:#x}")
            self.session_id = 0
            self.passwd = b"\x00" * 16


def check_reply_order(name, conn: SimConn, token: Token, outstanding, last_zxid: int, zxid: int) -> int:
    """A client's checks on every reply it reads: replies in the order it sent (ORDER), its zxid never
    going back (CZXID).  Takes the token off `outstanding`; returns the client's new last zxid."""
    if token.xid <= conn.last_xid or token not in outstanding:
        raise Violation("ORDER", f"client {name} on {conn.sid}: reply to xid {token.xid} after xid "
                                 f"{conn.last_xid}, or to a request it did not send")
    conn.last_xid = token.xid
    outstanding.remove(token)
    if zxid < last_zxid:
        raise Violation("CZXID", f"client {name} saw zxid {zx.fmt(last_zxid)}, then server {conn.sid} "
                                 f"answers xid {token.xid} at {zx.fmt(zxid)}")
    return zxid


class Workload:
    """The clients of one run; the simulator's "client" events pick one of them to act."""

    def __init__(self, sim) -> None:
        self.sim = sim
        self.clients = [SimClient(sim, n) for n in range(sim.rng.randint(3, 5))]

    def next_interval_ms(self) -> int:
        # Busier than zab mode's opaque writer: several clients, each acting every ~100 ms on average.
        return self.sim.rng.randint(2, 40)

    def step(self) -> None:
        self.sim.rng.choice(self.clients).act()

    def final_check(self) -> None:
        sim = self.sim
        last = max(h.replica.last_applied for h in sim.hosts.values())
        for c in self.clients:
            if c.last_zxid > last:
                raise Violation("CZXID", f"client {c.n} saw zxid {zx.fmt(c.last_zxid)}, beyond every converged "
                                         f"server ({zx.fmt(last)})")


def _req_text(req) -> str:
    return repr(req)[:120]
