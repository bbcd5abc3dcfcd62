"""Node: what every replica holds and does, minus sockets and clock.

It owns the applied DataTree (what reads see), the watches and the session table.  It applies
committed txns (firing their watches), builds the reply for the request that made a txn and answers
reads.  What only a leader does -- prep against the pending tree, zxid allocation, session expiry,
container/TTL reaping -- is in proposer.Proposer; the pipeline that joins the two is replica.Replica.

Watch notifications leave through `notify(watcher, event type, path)`, a sink set by the replica:
the Node never calls into a connection.  Time comes in as arguments.
"""
from __future__ import annotations

from typing import Iterator

from coordcore.errors import Err
from coordcore.node import acl as A
from coordcore.node.sessions import SessionTracker
from coordcore.storage.api import DurableState
from coordcore.tree import snapshot as S
from coordcore.tree import txn as T
from coordcore.tree.datatree import DataTree
from coordcore.tree.hashorder import hash_set_order
from coordcore.tree.watches import (CHILD, DATA, NODE_CHILDREN_CHANGED, NODE_CREATED, NODE_DATA_CHANGED,
                                    NODE_DELETED, PERSISTENT, RECURSIVE, WatchManager)
from coordcore.wire import proto as P
from coordcore.wire.jute import I32, Writer

NO_BODY = b""


def _drop(watcher, event_type, path):
    """The notification sink until a replica sets its own (recovery replays with no watchers)."""


def _watch_manager() -> WatchManager:
    """No watches yet; a watch fires to a connection only while it may read the node (its ACL)."""
    return WatchManager(readable=lambda conn, acl: A.check(acl, conn.auth, A.PERM_READ), notify=_drop)


