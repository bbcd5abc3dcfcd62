"""Watches over the raw protocol, so the exact events, their order relative to replies, and one-shot
semantics are visible: exists/getData/getChildren watches, NodeDeleted once, notification before the
reply revealing the change, session-close deletions, persistent and recursive watches, removeWatches,
checkWatches, setWatches."""
from __future__ import annotations

import pytest

try:
    from tests.integration import rawzk
except ImportError:
    import rawzk

pytestmark = pytest.mark.timeout(60)

CREATED, DELETED, CHANGED, CHILD = 1, 2, 3, 4


def evs(client):
    """Events received so far as (type, path), consumed."""
    out = [(e.type, e.path) for e in client.events]
    assert all(e.state == 3 for e in client.events)
    client.events.clear()
    return out


@pytest.fixture
def pair(zk_server):
    with rawzk.connected(zk_server.connect_string) as watcher, rawzk.connected(zk_server.connect_string) as writer:
        yield watcher, writer


def test_exists_watch_on_missing_node_fires_created_once(pair, zk_root):
    w, x = pair
    p = zk_root + "/n"
    assert w.exists(p, watch=True).err == rawzk.NONODE
    assert x.create(p, b"").err == 0
    x.set_data(p, b"1")
    w.sync(p)  # a reply after the change: the notification must have arrived before it
    assert evs(w) == [(CREATED, p)]
    assert x.delete(p).err == 0
    w.sync(p)
    assert evs(w) == []  # one-shot


def test_get_data_and_children_watches(pair, zk_root):
    w, x = pair
    p = zk_root + "/n"
    assert w.get_data(p, watch=True).err == rawzk.NONODE  # no watch registered on a miss
    assert w.get_children(p, watch=True).err == rawzk.NONODE
    x.create(p, b"")
    w.sync(p)
    assert evs(w) == []
    assert w.get_data(p, watch=True).err == 0
    assert w.get_children(p, watch=True).err == 0
    assert w.get_children(zk_root, watch=True, op=rawzk.GET_CHILDREN2).err == 0
    x.set_data(p, b"1")
    x.create(p + "/c", b"")
    x.set_data(p, b"2")  # data watch already fired
    w.sync(p)
    assert evs(w) == [(CHANGED, p), (CHILD, p)]
    # delete: data and child watches on the node give a single NodeDeleted; the parent's child watch fires
    assert w.get_data(p, watch=True).err == 0
    assert w.get_children(p, watch=True).err == 0
    assert w.exists(p, watch=True).err == 0
    x.delete(p + "/c")
    x.delete(p)
    w.sync(p)
    assert evs(w) == [(CHILD, p), (DELETED, p), (CHILD, zk_root)]


def test_set_acl_and_failed_ops_fire_nothing(pair, zk_root):
    w, x = pair
    p = zk_root + "/n"
    x.create(p, b"")
    assert w.get_data(p, watch=True).err == 0
    assert w.get_children(p, watch=True).err == 0
    assert x.call(rawzk.SET_ACL, rawzk.Writer().string(p).acls(rawzk.OPEN_ACL).int(-1).bytes()).err == 0
    assert x.set_data(p, b"", version=9).err == rawzk.BADVERSION
    assert x.create(p, b"").err == rawzk.NODEEXISTS
    w.sync(p)
    assert evs(w) == []


def test_notification_precedes_the_reply_that_reveals_the_change(pair, zk_root):
    w, x = pair
    p = zk_root + "/n"
    x.create(p, b"0")
    assert w.get_data(p, watch=True).err == 0
    x.set_data(p, b"1")
    w.log.clear()
    r = w.get_data(p)
    assert r.reader().buffer() == b"1"
    kinds = [k for k, _ in w.log]
    assert kinds == ["event", "reply"]


def test_watcher_own_write_event_before_reply(zk_server, zk_root):
    with rawzk.connected(zk_server.connect_string) as c:
        p = zk_root + "/self"
        assert c.exists(p, watch=True).err == rawzk.NONODE
        c.log.clear()
        assert c.create(p, b"").err == 0
        assert [k for k, _ in c.log] == ["event", "reply"]
        assert c.events[0].path == p and c.events[0].type == CREATED


