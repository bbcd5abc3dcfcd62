"""Trace-compare differential tests: each scenario runs against a FRESH coordcore and a FRESH Apache
ZooKeeper; the normalized traces (replies, error codes, bodies with Stats whose zxids are renumbered by
order of appearance and whose times become "same as earlier" markers, and watch events interleaved with
replies per client) must be equal.  This catches what direct assertions forget.

The scenarios are data: (client, op, args) steps over a few raw clients.  Add one whenever a bug is found.
"""
from __future__ import annotations

import base64
import difflib
import hashlib
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import rawzk  # noqa: E402
from coordcore.testing.servers import make_server, zookeeper_available  # noqa: E402

pytestmark = pytest.mark.timeout(120)

W = rawzk.Writer


def multi(*ops):
    w = W()
    for op, rec in ops:
        w.int(op).bool(False).int(-1).raw(rec)
    return w.int(-1).bool(True).int(-1).bytes()


def cr(path, data=b"", flags=0, acl=None):
    return W().string(path).buffer(data).acls(acl or rawzk.OPEN_ACL).int(flags).bytes()


def pw(path, watch=False):
    return W().string(path).bool(watch).bytes()


def dl(path, version=-1):
    return W().string(path).int(version).bytes()


def sd(path, data, version=-1):
    return W().string(path).buffer(data).int(version).bytes()


def ck(path, version):
    return W().string(path).int(version).bytes()


def sacl(path, acl, version=-1):
    return W().string(path).acls(acl).int(version).bytes()


BOB_ONLY = [(31, "digest", "bob:" + base64.b64encode(hashlib.sha1(b"bob:secret").digest()).decode())]
AUTH_BOB = W().int(0).string("digest").buffer(b"bob:secret").bytes()

C, D, E, G, S, GC, GC2, SY = (rawzk.CREATE, rawzk.DELETE, rawzk.EXISTS, rawzk.GET_DATA, rawzk.SET_DATA,
                               rawzk.GET_CHILDREN, rawzk.GET_CHILDREN2, rawzk.SYNC)

