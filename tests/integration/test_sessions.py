"""Sessions: handshake edge cases, timeout negotiation, expiry, resume, closeSession, zxid-ahead refusal."""
from __future__ import annotations

import time

import pytest
from kazoo.client import KazooClient

try:
    from tests.integration import rawzk
except ImportError:
    import rawzk

pytestmark = pytest.mark.timeout(90)


def wait_until(predicate, timeout=15.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture
def short_server(zk_server_factory):
    """tickTime 100: min session timeout 200 ms, max 2000 ms."""
    return zk_server_factory({"tickTime": 100, "minSessionTimeout": 200, "maxSessionTimeout": 2000})


def test_handshake_new_session_layout(zk_server):
    with rawzk.RawClient(zk_server.connect_string) as c:
        resp = c.handshake(timeout_ms=10000)
        assert resp.protocol_version == 0 and resp.timeout == 10000
        assert resp.session_id != 0 and len(resp.passwd) == 16 and resp.passwd != b"\x00" * 16
        # a standalone server hands out session ids as server 1: 0x01 in the top byte
        assert resp.session_id >> 56 == 1
        assert resp.read_only is False and resp.raw_len == 37
        r = c.ping()
        assert (r.xid, r.err, r.body) == (-2, 0, b"") and r.zxid > 0


def test_handshake_without_read_only_byte(zk_server):
    with rawzk.RawClient(zk_server.connect_string) as c:
        resp = c.handshake(timeout_ms=10000, read_only=None)
        assert resp.timeout == 10000 and resp.raw_len == 36 and resp.read_only is None
        assert c.exists("/").err == 0


def test_timeout_clamped_to_min_and_max(short_server):
    for asked, got in ((1, 200), (150, 200), (500, 500), (2000, 2000), (99999, 2000)):
        with rawzk.RawClient(short_server.connect_string) as c:
            assert c.handshake(timeout_ms=asked).timeout == got, asked


def test_resume_with_wrong_password_or_unknown_session(zk_server):
    with rawzk.connected(zk_server.connect_string) as c:
        sid, pw = c.session.session_id, c.session.passwd
        bad = bytes([pw[0] ^ 1]) + pw[1:]
        with rawzk.RawClient(zk_server.connect_string) as d:
            resp = d.handshake(session_id=sid, passwd=bad)
            assert (resp.timeout, resp.session_id, resp.passwd) == (0, 0, b"\x00" * 16)
            assert resp.raw_len == 37
            assert d.wait_closed(5)
    with rawzk.RawClient(zk_server.connect_string) as d:
        resp = d.handshake(session_id=0x7EADBEEF12345678, passwd=b"\x01" * 16)
        assert (resp.timeout, resp.session_id) == (0, 0)
        assert d.wait_closed(5)


def test_resume_on_new_connection_keeps_session_and_ephemerals(zk_server, zk_root):
    c = rawzk.connected(zk_server.connect_string)
    sid, pw = c.session.session_id, c.session.passwd
    assert c.create(zk_root + "/e", b"", flags=1).err == 0
    last = c.last_zxid
    c.close()  # socket dropped, no closeSession
    with rawzk.RawClient(zk_server.connect_string) as d:
        resp = d.handshake(session_id=sid, passwd=pw, last_zxid=last)
        assert resp.session_id == sid and resp.passwd == pw and resp.timeout == 10000
        st = d.exists(zk_root + "/e").reader().stat()
        assert st.ephemeralOwner == sid
        # the new connection takes over: the session's old connection (if any) is closed; a third one too
        with rawzk.RawClient(zk_server.connect_string) as e:
            assert e.handshake(session_id=sid, passwd=pw).session_id == sid
            assert d.wait_closed(5)
            assert e.close_session().err == 0
    with rawzk.connected(zk_server.connect_string) as probe:
        assert probe.exists(zk_root + "/e").err == rawzk.NONODE


def test_client_zxid_ahead_is_refused(zk_server):
    with rawzk.connected(zk_server.connect_string) as c:
        current = c.sync("/").zxid
    with rawzk.RawClient(zk_server.connect_string) as d:
        assert d.handshake(last_zxid=current + 1000) is None  # closed without a reply
    with rawzk.RawClient(zk_server.connect_string) as d:
        assert d.handshake(last_zxid=current).timeout > 0


def test_close_session_is_immediate(zk_client_factory, zk_root):
    owner = zk_client_factory()
    other = zk_client_factory()
    owner.create(zk_root + "/e", ephemeral=True)
    owner.create(zk_root + "/s", ephemeral=True, sequence=True)
    owner.stop()
    assert other.get_children(zk_root) == []


def test_close_session_reply_then_close(zk_server):
    with rawzk.connected(zk_server.connect_string) as c:
        r = c.close_session()
        assert r is not None and r.err == 0 and r.body == b""
        assert c.wait_closed(5)
    # requests on a closed session's id: resume refused
    with rawzk.RawClient(zk_server.connect_string) as d:
        assert d.handshake(session_id=c.session.session_id, passwd=c.session.passwd).timeout == 0


def test_expiry_deletes_ephemerals_and_fires_watches(short_server):
    with rawzk.connected(short_server.connect_string, timeout_ms=2000) as watcher:
        victim = rawzk.connected(short_server.connect_string, timeout_ms=200)
        assert victim.session.timeout == 200
        assert victim.create("/eph", b"", flags=1).err == 0
        assert watcher.exists("/eph", watch=True).err == 0
        assert watcher.get_children("/", watch=True).err == 0
        # stop talking: the session expires after ~200 ms (plus up to one tick)
        ev = watcher.read_event(timeout=10)
        assert ev is not None and (ev.type, ev.path) == (2, "/eph")
        ev = watcher.read_event(timeout=5)
        assert ev is not None and (ev.type, ev.path) == (4, "/")
        assert watcher.exists("/eph").err == rawzk.NONODE
        # the expired session's connection is closed by the server
        assert victim.wait_closed(5)
        victim.close()
        with rawzk.RawClient(short_server.connect_string) as d:
            assert d.handshake(session_id=victim.session.session_id, passwd=victim.session.passwd).timeout == 0


def test_pings_keep_a_session_alive(short_server):
    with rawzk.connected(short_server.connect_string, timeout_ms=400) as c:
        assert c.create("/kept", b"", flags=1).err == 0
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            assert c.ping().err == 0
            time.sleep(0.05)
        assert c.exists("/kept").err == 0


def test_kazoo_session_expired_on_resume_after_expiry(short_server):
    c = KazooClient(hosts=short_server.connect_string, timeout=2.0)
    c.start(10)
    try:
        sid, pw = c.client_id
        c.create("/k", ephemeral=True)
        c.stop()  # closes the session
        d = KazooClient(hosts=short_server.connect_string, client_id=(sid, pw), timeout=2.0)
        lost = []
        d.add_listener(lambda state: lost.append(state))
        try:
            d.start(10)  # told the session is expired, kazoo goes LOST and starts a fresh session
            assert d.client_id[0] != sid
            assert d.exists("/k") is None
        finally:
            d.stop()
            d.close()
    finally:
        c.close()


def test_session_survives_server_restart(zk_server_factory):
    server = zk_server_factory({"tickTime": 200, "minSessionTimeout": 400, "maxSessionTimeout": 30000})
    c = rawzk.connected(server.connect_string, timeout_ms=20000)
    sid, pw = c.session.session_id, c.session.passwd
    assert c.create("/eph", b"x", flags=1).err == 0
    assert c.create("/pers", b"y").err == 0
    last = c.last_zxid
    c.close()
    server.restart()
    with rawzk.RawClient(server.connect_string) as d:
        resp = d.handshake(timeout_ms=20000, session_id=sid, passwd=pw, last_zxid=last)
        assert resp is not None and resp.session_id == sid
        assert d.exists("/eph").reader().stat().ephemeralOwner == sid
        assert d.get_data("/pers").reader().buffer() == b"y"
        assert d.close_session().err == 0
    with rawzk.connected(server.connect_string) as probe:
        assert probe.exists("/eph").err == rawzk.NONODE


def test_request_after_close_session_is_refused(zk_server):
    with rawzk.connected(zk_server.connect_string) as c:
        c.send_request(rawzk.CLOSE_SESSION)
        c.send_request(rawzk.EXISTS, rawzk.Writer().string("/").bool(False).bytes())
        first = c.read_reply()
        assert first is not None and first.err == 0
        second = c.read_reply()
        assert second is None or second.err == rawzk.SESSIONEXPIRED