class Node:
    def __init__(self, *, tick_ms: int, server_id: int, state: DurableState, now_ms: int):
        # A standalone ZooKeeper's session tracker runs as server 1, so its session ids start 0x01...;
        # in an ensemble the top byte is the server's myid.
        self.tick_ms, self.server_id = tick_ms, server_id
        self.sessions = SessionTracker(tick_ms, server_id or 1, now_ms)
        if state.snapshot is not None:
            self.committed, sess = S.decode(state.snapshot)
            for sid, timeout, passwd in sess:
                self.sessions.add(sid, timeout, passwd, now_ms)
        else:
            self.committed = DataTree()
        self.notify = _drop
        self.watches = _watch_manager()
        self.recovered_txns = 0
        for zxid, data in state.txns:
            self.apply_committed(T.decode(data))
            self.recovered_txns += 1
        self.committed.events.clear()
        self.sessions.refresh_all(now_ms)

    def restarted(self, now_ms: int) -> "Node":
        """The Node a restart from storage at this node's applied point would build, without reading it:
        the same tree (it holds only committed, durable txns, in order), the sessions it records -- their
        membership changes only by applied txns -- with fresh deadlines and a new session-id base, no
        watches, and no pending notifications.  (The tree object itself is shared, not copied.)"""
        node = Node.__new__(Node)
        node.tick_ms, node.server_id = self.tick_ms, self.server_id
        node.sessions = SessionTracker(self.tick_ms, self.server_id or 1, now_ms)
        for s in self.sessions.sessions.values():
            node.sessions.add(s.session_id, s.timeout_ms, s.passwd, now_ms)
        node.committed = self.committed
        node.committed.events.clear()
        node.notify = _drop
        node.watches = _watch_manager()
        node.recovered_txns = 0
        return node

    def set_notify(self, sink) -> None:
        """Where watch notifications go: sink(watcher, event type, path), in the order they fire."""
        self.notify = self.watches.notify = sink

    @property
    def last_applied(self) -> int:
        return self.committed.last_zxid

    # ------------------------------------------------------------------ applying committed txns
    def apply_committed(self, txn: T.Txn):
        """Apply a committed, durable txn to the tree and fire its watches.  Returns the apply result."""
        tree = self.committed
        result = tree.apply(txn)
        if tree.events:
            events = tree.events
            tree.events = []
            self.watches.fire(events)
        t = txn.type
        if t == T.T_CREATE_SESSION:
            self.sessions.add(txn.session_id, txn.body[0], txn.body[1], txn.time)
        elif t == T.T_CLOSE_SESSION:
            self.sessions.remove(txn.session_id)
        return result

    def reply_body(self, op, req, txn: T.Txn, result) -> tuple[int, bytes]:
        """The (error code, reply body) for the request `op`/`req` that made `txn`, once applied."""
        t = txn.type
        if t == T.T_ERROR:
            return txn.body[0], NO_BODY
        if op == P.MULTI:
            return 0, self._multi_reply(req.ops, txn, result)
        return 0, self._op_result(op, t, txn.body, result)

    @staticmethod
    def _op_result(op, t, body, result) -> bytes:
        if t == T.T_CREATE:
            path = body[0].encode("utf-8")
            head = I32.pack(len(path)) + path
            return head if op == P.CREATE else head + result
        if t in (T.T_SET_DATA, T.T_SET_ACL):
            return result
        return NO_BODY

    def _multi_reply(self, ops, txn, result) -> bytes:
        w = Writer()
        for (op, _), (st, sb), (_, res) in zip(ops, txn.body[0], result):
            if st == T.T_ERROR:
                w.int(-1).bool(False).int(sb[0]).int(sb[0])
            elif st == T.T_CREATE:
                # ZooKeeper 3.8 answers create and create2 inside a multi with a path-only result;
                # container and TTL creates carry the Stat.
                if op in (P.CREATE_CONTAINER, P.CREATE_TTL):
                    w.int(P.CREATE2).bool(False).int(0).ustring(sb[0]).raw(res)
                else:
                    w.int(P.CREATE).bool(False).int(0).ustring(sb[0])
            else:
                w.int(st).bool(False).int(0).raw(self._op_result(op, st, sb, res))
        w.raw(P.MULTI_DONE)
        return w.getvalue()

    # ------------------------------------------------------------------ reads
    def read(self, op, req, conn) -> tuple[int, bytes]:
        """Answer a read from the committed tree; `conn` is the watcher (watches, auth, session_id)."""
        handler = self._READS.get(op)
        if handler is None:
            return Err.UNIMPLEMENTED, NO_BODY
        return handler(self, req, conn)

    def _exists(self, req, conn):
        path = req.path
        if "\x00" in path:
            return Err.BADARGUMENTS, NO_BODY
        node = self.committed.nodes.get(path or "/")
        if req.watch:
            self.watches.add(DATA, path, conn)
        if node is None:
            return Err.NONODE, NO_BODY
        return 0, node.stat_bytes()

    def _readable(self, path, conn, perm=A.PERM_READ):
        """(0, node) for a read allowed on an existing node, else (error code, None)."""
        node = self.committed.nodes.get(path or "/")  # ZooKeeper maps "" to the root
        if node is None:
            return Err.NONODE, None
        if not A.check(node.meta[0], conn.auth, perm):
            return Err.NOAUTH, None
        return 0, node

    def _get_data(self, req, conn):
        err, node = self._readable(req.path, conn)
        if err:
            return err, NO_BODY
        if req.watch:
            self.watches.add(DATA, req.path, conn)
        data = node.data
        if data is None:
            return 0, b"\xff\xff\xff\xff" + node.stat_bytes()
        return 0, I32.pack(len(data)) + data + node.stat_bytes()

    def _children(self, req, conn, with_stat):
        err, node = self._readable(req.path, conn)
        if err:
            return err, NO_BODY
        if req.watch:
            self.watches.add(CHILD, req.path, conn)
        path = req.path or "/"
        cut = 1 if path == "/" else len(path) + 1  # children are stored as full paths
        # Sorted: ZooKeeper leaves the order unspecified (3.8 gives its hash-set order), and a set's
        # order here would change from one server process to the next. Sorting costs ~0.4 us for 16
        # children and ~16 ms for 100k.
        w = Writer().strings(sorted([c[cut:] for c in node.children]))
        if with_stat:
            w.raw(node.stat_bytes())
        return 0, w.getvalue()

    def _get_children(self, req, conn):
        return self._children(req, conn, False)

    def _get_children2(self, req, conn):
        return self._children(req, conn, True)

    def _get_acl(self, req, conn):
        err, node = self._readable(req.path, conn, A.PERM_READ | A.PERM_ADMIN)
        if err:
            return err, NO_BODY
        acl = node.acl
        if not A.check(node.acl, conn.auth, A.PERM_ADMIN):
            acl = A.mask_digests(acl)
        return 0, Writer().acls(acl).raw(node.stat_bytes()).getvalue()

    def _sync(self, req, conn):
        return 0, Writer().ustring(req.path).getvalue()

    def _all_children_number(self, req, conn):
        err, node = self._readable(req.path, conn)
        if err:
            return err, NO_BODY
        if not req.path:
            # ZooKeeper 3.8 answers "" with the number of every node, the root included: one more than
            # for "/" (observed; other paths count their descendants)
            return 0, I32.pack(self.committed.count_descendants("/") + 1)
        return 0, I32.pack(self.committed.count_descendants(req.path))

    def _ephemerals(self, req, conn):
        prefix = req.path or "/"
        owned = self.committed.ephemerals.get(conn.session_id, ())
        nodes = self.committed.nodes
        # ZooKeeper lists them in its hash-set order, not sorted
        paths = [p for p in hash_set_order([(p, nodes[p].czxid) for p in owned])
                 if prefix == "/" or p.startswith(prefix)]
        return 0, Writer().strings(paths).getvalue()

    def _who_am_i(self, req, conn):
        w = Writer()
        ids = conn.auth.ordered()  # ZooKeeper's hash-set order, not the order they were added
        w.int(len(ids))
        for scheme, ident in ids:
            user = ident.split(":", 1)[0] if scheme == "digest" else ident
            w.ustring(scheme).ustring(user)
        return 0, w.getvalue()

    def _add_watch(self, req, conn):
        if req.type == 0:
            self.watches.add(PERSISTENT, req.path, conn)
        elif req.type == 1:
            self.watches.add(RECURSIVE, req.path, conn)
        else:
            return Err.MARSHALLINGERROR, NO_BODY  # ZooKeeper cannot map the mode: a marshalling error
        return 0, I32.pack(0)

    def _watch_kinds(self, wtype):
        if wtype == 1:
            return (CHILD,)
        if wtype == 2:
            return (DATA,)
        if wtype == 3:
            return (DATA, CHILD, PERSISTENT, RECURSIVE)
        if wtype == 4:
            return (PERSISTENT,)
        if wtype == 5:
            return (RECURSIVE,)
        return ()

    def _check_watches(self, req, conn):
        if any(self.watches.has(k, req.path, conn) for k in self._watch_kinds(req.type)):
            return 0, NO_BODY
        return Err.NOWATCHER, NO_BODY

    def _remove_watches(self, req, conn):
        removed = False
        for k in self._watch_kinds(req.type):
            removed |= self.watches.remove(k, req.path, conn)
        return (0, NO_BODY) if removed else (Err.NOWATCHER, NO_BODY)

    def _set_watches(self, req, conn):
        rel = req.relative_zxid
        nodes = self.committed.nodes
        notify = self.notify
        def resume(paths, kind, changed_event, changed):
            # a watch whose node changed after the client's last seen zxid fires now; else it is set
            for path in paths:
                n = nodes.get(path)
                if n is None:
                    notify(conn, NODE_DELETED, path)
                elif changed(n):
                    notify(conn, changed_event, path)
                else:
                    self.watches.add(kind, path, conn)

        # ZooKeeper's order: data, exist, child
        resume(req.data, DATA, NODE_DATA_CHANGED, lambda n: n.mzxid > rel)
        for path in req.exist:
            if path in nodes:
                notify(conn, NODE_CREATED, path)
            else:
                self.watches.add(DATA, path, conn)
        resume(req.child, CHILD, NODE_CHILDREN_CHANGED, lambda n: n.pzxid > rel)
        for path in req.persistent:
            self.watches.add(PERSISTENT, path, conn)
        for path in req.recursive:
            self.watches.add(RECURSIVE, path, conn)
        return 0, NO_BODY

    def _multi_read(self, req, conn):
        w = Writer()
        for op, sub in req.ops:
            sub.watch = False
            err, body = (self._get_data if op == P.GET_DATA else self._get_children)(sub, conn)
            if err:
                w.int(-1).bool(False).int(err).int(err)
            else:
                w.int(op).bool(False).int(0).raw(body)
        w.raw(P.MULTI_DONE)
        return 0, w.getvalue()

    _READS = {
        P.EXISTS: _exists, P.GET_DATA: _get_data, P.GET_CHILDREN: _get_children,
        P.GET_CHILDREN2: _get_children2, P.GET_ACL: _get_acl, P.SYNC: _sync,
        P.GET_ALL_CHILDREN_NUMBER: _all_children_number, P.GET_EPHEMERALS: _ephemerals,
        P.WHO_AM_I: _who_am_i, P.ADD_WATCH: _add_watch, P.CHECK_WATCHES: _check_watches,
        P.REMOVE_WATCHES: _remove_watches, P.SET_WATCHES: _set_watches, P.SET_WATCHES2: _set_watches,
        P.MULTI_READ: _multi_read,
    }

    # ------------------------------------------------------------------ maintenance
    def snapshot_bytes(self) -> bytes:
        enc = self.snapshot_encoder(track=False)
        enc.step(len(enc))
        return enc.result()

    def snapshot_stream(self) -> tuple[int, Iterator[bytes]]:
        """``(length, chunks)`` of :meth:`snapshot_bytes`, for a tree that stays as it is meanwhile."""
        return S.encode_stream(self.committed, self._session_list())

    def snapshot_encoder(self, track: bool = True) -> S.SnapshotEncoder:
        """An encoder of the committed tree and sessions as they are now (see SnapshotEncoder)."""
        return S.SnapshotEncoder(self.committed, self._session_list(), track=track)

    def _session_list(self) -> list[tuple[int, int, bytes]]:
        return [(s.session_id, s.timeout_ms, s.passwd) for s in self.sessions.sessions.values()]


def zookeeper_watch_tables(tables) -> tuple[dict[str, list[int]], int]:
    """The watches as ZooKeeper 3.8 reports them: (its data-watch table as path -> session ids, the
    number of entries in its data and child tables together).

    ZooKeeper files a persistent or persistent-recursive watch in both tables and a one-shot watch in
    one; wchs/wchc/wchp list the data table, mntr's zk_watch_count counts both. One connection has at
    most one entry per path in each table (its one-shot and persistent watches there are one entry)."""
    data: dict[str, dict] = {}
    child: dict[str, set] = {}
    for kind in (DATA, PERSISTENT, RECURSIVE):
        for path, watchers in tables[kind].items():
            data.setdefault(path, {}).update((w, w.session_id) for w in watchers)
    for kind in (PERSISTENT, RECURSIVE, CHILD):
        for path, watchers in tables[kind].items():
            child.setdefault(path, set()).update(watchers)
    count = sum(len(v) for v in data.values()) + sum(len(v) for v in child.values())
    return {path: list(ws.values()) for path, ws in data.items()}, count
