"""Client protocol records: opcodes, reserved xids, request decoding, handshake.

Decoding is table-driven: DECODERS[opcode](reader) -> request record.  Records
are plain slotted classes; responses are encoded by the node, which knows the
tree.  Nothing here knows about sessions or the tree.
"""
from __future__ import annotations

from dataclasses import dataclass

from coordcore.wire.jute import Reader, Writer

# opcodes (ZooDefs.OpCode)
NOTIFICATION = 0
CREATE = 1
DELETE = 2
EXISTS = 3
GET_DATA = 4
SET_DATA = 5
GET_ACL = 6
SET_ACL = 7
GET_CHILDREN = 8
SYNC = 9
PING = 11
GET_CHILDREN2 = 12
CHECK = 13
MULTI = 14
CREATE2 = 15
RECONFIG = 16
CHECK_WATCHES = 17
REMOVE_WATCHES = 18
CREATE_CONTAINER = 19
DELETE_CONTAINER = 20
CREATE_TTL = 21
MULTI_READ = 22
AUTH = 100
SET_WATCHES = 101
SASL = 102
GET_EPHEMERALS = 103
GET_ALL_CHILDREN_NUMBER = 104
SET_WATCHES2 = 105
ADD_WATCH = 106
WHO_AM_I = 107
CREATE_SESSION = -10
CLOSE_SESSION = -11
ERROR = -1

OP_NAMES = {
    CREATE: "CREA", DELETE: "DELE", EXISTS: "EXIS", GET_DATA: "GETD", SET_DATA: "SETD",
    GET_ACL: "GETA", SET_ACL: "SETA", GET_CHILDREN: "GETC", SYNC: "SYNC", PING: "PING",
    GET_CHILDREN2: "GETC", CHECK: "CHEC", MULTI: "MULT", CREATE2: "CREA", RECONFIG: "RECO",
    CHECK_WATCHES: "CHKW", REMOVE_WATCHES: "REMW", CREATE_CONTAINER: "CCON", CREATE_TTL: "CTTL",
    MULTI_READ: "MLTR", AUTH: "AUTH", SET_WATCHES: "SETW", SASL: "SASL", GET_EPHEMERALS: "GETE",
    GET_ALL_CHILDREN_NUMBER: "GETACN", SET_WATCHES2: "STW2", ADD_WATCH: "ADDW", WHO_AM_I: "WHOM",
    CLOSE_SESSION: "CLOS", CREATE_SESSION: "SESS",
}

WRITE_OPS = frozenset({CREATE, DELETE, SET_DATA, SET_ACL, CHECK, MULTI, CREATE2, CREATE_CONTAINER,
                       CREATE_TTL, RECONFIG, CLOSE_SESSION})
CREATE_OPS = frozenset({CREATE, CREATE2, CREATE_CONTAINER, CREATE_TTL})

XID_NOTIFICATION = -1
XID_PING = -2
XID_AUTH = -4
XID_SET_WATCHES = -8

# event types / keeper state
EV_CREATED = 1
EV_DELETED = 2
EV_DATA_CHANGED = 3
EV_CHILDREN_CHANGED = 4
STATE_SYNC_CONNECTED = 3


@dataclass(slots=True)
class ConnectRequest:
    protocol_version: int
    last_zxid_seen: int
    timeout_ms: int
    session_id: int
    passwd: bytes
    read_only: bool
    has_read_only: bool


def decode_connect(buf, max_len: int) -> ConnectRequest:
    r = Reader(buf, 0, max_len)
    pv = r.int()
    last = r.long()
    to = r.int()
    sid = r.long()
    pw = r.buffer() or b""
    has_ro = not r.at_end()
    ro = r.bool() if has_ro else False
    return ConnectRequest(pv, last, to, sid, pw, ro, has_ro)


def encode_connect_response(timeout_ms: int, session_id: int, passwd: bytes, read_only: bool | None) -> bytes:
    w = Writer().int(0).int(timeout_ms).long(session_id).buffer(passwd)
    if read_only is not None:
        w.bool(read_only)
    body = w.getvalue()
    return len(body).to_bytes(4, "big") + body


@dataclass(slots=True)
class Create:
    path: str
    data: bytes | None
    acl: list
    flags: int
    ttl: int = -1


@dataclass(slots=True)
class PathVersion:           # delete, check
    path: str
    version: int


@dataclass(slots=True)
class PathWatch:             # exists, getData, getChildren, getChildren2
    path: str
    watch: bool


@dataclass(slots=True)
class SetData:
    path: str
    data: bytes | None
    version: int


@dataclass(slots=True)
class SetACL:
    path: str
    acl: list
    version: int


@dataclass(slots=True)
class PathOnly:              # getACL, sync, getAllChildrenNumber, getEphemerals
    path: str


@dataclass(slots=True)
class PathType:              # checkWatches, removeWatches, addWatch (type = mode)
    path: str
    type: int


@dataclass(slots=True)
class Multi:
    ops: list                # [(opcode, record)]


@dataclass(slots=True)
class Auth:
    type: int
    scheme: str
    auth: bytes | None  # None: a null buffer


@dataclass(slots=True)
class SetWatches:
    relative_zxid: int
    data: list
    exist: list
    child: list
    persistent: list
    recursive: list


@dataclass(slots=True)
class Reconfig:
    joining: str | None
    leaving: str | None
    new_members: str | None
    config_id: int


