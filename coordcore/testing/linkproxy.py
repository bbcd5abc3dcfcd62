"""TCP link proxies for fault injection: cut, delay and partition links between ensemble members,
and cut single clients off from single members, the same way whatever server runs behind them.

Topology
    A :class:`LinkProxy` runs an asyncio loop in a background thread of the test process.  Each
    :class:`Link` is one listening port of the proxy that forwards to one real address.  A link has an
    *initiator* (the only party that is told its port) and an *acceptor* (whose real address is the
    target), so for every connection accepted on a link the proxy knows which member is on each end:
    bytes read from the accepted socket travel ``initiator -> acceptor``, bytes read from the
    upstream socket travel ``acceptor -> initiator``.  An ensemble creates, for every directed pair
    of members ``a -> b``, one link per peer port of ``b`` (ZooKeeper: quorum and election), and names
    these ports in ``a``'s own config; plus one client link per member (initiator :data:`CLIENT`).
    Faults are kept per *direction between members* (``a -> b``), not per link, so a connection
    initiated by ``b`` through the link ``b -> a`` and one initiated by ``a`` through ``a -> b`` see
    the same faults in the same direction.

Semantics
    * While a direction ``a -> b`` is cut, bytes travelling from ``a`` to ``b`` on every connection
      between them are *held*: read from the sender (so the sender never blocks) and not delivered,
      as if every packet were dropped and retransmitted by TCP.  On heal they are delivered, in
      order, if the connection still exists.  The other direction flows unless it is cut too.
    * A new TCP connection between members whose pair is cut *both ways* is accepted and closed at
      once, which the initiator sees as a refused connect (it may first see its connect succeed).
      Across a one-way cut new connections are made, and their bytes in the cut direction are held.
    * A close is forwarded like data: the end of stream read from one side is queued behind that
      side's bytes (and held with them while the direction is cut); when it is delivered both
      sockets are closed, dropping whatever the other direction had not delivered yet.  A reset or
      an upstream that refuses the connection closes both sides at once.
    * ``delay(a, b, ms)`` delivers each chunk read from ``a`` towards ``b`` no earlier than ``ms``
      after it was read (order kept); the delay in force when a chunk is read applies to it.
    * Client links: ``cut_client(member, address=..., session_id=...)`` holds both directions of the
      client's current connection(s) to that member, found by the client's local socket address
      (``kazoo``: ``client._connection._socket.getsockname()``) or by ZooKeeper session id.  A new
      client connection can not be matched by address (its ephemeral port is new), so the proxy
      reads the session id from each client connection's first frame (the ZooKeeper ``ConnectRequest``,
      which every ZooKeeper client protocol server receives) and closes at once a connection that
      resumes a cut session on that member.  The proxy also learns each connection's session id from
      the server's ``ConnectResponse``.  Other clients of that member, and four-letter words, are
      unaffected.
    * ``heal()`` removes every fault: cuts, partitions, delays and client cuts.

Everything here is backend-neutral except the optional *first-message hook* of a link (see
:meth:`LinkProxy.add_link`), which lets a backend rewrite the first bytes an initiator sends (Apache
ZooKeeper's election handshake advertises the sender's own address, which must be rewritten to a proxy
address; see :mod:`coordcore.testing.ensembles`).

Log events (structlog): ``testing.link.cut``, ``testing.link.healed``, ``testing.link.delayed``,
``testing.link.partitioned``, ``testing.link.client_cut``, ``testing.link.client_healed``; per-connection
events (``testing.link.refused``: a connection closed at once because of a fault or because its
target refused it) at debug level.
"""
from __future__ import annotations

import asyncio
import collections
import dataclasses
import itertools
import threading
from typing import Any, Callable, Hashable, Iterable, Sequence

import structlog

log = structlog.get_logger("coordcore.testing")

#: The initiator of client links.
CLIENT = "client"

#: A first-message hook gets the bytes the initiator sent so far on a new connection and returns
#: None (need more) or the bytes to forward instead; after that the connection is transparent.
FirstMessageHook = Callable[[bytes], "bytes | None"]

_FIRST_MESSAGE_LIMIT = 64 * 1024  # past this many bytes a hook that keeps asking for more is bypassed
_READ_SIZE = 64 * 1024
_EOF = None


