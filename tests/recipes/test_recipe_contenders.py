"""Table tests for the pure contender logic (no server)."""

import random

import pytest

from recipes import contenders as c

U = "0123456789abcdef0123456789abcdef"


def lock(seq: int, tag: str = U) -> str:
    # ZooKeeper formats the signed counter with Java's %010d
    return f"{tag}__lock__{seq:010d}" if seq >= 0 else f"{tag}__lock__-{-seq:09d}"


@pytest.mark.parametrize(
    "name, markers, expected",
    [
        (lock(42), (c.LOCK_MARKER,), (U + "__lock__", 42)),
        (lock(0), (c.LOCK_MARKER,), (U + "__lock__", 0)),
        (lock(2147483647), (c.LOCK_MARKER,), (U + "__lock__", 2147483647)),
        (lock(-2147483648), (c.LOCK_MARKER,), (U + "__lock__", -2147483648)),
        (lock(-5), (c.LOCK_MARKER,), (U + "__lock__", -5)),
        (f"{U}_0000000007", (c.ELECTION_MARKER,), (U + "_", 7)),
        (f"{U}__rlock__0000000003", (c.LOCK_MARKER,), None),
        (f"{U}__rlock__0000000003", (c.LOCK_MARKER, "__rlock__"), (U + "__rlock__", 3)),
        ("occupant", (c.LOCK_MARKER,), None),
        (f"{U}__lock__", (c.LOCK_MARKER,), None),
        (f"{U}__lock__99999999999", (c.LOCK_MARKER,), None),  # 11 digits: not a ZooKeeper suffix
        (f"{U}__lock__abc", (c.LOCK_MARKER,), None),
    ],
)
def test_parse(name, markers, expected):
    got = c.parse(name, markers)
    if expected is None:
        assert got is None
    else:
        assert (got.prefix, got.sequence) == expected and got.name == name


@pytest.mark.parametrize(
    "a, b, before",
    [
        (1, 2, True),
        (2, 1, False),
        (5, 5, False),
        (2147483647, -2147483648, True),  # the wrap: MAX is issued before MIN
        (-2147483648, 2147483647, False),
        (2147483600, -2147483600, True),
        (-1, 0, True),
        (0, -1, False),
    ],
)
def test_seq_before(a, b, before):
    assert c.seq_before(a, b) is before


@pytest.mark.parametrize(
    "sequences, expected",
    [
        ([3, 1, 2], [1, 2, 3]),
        ([10, 9, 100], [9, 10, 100]),
        # straddling the signed 32-bit wrap: string order and integer order both get this wrong
        ([-2147483648, 2147483646, 2147483647, -2147483647], [2147483646, 2147483647, -2147483648, -2147483647]),
        ([-2147483647, 2147483647], [2147483647, -2147483647]),
        ([-1, 0, 1, -2], [-2, -1, 0, 1]),
        ([7], [7]),
        ([], []),
    ],
)
def test_order_wrap_aware(sequences, expected):
    names = [lock(s, tag=f"{i:032x}") for i, s in enumerate(sequences)]
    got = [c.parse(n).sequence for n in c.ordered_names(names + ["not-a-contender"])]
    assert got == expected


def test_string_order_would_be_wrong():
    names = [lock(2147483647), lock(-2147483648)]
    assert sorted(names)[0] == lock(-2147483648)  # the bug the wrap-aware order avoids
    assert c.ordered_names(names)[0] == lock(2147483647)


@pytest.mark.parametrize(
    "children, ours, present, holder, predecessor",
    [
        ([lock(1, "a" * 32)], lock(1, "a" * 32), True, True, None),
        ([lock(1, "a" * 32), lock(2, "b" * 32), lock(3, "c" * 32)], lock(3, "c" * 32), True, False, lock(2, "b" * 32)),
        ([lock(1, "a" * 32), lock(2, "b" * 32), lock(3, "c" * 32)], lock(2, "b" * 32), True, False, lock(1, "a" * 32)),
        ([lock(5, "a" * 32), lock(9, "c" * 32)], lock(9, "c" * 32), True, False, lock(5, "a" * 32)),
        ([lock(1, "a" * 32)], lock(2, "b" * 32), False, False, None),
        ([lock(2147483647, "a" * 32), lock(-2147483648, "b" * 32)], lock(-2147483648, "b" * 32), True, False,
         lock(2147483647, "a" * 32)),
        ([lock(2147483647, "a" * 32), lock(-2147483648, "b" * 32)], lock(2147483647, "a" * 32), True, True, None),
        # foreign children are ignored
        (["occupant", "x__rlock__0000000000", lock(4, "b" * 32)], lock(4, "b" * 32), True, True, None),
    ],
)
def test_decide(children, ours, present, holder, predecessor):
    d = c.decide(children, ours)
    assert (d.present, d.holder, d.predecessor) == (present, holder, predecessor)


