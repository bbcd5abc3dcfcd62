"""The Replica as an ensemble member, over a scripted consensus core that stands in for a QuorumPeer.

The core's side (elections, quorums, sync) is zab's and is tested there and in the simulator; these
tests pin what the replica itself must do as a learner or a leader: forward writes and new sessions
to the leader, answer its clients when the leader's txn is applied, revalidate resumed sessions, keep
a sync's answer ahead of what the session sends after it, decide forwarded requests on the leader,
and drop every client when the member stops serving.
"""
from __future__ import annotations

from coordcore import zxid as Z
from coordcore.errors import Err
from coordcore.node import forward as F
from coordcore.node.acl import AuthInfo
from coordcore.node.replica import DROP, INVALID, REPLY, SESSION, Connect, Replica
from coordcore.storage.api import DurableState
from coordcore.tree import txn as T
from coordcore.wire import proto as P
from coordcore.wire.jute import Reader
from coordcore.zab.ready import Ready

OPEN = [(31, "world", "anyone")]
T0 = 1_700_000_000_000
EPOCH = 4


class FakePeer:
    """The calls a Replica makes on a QuorumPeer, recorded; what the test feeds, handed out by ready()."""

    def __init__(self, leading: bool, last_zxid: int = Z.make(EPOCH, 0)):
        self.leading = leading
        self.serving = True
        self.last = last_zxid
        self.out = Ready()
        self.forwarded, self.syncs, self.revalidations, self.touches, self.revalidated_calls = [], [], [], [], []
        self.snapshot_provider = None

    def next_zxid(self):
        return self.last + 1 if self.leading and self.serving else None

    def propose(self, txn: bytes) -> int:
        self.last += 1
        self.proposed.append((self.last, txn))
        return self.last

    proposed: list

    def forward(self, payload):
        self.forwarded.append(payload)

    def sync(self, token):
        self.syncs.append(token)

    def revalidate(self, session_id, timeout_ms):
        self.revalidations.append((session_id, timeout_ms))

    def revalidated(self, to_sid, session_id, valid):
        self.revalidated_calls.append((to_sid, session_id, valid))

    def touch(self, session_id, timeout_ms):
        self.touches.append((session_id, timeout_ms))

    def tick(self, now_ms):
        pass

    def persisted(self, zxid):
        pass

    def ready(self) -> Ready:
        out, self.out = self.out, Ready()
        return out


class Conn:
    def __init__(self, session_id=0):
        self.session_id = session_id
        self.auth = AuthInfo("10.0.0.7")
        self.watches = set()


class Token:
    def __init__(self, op, req, xid, is_write=True):
        self.op, self.req, self.xid, self.is_write = op, req, xid, is_write


def member(leading: bool, sid: int = 2):
    peer = FakePeer(leading)
    peer.proposed = []
    r = Replica(state=DurableState(), now_ms=T0, tick_ms=100, server_id=sid, min_session_timeout_ms=200,
                max_session_timeout_ms=2000, reap_interval_ms=1000, peer=peer)
    r.ready()
    return r, peer


def leader_txn(zxid, session_id, cxid, t, body):
    """What the leader decided, as the bytes every member applies."""
    return zxid, T.encode(T.Txn(zxid, T0, session_id, cxid, t, body))


def established(r, peer):
    """A session created through this learner (forwarded, then applied from the leader's txn)."""
    conn = Conn()
    decision, timeout = r.connect(conn, P.ConnectRequest(0, 0, 1000, 0, b"\0" * 16, False, True), b"p" * 16, T0)
    assert decision is Connect.PENDING
    fwd = F.decode(peer.forwarded.pop())
    assert type(fwd) is F.ForwardedSession and fwd.timeout_ms == timeout and fwd.passwd == b"p" * 16
    assert fwd.session_id >> 56 == 2  # allocated by the member the client connected to
    peer.out.applies.append(leader_txn(Z.make(EPOCH, 1), fwd.session_id, 0, T.T_CREATE_SESSION,
                                       (timeout, fwd.passwd)))
    ready = r.ready()
    assert ready.deliver == [(SESSION, conn, fwd.session_id, (timeout, fwd.passwd))]
    conn.session_id = fwd.session_id
    return conn


def test_a_learner_forwards_writes_and_answers_when_the_leaders_txn_applies():
    r, peer = member(leading=False)
    conn = established(r, peer)
    p = Token(P.CREATE, P.Create("/a", b"x", tuple(OPEN), 0, -1), 7)
    r.submit(conn, p, T0)
    fwd = F.decode(peer.forwarded.pop())
    assert (fwd.session_id, fwd.cxid, fwd.op, fwd.req) == (conn.session_id, 7, P.CREATE, p.req)
    assert ("ip", "10.0.0.7") in fwd.auth.ids
    read = Token(P.EXISTS, P.PathWatch("/a", False), 8, False)
    assert r.read_after_writes(conn, read) is None  # behind the write in flight
    assert r.ready().deliver == []                  # nothing until the leader's txn is applied here
    peer.out.applies.append(leader_txn(Z.make(EPOCH, 2), conn.session_id, 7, T.T_CREATE,
                                       ("/a", b"x", tuple(OPEN), 0, 0, -1, 1)))
    deliver = r.ready().deliver
    assert [(k, t) for k, _, t, _ in deliver] == [(REPLY, p), (REPLY, read)]
    assert deliver[0][3][0] == 0 and deliver[1][3][0] == 0  # the read sees the create


