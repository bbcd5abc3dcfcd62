"""Pipelined load tool for ZooKeeper-protocol servers (coordcore or Apache ZooKeeper).

The tool speaks the client protocol itself over raw sockets (no kazoo: a full
client library costs far more CPU per request than the server under test).
It keeps a fixed number of requests in flight and reports, per op and per
load level, ops/s, p50/p99/max latency and errors.

Load model
----------
``--outstanding N`` is the **total** number of requests in flight, spread as
evenly as possible over ``--connections M`` sessions (so N=16 on M=4 keeps 4
requests outstanding on each connection).  When a reply arrives the
connection immediately sends a replacement, so the server always sees N
requests queued or in progress.  M is capped at N.  Little's law applies:
ops/s ~= N / mean latency.

Ops
---
* ``create``: persistent-sequential creates (100-byte data, open ACL) under a
  fresh parent per run; every created node is deleted afterwards.
* ``set``:    setData(version -1, 100 bytes) on pre-created nodes.
* ``get``:    getData(watch=false) on the same nodes.
* ``exists``: exists(watch=false) on the same nodes.

Measurement
-----------
Each (op, level) run has a warm-up (not recorded), a measured window
(``--duration``), then a drain of the requests still in flight (not
recorded).  An op counts when its reply arrives inside the window; its
latency is reply-arrival minus send time, taken with ``perf_counter_ns`` once
per socket read / write batch.  The load generator runs in separate worker
processes (``--procs``, default 1) so that it never shares a GIL with an
in-process server, and each run reports the client's own CPU use so you can
tell when the client rather than the server is the limit.

Side-by-side
------------
``--side-by-side`` starts coordcore and Apache ZooKeeper standalone (free
ports, fresh data dirs, fsync on, same tickTime), measures each one's time
from process start to answering ``ruok``, runs the identical load against
each (interleaved per run so background noise hits both alike), reads each
server's resident memory after the load (VmRSS) and at its peak during the
run (VmHWM: the creates' nodes are all live at once), samples the peak that
counts forked children too (coordcore's snapshot writer holds copy-on-write
copies of the tree while it runs), and prints both servers' figures and
their ratio (coordcore / zookeeper).  ZooKeeper runs with the JVM settings of
its own zkServer.sh (``-Xmx1000m``, default collector; ``--zk-heap``), and
both servers get an unrecorded ``--prewarm`` so ZooKeeper's JIT is warm.
This 2-core machine's background noise moves single 5 s figures by 10-20%
for either server; ``--rounds R`` repeats every op/level R times
(interleaved) and prints the run with the median ops/s.

Notes
-----
* ``--connect`` uses the first host of a connect string; a chroot suffix is
  ignored (the bench root ``/coordcore-bench-<hex>`` is made at the real root
  and removed at the end).
* Sessions ask for a 30 s timeout and are opened afresh for each run; every
  connection is busy for the whole run, so no pings are needed.
* Worker processes use the ``spawn`` start method (safe next to a server
  thread).  A script that calls this module's API with ``procs >= 1`` must
  guard its entry point with ``if __name__ == "__main__":``.
* Client cost, measured against a canned-reply fake server on this 2-core
  machine: about 3 us/op at 16 in flight (~290k ops/s from one process) and
  about 1 us/op at 64+ in flight (~1M ops/s) -- far above either server.
"""
from __future__ import annotations

import argparse
import array
import json
import multiprocessing
import os
import selectors
import socket
import struct
import sys
import time
import uuid
from collections import deque
from dataclasses import asdict, dataclass, field

import structlog

log = structlog.get_logger("coordcore.bench")

OPS = ("create", "set", "get", "exists")

# Opcodes (ZooDefs.OpCode)
OP_CREATE = 1
OP_DELETE = 2
OP_EXISTS = 3
OP_GETDATA = 4
OP_SETDATA = 5
OP_GETCHILDREN = 8
OP_CLOSE = -11

PERSISTENT = 0
PERSISTENT_SEQUENTIAL = 2

ERR_NONODE = -101

DATA = b"b" * 100  # ~100-byte payload for create/set

_REQ_HDR = struct.Struct(">iii")      # frame length, xid, opcode
_REPLY_HDR = struct.Struct(">iiqi")   # frame length, xid, zxid, err
_INT = struct.Struct(">i")

# world:anyone with all permissions, as a jute vector<ACL>
_OPEN_ACL = _INT.pack(1) + _INT.pack(31) + _INT.pack(5) + b"world" + _INT.pack(6) + b"anyone"


class BenchError(Exception):
    """The benchmark cannot run (server unreachable, refused session, bad arguments)."""


# --------------------------------------------------------------------- encoding

def _ustring(s: str) -> bytes:
    b = s.encode()
    return _INT.pack(len(b)) + b


def _buffer(b: bytes | None) -> bytes:
    if b is None:
        return _INT.pack(-1)
    return _INT.pack(len(b)) + b


def create_body(path: str, data: bytes | None, flags: int) -> bytes:
    return _ustring(path) + _buffer(data) + _OPEN_ACL + _INT.pack(flags)


def set_body(path: str, data: bytes, version: int = -1) -> bytes:
    return _ustring(path) + _buffer(data) + _INT.pack(version)


def read_body(path: str, watch: bool = False) -> bytes:
    return _ustring(path) + (b"\x01" if watch else b"\x00")


def delete_body(path: str, version: int = -1) -> bytes:
    return _ustring(path) + _INT.pack(version)


def connect_request(timeout_ms: int) -> bytes:
    # protocolVersion, lastZxidSeen, timeOut, sessionId, passwd(16 zero bytes), readOnly
    body = struct.pack(">iqiq", 0, 0, timeout_ms, 0) + _buffer(b"\x00" * 16) + b"\x00"
    return _INT.pack(len(body)) + body