SCENARIOS = {
    "stat_and_sequence": [
        ("a", C, cr("/n", b"x")), ("a", C, cr("/n/s-", b"", 2)), ("a", C, cr("/n/s-", b"", 3)),
        ("a", C, cr("/n/", b"", 2)), ("a", D, dl("/n/s-0000000000")), ("a", GC2, pw("/n")),
        ("a", S, sd("/n", None)), ("a", G, pw("/n")), ("a", E, pw("/")), ("a", C, cr("/n", b"")),
        ("a", D, dl("/n")), ("a", D, dl("/n/s-0000000000", 0)), ("a", rawzk.CREATE2, cr("/m", None)),
        ("a", rawzk.SET_ACL, W().string("/m").acls(rawzk.OPEN_ACL).int(0).bytes()), ("a", E, pw("/m")),
    ],
    "multi_mix": [
        ("a", C, cr("/p")),
        ("a", rawzk.MULTI, multi((C, cr("/p/a")), (S, sd("/p", b"v")), (rawzk.CHECK, ck("/p", 1)),
                                 (C, cr("/p/b-", b"", 2)), (D, dl("/p/a")))),
        ("a", rawzk.MULTI, multi((C, cr("/p/x")), (rawzk.CHECK, ck("/p", 0)), (D, dl("/p")))),
        ("a", rawzk.MULTI, multi()), ("a", GC2, pw("/p")), ("a", E, pw("/p")),
        ("a", rawzk.MULTI_READ, multi((G, pw("/p")), (GC, pw("/nope")))),
    ],
    "watches_two_clients": [
        ("a", E, pw("/w", True)), ("a", GC, pw("/", True)), ("b", C, cr("/w", b"1")),
        ("a", G, pw("/w", True)), ("a", GC2, pw("/w", True)), ("b", S, sd("/w", b"2")),
        ("b", C, cr("/w/c", b"", 1)), ("a", SY, W().string("/w").bytes()), ("b", rawzk.CLOSE_SESSION, b""),
        ("a", E, pw("/w/c")), ("a", rawzk.ADD_WATCH, W().string("/w").int(1).bytes()),
        ("b2", C, cr("/w/d")), ("b2", S, sd("/w/d", b"z")), ("b2", D, dl("/w/d")),
        ("a", SY, W().string("/").bytes()),
    ],
    # ZooKeeper deletes a closing session's ephemerals, and lists them in getEphemerals, in Java
    # hash-set order; 14 of them take the set past its first resize, "Aa"/"BB" share a bucket.
    "session_close_order": [
        ("a", C, cr("/e")), ("b", C, cr("/e/Aa", b"", 1)),
        *[("b", C, cr(f"/e/k{i}", b"", 1 + 2 * (i % 2))) for i in range(12)],
        ("b", C, cr("/e/BB", b"", 1)), ("b", D, dl("/e/k3")), ("b", C, cr("/e/k3", b"", 1)),
        *[("a", E, pw(p, True)) for p in ("/e/Aa", "/e/BB", "/e/k3", "/e/k0", "/e/k10",
                                          "/e/k10000000001", "/e/k50000000005", "/e/k11")],
        ("a", GC, pw("/e", True)),
        ("b", rawzk.GET_EPHEMERALS, W().string("/").bytes()),
        ("b", rawzk.GET_EPHEMERALS, W().string("/e/k").bytes()),
        ("b", rawzk.CLOSE_SESSION, b""), ("a", SY, W().string("/").bytes()),
    ],
    # ZooKeeper's own nodes: every read, and the writes it refuses or allows
    "system_nodes": [
        *[("a", op, pw(p)) for p in ("/", "/zookeeper", "/zookeeper/config", "/zookeeper/quota")
          for op in (G, E, GC2)],
        *[("a", rawzk.GET_ACL, W().string(p).bytes()) for p in ("/", "/zookeeper", "/zookeeper/config")],
        ("a", C, cr("/zookeeper/x")), ("a", C, cr("/zookeeper/config/x")), ("a", C, cr("/zookeeper/quota/x")),
        ("a", S, sd("/zookeeper", b"x")), ("a", S, sd("/zookeeper/config", b"x")), ("a", S, sd("/", b"r")),
        ("a", D, dl("/zookeeper/quota")), ("a", D, dl("/zookeeper/config")), ("a", D, dl("/zookeeper")),
        ("a", rawzk.SET_ACL, W().string("/zookeeper/quota").acls(rawzk.OPEN_ACL).int(-1).bytes()),
        ("a", rawzk.GET_ALL_CHILDREN_NUMBER, W().string("/").bytes()), ("a", G, pw("/")), ("a", GC2, pw("/")),
        ("a", rawzk.GET_ALL_CHILDREN_NUMBER, W().string("").bytes()),
        ("a", rawzk.GET_ALL_CHILDREN_NUMBER, W().string("/zookeeper/").bytes()),
    ],
    # A watcher is told about a node only if it may READ it, at the moment of the change (ZooKeeper's
    # CVE-2024-23944 fix, in Debian's 3.8.0 and upstream 3.8.4+); a one-shot watch is used up anyway.
    "watch_events_need_read": [
        ("b", rawzk.AUTH, AUTH_BOB),
        ("b", C, cr("/hid", b"", 0, BOB_ONLY)), ("a", E, pw("/hid", True)), ("b", S, sd("/hid", b"1")),
        ("a", rawzk.ADD_WATCH, W().string("/hid").int(0).bytes()), ("b", C, cr("/hid/k")),
        ("b", C, cr("/p")), ("a", rawzk.ADD_WATCH, W().string("/p").int(1).bytes()),
        ("b", C, cr("/p/h", b"", 0, BOB_ONLY)), ("b", C, cr("/p/o")), ("b", S, sd("/p/h", b"1")),
        ("b", D, dl("/p/h")), ("b", D, dl("/p/o")),
        ("b", C, cr("/n")), ("a", G, pw("/n", True)), ("b", rawzk.SET_ACL, sacl("/n", BOB_ONLY)),
        ("b", S, sd("/n", b"1")), ("b", rawzk.SET_ACL, sacl("/n", rawzk.OPEN_ACL)), ("b", S, sd("/n", b"2")),
        ("a", GC, pw("/p", True)), ("b", rawzk.SET_ACL, sacl("/p", BOB_ONLY)), ("b", C, cr("/p/x")),
        ("a", E, pw("/m", True)), ("b", C, cr("/m", b"", 0, BOB_ONLY)), ("b", D, dl("/m")), ("b", C, cr("/m")),
        ("b", C, cr("/w", b"", 0, [(30, "world", "anyone")])), ("a", E, pw("/w", True)), ("a", S, sd("/w", b"1")),
        ("a", SY, W().string("/").bytes()),
    ],
    # A connection's ids, listed by whoAmI and expanded by the "auth" ACL scheme, come in ZooKeeper's
    # hash-set order, not the order they were added
    "auth_ids_order": [
        *[("a", rawzk.AUTH, W().int(0).string("digest").buffer(f"{u}:pw".encode()).bytes())
          for u in ("bob", "dave", "alice", "erin")],
        ("a", rawzk.WHO_AM_I, b""), ("a", C, cr("/mine", b"", 0, [(31, "auth", "")])),
        ("a", rawzk.GET_ACL, W().string("/mine").bytes()),
        ("b", rawzk.WHO_AM_I, b""),
    ],
    "errors": [
        ("a", C, cr("/e", b"", 1)), ("a", C, cr("/e/c")), ("a", C, cr("/nope/c")), ("a", C, cr("/e")),
        ("a", D, dl("/")), ("a", D, dl("/zookeeper")), ("a", S, sd("/e", b"", 7)), ("a", C, cr("bad")),
        ("a", C, cr("/x", b"", 9)), ("a", C, cr("/x", b"", 0, [])),
        ("a", rawzk.MULTI_READ, multi((C, cr("/mr")))), ("a", rawzk.MULTI, multi((C, cr("/m1")), (G, pw("/m1")))),
        ("a", rawzk.MULTI, multi((SY, W().string("/").bytes()))), ("a", rawzk.MULTI_READ, multi()),
        ("a", rawzk.ADD_WATCH, W().string("/").int(2).bytes()), ("a", D, dl("/zookeeper/quota", -2)),
        ("a", rawzk.CREATE2, cr("/t", b"", 5)), ("a", C, cr("/f", b"", 7)), ("a", C, cr("/f", b"", -1)),
        ("a", 55, b""),
    ],
}