class RefuseConnection(Exception):
    """Raised by a first-message hook: close the connection at once, as a refused connect."""


@dataclasses.dataclass(frozen=True)
class Link:
    """One listening port of the proxy: connections from ``initiator`` to ``acceptor``'s ``target``."""

    name: str
    initiator: Hashable
    acceptor: Hashable
    kind: str
    target: tuple[str, int]
    host: str
    port: int

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


@dataclasses.dataclass(frozen=True)
class ConnectionInfo:
    """A snapshot of one proxied connection (see :meth:`LinkProxy.connections`)."""

    link: Link
    peer: tuple[str, int]          # the initiator's address as the proxy saw it
    session_id: int | None         # client links: the ZooKeeper session, once known
    queued: tuple[int, int]        # chunks read, not yet delivered: initiator->acceptor, acceptor->initiator


class _Pipe:
    """One direction of a proxied connection: read from ``reader``, queue, write to ``writer``."""

    def __init__(self, conn: "_Conn", reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 src: Hashable, dst: Hashable, first: Callable[[bytes], "bytes | None"] | None):
        self.conn = conn
        self.reader = reader
        self.writer = writer
        self.src = src
        self.dst = dst
        self.first = first
        self.queue: collections.deque[tuple[float, bytes | None]] = collections.deque()
        self.wake = asyncio.Event()

    def held(self) -> bool:
        return self.conn.held or self.conn.proxy._is_cut(self.src, self.dst)

    def push(self, data: bytes | None) -> None:
        loop = asyncio.get_running_loop()
        self.queue.append((loop.time() + self.conn.proxy._delay_of(self.src, self.dst), data))
        self.wake.set()

    async def read_loop(self) -> None:
        buf = b""
        while True:
            try:
                data = await self.reader.read(_READ_SIZE)
            except (ConnectionError, OSError):
                self.conn.close("reset")
                return
            if not data:
                if buf:
                    self.push(buf)
                self.push(_EOF)
                return
            if self.first is not None:
                buf += data
                try:
                    out = self.first(buf)
                except RefuseConnection as e:
                    self.conn.close(f"refused: {e}")
                    return
                except Exception as e:  # a broken hook must not wedge the connection: pass it through
                    log.warning("testing.link.hook_failed", link=self.conn.link.name, error=repr(e))
                    out = buf
                if out is None and len(buf) < _FIRST_MESSAGE_LIMIT:
                    continue
                data, buf, self.first = (buf if out is None else out), b"", None
            self.push(data)

    async def write_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self.queue or self.held():
                self.wake.clear()
                await self.wake.wait()
            due = self.queue[0][0]
            now = loop.time()
            if due > now:
                self.wake.clear()
                try:
                    await asyncio.wait_for(self.wake.wait(), due - now)
                except asyncio.TimeoutError:
                    pass
                continue
            chunks = []
            while self.queue and self.queue[0][0] <= now and self.queue[0][1] is not _EOF:
                chunks.append(self.queue.popleft()[1])
            if chunks:
                try:
                    self.writer.write(b"".join(chunks))
                    await self.writer.drain()
                except (ConnectionError, OSError):
                    self.conn.close("reset")
                    return
                continue
            if self.queue and self.queue[0][1] is _EOF:
                self.queue.popleft()
                self.conn.close(f"closed by {self.src}")
                return


