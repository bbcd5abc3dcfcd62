"""DataTree through Node: Stat rules, sequential names, sessions' ephemerals, snapshots, recovery, reaping."""
from __future__ import annotations

import pytest

from coordcore.errors import Err
from coordcore.storage.api import DurableState
from coordcore.tree import snapshot as S
from coordcore.tree import txn as T
from coordcore.wire import proto as P
from coordcore.wire.jute import Reader

from nodeharness import OPEN, FakeConn, Harness, Stat


# ---- the built-in nodes ------------------------------------------------------------------------------

@pytest.mark.parametrize("path, cversion, aversion, num_children", [
    ("/", -1, 0, 1),                  # one child (/zookeeper) that was never "created"
    ("/zookeeper", -2, 0, 2),
    ("/zookeeper/quota", 0, 0, 0),
    ("/zookeeper/config", 0, -1, 0),  # its ACL was installed with version -1
])
def test_fresh_tree_stats(h, path, cversion, aversion, num_children):
    st = h.stat(path)
    assert (st.cversion, st.aversion, st.numChildren) == (cversion, aversion, num_children)
    assert (st.czxid, st.mzxid, st.pzxid, st.ctime, st.mtime, st.version) == (0, 0, 0, 0, 0, 0)
    assert st.dataLength == 0 and h.node.committed.nodes[path].data == b""  # empty, not null


def test_builtin_acls(h):
    assert list(h.node.committed.nodes["/"].acl) == [(31, "world", "anyone")]
    assert list(h.node.committed.nodes["/zookeeper/config"].acl) == [(1, "world", "anyone")]


# ---- Stat rules ------------------------------------------------------------------------------------

def test_create_stat_and_parent_changes(h):
    root_before = h.stat("/")
    h.now += 5
    txn = h.prep(P.CREATE, P.Create("/a", b"hello", OPEN, 0))
    h.commit(txn)
    z, t = txn.zxid, txn.time
    assert h.stat("/a") == Stat(czxid=z, mzxid=z, ctime=t, mtime=t, version=0, cversion=0, aversion=0,
                                ephemeralOwner=0, dataLength=5, numChildren=0, pzxid=z)
    root = h.stat("/")
    assert root.cversion == root_before.cversion + 1
    assert root.numChildren == root_before.numChildren + 1
    assert root.pzxid == z
    assert (root.mzxid, root.version) == (root_before.mzxid, root_before.version)


def test_null_data_has_zero_length_and_reads_back_null(h):
    assert h.create("/n", None) == (0, "/n")
    assert h.stat("/n").dataLength == 0
    err, body = h.node.read(P.GET_DATA, P.PathWatch("/n", False), FakeConn())
    assert err == 0 and Reader(body).buffer() is None


def test_cversion_counts_creations_and_deletions(h):
    h.create("/p")
    for name in ("a", "b", "c"):
        h.create("/p/" + name)
    assert h.delete("/p/b") == 0
    st = h.stat("/p")
    assert (st.cversion, st.numChildren) == (4, 2)  # 3 creations + 1 deletion


def test_delete_child_updates_parent(h):
    h.create("/p")
    h.create("/p/c")
    txn = h.prep(P.DELETE, P.PathVersion("/p/c", -1))
    h.commit(txn)
    st = h.stat("/p")
    assert (st.numChildren, st.cversion, st.pzxid) == (0, 2, txn.zxid)
    assert "/p/c" not in h.node.committed.nodes


def test_set_data_changes_only_data_fields(h):
    h.create("/a", b"x")
    before = h.stat("/a")
    h.now += 1000
    txn = h.prep(P.SET_DATA, P.SetData("/a", b"longer", -1))
    h.commit(txn)
    after = h.stat("/a")
    assert after == before._replace(mzxid=txn.zxid, mtime=h.now, version=1, dataLength=6)


def test_set_acl_bumps_only_aversion(h):
    h.create("/a")
    before = h.stat("/a")
    assert h.set_acl("/a", [(1, "world", "anyone")]) == 0
    assert h.stat("/a") == before._replace(aversion=1)


def test_failed_write_changes_nothing_but_consumes_a_zxid(h):
    h.create("/a")
    before = h.committed_bytes()
    bad = h.prep(P.SET_DATA, P.SetData("/a", b"v", 7))
    assert bad.type == T.T_ERROR and bad.body == (Err.BADVERSION,)
    assert h.node.reply_body(P.SET_DATA, None, bad, h.commit(bad)) == (Err.BADVERSION, b"")
    assert h.committed_bytes()[12:] == before[12:]  # all but the header's last zxid
    good = h.prep(P.SET_DATA, P.SetData("/a", b"v", 0))
    assert good.zxid == bad.zxid + 1
    h.commit(good)
    assert h.stat("/a").mzxid == good.zxid


