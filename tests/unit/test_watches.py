"""WatchManager: which watcher gets which event, how often (reference section 13)."""
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
    return WatchManager()


@pytest.mark.parametrize("kind, watched, events, expected", [
    (DATA, "/a", [(EV_CHANGED, "/a")], [(NODE_DATA_CHANGED, "/a")]),
    (DATA, "/a", [(EV_CREATED, "/a")], [(NODE_CREATED, "/a")]),      # exists() watch on a missing node
    (DATA, "/a", [(EV_DELETED, "/a")], [(NODE_DELETED, "/a")]),
    (DATA, "/a", [(EV_CREATED, "/a/b")], []),                         # a data watch ignores children
    (DATA, "/a", [(EV_CHANGED, "/b")], []),
    (CHILD, "/a", [(EV_CREATED, "/a/b")], [(NODE_CHILDREN_CHANGED, "/a")]),
    (CHILD, "/a", [(EV_DELETED, "/a/b")], [(NODE_CHILDREN_CHANGED, "/a")]),
    (CHILD, "/a", [(EV_CHANGED, "/a")], []),                          # a child watch ignores data
    (CHILD, "/a", [(EV_DELETED, "/a")], [(NODE_DELETED, "/a")]),
    (CHILD, "/", [(EV_CREATED, "/x")], [(NODE_CHILDREN_CHANGED, "/")]),
    (CHILD, "/a", [(EV_CREATED, "/a/b/c")], []),                      # grandchildren do not count
])
def test_standard_watch_triggers(wm, kind, watched, events, expected):
    w = Watcher()
    wm.add(kind, watched, w)
    wm.fire(events)
    assert w.calls == expected


