"""Prep: turn a write request into a fully decided txn, validating against the tree *as it will be*.

Every prepared txn is recorded at once in a PendingTree (the committed tree
plus the changes still in flight, as ZooKeeper's outstanding ChangeRecords);
the committed tree only sees txns after they are durable.  So validation here
sees the effect of every earlier pending write, and a multi is validated op by
op and rolled back with the pending tree's undo log if any op fails.  Check
order follows ZooKeeper 3.8's PrepRequestProcessor.
"""
from __future__ import annotations

from coordcore.errors import ApiError, Err
from coordcore.node import acl as A
from coordcore.tree import txn as T
from coordcore.node.pending import PendingTree, child_count
from coordcore.tree.datatree import SPECIAL_PATHS
from coordcore.tree.paths import int32, is_valid
from coordcore.wire import proto as P

TTL_MAX = 0xFFFFFFFFFF


class Preparer:
    def __init__(self, pending: PendingTree, extended_types: bool, enforce_quota: bool = False,
                 reconfig_enabled: bool = False):
        self.pending = pending
        self.extended_types = extended_types
        self.enforce_quota = enforce_quota
        self.reconfig_enabled = reconfig_enabled

    # ---- entry points ----
    def prep(self, op: int, req, session_id: int, auth: A.AuthInfo, zxid: int, time: int) -> tuple[int, tuple]:
        """Return the decided (txn type, body), already recorded in the pending tree.

        A failed request gives (T_ERROR, (code,)); a failed multi gives a MULTI of
        error results (0 before the failing op, its code, -2 after), as ZooKeeper does.
        """
        self.zxid, self.time = zxid, time
        if op == P.MULTI:
            return self._multi(req.ops, session_id, auth)
        try:
            t, b = self._one(op, req, session_id, auth)
        except ApiError as e:
            return T.T_ERROR, (int(e.code),)
        self.pending.record(t, b, zxid)
        return t, b

    def _multi(self, ops, session_id, auth):
        undo: list = []
        done: list = []
        for i, (op, req) in enumerate(ops):
            try:
                t, b = self._one(op, req, session_id, auth)
            except ApiError as e:
                self.pending.undo(undo)
                results = [(T.T_ERROR, (0,))] * i + [(T.T_ERROR, (int(e.code),))]
                results += [(T.T_ERROR, (int(Err.RUNTIMEINCONSISTENCY),))] * (len(ops) - i - 1)
                return T.T_MULTI, (results,)
            self.pending.record(t, b, self.zxid, undo)
            done.append((t, b))
        return T.T_MULTI, (done,)

    def record(self, t: int, b: tuple, zxid: int) -> None:
        """Record an internally decided txn (session close, reaper delete) in the pending tree."""
        self.pending.record(t, b, zxid)

    def _one(self, op, req, session_id, auth):
        if op in P.CREATE_OPS:
            return self._create(op, req, session_id, auth)
        if op == P.DELETE:
            return self._delete(req, auth)
        if op == P.SET_DATA:
            return self._set_data(req, auth)
        if op == P.SET_ACL:
            return self._set_acl(req, auth)
        if op == P.CHECK:
            return self._check(req, auth)
        if op == P.RECONFIG:
            # a standalone ZooKeeper with reconfig enabled still cannot reconfigure: UNIMPLEMENTED
            raise ApiError(Err.UNIMPLEMENTED if self.reconfig_enabled else Err.RECONFIGDISABLED)
        raise ApiError(Err.UNIMPLEMENTED)

    # ---- single ops ----
    def _create(self, op, req, session_id, auth):
        flags = req.flags
        if flags not in (0, 1, 2, 3, 4, 5, 6):
            raise ApiError(Err.BADARGUMENTS)
        is_ttl_mode = flags in (5, 6)
        if op == P.CREATE_TTL and not is_ttl_mode:
            # ZooKeeper 3.8 answers BADARGUMENTS for ttl >= 0 here and fails the whole connection for
            # ttl < 0; a clear error for both is what a client can act on.
            raise ApiError(Err.BADARGUMENTS)
        if is_ttl_mode and not self.extended_types:
            raise ApiError(Err.UNIMPLEMENTED)
        ttl = req.ttl if op == P.CREATE_TTL else -1
        if is_ttl_mode:
            if not (0 < ttl <= TTL_MAX):
                raise ApiError(Err.BADARGUMENTS)
        elif ttl >= 0:
            raise ApiError(Err.BADARGUMENTS)
        sequential = flags in (2, 3, 6)
        path = req.path
        # ZooKeeper 3.8 order: only a slash and no NUL are checked before the parent lookup; the full
        # path rules apply to the final name (after any sequence suffix).
        slash = path.rfind("/")
        if slash == -1 or "\x00" in path:
            raise ApiError(Err.BADARGUMENTS)
        acl = A.fixup(req.acl, auth)
        parent = self.pending.get(path[:slash] or "/")
        if parent is None:
            raise ApiError(Err.NONODE)
        if not A.check(parent.acl, auth, A.PERM_CREATE):
            raise ApiError(Err.NOAUTH)
        cseq = parent.cseq
        if sequential:
            path = path + "%010d" % cseq
        if not is_valid(path):
            raise ApiError(Err.BADARGUMENTS)
        if self.pending.get(path) is not None:
            raise ApiError(Err.NODEEXISTS)
        if parent.kind == T.K_EPHEMERAL:
            raise ApiError(Err.NOCHILDRENFOREPHEMERALS)
        if self.enforce_quota and self.pending.tree.quotas:
            self._check_quota(path, len(req.data) if req.data else 0, 1)
        if op == P.CREATE_CONTAINER or flags == 4:
            kind, owner = T.K_CONTAINER, 0
        elif op == P.CREATE_TTL:
            kind, owner = T.K_TTL, 0
        elif flags in (1, 3):
            kind, owner = T.K_EPHEMERAL, session_id
        else:
            kind, owner = T.K_PERSISTENT, 0
        return T.T_CREATE, (path, req.data, acl, kind, owner, ttl, int32(cseq + 1))

    def _delete(self, req, auth):
        path = req.path
        slash = path.rfind("/")
        if slash == -1 or "\x00" in path or path in SPECIAL_PATHS:
            raise ApiError(Err.BADARGUMENTS)
        parent = self.pending.get(path[:slash] or "/")
        if parent is None:
            raise ApiError(Err.NONODE)
        if not A.check(parent.acl, auth, A.PERM_DELETE):
            raise ApiError(Err.NOAUTH)
        node = self.pending.get(path)
        if node is None:
            raise ApiError(Err.NONODE)
        if req.version != -1 and req.version != node.version:
            raise ApiError(Err.BADVERSION)
        if child_count(node):
            raise ApiError(Err.NOTEMPTY)
        return T.T_DELETE, (path,)

    def _existing(self, path, auth, perm):
        """The node a setData/setACL/check targets, after the path, NONODE and ACL checks."""
        node = self.pending.get(path)
        if node is None:
            raise ApiError(Err.NONODE)
        if not A.check(node.acl, auth, perm):
            raise ApiError(Err.NOAUTH)
        return node

    @staticmethod
    def _check_version(expected, actual):
        if expected != -1 and expected != actual:
            raise ApiError(Err.BADVERSION)

    def _set_data(self, req, auth):
        path = req.path
        if not is_valid(path):
            raise ApiError(Err.BADARGUMENTS)
        node = self._existing(path, auth, A.PERM_WRITE)
        if self.enforce_quota and self.pending.tree.quotas:
            self._check_quota(path, (len(req.data) if req.data else 0) - self._data_len(path), 0)
        self._check_version(req.version, node.version)
        return T.T_SET_DATA, (path, req.data, int32(node.version + 1))

    def _check_quota(self, path, bytes_diff, count_diff):
        # ZooKeeper judges a write against the committed tree's quota stats (writes still in flight
        # are not counted), and only a hard limit fails it; limits or stats it cannot parse make its
        # prep throw, which it answers with MARSHALLINGERROR.
        verdict = self.pending.tree.quota_check(path, bytes_diff, count_diff)
        if verdict == "exceeded":
            raise ApiError(Err.QUOTAEXCEEDED)
        if verdict == "unreadable":
            raise ApiError(Err.MARSHALLINGERROR)

    def _data_len(self, path):
        """The data length a setData replaces: the committed node's (pending records carry no data;
        ZooKeeper would use a pending setData's data here, a difference only under pipelined writes)."""
        node = self.pending.tree.nodes.get(path)
        return len(node.data) if node is not None and node.data else 0

    def _set_acl(self, req, auth):
        path = req.path
        if not is_valid(path):
            raise ApiError(Err.BADARGUMENTS)
        acl = A.fixup(req.acl, auth)
        node = self._existing(path, auth, A.PERM_ADMIN)
        self._check_version(req.version, node.aversion)  # setACL's version is the ACL version
        return T.T_SET_ACL, (path, acl, int32(node.aversion + 1))

    def _check(self, req, auth):
        path = req.path
        if not is_valid(path):
            raise ApiError(Err.BADARGUMENTS)
        node = self._existing(path, auth, A.PERM_READ)
        self._check_version(req.version, node.version)
        return T.T_CHECK, (path, req.version)

    # ---- session txns ----
    def close_session(self, session_id: int) -> tuple[int, tuple]:
        return T.T_CLOSE_SESSION, (self.pending.ephemerals(session_id),)