def test_versions_wrap_as_int32(h):
    h.create("/a")
    h.node.committed.nodes["/a"].version = 2**31 - 1
    assert h.set_data("/a", b"", version=2**31 - 1) == 0
    assert h.stat("/a").version == -2**31
    assert h.set_data("/a", b"", version=-2**31) == 0
    assert h.stat("/a").version == -2**31 + 1


def test_owner_by_kind(h):
    sid = h.open_session()
    assert h.create("/e", flags=1, session_id=sid)[0] == 0
    assert h.create("/p", session_id=sid)[0] == 0
    assert h.create("/c", flags=4, op=P.CREATE_CONTAINER, session_id=sid)[0] == 0
    assert h.create("/t", flags=5, op=P.CREATE_TTL, ttl=1000, session_id=sid)[0] == 0
    assert h.stat("/e").ephemeralOwner == sid
    for path in ("/p", "/c", "/t"):
        assert h.stat(path).ephemeralOwner == 0, path


def test_create_and_create2_replies(h):
    err, body = h.write(P.CREATE, P.Create("/a", b"", OPEN, 0))
    assert err == 0 and body == b"\x00\x00\x00\x02/a"
    err, body = h.write(P.CREATE2, P.Create("/b", b"12", OPEN, 0))
    r = Reader(body)
    assert r.ustring() == "/b"
    assert Stat(*(r.long(), r.long(), r.long(), r.long(), r.int(), r.int(), r.int(), r.long(), r.int(),
                  r.int(), r.long())) == h.stat("/b")
    assert r.at_end()


# ---- sequential names --------------------------------------------------------------------------------

def test_sequence_counter_counts_every_creation(h):
    h.create("/folder")
    assert h.create("/folder/a", flags=2) == (0, "/folder/a0000000000")
    assert h.create("/folder/a", flags=2) == (0, "/folder/a0000000001")
    assert h.create("/folder/", flags=2) == (0, "/folder/0000000002")
    assert h.create("/folder/plain") == (0, "/folder/plain")
    assert h.create("/folder/b", flags=2) == (0, "/folder/b0000000004")


def test_deletes_do_not_consume_sequence_numbers(h):
    h.create("/q")
    assert h.create("/q/n-", flags=2) == (0, "/q/n-0000000000")
    h.delete("/q/n-0000000000")
    assert h.create("/q/n-", flags=2) == (0, "/q/n-0000000001")


def test_sequential_child_of_root(h):
    assert h.create("/", flags=2) == (0, "/0000000000")
    assert h.create("/", flags=2) == (0, "/0000000001")  # as ZooKeeper 3.8 names them


def test_ephemeral_sequential(h):
    sid = h.open_session()
    h.create("/q")
    assert h.create("/q/lock-", flags=3, session_id=sid) == (0, "/q/lock-0000000000")
    assert h.stat("/q/lock-0000000000").ephemeralOwner == sid


def test_sequence_suffix_wraps_to_negative(h):
    h.create("/w")
    h.node.committed.nodes["/w"].cseq = 2**31 - 1
    assert h.create("/w/s", flags=2) == (0, "/w/s2147483647")
    assert h.create("/w/s", flags=2) == (0, "/w/s-2147483648")
    assert h.create("/w/s", flags=2) == (0, "/w/s-2147483647")
    assert h.children("/w") == {"s2147483647", "s-2147483648", "s-2147483647"}


def test_sequential_name_clash_is_node_exists(h):
    h.create("/q")
    h.create("/q/x0000000001")  # takes counter 0, and the name counter 1 will produce
    assert h.create("/q/x", flags=2) == (Err.NODEEXISTS, None)


# ---- sessions and ephemerals ---------------------------------------------------------------------------

def test_close_session_removes_its_ephemerals_only(h):
    a, b = h.open_session(), h.open_session()
    h.create("/p")
    h.create("/p/a1", flags=1, session_id=a)
    h.create("/p/a2", flags=3, session_id=a)
    h.create("/p/b1", flags=1, session_id=b)
    txn = h.proposer.prep_close_session(a, h.now)
    assert sorted(txn.body[0]) == ["/p/a1", "/p/a20000000001"]  # order: see test_hashorder
    h.commit(txn)
    assert h.children("/p") == {"b1"}
    assert a not in h.node.committed.ephemerals
    assert h.node.committed.ephemerals[b] == {"/p/b1"}
    assert h.node.sessions.get(a) is None
    assert h.stat("/p").pzxid == txn.zxid


