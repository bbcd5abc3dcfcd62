"""What a learner sends its leader to have decided: a client's write, or a new session.

A learner never decides a txn.  It forwards the request (as ZooKeeper's REQUEST packet does: session
id, cxid, opcode, the request body, and the ids the connection authenticated as, which prep's ACL
checks need) and answers its client when the txn the leader decided is applied locally.  A new
session's id is allocated by the server the client connected to (its sid is in the id's top byte), so
the createSession carries it.  These bytes are opaque to zab (QuorumPeer.forward / Ready.requests).

No I/O here; decoding bad bytes raises ProtocolError.
"""
from __future__ import annotations

from typing import NamedTuple

from coordcore.errors import ProtocolError
from coordcore.node.acl import AuthInfo
from coordcore.wire import proto as P
from coordcore.wire.jute import Reader, Writer

WRITE, CREATE_SESSION = 1, 2


class ForwardedWrite(NamedTuple):
    session_id: int
    cxid: int
    op: int
    req: object
    auth: AuthInfo


class ForwardedSession(NamedTuple):
    session_id: int
    timeout_ms: int
    passwd: bytes


def encode_write(session_id: int, cxid: int, op: int, req, auth: AuthInfo) -> bytes:
    w = Writer().int(WRITE).long(session_id).int(cxid).int(op).bool(auth.is_super)
    w.int(len(auth.ids))
    for scheme, ident in auth.ids:
        w.ustring(scheme).ustring(ident)
    return w.buffer(P.encode_write(op, req)).getvalue()


def encode_session(session_id: int, timeout_ms: int, passwd: bytes) -> bytes:
    return Writer().int(CREATE_SESSION).long(session_id).int(timeout_ms).buffer(passwd).getvalue()


def decode(payload: bytes) -> ForwardedWrite | ForwardedSession:
    try:
        r = Reader(payload, 0, len(payload) + 1)
        kind = r.int()
        if kind == CREATE_SESSION:
            return ForwardedSession(r.long(), r.int(), r.buffer() or b"")
        if kind != WRITE:
            raise ProtocolError(f"unknown forwarded request kind {kind}")
        session_id, cxid, op, is_super = r.long(), r.int(), r.int(), r.bool()
        auth = AuthInfo("")
        auth.ids = [(r.ustring() or "", r.ustring() or "") for _ in range(r.vector_count())]
        auth.is_super = is_super
        if op not in P.WRITE_OPS:
            raise ProtocolError(f"forwarded opcode {op} is not a write")
        body = r.buffer() or b""
        req = P.DECODERS[op](Reader(body, 0, len(body) + 1))
        return ForwardedWrite(session_id, cxid, op, req, auth)
    except P.MultiTypeError as e:
        raise ProtocolError("forwarded multi mixes reads and writes") from e