def test_a_learner_applies_txns_it_did_not_forward_and_expires_nothing():
    r, peer = member(leading=False)
    conn = established(r, peer)
    peer.out.applies.append(leader_txn(Z.make(EPOCH, 2), 0x0300000000000001, 1, T.T_CREATE,
                                       ("/other", b"", tuple(OPEN), 0, 0, -1, 1)))
    assert r.ready().deliver == []
    assert r.read(P.EXISTS, P.PathWatch("/other", False), conn)[0] == 0
    r.tick(T0 + 60_000)  # long past every timeout: only the leader decides expiry
    assert peer.proposed == [] and r.ready().expired == []


def test_a_resumed_session_on_a_learner_waits_for_the_leaders_verdict():
    r, peer = member(leading=False)
    conn = established(r, peer)
    passwd = r.node.sessions.get(conn.session_id).passwd
    again = Conn()
    # (it asks for 1500 ms; a resume does not renegotiate a replicated session: it is told its 1000)
    req = P.ConnectRequest(0, 0, 1500, conn.session_id, passwd, False, True)
    assert r.connect(again, req, b"q" * 16, T0) == (Connect.PENDING, 1000)
    assert peer.revalidations == [(conn.session_id, 1000)]
    assert r.ready().deliver == [(DROP, conn, None, None)]
    peer.out.revalidated.append((conn.session_id, True))
    assert r.ready().deliver == [(SESSION, again, conn.session_id, (1000, passwd))]
    # a verdict of "expired" answers the connection as an invalid session
    third = Conn()
    r.connect(third, req, b"q" * 16, T0)
    r.ready()
    peer.out.revalidated.append((conn.session_id, False))
    assert r.ready().deliver == [(INVALID, third, None, None)]


def test_what_a_session_sends_after_a_sync_waits_for_the_syncs_answer():
    r, peer = member(leading=False)
    conn = established(r, peer)
    sync = Token(P.SYNC, P.PathOnly("/"), 3, False)
    assert r.sync(conn, sync) is None
    write = Token(P.CREATE, P.Create("/after", b"", OPEN, 0, -1), 4)
    r.submit(conn, write, T0)
    assert peer.forwarded == []  # held back: it must not be applied before the sync is answered
    peer.out.synced.append(peer.syncs[-1])
    deliver = r.ready().deliver
    assert [(k, t) for k, _, t, _ in deliver] == [(REPLY, sync)]
    assert Reader(deliver[0][3][1]).ustring() == "/"
    assert [F.decode(f).cxid for f in peer.forwarded] == [4]  # now it goes to the leader


def test_a_leader_decides_what_learners_forward():
    r, peer = member(leading=True, sid=1)
    sid = 0x0200000000000005  # a session a learner (sid 2) allocated
    peer.out.requests.append((2, F.encode_session(sid, 1000, b"s" * 16)))
    r.ready()
    peer.out.applies.append(peer.proposed[0])  # committed: the session exists on the leader
    r.ready()
    peer.out.requests.append((2, F.encode_write(sid, 1, P.CREATE, P.Create("/f", b"v", OPEN, 0, -1),
                                                AuthInfo("10.0.0.9"))))
    peer.out.requests.append((2, F.encode_write(0x0200000000000099, 1, P.DELETE, P.PathVersion("/f", -1),
                                                AuthInfo("10.0.0.9"))))
    peer.out.requests.append((3, b"\x00\x00\x00\x07garbage"))
    ready = r.ready()
    txns = [T.decode(b) for _, b in peer.proposed]
    assert [(t.type, t.session_id) for t in txns] == [
        (T.T_CREATE_SESSION, sid), (T.T_CREATE, sid), (T.T_ERROR, 0x0200000000000099)]
    assert txns[2].body == (int(Err.SESSIONEXPIRED),)  # a session nobody has: answered, in order
    assert [from_sid for from_sid, _ in ready.refused] == [3]  # malformed: refused, the rest served


def test_a_member_that_stops_serving_drops_every_client():
    r, peer = member(leading=False)
    conn = established(r, peer)
    waiting = Conn()
    r.connect(waiting, P.ConnectRequest(0, 0, 1000, 0, b"\0" * 16, False, True), b"p" * 16, T0)
    peer.serving = False
    peer.out.state_changed = True
    ready = r.ready()
    assert not ready.serving
    assert {c for k, c, _, _ in ready.deliver if k is DROP} == {conn, waiting}
    assert r.connect(Conn(), P.ConnectRequest(0, 0, 1000, 0, b"\0" * 16, False, True), b"p" * 16,
                     T0)[0] is Connect.REFUSED


