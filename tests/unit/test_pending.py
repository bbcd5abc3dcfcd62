"""The pending tree: prep decides exactly as if every earlier write were already committed.

A seeded random workload (creates of every mode, deletes, setData/setACL with
right and wrong versions, checks, multis that succeed and fail, session
closes) is prepared twice: once committing each txn at once, once with the
commits lagging a random number of txns behind.  Both runs must decide the
same txn bodies and end with the same tree, and the second leaves no change
record behind.
"""
from __future__ import annotations

import random

import pytest

from coordcore.tree import txn as T
from coordcore.wire import proto as P
from nodeharness import OPEN, Harness, pending_state, tree_state

READ_ONLY = [(1, "world", "anyone")]
PATHS = ["/a", "/a/b", "/a/b/c", "/a/d", "/e", "/e/f", "/s", "/s/x"]


def _random_op(rng: random.Random, depth: int = 0):
    path = rng.choice(PATHS)
    version = rng.choice([-1, -1, 0, 1, 2])
    kind = rng.randrange(7 if depth == 0 else 6)
    if kind == 0:
        flags = rng.choice([0, 0, 1, 2, 3, 4])
        return P.CREATE, P.Create(path, b"d", list(OPEN), flags)
    if kind == 1:
        return P.DELETE, P.PathVersion(path, version)
    if kind == 2:
        return P.SET_DATA, P.SetData(path, bytes([rng.randrange(256)]), version)
    if kind == 3:
        return P.SET_ACL, P.SetACL(path, list(rng.choice([OPEN, READ_ONLY])), rng.choice([-1, 0, 1]))
    if kind == 4:
        return P.CHECK, P.PathVersion(path, version)
    if kind == 5:
        return P.CREATE2, P.Create(path, b"", list(OPEN), rng.choice([0, 1]))
    return P.MULTI, P.Multi([_random_op(rng, depth + 1) for _ in range(rng.randrange(1, 5))])


def _script(seed: int, steps: int = 400):
    rng = random.Random(seed)
    out = []
    for _ in range(steps):
        r = rng.random()
        if r < 0.04:
            out.append(("close", rng.randrange(3)))
        else:
            out.append(("op", rng.randrange(3), _random_op(rng)))
    return out


def _run(seed: int, lag_rng: random.Random | None):
    """Prepare the script; commit at once (lag_rng None) or keep a random backlog."""
    h = Harness()
    sessions = [h.open_session() for _ in range(3)]
    backlog, decided = [], []
    for step in _script(seed):
        if step[0] == "close":
            txn = h.proposer.prep_close_session(sessions[step[1]], h.now)
        else:
            _, who, (op, req) = step
            txn = h.prep(op, req, session_id=sessions[who])
        decided.append((txn.zxid, txn.type, repr(txn.body)))
        backlog.append(txn)
        keep = 0 if lag_rng is None else lag_rng.randrange(0, 12)
        while len(backlog) > keep:
            h.commit(backlog.pop(0))
        h.now += 1
    for txn in backlog:
        h.commit(txn)
    return h, decided


@pytest.mark.parametrize("seed", range(12))
def test_prep_decides_the_same_whatever_the_commit_lag(seed):
    serial, want = _run(seed, None)
    lagged, got = _run(seed, random.Random(seed * 7919 + 1))
    assert got == want
    assert tree_state(lagged.node.committed) == tree_state(serial.node.committed)
    assert pending_state(lagged.proposer) == {}
    # the workload really exercised both outcomes
    types = {t for _, t, _ in want}
    assert T.T_ERROR in types and T.T_CREATE in types and T.T_MULTI in types


def test_change_records_are_dropped_as_their_txns_commit():
    h = Harness()
    h.create("/p")
    t1 = h.prep(P.SET_DATA, P.SetData("/p", b"1", -1))
    t2 = h.prep(P.CREATE, P.Create("/p/c", b"", list(OPEN), 0))
    assert set(h.proposer.pending.changes) == {"/p", "/p/c"}
    h.commit(t1)
    # /p was changed again by t2, so its record stays until t2 commits
    assert set(h.proposer.pending.changes) == {"/p", "/p/c"}
    assert h.proposer.pending.get("/p").version == 1
    h.commit(t2)
    assert h.proposer.pending.changes == {}
