"""Jute primitive codec (ZooKeeper's serialization): no I/O, no records.

Reader decodes from a bytes-like buffer with bounds checks and raises
ProtocolError on anything malformed; Writer appends to a bytearray.
"""
from __future__ import annotations

import struct

from coordcore.errors import ProtocolError

I32 = struct.Struct(">i")
I64 = struct.Struct(">q")
STAT = struct.Struct(">qqqqiiiqiiq")
REPLY_HEADER = struct.Struct(">iqi")
REQUEST_HEADER = struct.Struct(">ii")
FRAMED_REPLY_HEADER = struct.Struct(">iiqi")  # length + ReplyHeader

# world:anyone ALL, the ACL of nearly every node: recognised and written as one byte string
OPEN_ACL_ENTRY = (31, "world", "anyone")
# the open ACL as one shared tuple: decoded creates, prep and the tree all pass this object along
OPEN_ACL = (OPEN_ACL_ENTRY,)


def is_open_acl(acl) -> bool:
    """world:anyone with every permission, as OPEN_ACL or any equal list."""
    return acl is OPEN_ACL or (len(acl) == 1 and acl[0] == OPEN_ACL_ENTRY)
OPEN_ACL_BYTES = b"\x00\x00\x00\x01" + I32.pack(31) + I32.pack(5) + b"world" + I32.pack(6) + b"anyone"
_OPEN_ACL_LEN = len(OPEN_ACL_BYTES)


class Reader:
    __slots__ = ("buf", "pos", "end", "max_len")

    def __init__(self, buf, pos: int = 0, max_len: int = 0xFFFFF):
        self.buf = buf
        self.pos = pos
        self.end = len(buf)
        self.max_len = max_len

    def _need(self, n: int) -> None:
        if self.pos + n > self.end:
            raise ProtocolError("record truncated")

    def int(self) -> int:
        self._need(4)
        v = I32.unpack_from(self.buf, self.pos)[0]
        self.pos += 4
        return v

    def long(self) -> int:
        self._need(8)
        v = I64.unpack_from(self.buf, self.pos)[0]
        self.pos += 8
        return v

    def bool(self) -> bool:
        self._need(1)
        v = self.buf[self.pos]
        self.pos += 1
        return v != 0

    def buffer(self) -> bytes | None:
        n = self.int()
        if n == -1:
            return None
        if n < 0 or n > self.max_len:
            raise ProtocolError("bad buffer length %d" % n)
        self._need(n)
        v = bytes(self.buf[self.pos:self.pos + n])
        self.pos += n
        return v

    def ustring(self) -> str | None:
        n = self.int()
        if n == -1:
            return None
        if n < 0 or n > self.max_len:
            raise ProtocolError("bad string length %d" % n)
        self._need(n)
        raw = bytes(self.buf[self.pos:self.pos + n])
        self.pos += n
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError("string is not UTF-8") from None

    def vector_count(self) -> int:
        n = self.int()
        if n == -1:
            return 0
        if n < 0 or n > self.max_len:
            raise ProtocolError("bad vector length %d" % n)
        return n

    def strings(self) -> list[str]:
        return [self.ustring() or "" for _ in range(self.vector_count())]

    def acls(self) -> tuple[tuple[int, str, str], ...]:
        if self.buf[self.pos:self.pos + _OPEN_ACL_LEN] == OPEN_ACL_BYTES:  # nearly every create
            self.pos += _OPEN_ACL_LEN
            return OPEN_ACL
        out = []
        for _ in range(self.vector_count()):
            perms = self.int()
            out.append((perms, self.ustring() or "", self.ustring() or ""))
        return tuple(out)

    def at_end(self) -> bool:
        return self.pos >= self.end


class Writer:
    __slots__ = ("buf",)

    def __init__(self):
        self.buf = bytearray()

    def int(self, v: int) -> "Writer":
        self.buf += I32.pack(v)
        return self

    def long(self, v: int) -> "Writer":
        self.buf += I64.pack(v)
        return self

    def bool(self, v: bool) -> "Writer":
        self.buf.append(1 if v else 0)
        return self

    def buffer(self, v: bytes | None) -> "Writer":
        if v is None:
            self.buf += b"\xff\xff\xff\xff"
        else:
            self.buf += I32.pack(len(v))
            self.buf += v
        return self

    def ustring(self, v: str | None) -> "Writer":
        return self.buffer(None if v is None else v.encode("utf-8"))

    def strings(self, items) -> "Writer":
        self.buf += I32.pack(len(items))
        for s in items:
            b = s.encode("utf-8")
            self.buf += I32.pack(len(b))
            self.buf += b
        return self

    def acls(self, acl) -> "Writer":
        if is_open_acl(acl):
            self.buf += OPEN_ACL_BYTES
            return self
        self.buf += I32.pack(len(acl))
        for perms, scheme, ident in acl:
            self.int(perms).ustring(scheme).ustring(ident)
        return self

    def raw(self, b) -> "Writer":
        self.buf += b
        return self

    def getvalue(self) -> bytes:
        return bytes(self.buf)
