"""ZooKeeper's StatsTrack format, as the quota code reads and writes it."""
from __future__ import annotations

import pytest

from coordcore.tree import quota as Q


@pytest.mark.parametrize("data, parsed", [
    (b"count=5,bytes=-1", {"count": 5, "bytes": -1}),
    (b"count=4,bytes=15=;byteHardLimit=10;countHardLimit=3",
     {"count": 4, "bytes": 15, "byteHardLimit": 10, "countHardLimit": 3}),
    (b"count=1;;,bytes=+2,,", {"count": 1, "bytes": 2}),     # runs of separators, a '+' sign
    (b"count==7", {"count": -1}),                             # an empty value reads as -1
    (b"count=1,count=2", {"count": 2}),                       # the last one wins
    (b"", {}),
])
def test_parse(data, parsed):
    assert Q.parse(data) == parsed


@pytest.mark.parametrize("data", [None, b"count", b"count=", b",count=1", b"count=x", b"count= 1",
                                  b"count=99999999999999999999"])
def test_parse_refuses_what_zookeeper_cannot_parse(data):
    assert Q.parse(data) is None


def test_render_puts_count_and_bytes_first_and_sorts_the_rest():
    assert Q.render({"bytes": 3, "count": 2}) == b"count=2,bytes=3"
    assert Q.render({"zeta": 1, "count": 2, "alpha": -1}) == b"count=2,bytes=-1=;alpha=-1;zeta=1"
    assert Q.parse(Q.render({"count": 2, "bytes": 3, "x": 4})) == {"count": 2, "bytes": 3, "x": 4}


def test_only_hard_limits_refuse():
    soft = {"count": 1, "bytes": 1}
    assert not Q.exceeds_hard_limit(soft, {"count": 5, "bytes": 5}, 10, 1)
    hard = {"count": -1, "bytes": -1, "countHardLimit": 3, "byteHardLimit": 10}
    assert Q.exceeds_hard_limit(hard, {"count": 3, "bytes": 0}, 0, 1)
    assert not Q.exceeds_hard_limit(hard, {"count": 2, "bytes": 0}, 0, 1)
    assert Q.exceeds_hard_limit(hard, {"count": 0, "bytes": 5}, 6, 0)
    assert not Q.exceeds_hard_limit(hard, {"count": 0, "bytes": 5}, 5, 0)
    # ZooKeeper compares the total after the write, so above the limit even a shrinking write fails
    assert Q.exceeds_hard_limit(hard, {"count": 9, "bytes": 99}, -1, 0)
    assert not Q.exceeds_hard_limit(hard, {"count": 9, "bytes": 99}, 0, 0)
