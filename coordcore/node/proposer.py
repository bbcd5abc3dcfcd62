"""Proposer: what only a leader does -- decide txns.

It turns client writes, session opens and closes, and the server's own deletes (container and TTL
reaping) into fully decided txns: validated against the tree *as it will be* (the PendingTree: the
applied tree plus every txn decided but not yet applied), each given the next zxid.  Followers never
decide; they apply the bytes the leader decided.  It also judges which sessions have expired and which
containers and TTL nodes are due, since only the leader may act on either.

It does not apply anything, hold watches or build replies (node.Node), or order the pipeline
(replica.Replica).  Time comes in as arguments.
"""
from __future__ import annotations

from coordcore import zxid as Z
from coordcore.node.pending import PendingTree, child_count
from coordcore.node.prep import Preparer
from coordcore.node.sessions import SessionTracker
from coordcore.tree import txn as T
from coordcore.tree.datatree import DataTree
from coordcore.wire import proto as P


class Proposer:
    def __init__(self, tree: DataTree, sessions: SessionTracker, *, epoch: int, last_zxid: int,
                 extended_types: bool, super_digest: str | None, enforce_quota: bool = False,
                 reconfig_enabled: bool = False):
        self.tree = tree
        self.sessions = sessions
        self.super_digest = super_digest
        self.pending = PendingTree(tree)
        self.preparer = Preparer(self.pending, extended_types, enforce_quota, reconfig_enabled)
        self.epoch = epoch
        # zxids of this epoch continue after the last one logged (a new epoch starts its counter at 0)
        self.last_proposed = last_zxid if Z.epoch(last_zxid) == epoch else Z.make(epoch, 0)

    def next_zxid(self) -> int:
        # An ensemble's leader abdicates before its counter would wrap (zab does that); a standalone
        # server's counter simply runs on into the next epoch's range, as before.
        self.last_proposed += 1
        return self.last_proposed

    def prep_request(self, op, req, session_id, cxid, auth, now_ms) -> T.Txn:
        zxid = self.next_zxid()
        if op == P.CLOSE_SESSION:
            t, b = self.preparer.close_session(session_id)
            self.preparer.record(t, b, zxid)
        else:
            t, b = self.preparer.prep(op, req, session_id, auth, zxid, now_ms)
        return T.Txn(zxid, now_ms, session_id, cxid, t, b)

    def prep_create_session(self, timeout_ms: int, passwd: bytes, now_ms: int,
                            session_id: int | None = None) -> T.Txn:
        """A new session; its id is allocated here unless the learner it connected to already did."""
        sid = self.sessions.allocate_id() if session_id is None else session_id
        return T.Txn(self.next_zxid(), now_ms, sid, 0, T.T_CREATE_SESSION, (timeout_ms, passwd))

    def prep_error(self, session_id: int, cxid: int, code: int, now_ms: int) -> T.Txn:
        """A request refused before prep (its session expired): an error txn, so replies stay in order."""
        return T.Txn(self.next_zxid(), now_ms, session_id, cxid, T.T_ERROR, (int(code),))

    def prep_close_session(self, session_id: int, now_ms: int) -> T.Txn:
        return self.prep_request(P.CLOSE_SESSION, None, session_id, 0, None, now_ms)

    def prep_internal_delete(self, path: str, now_ms: int) -> T.Txn | None:
        """Container/TTL reaper: a delete decided by the server, dropped if it no longer applies."""
        node = self.pending.get(path)
        if node is None or child_count(node):
            return None
        zxid = self.next_zxid()
        self.preparer.record(T.T_DELETE, (path,), zxid)
        return T.Txn(zxid, now_ms, 0, 0, T.T_DELETE, (path,))

    def applied(self, zxid: int) -> None:
        """The tree has applied every txn through `zxid`: prep no longer needs their change records."""
        self.pending.prune_through(zxid)

    def expired_sessions(self, now_ms: int) -> list[int]:
        """Sessions past their deadline, now marked closing (their closeSession is for the caller)."""
        return self.sessions.expired(now_ms)

    def reap_candidates(self, now_ms: int) -> list[str]:
        """Containers that had children and are empty; TTL nodes empty and unmodified for ttl ms."""
        tree = self.tree
        out = []
        for path in list(tree.containers):
            n = tree.nodes.get(path)
            if n is not None and not n.children and n.cseq > 0:
                out.append(path)
        for path in list(tree.ttls):
            n = tree.nodes.get(path)
            if n is not None and not n.children and now_ms - n.mtime > n.ttl:
                out.append(path)
        return out
