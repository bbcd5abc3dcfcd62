"""Snapshot format: a DataTree plus the session table <-> bytes.  Files belong to storage.

Layout (big-endian): int format, long last_zxid; the distinct ACL lists (each a jute
vector<ACL>), referenced by index; then every node as ustring path, buffer data and one
fixed-size record of its Stat fields; then the sessions.  Fixed fields are packed with one
struct call per node: the server takes snapshots on its event loop, so encoding speed is
pause time (150k nodes: about 150 ms here).
"""
from __future__ import annotations

import struct

from coordcore.tree import txn as T
from coordcore.tree.datatree import NO_CHILDREN, DataTree, ZNode, add_child, intern_acl
from coordcore.tree.paths import split
from coordcore.wire.jute import I32, Reader, Writer

FORMAT_VERSION = 2
_NODE = struct.Struct(">iqqqqiiiqqiq")  # acl index, czxid, mzxid, ctime, mtime, version, cseq,
#                                         aversion, owner, pzxid, kind, ttl
_NULL = b"\xff\xff\xff\xff"


def encode(tree: DataTree, sessions: list[tuple[int, int, bytes]]) -> bytes:
    """sessions: (session_id, timeout_ms, passwd)."""
    acl_index: dict = {}
    parts = []
    append = parts.append
    pack, pack_len = _NODE.pack, I32.pack
    for path, n in tree.nodes.items():
        idx = acl_index.get(n.acl)
        if idx is None:
            idx = acl_index[n.acl] = len(acl_index)
        p = path.encode("utf-8")
        d = n.data
        append(pack_len(len(p)))
        append(p)
        if d is None:
            append(_NULL)
        else:
            append(pack_len(len(d)))
            append(d)
        append(pack(idx, n.czxid, n.mzxid, n.ctime, n.mtime, n.version, n.cseq, n.aversion, n.owner,
                    n.pzxid, n.kind, n.ttl))
    head = Writer().int(FORMAT_VERSION).long(tree.last_zxid).int(len(acl_index))
    for acl in acl_index:
        head.acls(acl)
    head.int(len(tree.nodes))
    tail = Writer().int(len(sessions))
    for sid, timeout, passwd in sessions:
        tail.long(sid).int(timeout).buffer(passwd)
    return b"".join((head.getvalue(), b"".join(parts), tail.getvalue()))


def decode(data: bytes, keep_events: bool = True) -> tuple[DataTree, list[tuple[int, int, bytes]]]:
    r = Reader(data, 0, max_len=1 << 31)
    version = r.int()
    if version != FORMAT_VERSION:
        raise ValueError("unknown snapshot format version %d" % version)
    tree = DataTree(keep_events)
    tree.nodes.clear()
    tree.data_size = 0
    tree.last_zxid = r.long()
    acls = [intern_acl(r.acls()) for _ in range(r.int())]
    nodes = tree.nodes
    unpack, size = _NODE.unpack_from, _NODE.size
    new = ZNode.__new__
    for _ in range(r.int()):
        path = r.ustring()
        data_ = r.buffer()
        (ai, czxid, mzxid, ctime, mtime, ver, cseq, aver, owner, pzxid, kind, ttl) = unpack(data, r.pos)
        r.pos += size
        n = new(ZNode)
        n.data, n.acl, n.children = data_, acls[ai], NO_CHILDREN
        n.czxid, n.mzxid, n.ctime, n.mtime, n.pzxid = czxid, mzxid, ctime, mtime, pzxid
        n.version, n.cseq, n.aversion, n.owner, n.kind, n.ttl = ver, cseq, aver, owner, kind, ttl
        nodes[path] = n
    data_size = 0
    for path, n in nodes.items():
        if path != "/":
            parent, name = split(path)
            add_child(nodes[parent], name)
        if n.kind == T.K_EPHEMERAL:
            tree.ephemerals.setdefault(n.owner, set()).add(path)
        elif n.kind == T.K_CONTAINER:
            tree.containers.add(path)
        elif n.kind == T.K_TTL:
            tree.ttls.add(path)
        data_size += len(path) + (len(n.data) if n.data else 0)
    tree.data_size = data_size
    sessions = [(r.long(), r.int(), r.buffer() or b"") for _ in range(r.int())]
    return tree, sessions
