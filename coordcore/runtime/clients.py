"""Client connections: bytes <-> protocol records <-> Replica.  One asyncio Protocol per socket.

Framing and per-connection ordering: replies leave in request order; a read waits behind the same
connection's pending writes; pings are answered at once; notifications are queued on the connection
in the order the replica delivers them, before the reply that reveals their change.  Session
decisions (handshake, expiry, closing) are the replica's.
"""
from __future__ import annotations

import asyncio
import time
from collections import deque

import structlog

from coordcore.errors import Err, ProtocolError
from coordcore.node import acl as A
from coordcore.runtime import fourletter
from coordcore.wire import proto as P
from coordcore.wire.jute import FRAMED_REPLY_HEADER, I32, REQUEST_HEADER, Reader, Writer

log = structlog.get_logger("coordcore")

S_NEW, S_AWAIT_SESSION, S_CONNECTED, S_CLOSED = range(4)
# reads that may fire notifications at once (a resumed watch whose node changed): delivered before the reply
NOTIFYING_READS = frozenset({P.SET_WATCHES, P.SET_WATCHES2})
FOUR_LETTER_PREFIXES = frozenset(w.encode() for w in fourletter.FOUR_LETTER_WORDS)
INVALID_PASSWD = b"\x00" * 16
NULL_BUFFER = b"\xff\xff\xff\xff"  # a jute buffer of length -1 (null)
SESSIONLESS_TIMEOUT_S = 10.0
MAX_OUTSTANDING = 1000  # per connection, like ZooKeeper's globalOutstandingLimit default


def frame_reply(xid: int, zxid: int, err: int, body: bytes = b"") -> bytes:
    return FRAMED_REPLY_HEADER.pack(16 + len(body), xid, zxid, err) + body


class Pending:
    """One request awaiting its turn in the connection's reply order."""

    __slots__ = ("xid", "op", "req", "is_write", "reply", "received_ns")

    def __init__(self, xid, op, req, is_write, received_ns):
        self.xid = xid
        self.op = op
        self.req = req
        self.is_write = is_write
        self.reply = None
        self.received_ns = received_ns


