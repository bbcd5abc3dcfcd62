"""DataTree: the replicated state (znodes, Stat, ephemerals by session) and txn application.

apply() trusts its txn: validation happened in prep.  It returns the per-op
results the reply needs and appends watch triggers to `self.events` in
ZooKeeper's order.  No I/O, no clock, no watches here.
"""
from __future__ import annotations

from coordcore.tree import quota as Q
from coordcore.tree import txn as T
from coordcore.tree.paths import int32
from coordcore.wire.jute import OPEN_ACL as JUTE_OPEN_ACL
from coordcore.wire.jute import STAT

PERM_READ, PERM_WRITE, PERM_CREATE, PERM_DELETE, PERM_ADMIN, PERM_ALL = 1, 2, 4, 8, 16, 31
OPEN_ACL = JUTE_OPEN_ACL  # ((PERM_ALL, "world", "anyone"),), the object requests decode to
READ_ACL = ((PERM_READ, "world", "anyone"),)

SPECIAL_PATHS = frozenset({"/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"})

# watch trigger kinds appended to DataTree.events: (kind, path, acl, parent_acl). The ACLs (None when
# open to everyone) are the event node's and its parent's at that moment: a watcher without READ on a
# node is not told about it (ZooKeeper's fix for CVE-2024-23944).
EV_CREATED, EV_DELETED, EV_CHANGED = 1, 2, 3


class ZNode:
    """One znode. The fields that rarely differ between nodes -- ACL, ACL version, ephemeral owner, kind,
    TTL -- live together in one shared tuple (``meta``), so a node spends one slot on them instead of
    five: 32 bytes less per node, about 7% of a small znode's memory."""

    __slots__ = ("data", "meta", "czxid", "mzxid", "ctime", "mtime", "version", "cseq", "pzxid", "children")

    def __init__(self, data, acl, zxid, time, owner=0, kind=T.K_PERSISTENT, ttl=-1):
        self.data = data
        if acl is OPEN_ACL and not owner and kind == T.K_PERSISTENT and ttl == -1:
            self.meta = _OPEN_PERSISTENT  # the common case, without the cache lookup
        else:
            self.meta = node_meta(acl, 0, owner, kind, ttl)
        self.czxid = self.mzxid = self.pzxid = zxid
        self.ctime = self.mtime = time
        self.version = self.cseq = 0
        # The children's full paths -- the very str objects that key DataTree.nodes, so a child costs
        # its set slot only.  A leaf shares one empty frozenset; a set is made on the first child.
        self.children = NO_CHILDREN

    acl = property(lambda self: self.meta[0])
    aversion = property(lambda self: self.meta[1])
    owner = property(lambda self: self.meta[2])
    kind = property(lambda self: self.meta[3])
    ttl = property(lambda self: self.meta[4])

    def set_acl(self, acl, aversion) -> None:
        _, _, owner, kind, ttl = self.meta
        self.meta = node_meta(acl, aversion, owner, kind, ttl)

    def stat_tuple(self):
        return STAT.unpack(self.stat_bytes())

    def stat_bytes(self) -> bytes:
        # runs for every read reply and every write reply: fields packed directly
        n = len(self.children)
        cversion = 2 * self.cseq - n
        if not -0x80000000 <= cversion <= 0x7FFFFFFF:
            cversion = int32(cversion)
        data = self.data
        meta = self.meta
        return STAT.pack(self.czxid, self.mzxid, self.ctime, self.mtime, self.version, cversion, meta[1],
                         meta[2], len(data) if data is not None else 0, n, self.pzxid)

    def snap_fields(self):
        """Everything a snapshot records of this node (children are implied by the paths)."""
        acl, aversion, owner, kind, ttl = self.meta
        return (self.data, acl, self.czxid, self.mzxid, self.ctime, self.mtime, self.version, self.cseq,
                aversion, owner, self.pzxid, kind, ttl)


NO_CHILDREN = frozenset()


def add_child(node: ZNode, path: str) -> None:
    if node.children is NO_CHILDREN:
        node.children = {path}
    else:
        node.children.add(path)


def remove_child(node: ZNode, path: str) -> None:
    children = node.children
    if children:
        children.discard(path)
        if not children:
            node.children = NO_CHILDREN