def parse_children(body: bytes) -> list[str]:
    (n,) = _INT.unpack_from(body, 0)
    pos, out = 4, []
    for _ in range(max(n, 0)):
        (ln,) = _INT.unpack_from(body, pos)
        pos += 4
        out.append(body[pos:pos + ln].decode())
        pos += ln
    return out


def parse_host_port(connect: str) -> tuple[str, int]:
    """First server of a connect string ``host:port[,host:port...][/chroot]``."""
    first = connect.split(",")[0].split("/")[0].strip()
    host, sep, port = first.rpartition(":")
    if not sep or not port.isdigit():
        raise BenchError(f"bad --connect {connect!r}: expected HOST:PORT")
    return host.strip("[]") or "127.0.0.1", int(port)


def _handshake(sock: socket.socket, timeout_ms: int) -> int:
    sock.sendall(connect_request(timeout_ms))
    (ln,) = _INT.unpack(_recv_exact(sock, 4))
    body = _recv_exact(sock, ln)
    _proto, negotiated, session_id = struct.unpack_from(">iiq", body, 0)
    if negotiated <= 0:
        raise BenchError("server refused the session (timeout 0)")
    return session_id


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    chunks, got = [], 0
    while got < n:
        b = sock.recv(n - got)
        if not b:
            raise BenchError("server closed the connection")
        chunks.append(b)
        got += len(b)
    return b"".join(chunks)


