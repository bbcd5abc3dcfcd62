"""WatchManager: which watcher gets which event, how often."""
from __future__ import annotations

import pytest

from coordcore.tree.datatree import EV_CHANGED, EV_CREATED, EV_DELETED
from coordcore.tree.watches import (CHILD, DATA, NODE_CHILDREN_CHANGED, NODE_CREATED, NODE_DATA_CHANGED,
                                    NODE_DELETED, PERSISTENT, RECURSIVE, WatchManager)


class Watcher:
    def __init__(self):
        self.watches = set()
        self.calls = []

    def notify(self, event_type, path):
        self.calls.append((event_type, path))


@pytest.fixture
def wm():
    return WatchManager(notify=lambda w, event_type, path: w.notify(event_type, path))


@pytest.mark.parametrize("kind, watched, events, expected", [
    (DATA, "/a", [(EV_CHANGED, "/a", None, None)], [(NODE_DATA_CHANGED, "/a")]),
    (DATA, "/a", [(EV_CREATED, "/a", None, None)], [(NODE_CREATED, "/a")]),      # exists() watch on a missing node
    (DATA, "/a", [(EV_DELETED, "/a", None, None)], [(NODE_DELETED, "/a")]),
    (DATA, "/a", [(EV_CREATED, "/a/b", None, None)], []),                         # a data watch ignores children
    (DATA, "/a", [(EV_CHANGED, "/b", None, None)], []),
    (CHILD, "/a", [(EV_CREATED, "/a/b", None, None)], [(NODE_CHILDREN_CHANGED, "/a")]),
    (CHILD, "/a", [(EV_DELETED, "/a/b", None, None)], [(NODE_CHILDREN_CHANGED, "/a")]),
    (CHILD, "/a", [(EV_CHANGED, "/a", None, None)], []),                          # a child watch ignores data
    (CHILD, "/a", [(EV_DELETED, "/a", None, None)], [(NODE_DELETED, "/a")]),
    (CHILD, "/", [(EV_CREATED, "/x", None, None)], [(NODE_CHILDREN_CHANGED, "/")]),
    (CHILD, "/a", [(EV_CREATED, "/a/b/c", None, None)], []),                      # grandchildren do not count
])
def test_standard_watch_triggers(wm, kind, watched, events, expected):
    w = Watcher()
    wm.add(kind, watched, w)
    wm.fire(events)
    assert w.calls == expected


@pytest.mark.parametrize("kind, event", [
    (DATA, (EV_CHANGED, "/a", None, None)),
    (CHILD, (EV_CREATED, "/a/b", None, None)),
])
def test_standard_watches_fire_once(wm, kind, event):
    w = Watcher()
    wm.add(kind, "/a", w)
    wm.fire([event])
    wm.fire([event])
    assert len(w.calls) == 1
    assert not w.watches
    assert wm.summary() == (0, 0, 0)


def test_same_watch_registered_twice_fires_once(wm):
    w = Watcher()
    wm.add(DATA, "/a", w)
    wm.add(DATA, "/a", w)
    wm.fire([(EV_CHANGED, "/a", None, None)])
    assert w.calls == [(NODE_DATA_CHANGED, "/a")]


def test_every_watcher_is_notified(wm):
    ws = [Watcher() for _ in range(3)]
    for w in ws:
        wm.add(DATA, "/a", w)
    wm.fire([(EV_CHANGED, "/a", None, None)])
    assert all(w.calls == [(NODE_DATA_CHANGED, "/a")] for w in ws)


def test_one_node_deleted_per_watcher_for_data_and_child_watches(wm):
    both, data_only, child_only = Watcher(), Watcher(), Watcher()
    wm.add(DATA, "/a", both)
    wm.add(CHILD, "/a", both)
    wm.add(DATA, "/a", data_only)
    wm.add(CHILD, "/a", child_only)
    wm.fire([(EV_DELETED, "/a", None, None)])
    for w in (both, data_only, child_only):
        assert w.calls == [(NODE_DELETED, "/a")]
        assert not w.watches
    assert wm.summary() == (0, 0, 0)


def test_delete_also_fires_the_parents_child_watch(wm):
    w = Watcher()
    wm.add(DATA, "/p/c", w)
    wm.add(CHILD, "/p", w)
    wm.fire([(EV_DELETED, "/p/c", None, None)])
    assert w.calls == [(NODE_DELETED, "/p/c"), (NODE_CHILDREN_CHANGED, "/p")]


def test_events_are_delivered_in_txn_order(wm):
    w = Watcher()
    wm.add(CHILD, "/p", w)
    wm.add(DATA, "/p/a", w)
    wm.add(DATA, "/p", w)
    wm.fire([(EV_CREATED, "/p/a", None, None), (EV_CHANGED, "/p", None, None)])
    assert w.calls == [(NODE_CREATED, "/p/a"), (NODE_CHILDREN_CHANGED, "/p"), (NODE_DATA_CHANGED, "/p")]


def test_persistent_watch_fires_every_time(wm):
    w = Watcher()
    wm.add(PERSISTENT, "/a", w)
    events = [(EV_CREATED, "/a", None, None), (EV_CHANGED, "/a", None, None), (EV_CHANGED, "/a", None, None), (EV_CREATED, "/a/kid", None, None),
              (EV_DELETED, "/a/kid", None, None), (EV_CREATED, "/a/kid/grandkid", None, None), (EV_CHANGED, "/a/kid", None, None),
              (EV_DELETED, "/a", None, None), (EV_CREATED, "/a", None, None)]
    wm.fire(events)
    assert w.calls == [(NODE_CREATED, "/a"), (NODE_DATA_CHANGED, "/a"), (NODE_DATA_CHANGED, "/a"),
                       (NODE_CHILDREN_CHANGED, "/a"), (NODE_CHILDREN_CHANGED, "/a"),
                       (NODE_DELETED, "/a"), (NODE_CREATED, "/a")]
    assert wm.has(PERSISTENT, "/a", w)


