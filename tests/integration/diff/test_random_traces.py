"""Seeded random differential traces: the same random op sequence against coordcore and Apache ZooKeeper.

The hand-written scenarios in ``test_trace_compare`` cover what we thought of; these cover what we did
not. Each seed generates a sequence of requests from a few raw clients over a small set of paths, so the
sequence keeps running into the interesting cases: nodes that exist or not, parents that are ephemeral,
wrong versions, sequential names, watches of every kind firing on another client's change, multi
transactions that fail part-way, sessions that close with ephemerals and watches outstanding. Both traces
are normalized the same way (see ``test_trace_compare.canon``) and must be equal.

A failing seed replays exactly: ``pytest tests/integration/diff/test_random_traces.py -k 'seed_7'``; the
failure message shows the steps as readable text and the first lines where the traces part.
"""
from __future__ import annotations

import base64
import difflib
import hashlib
import random
import struct
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import rawzk  # noqa: E402
import test_trace_compare as tc  # noqa: E402
from coordcore.testing.servers import zookeeper_available  # noqa: E402

pytestmark = pytest.mark.timeout(180)

W = rawzk.Writer
SEEDS = range(8)
STEPS = 90

# Few paths, nested, so creates and deletes keep meeting existing nodes, missing parents and non-empty
# parents; "/r/e" is often created ephemeral, so children under it hit NoChildrenForEphemerals.
# checkWatches/removeWatches go only to OWN_WATCHES, where only client "a" (any generation) sets watches
# and never a persistent one: there ZooKeeper 3.8 and coordcore agree by design. Elsewhere they differ
# on purpose -- 3.8 answers checkWatches from any session's watches on the path, and lets a later watch
# replace the mode of an earlier one on the same connection (ZOOKEEPER-4466); coordcore checks only the
# asking connection's watches and keeps modes apart, as 3.9 does (see the README). For the
# same reason persistent watches come only from client "c", which never sets a one-shot watch, and
# always with the same mode on one path.
OWN_WATCHES = ["/r/w", "/r/w/v"]
PATHS = ["/r", "/r/a", "/r/b", "/r/a/x", "/r/a/y", "/r/e", "/r/e/k", "/q", *OWN_WATCHES]
# ZooKeeper's own nodes: read often, written now and then (their Stats and the errors must agree too)
SYSTEM = ["/", "/zookeeper", "/zookeeper/config", "/zookeeper/quota"]
# paths ZooKeeper refuses (BadArguments) and unusual but valid ones. Not here: characters outside the
# BMP (refused in node names; see the path matrix in test_protocol_nodes), because sync echoes its path
# and ZooKeeper's own string encoder writes them as CESU-8, which is not UTF-8 (coordcore writes UTF-8).
ODD = ["", "/r/", "//r", "/r/./a", "/r/../a", "r", "/r\u0001", "/zookeeper/", "/r/\u00e9t\u00e9", "/r/a b"]
DATA = [b"", b"x", b"yy", None, b"\x00\xff" * 3]
BOB = "bob:" + base64.b64encode(hashlib.sha1(b"bob:secret").digest()).decode()
# ACLs that let some clients do some things: only "b" authenticates (as bob), and only sometimes.
ACLS = [
    rawzk.OPEN_ACL,
    [(1, "world", "anyone")],                      # read-only
    [(31, "digest", BOB), (1, "world", "anyone")],  # bob does anything, others read
    [(31, "auth", "")],                            # the creator's ids (InvalidACL without auth)
    [(15, "world", "anyone")],                     # everything but ADMIN
    [(31, "ip", "127.0.0.1")],
    [],                                            # InvalidACL
    [(31, "nosuch", "x")],                         # InvalidACL
]
CREATE_FLAGS = [0, 0, 1, 2, 3]  # persistent, ephemeral, sequential, ephemeral-sequential
VERSIONS = [-1, -1, -1, 0, 1, 2]


