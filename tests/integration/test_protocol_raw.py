"""Ops kazoo lacks and framing edge cases, over the raw protocol."""
from __future__ import annotations

import struct

import pytest

try:
    from tests.integration import rawzk
except ImportError:
    import rawzk

pytestmark = pytest.mark.timeout(60)


def test_unknown_opcode_gets_unimplemented_then_close(zk_server):
    with rawzk.connected(zk_server.connect_string) as c:
        r = c.call(55, b"")
        assert r.err == rawzk.UNIMPLEMENTED and r.body == b""
        assert c.wait_closed(5)


def test_sasl_is_refused_with_authfailed_then_close(zk_server):
    # coordcore has no SASL: it answers a SASL packet as a ZooKeeper whose SASL authentication failed
    # does, so kazoo goes to AUTH_FAILED at once. A ZooKeeper without a JAAS setup answers OK with a
    # null token and leaves the client to fail on its own (kazoo: AUTH_FAILED after ~10 s).
    with rawzk.connected(zk_server.connect_string) as c:
        r = c.call(102, rawzk.Writer().buffer(b"").bytes())
        assert r.body == b"\xff\xff\xff\xff"  # SetSASLResponse with a null token
        if zk_server.backend == "coordcore":
            assert r.err == rawzk.AUTHFAILED
            assert c.wait_closed(5)
        else:
            assert r.err == 0
            assert c.ping().err == 0


def test_oversized_frame_closes(zk_server):
    with rawzk.connected(zk_server.connect_string) as c:
        c.send_raw(struct.pack("!i", 0x100000 + 1) + b"\x00" * 64)
        assert c.wait_closed(5)


def test_negative_length_closes(zk_server):
    with rawzk.connected(zk_server.connect_string) as c:
        c.send_raw(struct.pack("!i", -5))
        assert c.wait_closed(5)
    with rawzk.RawClient(zk_server.connect_string) as c:  # before the handshake too
        c.send_raw(struct.pack("!i", -1))
        assert c.wait_closed(5)


def test_data_just_under_max_buffer(zk_server, zk_root):
    with rawzk.connected(zk_server.connect_string) as c:
        assert c.create(zk_root + "/big", b"x" * 1000000).err == 0
        rd = c.get_data(zk_root + "/big").reader()
        assert rd.buffer() == b"x" * 1000000 and rd.stat().dataLength == 1000000
        try:
            c.send_request(rawzk.CREATE, rawzk.Writer().string(zk_root + "/huge").buffer(b"x" * 1048576)
                           .acls(rawzk.OPEN_ACL).int(0).bytes())
        except (ConnectionResetError, BrokenPipeError):
            pass  # closed on the announced length while we were still sending: the outcome expected
        assert c.wait_closed(5)


def test_pipelined_replies_in_request_order(zk_server, zk_root):
    with rawzk.connected(zk_server.connect_string) as c:
        xids = []
        for i in range(50):
            body = rawzk.Writer().string(f"{zk_root}/n{i}").buffer(b"").acls(rawzk.OPEN_ACL).int(0).bytes()
            xids.append(c.send_request(rawzk.CREATE, body))
            xids.append(c.send_request(rawzk.EXISTS, rawzk.Writer().string(f"{zk_root}/n{i}").bool(False).bytes()))
        replies = [c.read_reply() for _ in xids]
        assert [r.xid for r in replies] == xids
        assert all(r.err == 0 for r in replies)
        zxids = [r.zxid for r in replies]
        assert zxids == sorted(zxids)  # never decreases on one connection


def test_get_ephemerals(zk_server, zk_root):
    with rawzk.connected(zk_server.connect_string) as c, rawzk.connected(zk_server.connect_string) as d:
        for p in ("/a", "/ab", "/b"):
            assert c.create(zk_root + p, b"", flags=1).err == 0
        assert d.create(zk_root + "/other", b"", flags=1).err == 0
        assert sorted(c.get_ephemerals(zk_root).reader().strings()) == [zk_root + "/a", zk_root + "/ab",
                                                                         zk_root + "/b"]
        assert sorted(c.get_ephemerals(zk_root + "/a").reader().strings()) == [zk_root + "/a", zk_root + "/ab"]
        assert sorted(c.get_ephemerals("/").reader().strings()) == [zk_root + "/a", zk_root + "/ab",
                                                                     zk_root + "/b"]
        assert len(c.get_ephemerals(None).reader().strings()) == 3
        assert c.get_ephemerals(zk_root + "/zzz").reader().strings() == []


def test_get_all_children_number(zk_server, zk_root):
    with rawzk.connected(zk_server.connect_string) as c:
        for p in ("/a", "/a/b", "/a/b/c", "/d"):
            assert c.create(zk_root + p, b"").err == 0
        assert c.get_all_children_number(zk_root).reader().int() == 4
        assert c.get_all_children_number(zk_root + "/a/b/c").reader().int() == 0
        assert c.get_all_children_number(zk_root + "/missing").err == rawzk.NONODE


def test_get_all_children_number_root_fresh(zk_server_factory):
    server = zk_server_factory({})
    with rawzk.connected(server.connect_string) as c:
        assert c.get_all_children_number("/").reader().int() == 3  # /zookeeper, /quota, /config
        assert c.get_all_children_number("/zookeeper").reader().int() == 2


def test_sync_echoes_path(zk_server):
    with rawzk.connected(zk_server.connect_string) as c:
        r = c.sync("/no/such/node")
        assert r.err == 0 and r.reader().string() == "/no/such/node"


def test_reconfig_standalone_is_disabled(zk_server):
    with rawzk.connected(zk_server.connect_string) as c:
        before = c.sync("/").zxid
        r = c.call(rawzk.RECONFIG, rawzk.Writer().string(None).string(None).string(None).long(-1).bytes())
        assert r.err == rawzk.RECONFIGDISABLED
        assert r.zxid == before + 1  # it is a failed write: it consumes a zxid


def test_reconfig_standalone_with_reconfig_enabled_is_unimplemented(zk_server_factory):
    server = zk_server_factory({"reconfigEnabled": "true"})
    with rawzk.connected(server.connect_string) as c:
        r = c.call(rawzk.RECONFIG, rawzk.Writer().string(None).string(None).string(None).long(-1).bytes())
        assert r.err == rawzk.UNIMPLEMENTED


def test_failed_write_consumes_a_zxid(zk_server, zk_root):
    with rawzk.connected(zk_server.connect_string) as c:
        z1 = c.create(zk_root + "/a", b"").zxid
        assert c.create(zk_root + "/a", b"").err == rawzk.NODEEXISTS
        assert c.delete(zk_root + "/zz").err == rawzk.NONODE
        assert c.create(zk_root + "/b", b"").zxid == z1 + 3


def test_kazoo_server_version(zk_client):
    version = zk_client.server_version()
    assert tuple(version[:2]) >= (3, 5)


def test_ping_reply_carries_last_zxid(zk_server, zk_root):
    with rawzk.connected(zk_server.connect_string) as c:
        z = c.create(zk_root + "/p", b"").zxid
        r = c.ping()
        assert (r.xid, r.err) == (-2, 0) and r.zxid >= z