class _Conn:
    """A proxied connection: the accepted socket (initiator side) and the upstream one (acceptor side)."""

    _ids = itertools.count(1)

    def __init__(self, proxy: "LinkProxy", link: Link, peer: tuple[str, int],
                 down: tuple[asyncio.StreamReader, asyncio.StreamWriter],
                 up: tuple[asyncio.StreamReader, asyncio.StreamWriter],
                 first: FirstMessageHook | None):
        self.id = next(self._ids)
        self.proxy = proxy
        self.link = link
        self.peer = peer
        self.session_id: int | None = None
        self.held = False            # a client cut: both directions held
        self.closed = False
        self._writers = (down[1], up[1])
        if link.kind == "client":
            fwd_first, back_first = self._client_request, self._client_response
        else:
            fwd_first, back_first = first, None
        self.fwd = _Pipe(self, down[0], up[1], link.initiator, link.acceptor, fwd_first)
        self.back = _Pipe(self, up[0], down[1], link.acceptor, link.initiator, back_first)
        self._is_session = False
        self.tasks: list[asyncio.Task] = []

    def start(self) -> None:
        self.tasks = [asyncio.get_running_loop().create_task(coro) for coro in
                      (self.fwd.read_loop(), self.fwd.write_loop(), self.back.read_loop(), self.back.write_loop())]

    def wake(self) -> None:
        self.fwd.wake.set()
        self.back.wake.set()

    def close(self, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        self.proxy._conns.discard(self)
        for writer in self._writers:
            try:
                writer.close()
            except Exception:
                pass
        current = asyncio.current_task()
        for task in self.tasks:
            if task is not current:
                task.cancel()
        if reason.startswith("refused"):
            log.debug("testing.link.refused", link=self.link.name, peer=self.peer, reason=reason)

    # ZooKeeper client protocol: the first frame each way carries the session id.
    def _client_request(self, buf: bytes) -> bytes | None:
        # ConnectRequest: int len, int protocolVersion, long lastZxidSeen, int timeOut, long sessionId, ...
        if len(buf) < 4:
            return None
        length = int.from_bytes(buf[:4], "big", signed=True)
        if not 28 <= length <= 4096:  # not a ConnectRequest (a four-letter word reads as a huge length)
            return buf
        if len(buf) < 28:
            return None
        self._is_session = True
        session_id = int.from_bytes(buf[20:28], "big", signed=True)
        if session_id:
            self.session_id = session_id
            if session_id in self.proxy._cut_sessions.get(self.link.acceptor, ()):
                raise RefuseConnection(f"session 0x{session_id:x} is cut from {self.link.acceptor}")
        return buf

    def _client_response(self, buf: bytes) -> bytes | None:
        # ConnectResponse: int len, int protocolVersion, int timeOut, long sessionId, ...
        if not self._is_session:  # the client spoke first: a four-letter word, or not ZooKeeper at all
            return buf
        if len(buf) < 20:
            return None
        session_id = int.from_bytes(buf[12:20], "big", signed=True)
        if session_id:
            self.session_id = session_id
        return buf


class LinkProxy:
    """Fault-injecting TCP proxies on ``host``; see the module docstring for the semantics.

    Thread-safe: every public method may be called from any thread; state lives in the proxy's loop.
    Use as a context manager, or call :meth:`start` and :meth:`close`.
    """

    def __init__(self, host: str = "127.0.0.1", connect_timeout: float = 5.0, call_timeout: float = 10.0):
        self.host = host
        self.connect_timeout = connect_timeout
        self.call_timeout = call_timeout
        self.links: list[Link] = []
        self._servers: dict[Link, asyncio.base_events.Server] = {}
        self._hooks: dict[Link, FirstMessageHook | None] = {}
        self._conns: set[_Conn] = set()
        self._cuts: set[tuple[Hashable, Hashable]] = set()
        self._delays: dict[tuple[Hashable, Hashable], float] = {}
        self._cut_sessions: dict[Hashable, set[int]] = {}
        self._cut_addresses: dict[Hashable, set[tuple[str, int]]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> "LinkProxy":
        if self._loop is not None:
            return self
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()

        self._thread = threading.Thread(target=run, name="coordcore-linkproxy", daemon=True)
        self._thread.start()
        if not ready.wait(self.call_timeout):
            raise RuntimeError("link proxy loop did not start")
        self._loop = loop
        return self

    def close(self) -> None:
        """Close every connection and listener and stop the loop thread."""
        loop, self._loop = self._loop, None
        if loop is None:
            return

        async def shutdown() -> None:
            for conn in list(self._conns):
                conn.close("proxy closed")
            for server in self._servers.values():
                server.close()
            self._servers.clear()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        try:
            asyncio.run_coroutine_threadsafe(shutdown(), loop).result(self.call_timeout)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            if self._thread is not None:
                self._thread.join(self.call_timeout)
            if not loop.is_running():
                loop.close()

    def __enter__(self) -> "LinkProxy":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def _call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` in the loop (state is loop-confined) and return its result."""
        if self._loop is None:
            raise RuntimeError("link proxy is not running")

        async def run():
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(self.call_timeout)

    # -- links -------------------------------------------------------------------------------

    def add_link(self, initiator: Hashable, acceptor: Hashable, target: tuple[str, int], kind: str = "peer",
                 first_message: FirstMessageHook | None = None, port: int = 0,
                 avoid_ports: Iterable[int] = ()) -> Link:
        """Listen on a new port (``port=0``: chosen by the OS, never one of ``avoid_ports``, e.g. ports
        picked for servers that have not bound them yet) forwarding to ``target``.

        ``kind`` is a label ("quorum", "election", ...); ``"client"`` makes a client link (use
        :meth:`add_client_link`).  ``first_message`` may rewrite the first bytes the initiator sends on
        each connection (it is called with everything received so far until it returns bytes, or
        raises :class:`RefuseConnection` to close the connection).
        """
        if self._loop is None:
            self.start()

        async def listen() -> Link:
            holder: list[Link] = []

            async def on_accept(reader, writer):
                await self._accept(holder[0], reader, writer)

            avoid, rejected = set(avoid_ports), []
            try:
                while True:
                    server = await asyncio.start_server(on_accept, self.host, port)
                    bound = server.sockets[0].getsockname()[1]
                    if port or bound not in avoid:
                        break
                    rejected.append(server)  # keep it bound so that the OS offers another port
            finally:
                for r in rejected:
                    r.close()
            name = f"{initiator}->{acceptor} {kind}"
            link = Link(name=name, initiator=initiator, acceptor=acceptor, kind=kind,
                        target=(target[0], int(target[1])), host=self.host, port=bound)
            holder.append(link)
            self._servers[link] = server
            self._hooks[link] = first_message
            self.links.append(link)
            return link

        return asyncio.run_coroutine_threadsafe(listen(), self._loop).result(self.call_timeout)

    def add_client_link(self, acceptor: Hashable, target: tuple[str, int], port: int = 0,
                        avoid_ports: Iterable[int] = ()) -> Link:
        """A link for client connections to member ``acceptor`` (ZooKeeper client protocol aware)."""
        return self.add_link(CLIENT, acceptor, target, kind="client", port=port, avoid_ports=avoid_ports)

    async def _accept(self, link: Link, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = tuple(writer.get_extra_info("peername")[:2])
        if link.kind != "client" and self._is_cut(link.initiator, link.acceptor) \
                and self._is_cut(link.acceptor, link.initiator):
            writer.close()
            log.debug("testing.link.refused", link=link.name, peer=peer, reason="cut both ways")
            return
        try:
            up = await asyncio.wait_for(asyncio.open_connection(*link.target), self.connect_timeout)
        except (OSError, asyncio.TimeoutError) as e:
            writer.close()
            log.debug("testing.link.refused", link=link.name, peer=peer, reason=f"upstream: {e!r}")
            return
        conn = _Conn(self, link, peer, (reader, writer), up, self._hooks.get(link))
        if link.kind == "client" and peer in self._cut_addresses.get(link.acceptor, ()):
            conn.held = True
        self._conns.add(conn)
        conn.start()
        # stay in the accept handler until the connection is over (the streams belong to it)
        await asyncio.gather(*conn.tasks, return_exceptions=True)

    # -- faults ------------------------------------------------------------------------------

    def _is_cut(self, a: Hashable, b: Hashable) -> bool:
        return (a, b) in self._cuts

    def _delay_of(self, a: Hashable, b: Hashable) -> float:
        return self._delays.get((a, b), 0.0)

    def _wake_all(self) -> None:
        for conn in list(self._conns):
            conn.wake()

    def cut(self, a: Hashable, b: Hashable, both: bool = False) -> None:
        """Hold ``a``'s traffic to ``b`` (and ``b``'s to ``a`` if ``both``)."""
        def apply():
            self._cuts.add((a, b))
            if both:
                self._cuts.add((b, a))
            self._wake_all()
        self._call(apply)
        log.info("testing.link.cut", src=a, dst=b, both=both)

    def partition(self, groups: Sequence[Iterable[Hashable]]) -> None:
        """Cut, both ways, every pair of members in different groups; replaces earlier cuts between
        members (delays and client cuts stay).  Members in no group keep all their links."""
        groups = [list(g) for g in groups]
        seen: set = set()
        for g in groups:
            for m in g:
                if m in seen:
                    raise ValueError(f"member {m!r} is in more than one group of {groups}")
                seen.add(m)
        cuts = {(a, b) for i, ga in enumerate(groups) for j, gb in enumerate(groups) if i != j
                for a in ga for b in gb}

        def apply():
            self._cuts = cuts
            self._wake_all()
        self._call(apply)
        log.info("testing.link.partitioned", groups=groups)

    def delay(self, a: Hashable, b: Hashable, ms: float) -> None:
        """Deliver ``a``'s traffic to ``b`` ``ms`` milliseconds late (0 removes the delay)."""
        if ms < 0:
            raise ValueError("delay must be >= 0 ms")

        def apply():
            if ms:
                self._delays[(a, b)] = ms / 1000.0
            else:
                self._delays.pop((a, b), None)
            self._wake_all()
        self._call(apply)
        log.info("testing.link.delayed", src=a, dst=b, ms=ms)

    def cut_client(self, member: Hashable, address: tuple[str, int] | None = None,
                   session_id: int | None = None) -> int:
        """Cut a client off from ``member``: hold both directions of its connections there (matched by
        the client's local ``address`` or by ``session_id``) and refuse its new connections there
        (matched by ``session_id`` in the ConnectRequest).  Returns how many connections were cut."""
        if address is None and not session_id:
            raise ValueError("cut_client needs the client's address or session id")
        address = tuple(address[:2]) if address is not None else None

        def apply() -> int:
            n = 0
            if session_id:
                self._cut_sessions.setdefault(member, set()).add(session_id)
            if address is not None:
                self._cut_addresses.setdefault(member, set()).add(address)
            for conn in list(self._conns):
                if conn.link.kind == "client" and conn.link.acceptor == member and (
                        (address is not None and conn.peer == address)
                        or (session_id and conn.session_id == session_id)):
                    conn.held = True
                    conn.wake()
                    n += 1
            return n
        n = self._call(apply)
        log.info("testing.link.client_cut", member=member, address=address,
                 session_id=f"0x{session_id:x}" if session_id else None, connections=n)
        return n

    def heal_client(self, member: Hashable, address: tuple[str, int] | None = None,
                    session_id: int | None = None) -> None:
        """Undo :meth:`cut_client` for that address / session on ``member``."""
        address = tuple(address[:2]) if address is not None else None

        def apply():
            if session_id:
                self._cut_sessions.get(member, set()).discard(session_id)
            if address is not None:
                self._cut_addresses.get(member, set()).discard(address)
            for conn in list(self._conns):
                if conn.link.kind == "client" and conn.link.acceptor == member and conn.held and (
                        (address is not None and conn.peer == address)
                        or (session_id and conn.session_id == session_id)):
                    conn.held = False
                    conn.wake()
        self._call(apply)
        log.info("testing.link.client_healed", member=member, address=address,
                 session_id=f"0x{session_id:x}" if session_id else None)

    def heal(self) -> None:
        """Remove every fault: cuts, partitions, delays, client cuts.  Held bytes are delivered."""
        def apply():
            self._cuts = set()
            self._delays.clear()
            self._cut_sessions.clear()
            self._cut_addresses.clear()
            for conn in self._conns:
                conn.held = False
            self._wake_all()
        self._call(apply)
        log.info("testing.link.healed")

    # -- introspection -----------------------------------------------------------------------

    def is_cut(self, a: Hashable, b: Hashable) -> bool:
        return self._call(lambda: self._is_cut(a, b))

    def faults(self) -> dict[str, Any]:
        """The faults in force: ``{"cuts": [(a, b), ...], "delays": {(a, b): ms}, "client_cuts": {...}}``."""
        return self._call(lambda: {
            "cuts": sorted(self._cuts, key=repr),
            "delays": {k: v * 1000.0 for k, v in self._delays.items()},
            "client_cuts": {m: sorted(s) for m, s in self._cut_sessions.items() if s},
        })

    def connections(self, link: Link | None = None) -> list[ConnectionInfo]:
        """Snapshots of the live proxied connections (of one link, or all)."""
        return self._call(lambda: [
            ConnectionInfo(c.link, c.peer, c.session_id, (len(c.fwd.queue), len(c.back.queue)))
            for c in sorted(self._conns, key=lambda c: c.id) if link is None or c.link == link])


__all__ = ["CLIENT", "ConnectionInfo", "FirstMessageHook", "Link", "LinkProxy", "RefuseConnection"]