def _open_socket(host: str, port: int, timeout_s: float) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=timeout_s)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def ruok(host: str, port: int, timeout_s: float = 1.0) -> bool:
    """True if the server answers the ``ruok`` four-letter word with ``imok``."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as s:
            s.sendall(b"ruok")
            got = b""
            while True:
                b = s.recv(64)
                if not b:
                    break
                got += b
            return got == b"imok"
    except OSError:
        return False


class RawSession:
    """A minimal blocking session used for setup and cleanup (not for load)."""

    def __init__(self, host: str, port: int, timeout_ms: int = 30000, connect_timeout_s: float = 10.0):
        self.sock = _open_socket(host, port, connect_timeout_s)
        self.session_id = _handshake(self.sock, timeout_ms)
        self.sock.settimeout(max(timeout_ms / 1000.0, connect_timeout_s))
        self._xid = 0
        self._buf = b""

    def _read_frame(self) -> tuple[int, int, bytes]:
        while True:
            if len(self._buf) >= 4:
                (ln,) = _INT.unpack_from(self._buf, 0)
                if len(self._buf) >= 4 + ln:
                    frame = self._buf[4:4 + ln]
                    self._buf = self._buf[4 + ln:]
                    xid, _zxid, err = struct.unpack_from(">iqi", frame, 0)
                    if xid in (-1, -2):          # notification / ping reply
                        continue
                    return xid, err, frame[16:]
            b = self.sock.recv(1 << 16)
            if not b:
                raise BenchError("server closed the connection")
            self._buf += b

    def pipeline(self, requests, window: int = 512) -> list[tuple[int, bytes]]:
        """Send (opcode, body) requests with up to ``window`` in flight; return (err, body) in order."""
        reqs = list(requests)
        results: list[tuple[int, bytes]] = []
        sent = 0
        while len(results) < len(reqs):
            if sent < len(reqs) and sent - len(results) < window:
                parts = []
                while sent < len(reqs) and sent - len(results) < window:
                    op, body = reqs[sent]
                    self._xid += 1
                    parts.append(_REQ_HDR.pack(8 + len(body), self._xid, op) + body)
                    sent += 1
                self.sock.sendall(b"".join(parts))
            _xid, err, body = self._read_frame()
            results.append((err, body))
        return results

    def call(self, op: int, body: bytes) -> tuple[int, bytes]:
        return self.pipeline([(op, body)])[0]

    def close(self) -> None:
        try:
            self._xid += 1
            self.sock.sendall(_REQ_HDR.pack(8, self._xid, OP_CLOSE))
            self._read_frame()
        except (OSError, BenchError):
            pass
        finally:
            self.sock.close()


# --------------------------------------------------------------------- the load loop

class _Conn:
    __slots__ = ("sock", "buf", "wbuf", "pend", "xid", "rxid", "templates", "ti", "alive", "created")

    def __init__(self, sock, templates):
        self.sock = sock
        self.buf = b""
        self.wbuf = b""
        self.pend = deque()
        self.xid = 0
        self.rxid = 0
        self.templates = templates
        self.ti = 0
        self.alive = True
        self.created = 0


def run_load(spec: dict) -> dict:
    """Drive one load run; runs inside a worker process.  Returns raw counts and latencies.

    spec keys: host, port, op, per_conn (list of in-flight counts, one per connection),
    templates (list per connection of (opcode, body)), warmup_s, duration_s,
    session_timeout_ms, drain_s.
    """
    host, port = spec["host"], spec["port"]
    per_conn = spec["per_conn"]
    addrs = spec.get("addrs") or [(host, port)] * len(per_conn)  # a member per connection (ensembles)
    conns: list[_Conn] = []
    sel = selectors.DefaultSelector()
    errors: dict[int, int] = {}
    lost = 0
    xid_mismatch = 0
    try:
        for i, depth in enumerate(per_conn):
            host, port = addrs[i]
            sock = _open_socket(host, port, 10.0)
            _handshake(sock, spec["session_timeout_ms"])
            sock.setblocking(False)
            tmpl = [(8 + len(body), op, body) for op, body in spec["templates"][i]]
            c = _Conn(sock, tmpl)
            conns.append(c)
            sel.register(sock, selectors.EVENT_READ, c)
    except (OSError, BenchError) as e:
        for c in conns:
            c.sock.close()
        raise BenchError(f"cannot open {len(per_conn)} sessions to {host}:{port}: {e}") from None

    pack_req = _REQ_HDR.pack
    unpack_rep = _REPLY_HDR.unpack_from
    perf = time.perf_counter_ns
    lat = array.array("q")
    lat_append = lat.append

    def issue(c: _Conn, k: int, ts: int) -> None:
        parts = []
        xid = c.xid
        tl = c.templates
        nt = len(tl)
        ti = c.ti
        for _ in range(k):
            xid += 1
            ln, op, body = tl[ti]
            ti += 1
            if ti == nt:
                ti = 0
            parts.append(pack_req(ln, xid, op))
            parts.append(body)
        c.xid = xid
        c.ti = ti
        c.pend.extend([ts] * k)
        payload = b"".join(parts)
        if c.wbuf:
            c.wbuf += payload
            return
        try:
            n = c.sock.send(payload)
        except (BlockingIOError, InterruptedError):
            n = 0
        except OSError:
            return          # connection broken: the read side sees EOF and counts the requests lost
        if n < len(payload):
            c.wbuf = payload[n:]
            sel.modify(c.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, c)

    t0 = perf()
    warm_end = t0 + int(spec["warmup_s"] * 1e9)
    end = warm_end + int(spec["duration_s"] * 1e9)
    drain_end = end + int(spec["drain_s"] * 1e9)
    for c, depth in zip(conns, per_conn):
        issue(c, depth, t0)

    ok = 0
    cpu_start = cpu_end = None
    win_start_ns = win_end_ns = None
    in_flight = sum(per_conn)
    select = sel.select
    while True:
        now = perf()
        if cpu_start is None and now >= warm_end:
            cpu_start, win_start_ns = time.process_time(), now
        if now >= end:
            if cpu_end is None:
                cpu_end, win_end_ns = time.process_time(), now
                if cpu_start is None:
                    cpu_start, win_start_ns = cpu_end, now
            if in_flight <= 0 or now >= drain_end:
                break
            timeout = (drain_end - now) / 1e9
        else:
            timeout = ((warm_end if now < warm_end else end) - now) / 1e9
        events = select(timeout)
        now = perf()
        measuring = warm_end <= now < end
        sending = now < end
        for key, mask in events:
            c = key.data
            if mask & selectors.EVENT_WRITE and c.wbuf:
                try:
                    n = c.sock.send(c.wbuf)
                    c.wbuf = c.wbuf[n:]
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError:
                    c.wbuf = b""
                if not c.wbuf and c.alive:
                    sel.modify(c.sock, selectors.EVENT_READ, c)
            if not mask & selectors.EVENT_READ:
                continue
            try:
                data = c.sock.recv(1 << 18)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b""
            if not data:
                # connection lost: everything in flight on it is an error
                lost += len(c.pend)
                in_flight -= len(c.pend)
                c.pend.clear()
                c.alive = False
                sel.unregister(c.sock)
                c.sock.close()
                continue
            if c.buf:
                data = c.buf + data
            n = len(data)
            pos = 0
            done = 0
            pend = c.pend
            rxid = c.rxid
            while n - pos >= 20:
                ln, xid, _zxid, err = unpack_rep(data, pos)
                nxt = pos + 4 + ln
                if nxt > n:
                    break
                pos = nxt
                if xid < 0:             # -1 notification, -2 ping reply: not ours
                    continue
                rxid += 1
                if xid != rxid:
                    xid_mismatch += 1
                    rxid = xid
                t = pend.popleft()
                done += 1
                if err:
                    errors[err] = errors.get(err, 0) + 1
                else:
                    c.created += 1
                    if measuring:
                        ok += 1
                        lat_append(now - t)
            c.rxid = rxid
            c.buf = data[pos:] if pos < n else b""
            if done:
                if sending:
                    issue(c, done, now)
                else:
                    in_flight -= done
    lost += sum(len(c.pend) for c in conns)
    created = sum(c.created for c in conns) if spec["op"] == "create" else 0

    # close sessions (op -11) and wait briefly for the replies
    for c in conns:
        if not c.alive:
            continue
        try:
            c.sock.setblocking(True)
            c.sock.settimeout(5.0)
            c.sock.sendall(pack_req(8, c.xid + 1, OP_CLOSE))
        except OSError:
            c.alive = False
    for c in conns:
        if c.alive:
            try:
                deadline = time.monotonic() + 5.0
                while time.monotonic() < deadline and c.sock.recv(1 << 16):
                    pass
            except OSError:
                pass
        c.sock.close()
    sel.close()
    return {
        "ok": ok,
        "errors": errors,
        "lost": lost,
        "xid_mismatch": xid_mismatch,
        "created": created,
        "window_s": (win_end_ns - win_start_ns) / 1e9 if win_end_ns else 0.0,
        "cpu_s": (cpu_end - cpu_start) if cpu_end is not None else 0.0,
        "lat": lat.tobytes(),
    }


# --------------------------------------------------------------------- orchestration

@dataclass
class RunResult:
    op: str
    outstanding: int
    connections: int
    ops_per_s: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    ok: int
    errors: int
    error_codes: dict = field(default_factory=dict)
    client_cpu_pct: float = 0.0     # client CPU during the window, % of one core (summed over procs)
    client_us_per_op: float = 0.0
    created: int = 0                # create runs: nodes created (all phases, incl. warm-up and drain)
    create_parent: str | None = None


def _split(total: int, parts: int) -> list[int]:
    base, rem = divmod(total, parts)
    return [base + (1 if i < rem else 0) for i in range(parts)]


def _percentile(sorted_vals, q: float) -> float:
    if not sorted_vals:
        return 0.0
    idx = min(len(sorted_vals) - 1, max(0, int(round(q * (len(sorted_vals) - 1)))))
    return sorted_vals[idx]


class _Runner:
    """Runs load on a pool of ``spawn``-ed worker processes (or inline when procs == 0).

    The caller's ``__main__`` must be import-safe (``if __name__ == "__main__":``), as for any
    spawn-based multiprocessing; ``python -m coordcore`` and the ``coordcore`` script are.
    """

    def __init__(self, procs: int):
        self.procs = procs
        self.pool = None
        if procs > 0:
            ctx = multiprocessing.get_context("spawn")
            self.pool = ctx.Pool(procs)

    def run(self, specs: list[dict]) -> list[dict]:
        if self.pool is None:
            return [run_load(s) for s in specs]
        return self.pool.map(run_load, specs, chunksize=1)

    def close(self):
        if self.pool is not None:
            self.pool.close()
            self.pool.join()
            self.pool = None


class Target:
    """One server under load: holds the bench root and pre-created nodes."""

    def __init__(self, name: str, host: str, port: int, nodes: int = 64, session_timeout_ms: int = 30000,
                 addresses: list[tuple[str, int]] | None = None):
        self.name = name
        self.host = host
        self.port = port
        #: where the load's connections go, round-robin (an ensemble's members); setup uses host:port
        self.addresses = addresses or [(host, port)]
        self.session_timeout_ms = session_timeout_ms
        self.root = f"/coordcore-bench-{uuid.uuid4().hex[:12]}"
        self.nodes = [f"{self.root}/d/n{i:04d}" for i in range(nodes)]
        self._runs = 0

    def setup(self) -> None:
        s = RawSession(self.host, self.port, self.session_timeout_ms)
        try:
            reqs = [(OP_CREATE, create_body(self.root, b"", PERSISTENT)),
                    (OP_CREATE, create_body(self.root + "/d", b"", PERSISTENT))]
            reqs += [(OP_CREATE, create_body(p, DATA, PERSISTENT)) for p in self.nodes]
            for err, _ in s.pipeline(reqs):
                if err:
                    raise BenchError(f"{self.name}: setup create failed with error {err}")
        finally:
            s.close()
        log.info("bench.setup", target=self.name, root=self.root, nodes=len(self.nodes))

    def new_create_parent(self) -> str:
        self._runs += 1
        parent = f"{self.root}/c{self._runs:03d}"
        s = RawSession(self.host, self.port, self.session_timeout_ms)
        try:
            err, _ = s.call(OP_CREATE, create_body(parent, b"", PERSISTENT))
            if err:
                raise BenchError(f"{self.name}: cannot create {parent}: error {err}")
        finally:
            s.close()
        return parent

    def templates(self, op: str, nconn: int, create_parent: str | None) -> list[list[tuple[int, bytes]]]:
        out = []
        for i in range(nconn):
            # each connection cycles through its own slice of the pre-created nodes
            mine = self.nodes[i::nconn] or self.nodes
            if op == "create":
                out.append([(OP_CREATE, create_body(create_parent + "/n-", DATA, PERSISTENT_SEQUENTIAL))])
            elif op == "set":
                out.append([(OP_SETDATA, set_body(p, DATA)) for p in mine])
            elif op == "get":
                out.append([(OP_GETDATA, read_body(p)) for p in mine])
            elif op == "exists":
                out.append([(OP_EXISTS, read_body(p)) for p in mine])
            else:
                raise BenchError(f"unknown op {op!r}")
        return out

    def delete_tree(self, path: str, expected_children: int = 0) -> int:
        """Delete ``path`` and its children (one level of sequential nodes, or the bench root).

        ``expected_children`` sequential names n-0000000000.. are deleted first without
        listing (listing 100k children is a >1 MiB reply); any leftovers are listed.
        Returns how many children were deleted.
        """
        s = RawSession(self.host, self.port, self.session_timeout_ms)
        deleted = 0
        try:
            chunk = 5000
            for start in range(0, expected_children, chunk):
                reqs = [(OP_DELETE, delete_body(f"{path}/n-{i:010d}"))
                        for i in range(start, min(expected_children, start + chunk))]
                deleted += sum(1 for err, _ in s.pipeline(reqs) if err == 0)
            while True:
                err, body = s.call(OP_GETCHILDREN, read_body(path))
                if err == ERR_NONODE:
                    return deleted
                if err:
                    raise BenchError(f"{self.name}: getChildren {path} failed: {err}")
                kids = parse_children(body)
                if not kids:
                    break
                for k in kids:
                    deleted += self._delete_recursive(s, f"{path}/{k}")
            err, _ = s.call(OP_DELETE, delete_body(path))
            if err not in (0, ERR_NONODE):
                raise BenchError(f"{self.name}: delete {path} failed: {err}")
        finally:
            s.close()
        return deleted

    def _delete_recursive(self, s: RawSession, path: str) -> int:
        err, body = s.call(OP_GETCHILDREN, read_body(path))
        n = 0
        if err == 0:
            for k in parse_children(body):
                n += self._delete_recursive(s, f"{path}/{k}")
        s.call(OP_DELETE, delete_body(path))
        return n + 1

    def cleanup(self) -> None:
        self.delete_tree(self.root)
        log.info("bench.cleanup", target=self.name, root=self.root)


def _aggregate(op: str, outstanding: int, nconn: int, raws: list[dict]) -> RunResult:
    lat = array.array("q")
    ok = 0
    errs: dict[int, int] = {}
    lost = mism = 0
    rate = 0.0
    cpu = 0.0
    window = 0.0
    for r in raws:
        lat.frombytes(r["lat"])
        ok += r["ok"]
        for k, v in r["errors"].items():
            errs[k] = errs.get(k, 0) + v
        lost += r["lost"]
        mism += r["xid_mismatch"]
        if r["window_s"] > 0:
            rate += r["ok"] / r["window_s"]
            cpu += r["cpu_s"]
            window = max(window, r["window_s"])
    codes = {str(k): v for k, v in sorted(errs.items())}
    if lost:
        codes["lost"] = lost
    if mism:
        codes["xid_mismatch"] = mism
    vals = sorted(lat)
    return RunResult(
        op=op, outstanding=outstanding, connections=nconn, ops_per_s=rate,
        p50_ms=_percentile(vals, 0.50) / 1e6, p99_ms=_percentile(vals, 0.99) / 1e6,
        max_ms=(vals[-1] / 1e6) if vals else 0.0, ok=ok,
        errors=sum(errs.values()) + lost + mism, error_codes=codes,
        client_cpu_pct=(100.0 * cpu / window) if window else 0.0,
        client_us_per_op=(1e6 * cpu / ok) if ok else 0.0,
    )


def run_one(target: Target, runner: _Runner, op: str, outstanding: int, connections: int,
            duration_s: float, warmup_s: float, keep_created: bool = False) -> RunResult:
    """One (op, outstanding) run against ``target``: spread over the runner's processes.

    Nodes made by a create run are deleted afterwards unless ``keep_created`` (then
    ``result.create_parent`` holds them and ``Target.cleanup()`` removes them later).
    """
    nconn = max(1, min(connections, outstanding))
    nprocs = max(1, min(runner.procs or 1, nconn))
    per_conn = _split(outstanding, nconn)
    parent = target.new_create_parent() if op == "create" else None
    templates = target.templates(op, nconn, parent)
    conn_split = _split(nconn, nprocs)
    specs, at = [], 0
    addrs = [target.addresses[i % len(target.addresses)] for i in range(nconn)]
    for k in conn_split:
        specs.append({
            "host": target.host, "port": target.port, "op": op, "addrs": addrs[at:at + k],
            "per_conn": per_conn[at:at + k], "templates": templates[at:at + k],
            "warmup_s": warmup_s, "duration_s": duration_s, "drain_s": 10.0,
            "session_timeout_ms": target.session_timeout_ms,
        })
        at += k
    raws = runner.run(specs)
    res = _aggregate(op, outstanding, nconn, raws)
    if parent is not None:
        created = sum(r["created"] for r in raws)
        res.created, res.create_parent = created, parent
    if parent is not None and not keep_created:
        deleted = target.delete_tree(parent, created)
        if deleted != created:
            res.error_codes["cleanup_mismatch"] = created - deleted
            res.errors += 1
    log.info("bench.run", target=target.name, op=op, outstanding=outstanding, connections=nconn,
             ops_per_s=round(res.ops_per_s), p50_ms=round(res.p50_ms, 3), p99_ms=round(res.p99_ms, 3),
             errors=res.errors, client_cpu_pct=round(res.client_cpu_pct))
    return res


# --------------------------------------------------------------------- servers for --side-by-side

def _descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (children, their children, ...)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            for tid in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{tid}/children") as f:
                    kids = [int(x) for x in f.read().split()]
                out.extend(kids)
                todo.extend(kids)
        except OSError:
            pass
    return out


def vm_rss_kib(pid: int, include_children: bool = True, field: str = "VmRSS") -> int:
    """Resident set size (VmRSS, KiB) of ``pid`` plus, optionally, its descendants.

    ``field="VmHWM"`` gives the peak resident size instead (the high-water mark over the process's life).
    """
    total = 0
    for p in [pid, *(_descendants(pid) if include_children else ())]:
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith(field + ":"):
                        total += int(line.split()[1])
                        break
        except OSError:
            continue
    return total


def private_kib(pid: int) -> int:
    """Memory only ``pid`` maps (Private_Clean + Private_Dirty from smaps_rollup, KiB); 0 if unreadable.

    For a forked child that is what it adds to the machine: its own allocations plus every page it
    shares with its parent that one of the two has written to since the fork (copy-on-write).
    """
    total = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith(("Private_Clean:", "Private_Dirty:")):
                    total += int(line.split()[1])
    except OSError:
        return 0
    return total


class _ChildMemorySampler:
    """Peak of (server's VmRSS + its children's private memory), sampled every ~20 ms while a child runs.

    coordcore writes snapshots from a forked child; VmHWM of the server process alone misses what that
    child holds, and the child is gone (with its own VmHWM) by the time the load ends. ZooKeeper has no
    children, so for it this stays 0 and its peak is its VmHWM.
    """

    def __init__(self, pid: int, interval_s: float = 0.02, include_parent: bool = True):
        import threading  # noqa: PLC0415

        self.pid, self.interval_s, self.peak_kib = pid, interval_s, 0
        self.include_parent = include_parent  # False: the children's private memory alone
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-memory-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            kids = _descendants(self.pid)
            if kids:
                extra = sum(private_kib(k) for k in kids)
                parent = vm_rss_kib(self.pid, include_children=False) if self.include_parent else 0
                self.peak_kib = max(self.peak_kib, parent + extra)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join(5)
        return self.peak_kib


@dataclass
class ServerInfo:
    name: str
    startup_ms: float
    rss_kib: int = 0
    peak_rss_kib: int = 0
    # the peak counting forked children too (coordcore's snapshot writer): max(VmHWM, sampled)
    peak_with_children_kib: int = 0
    pid: int = 0
    connect: str = ""


def _bench_config(tick_ms: int) -> dict:
    """zoo.cfg keys for both side-by-side servers: same tickTime, fsync on, no connection cap."""
    return {"tickTime": tick_ms, "forceSync": "yes", "maxClientCnxns": 0,
            "minSessionTimeout": 2 * tick_ms, "maxSessionTimeout": 20 * tick_ms,
            "4lw.commands.whitelist": "*"}


def _make_server(kind: str, tick_ms: int, zk_heap: str):
    from coordcore.testing import servers as cct  # noqa: PLC0415 (test support, loaded only here)

    if kind == "coordcore":
        return cct.CoordcoreProcess(config=_bench_config(tick_ms))

    class StockZooKeeper(cct.ZooKeeperProcess):
        """ZooKeeper with the JVM settings of its own zkServer.sh (heap -Xmx1000m, the JVM's default
        collector) rather than the launcher's small test heap and serial collector."""

        jvm_heap = zk_heap

        def command(self):
            return [a for a in super().command() if a != "-XX:+UseSerialGC"]

    return StockZooKeeper(config=_bench_config(tick_ms))


class _ServingProbe:
    """Polls connect + ruok every ~2 ms on a thread; records when the server first answers imok."""

    def __init__(self, host: str, port: int):
        import threading  # noqa: PLC0415

        self.host, self.port = host, port
        self.t_serving: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-serving-probe", daemon=True)

    def start(self):
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            if ruok(self.host, self.port, 0.5):
                self.t_serving = time.perf_counter()
                return
            self._stop.wait(0.002)

    def stop(self):
        self._stop.set()
        self._thread.join(5)


def _start_server(kind: str, tick_ms: int, zk_heap: str = "1000m"):
    """Start a standalone server of ``kind`` ('coordcore' or 'zookeeper') via coordcore.testing.

    Returns (handle, startup_ms).  Startup is measured from just before the process is spawned to
    the first fresh connection answered ``imok`` by ``ruok`` (a probe thread polls every ~2 ms, so
    the launcher's own readiness checks do not count).
    """
    handle = _make_server(kind, tick_ms, zk_heap)
    host, port = parse_host_port(handle.connect_string)   # the port is chosen before start
    probe = _ServingProbe(host, port)
    probe.start()
    t0 = time.perf_counter()
    try:
        handle.start(timeout=60)
    except Exception as e:
        probe.stop()
        handle.close()
        raise BenchError(f"{kind} did not start: {e}") from None
    deadline = time.monotonic() + 10
    while probe.t_serving is None and time.monotonic() < deadline:
        time.sleep(0.002)
    probe.stop()
    t1 = probe.t_serving if probe.t_serving is not None else time.perf_counter()
    return handle, (t1 - t0) * 1000.0


# --------------------------------------------------------------------- output

def format_table(results: list[RunResult], title: str) -> str:
    lines = [title,
             f"{'op':<7} {'outst':>5} {'conns':>5} {'ops/s':>10} {'p50 ms':>8} {'p99 ms':>8} "
             f"{'max ms':>8} {'errors':>7} {'cli cpu%':>8} {'cli us/op':>9}"]
    for r in results:
        lines.append(f"{r.op:<7} {r.outstanding:>5} {r.connections:>5} {r.ops_per_s:>10.0f} {r.p50_ms:>8.3f} "
                     f"{r.p99_ms:>8.3f} {r.max_ms:>8.3f} {r.errors:>7} {r.client_cpu_pct:>8.0f} "
                     f"{r.client_us_per_op:>9.1f}")
        if r.error_codes:
            lines.append(f"        error codes: {r.error_codes}")
    return "\n".join(lines)


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "n/a"


def format_side_by_side(cc: list[RunResult], zk: list[RunResult], cci: ServerInfo, zki: ServerInfo,
                        rounds: int = 1) -> str:
    title = "side-by-side: coordcore vs Apache ZooKeeper (ratio = coordcore / zookeeper)"
    if rounds > 1:
        title += f"; each row the median of {rounds} interleaved rounds"
    lines = [title,
             f"{'op':<7} {'outst':>5} | {'cc ops/s':>9} {'zk ops/s':>9} {'ratio':>7} | "
             f"{'cc p50':>7} {'zk p50':>7} | {'cc p99':>7} {'zk p99':>7} | {'cc max':>7} {'zk max':>7} | "
             f"{'cc err':>6} {'zk err':>6}"]
    for a, b in zip(cc, zk):
        lines.append(
            f"{a.op:<7} {a.outstanding:>5} | {a.ops_per_s:>9.0f} {b.ops_per_s:>9.0f} "
            f"{_ratio(a.ops_per_s, b.ops_per_s):>7} | {a.p50_ms:>7.2f} {b.p50_ms:>7.2f} | "
            f"{a.p99_ms:>7.2f} {b.p99_ms:>7.2f} | {a.max_ms:>7.2f} {b.max_ms:>7.2f} | "
            f"{a.errors:>6} {b.errors:>6}")
    lines.append("latencies in ms")
    lines.append(f"start to serving: coordcore {cci.startup_ms:.0f} ms, zookeeper {zki.startup_ms:.0f} ms, "
                 f"ratio {_ratio(cci.startup_ms, zki.startup_ms)}")
    lines.append(f"resident memory after load: coordcore {cci.rss_kib / 1024:.1f} MiB, "
                 f"zookeeper {zki.rss_kib / 1024:.1f} MiB, ratio {_ratio(cci.rss_kib, zki.rss_kib)}")
    lines.append(f"peak resident memory (VmHWM): coordcore {cci.peak_rss_kib / 1024:.1f} MiB, "
                 f"zookeeper {zki.peak_rss_kib / 1024:.1f} MiB, ratio {_ratio(cci.peak_rss_kib, zki.peak_rss_kib)}")
    lines.append(f"peak memory with forked snapshot writers: coordcore {cci.peak_with_children_kib / 1024:.1f} MiB, "
                 f"zookeeper {zki.peak_with_children_kib / 1024:.1f} MiB, "
                 f"ratio {_ratio(cci.peak_with_children_kib, zki.peak_with_children_kib)}")
    for who, rs in (("coordcore", cc), ("zookeeper", zk)):
        if rs:
            worst = max(rs, key=lambda r: r.client_cpu_pct)
            lines.append(f"load generator CPU against {who}: at most {worst.client_cpu_pct:.0f}% of one core "
                         f"({worst.op}@{worst.outstanding}, {worst.client_us_per_op:.1f} us/op)")
    for r in cc + zk:
        if r.error_codes:
            who = "coordcore" if r in cc else "zookeeper"
            lines.append(f"errors {who} {r.op}@{r.outstanding}: {r.error_codes}")
    return "\n".join(lines)


# --------------------------------------------------------------------- CLI

def _int_list(s: str) -> list[int]:
    try:
        vals = [int(x) for x in s.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {s!r}") from None
    if not vals or any(v < 1 for v in vals):
        raise argparse.ArgumentTypeError("values must be >= 1")
    return vals


def _op_list(s: str) -> list[str]:
    ops = [x.strip() for x in s.split(",") if x.strip()]
    bad = [o for o in ops if o not in OPS]
    if bad or not ops:
        raise argparse.ArgumentTypeError(f"unknown op(s) {bad}; choose from {','.join(OPS)}")
    return ops


_ENSEMBLE_SECTIONS = ("startup", "throughput", "memory", "catchup", "failover")


def _count_list(s: str) -> list[int]:
    try:
        vals = [int(x.replace("_", "")) for x in s.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {s!r}") from None
    if not vals or any(v < 0 for v in vals):
        raise argparse.ArgumentTypeError("values must be >= 0")
    return vals


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="coordcore bench",
        description="Pipelined load for ZooKeeper-protocol servers: ops/s and p50/p99/max latency "
                    "for create, set, get and exists. --outstanding is the TOTAL number of requests "
                    "in flight, spread evenly over --connections sessions.",
    )
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--connect", metavar="HOST:PORT", help="server to load (first host of a connect string)")
    where.add_argument("--side-by-side", action="store_true",
                       help="start coordcore and Apache ZooKeeper standalone on free ports and compare them")
    p.add_argument("--ops", type=_op_list, default=list(OPS), help="comma-separated ops (default: %(default)s)")
    p.add_argument("--connections", type=int, default=4, metavar="M",
                   help="sessions to spread the load over (capped at the outstanding level; default 4)")
    p.add_argument("--outstanding", type=_int_list, default=[16, 64], metavar="N[,N...]",
                   help="total requests in flight; one run per level (default 16,64)")
    p.add_argument("--duration", type=float, default=None,
                   help="measured seconds per run (default 5; 1 with --ensemble)")
    p.add_argument("--warmup", type=float, default=None,
                   help="unrecorded seconds before each run (default 1; 0.3 with --ensemble)")
    p.add_argument("--prewarm", type=float, default=2.0,
                   help="unrecorded seconds of load per server before the first run, spread over the ops, "
                        "so a JIT-compiled server (ZooKeeper) is measured warm (default 2)")
    p.add_argument("--procs", type=int, default=1,
                   help="client worker processes (default 1; 0 = run in this process)")
    p.add_argument("--nodes", type=int, default=64, help="pre-created nodes for set/get/exists (default 64)")
    p.add_argument("--rounds", type=int, default=None, metavar="R",
                   help="--side-by-side: measure each op/level R times (interleaved) and print the run with "
                        "the median ops/s (default 1; 5 with --ensemble)")
    p.add_argument("--tick-ms", type=int, default=2000, help="tickTime for --side-by-side servers (default 2000)")
    p.add_argument("--zk-heap", default="1000m",
                   help="JVM -Xmx for --side-by-side ZooKeeper (default 1000m, as zkServer.sh)")
    ens = p.add_argument_group("ensembles (--side-by-side --ensemble N; see coordcore.bench_ensemble)")
    ens.add_argument("--ensemble", type=int, metavar="N",
                     help="compare an N-voter coordcore ensemble with an N-voter Apache ZooKeeper ensemble "
                          "(3, 5 or 7): start-up, throughput spread over the members and on a follower, "
                          "leader failover, catch-up and memory per member")
    ens.add_argument("--levels", default="1x1,4x16,4x64", metavar="CxO[,CxO...]",
                     help="--ensemble: connections x outstanding per run (default %(default)s)")
    ens.add_argument("--placements", default="spread,follower", metavar="P[,P...]",
                     help="--ensemble: where the connections go: spread (leader first, then followers, "
                          "round-robin) and/or follower (all on one follower) (default %(default)s)")
    ens.add_argument("--sections", default=",".join(_ENSEMBLE_SECTIONS), metavar="S[,S...]",
                     help="--ensemble: what to measure (default %(default)s)")
    ens.add_argument("--startup-rounds", type=int, default=5,
                     help="--ensemble: fresh ensembles started per backend for the start-up figure (default 5)")
    ens.add_argument("--kills", type=int, default=5, help="--ensemble: leader kills per tree size (default 5)")
    ens.add_argument("--failover-znodes", type=_count_list, default=[0, 100_000, 500_000], metavar="N[,N...]",
                     help="--ensemble: znodes in the tree for the failover runs (default 0,100000,500000)")
    ens.add_argument("--catchup", type=_count_list, default=[10_000, 100_000], metavar="N[,N...]",
                     help="--ensemble: writes a stopped follower misses before it restarts (default 10000,100000)")
    ens.add_argument("--init-limit", type=int, default=10, help="--ensemble: initLimit (default 10)")
    ens.add_argument("--sync-limit", type=int, default=5, help="--ensemble: syncLimit (default 5)")
    ens.add_argument("--session-timeout-ms", type=int, default=10000,
                     help="--ensemble: the failover writer's session timeout (default 10000)")
    p.add_argument("--log-level", default="info", help="log level for progress events on stderr (default info)")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    return p


def _check_args(p: argparse.ArgumentParser, a) -> None:
    # an ensemble run measures 24 rows per backend: shorter runs, and the 5 interleaved rounds a
    # figure needs to count
    ensemble = a.ensemble is not None
    for name, single, ens in (("rounds", 1, 5), ("duration", 5.0, 1.0), ("warmup", 1.0, 0.3)):
        if getattr(a, name) is None:
            setattr(a, name, ens if ensemble else single)
    if a.rounds < 1:
        p.error("--rounds must be >= 1")
    if a.connections < 1:
        p.error("--connections must be >= 1")
    if a.duration <= 0 or a.warmup < 0 or a.prewarm < 0:
        p.error("--duration must be > 0, --warmup and --prewarm >= 0")
    if a.procs < 0:
        p.error("--procs must be >= 0")
    if a.nodes < 1:
        p.error("--nodes must be >= 1")
    if a.ensemble is not None:
        from coordcore import bench_ensemble  # noqa: PLC0415

        if not a.side_by_side:
            p.error("--ensemble needs --side-by-side (it starts both ensembles itself)")
        if a.ensemble not in (3, 5, 7):
            p.error("--ensemble must be 3, 5 or 7 voters")
        try:
            a.levels = bench_ensemble.parse_levels(a.levels)
        except ValueError as e:
            p.error(f"--levels: {e}")
        a.placements = [x.strip() for x in a.placements.split(",") if x.strip()]
        if not a.placements or set(a.placements) - set(bench_ensemble.PLACEMENTS):
            p.error(f"--placements: choose from {','.join(bench_ensemble.PLACEMENTS)}")
        a.sections = [x.strip() for x in a.sections.split(",") if x.strip()]
        if set(a.sections) - set(_ENSEMBLE_SECTIONS) or "startup" not in a.sections:
            p.error(f"--sections: choose from {','.join(_ENSEMBLE_SECTIONS)} (startup always runs)")
        if a.kills < 1 or a.startup_rounds < 1:
            p.error("--kills and --startup-rounds must be >= 1")


def prewarm(target: Target, runner: _Runner, args) -> None:
    """Unrecorded load (every op, highest level) so that the measured runs see a warm server."""
    if args.prewarm <= 0:
        return
    each = args.prewarm / len(args.ops)
    for op in args.ops:
        run_one(target, runner, op, max(args.outstanding), args.connections, each, 0.0)


def bench_target(target: Target, runner: _Runner, args) -> list[RunResult]:
    prewarm(target, runner, args)
    results = []
    for op in args.ops:
        for level in args.outstanding:
            results.append(run_one(target, runner, op, level, args.connections, args.duration, args.warmup))
    return results


def median_run(runs: list[RunResult]) -> RunResult:
    """The run with the median ops/s (its latencies stay those of one real run)."""
    return sorted(runs, key=lambda r: r.ops_per_s)[len(runs) // 2]


def _side_by_side(args, runner: _Runner) -> dict:
    servers, infos, targets, samplers = {}, {}, {}, {}
    try:
        for kind in ("coordcore", "zookeeper"):
            handle, startup_ms = _start_server(kind, args.tick_ms, args.zk_heap)
            servers[kind] = handle
            host, port = parse_host_port(handle.connect_string)
            infos[kind] = ServerInfo(kind, startup_ms, pid=handle.pid, connect=handle.connect_string)
            targets[kind] = Target(kind, host, port, args.nodes)
            samplers[kind] = _ChildMemorySampler(handle.pid)
            targets[kind].setup()
            print(f"{kind}: serving after {startup_ms:.0f} ms at {handle.connect_string} (pid {handle.pid})",
                  flush=True)
        for kind in targets:
            prewarm(targets[kind], runner, args)
        res = {"coordcore": [], "zookeeper": []}
        for op in args.ops:
            for level in args.outstanding:
                rounds: dict = {"coordcore": [], "zookeeper": []}
                for _ in range(args.rounds):
                    for kind in ("coordcore", "zookeeper"):   # interleaved: noise hits both alike
                        rounds[kind].append(run_one(targets[kind], runner, op, level, args.connections,
                                                    args.duration, args.warmup))
                for kind in rounds:
                    res[kind].append(median_run(rounds[kind]))
        for kind in targets:
            infos[kind].rss_kib = vm_rss_kib(servers[kind].pid)
            infos[kind].peak_rss_kib = vm_rss_kib(servers[kind].pid, field="VmHWM")
            infos[kind].peak_with_children_kib = max(infos[kind].peak_rss_kib, samplers[kind].stop())
        for kind in targets:
            targets[kind].cleanup()
        print(format_side_by_side(res["coordcore"], res["zookeeper"], infos["coordcore"], infos["zookeeper"],
                                  args.rounds))
        return {"servers": {k: asdict(v) for k, v in infos.items()},
                "results": {k: [asdict(r) for r in v] for k, v in res.items()}}
    finally:
        for sampler in samplers.values():
            sampler.stop()
        for h in servers.values():
            try:
                h.close()
            except Exception as e:  # noqa: BLE001 - report and keep stopping the others
                log.warning("bench.server_stop_failed", error=str(e))


def main(argv: list[str] | None = None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    _check_args(p, args)
    if not structlog.is_configured():
        from coordcore.logs import configure_logging  # noqa: PLC0415

        try:
            configure_logging(args.log_level)
        except ValueError as e:
            p.error(str(e))
    runner = _Runner(args.procs)
    try:
        if args.side_by_side and args.ensemble:
            from coordcore import bench_ensemble  # noqa: PLC0415

            out = bench_ensemble.run(args, runner)
        elif args.side_by_side:
            out = _side_by_side(args, runner)
        else:
            host, port = parse_host_port(args.connect)
            target = Target(args.connect, host, port, args.nodes)
            target.setup()
            try:
                results = bench_target(target, runner, args)
            finally:
                target.cleanup()
            print(format_table(results, f"load against {args.connect} "
                                        f"(outstanding = total in flight over {args.connections} connections)"))
            out = {"connect": args.connect, "results": [asdict(r) for r in results]}
    except (BenchError, OSError) as e:
        print(f"coordcore bench: error: {e}", file=sys.stderr)
        return 2
    finally:
        runner.close()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