class Empty:
    __slots__ = ()


EMPTY = Empty()


def _path(r: Reader) -> str:
    p = r.ustring()
    return "" if p is None else p


def _create(r):
    return Create(_path(r), r.buffer(), r.acls(), r.int())


def _create_ttl(r):
    return Create(_path(r), r.buffer(), r.acls(), r.int(), r.long())


def _path_version(r):
    return PathVersion(_path(r), r.int())


def _path_watch(r):
    return PathWatch(_path(r), r.bool())


def _set_data(r):
    return SetData(_path(r), r.buffer(), r.int())


def _set_acl(r):
    return SetACL(_path(r), r.acls(), r.int())


def _path_only(r):
    return PathOnly(_path(r))


def _path_type(r):
    return PathType(_path(r), r.int())


def _auth(r):
    # auth stays None for a null buffer (length -1): the digest scheme refuses it, as ZooKeeper does
    return Auth(r.int(), r.ustring() or "", r.buffer())


def _set_watches(r):
    return SetWatches(r.long(), r.strings(), r.strings(), r.strings(), [], [])


def _set_watches2(r):
    return SetWatches(r.long(), r.strings(), r.strings(), r.strings(), r.strings(), r.strings())


def _reconfig(r):
    return Reconfig(r.ustring(), r.ustring(), r.ustring(), r.long())


def _empty(r):
    return EMPTY


MULTI_WRITE_OPS = frozenset({CREATE, CREATE2, CREATE_CONTAINER, CREATE_TTL, DELETE, SET_DATA, CHECK})
MULTI_READ_OPS = frozenset({GET_CHILDREN, GET_DATA})
MULTI_DONE = b"\xff\xff\xff\xff\x01\xff\xff\xff\xff"  # MultiHeader{-1, true, -1}: ends a MultiResponse


class MultiTypeError(Exception):
    """A multi mixes reads and writes or carries an unknown op (answered MARSHALLINGERROR)."""


def _multi_ops(r: Reader, allowed) -> list:
    ops = []
    bad = False
    while True:
        op_type = r.int()
        done = r.bool()
        r.int()  # err
        if done:
            break
        dec = DECODERS.get(op_type)
        if dec is None or op_type in (MULTI, MULTI_READ):
            raise MultiTypeError()
        rec = dec(r)
        if op_type not in allowed:
            bad = True
        ops.append((op_type, rec))
    if bad:
        raise MultiTypeError()
    return ops


def _multi(r):
    return Multi(_multi_ops(r, MULTI_WRITE_OPS))


def _multi_read(r):
    return Multi(_multi_ops(r, MULTI_READ_OPS))


DECODERS = {
    CREATE: _create, CREATE2: _create, CREATE_CONTAINER: _create, CREATE_TTL: _create_ttl,
    DELETE: _path_version, CHECK: _path_version,
    EXISTS: _path_watch, GET_DATA: _path_watch, GET_CHILDREN: _path_watch, GET_CHILDREN2: _path_watch,
    SET_DATA: _set_data, SET_ACL: _set_acl,
    GET_ACL: _path_only, SYNC: _path_only, GET_ALL_CHILDREN_NUMBER: _path_only, GET_EPHEMERALS: _path_only,
    CHECK_WATCHES: _path_type, REMOVE_WATCHES: _path_type, ADD_WATCH: _path_type,
    MULTI: _multi, MULTI_READ: _multi_read,
    AUTH: _auth, SET_WATCHES: _set_watches, SET_WATCHES2: _set_watches2, RECONFIG: _reconfig,
    PING: _empty, CLOSE_SESSION: _empty, WHO_AM_I: _empty,
}


# -- encoding write requests (a learner forwards a client's write to the leader as these bytes) ------

def _w_create(w: Writer, r) -> None:
    w.ustring(r.path).buffer(r.data).acls(r.acl).int(r.flags)


def _w_create_ttl(w: Writer, r) -> None:
    _w_create(w, r)
    w.long(r.ttl)


def _w_path_version(w: Writer, r) -> None:
    w.ustring(r.path).int(r.version)


def _w_set_data(w: Writer, r) -> None:
    w.ustring(r.path).buffer(r.data).int(r.version)


def _w_set_acl(w: Writer, r) -> None:
    w.ustring(r.path).acls(r.acl).int(r.version)


def _w_multi(w: Writer, r) -> None:
    for op, sub in r.ops:
        w.int(op).bool(False).int(-1)
        _ENCODERS[op](w, sub)
    w.int(-1).bool(True).int(-1)


def _w_reconfig(w: Writer, r) -> None:
    w.ustring(r.joining).ustring(r.leaving).ustring(r.new_members).long(r.config_id)


def _w_empty(w: Writer, r) -> None:
    pass


_ENCODERS = {
    CREATE: _w_create, CREATE2: _w_create, CREATE_CONTAINER: _w_create, CREATE_TTL: _w_create_ttl,
    DELETE: _w_path_version, CHECK: _w_path_version, SET_DATA: _w_set_data, SET_ACL: _w_set_acl,
    MULTI: _w_multi, RECONFIG: _w_reconfig, CLOSE_SESSION: _w_empty,
}


def encode_write(op: int, req) -> bytes:
    """The request body of a write (the inverse of DECODERS[op] for every op in WRITE_OPS)."""
    w = Writer()
    _ENCODERS[op](w, req)
    return w.getvalue()
