"""SessionTracker: deadlines on tick boundaries, expiry marks closing once, touches extend."""
from __future__ import annotations

import pytest

from coordcore.node.sessions import SessionTracker

TICK = 2000


@pytest.mark.parametrize("now, timeout, deadline", [
    (0, 10000, 12000),       # exactly on a tick: still the *next* tick (ZooKeeper's ExpiryQueue)
    (1, 10000, 12000),
    (1999, 10000, 12000),
    (2000, 10000, 14000),
    (500, 4000, 6000),
    (10_001, 1, 12000),
])
def test_deadline_rounded_up_to_the_next_tick(now, timeout, deadline):
    t = SessionTracker(TICK, 0, now)
    s = t.add(1, timeout, b"pw", now)
    assert s.expires_ms == deadline
    assert s.expires_ms % TICK == 0 and s.expires_ms > now + timeout - 1


def test_expired_marks_closing_once():
    t = SessionTracker(TICK, 0, 0)
    t.add(1, 4000, b"", 0)     # expires at 6000
    t.add(2, 10000, b"", 0)    # expires at 12000
    assert t.expired(5999) == []
    assert t.expired(6000) == [1]
    assert t.get(1).closing
    assert t.expired(7000) == []          # already closing: not reported again
    assert t.expired(12000) == [2]
    assert t.get(1) is not None           # the tracker keeps it until the closeSession txn removes it


def test_touch_extends_the_deadline():
    t = SessionTracker(TICK, 0, 0)
    t.add(1, 4000, b"", 0)
    assert t.touch(1, 5000) is True
    assert t.get(1).expires_ms == 10000
    assert t.expired(6000) == []
    assert t.expired(10000) == [1]


def test_touch_with_new_timeout():
    t = SessionTracker(TICK, 0, 0)
    t.add(1, 4000, b"", 0)
    assert t.touch(1, 1000, timeout_ms=20000)
    assert (t.get(1).timeout_ms, t.get(1).expires_ms) == (20000, 22000)


def test_touch_of_closing_or_unknown_session_fails():
    t = SessionTracker(TICK, 0, 0)
    t.add(1, 4000, b"", 0)
    assert t.expired(6000) == [1]
    assert t.touch(1, 6000) is False
    assert t.get(1).expires_ms == 6000
    assert t.touch(99, 0) is False


def test_remove():
    t = SessionTracker(TICK, 0, 0)
    t.add(1, 4000, b"", 0)
    t.remove(1)
    t.remove(1)
    assert t.get(1) is None
    assert t.expired(10**9) == []


def test_refresh_all_gives_every_session_a_full_timeout():
    t = SessionTracker(TICK, 0, 0)
    t.add(1, 4000, b"", 0)
    t.add(2, 30000, b"", 0)
    t.refresh_all(100_000)
    assert (t.get(1).expires_ms, t.get(2).expires_ms) == (106_000, 132_000)
    assert t.expired(105_999) == []


def test_session_ids_are_unique_and_carry_the_server_id():
    t = SessionTracker(TICK, 5, 1_700_000_000_000)
    ids = [t.allocate_id() for _ in range(100)]
    assert len(set(ids)) == 100
    assert all(i >> 56 == 5 for i in ids)
    assert all(0 < i < 2**63 for i in ids)
    other = SessionTracker(TICK, 6, 1_700_000_000_000)
    assert not set(ids) & {other.allocate_id() for _ in range(100)}


def test_session_ids_differ_across_restarts():
    a = SessionTracker(TICK, 1, 1_700_000_000_000).allocate_id()
    b = SessionTracker(TICK, 1, 1_700_000_001_000).allocate_id()
    assert a != b