def test_a_session_resumed_on_the_leader_keeps_the_timeout_every_member_replicated():
    # The session table is replicated (snapshots carry it; a new leader expires by it): a resume on the
    # leader asking another timeout must not change it there only (tests/sim scenario C4 found that).
    r, peer = member(leading=True, sid=1)
    sid = 0x0200000000000005
    peer.out.requests.append((2, F.encode_session(sid, 1000, b"s" * 16)))
    r.ready()
    peer.out.applies.append(peer.proposed[0])
    r.ready()
    resumed = P.ConnectRequest(0, 0, 2000, sid, b"s" * 16, False, True)
    assert r.connect(Conn(), resumed, b"q" * 16, T0 + 500) == (Connect.ESTABLISHED, 1000)  # told the truth
    sess = r.node.sessions.get(sid)
    assert sess.timeout_ms == 1000
    assert sess.expires_ms >= T0 + 500 + 1000  # the resume still counts as the session being alive


def test_a_leader_refuses_writes_for_a_session_from_a_member_it_moved_away_from():
    """ZOOKEEPER-710: once a session is revalidated on another member, a write still arriving through
    the member it left is answered SESSIONMOVED (an error txn, so every member stays in step)."""
    r, peer = member(leading=True, sid=1)
    sid = 0x0200000000000005
    peer.out.requests.append((2, F.encode_session(sid, 1000, b"s" * 16)))
    r.ready()
    peer.out.applies.append(peer.proposed[0])
    r.ready()
    peer.out.revalidations.append((3, sid, 1000))  # the client moved to member 3
    r.ready()
    assert peer.revalidated_calls == [(3, sid, True)]
    create = P.Create("/x", b"", OPEN, 0, -1)
    peer.out.requests.append((2, F.encode_write(sid, 1, P.CREATE, create, AuthInfo("10.0.0.9"))))
    peer.out.requests.append((3, F.encode_write(sid, 2, P.CREATE, create, AuthInfo("10.0.0.9"))))
    r.ready()
    txns = [T.decode(b) for _, b in peer.proposed[1:]]
    assert [(t.type, t.cxid) for t in txns] == [(T.T_ERROR, 1), (T.T_CREATE, 2)]
    assert txns[0].body == (int(Err.SESSIONMOVED),)


def _ro_request(session_id=0, passwd=b"\0" * 16, read_only=True):
    return P.ConnectRequest(0, 0, 1000, session_id, passwd, read_only, True)


def test_read_only_mode_serves_read_only_sessions_after_a_grace_and_refuses_their_writes():
    peer = FakePeer(leading=False)
    peer.proposed = []
    r = Replica(state=DurableState(), now_ms=T0, tick_ms=100, server_id=2, min_session_timeout_ms=200,
                max_session_timeout_ms=2000, reap_interval_ms=1000, peer=peer, read_only_enabled=True)
    r.ready()
    conn = established(r, peer)
    peer.serving = False          # cut off from the quorum
    peer.out.state_changed = True
    r.ready()
    # an ordinary election is not read-only mode: nobody is served for READ_ONLY_AFTER_MS
    assert r.connect(Conn(), _ro_request(), b"r" * 16, T0 + 1999)[0] is Connect.REFUSED
    assert not r.read_only_mode(T0 + 1999) and r.read_only_mode(T0 + 2000)
    ro = Conn()
    decision, timeout = r.connect(ro, _ro_request(), b"r" * 16, T0 + 2000)
    assert decision is Connect.READ_ONLY and timeout == 1000
    ro.session_id, passwd = r.read_only_session
    assert passwd == b"r" * 16 and r.accepts_requests(ro.session_id)
    assert r.connect(Conn(), _ro_request(read_only=False), b"x" * 16, T0 + 2000)[0] is Connect.REFUSED
    # a replicated session resumes read-only with its own password only
    assert r.connect(Conn(), _ro_request(conn.session_id, b"wrong" * 3 + b"!"), b"x" * 16,
                     T0 + 2000)[0] is Connect.INVALID
    again = Conn(conn.session_id)
    assert r.connect(again, _ro_request(conn.session_id, b"p" * 16), b"x" * 16, T0 + 2000)[0] is Connect.READ_ONLY
    read = Token(P.EXISTS, P.PathWatch("/", False), 1, False)
    assert r.read_after_writes(ro, read)[0] == 0          # reads are served from the member's tree
    write = Token(P.CREATE, P.Create("/a", b"", tuple(OPEN), 0, -1), 2)
    r.submit(ro, write, T0 + 2000)
    assert r.sync(ro, Token(P.SYNC, P.PathOnly("/"), 3, False)) == (int(Err.NOTREADONLY), b"")
    assert r.ready().deliver == [(REPLY, ro, write, (int(Err.NOTREADONLY), b""))]
    assert peer.forwarded == [] and peer.proposed == []   # nothing read-only ever reaches the leader
    # back in broadcast: the read-only clients are closed so they reconnect read-write
    peer.serving = True
    peer.out.state_changed = True
    assert {c for k, c, _, _ in r.ready().deliver if k is DROP} == {ro, again}
    assert not r.accepts_requests(ro.session_id)