def _acl(rng: random.Random) -> list:
    return rawzk.OPEN_ACL if rng.random() < 0.75 else rng.choice(ACLS)


def _create_body(rng: random.Random, path: str, flags: int, data: list = DATA) -> bytes:
    if flags & 2 and rng.random() < 0.5:
        path = path + "-"  # a sequential name with a prefix; without it the name is the bare counter
    return W().string(path).buffer(rng.choice(data)).acls(_acl(rng)).int(flags).bytes()


def _write_subop(rng: random.Random, paths: list = PATHS, data: list = DATA) -> tuple[int, bytes]:
    path = rng.choice(paths) if rng.random() < 0.95 else rng.choice(ODD)
    kind = rng.randrange(5)
    if kind == 0:
        flags = rng.choice(CREATE_FLAGS)
        return rng.choice((tc.C, rawzk.CREATE2)), _create_body(rng, path, flags, data)
    if kind == 4:  # containers and TTL nodes inside a multi
        if rng.random() < 0.5:
            return rawzk.CREATE_CONTAINER, _create_body(rng, path, 4, data)
        return rawzk.CREATE_TTL, _create_body(rng, path, rng.choice((5, 6)), data) + struct.pack(">q", 3_600_000)
    if kind == 1:
        return tc.D, tc.dl(path, rng.choice(VERSIONS))
    if kind == 2:
        return tc.S, tc.sd(path, rng.choice(data), rng.choice(VERSIONS))
    return rawzk.CHECK, tc.ck(path, rng.choice(VERSIONS))