@pytest.mark.parametrize("kind, event", [
    (DATA, (EV_CHANGED, "/a")),
    (CHILD, (EV_CREATED, "/a/b")),
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
    wm.fire([(EV_CHANGED, "/a")])
    assert w.calls == [(NODE_DATA_CHANGED, "/a")]


def test_every_watcher_is_notified(wm):
    ws = [Watcher() for _ in range(3)]
    for w in ws:
        wm.add(DATA, "/a", w)
    wm.fire([(EV_CHANGED, "/a")])
    assert all(w.calls == [(NODE_DATA_CHANGED, "/a")] for w in ws)


def test_one_node_deleted_per_watcher_for_data_and_child_watches(wm):
    both, data_only, child_only = Watcher(), Watcher(), Watcher()
    wm.add(DATA, "/a", both)
    wm.add(CHILD, "/a", both)
    wm.add(DATA, "/a", data_only)
    wm.add(CHILD, "/a", child_only)
    wm.fire([(EV_DELETED, "/a")])
    for w in (both, data_only, child_only):
        assert w.calls == [(NODE_DELETED, "/a")]
        assert not w.watches
    assert wm.summary() == (0, 0, 0)


def test_delete_also_fires_the_parents_child_watch(wm):
    w = Watcher()
    wm.add(DATA, "/p/c", w)
    wm.add(CHILD, "/p", w)
    wm.fire([(EV_DELETED, "/p/c")])
    assert w.calls == [(NODE_DELETED, "/p/c"), (NODE_CHILDREN_CHANGED, "/p")]


def test_events_are_delivered_in_txn_order(wm):
    w = Watcher()
    wm.add(CHILD, "/p", w)
    wm.add(DATA, "/p/a", w)
    wm.add(DATA, "/p", w)
    wm.fire([(EV_CREATED, "/p/a"), (EV_CHANGED, "/p")])
    assert w.calls == [(NODE_CREATED, "/p/a"), (NODE_CHILDREN_CHANGED, "/p"), (NODE_DATA_CHANGED, "/p")]


def test_persistent_watch_fires_every_time(wm):
    w = Watcher()
    wm.add(PERSISTENT, "/a", w)
    events = [(EV_CREATED, "/a"), (EV_CHANGED, "/a"), (EV_CHANGED, "/a"), (EV_CREATED, "/a/kid"),
              (EV_DELETED, "/a/kid"), (EV_CREATED, "/a/kid/grandkid"), (EV_CHANGED, "/a/kid"),
              (EV_DELETED, "/a"), (EV_CREATED, "/a")]
    wm.fire(events)
    assert w.calls == [(NODE_CREATED, "/a"), (NODE_DATA_CHANGED, "/a"), (NODE_DATA_CHANGED, "/a"),
                       (NODE_CHILDREN_CHANGED, "/a"), (NODE_CHILDREN_CHANGED, "/a"),
                       (NODE_DELETED, "/a"), (NODE_CREATED, "/a")]
    assert wm.has(PERSISTENT, "/a", w)


def test_recursive_watch_fires_for_descendants_and_never_children_changed(wm):
    w = Watcher()
    wm.add(RECURSIVE, "/a", w)
    events = [(EV_CREATED, "/a"), (EV_CREATED, "/a/b"), (EV_CREATED, "/a/b/c"), (EV_CHANGED, "/a/b/c"),
              (EV_DELETED, "/a/b/c"), (EV_CHANGED, "/a"), (EV_CREATED, "/ab"), (EV_CHANGED, "/other"),
              (EV_DELETED, "/a/b")]
    wm.fire(events)
    assert w.calls == [(NODE_CREATED, "/a"), (NODE_CREATED, "/a/b"), (NODE_CREATED, "/a/b/c"),
                       (NODE_DATA_CHANGED, "/a/b/c"), (NODE_DELETED, "/a/b/c"), (NODE_DATA_CHANGED, "/a"),
                       (NODE_DELETED, "/a/b")]
    assert all(t != NODE_CHILDREN_CHANGED for t, _ in w.calls)
    assert wm.has(RECURSIVE, "/a", w)


def test_recursive_watch_on_root_sees_everything(wm):
    w = Watcher()
    wm.add(RECURSIVE, "/", w)
    wm.fire([(EV_CREATED, "/x"), (EV_CHANGED, "/x/y/z")])
    assert w.calls == [(NODE_CREATED, "/x"), (NODE_DATA_CHANGED, "/x/y/z")]


def test_standard_and_persistent_on_one_watcher_notify_once_per_event(wm):
    w = Watcher()
    wm.add(DATA, "/a", w)
    wm.add(PERSISTENT, "/a", w)
    wm.add(RECURSIVE, "/", w)
    wm.fire([(EV_CHANGED, "/a")])
    assert w.calls == [(NODE_DATA_CHANGED, "/a")]
    # the one-shot is used up, the persistent ones stay
    assert not wm.has(DATA, "/a", w)
    assert wm.has(PERSISTENT, "/a", w) and wm.has(RECURSIVE, "/", w)
    wm.fire([(EV_CHANGED, "/a")])
    assert w.calls == [(NODE_DATA_CHANGED, "/a")] * 2


def test_remove_single_watch(wm):
    w = Watcher()
    wm.add(DATA, "/a", w)
    wm.add(CHILD, "/a", w)
    assert wm.remove(DATA, "/a", w) is True
    assert wm.remove(DATA, "/a", w) is False
    wm.fire([(EV_CHANGED, "/a"), (EV_CREATED, "/a/b")])
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
    wm.fire([(EV_CHANGED, "/a"), (EV_CREATED, "/a/x"), (EV_CHANGED, "/b"), (EV_DELETED, "/a")])
    assert gone.calls == []
    assert stays.calls == [(NODE_DATA_CHANGED, "/a")]


def test_watches_set_tracks_registrations(wm):
    w = Watcher()
    wm.add(DATA, "/a", w)
    wm.add(RECURSIVE, "/r", w)
    assert w.watches == {(DATA, "/a"), (RECURSIVE, "/r")}
    wm.fire([(EV_CHANGED, "/a")])
    assert w.watches == {(RECURSIVE, "/r")}
