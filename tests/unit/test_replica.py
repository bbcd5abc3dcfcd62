"""The Replica's step API, driven by hand as a host would: inputs in, Ready out.

These are the obligations serve.py relies on, checked without sockets, threads or a clock: nothing
is delivered before persisted() covers it, a txn's watch events come before its reply, a read sent
behind a write sees exactly that write, and the handshake and session decisions are the replica's.
"""
from __future__ import annotations

from coordcore.node.acl import AuthInfo
from coordcore.node.replica import CLOSE, DROP, EVENT, REPLY, SESSION, Connect, Replica
from coordcore.storage.api import DurableState
from coordcore.tree import txn as T
from coordcore.tree.watches import NODE_DATA_CHANGED
from coordcore.wire import proto as P
from coordcore.wire.jute import Reader

OPEN = [(31, "world", "anyone")]
T0 = 1_700_000_000_000


class Conn:
    def __init__(self):
        self.session_id = 0
        self.auth = AuthInfo("127.0.0.1")
        self.watches = set()


class Token:
    def __init__(self, op, req, xid, is_write):
        self.op, self.req, self.xid, self.is_write = op, req, xid, is_write


def replica(state=None, **kw):
    args = dict(state=state or DurableState(), now_ms=T0, tick_ms=100, server_id=1,
                min_session_timeout_ms=200, max_session_timeout_ms=2000, reap_interval_ms=1000)
    args.update(kw)
    return Replica(**args)


def persist(r):
    """What the host does with a Ready: append its txns, sync, report; returns (log, next Ready)."""
    ready = r.ready()
    if ready.writes:
        r.persisted(ready.writes[-1].zxid)
    return ready.writes, r.ready()


def open_session(r, timeout=1000):
    conn = Conn()
    decision, got = r.connect(conn, P.ConnectRequest(0, 0, timeout, 0, b"\x00" * 16, False, True), b"p" * 16, T0)
    assert decision is Connect.PENDING
    appends, ready = persist(r)
    assert [k for k, *_ in ready.deliver] == [SESSION]
    _, c, sid, (tmo, passwd) = ready.deliver[0]
    assert c is conn and tmo == got and passwd == b"p" * 16
    conn.session_id = sid
    return conn


def test_a_write_is_delivered_only_after_it_is_persisted():
    r = replica()
    conn = open_session(r)
    p = Token(P.CREATE, P.Create("/a", b"x", OPEN, 0, -1), 1, True)
    r.submit(conn, p, T0)
    ready = r.ready()
    assert [T.decode(w.txn).body[0] for w in ready.writes] == ["/a"]
    assert ready.deliver == []            # decided, logged, but not durable: nothing said yet
    assert r.read(P.EXISTS, P.PathWatch("/a", False), conn)[0] != 0  # and not visible to reads
    r.persisted(ready.writes[0].zxid)
    ready = r.ready()
    assert [(k, c, t) for k, c, t, _ in ready.deliver] == [(REPLY, conn, p)]
    assert ready.deliver[0][3][0] == 0
    assert r.read(P.EXISTS, P.PathWatch("/a", False), conn)[0] == 0


def test_persisted_commits_only_up_to_the_zxid_it_names():
    r = replica()
    conn = open_session(r)
    tokens = [Token(P.CREATE, P.Create("/n%d" % i, b"", OPEN, 0, -1), i, True) for i in range(3)]
    for t in tokens:
        r.submit(conn, t, T0)
    writes = r.ready().writes
    r.persisted(writes[1].zxid)
    assert [t for _, _, t, _ in r.ready().deliver] == tokens[:2]
    r.persisted(writes[2].zxid)
    assert [t for _, _, t, _ in r.ready().deliver] == tokens[2:]