def canon(obj, zxids, times):
    """Normalize zxids (renumbered by first appearance) and times (named by the txn that set them)."""
    if isinstance(obj, rawzk.Stat):
        def z(v):
            return 0 if v == 0 else zxids.setdefault(v, len(zxids) + 1)

        # Times are wall-clock milliseconds, so two txns may share one; what is compared is the txn
        # each time belongs to (ctime is czxid's time, mtime is mzxid's) and that the times of one
        # txn agree wherever they appear.
        def t(v, zxid):
            if v == 0:
                return 0
            assert times.setdefault(zxid, v) == v, "txn 0x%x reported two different times" % zxid
            return "T@%d" % z(zxid)
        return ("Stat", z(obj.czxid), z(obj.mzxid), t(obj.ctime, obj.czxid), t(obj.mtime, obj.mzxid),
                obj.version, obj.cversion,
                obj.aversion, "owner" if obj.ephemeralOwner else 0, obj.dataLength, obj.numChildren, z(obj.pzxid))
    if isinstance(obj, (list, tuple)):
        return type(obj)(canon(o, zxids, times) for o in obj)
    return obj


def decode(op, body):
    r = rawzk.Reader(body)
    if op in (E, S, rawzk.SET_ACL):
        return r.stat()
    if op == G:
        return (r.buffer(), r.stat())
    if op == GC:
        return sorted(r.strings())
    if op == GC2:
        return (sorted(r.strings()), r.stat())
    if op in (C, SY):
        return r.string()
    if op == rawzk.CREATE2:
        return (r.string(), r.stat())
    if op == rawzk.MULTI:
        return rawzk.parse_multi(body)
    if op == rawzk.MULTI_READ:
        # ZooKeeper lists children in hash-set order; compare them as sets
        return [(t, e, sorted(v) if t == GC and isinstance(v, list) else v) for t, e, v in rawzk.parse_multi(body)]
    if op in (rawzk.CREATE_CONTAINER, rawzk.CREATE_TTL):
        return (r.string(), r.stat())
    if op == rawzk.GET_ACL:
        return (r.acls(), r.stat())
    if op == rawzk.GET_ALL_CHILDREN_NUMBER:
        return r.int()
    return body


# A pseudo-opcode for traces: drop the client's TCP connection (no closeSession), reconnect to the same
# session with its last seen zxid, and send setWatches2 for the watch lists in the body (data, exist,
# child, persistent, recursive), relative to that zxid -- what every client does after a disconnect.
RECONNECT = -100