def random_steps(seed: int, count: int = STEPS, sticky: float = 0.0, paths: list = PATHS,
                 data: list = DATA) -> list[tuple[str, int, bytes, str]]:
    """(client, opcode, request body, readable description) steps for one seed; with ``sticky`` the
    same client goes on with that probability (long runs of one client make pipelined batches).
    ``paths`` and ``data`` are what the requests pick from."""
    PATHS, DATA = paths, data  # noqa: N806 - the generator below picks from these
    rng = random.Random(seed)
    steps: list[tuple[str, int, bytes, str]] = []
    generation = {"a": 0, "b": 0, "c": 0}  # a closed session's name gets a new generation: a new session
    last = ["a"]

    def client() -> str:
        base = last[0] if rng.random() < sticky else rng.choice("abc")
        last[0] = base
        return base if generation[base] == 0 else f"{base}{generation[base]}"

    for _ in range(count):
        who = client()
        u = rng.random()
        path = rng.choice(PATHS) if u < 0.91 else rng.choice(SYSTEM) if u < 0.96 else rng.choice(ODD)
        watch = rng.random() < 0.5 and who[0] != "c" and (path not in OWN_WATCHES or who[0] == "a")
        r = rng.random()
        if r < 0.28:
            flags = rng.choice(CREATE_FLAGS)
            op = rng.choice((tc.C, tc.C, rawzk.CREATE2, rawzk.CREATE_CONTAINER, rawzk.CREATE_TTL))
            body = b""
            if op == rawzk.CREATE_CONTAINER:
                flags = 4
            elif op == rawzk.CREATE_TTL:
                # TTL modes are 5 and 6; a TTL of 0 or over 2^40-1 is BadArguments. Valid TTLs are long
                # enough that nothing expires during the run (expiry is timed, not traced).
                flags = rng.choice((5, 5, 6, 0, 1))
                body = struct.pack(">q", rng.choice((3_600_000, 3_600_000, 0, 1 << 41)))
            steps.append((who, op, _create_body(rng, path, flags, DATA) + body,
                          f"create op={op} {path} flags={flags}"))
        elif r < 0.40:
            v = rng.choice(VERSIONS)
            steps.append((who, tc.D, tc.dl(path, v), f"delete {path} v={v}"))
        elif r < 0.52:
            v = rng.choice(VERSIONS)
            steps.append((who, tc.S, tc.sd(path, rng.choice(DATA), v), f"setData {path} v={v}"))
        elif r < 0.72:
            op = rng.choice((tc.G, tc.E, tc.GC, tc.GC2))
            steps.append((who, op, tc.pw(path, watch), f"read op={op} {path} watch={watch}"))
        elif r < 0.80:
            subs = [_write_subop(rng, PATHS, DATA) for _ in range(rng.randint(1, 4))]
            steps.append((who, rawzk.MULTI, tc.multi(*subs), f"multi {[op for op, _ in subs]}"))
        elif r < 0.83:
            subs = [(rng.choice((tc.G, tc.GC)), rng.choice(PATHS)) for _ in range(rng.randint(1, 3))]
            w = W()
            for op, p in subs:
                w.int(op).bool(False).int(-1).string(p).bool(False)
            steps.append((who, rawzk.MULTI_READ, w.int(-1).bool(True).int(-1).bytes(), f"multiRead {subs}"))
        elif r < 0.87:
            v = rng.choice(VERSIONS)
            acl = rng.choice(ACLS)
            steps.append((who, rawzk.SET_ACL, W().string(path).acls(acl).int(v).bytes(),
                          f"setACL {path} {acl} v={v}"))
        elif r < 0.89:
            steps.append((who, rawzk.GET_ACL, W().string(path).bytes(), f"getACL {path}"))
        elif r < 0.905:
            steps.append((who, rawzk.GET_ALL_CHILDREN_NUMBER, W().string(path).bytes(),
                          f"getAllChildrenNumber {path}"))
        elif r < 0.915:
            prefix = rng.choice(("/", "/r", "/r/e", "/q", None))
            steps.append((who, rawzk.GET_EPHEMERALS, W().string(prefix).bytes(), f"getEphemerals {prefix}"))
        elif r < 0.92:
            steps.append((who, rawzk.WHO_AM_I, b"", "whoAmI"))
        elif r < 0.935:
            path = rng.choice([p for p in PATHS if p not in OWN_WATCHES])
            mode = PATHS.index(path) % 2  # persistent or recursive, but always the same on one path
            who = "c" if generation["c"] == 0 else f"c{generation['c']}"
            steps.append((who, rawzk.ADD_WATCH, W().string(path).int(mode).bytes(), f"addWatch {path} {mode}"))
        elif r < 0.96:
            op = rng.choice((rawzk.CHECK_WATCHES, rawzk.REMOVE_WATCHES))
            wtype = rng.choice((1, 2, 3))  # children, data, any (3.8 has no types 4 and 5)
            who = "a" if generation["a"] == 0 else f"a{generation['a']}"
            path = rng.choice(OWN_WATCHES)
            steps.append((who, op, W().string(path).int(wtype).bytes(), f"watches op={op} {path} type={wtype}"))
        elif r < 0.97:
            steps.append((who, tc.SY, W().string(path).bytes(), f"sync {path}"))
        elif r < 0.975:
            # drop the connection and come back to the same session, re-registering some watches (as
            # the one-shot ones a client still holds would be; persistent ones only from "c")
            plain = [p for p in PATHS if p not in OWN_WATCHES]
            pick = lambda: rng.sample(plain, rng.randint(0, 3))  # noqa: E731
            if who[0] == "c":
                pers = pick()
                lists = dict(persistent=[p for p in pers if PATHS.index(p) % 2 == 0],
                             recursive=[p for p in pers if PATHS.index(p) % 2 == 1])
            else:
                lists = dict(data=pick(), exist=pick(), child=pick())
            steps.append((who, tc.RECONNECT, tc.reconnect_body(**lists), f"reconnect, setWatches {lists}"))
        elif r < 0.98:
            who = "b" if generation["b"] == 0 else f"b{generation['b']}"
            body = W().int(0).string("digest").buffer(b"bob:secret").bytes()
            steps.append((who, rawzk.AUTH, body, "addAuth digest bob"))
        else:
            steps.append((who, rawzk.CLOSE_SESSION, b"", "closeSession"))
            base = who[0]
            generation[base] += 1
    return steps


