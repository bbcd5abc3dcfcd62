"""Snapshot format: a DataTree plus the session table <-> bytes.  Files belong to storage."""
from __future__ import annotations

from coordcore.tree.datatree import DataTree, ZNode, intern_acl
from coordcore.tree import txn as T
from coordcore.tree.paths import split
from coordcore.wire.jute import Reader, Writer

FORMAT_VERSION = 1


def encode(tree: DataTree, sessions: list[tuple[int, int, bytes]]) -> bytes:
    """sessions: (session_id, timeout_ms, passwd)."""
    w = Writer().int(FORMAT_VERSION).long(tree.last_zxid).int(len(tree.nodes))
    for path, n in tree.nodes.items():
        w.ustring(path).buffer(n.data).acls(n.acl)
        w.long(n.czxid).long(n.mzxid).long(n.ctime).long(n.mtime)
        w.int(n.version).int(n.cseq).int(n.aversion).long(n.owner).long(n.pzxid).int(n.kind).long(n.ttl)
    w.int(len(sessions))
    for sid, timeout, passwd in sessions:
        w.long(sid).int(timeout).buffer(passwd)
    return w.getvalue()


def decode(data: bytes, keep_events: bool = True) -> tuple[DataTree, list[tuple[int, int, bytes]]]:
    r = Reader(data, 0, max_len=1 << 31)
    version = r.int()
    if version != FORMAT_VERSION:
        raise ValueError("unknown snapshot format version %d" % version)
    tree = DataTree(keep_events)
    tree.nodes.clear()
    tree.data_size = 0
    tree.last_zxid = r.long()
    for _ in range(r.int()):
        path = r.ustring()
        data_, acl = r.buffer(), r.acls()
        n = ZNode(data_, intern_acl(acl), 0, 0)
        n.czxid, n.mzxid, n.ctime, n.mtime = r.long(), r.long(), r.long(), r.long()
        n.version, n.cseq, n.aversion, n.owner, n.pzxid, n.kind, n.ttl = (
            r.int(), r.int(), r.int(), r.long(), r.long(), r.int(), r.long())
        tree.nodes[path] = n
    for path, n in tree.nodes.items():
        if path != "/":
            parent, name = split(path)
            tree.nodes[parent].children.add(name)
        if n.kind == T.K_EPHEMERAL:
            tree.ephemerals.setdefault(n.owner, set()).add(path)
        elif n.kind == T.K_CONTAINER:
            tree.containers.add(path)
        elif n.kind == T.K_TTL:
            tree.ttls.add(path)
        tree.data_size += len(path) + (len(n.data) if n.data else 0)
    sessions = [(r.long(), r.int(), r.buffer() or b"") for _ in range(r.int())]
    return tree, sessions
