"""WatchManager: one-shot data/child watches plus persistent and persistent-recursive ones.

Watchers are opaque objects with a `watches` set used to drop everything when
their connection closes; a notification goes to `notify(watcher, event_type, path)`,
a sink the owner supplies (the watch manager never calls into a connection).  Standard and
persistent registrations are tracked independently (ZooKeeper 3.8 mixes them
up on one connection: ZOOKEEPER-4466).
"""
from __future__ import annotations

from coordcore.tree.datatree import EV_CHANGED, EV_CREATED, EV_DELETED
from coordcore.tree.paths import split

DATA, CHILD, PERSISTENT, RECURSIVE = 0, 1, 2, 3

# WatcherEvent types on the wire
NODE_CREATED, NODE_DELETED, NODE_DATA_CHANGED, NODE_CHILDREN_CHANGED = 1, 2, 3, 4


class WatchManager:
    def __init__(self, readable=None, notify=None):
        self.tables: tuple[dict, dict, dict, dict] = ({}, {}, {}, {})
        # readable(watcher, acl) -> bool: may this watcher READ a node with this ACL? A watcher that
        # may not is not notified about the node (a watch it set earlier is used up all the same).
        self.readable = readable
        self.notify = notify

    def add(self, kind: int, path: str, watcher) -> None:
        self.tables[kind].setdefault(path, set()).add(watcher)
        watcher.watches.add((kind, path))

    def has(self, kind: int, path: str, watcher) -> bool:
        s = self.tables[kind].get(path)
        return s is not None and watcher in s

    def remove(self, kind: int, path: str, watcher) -> bool:
        s = self.tables[kind].get(path)
        if s is None or watcher not in s:
            return False
        s.discard(watcher)
        if not s:
            del self.tables[kind][path]
        watcher.watches.discard((kind, path))
        return True

    def remove_watcher(self, watcher) -> None:
        for kind, path in list(watcher.watches):
            s = self.tables[kind].get(path)
            if s is not None:
                s.discard(watcher)
                if not s:
                    del self.tables[kind][path]
        watcher.watches.clear()

    def _take(self, kind: int, path: str):
        s = self.tables[kind].pop(path, None)
        if s:
            for w in s:
                w.watches.discard((kind, path))
        return s

    def _recursive_watchers(self, path: str):
        table = self.tables[RECURSIVE]
        if not table:
            return ()
        found = []
        p = path
        while True:
            s = table.get(p)
            if s:
                found.extend(s)
            if p == "/":
                break
            p = split(p)[0]
        return found

    def fire(self, events) -> None:
        """Deliver the triggers of one applied txn, in order."""
        data, child, persistent, recursive = self.tables
        if not (data or child or persistent or recursive):
            return
        deliver = self._deliver
        for ev, path, acl, parent_acl in events:
            if ev == EV_CHANGED:
                deliver(NODE_DATA_CHANGED, path, acl, self._take(DATA, path), persistent.get(path),
                        self._recursive_watchers(path))
            elif ev == EV_CREATED:
                deliver(NODE_CREATED, path, acl, self._take(DATA, path), persistent.get(path),
                        self._recursive_watchers(path))
                parent = split(path)[0]
                deliver(NODE_CHILDREN_CHANGED, parent, parent_acl, self._take(CHILD, parent), persistent.get(parent),
                        ())
            elif ev == EV_DELETED:
                # one NodeDeleted per watcher, whether it watched data, children or both
                deliver(NODE_DELETED, path, acl, self._take(DATA, path), self._take(CHILD, path),
                        persistent.get(path), self._recursive_watchers(path))
                parent = split(path)[0]
                deliver(NODE_CHILDREN_CHANGED, parent, parent_acl, self._take(CHILD, parent), persistent.get(parent),
                        ())

    def _deliver(self, etype, path, acl, *groups) -> None:
        """Notify each watcher in ``groups`` once; with an ``acl``, only those allowed to READ."""
        if not any(groups):
            return
        readable = self.readable if acl is not None else None
        notify = self.notify
        seen = set()
        for group in groups:
            if group:
                for w in list(group):
                    if w not in seen:
                        seen.add(w)
                        if readable is None or readable(w, acl):
                            notify(w, etype, path)

    def summary(self) -> tuple[int, int, int]:
        """(connections watching, paths watched, total watches) as `wchs` reports them."""
        watchers, paths, total = set(), set(), 0
        for table in self.tables:
            for path, s in table.items():
                paths.add(path)
                total += len(s)
                watchers.update(s)
        return len(watchers), len(paths), total

    def by_path(self) -> dict:
        out: dict = {}
        for table in self.tables:
            for path, s in table.items():
                out.setdefault(path, set()).update(s)
        return out