def reconnect_body(data=(), exist=(), child=(), persistent=(), recursive=()) -> bytes:
    return W().strings(list(data)).strings(list(exist)).strings(list(child)).strings(list(persistent)) \
        .strings(list(recursive)).bytes()


def _reconnect(server, old: rawzk.RawClient, body: bytes) -> tuple[rawzk.RawClient, list[str]]:
    sess, last = old.session, old.last_zxid
    old.close()
    c = rawzk.RawClient(server.connect_string)
    resp = c.handshake(session_id=sess.session_id, passwd=sess.passwd, last_zxid=last)
    out = [f"reconnected same_session={resp is not None and resp.session_id == sess.session_id}"]
    c.xid, c.last_zxid = old.xid, last
    r = rawzk.Reader(body)
    lists = [r.strings() for _ in range(5)]
    reply = c.set_watches(last, *lists[:3], persistent=lists[3], recursive=lists[4])
    for kind, item in c.log:
        if kind == "event":
            out.append(f"event type={item.type} state={item.state} path={item.path}")
    c.log.clear()
    out.append(f"setWatches err={reply.err}")
    return c, out


def run(backend: str, steps, config: dict | None = None) -> list[str]:
    """The trace of ``steps`` -- (client, opcode, body) -- each sent once the previous one's reply is in."""
    return run_batches(backend, [(name, [(op, body)]) for name, op, body in steps], config)


def run_batches(backend: str, batches, config: dict | None = None) -> list[str]:
    """Like :func:`run`, but each batch -- (client, [(opcode, body), ...]) -- is pipelined: all of its
    requests are sent before the first reply is read (one client at a time, so the trace stays
    deterministic). The server must validate each against the ones still in flight before it.

    ``backend`` may also be a started server handle, which is then left running (its clients'
    connections are dropped at the end, their sessions not closed)."""
    own = isinstance(backend, str)
    server = make_server(backend, config=config or {}) if own else backend
    if own:
        server.start()
    clients: dict[str, rawzk.RawClient] = {}
    trace: list[str] = []
    zxids: dict[int, int] = {}
    times: dict[int, int] = {}
    try:
        for name, requests in batches:
            c = clients.get(name)
            if c is None:
                c = clients[name] = rawzk.connected(server.connect_string)
            c.log.clear()
            c.events.clear()
            if requests[0][0] == RECONNECT:
                c, lines = _reconnect(server, c, requests[0][1])
                clients[name] = c
                trace.extend(f"{name} {line}" for line in lines)
                continue
            sent = [(op, c.send_request(op, body, -4 if op == rawzk.AUTH else None))  # auth has its own xid
                    for op, body in requests]
            for op, xid in sent:
                reply = c.read_reply()
                if reply is None:
                    trace.append(f"{name} op={op} -> closed")
                    break
                for kind, item in c.log:
                    if kind == "event":
                        trace.append(f"{name} event type={item.type} state={item.state} path={item.path}")
                c.log.clear()
                value = decode(op, reply.body) if reply.err == 0 else None
                extra = f" error_body={reply.body.hex()}" if reply.err and reply.body else ""  # rare: compare raw
                trace.append(f"{name} op={op} xid_ok={reply.xid == xid} err={reply.err} "
                             f"value={canon(value, zxids, times)!r}{extra}")
                if op == rawzk.CLOSE_SESSION or op == 55:
                    trace.append(f"{name} closed={c.wait_closed(5)}")
        for name, c in clients.items():  # late events
            c.events.clear()
            while True:
                try:
                    ev = c.read_event(0.3)
                except Exception:
                    break
                if ev is None:
                    break
                trace.append(f"{name} late-event type={ev.type} path={ev.path}")
    finally:
        for c in clients.values():
            c.close()
        if own:
            server.close()
    return trace


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_trace_matches_zookeeper(name):
    if not zookeeper_available():
        pytest.fail("Apache ZooKeeper is not installed (apt-get install zookeeper); differential tests need it")
    expected = run("zookeeper", SCENARIOS[name])
    actual = run("coordcore", SCENARIOS[name])
    if expected != actual:
        diff = "\n".join(difflib.unified_diff(expected, actual, "zookeeper", "coordcore", lineterm=""))
        pytest.fail(f"scenario {name}: coordcore's trace differs from ZooKeeper's\n{diff}")