def test_ephemeral_deleted_by_session_close_fires_watches(pair, zk_server, zk_root):
    w, _ = pair
    with rawzk.connected(zk_server.connect_string) as owner:
        assert owner.create(zk_root + "/e", b"", flags=1).err == 0
        assert w.exists(zk_root + "/e", watch=True).err == 0
        assert w.get_children(zk_root, watch=True).err == 0
        assert owner.close_session().err == 0
        assert owner.wait_closed(5)
    assert w.exists(zk_root + "/e").err == rawzk.NONODE  # gone at once
    assert evs(w) == [(DELETED, zk_root + "/e"), (CHILD, zk_root)]


def test_watch_registered_twice_fires_once(pair, zk_root):
    w, x = pair
    p = zk_root + "/n"
    x.create(p, b"")
    w.get_data(p, watch=True)
    w.get_data(p, watch=True)
    w.exists(p, watch=True)
    x.set_data(p, b"1")
    w.sync(p)
    assert evs(w) == [(CHANGED, p)]


def test_multi_fires_per_subop_in_order_only_on_success(pair, zk_root):
    w, x = pair
    a, b = zk_root + "/a", zk_root + "/b"
    assert w.exists(a, watch=True).err == rawzk.NONODE
    assert w.get_children(zk_root, watch=True).err == 0
    # failing multi: nothing fires
    m = rawzk.Writer()
    m.int(rawzk.CREATE).bool(False).int(-1).string(a).buffer(b"").acls(rawzk.OPEN_ACL).int(0)
    m.int(rawzk.DELETE).bool(False).int(-1).string(zk_root + "/missing").int(-1)
    m.int(-1).bool(True).int(-1)
    assert x.call(rawzk.MULTI, m.bytes()).err == 0
    w.sync(a)
    assert evs(w) == []
    m = rawzk.Writer()
    m.int(rawzk.CREATE).bool(False).int(-1).string(b).buffer(b"").acls(rawzk.OPEN_ACL).int(0)
    m.int(rawzk.CREATE).bool(False).int(-1).string(a).buffer(b"").acls(rawzk.OPEN_ACL).int(0)
    m.int(-1).bool(True).int(-1)
    assert x.call(rawzk.MULTI, m.bytes()).err == 0
    w.sync(a)
    assert evs(w) == [(CHILD, zk_root), (CREATED, a)]


def test_multi_read_sets_no_watches(pair, zk_root):
    w, x = pair
    x.create(zk_root + "/n", b"")
    w.multi_read([(rawzk.GET_DATA, zk_root + "/n"), (rawzk.GET_CHILDREN, zk_root + "/n")])
    x.set_data(zk_root + "/n", b"1")
    x.create(zk_root + "/n/c", b"")
    w.sync(zk_root)
    assert evs(w) == []


def test_persistent_watch(pair, zk_root):
    w, x = pair
    p = zk_root + "/p"
    r = w.add_watch(p, 0)  # node need not exist
    assert r.err == 0 and r.body == b"\x00\x00\x00\x00"
    x.create(p, b"")
    x.set_data(p, b"1")
    x.set_data(p, b"2")
    x.create(p + "/c", b"")
    x.set_data(p + "/c", b"x")  # not the watched path
    x.delete(p + "/c")
    x.delete(p)
    x.create(p, b"")
    w.sync(p)
    assert evs(w) == [(CREATED, p), (CHANGED, p), (CHANGED, p), (CHILD, p), (CHILD, p), (DELETED, p),
                      (CREATED, p)]


def test_persistent_recursive_watch(pair, zk_root):
    w, x = pair
    p = zk_root + "/r"
    assert w.add_watch(p, 1).err == 0
    x.create(p, b"")
    x.create(p + "/c", b"")
    x.create(p + "/c/d", b"")
    x.set_data(p + "/c/d", b"1")
    x.create(zk_root + "/rr", b"")  # sibling with the same prefix: not a descendant
    x.delete(p + "/c/d")
    w.sync(p)
    assert evs(w) == [(CREATED, p), (CREATED, p + "/c"), (CREATED, p + "/c/d"), (CHANGED, p + "/c/d"),
                      (DELETED, p + "/c/d")]


