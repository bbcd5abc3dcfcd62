"""A tiny synchronous ZooKeeper wire-protocol client for tests.

kazoo 2.11 does not send every opcode a server must answer (removeWatches, checkWatches, getEphemerals,
getAllChildrenNumber, whoAmI, multiRead, createContainer, createTTL, setWatches) and it cannot produce
broken handshakes on purpose.  This module speaks the protocol byte by byte so tests can do both, against
coordcore and Apache ZooKeeper alike.  It is deliberately simple: one blocking socket, one request at a
time (pipelining is available through ``send_request`` + ``read_reply``), notifications collected in
``events`` in arrival order.
"""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass, field

# opcodes
CREATE, DELETE, EXISTS, GET_DATA, SET_DATA, GET_ACL, SET_ACL, GET_CHILDREN, SYNC = 1, 2, 3, 4, 5, 6, 7, 8, 9
PING, GET_CHILDREN2, CHECK, MULTI, CREATE2, RECONFIG = 11, 12, 13, 14, 15, 16
CHECK_WATCHES, REMOVE_WATCHES, CREATE_CONTAINER, CREATE_TTL, MULTI_READ = 17, 18, 19, 21, 22
AUTH, SET_WATCHES, GET_EPHEMERALS, GET_ALL_CHILDREN_NUMBER, SET_WATCHES2, ADD_WATCH, WHO_AM_I = (
    100, 101, 103, 104, 105, 106, 107)
CLOSE_SESSION = -11

# error codes used by tests
OK, RUNTIMEINCONSISTENCY, MARSHALLINGERROR, UNIMPLEMENTED, BADARGUMENTS = 0, -2, -5, -6, -8
NONODE, NOAUTH, BADVERSION, NOCHILDRENFOREPHEMERALS, NODEEXISTS, NOTEMPTY = -101, -102, -103, -108, -110, -111
SESSIONEXPIRED, INVALIDACL, AUTHFAILED, NOWATCHER, RECONFIGDISABLED = -112, -114, -115, -121, -123

OPEN_ACL = [(31, "world", "anyone")]
STAT_FMT = "!qqqqiiiqiiq"
STAT_LEN = struct.calcsize(STAT_FMT)


@dataclass(frozen=True)
class Stat:
    czxid: int
    mzxid: int
    ctime: int
    mtime: int
    version: int
    cversion: int
    aversion: int
    ephemeralOwner: int
    dataLength: int
    numChildren: int
    pzxid: int


class Writer:
    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def int(self, v: int) -> "Writer":
        self.parts.append(struct.pack("!i", v))
        return self

    def long(self, v: int) -> "Writer":
        self.parts.append(struct.pack("!q", v))
        return self

    def bool(self, v: bool) -> "Writer":
        self.parts.append(b"\x01" if v else b"\x00")
        return self

    def buffer(self, v: bytes | None) -> "Writer":
        if v is None:
            return self.int(-1)
        self.int(len(v))
        self.parts.append(bytes(v))
        return self

    def string(self, v: str | None) -> "Writer":
        return self.buffer(None if v is None else v.encode("utf-8"))

    def strings(self, vs: list[str] | None) -> "Writer":
        if vs is None:
            return self.int(-1)
        self.int(len(vs))
        for v in vs:
            self.string(v)
        return self

    def acls(self, acls: list[tuple[int, str, str]]) -> "Writer":
        self.int(len(acls))
        for perms, scheme, ident in acls:
            self.int(perms).string(scheme).string(ident)
        return self

    def raw(self, b: bytes) -> "Writer":
        self.parts.append(b)
        return self

    def bytes(self) -> bytes:
        return b"".join(self.parts)


class Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def _take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ValueError("short record")
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def int(self) -> int:
        return struct.unpack("!i", self._take(4))[0]

    def long(self) -> int:
        return struct.unpack("!q", self._take(8))[0]

    def bool(self) -> bool:
        return self._take(1) != b"\x00"

    def buffer(self) -> bytes | None:
        n = self.int()
        return None if n < 0 else self._take(n)

    def string(self) -> str | None:
        b = self.buffer()
        return None if b is None else b.decode("utf-8")

    def strings(self) -> list[str] | None:
        n = self.int()
        return None if n < 0 else [self.string() for _ in range(n)]

    def stat(self) -> Stat:
        return Stat(*struct.unpack(STAT_FMT, self._take(STAT_LEN)))

    def acls(self) -> list[tuple[int, str, str]]:
        n = self.int()
        return [(self.int(), self.string(), self.string()) for _ in range(max(n, 0))]

    def rest(self) -> bytes:
        return self.data[self.pos:]


@dataclass
class ConnectResponse:
    protocol_version: int
    timeout: int
    session_id: int
    passwd: bytes
    read_only: bool | None
    raw_len: int


@dataclass
class Reply:
    xid: int
    zxid: int
    err: int
    body: bytes

    def reader(self) -> Reader:
        return Reader(self.body)


@dataclass
class Event:
    type: int
    state: int
    path: str
    zxid: int