_acl_cache: dict = {OPEN_ACL: OPEN_ACL}


_OPEN_PERSISTENT = (OPEN_ACL, 0, 0, T.K_PERSISTENT, -1)
_meta_cache: dict = {(id(OPEN_ACL), 0, 0, T.K_PERSISTENT, -1): _OPEN_PERSISTENT}


def node_meta(acl, aversion, owner, kind, ttl) -> tuple:
    """The shared (acl, aversion, owner, kind, ttl) tuple; ``acl`` must be interned (see intern_acl).

    Keyed by the ACL's identity, so a lookup hashes five small values, not the ACL. The cache holds
    one entry per ephemeral-owning session and per distinct ACL/kind/TTL mix; it is dropped when it
    grows large (nodes keep their tuples; new nodes just stop sharing with old ones).
    """
    key = (id(acl), aversion, owner, kind, ttl)
    meta = _meta_cache.get(key)
    if meta is None or meta[0] is not acl:
        if len(_meta_cache) >= 65536:
            _meta_cache.clear()
            _meta_cache[(id(OPEN_ACL), 0, 0, T.K_PERSISTENT, -1)] = _OPEN_PERSISTENT
        meta = _meta_cache[key] = (acl, aversion, owner, kind, ttl)
    return meta


def _guarded(acl):
    """The ACL a watch event must be checked against, or None when anyone may read."""
    return None if acl is OPEN_ACL else acl


def intern_acl(acl) -> tuple:
    """ACL lists are shared between nodes (ZooKeeper's ACL cache does the same)."""
    if acl is OPEN_ACL:
        return acl
    key = tuple(acl) if type(acl) is not tuple else acl
    try:
        return _acl_cache[key]
    except KeyError:
        key = tuple(tuple(a) for a in key)
        return _acl_cache.setdefault(key, key)


