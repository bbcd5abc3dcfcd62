"""Snapshot format: a DataTree plus the session table <-> bytes.  Files belong to storage.

Layout (big-endian): int format, long last_zxid; the distinct ACL lists (each a jute
vector<ACL>), referenced by index; then every node as ustring path, buffer data and one
fixed-size record of its Stat fields; then the sessions.  Fixed fields are packed with one
struct call per node.  The server encodes in steps between requests (SnapshotEncoder), so a
large tree costs no pause.
"""
from __future__ import annotations

import struct
from typing import Iterator

from coordcore.tree import txn as T
from coordcore.tree.datatree import NO_CHILDREN, DataTree, ZNode, add_child, intern_acl, node_meta
from coordcore.wire.jute import I32, Reader, Writer

FORMAT_VERSION = 2
_NODE = struct.Struct(">iqqqqiiiqqiq")  # acl index, czxid, mzxid, ctime, mtime, version, cseq,
#                                         aversion, owner, pzxid, kind, ttl
_NULL = b"\xff\xff\xff\xff"


class SnapshotEncoder:
    """Encodes a tree as it is at construction, in steps, while txns keep being applied.

    With ``track`` the tree keeps each node's state before its first change (``DataTree.preserved``)
    until the encoder is done, so the result is exact at ``zxid`` however the steps interleave with
    applies: nodes created later are not in the captured list, nodes deleted later still are.
    """

    def __init__(self, tree: DataTree, sessions: list[tuple[int, int, bytes]], track: bool = False):
        self.tree = tree
        self.zxid = tree.last_zxid
        # two flat lists of objects that already exist: no per-node allocation lives through the
        # snapshot, so it does not fragment the small-object heap the tree itself lives in
        self.paths = list(tree.nodes)
        self.nodes = list(tree.nodes.values())
        self.sessions = list(sessions)
        self.track = track
        self.preserved = {} if track else None
        if track:
            tree.preserved = self.preserved
        self.acl_index: dict = {}
        self.parts: list[bytes] = []
        self.next = 0

    def __len__(self) -> int:
        return len(self.paths)

    def step(self, count: int) -> bool:
        """Encode up to `count` more nodes; True once every node is encoded."""
        end = min(self.next + count, len(self.paths))
        # one block per step: no huge buffer regrown again and again
        self.parts.append(_encode_nodes(self.paths, self.nodes, self.next, end, self.acl_index, self.preserved))
        self.next = end
        done = end >= len(self.paths)
        if done and self.track and self.tree.preserved is self.preserved:
            self.tree.preserved = None
        return done

    def result(self) -> bytes:
        return b"".join((_head(self.zxid, self.acl_index, len(self.paths)), *self.parts, _tail(self.sessions)))


def _encode_nodes(paths, nodes, start: int, end: int, acl_index: dict, preserved) -> bytes:
    """Nodes ``start:end`` of the parallel lists ``paths`` and ``nodes``; new ACLs get the next index."""
    buf = bytearray()
    pack, pack_len = _NODE.pack, I32.pack
    for i in range(start, end):
        n = nodes[i]
        f = preserved.get(n) if preserved else None
        if f is None:
            f = n.snap_fields()
        data, acl = f[0], f[1]
        idx = acl_index.get(acl)
        if idx is None:
            idx = acl_index[acl] = len(acl_index)
        p = paths[i].encode("utf-8")
        buf += pack_len(len(p))
        buf += p
        if data is None:
            buf += _NULL
        else:
            buf += pack_len(len(data))
            buf += data
        buf += pack(idx, *f[2:])
    return bytes(buf)


def _head(zxid: int, acl_index: dict, node_count: int) -> bytes:
    head = Writer().int(FORMAT_VERSION).long(zxid).int(len(acl_index))
    for acl in acl_index:
        head.acls(acl)
    return head.int(node_count).getvalue()


def _tail(sessions) -> bytes:
    tail = Writer().int(len(sessions))
    for sid, timeout, passwd in sessions:
        tail.long(sid).int(timeout).buffer(passwd)
    return tail.getvalue()