def connect_request(timeout_ms: int = 10000, session_id: int = 0, passwd: bytes = b"\x00" * 16,
                    last_zxid: int = 0, read_only: bool | None = False) -> bytes:
    w = Writer().int(0).long(last_zxid).int(timeout_ms).long(session_id).buffer(passwd)
    if read_only is not None:
        w.bool(read_only)
    return w.bytes()


def frame(payload: bytes) -> bytes:
    return struct.pack("!i", len(payload)) + payload


def parse_hostport(connect_string: str) -> tuple[str, int]:
    first = connect_string.split(",")[0].split("/")[0]
    host, _, port = first.rpartition(":")
    return host or "127.0.0.1", int(port)


class RawClient:
    """One TCP connection speaking the ZooKeeper client protocol synchronously."""

    def __init__(self, connect_string: str, io_timeout: float = 10.0) -> None:
        self.address = parse_hostport(connect_string)
        self.sock = socket.create_connection(self.address, timeout=io_timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.io_timeout = io_timeout
        self.xid = 0
        self.events: list[Event] = []
        self.log: list[tuple] = []  # ("event", Event) / ("reply", Reply) in arrival order
        self.session: ConnectResponse | None = None
        self.last_zxid = 0

    # ------------------------------------------------------------ framing
    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_frame(self, payload: bytes) -> None:
        self.sock.sendall(frame(payload))

    def _recv_exact(self, n: int) -> bytes | None:
        buf = b""
        while len(buf) < n:
            try:
                chunk = self.sock.recv(n - len(buf))
            except (ConnectionResetError, BrokenPipeError):
                return None
            if not chunk:
                return None
            buf += chunk
        return buf

    def recv_frame(self) -> bytes | None:
        """The next frame's payload, or None if the server closed the connection."""
        head = self._recv_exact(4)
        if head is None:
            return None
        (n,) = struct.unpack("!i", head)
        body = self._recv_exact(n)
        if body is None:
            raise ConnectionError("connection closed mid-frame")
        return body

    def wait_closed(self, timeout: float = 10.0) -> bool:
        """True if the server closes the connection (EOF or reset) before ``timeout``; frames read meanwhile
        are parsed and logged."""
        deadline = time.monotonic() + timeout
        old = self.sock.gettimeout()
        try:
            while time.monotonic() < deadline:
                self.sock.settimeout(max(0.01, deadline - time.monotonic()))
                try:
                    data = self.sock.recv(65536)
                except socket.timeout:
                    return False
                except (ConnectionResetError, BrokenPipeError):
                    return True
                if not data:
                    return True
            return False
        finally:
            self.sock.settimeout(old)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> "RawClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------ handshake
    def handshake(self, timeout_ms: int = 10000, session_id: int = 0, passwd: bytes = b"\x00" * 16,
                  last_zxid: int = 0, read_only: bool | None = False) -> ConnectResponse | None:
        """Send a ConnectRequest; return the ConnectResponse, or None if the server closed instead."""
        self.send_frame(connect_request(timeout_ms, session_id, passwd, last_zxid, read_only))
        payload = self.recv_frame()
        if payload is None:
            return None
        r = Reader(payload)
        resp = ConnectResponse(r.int(), r.int(), r.long(), r.buffer() or b"", None, len(payload))
        if r.pos < len(payload):
            resp.read_only = r.bool()
        self.session = resp
        return resp

    # ------------------------------------------------------------ requests
    def next_xid(self) -> int:
        self.xid += 1
        return self.xid

    def send_request(self, op: int, body: bytes = b"", xid: int | None = None) -> int:
        if xid is None:
            xid = self.next_xid()
        self.send_frame(struct.pack("!ii", xid, op) + body)
        return xid

    def read_reply(self) -> Reply | None:
        """The next non-notification reply (notifications are stored in ``events``), None on close."""
        while True:
            payload = self.recv_frame()
            if payload is None:
                return None
            r = Reader(payload)
            xid, zxid, err = r.int(), r.long(), r.int()
            if xid == -1:
                ev = Event(r.int(), r.int(), r.string(), zxid)
                self.events.append(ev)
                self.log.append(("event", ev))
                continue
            reply = Reply(xid, zxid, err, r.rest())
            if zxid > 0:
                self.last_zxid = max(self.last_zxid, zxid)
            self.log.append(("reply", reply))
            return reply

    def call(self, op: int, body: bytes = b"", xid: int | None = None) -> Reply:
        sent = self.send_request(op, body, xid)
        reply = self.read_reply()
        if reply is None:
            raise ConnectionError("server closed the connection (op %d)" % op)
        if reply.xid != sent:
            raise AssertionError("reply xid %d for request xid %d" % (reply.xid, sent))
        return reply

    def read_event(self, timeout: float = 5.0) -> Event | None:
        """Wait for one notification (None after ``timeout``)."""
        if self.events:
            return self.events.pop(0)
        old = self.sock.gettimeout()
        self.sock.settimeout(timeout)
        try:
            payload = self.recv_frame()
        except socket.timeout:
            return None
        finally:
            self.sock.settimeout(old)
        if payload is None:
            return None
        r = Reader(payload)
        xid, zxid, _err = r.int(), r.long(), r.int()
        if xid != -1:
            raise AssertionError("expected a notification, got xid %d" % xid)
        ev = Event(r.int(), r.int(), r.string(), zxid)
        self.log.append(("event", ev))
        return ev

    # ------------------------------------------------------------ ops
    def ping(self) -> Reply:
        return self.call(PING, xid=-2)

    def auth(self, scheme: str, credential: bytes) -> Reply:
        return self.call(AUTH, Writer().int(0).string(scheme).buffer(credential).bytes(), xid=-4)

    def create(self, path: str, data: bytes | None = b"", acl=None, flags: int = 0, op: int = CREATE,
               ttl: int | None = None) -> Reply:
        w = Writer().string(path).buffer(data).acls(OPEN_ACL if acl is None else acl).int(flags)
        if ttl is not None:
            w.long(ttl)
        return self.call(op, w.bytes())

    def delete(self, path: str, version: int = -1) -> Reply:
        return self.call(DELETE, Writer().string(path).int(version).bytes())

    def exists(self, path: str, watch: bool = False) -> Reply:
        return self.call(EXISTS, Writer().string(path).bool(watch).bytes())

    def get_data(self, path: str, watch: bool = False) -> Reply:
        return self.call(GET_DATA, Writer().string(path).bool(watch).bytes())

    def set_data(self, path: str, data: bytes | None, version: int = -1) -> Reply:
        return self.call(SET_DATA, Writer().string(path).buffer(data).int(version).bytes())

    def get_children(self, path: str, watch: bool = False, op: int = GET_CHILDREN) -> Reply:
        return self.call(op, Writer().string(path).bool(watch).bytes())

    def sync(self, path: str) -> Reply:
        return self.call(SYNC, Writer().string(path).bytes())

    def add_watch(self, path: str, mode: int) -> Reply:
        return self.call(ADD_WATCH, Writer().string(path).int(mode).bytes())

    def remove_watches(self, path: str, wtype: int) -> Reply:
        return self.call(REMOVE_WATCHES, Writer().string(path).int(wtype).bytes())

    def check_watches(self, path: str, wtype: int) -> Reply:
        return self.call(CHECK_WATCHES, Writer().string(path).int(wtype).bytes())

    def get_ephemerals(self, prefix: str | None) -> Reply:
        return self.call(GET_EPHEMERALS, Writer().string(prefix).bytes())

    def get_all_children_number(self, path: str) -> Reply:
        return self.call(GET_ALL_CHILDREN_NUMBER, Writer().string(path).bytes())

    def who_am_i(self) -> Reply:
        return self.call(WHO_AM_I)

    def set_watches(self, relative_zxid: int, data=(), exist=(), child=(), persistent=None,
                    recursive=None) -> Reply:
        w = Writer().long(relative_zxid).strings(list(data)).strings(list(exist)).strings(list(child))
        if persistent is None and recursive is None:
            return self.call(SET_WATCHES, w.bytes())
        w.strings(list(persistent or ())).strings(list(recursive or ()))
        return self.call(SET_WATCHES2, w.bytes())

    def multi_read(self, ops: list[tuple[int, str]]) -> Reply:
        w = Writer()
        for op, path in ops:
            w.int(op).bool(False).int(-1).string(path).bool(False)
        w.int(-1).bool(True).int(-1)
        return self.call(MULTI_READ, w.bytes())

    def close_session(self) -> Reply | None:
        self.send_request(CLOSE_SESSION)
        return self.read_reply()


def parse_multi(body: bytes) -> list[tuple[int, int, object]]:
    """Decode a MultiResponse into [(type, err, value)] (value: path, Stat, (data, Stat), children or err)."""
    r = Reader(body)
    out: list[tuple[int, int, object]] = []
    while True:
        typ, done, err = r.int(), r.bool(), r.int()
        if done:
            return out
        if typ == -1:
            out.append((typ, err, r.int()))
        elif typ == CREATE:
            out.append((typ, err, r.string()))
        elif typ in (CREATE2, CREATE_CONTAINER, CREATE_TTL):
            out.append((typ, err, (r.string(), r.stat())))
        elif typ in (DELETE, CHECK):
            out.append((typ, err, None))
        elif typ == SET_DATA:
            out.append((typ, err, r.stat()))
        elif typ == GET_DATA:
            out.append((typ, err, (r.buffer(), r.stat())))
        elif typ == GET_CHILDREN:
            out.append((typ, err, r.strings()))
        else:
            raise ValueError("unknown multi result type %d" % typ)


def connected(connect_string: str, timeout_ms: int = 10000) -> RawClient:
    """A RawClient with a fresh session."""
    c = RawClient(connect_string)
    resp = c.handshake(timeout_ms)
    if resp is None or resp.timeout <= 0:
        c.close()
        raise ConnectionError("handshake refused")
    return c
