"""Transactions: the deterministic, fully decided changes the write pipeline logs and applies.

A txn is decided once (by prep on the leader / standalone server) and then
applied byte-for-byte everywhere, including on recovery from the log: it
carries the chosen sequential name, timestamp, owner and versions, never a
request to re-decide.  Failed writes are ERROR txns so that they consume a
zxid and keep replies in order, as ZooKeeper does.
"""
from __future__ import annotations

import struct

from coordcore.wire.jute import OPEN_ACL, OPEN_ACL_BYTES, Reader, Writer

T_CREATE = 1
T_DELETE = 2
T_SET_DATA = 5
T_SET_ACL = 7
T_CHECK = 13
T_MULTI = 14
T_CREATE_SESSION = -10
T_CLOSE_SESSION = -11
T_ERROR = -1

# node kinds carried by a create txn
K_PERSISTENT = 0
K_EPHEMERAL = 1
K_CONTAINER = 2
K_TTL = 3


class Txn:
    """Header + body.  body is a tuple whose shape depends on type:

    CREATE         (path, data, acl, kind, owner, ttl, parent_cseq)   parent_cseq = parent's counter after
    DELETE         (path,)
    SET_DATA       (path, data, version)                               version = new version
    SET_ACL        (path, acl, aversion)                               aversion = new aversion
    CHECK          (path, version)
    ERROR          (err,)
    MULTI          ([(type, body), ...],)
    CREATE_SESSION (timeout_ms, passwd)
    CLOSE_SESSION  (ephemeral paths,)
    """

    __slots__ = ("zxid", "time", "session_id", "cxid", "type", "body")

    def __init__(self, zxid, time, session_id, cxid, type_, body):
        self.zxid = zxid
        self.time = time
        self.session_id = session_id
        self.cxid = cxid
        self.type = type_
        self.body = body

    def __repr__(self):
        return "Txn(zxid=%#x, type=%d, session=%#x, body=%r)" % (self.zxid, self.type, self.session_id, self.body)


def _enc_body(w: Writer, t: int, b: tuple) -> None:
    if t == T_CREATE:
        path, data, acl, kind, owner, ttl, cseq = b
        w.ustring(path).buffer(data).acls(acl).int(kind).long(owner).long(ttl).int(cseq)
    elif t == T_DELETE:
        w.ustring(b[0])
    elif t == T_SET_DATA:
        w.ustring(b[0]).buffer(b[1]).int(b[2])
    elif t == T_SET_ACL:
        w.ustring(b[0]).acls(b[1]).int(b[2])
    elif t == T_CHECK:
        w.ustring(b[0]).int(b[1])
    elif t == T_ERROR:
        w.int(b[0])
    elif t == T_MULTI:
        ops = b[0]
        w.int(len(ops))
        for st, sb in ops:
            w.int(st)
            _enc_body(w, st, sb)
    elif t == T_CREATE_SESSION:
        w.int(b[0]).buffer(b[1])
    elif t == T_CLOSE_SESSION:
        w.strings(b[0])
    else:
        raise ValueError("unknown txn type %d" % t)


def _dec_body(r: Reader, t: int) -> tuple:
    if t == T_CREATE:
        return (r.ustring(), r.buffer(), r.acls(), r.int(), r.long(), r.long(), r.int())
    if t == T_DELETE:
        return (r.ustring(),)
    if t == T_SET_DATA:
        return (r.ustring(), r.buffer(), r.int())
    if t == T_SET_ACL:
        return (r.ustring(), r.acls(), r.int())
    if t == T_CHECK:
        return (r.ustring(), r.int())
    if t == T_ERROR:
        return (r.int(),)
    if t == T_MULTI:
        n = r.int()
        ops = []
        for _ in range(n):
            st = r.int()
            ops.append((st, _dec_body(r, st)))
        return (ops,)
    if t == T_CREATE_SESSION:
        return (r.int(), r.buffer() or b"")
    if t == T_CLOSE_SESSION:
        return (r.strings(),)
    raise ValueError("unknown txn type %d" % t)


_HEADER = struct.Struct(">qqqii")


_SET_DATA_HEAD = struct.Struct(">qqqiii")  # header + path length
_CREATE_TAIL = struct.Struct(">iqqi")  # kind, owner, ttl, parent cseq


def encode(txn: Txn) -> bytes:
    if txn.type == T_SET_DATA:  # the hot path, without a Writer
        path, data, version = txn.body
        p = path.encode("utf-8")
        d = b"\xff\xff\xff\xff" if data is None else len(data).to_bytes(4, "big") + data
        return b"".join((_SET_DATA_HEAD.pack(txn.zxid, txn.time, txn.session_id, txn.cxid, T_SET_DATA, len(p)),
                         p, d, version.to_bytes(4, "big", signed=True)))
    if txn.type == T_CREATE and txn.body[2] is OPEN_ACL:  # prep's fixup hands every open ACL on as OPEN_ACL
        path, data, _, kind, owner, ttl, cseq = txn.body
        p = path.encode("utf-8")
        d = b"\xff\xff\xff\xff" if data is None else len(data).to_bytes(4, "big") + data
        return b"".join((_SET_DATA_HEAD.pack(txn.zxid, txn.time, txn.session_id, txn.cxid, T_CREATE, len(p)),
                         p, d, OPEN_ACL_BYTES, _CREATE_TAIL.pack(kind, owner, ttl, cseq)))
    w = Writer()
    w.buf += _HEADER.pack(txn.zxid, txn.time, txn.session_id, txn.cxid, txn.type)
    _enc_body(w, txn.type, txn.body)
    return bytes(w.buf)


_last_time = [0]


def decode(data: bytes) -> Txn:
    r = Reader(data, 0, max_len=1 << 30)
    zxid, time, sid, cxid, t = r.long(), r.long(), r.long(), r.int(), r.int()
    # Txns of one millisecond share one int, as they did when the server made them: every znode
    # keeps its ctime and mtime, so a log replay would otherwise cost 32 bytes more per node.
    if time == _last_time[0]:
        time = _last_time[0]
    else:
        _last_time[0] = time
    return Txn(zxid, time, sid, cxid, t, _dec_body(r, t))