def encode_stream(tree: DataTree, sessions: list[tuple[int, int, bytes]],
                  chunk_nodes: int = 4096) -> tuple[int, Iterator[bytes]]:
    """``(length, chunks)``: the bytes of :func:`encode`, in pieces of ``chunk_nodes`` nodes.

    For a tree that stays unchanged until the chunks are consumed (a forked child's copy). A first
    pass finds the ACL table and the total length, so a file header can be written before the body
    and only one chunk is ever held in memory: encoding the whole tree into one buffer, then joining
    it, doubled a snapshot writer's memory.
    """
    paths = list(tree.nodes)
    nodes = list(tree.nodes.values())
    acl_index: dict = {}
    body = len(nodes) * (8 + _NODE.size)  # each node: path length, data length (or -1), fixed fields
    for path, n in zip(paths, nodes):
        acl = n.meta[0]
        if acl not in acl_index:
            acl_index[acl] = len(acl_index)
        data = n.data
        body += (len(path) if path.isascii() else len(path.encode("utf-8"))) + (len(data) if data else 0)
    head, tail = _head(tree.last_zxid, acl_index, len(nodes)), _tail(sessions)

    def chunks() -> Iterator[bytes]:
        yield head
        for start in range(0, len(nodes), chunk_nodes):
            yield _encode_nodes(paths, nodes, start, min(start + chunk_nodes, len(nodes)), acl_index, None)
        yield tail

    return len(head) + body + len(tail), chunks()


def encode(tree: DataTree, sessions: list[tuple[int, int, bytes]]) -> bytes:
    """The whole tree at once; sessions: (session_id, timeout_ms, passwd)."""
    enc = SnapshotEncoder(tree, sessions)
    enc.step(len(enc))
    return enc.result()


def decode(data: bytes) -> tuple[DataTree, list[tuple[int, int, bytes]]]:
    r = Reader(data, 0, max_len=1 << 31)
    version = r.int()
    if version != FORMAT_VERSION:
        raise ValueError("unknown snapshot format version %d" % version)
    tree = DataTree()
    tree.nodes.clear()
    tree.data_size = 0
    tree.last_zxid = r.long()
    acls = [intern_acl(r.acls()) for _ in range(r.int())]
    nodes = tree.nodes
    unpack, size = _NODE.unpack_from, _NODE.size
    new = ZNode.__new__
    last_time = None
    for _ in range(r.int()):
        path = r.ustring()
        data_ = r.buffer()
        (ai, czxid, mzxid, ctime, mtime, ver, cseq, aver, owner, pzxid, kind, ttl) = unpack(data, r.pos)
        r.pos += size
        # Equal stamps share one int, as in the tree that was saved (a node's czxid, mzxid and pzxid
        # start as one object, so do its ctime and mtime, and nodes of one millisecond share a time):
        # without this a restarted server held about 100 bytes more per znode than before the restart.
        if mzxid == czxid:
            mzxid = czxid
        if pzxid == czxid:
            pzxid = czxid
        elif pzxid == mzxid:
            pzxid = mzxid
        if ctime == last_time:
            ctime = last_time
        else:
            last_time = ctime
        if mtime == ctime:
            mtime = ctime
        n = new(ZNode)
        n.data, n.meta, n.children = data_, node_meta(acls[ai], aver, owner, kind, ttl), NO_CHILDREN
        n.czxid, n.mzxid, n.ctime, n.mtime, n.pzxid = czxid, mzxid, ctime, mtime, pzxid
        n.version, n.cseq = ver, cseq
        nodes[path] = n
    data_size = 0
    for path, n in nodes.items():
        if path != "/":
            add_child(nodes[path[:path.rfind("/")] or "/"], path)
        if n.kind != T.K_PERSISTENT:
            tree.index(path, n)
        data_size += len(path) + (len(n.data) if n.data else 0)
    tree.data_size = data_size
    tree.setup_quotas()
    sessions = [(r.long(), r.int(), r.buffer() or b"") for _ in range(r.int())]
    return tree, sessions
