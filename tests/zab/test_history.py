"""The in-memory log window: gap-free appends, durable/committed/applied order, DIFF window, truncation."""
from __future__ import annotations

import pytest

from coordcore import zxid as zx
from coordcore.zab.history import History, follows

Z = zx.make


@pytest.mark.parametrize("prev, nxt, ok", [
    (Z(1, 1), Z(1, 2), True),
    (Z(1, 1), Z(1, 3), False),      # a hole inside an epoch (ZOOKEEPER-4925)
    (Z(1, 5), Z(2, 1), True),       # a new epoch starts at counter 1
    (Z(1, 5), Z(2, 2), False),      # ... never later
    (Z(2, 5), Z(1, 6), False),      # epochs never go back
    (0, Z(1, 1), True),
    (Z(3, 0), Z(3, 1), True),       # after an epoch marker / empty snapshot point
    (Z(1, 1), Z(1, 1), False),
])
def test_follows(prev, nxt, ok):
    assert follows(prev, nxt) is ok


def txns(epoch, a, b):
    return [(Z(epoch, c), b"t%d.%d" % (epoch, c)) for c in range(a, b + 1)]


def test_loaded_history_is_durable_but_not_committed():
    h = History(0, txns(1, 1, 3))
    assert (h.last_zxid, h.durable_zxid, h.committed_zxid, h.applied_zxid) == (Z(1, 3), Z(1, 3), 0, 0)
    assert h.take_applies(500) == []


def test_a_durable_log_with_a_hole_is_refused():
    with pytest.raises(ValueError):
        History(0, txns(1, 1, 2) + txns(1, 4, 5))


def test_applies_need_commit_and_durability():
    """ZOOKEEPER-4882: never apply what the disk does not have, nor what is not committed."""
    h = History(0, [])
    for z, t in txns(1, 1, 4):
        h.append(z, t)
    h.commit(Z(1, 3))
    assert h.take_applies(500) == []            # committed, nothing durable
    h.persisted(Z(1, 2))
    assert [z for z, _ in h.take_applies(500)] == [Z(1, 1), Z(1, 2)]
    h.persisted(Z(1, 4))
    assert [z for z, _ in h.take_applies(500)] == [Z(1, 3)]   # durable, but 1.4 is not committed
    assert h.applied_zxid == Z(1, 3)


def test_commit_beyond_the_log_is_refused():
    h = History(0, txns(1, 1, 2))
    with pytest.raises(ValueError):
        h.commit(Z(1, 3))


def test_window_queries():
    h = History(Z(1, 2), txns(1, 3, 5) + txns(3, 1, 2))
    assert h.contains(Z(1, 2)) and h.contains(Z(1, 4)) and h.contains(Z(3, 2))
    assert not h.contains(Z(1, 6)) and not h.contains(Z(1, 1)) and not h.contains(Z(2, 1))
    assert h.last_at_or_below(Z(2, 7)) == Z(1, 5)     # the last common point of a divergent tail
    assert h.last_at_or_below(Z(9, 9)) == Z(3, 2)
    assert h.last_at_or_below(Z(1, 1)) is None         # older than the window: SNAP
    assert [z for z, _ in h.after(Z(1, 4), Z(3, 1))] == [Z(1, 5), Z(3, 1)]


def test_truncate_keeps_the_common_prefix_and_never_cuts_committed_txns():
    h = History(0, txns(1, 1, 5))
    h.commit(Z(1, 2))
    h.truncate(Z(1, 3))
    assert h.last_zxid == Z(1, 3) and h.durable_zxid == Z(1, 3)
    with pytest.raises(ValueError):
        h.truncate(Z(1, 1))


def test_trim_keeps_the_last_applied_txns_and_everything_unapplied():
    h = History(0, [])
    for z, t in txns(1, 1, 300):
        h.append(z, t)
    h.persisted(Z(1, 300))
    h.commit(Z(1, 250))
    assert len(h.take_applies(keep=10)) == 250
    h.take_applies(keep=10)           # trims only what an earlier call handed out
    assert h.base_zxid == Z(1, 240) and h.contains(Z(1, 241)) and not h.contains(Z(1, 239))
    assert h.last_zxid == Z(1, 300)


def test_install_snapshot_replaces_everything():
    h = History(0, txns(1, 1, 5))
    h.install_snapshot(Z(2, 7))
    assert (h.base_zxid, h.last_zxid, h.committed_zxid, h.applied_zxid) == (Z(2, 7),) * 4
    h.append(Z(2, 8), b"next")