def batches(steps, seed: int, most: int = 6) -> list[tuple[str, list[tuple[int, bytes]]]]:
    """Consecutive steps of one client grouped into pipelined batches of 1..``most`` requests; a
    closeSession ends its batch (the server closes the connection after answering it), and so does a
    setACL (ZooKeeper judges requests pipelined behind it by the old ACL until it commits, so its answer
    depends on timing; coordcore uses the new one). An auth packet goes alone: ZooKeeper answers it at
    once, ahead of replies still pending, where coordcore keeps the session's replies in order (see the
    README)."""
    rng = random.Random(seed * 7919)
    out: list[tuple[str, list[tuple[int, bytes]]]] = []
    limit = 0
    for who, op, body, _ in steps:
        prev = out[-1][1][-1][0] if out else None
        alone = (rawzk.AUTH, tc.RECONNECT)
        if (out and out[-1][0] == who and len(out[-1][1]) < limit and op not in alone
                and prev not in (rawzk.CLOSE_SESSION, rawzk.SET_ACL, *alone)):
            out[-1][1].append((op, body))
        else:
            out.append((who, [(op, body)]))
            limit = rng.randint(1, most)
    return out


def server_config(seed: int) -> dict:
    """Odd seeds run with TTL nodes enabled; even ones see CREATE_TTL refused."""
    return {"extendedTypesEnabled": "true"} if seed % 2 else {}


def test_generator_is_seeded_and_varied():
    """A seed always gives the same steps, different seeds different ones, and the mix reaches every
    kind of request (so a change to the generator cannot quietly stop testing something)."""
    assert random_steps(3) == random_steps(3)
    assert random_steps(3) != random_steps(4)
    ops = {op for seed in SEEDS for _, op, _, _ in random_steps(seed)}
    assert {tc.C, rawzk.CREATE2, rawzk.CREATE_CONTAINER, tc.D, tc.S, tc.G, tc.E, tc.GC, tc.GC2, rawzk.MULTI,
            rawzk.MULTI_READ, rawzk.CREATE_TTL, rawzk.SET_ACL, rawzk.GET_ACL, rawzk.GET_ALL_CHILDREN_NUMBER,
            rawzk.ADD_WATCH, rawzk.CHECK_WATCHES, rawzk.REMOVE_WATCHES, tc.SY, rawzk.CLOSE_SESSION, rawzk.AUTH,
            tc.RECONNECT, rawzk.GET_EPHEMERALS, rawzk.WHO_AM_I} <= ops


@pytest.mark.parametrize("seed", SEEDS, ids=lambda s: f"seed_{s}")
def test_random_trace_matches_zookeeper(seed):
    steps = random_steps(seed)
    _compare(seed, steps, server_config(seed))


def _compare(seed: int, steps, config: dict) -> None:
    """Run ``steps`` one request at a time on both servers; fail with the diff and the steps if the
    traces differ."""
    if not zookeeper_available():
        pytest.fail("Apache ZooKeeper is not installed (apt-get install zookeeper); differential tests need it")
    plain = [(who, op, body) for who, op, body, _ in steps]
    expected = tc.run("zookeeper", plain, config)
    actual = tc.run("coordcore", plain, config)
    if expected != actual:
        diff = "\n".join(list(difflib.unified_diff(expected, actual, "zookeeper", "coordcore", lineterm=""))[:60])
        listing = "\n".join(f"{i:3d} {who}: {text}" for i, (who, _, _, text) in enumerate(steps))
        pytest.fail(f"seed {seed}: coordcore's trace differs from ZooKeeper's\n{diff}\nsteps:\n{listing}")


PIPELINED_SEEDS = range(100, 106)