def test_ephemeral_cannot_have_children(h):
    sid = h.open_session()
    h.create("/e", flags=1, session_id=sid)
    assert h.create("/e/c")[0] == Err.NOCHILDRENFOREPHEMERALS


def test_deleted_ephemeral_is_no_longer_indexed(h):
    sid = h.open_session()
    h.create("/e", flags=1, session_id=sid)
    h.delete("/e")
    assert sid not in h.node.committed.ephemerals
    assert h.proposer.prep_close_session(sid, h.now).body == ([],)


# ---- snapshots and recovery ------------------------------------------------------------------------------

def _populate(h):
    sid = h.open_session(timeout_ms=6000)
    h.create("/a", b"data")
    h.create("/a/s", None, flags=2)
    h.create("/a/e", flags=1, session_id=sid)
    h.create("/c", flags=4, op=P.CREATE_CONTAINER)
    h.create("/t", flags=5, op=P.CREATE_TTL, ttl=5000)
    h.create("/acl", acl=[(1, "world", "anyone"), (31, "ip", "10.0.0.0/8")])
    h.set_data("/a", b"v2")
    h.set_acl("/a", [(31, "world", "anyone")])
    h.create("/gone")
    h.delete("/gone")
    return sid


def test_snapshot_round_trip(h):
    sid = _populate(h)
    data = h.node.snapshot_bytes()
    tree, sessions = S.decode(data)
    assert S.encode(tree, sessions) == data
    assert sessions == [(sid, 6000, b"\x00" * 16)]
    assert tree.ephemerals == h.node.committed.ephemerals
    assert tree.containers == {"/c"} and tree.ttls == {"/t"}
    for path, n in h.node.committed.nodes.items():
        assert tree.nodes[path].children == n.children
        assert tree.nodes[path].stat_tuple() == n.stat_tuple()