def test_remove_and_check_watches(pair, zk_root):
    w, x = pair
    p = zk_root + "/n"
    x.create(p, b"")
    assert w.check_watches(p, 1).err == rawzk.NOWATCHER
    assert w.remove_watches(p, 3).err == rawzk.NOWATCHER
    assert w.get_data(p, watch=True).err == 0
    assert w.check_watches(p, 2).err == 0
    assert w.check_watches(p, 1).err == rawzk.NOWATCHER
    assert w.get_children(p, watch=True).err == 0
    assert w.check_watches(p, 3).err == 0
    assert w.remove_watches(p, 2).err == 0
    assert w.check_watches(p, 2).err == rawzk.NOWATCHER
    assert w.check_watches(p, 1).err == 0
    x.set_data(p, b"1")
    x.create(p + "/c", b"")
    w.sync(p)
    assert evs(w) == [(CHILD, p)]
    assert w.exists(zk_root + "/missing", watch=True).err == rawzk.NONODE
    assert w.remove_watches(zk_root + "/missing", 2).err == 0
    # a persistent watch is removed with type Any
    assert w.add_watch(zk_root + "/pw", 0).err == 0
    assert w.remove_watches(zk_root + "/pw", 3).err == 0
    x.create(zk_root + "/pw", b"")
    x.create(zk_root + "/missing", b"")
    w.sync(p)
    assert evs(w) == []


def test_set_watches_relative_zxid(pair, zk_root):
    w, x = pair
    p = zk_root + "/n"
    assert x.create(p, b"").err == 0
    assert x.create(zk_root + "/stale", b"").err == 0
    old = x.set_data(zk_root + "/stale", b"").zxid - 1
    now = x.sync(p).zxid
    r = w.set_watches(now, data=[p, zk_root + "/gone"], exist=[zk_root + "/later", p], child=[p])
    assert r.err == 0
    assert sorted(evs(w)) == sorted([(DELETED, zk_root + "/gone"), (CREATED, p)])
    r = w.set_watches(old, data=[zk_root + "/stale"])
    assert r.err == 0
    assert evs(w) == [(CHANGED, zk_root + "/stale")]
    x.set_data(p, b"1")
    x.create(zk_root + "/later", b"")
    x.create(p + "/c", b"")
    w.sync(p)
    assert evs(w) == [(CHANGED, p), (CREATED, zk_root + "/later"), (CHILD, p)]



def test_watch_bookkeeping_where_coordcore_follows_3_9(pair, zk_server, zk_root):
    """The README's documented differences, pinned on both sides: coordcore keeps a connection's
    one-shot and persistent watches on one path apart and answers checkWatches from the asking
    connection only (as ZooKeeper 3.9); ZooKeeper 3.8 mixes the modes up (ZOOKEEPER-4466) and answers
    from anyone's watches. If either side changes, this fails and the README must change with it."""
    w, x = pair
    p = zk_root + "/m"
    assert x.create(p, b"").err == 0
    assert w.add_watch(p, 0).err == 0          # persistent
    assert w.get_data(p, watch=True).err == 0  # then a one-shot data watch on the same path
    x.set_data(p, b"1")
    w.sync(p)
    assert evs(w) == [(CHANGED, p)]
    x.set_data(p, b"2")                        # the persistent watch must still be there...
    w.sync(p)
    other_check = x.check_watches(p, 3).err    # ...and x, who set no watch, asks about p
    remove_typed = w.remove_watches(p, 4).err  # remove the persistent watch by its own type
    if zk_server.backend == "coordcore":
        assert evs(w) == [(CHANGED, p)]
        assert other_check == rawzk.NOWATCHER
        assert remove_typed == 0
        x.set_data(p, b"3")
        w.sync(p)
        assert evs(w) == []
    else:  # ZooKeeper 3.8
        assert evs(w) == []                    # the one-shot watch replaced the persistent one
        assert other_check == 0
        assert remove_typed == rawzk.MARSHALLINGERROR