def test_decide_multiple_holders():
    names = [lock(i, f"{i:032x}") for i in range(4)]
    assert c.decide(names, names[1], max_holders=2).holder
    d = c.decide(names, names[3], max_holders=2)
    assert not d.holder and d.predecessor == names[2]
    with pytest.raises(ValueError):
        c.decide(names, names[0], max_holders=0)


@pytest.mark.parametrize(
    "children, prefix, expected",
    [
        ([lock(3, "a" * 32), lock(4, "b" * 32)], "b" * 32 + "__lock__", lock(4, "b" * 32)),
        ([lock(3, "a" * 32)], "b" * 32 + "__lock__", None),
        ([lock(-7, "b" * 32)], "b" * 32 + "__lock__", lock(-7, "b" * 32)),
    ],
)
def test_find_by_prefix(children, prefix, expected):
    assert c.find_by_prefix(children, prefix) == expected


@pytest.mark.parametrize("seed", range(5))
def test_fast_ordering_agrees_with_parse_and_order(seed):
    """ordered_names (the hot path, on tuples) orders exactly as parse() + order() do, wrap included."""
    rng = random.Random(seed)
    for _ in range(400):
        base = rng.choice([0, 2**31 - 5, -2**31, 2**31 - 1, -3, 1234])
        # not contenders: no sequence, 11 digits, 10 digits past the signed 32-bit range
        kids = ["not-a-contender", "x__lock__", "y__lock__12345678901", "z__lock__3000000000"]
        for _ in range(rng.randrange(0, 12)):
            seq = ((base + rng.randrange(0, 20) + 2**31) % 2**32) - 2**31
            marker = rng.choice(["__lock__", "__rlock__", "_", "x"])
            kids.append("%032x%s%s" % (rng.getrandbits(128), marker, "%010d" % seq))
        rng.shuffle(kids)
        # a marker ending in a digit takes the general (regex) path
        for markers in (("__lock__",), ("__lock__", "__rlock__"), ("_",), ("__lock__", "0")):
            parsed = [c for c in (c.parse(x, markers) for x in kids) if c is not None]
            assert c.ordered_names(kids, markers) == [c.name for c in c.order(parsed)]


@pytest.mark.parametrize("seed", range(5))
def test_still_ahead_agrees_with_a_fresh_ordering(seed):
    """A waiter re-checks from its last answer: it must agree with ordering the new listing afresh,
    as contenders leave in any order and newer ones (higher sequence, across the wrap) join."""
    rng = random.Random(seed)
    for _ in range(200):
        counter = rng.choice([0, 2**31 - 6, -2**31, 1234])

        def new_node() -> str:
            nonlocal counter
            name = lock(counter, "%032x" % rng.getrandbits(128))
            counter = counter + 1 if counter < 2**31 - 1 else -2**31
            return name

        kids = [new_node() for _ in range(rng.randrange(1, 10))]
        ours = rng.choice(kids)
        kids += [new_node() for _ in range(rng.randrange(0, 5))] + ["not-a-contender"]
        ahead = c.queue_ahead(kids, ours)
        assert ahead is not None
        while ahead is not None:
            kids = [k for k in kids if rng.random() < 0.7 or k == "not-a-contender"]
            kids += [new_node() for _ in range(rng.randrange(0, 3))]
            rng.shuffle(kids)
            ahead = c.still_ahead(ahead, kids, ours)
            assert ahead == c.queue_ahead(kids, ours)
            assert c.decision(ahead) == c.decide(kids, ours)