@pytest.mark.parametrize("seed", PIPELINED_SEEDS, ids=lambda s: f"pipelined_seed_{s}")
def test_pipelined_random_trace_matches_zookeeper(seed):
    """The same, with each client sending up to six requests before reading the replies: every write
    is validated against the ones still in flight before it (parents being created, versions about
    to change, sequence counters, multis), and reads wait for the session's earlier writes."""
    if not zookeeper_available():
        pytest.fail("Apache ZooKeeper is not installed (apt-get install zookeeper); differential tests need it")
    steps = random_steps(seed, sticky=0.8)
    grouped = batches(steps, seed)
    assert max(len(reqs) for _, reqs in grouped) > 1
    config = server_config(seed)
    expected = tc.run_batches("zookeeper", grouped, config)
    actual = tc.run_batches("coordcore", grouped, config)
    if expected != actual:
        diff = "\n".join(list(difflib.unified_diff(expected, actual, "zookeeper", "coordcore", lineterm=""))[:60])
        listing, i = [], 0
        for who, reqs in grouped:
            listing.append(f"--- batch of {len(reqs)} from {who}")
            for _ in reqs:
                listing.append(f"{i:3d} {steps[i][3]}")
                i += 1
        pytest.fail(f"seed {seed}: coordcore's trace differs from ZooKeeper's\n{diff}\nsteps:\n" + "\n".join(listing))


# Quotas: /r and /r/a get quotas set up front, as zkCli's setquota does; then the random steps also
# write the quota nodes themselves (limits and stats, nested quotas, stats data a client overwrites,
# hard limits that enforceQuota turns into QUOTAEXCEEDED), and every getData of a stats node shows
# the server's counting.
QUOTA_PATHS = [*PATHS, "/zookeeper/quota/r", "/zookeeper/quota/r/zookeeper_limits",
               "/zookeeper/quota/r/zookeeper_stats", "/zookeeper/quota/r/zookeeper_stats",
               "/zookeeper/quota/r/a/zookeeper_limits", "/zookeeper/quota/r/a/zookeeper_stats"]
# Only data ZooKeeper can parse as quota stats: a limits or stats node holding anything else (even
# null) makes ZooKeeper 3.8 die on the next write below the quota ("Severe unrecoverable error");
# coordcore leaves such stats as they are (see test_protocol_quota).
QUOTA_DATA = [b"", b"count=0,bytes=0", b"count=3,bytes=-1", b"count=-1,bytes=-1=;byteHardLimit=6;countHardLimit=4",
              b"count=1;x=2,bytes=1", b"count=-1,bytes=4"]
QUOTA_SEEDS = range(200, 206)


def quota_prelude() -> list[tuple[str, int, bytes, str]]:
    steps = []
    for path, data in [("/r", b""), ("/zookeeper/quota/r", None),
                       ("/zookeeper/quota/r/zookeeper_limits", b"count=-1,bytes=-1=;byteHardLimit=8;countHardLimit=5"),
                       ("/zookeeper/quota/r/zookeeper_stats", b"count=0,bytes=0"),
                       ("/zookeeper/quota/r/a", None)]:
        steps.append(("a", tc.C, W().string(path).buffer(data).acls(rawzk.OPEN_ACL).int(0).bytes(),
                      f"create {path} {data!r}"))
    return steps


@pytest.mark.parametrize("seed", QUOTA_SEEDS, ids=lambda s: f"quota_seed_{s}")
def test_random_trace_with_quotas_matches_zookeeper(seed):
    # ... and at the end, read both stats nodes (the server's counting shows in every trace)
    reads = [("z", tc.G, tc.pw(f"/zookeeper/quota{q}/zookeeper_stats", False), f"read stats of {q}")
             for q in ("/r", "/r/a")]
    steps = quota_prelude() + random_steps(seed, paths=QUOTA_PATHS, data=QUOTA_DATA) + reads
    _compare(seed, steps, {**server_config(seed), "enforceQuota": "true" if seed % 3 else "false"})
