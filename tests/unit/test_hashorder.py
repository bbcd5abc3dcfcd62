"""The order of a closing session's deletions and of getEphemerals: ZooKeeper's Java hash-set order.

The end-to-end comparison with ZooKeeper is in tests/integration/test_sessions.py; these pin the
pieces against values Java itself gives."""
from __future__ import annotations

import random

from coordcore.tree.hashorder import hash_set_order, java_string_hash


def test_java_string_hash_matches_java():
    # values of String.hashCode() as Java computes them (two's complement shown as unsigned)
    assert java_string_hash("") == 0
    assert java_string_hash("hello") == 99162322
    assert java_string_hash("Aa") == java_string_hash("BB") == 2112  # Java's classic collision
    assert java_string_hash("polygenelubricants") == (-2147483648) & 0xFFFFFFFF
    # outside the BMP a character is two UTF-16 units: U+1F600 is D83D DE00
    assert java_string_hash("\U0001F600") == (31 * 0xD83D + 0xDE00)


def test_order_seen_from_zookeeper():
    # a closing session's three ephemerals, in the order ZooKeeper 3.8 deleted them
    paths = [("/r/a/x-0000000001", 5), ("/r/a0000000002", 6), ("/r/e/k", 7)]
    assert hash_set_order(paths) == ["/r/a0000000002", "/r/e/k", "/r/a/x-0000000001"]


def test_same_bucket_keeps_creation_order_and_in_flight_ones_come_last():
    # "Aa" and "BB" share every bucket: the one created first comes first
    assert hash_set_order([("BB", 9), ("Aa", 3)]) == ["Aa", "BB"]
    assert hash_set_order([("Aa", 9), ("BB", 3)]) == ["BB", "Aa"]
    # an ephemeral still in flight is added to the copy after the committed ones
    assert hash_set_order([("BB", 9)], [("Aa", 1)]) == ["BB", "Aa"]


def test_order_is_a_permutation_and_does_not_depend_on_input_order():
    rng = random.Random(7)
    for n in (0, 1, 2, 5, 12, 13, 40, 200):
        entries = [(f"/s/{rng.getrandbits(40):x}", i) for i in range(n)]
        shuffled = entries[:]
        rng.shuffle(shuffled)
        out = hash_set_order(entries)
        assert sorted(out) == sorted(p for p, _ in entries)
        assert hash_set_order(shuffled) == out


def test_ids_in_the_order_zookeeper_lists_them():
    # a connection from 127.0.0.1 that authenticated as bob, dave, alice, erin (password "pw"), in that
    # order: ZooKeeper 3.8's whoAmI listed them like this
    from coordcore.node.acl import AuthInfo, digest_id

    auth = AuthInfo("127.0.0.1")
    for user in ("bob", "dave", "alice", "erin"):
        auth.add("digest", digest_id(user + ":pw"))
    assert [(s, i.split(":")[0]) for s, i in auth.ordered()] == [
        ("digest", "bob"), ("digest", "erin"), ("digest", "dave"), ("ip", "127.0.0.1"), ("digest", "alice")]
    assert auth.ids[0] == ("ip", "127.0.0.1")  # kept in the order added; only listing reorders
