"""A Node and its Proposer driven directly: prep -> (txn bytes, as the log would hold them) -> apply -> reply.

No sockets, no threads, no clock: time is `Harness.now`, which tests move by hand.
"""
from __future__ import annotations

from collections import namedtuple

from coordcore.node.acl import AuthInfo
from coordcore.node.node import Node
from coordcore.node.proposer import Proposer
from coordcore.storage.api import DurableState
from coordcore.tree import snapshot as S
from coordcore.tree import txn as T
from coordcore.wire import proto as P
from coordcore.wire.jute import Reader

OPEN = [(31, "world", "anyone")]
Stat = namedtuple("Stat", "czxid mzxid ctime mtime version cversion aversion ephemeralOwner dataLength "
                          "numChildren pzxid")
START_MS = 1_700_000_000_000


class FakeConn:
    """What Node.read needs from a connection: auth, session id and a watch set; it records its events."""

    def __init__(self, session_id=0, ip="127.0.0.1"):
        self.session_id = session_id
        self.auth = AuthInfo(ip)
        self.watches = set()
        self.events = []

    def notify(self, event_type, path):
        self.events.append((event_type, path))


class Harness:
    def __init__(self, state: DurableState | None = None, now_ms: int = START_MS, extended_types=True,
                 super_digest=None):
        self.now = now_ms
        self.node = Node(tick_ms=2000, server_id=0, state=state if state is not None else DurableState(),
                         now_ms=now_ms)
        self.node.set_notify(lambda conn, event_type, path: conn.notify(event_type, path))
        self.proposer = Proposer(self.node.committed, self.node.sessions, epoch=0,
                                 last_zxid=self.node.last_applied, extended_types=extended_types,
                                 super_digest=super_digest)
        self.auth = AuthInfo("127.0.0.1")
        self.log: list[tuple[int, bytes]] = []   # what storage would hold, for recovery tests
        self.cxid = 0

    # ---- the write pipeline, split in its two halves ----
    def prep(self, op, req, session_id=0, auth=None) -> T.Txn:
        self.cxid += 1
        return self.proposer.prep_request(op, req, session_id, self.cxid, auth or self.auth, self.now)

    def commit(self, txn: T.Txn):
        """Log the txn's bytes and apply what decoding them gives (what a follower or a recovering server applies)."""
        data = T.encode(txn)
        self.log.append((txn.zxid, data))
        result = self.node.apply_committed(T.decode(data))
        self.proposer.applied(txn.zxid)
        return result

    def write(self, op, req, session_id=0, auth=None) -> tuple[int, bytes]:
        """prep + commit + reply; returns (err, reply body)."""
        txn = self.prep(op, req, session_id, auth)
        result = self.commit(txn)
        return self.node.reply_body(op, req, txn, result)

    def open_session(self, timeout_ms=10000) -> int:
        txn = self.proposer.prep_create_session(timeout_ms, b"\x00" * 16, self.now)
        self.commit(txn)
        return txn.session_id

    # ---- shortcuts ----
    def create(self, path, data=b"", flags=0, acl=None, session_id=0, op=P.CREATE, ttl=-1, auth=None):
        req = P.Create(path, data, list(OPEN if acl is None else acl), flags, ttl)
        err, body = self.write(op, req, session_id, auth)
        return err, (Reader(body).ustring() if not err else None)

    def set_data(self, path, data, version=-1, auth=None):
        return self.write(P.SET_DATA, P.SetData(path, data, version), auth=auth)[0]

    def delete(self, path, version=-1, auth=None):
        return self.write(P.DELETE, P.PathVersion(path, version), auth=auth)[0]

    def set_acl(self, path, acl, version=-1, auth=None):
        return self.write(P.SET_ACL, P.SetACL(path, list(acl), version), auth=auth)[0]

    def check(self, path, version=-1, auth=None):
        return self.write(P.CHECK, P.PathVersion(path, version), auth=auth)[0]

    def stat(self, path, tree=None) -> Stat:
        tree = tree or self.node.committed
        return Stat(*tree.nodes[path].stat_tuple())

    def children(self, path) -> set:
        return {c.rsplit("/", 1)[1] for c in self.node.committed.nodes[path].children}

    def committed_bytes(self) -> bytes:
        return S.encode(self.node.committed, [])


def parse_multi_reply(body: bytes) -> list[tuple[int, int]]:
    """[(op type, err)] from a MultiResponse; results carry a path/stat we skip as needed."""
    r = Reader(body)
    out = []
    while True:
        op, done, err = r.int(), r.bool(), r.int()
        if done:
            assert (op, err) == (-1, -1)
            assert r.at_end()
            return out
        if op == -1:
            assert r.int() == err
        elif op == P.CREATE:
            r.ustring()
        elif op == P.CREATE2:
            r.ustring()
            r.pos += 68
        elif op == P.SET_DATA:
            r.pos += 68
        out.append((op, err))



def pending_state(proposer) -> dict:
    """The pending tree's change records (what prep sees beyond the committed tree)."""
    return {path: (c.alive, tuple(c.acl), c.version, c.aversion, c.cseq, c.kind, c.owner, c.nchildren)
            for path, c in proposer.pending.changes.items()}


def tree_state(tree) -> dict:
    """Everything a DataTree holds, independent of dict insertion order (which no reader can see)."""
    nodes = {path: (n.stat_tuple(), n.data, tuple(n.acl), n.kind, n.owner, n.ttl, n.cseq, frozenset(n.children))
             for path, n in tree.nodes.items()}
    return {"nodes": nodes, "ephemerals": {k: frozenset(v) for k, v in tree.ephemerals.items()},
            "containers": frozenset(tree.containers), "ttls": frozenset(tree.ttls), "data_size": tree.data_size}
