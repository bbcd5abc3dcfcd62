"""The links between ensemble members: framed TCP on each member's election and quorum ports.

Every member listens on the two ports its ``server.N`` line names: the election port carries
FastLeaderElection notifications, the quorum port ZAB's packets (coordcore's own encoding,
zab/messages.py).  A link is one-way: member A sends to B over a connection A opened to B's port,
and reads from B only on the connection B opened to A.  So there is never a pair of connections to
reconcile (ZooKeeper's rule that the larger sid dials), and a fault on A -> B leaves B -> A alone.

Handshake: the dialling side sends ``MAGIC, version, channel, sid`` and then frames; the listener
accepts the connection only from a sid its configuration names (not its own), arriving from that
server's configured address, on the port for that channel.  Anything else -- an unknown sid, a wrong
address, bad magic, an over-long or undecodable frame -- closes that connection with a structured
log event (``peer.refused`` / ``peer.bad_message``) and nothing else: the member keeps serving.

Loss: TCP keeps a connection's frames in order, so a ZAB message can only be lost with its
connection.  The host hears ``on_link_lost(sid)`` whenever a quorum-port connection to or from
`sid` breaks (before anything from a newer connection of that sid is delivered), which is what
QuorumPeer.link_lost expects.  Election notifications are resent by FLE, so their links just
reconnect on the next send.  A frame queued while its connection is being opened is sent once it
is; one whose connection fails to open is dropped (and, on the quorum port, reported as a lost link)
-- except election frames, which are sent again once that server connects to us (it has come up).
"""
from __future__ import annotations

import asyncio
import socket
import struct

import structlog

from coordcore.errors import ProtocolError
from coordcore.zab import messages as m
from coordcore.zab.election import Notification

log = structlog.get_logger("coordcore")

MAGIC = b"CCPEER"
VERSION = 1
ELECTION, QUORUM = 0, 1
_HELLO = struct.Struct(">6sBBq")
_LEN = struct.Struct(">I")
# A SNAP of the whole tree is one frame (about 250 bytes a small znode: 1 GiB is some 4M znodes).  The
# frame's own bound is the only bound on what is inside it: a smaller one for the buffers in it made a
# follower that needed a 154 MB SNAP (600k znodes) drop every attempt and never catch up.
MAX_FRAME = 1 << 30
CONNECT_TIMEOUT_S = 5.0
HELLO_TIMEOUT_S = 5.0
CHANNEL_NAMES = {ELECTION: "election", QUORUM: "quorum"}
UNDELIVERED_VOTE_TTL_S = 1.0   # an election frame that could not be delivered is resent only this fresh


def _resolve(host: str) -> set[str]:
    try:
        return {ai[4][0] for ai in socket.getaddrinfo(host, None, socket.AF_INET, socket.SOCK_STREAM)}
    except OSError:
        return {host}