def test_recursive_watch_fires_for_descendants_and_never_children_changed(wm):
    w = Watcher()
    wm.add(RECURSIVE, "/a", w)
    events = [(EV_CREATED, "/a", None, None), (EV_CREATED, "/a/b", None, None), (EV_CREATED, "/a/b/c", None, None), (EV_CHANGED, "/a/b/c", None, None),
              (EV_DELETED, "/a/b/c", None, None), (EV_CHANGED, "/a", None, None), (EV_CREATED, "/ab", None, None), (EV_CHANGED, "/other", None, None),
              (EV_DELETED, "/a/b", None, None)]
    wm.fire(events)
    assert w.calls == [(NODE_CREATED, "/a"), (NODE_CREATED, "/a/b"), (NODE_CREATED, "/a/b/c"),
                       (NODE_DATA_CHANGED, "/a/b/c"), (NODE_DELETED, "/a/b/c"), (NODE_DATA_CHANGED, "/a"),
                       (NODE_DELETED, "/a/b")]
    assert all(t != NODE_CHILDREN_CHANGED for t, _ in w.calls)
    assert wm.has(RECURSIVE, "/a", w)


def test_recursive_watch_on_root_sees_everything(wm):
    w = Watcher()
    wm.add(RECURSIVE, "/", w)
    wm.fire([(EV_CREATED, "/x", None, None), (EV_CHANGED, "/x/y/z", None, None)])
    assert w.calls == [(NODE_CREATED, "/x"), (NODE_DATA_CHANGED, "/x/y/z")]


def test_standard_and_persistent_on_one_watcher_notify_once_per_event(wm):
    w = Watcher()
    wm.add(DATA, "/a", w)
    wm.add(PERSISTENT, "/a", w)
    wm.add(RECURSIVE, "/", w)
    wm.fire([(EV_CHANGED, "/a", None, None)])
    assert w.calls == [(NODE_DATA_CHANGED, "/a")]
    # the one-shot is used up, the persistent ones stay
    assert not wm.has(DATA, "/a", w)
    assert wm.has(PERSISTENT, "/a", w) and wm.has(RECURSIVE, "/", w)
    wm.fire([(EV_CHANGED, "/a", None, None)])
    assert w.calls == [(NODE_DATA_CHANGED, "/a")] * 2


def test_remove_single_watch(wm):
    w = Watcher()
    wm.add(DATA, "/a", w)
    wm.add(CHILD, "/a", w)
    assert wm.remove(DATA, "/a", w) is True
    assert wm.remove(DATA, "/a", w) is False
    wm.fire([(EV_CHANGED, "/a", None, None), (EV_CREATED, "/a/b", None, None)])
    assert w.calls == [(NODE_CHILDREN_CHANGED, "/a")]


def test_remove_watcher_cleans_everything(wm):
    gone, stays = Watcher(), Watcher()
    for kind, path in [(DATA, "/a"), (CHILD, "/a"), (PERSISTENT, "/b"), (RECURSIVE, "/")]:
        wm.add(kind, path, gone)
    wm.add(DATA, "/a", stays)
    assert wm.summary() == (2, 3, 5)
    wm.remove_watcher(gone)
    assert not gone.watches
    assert wm.summary() == (1, 1, 1)
    assert wm.by_path() == {"/a": {stays}}
    wm.fire([(EV_CHANGED, "/a", None, None), (EV_CREATED, "/a/x", None, None), (EV_CHANGED, "/b", None, None), (EV_DELETED, "/a", None, None)])
    assert gone.calls == []
    assert stays.calls == [(NODE_DATA_CHANGED, "/a")]


def test_watches_set_tracks_registrations(wm):
    w = Watcher()
    wm.add(DATA, "/a", w)
    wm.add(RECURSIVE, "/r", w)
    assert w.watches == {(DATA, "/a"), (RECURSIVE, "/r")}
    wm.fire([(EV_CHANGED, "/a", None, None)])
    assert w.watches == {(RECURSIVE, "/r")}


def test_events_go_only_to_watchers_that_may_read_the_node():
    """The ACL an event carries is the changed node's (for NodeChildrenChanged, the parent's); a watcher
    without READ on it hears nothing, and a one-shot watch it had is used up anyway (as in ZooKeeper)."""
    secret, open_ = ("secret",), None
    wm = WatchManager(readable=lambda w, acl: w.may_read, notify=lambda w, event_type, path: w.notify(event_type, path))
    reader, outsider = Watcher(), Watcher()
    reader.may_read, outsider.may_read = True, False
    for w in (reader, outsider):
        wm.add(DATA, "/n", w)
        wm.add(CHILD, "/p", w)
        wm.add(RECURSIVE, "/r", w)
    wm.fire([(EV_CHANGED, "/n", secret, None), (EV_CREATED, "/p/c", open_, secret),
             (EV_CREATED, "/r/x", secret, open_), (EV_CREATED, "/r/y", open_, open_)])
    assert reader.calls == [(NODE_DATA_CHANGED, "/n"), (NODE_CHILDREN_CHANGED, "/p"), (NODE_CREATED, "/r/x"),
                            (NODE_CREATED, "/r/y")]
    assert outsider.calls == [(NODE_CREATED, "/r/y")]
    assert not wm.has(DATA, "/n", outsider) and not wm.has(CHILD, "/p", outsider)  # used up