class DataTree:
    def __init__(self):
        root = ZNode(b"", OPEN_ACL, 0, 0)
        zk = ZNode(b"", OPEN_ACL, 0, 0)
        quota = ZNode(b"", OPEN_ACL, 0, 0)
        config = ZNode(b"", READ_ACL, 0, 0)
        config.set_acl(READ_ACL, -1)
        self.nodes: dict[str, ZNode] = {"/": root, "/zookeeper": zk, "/zookeeper/quota": quota,
                                        "/zookeeper/config": config}
        add_child(root, "/zookeeper")
        add_child(zk, "/zookeeper/quota")
        add_child(zk, "/zookeeper/config")
        self.ephemerals: dict[int, set] = {}
        self.containers: set = set()
        self.ttls: set = set()
        self.last_zxid = 0
        # approximate data size = path lengths + data lengths, as ZooKeeper counts it (44 when fresh)
        self.data_size = sum(len(p) for p in self.nodes)
        self.events: list = []
        # While a snapshot is being encoded in steps, the state each node had when it started is kept
        # here (by node object) before the node's first change, so the snapshot is exact at one zxid.
        self.preserved: dict | None = None
        # Paths with a quota (a zookeeper_limits node under /zookeeper/quota): see coordcore.tree.quota.
        self.quotas: set[str] = set()

    # ----- reads -----
    def get(self, path: str) -> ZNode | None:
        return self.nodes.get(path)

    def count_descendants(self, path: str) -> int:
        node = self.nodes.get(path)
        if node is None:
            return 0
        total, stack, nodes = 0, [node], self.nodes
        while stack:
            children = stack.pop().children
            total += len(children)
            stack.extend(nodes[c] for c in children)
        return total

    # ----- apply -----
    def apply(self, txn: T.Txn):
        """Apply a committed txn; returns the result (per-op list for MULTI, else one result)."""
        if txn.zxid > self.last_zxid:
            self.last_zxid = txn.zxid
        return self.apply_op(txn.type, txn.body, txn.zxid, txn.time, txn.session_id)

    def apply_op(self, t, b, zxid, time, session_id):
        """Apply one op (a MULTI applies its sub-ops in order)."""
        if t == T.T_CREATE:
            return self._create(b, zxid, time)
        if t == T.T_DELETE:
            return self._delete(b[0], zxid)
        if t == T.T_SET_DATA:
            node = self.nodes[b[0]]
            if self.preserved is not None and node not in self.preserved:
                self.preserved[node] = node.snap_fields()
            old = len(node.data) if node.data else 0
            node.data = b[1]
            self.data_size += (len(b[1]) if b[1] else 0) - old
            node.version = b[2]
            node.mzxid = zxid
            node.mtime = time
            stat = node.stat_bytes()  # the reply's Stat is taken before any quota stats rewrite
            if self.quotas:
                self._count_quota(b[0], (len(b[1]) if b[1] else 0) - old, 0)
            self.events.append((EV_CHANGED, b[0], _guarded(node.meta[0]), None))
            return stat
        if t == T.T_SET_ACL:
            node = self.nodes[b[0]]
            if self.preserved is not None and node not in self.preserved:
                self.preserved[node] = node.snap_fields()
            node.set_acl(intern_acl(b[1]), b[2])
            return node.stat_bytes()
        if t == T.T_MULTI:
            return [(st, self.apply_op(st, sb, zxid, time, session_id)) for st, sb in b[0]]
        if t == T.T_CLOSE_SESSION:
            for path in b[0]:  # in the txn's order: it decides the order of the NodeDeleted events
                if path in self.nodes:
                    self._delete(path, zxid)
            self.ephemerals.pop(session_id, None)
            return None
        return None  # ERROR, CHECK, CREATE_SESSION: no tree change

    def _create(self, b, zxid, time):
        path, data, acl, kind, owner, ttl, cseq = b
        parent = self.nodes[path[:path.rfind("/")] or "/"]
        if self.preserved is not None and parent not in self.preserved:
            self.preserved[parent] = parent.snap_fields()
        node = ZNode(data, intern_acl(acl), zxid, time, owner, kind, ttl)
        self.nodes[path] = node
        add_child(parent, path)
        parent.cseq = cseq
        if zxid > parent.pzxid:
            parent.pzxid = zxid
        if kind != T.K_PERSISTENT:
            self.index(path, node)
        self.data_size += len(path) + (len(data) if data else 0)
        # ZooKeeper copies the reply's Stat before it rewrites a quota's stats node (which may be this
        # very node)
        stat = node.stat_bytes()
        if self.quotas or path.startswith(Q.QUOTA_ROOT):
            self._quota_on_create(path, data)
        self.events.append((EV_CREATED, path, _guarded(node.meta[0]), _guarded(parent.meta[0])))
        return stat

    def _delete(self, path, zxid):
        node = self.nodes.pop(path)
        parent = self.nodes[path[:path.rfind("/")] or "/"]
        if self.preserved is not None and parent not in self.preserved:
            self.preserved[parent] = parent.snap_fields()
        remove_child(parent, path)
        if zxid > parent.pzxid:
            parent.pzxid = zxid
        self._unindex(path, node)
        self.data_size -= len(path) + (len(node.data) if node.data else 0)
        if self.quotas:
            slash = path.rfind("/")
            if path[slash + 1:] == Q.LIMIT_NODE:
                self.quotas.discard(Q.quota_prefix_of(path[:slash]))
            self._count_quota(path, -(len(node.data) if node.data else 0), -1)
        self.events.append((EV_DELETED, path, _guarded(node.meta[0]), _guarded(parent.meta[0])))
        return None

    # ----- quotas (ZooKeeper's DataTree: updateQuotaStat, updateQuotaForPath, setupQuota) -----
    def quota_of(self, path: str) -> str | None:
        """The deepest quota path that is ``path`` or one of its ancestors."""
        quotas = self.quotas
        while path:
            if path in quotas:
                return path
            path = path[:path.rfind("/")]
        return None

    def _quota_on_create(self, path, data):
        slash = path.rfind("/")
        name = path[slash + 1:]
        if name == Q.LIMIT_NODE or name == Q.STAT_NODE:
            prefix = Q.quota_prefix_of(path[:slash])
            if prefix:
                if name == Q.LIMIT_NODE:
                    self.quotas.add(prefix)
                else:
                    self._recount_quota(prefix)
        if self.quotas:
            self._count_quota(path, len(data) if data else 0, 1)

    def _count_quota(self, path, bytes_diff, count_diff):
        """Add a change below a quota path to its stats node (rewritten in place, as ZooKeeper does)."""
        prefix = self.quota_of(path)
        if prefix is None:
            return
        node = self.nodes.get(Q.stat_path(prefix))
        stats = Q.parse(node.data) if node is not None else None
        if stats is None:
            return  # no stats node, or data ZooKeeper's parser would fail on: left as it is
        stats["count"] = stats.get("count", -1) + count_diff
        stats["bytes"] = stats.get("bytes", -1) + bytes_diff
        self._rewrite_in_place(node, Q.render(stats))

    def _recount_quota(self, prefix):
        """Set a quota's stats node to the subtree's node count and data bytes."""
        node = self.nodes.get(Q.stat_path(prefix))
        if node is None:
            return
        count = size = 0
        root = self.nodes.get(prefix)
        stack = [root] if root is not None else []
        nodes = self.nodes
        while stack:
            n = stack.pop()
            count += 1
            size += len(n.data) if n.data else 0
            stack.extend(nodes[c] for c in n.children)
        self._rewrite_in_place(node, b"count=%d,bytes=%d" % (count, size))

    def _rewrite_in_place(self, node, data):
        # Like ZooKeeper: no version, mzxid or data-size change and no watch; a snapshot being
        # encoded in steps still gets the node as it was when the snapshot started.
        if self.preserved is not None and node not in self.preserved:
            self.preserved[node] = node.snap_fields()
        node.data = data

    def setup_quotas(self):
        """After loading a snapshot: find the quota paths and recount each one (setupQuota)."""
        self.quotas.clear()
        tail = "/" + Q.LIMIT_NODE
        nodes = self.nodes
        stack = [Q.QUOTA_ROOT] if Q.QUOTA_ROOT in nodes else []
        while stack:
            path = stack.pop()
            children = nodes[path].children
            if children:
                stack.extend(children)
            elif path.endswith(tail):
                prefix = path[len(Q.QUOTA_ROOT):path.index(tail)]
                if prefix:
                    self._recount_quota(prefix)
                    self.quotas.add(prefix)

    def quota_check(self, path: str, bytes_diff: int, count_diff: int) -> str | None:
        """ZooKeeper's checkQuota for a create/setData at ``path``, on this (committed) tree's stats:
        None if the write may go ahead, "exceeded" past a hard limit, "unreadable" where ZooKeeper's
        parser throws on the limits or stats data (it then answers MARSHALLINGERROR)."""
        prefix = self.quota_of(path)
        if prefix is None:
            return None
        limits = self._quota_node_data(Q.limit_path(prefix))
        if limits is None or limits == "unreadable":
            return limits
        if not Q.checks_something(limits, bytes_diff, count_diff):
            return None  # the stats node is not even read
        current = self._quota_node_data(Q.stat_path(prefix))
        if current is None or current == "unreadable":
            return current
        return "exceeded" if Q.exceeds_hard_limit(limits, current, bytes_diff, count_diff) else None

    def _quota_node_data(self, path):
        """A limits or stats node's data parsed; None if there is no such node, "unreadable" if it
        does not parse."""
        node = self.nodes.get(path)
        if node is None:
            return None
        parsed = Q.parse(node.data)
        return "unreadable" if parsed is None else parsed

    def index(self, path, node):
        """Record an ephemeral, container or TTL node in its index."""
        if node.kind == T.K_EPHEMERAL:
            self.ephemerals.setdefault(node.owner, set()).add(path)
        elif node.kind == T.K_CONTAINER:
            self.containers.add(path)
        elif node.kind == T.K_TTL:
            self.ttls.add(path)

    def _unindex(self, path, node):
        if node.kind == T.K_EPHEMERAL:
            s = self.ephemerals.get(node.owner)
            if s is not None:
                s.discard(path)
                if not s:
                    del self.ephemerals[node.owner]
        elif node.kind == T.K_CONTAINER:
            self.containers.discard(path)
        elif node.kind == T.K_TTL:
            self.ttls.discard(path)

    def node_count(self) -> int:
        return len(self.nodes)