class PeerNetwork:
    """The member's listeners and its outgoing links.

    ``on_message(from_sid, msg)`` gets every decoded message in arrival order per link;
    ``on_link_lost(sid)`` a broken quorum link.  Both run on the event loop.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, my_sid: int, servers, *, on_message, on_link_lost,
                 bind_retry: int = 3, listen_all: bool = False) -> None:
        self.loop = loop
        self.my_sid = my_sid
        self.servers = {s.sid: s for s in servers}
        self.me = self.servers[my_sid]
        self.on_message = on_message
        self.on_link_lost = on_link_lost
        self.bind_retry = bind_retry
        self.listen_all = listen_all
        self._addresses = {sid: _resolve(s.host) for sid, s in self.servers.items()}
        self._out: dict[tuple[int, int], _Outbound] = {}
        self._dirty: list[_Outbound] = []  # links with frames waiting for flush()
        # sid -> (when, election frames its link dropped): resent when that server connects to us, if
        # newer than UNDELIVERED_VOTE_TTL_S and not superseded by a delivered frame since
        self._undelivered_votes: dict[int, tuple[float, list[bytes]]] = {}
        self._in: dict[tuple[int, int], _Inbound] = {}
        self._listeners: list[asyncio.AbstractServer] = []
        self.closed = False
        self.refused = 0        # connections refused (unknown server, bad handshake)
        self.bad_messages = 0   # links dropped for a malformed frame
        self.last_trouble = ""  # the reason of the last refusal or drop (for 4lw and tests)

    # ------------------------------------------------------------------ life cycle
    async def start(self) -> None:
        host = "0.0.0.0" if self.listen_all else self.me.host
        for channel, port in ((QUORUM, self.me.quorum_port), (ELECTION, self.me.election_port)):
            self._listeners.append(await self._bind(host, port, channel))
        log.info("peer.listening", sid=self.my_sid, host=host, quorum_port=self.me.quorum_port,
                 election_port=self.me.election_port)

    async def _bind(self, host: str, port: int, channel: int) -> asyncio.AbstractServer:
        attempt = 0
        while True:
            attempt += 1
            try:
                return await self.loop.create_server(lambda: _Inbound(self, channel), host, port,
                                                     reuse_address=True)
            except OSError as e:
                if self.bind_retry and attempt >= self.bind_retry:
                    raise OSError(e.errno, f"cannot bind the {CHANNEL_NAMES[channel]} port {host}:{port} "
                                           f"after {attempt} attempts: {e.strerror}") from e
                log.warning("peer.bind_retry", channel=CHANNEL_NAMES[channel], port=port, attempt=attempt,
                            error=str(e))
                await asyncio.sleep(1.0)

    def close(self) -> None:
        self.closed = True
        for lst in self._listeners:
            lst.close()
        for link in list(self._out.values()):
            link.close()
        for link in list(self._in.values()):
            link.close()
        self._out.clear()
        self._in.clear()

    # ------------------------------------------------------------------ sending
    def send(self, to_sid: int, msg) -> None:
        if self.closed:
            return
        if to_sid == self.my_sid:  # FLE counts its own vote as a notification to itself
            self.loop.call_soon(self._loopback, msg)
            return
        channel = ELECTION if type(msg) is Notification else QUORUM
        body = m.encode(msg)
        frame = _LEN.pack(len(body)) + body
        link = self._out.get((to_sid, channel))
        if link is None:
            spec = self.servers.get(to_sid)
            if spec is None:
                return
            link = self._out[(to_sid, channel)] = _Outbound(self, to_sid, channel)
        if not link.pending:
            self._dirty.append(link)
        link.pending.append(frame)

    def flush(self) -> None:
        """Write what send() gathered: one socket write per link however many frames (a leader's
        PROPOSALs and COMMITs of one Ready, a follower's ACKs), so a batch of txns costs each link one
        syscall and the receiver one read.  The host calls it once it has sent a Ready's messages."""
        dirty, self._dirty = self._dirty, []
        for link in dirty:
            frames, link.pending = link.pending, []
            if not link.done:
                link.send(frames[0] if len(frames) == 1 else b"".join(frames))

    def _loopback(self, msg) -> None:
        if not self.closed:
            self.on_message(self.my_sid, msg)

    def drop_quorum_links(self) -> None:
        """The member left its ZAB role: close every quorum link, as ZooKeeper closes its sockets, so the
        other side learns at once instead of after its timeout.  Not reported to our own peer."""
        for key in [k for k in self._out if k[1] == QUORUM]:
            self._out.pop(key).close()
        for key in [k for k in self._in if k[1] == QUORUM]:
            self._in.pop(key).close()

    # ------------------------------------------------------------------ from the links
    def _outbound_failed(self, link: "_Outbound", error: str) -> None:
        if self._out.get((link.sid, link.channel)) is link:
            del self._out[(link.sid, link.channel)]
            if link.channel == QUORUM and not self.closed:
                log.info("peer.link_lost", sid=link.sid, direction="out", error=error)
                self.on_link_lost(link.sid)

    def _inbound_hello(self, link: "_Inbound", sid: int) -> bool:
        spec = self.servers.get(sid)
        if spec is None or sid == self.my_sid:
            self._refuse(link, f"sid {sid} is not another server of this ensemble")
            return False
        if link.remote_ip not in self._addresses[sid] and not _both_loopback(link.remote_ip, self._addresses[sid]):
            self._refuse(link, f"sid {sid} connected from {link.remote_ip}, not from its configured host "
                               f"{spec.host}")
            return False
        key = (sid, link.channel)
        old = self._in.get(key)
        self._in[key] = link
        undelivered = self._undelivered_votes.pop(sid, None) if link.channel == ELECTION else None
        if undelivered and self.loop.time() - undelivered[0] <= UNDELIVERED_VOTE_TTL_S:
            # The server we could not reach has come up and dialled us: send it the notifications
            # our attempt to reach it dropped, as ZooKeeper's QuorumCnxManager resends the last message
            # on a new connection.  Otherwise, with every server LOOKING in the same round (where no one
            # answers), it would learn our vote only from our next resend, 200 ms and more later,
            # while its arrival restarts the others' final wait.
            out = self._out.get((sid, ELECTION))
            if out is None:
                out = self._out[(sid, ELECTION)] = _Outbound(self, sid, ELECTION)
            for frame in undelivered[1]:
                out.send(frame)
        if old is not None:
            old.close()
            if link.channel == QUORUM:
                log.info("peer.link_lost", sid=sid, direction="in", error="replaced by a new connection")
                self.on_link_lost(sid)
        return True

    def _inbound_closed(self, link: "_Inbound", error: str) -> None:
        if link.sid is None or self._in.get((link.sid, link.channel)) is not link:
            return
        del self._in[(link.sid, link.channel)]
        if link.channel == QUORUM and not self.closed:
            log.info("peer.link_lost", sid=link.sid, direction="in", error=error)
            self.on_link_lost(link.sid)

    def _refuse(self, link: "_Inbound", reason: str) -> None:
        self.refused += 1
        self.last_trouble = reason
        log.warning("peer.refused", remote=f"{link.remote_ip}:{link.remote_port}",
                    channel=CHANNEL_NAMES[link.channel], reason=reason)
        link.abort()

    def _bad_message(self, link: "_Inbound", reason: str) -> None:
        self.bad_messages += 1
        self.last_trouble = reason
        log.warning("peer.bad_message", sid=link.sid, channel=CHANNEL_NAMES[link.channel], reason=reason)
        self._inbound_closed(link, f"bad message: {reason}")
        link.abort()

    def link_states(self) -> dict[int, bool]:
        """sid -> whether a quorum link to it is open (for status output)."""
        return {sid: (sid, QUORUM) in self._out and self._out[(sid, QUORUM)].connected
                for sid in self.servers if sid != self.my_sid}


def _both_loopback(ip: str, configured: set[str]) -> bool:
    return ip.startswith("127.") and any(a.startswith("127.") for a in configured)


class _Outbound(asyncio.Protocol):
    def __init__(self, net: PeerNetwork, sid: int, channel: int) -> None:
        self.net = net
        self.sid = sid
        self.channel = channel
        self.transport: asyncio.Transport | None = None
        self.queue: list[bytes] = []
        self.pending: list[bytes] = []  # frames sent since the last PeerNetwork.flush()
        self.connected = False
        self.done = False
        spec = net.servers[sid]
        port = spec.quorum_port if channel == QUORUM else spec.election_port
        self.task = net.loop.create_task(self._connect(spec.host, port))

    async def _connect(self, host: str, port: int) -> None:
        try:
            await asyncio.wait_for(self.net.loop.create_connection(lambda: self, host, port), CONNECT_TIMEOUT_S)
        except (OSError, asyncio.TimeoutError) as e:
            self._failed(f"connect to {host}:{port}: {e or type(e).__name__}")

    def connection_made(self, transport) -> None:
        if self.done:
            transport.abort()
            return
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        self.connected = True
        if self.channel == ELECTION:
            self.net._undelivered_votes.pop(self.sid, None)  # what goes out now supersedes it
        transport.write(_HELLO.pack(MAGIC, VERSION, self.channel, self.net.my_sid))
        if self.queue:
            transport.writelines(self.queue)
            self.queue = []

    def send(self, frame: bytes) -> None:
        if self.connected:
            self.transport.write(frame)
        else:
            self.queue.append(frame)

    def data_received(self, data: bytes) -> None:
        pass  # a one-way link: the other side never writes

    def connection_lost(self, exc) -> None:
        self._failed(str(exc) if exc else "closed by the other side")

    def _failed(self, error: str) -> None:
        if self.done:
            return
        self.done = True
        self.connected = False
        if self.channel == ELECTION and self.queue and not self.net.closed:
            # never delivered (the other server is not up yet): kept for when it shows up
            self.net._undelivered_votes[self.sid] = (self.net.loop.time(), self.queue)
        self.queue = []
        self.net._outbound_failed(self, error)

    def close(self) -> None:
        self.done = True
        self.connected = False
        self.queue = []
        if self.transport is not None:
            self.transport.abort()
        else:
            self.task.cancel()


class _Inbound(asyncio.Protocol):
    def __init__(self, net: PeerNetwork, channel: int) -> None:
        self.net = net
        self.channel = channel
        self.sid: int | None = None
        self.buf = bytearray()
        self.transport = None
        self.remote_ip, self.remote_port = "?", 0
        self.dead = False
        self._hello_timer = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        peer = transport.get_extra_info("peername") or ("?", 0)
        self.remote_ip, self.remote_port = peer[0], peer[1]
        self._hello_timer = self.net.loop.call_later(HELLO_TIMEOUT_S, self._no_hello)

    def _no_hello(self) -> None:
        if self.sid is None and not self.dead:
            self.net._refuse(self, "no handshake in time")

    def data_received(self, data: bytes) -> None:
        if self.dead:
            return
        buf = self.buf
        buf += data
        net = self.net
        pos = 0
        if self.sid is None:
            if len(buf) < _HELLO.size:
                return
            magic, version, channel, sid = _HELLO.unpack_from(buf, 0)
            if magic != MAGIC or version != VERSION:
                net._refuse(self, "not a coordcore peer handshake")
                return
            if channel != self.channel:
                net._refuse(self, f"{CHANNEL_NAMES.get(channel, channel)} traffic on the "
                                  f"{CHANNEL_NAMES[self.channel]} port")
                return
            if self._hello_timer is not None:
                self._hello_timer.cancel()
            if not net._inbound_hello(self, sid):
                return
            self.sid = sid
            pos = _HELLO.size
        n = len(buf)
        while n - pos >= 4:
            (length,) = _LEN.unpack_from(buf, pos)
            if length > MAX_FRAME:
                del buf[:pos]
                net._bad_message(self, f"frame of {length} bytes")
                return
            if n - pos - 4 < length:
                break
            body = bytes(buf[pos + 4:pos + 4 + length])
            pos += 4 + length
            try:
                msg = m.decode(body, max_len=MAX_FRAME)
            except ProtocolError as e:
                net._bad_message(self, str(e))
                return
            if self.channel == ELECTION and type(msg) is not Notification:
                net._bad_message(self, f"{type(msg).__name__} on the election port")
                return
            if self.channel == QUORUM and type(msg) is Notification:
                net._bad_message(self, "a notification on the quorum port")
                return
            net.on_message(self.sid, msg)
            if self.dead:
                return
        if pos:
            del buf[:pos]

    def connection_lost(self, exc) -> None:
        if self._hello_timer is not None:
            self._hello_timer.cancel()
        if not self.dead:
            self.dead = True
            self.net._inbound_closed(self, str(exc) if exc else "closed by the other side")

    def abort(self) -> None:
        self.dead = True
        if self.transport is not None:
            self.transport.abort()

    def close(self) -> None:
        self.abort()