class ClientConnection(asyncio.Protocol):
    def __init__(self, server):
        self.server = server
        self.replica = server.replica
        self.transport = None
        self.inbuf = bytearray()
        self.out: list[bytes] = []
        self.flush_scheduled = False
        self.state = S_NEW
        self.pending: deque[Pending] = deque()
        self.session_id = 0
        self.timeout_ms = 0
        self.auth: A.AuthInfo | None = None
        self.watches: set = set()
        self.peer = ("?", 0)
        self.max_len = server.config.jute_maxbuffer
        self.has_read_only_flag = True
        self.close_after_flush = False
        self.is_four_letter = False
        self.reading_paused = False
        self.touched = False
        self._deadline = None  # the handshake deadline timer
        # stats for cons/stat
        self.recved = 0
        self.sent = 0
        self.established_ms = 0
        self.last_op = "NA"
        self.last_cxid = -1
        self.last_zxid = -1
        self.last_response_ms = 0
        self.lat_last = self.lat_min = self.lat_max = 0
        self.lat_total = 0
        self.lat_count = 0

    # ------------------------------------------------------------------ asyncio callbacks
    def connection_made(self, transport):
        self.transport = transport
        peer = transport.get_extra_info("peername") or ("?", 0)
        self.peer = (peer[0], peer[1])
        self.auth = A.AuthInfo(self.peer[0])
        if not self.server.register_connection(self):
            log.warning("client.rejected", reason="too many connections", peer=self.peer[0],
                        limit=self.server.config.max_client_cnxns)
            self.state = S_CLOSED
            transport.abort()
            return
        # a connection that never completes its handshake does not hold a slot forever (ZooKeeper's
        # NIO server drops such "sessionless" connections after 10 s by default)
        self._deadline = self.server.loop.call_later(SESSIONLESS_TIMEOUT_S, self._handshake_deadline)

    def _handshake_deadline(self):
        if self.state == S_NEW:
            log.info("client.handshake_timeout", peer="%s:%s" % self.peer)
            self.close()

    # Backpressure: a client that does not read its replies stops being read from, so neither its
    # unsent replies nor its unanswered requests can grow without bound.
    def pause_writing(self):
        self.transport.pause_reading()

    def resume_writing(self):
        if self.state != S_CLOSED:
            self.transport.resume_reading()

    def connection_lost(self, exc):
        self.state = S_CLOSED
        if self._deadline is not None:
            self._deadline.cancel()  # frees this connection now rather than 10 s later
            self._deadline = None
        self.server.unregister_connection(self)

    def data_received(self, data):
        if self.state == S_CLOSED:
            return
        self.touched = False
        self.inbuf += data
        try:
            self._process_input()
        except ProtocolError as e:
            log.warning("client.protocol_error", peer="%s:%s" % self.peer, session="0x%x" % self.session_id,
                        error=str(e))
            self.close()
        self._schedule_flush()

    # ------------------------------------------------------------------ framing
    def _process_input(self):
        buf = self.inbuf
        pos = 0
        n = len(buf)
        while self.state in (S_NEW, S_CONNECTED) and n - pos >= 4:
            if self.state == S_NEW and pos == 0 and bytes(buf[0:4]) in FOUR_LETTER_PREFIXES:
                cmd = bytes(buf[0:4]).decode()
                if cmd == "stmk" and n < 12:
                    return  # the 8-byte trace mask follows
                self.server.four_letter(self, cmd, bytes(buf[4:12]))
                del buf[:]
                return
            length = I32.unpack_from(buf, pos)[0]
            if length < 0 or length > self.max_len:
                raise ProtocolError("frame length %d outside 0..%d" % (length, self.max_len))
            if n - pos - 4 < length:
                break
            frame = memoryview(buf)[pos + 4:pos + 4 + length]
            pos += 4 + length
            try:
                if self.state == S_NEW:
                    self._on_connect(bytes(frame))
                else:
                    self._on_request(frame)
            finally:
                frame.release()
        if pos:
            del buf[:pos]

    # ------------------------------------------------------------------ handshake
    def _on_connect(self, frame):
        req = P.decode_connect(frame, self.max_len)
        self.has_read_only_flag = req.has_read_only
        self.server.handle_connect(self, req)

    def session_established(self, session_id, timeout_ms, passwd, read_only=False):
        self.session_id = session_id
        self.timeout_ms = timeout_ms
        self.state = S_CONNECTED
        self.established_ms = int(time.time() * 1000)
        self.send(P.encode_connect_response(timeout_ms, session_id, passwd,
                                            read_only if self.has_read_only_flag else None))
        log.debug("client.session_established", peer="%s:%s" % self.peer, session="0x%x" % session_id,
                  timeout_ms=timeout_ms)
        if self.inbuf:
            # may be called from inside _process_input (a resumed session): continue on the next turn
            self.server.loop.call_soon(self._resume_input)
        self._schedule_flush()

    def _resume_input(self):
        if self.state == S_CONNECTED and self.inbuf:
            self.data_received(b"")

    def await_session(self):
        """Read nothing more until the session being created is established (or the connection closes)."""
        self.state = S_AWAIT_SESSION

    @property
    def is_closed(self) -> bool:
        return self.state == S_CLOSED

    def close_when_flushed(self):
        """Close once everything queued on this connection (its last replies) has been written."""
        self.close_after_flush = True
        self._schedule_flush()

    def answer_and_close(self, data: bytes):
        """A four-letter word's answer: send it, read nothing more, close once it is out."""
        self.out.append(data)
        self.await_session()
        self.close_when_flushed()

    def session_invalid(self):
        self.send(P.encode_connect_response(0, 0, INVALID_PASSWD, False if self.has_read_only_flag else None))
        self.close_after_flush = True
        self._schedule_flush()

    # ------------------------------------------------------------------ requests
    def _on_request(self, frame):
        if len(frame) < 8:
            raise ProtocolError("request shorter than its header")
        xid, op = REQUEST_HEADER.unpack_from(frame, 0)
        self.recved += 1
        server = self.server
        server.packets_received += 1
        if not self.touched:  # any packet keeps the session alive; once per read is enough
            self.touched = True
            server.touch(self)
        if op == P.PING:
            zxid = self.replica.last_applied
            self.send(frame_reply(P.XID_PING, zxid, 0))
            # cons shows a ping as the last operation, as ZooKeeper's does
            self.last_op, self.last_zxid = "PING", zxid
            self.last_response_ms = int(time.monotonic() * 1000)
            return
        decoder = P.DECODERS.get(op)
        now_ns = time.perf_counter_ns()
        self.last_op = P.OP_NAMES.get(op, "NA")
        if op > 0:
            self.last_cxid = xid
        if decoder is None:
            if op == P.SASL:
                # No SASL here. Refuse it as a ZooKeeper does when a client's SASL authentication
                # fails -- AUTHFAILED (with an empty SASL token) and the connection closed -- so the
                # client reports an auth failure (kazoo's AUTH_FAILED state) instead of an
                # unexpected error in its connection thread.
                log.warning("client.sasl_refused", peer="%s:%s" % self.peer)
                self._enqueue_error(xid, op, Err.AUTHFAILED, now_ns, NULL_BUFFER)
            else:
                log.warning("client.unknown_opcode", peer="%s:%s" % self.peer, opcode=op)
                self._enqueue_error(xid, op, Err.UNIMPLEMENTED, now_ns)
            self.close_after_flush = True
            self.state = S_AWAIT_SESSION  # read nothing more
            return
        try:
            req = decoder(Reader(frame, 8, self.max_len))
        except P.MultiTypeError:
            # ZooKeeper answers a bad multiRead with an empty MultiResponse beside the error code
            self._enqueue_error(xid, op, Err.MARSHALLINGERROR, now_ns,
                                P.MULTI_DONE if op == P.MULTI_READ else b"")
            return
        if op == P.AUTH:
            self._on_auth(xid, req, now_ns)
            return
        if not self.replica.accepts_requests(self.session_id):
            self._enqueue_error(xid, op, Err.SESSIONEXPIRED, now_ns)
            return
        if len(self.pending) >= MAX_OUTSTANDING and not self.reading_paused:
            self.reading_paused = True
            self.transport.pause_reading()
        if op in P.WRITE_OPS:
            p = Pending(xid, op, req, True, now_ns)
            self.pending.append(p)
            server.submit_request(self, p)
        elif op == P.SYNC:
            p = Pending(xid, op, req, False, now_ns)
            self.pending.append(p)
            reply = self.replica.sync(self, p)
            if reply is not None:
                p.reply = reply
                self.drain()
            else:
                server.kick()  # a learner asks its leader first
        elif self.pending:
            p = Pending(xid, op, req, False, now_ns)
            self.pending.append(p)
            reply = self.replica.read_after_writes(self, p)
            if reply is not None:  # nothing of ours was in flight: only answers waiting to be sent
                p.reply = reply
                self.drain()
        else:
            err, body = self.replica.read(op, req, self)
            if op in NOTIFYING_READS:
                server.deliver_now()
            self._reply(xid, err, body, now_ns)

    def _on_auth(self, xid, req, now_ns):
        ok = A.authenticate(self.auth, req.scheme, req.auth, self.peer[0], self.server.config.super_digest)
        p = Pending(xid, P.AUTH, req, False, now_ns)
        p.reply = (0 if ok else Err.AUTHFAILED, b"")
        if not ok:
            log.warning("client.auth_failed", peer="%s:%s" % self.peer, scheme=req.scheme)
            self.state = S_AWAIT_SESSION  # stop reading; close once the reply is out
        self.pending.append(p)
        self.drain()
        if not ok:
            self.close_after_flush = True

    def _enqueue_error(self, xid, op, err, now_ns, body=b""):
        p = Pending(xid, op, None, False, now_ns)
        p.reply = (err, body)
        self.pending.append(p)
        self.drain()

    def on_committed(self, p: Pending, reply: tuple[int, bytes]):
        """The (err, body) answer to a request the replica answered; sent once every earlier one's is out."""
        p.reply = reply
        if self.pending and self.pending[0] is p:
            self.drain()

    def drain(self):
        """Send every reply at the head of the queue that is ready."""
        pending = self.pending
        while pending:
            p = pending[0]
            if p.reply is None:
                break  # a write in flight, or a read the replica answers after it
            pending.popleft()
            err, body = p.reply
            if p.op == P.AUTH:
                self.send(frame_reply(P.XID_AUTH, 0, err))
                continue
            self._reply(p.xid, err, body, p.received_ns)
            if p.op == P.CLOSE_SESSION:
                self.close_after_flush = True
        if self.reading_paused and len(pending) < MAX_OUTSTANDING // 2 and self.state != S_CLOSED:
            self.reading_paused = False
            self.transport.resume_reading()
        self._schedule_flush()

    def _reply(self, xid, err, body, received_ns):
        zxid = self.replica.last_applied
        self.send(frame_reply(xid, zxid, err, body))
        self.last_zxid = zxid
        lat = (time.perf_counter_ns() - received_ns) // 1_000_000
        self.lat_last = lat
        self.lat_total += lat
        self.lat_count += 1
        if lat > self.lat_max:
            self.lat_max = lat
        if self.lat_count == 1 or lat < self.lat_min:
            self.lat_min = lat
        self.server.record_latency(lat)

    # ------------------------------------------------------------------ watcher interface
    def notify(self, etype: int, path: str):
        if self.state == S_CLOSED:
            return
        body = Writer().int(etype).int(P.STATE_SYNC_CONNECTED).ustring(path).getvalue()
        self.send(frame_reply(P.XID_NOTIFICATION, -1, 0, body))
        self._schedule_flush()

    # ------------------------------------------------------------------ output
    def send(self, data: bytes):
        self.out.append(data)
        self.sent += 1
        self.server.packets_sent += 1

    def _schedule_flush(self):
        if not self.flush_scheduled and (self.out or self.close_after_flush):
            self.flush_scheduled = True
            self.server.loop.call_soon(self.flush)

    def flush(self):
        self.flush_scheduled = False
        if self.transport is None or self.transport.is_closing():
            self.out.clear()
            return
        if self.out:
            self.transport.write(b"".join(self.out) if len(self.out) > 1 else self.out[0])
            self.out.clear()
            self.last_response_ms = int(time.monotonic() * 1000)
        if self.close_after_flush:
            self.close()

    def close(self):
        if self.state == S_CLOSED and (self.transport is None or self.transport.is_closing()):
            return
        self.state = S_CLOSED
        if self.transport is not None:
            if self.out:
                self.transport.write(b"".join(self.out))
                self.out.clear()
            self.transport.close()