def test_watch_events_come_before_the_reply_that_reveals_the_change():
    r = replica()
    writer, watcher = open_session(r), open_session(r)
    r.submit(writer, Token(P.CREATE, P.Create("/w", b"", OPEN, 0, -1), 1, True), T0)
    persist(r)
    assert r.read(P.GET_DATA, P.PathWatch("/w", True), watcher)[0] == 0
    p = Token(P.SET_DATA, P.SetData("/w", b"new", -1), 2, True)
    r.submit(writer, p, T0)
    _, ready = persist(r)
    assert [(k, c, a, b) for k, c, a, b in ready.deliver][0] == (EVENT, watcher, NODE_DATA_CHANGED, "/w")
    assert [(k, c) for k, c, *_ in ready.deliver][1:] == [(REPLY, writer)]


def test_a_read_behind_a_write_sees_that_write_and_no_later_one():
    r = replica()
    conn = open_session(r)
    r.submit(conn, Token(P.CREATE, P.Create("/r", b"", OPEN, 0, -1), 1, True), T0)
    read = Token(P.GET_CHILDREN, P.PathWatch("/r", False), 2, False)
    assert r.read_after_writes(conn, read) is None  # queued behind the create
    later = Token(P.CREATE, P.Create("/r/child", b"", OPEN, 0, -1), 3, True)
    r.submit(conn, later, T0)
    _, ready = persist(r)  # both creates commit in one batch
    replies = [(t, body) for k, _, t, body in ready.deliver if k is REPLY]
    assert [t for t, _ in replies] == [replies[0][0], read, later]
    err, body = replies[1][1]
    assert err == 0 and Reader(body).strings() == []  # the child created after the read is not in it
    # with nothing in flight a read is answered at once
    assert r.read_after_writes(conn, Token(P.EXISTS, P.PathWatch("/r", False), 4, False))[0] == 0


def test_handshake_decisions():
    r = replica()
    conn = open_session(r, timeout=50)
    sess = r.node.sessions.get(conn.session_id)
    assert sess.timeout_ms == 200  # clamped up to the minimum
    # a client that has seen a newer zxid than this server is refused
    ahead = P.ConnectRequest(0, r.last_applied + 1, 1000, 0, b"\x00" * 16, False, True)
    assert r.connect(Conn(), ahead, b"q" * 16, T0)[0] is Connect.REFUSED
    # a wrong password is invalid; as in ZooKeeper, the connection the session had is dropped at once,
    # before the password is checked
    wrong = P.ConnectRequest(0, 0, 1000, conn.session_id, b"x" * 16, False, True)
    assert r.connect(Conn(), wrong, b"q" * 16, T0)[0] is Connect.INVALID
    assert r.ready().deliver == [(DROP, conn, None, None)]
    r.connection_closed(conn)  # the host closed it
    # the right password resumes, with the timeout clamped to the maximum
    again = Conn()
    right = P.ConnectRequest(0, 0, 5000, conn.session_id, sess.passwd, False, True)
    assert r.connect(again, right, b"q" * 16, T0) == (Connect.ESTABLISHED, 2000)
    assert r.session_conns[conn.session_id] is again
    # and a third connection for the session drops the second
    assert r.connect(Conn(), right, b"q" * 16, T0)[0] is Connect.ESTABLISHED
    assert r.ready().deliver == [(DROP, again, None, None)]


def test_expiry_is_decided_on_ticks_and_closes_the_bound_connection():
    r = replica()
    conn = open_session(r, timeout=200)
    r.tick(T0 + 100)
    assert not r.ready()
    r.tick(T0 + 1000)
    ready = r.ready()
    assert ready.expired == [conn.session_id]
    assert not r.accepts_requests(conn.session_id)  # closing from the moment it was decided
    r.persisted(ready.writes[-1].zxid)
    assert r.ready().deliver == [(CLOSE, conn, None, None)]
    assert r.node.sessions.get(conn.session_id) is None


def test_a_session_whose_connection_closed_while_it_was_created_is_not_delivered():
    r = replica()
    conn = Conn()
    r.connect(conn, P.ConnectRequest(0, 0, 1000, 0, b"\x00" * 16, False, True), b"p" * 16, T0)
    r.connection_closed(conn)
    _, ready = persist(r)
    assert ready.deliver == []
    assert len(r.node.sessions.sessions) == 1  # it exists (and will expire), bound to nobody
    assert r.session_conns == {}
