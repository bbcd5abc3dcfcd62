"""A snapshot encoded in steps while txns keep being applied is exactly the tree at its start zxid."""
from __future__ import annotations

from coordcore.tree import snapshot as S
from coordcore.tree import txn as T
from coordcore.tree.datatree import DataTree

OPEN = [(31, "world", "anyone")]


def _tree(n):
    t = DataTree()
    for i in range(n):
        t.apply(T.Txn(i + 1, i, 1, 1, T.T_CREATE, (f"/n{i}", b"v%d" % i, OPEN, 0, 0, -1, i + 1)))
    return t


def test_stepped_snapshot_ignores_changes_made_while_it_runs():
    t = _tree(500)
    expected = S.encode(t, [(7, 4000, b"p" * 16)])
    enc = S.SnapshotEncoder(t, [(7, 4000, b"p" * 16)], track=True)
    assert not enc.step(200)  # part of the tree is encoded ...
    z = 1000
    changes = [
        (T.T_SET_DATA, ("/n10", b"changed", 1)),       # a node already encoded
        (T.T_SET_DATA, ("/n400", b"changed", 1)),      # a node not encoded yet
        (T.T_SET_ACL, ("/n450", [(1, "world", "anyone")], 1)),
        (T.T_CREATE, ("/new", b"", OPEN, 0, 0, -1, 501)),
        (T.T_DELETE, ("/n300",)),
        (T.T_CREATE, ("/n300", b"again", OPEN, 0, 0, -1, 502)),   # same path, a new node
        (T.T_CREATE, ("/n499/kid", b"", OPEN, 0, 0, -1, 1)),      # changes an unencoded parent
    ]
    for t_type, body in changes:
        z += 1
        t.apply(T.Txn(z, z, 1, 1, t_type, body))
    while not enc.step(50):
        pass
    assert enc.result() == expected
    assert enc.zxid == 500
    assert t.preserved is None  # tracking ends with the encoder
    # and the live tree did change
    assert t.nodes["/n400"].data == b"changed" and "/new" in t.nodes


def test_stepped_snapshot_decodes_to_the_tree_it_started_from():
    t = _tree(100)
    before = S.encode(t, [])
    enc = S.SnapshotEncoder(t, [], track=True)
    enc.step(10)
    t.apply(T.Txn(1000, 1000, 1, 1, T.T_DELETE, ("/n50",)))
    while not enc.step(10):
        pass
    tree, sessions = S.decode(enc.result())
    assert "/n50" in tree.nodes and sessions == []
    assert S.encode(tree, []) == before


def test_stepped_snapshot_keeps_a_quota_stats_node_as_it_was():
    # The server rewrites a quota's stats node in place (no txn of its own); a snapshot being
    # encoded must still get the value it had at the start.
    t = DataTree()
    z = 0
    for path, data in [("/q", b""), ("/zookeeper/quota/q", b""),
                       ("/zookeeper/quota/q/zookeeper_limits", b"count=9,bytes=-1"),
                       ("/zookeeper/quota/q/zookeeper_stats", b"count=0,bytes=0")]:
        z += 1
        parent = t.nodes[path[:path.rfind("/")] or "/"]
        t.apply(T.Txn(z, z, 1, 1, T.T_CREATE, (path, data, OPEN, 0, 0, -1, parent.cseq + 1)))
    stats = "/zookeeper/quota/q/zookeeper_stats"
    assert t.nodes[stats].data == b"count=1,bytes=0"
    expected = S.encode(t, [])
    enc = S.SnapshotEncoder(t, [], track=True)
    assert not enc.step(1)
    t.apply(T.Txn(z + 1, z + 1, 1, 1, T.T_CREATE, ("/q/kid", b"abc", OPEN, 0, 0, -1, 1)))
    assert t.nodes[stats].data == b"count=2,bytes=3"
    while not enc.step(1):
        pass
    assert enc.result() == expected
    restored, _ = S.decode(enc.result())
    assert restored.quotas == {"/q"} and restored.nodes[stats].data == b"count=1,bytes=0"
