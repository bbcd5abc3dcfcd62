"""MemoryStorage specifics: crash() models losing everything not yet synced."""
from __future__ import annotations

import pytest

from coordcore.storage.api import StorageError
from coordcore.storage.memory import MemoryStorage


def test_crash_drops_unsynced_appends_only():
    s = MemoryStorage()
    s.load()
    s.append(1, b"a")
    s.append(2, b"b")
    s.sync()
    s.append(3, b"lost")
    s.append(4, b"lost too")
    s.crash()
    state = s.load()
    assert state.txns == [(1, b"a"), (2, b"b")]
    s.append(3, b"again")      # the restarted server may reuse the lost zxids
    s.sync()
    assert s.load().txns[-1] == (3, b"again")


def test_crash_requires_load_before_appending():
    s = MemoryStorage()
    s.load()
    s.crash()
    with pytest.raises(StorageError, match="load"):
        s.append(1, b"x")


def test_crash_keeps_snapshots():
    s = MemoryStorage()
    s.load()
    s.append(1, b"a")
    s.save_snapshot(1, b"tree@1")
    s.append(2, b"lost")
    s.crash()
    state = s.load()
    assert (state.snapshot_zxid, state.snapshot, state.txns) == (1, b"tree@1", [])


def test_covered_txns_are_purged_after_three_snapshots():
    s = MemoryStorage()
    s.load()
    for z in range(1, 10):
        s.append(z, b"t")
        s.sync()
        if z % 2 == 0:
            s.save_snapshot(z, b"s%d" % z)
    assert s.durable_zxids == [5, 6, 7, 8, 9]   # snapshots 4, 6, 8 kept; 4 is the oldest



def test_truncate_and_install_are_visible_to_the_simulator_at_once():
    s = MemoryStorage()
    s.load()
    for z in range(1, 10):
        s.append(z, b"t")
    s.sync()
    s.save_snapshot(4, b"s4")
    s.save_snapshot(7, b"s7")
    s.truncate(5)
    assert (s.durable_zxids, s.snapshot_zxids) == ([5], [4])   # 1..4 were purged into snapshot 4
    s.install_snapshot(3, b"leader@3")
    assert (s.durable_zxids, s.snapshot_zxids, s.pending_count) == ([], [3], 0)
