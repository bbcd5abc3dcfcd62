"""PendingTree: the tree as it will be once every prepared txn is applied.

Prep must validate a write against the effect of every earlier write that is
prepared but not yet durable (ZooKeeper keeps "outstanding ChangeRecords" for
this).  A PendingTree is the committed DataTree plus one small Change record
per path that a pending txn touched -- only the fields prep decides on, never
data.  A record is dropped once the committed tree has applied the txn that
last changed it, so memory is proportional to the writes in flight, not to
the tree.

A multi records what each op replaced in an undo list; `undo()` restores it
when a later op in the multi fails.
"""
from __future__ import annotations

from collections import deque

from coordcore.tree import txn as T
from coordcore.tree.datatree import DataTree, ZNode
from coordcore.tree.hashorder import hash_set_order


class Change:
    """A node's prep-relevant state after its pending txns (`alive` False: deleted)."""
    __slots__ = ("zxid", "alive", "acl", "version", "aversion", "cseq", "kind", "owner", "nchildren")

    def __init__(self, zxid, alive, acl, version, aversion, cseq, kind, owner, nchildren):
        self.zxid = zxid
        self.alive = alive
        self.acl = acl
        self.version = version
        self.aversion = aversion
        self.cseq = cseq
        self.kind = kind
        self.owner = owner
        self.nchildren = nchildren


def child_count(node) -> int:
    """Number of children of a node returned by PendingTree.get (a ZNode or a Change)."""
    return node.nchildren if type(node) is Change else len(node.children)


class PendingTree:
    def __init__(self, tree: DataTree):
        self.tree = tree
        self.changes: dict[str, Change] = {}
        self._touched: deque = deque()  # (zxid, path) in prep order, for pruning

    # ----- reads -----
    def get(self, path: str):
        """The node as it will be: a Change, a committed ZNode, or None."""
        c = self.changes.get(path)
        if c is not None:
            return c if c.alive else None
        return self.tree.nodes.get(path)

    def ephemerals(self, session_id: int) -> list[str]:
        """Paths of the session's ephemerals once every pending txn is applied, in the order
        ZooKeeper's closeSession deletes them (see :mod:`coordcore.tree.hashorder`)."""
        changes, nodes = self.changes, self.tree.nodes
        owned = self.tree.ephemerals.get(session_id, ())
        committed, added = [], []
        for p in owned:
            c = changes.get(p)
            if c is None or (c.alive and c.kind == T.K_EPHEMERAL and c.owner == session_id):
                committed.append((p, nodes[p].czxid))
        for p, c in changes.items():
            if c.alive and c.kind == T.K_EPHEMERAL and c.owner == session_id and p not in owned:
                added.append((p, c.zxid))
        return hash_set_order(committed, added)

    # ----- recording prepared txns -----
    def _touch(self, path: str, zxid: int, undo):
        """The Change for `path` that this txn may modify.

        Outside a multi an existing record is updated in place (nothing will need it back); a multi
        gets a fresh copy and remembers the old record for undo().
        """
        old = self.changes.get(path)
        if old is not None:
            if undo is None:
                old.zxid = zxid
                self._touched.append((zxid, path))
                return old
            undo.append((path, old))
            c = Change(zxid, old.alive, old.acl, old.version, old.aversion, old.cseq, old.kind, old.owner,
                       old.nchildren)
        else:
            if undo is not None:
                undo.append((path, None))
            n: ZNode = self.tree.nodes[path]
            acl, aversion, owner, kind, _ = n.meta
            c = Change(zxid, True, acl, n.version, aversion, n.cseq, kind, owner, len(n.children))
        self.changes[path] = c
        self._touched.append((zxid, path))
        return c

    def record(self, t: int, b: tuple, zxid: int, undo=None) -> None:
        """Record the effect of a decided txn (or one op of a multi, with `undo`)."""
        if t == T.T_SET_DATA:
            self._touch(b[0], zxid, undo).version = b[2]
        elif t == T.T_CREATE:
            path, _data, acl, kind, owner, _ttl, cseq = b
            parent = self._touch(path[:path.rfind("/")] or "/", zxid, undo)
            parent.cseq = cseq
            parent.nchildren += 1
            if undo is not None:
                undo.append((path, self.changes.get(path)))
            self.changes[path] = Change(zxid, True, acl, 0, 0, 0, kind, owner, 0)
            self._touched.append((zxid, path))
        elif t == T.T_DELETE:
            self._delete(b[0], zxid, undo)
        elif t == T.T_SET_ACL:
            c = self._touch(b[0], zxid, undo)
            c.acl, c.aversion = b[1], b[2]
        elif t == T.T_MULTI:
            for st, sb in b[0]:
                self.record(st, sb, zxid, undo)
        elif t == T.T_CLOSE_SESSION:
            for path in b[0]:
                if self.get(path) is not None:
                    self._delete(path, zxid, undo)

    def _delete(self, path, zxid, undo):
        self._touch(path, zxid, undo).alive = False
        self._touch(path[:path.rfind("/")] or "/", zxid, undo).nchildren -= 1

    def undo(self, undo: list) -> None:
        changes = self.changes
        for path, old in reversed(undo):
            if old is None:
                changes.pop(path, None)
            else:
                changes[path] = old

    # ----- pruning -----
    def prune_through(self, zxid: int) -> None:
        """The committed tree has applied every txn up to `zxid`: drop what it now shows."""
        touched, changes = self._touched, self.changes
        while touched and touched[0][0] <= zxid:
            path = touched.popleft()[1]
            c = changes.get(path)
            if c is not None and c.zxid <= zxid:
                del changes[path]