@pytest.mark.parametrize("chunk_nodes", [1, 3, 4096])
def test_streamed_snapshot_is_the_same_bytes_in_pieces(h, chunk_nodes):
    # what a forked snapshot writer sends to disk one piece at a time, length announced up front
    _populate(h)
    h.create("/caf\u00e9-\u6f22\U0001f600", b"non-ascii path")
    h.create("/null", None)
    h.create("/empty", b"")
    length, chunks = h.node.snapshot_stream()
    pieces = list(S.encode_stream(h.node.committed, [(7, 6000, b"p" * 16)], chunk_nodes=chunk_nodes)[1])
    expected = h.node.snapshot_bytes()
    assert length == len(expected) and b"".join(chunks) == expected
    assert len(pieces) == 2 + -(-h.node.committed.node_count() // chunk_nodes)  # head, nodes, tail
    assert S.decode(b"".join(pieces))[1] == [(7, 6000, b"p" * 16)]


def test_recovered_nodes_share_equal_stamps_like_the_live_tree(h):
    # memory: a restart must not cost more per znode than the tree had before it (about 100 bytes did)
    h.now = 1_700_000_000_123  # a millisecond clock: ints this large are separate objects unless shared
    h.create("/filler")
    for i in range(300):  # zxids above 256, past CPython's cache of small ints
        h.set_data("/filler", b"%d" % i)
    for i in range(3):
        h.create(f"/n{i}", b"d")
    h.create("/p")
    h.create("/p/kid")
    h.set_data("/n2", b"changed")
    from_snap = S.decode(h.node.snapshot_bytes())[0].nodes
    from_log = Harness(DurableState(txns=list(h.log)), now_ms=h.now + 1).node.committed.nodes
    for nodes in (from_snap, from_log):
        n0, n1, n2, p = nodes["/n0"], nodes["/n1"], nodes["/n2"], nodes["/p"]
        assert n0.czxid is n0.mzxid is n0.pzxid and n0.ctime is n0.mtime
        assert n0.ctime is n1.ctime is p.ctime  # created in one millisecond
        assert n2.czxid is n2.pzxid and n2.mzxid != n2.czxid
        assert p.pzxid == nodes["/p/kid"].czxid and p.czxid is p.mzxid
    for path, n in h.node.committed.nodes.items():  # sharing changed no value
        assert from_snap[path].stat_tuple() == from_log[path].stat_tuple() == n.stat_tuple()


def test_approximate_data_size_counts_paths_and_data_like_zookeeper(h):
    # Apache ZooKeeper 3.8 reports zk_approximate_data_size 44 on a fresh server (the built-in paths
    # "/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"), and 53 after create("/abc", b"12345").
    assert h.node.committed.data_size == 44
    h.create("/abc", b"12345")
    assert h.node.committed.data_size == 53


def test_approximate_data_size_survives_a_snapshot(h):
    _populate(h)
    tree, _ = S.decode(h.node.snapshot_bytes())
    assert tree.data_size == h.node.committed.data_size


def test_snapshot_keeps_null_versus_empty_data(h):
    h.create("/null", None)
    h.create("/empty", b"")
    tree, _ = S.decode(h.node.snapshot_bytes())
    assert tree.nodes["/null"].data is None
    assert tree.nodes["/empty"].data == b""


def test_unknown_snapshot_version_is_rejected(h):
    data = bytearray(h.node.snapshot_bytes())
    data[3] = 99
    with pytest.raises(ValueError):
        S.decode(bytes(data))


def test_recovery_from_log_and_from_snapshot_match(h):
    sid = _populate(h)
    expected = h.node.snapshot_bytes()
    from_log = Harness(DurableState(txns=list(h.log)), now_ms=h.now + 1)
    assert from_log.node.snapshot_bytes() == expected
    from_snap = Harness(DurableState(snapshot_zxid=h.log[-1][0], snapshot=expected), now_ms=h.now + 1)
    assert from_snap.node.snapshot_bytes() == expected
    # the recovered server keeps writing with fresh zxids, with nothing pending from recovery
    for r in (from_log, from_snap):
        assert r.proposer.pending.changes == {}
        assert r.create("/after") == (0, "/after")
        assert r.stat("/after").czxid == h.log[-1][0] + 1
        assert r.node.sessions.get(sid) is not None


def test_recovery_from_snapshot_plus_later_txns(h):
    _populate(h)
    snap_zxid, snap = h.log[-1][0], h.node.snapshot_bytes()
    mark = len(h.log)
    h.create("/later", b"x")
    h.set_data("/a", b"v3")
    r = Harness(DurableState(snapshot_zxid=snap_zxid, snapshot=snap, txns=h.log[mark:]), now_ms=h.now)
    assert r.node.snapshot_bytes() == h.node.snapshot_bytes()
    assert r.node.recovered_txns == 2


# ---- container and TTL reaping ---------------------------------------------------------------------------

def test_container_is_reaped_only_after_it_had_a_child(h):
    h.create("/c", flags=4, op=P.CREATE_CONTAINER)
    assert h.proposer.reap_candidates(h.now) == []
    h.create("/c/x")
    assert h.proposer.reap_candidates(h.now) == []
    h.delete("/c/x")
    assert h.proposer.reap_candidates(h.now) == ["/c"]
    txn = h.proposer.prep_internal_delete("/c", h.now)
    h.commit(txn)
    assert "/c" not in h.node.committed.nodes
    assert h.proposer.reap_candidates(h.now) == []


def test_ttl_node_is_reaped_when_empty_and_stale(h):
    h.create("/t", flags=5, op=P.CREATE_TTL, ttl=1000)
    assert h.proposer.reap_candidates(h.now + 1000) == []
    assert h.proposer.reap_candidates(h.now + 1001) == ["/t"]
    h.create("/t/child")
    assert h.proposer.reap_candidates(h.now + 10_000) == []
    h.delete("/t/child")
    h.now += 500
    h.set_data("/t", b"touch")  # modification restarts the ttl
    assert h.proposer.reap_candidates(h.now + 1000) == []
    assert h.proposer.reap_candidates(h.now + 1001) == ["/t"]


def test_sequential_ttl_node(h):
    h.create("/q")
    assert h.create("/q/t", flags=6, op=P.CREATE_TTL, ttl=10) == (0, "/q/t0000000000")
    assert h.proposer.reap_candidates(h.now + 11) == ["/q/t0000000000"]


def test_internal_delete_is_dropped_when_it_no_longer_applies(h):
    h.create("/c", flags=4, op=P.CREATE_CONTAINER)
    h.create("/c/x")
    h.delete("/c/x")
    assert h.proposer.reap_candidates(h.now) == ["/c"]
    # a child is created (prepped) before the reaper acts: the reaper's delete must not happen
    pending = h.prep(P.CREATE, P.Create("/c/y", b"", OPEN, 0))
    assert h.proposer.prep_internal_delete("/c", h.now) is None
    h.commit(pending)
    assert h.children("/c") == {"y"}
    assert h.proposer.prep_internal_delete("/missing", h.now) is None
