"""Behaviour every Storage must share (DiskStorage and MemoryStorage)."""
from __future__ import annotations

import threading

import pytest

from coordcore import zxid as Z
from coordcore.storage.api import StorageError


def txn(zxid: int) -> bytes:
    return b"txn-%d-" % zxid + bytes([zxid % 251]) * 90


def test_fresh_store_loads_empty(backend):
    state = backend.open().load()
    assert (state.snapshot_zxid, state.snapshot, state.txns, state.last_zxid) == (0, None, [], 0)
    assert (state.accepted_epoch, state.current_epoch) == (0, 0)


def test_round_trip(backend, reopen):
    s = backend.open()
    s.load()
    for z in (1, 2, 7, 0x100000001):
        s.append(z, txn(z))
    s.sync()
    s, state = reopen(s)
    assert state.txns == [(z, txn(z)) for z in (1, 2, 7, 0x100000001)]
    assert state.last_zxid == 0x100000001
    assert state.truncated_bytes == 0


def test_many_appends_then_one_sync(backend, reopen):
    s = backend.open()
    s.load()
    for z in range(1, 1001):
        s.append(z, txn(z))
    s.sync()
    s, state = reopen(s)
    assert [z for z, _ in state.txns] == list(range(1, 1001))
    assert state.txns[500] == (501, txn(501))


def test_appends_continue_after_reopen(backend, reopen):
    s = backend.open()
    s.load()
    s.append(1, b"a")
    s.sync()
    s, _ = reopen(s)
    s.append(2, b"b")
    s.sync()
    s, state = reopen(s)
    assert state.txns == [(1, b"a"), (2, b"b")]


def test_empty_payload_is_a_txn(backend, reopen):
    s = backend.open()
    s.load()
    s.append(1, b"")
    s.sync()
    _, state = reopen(s)
    assert state.txns == [(1, b"")]


def test_append_before_load_is_refused(backend):
    with pytest.raises(StorageError, match="load"):
        backend.open().append(1, b"x")


def test_zxids_must_increase(backend, reopen):
    s = backend.open()
    s.load()
    s.append(5, b"x")
    with pytest.raises(StorageError, match="not above"):
        s.append(5, b"y")
    with pytest.raises(StorageError, match="not above"):
        s.append(4, b"y")
    s.sync()
    s, _ = reopen(s)
    with pytest.raises(StorageError, match="not above"):
        s.append(3, b"after restart, still below the log")


def test_close_writes_pending_appends(backend, reopen):
    s = backend.open()
    s.load()
    s.append(1, b"x")
    _, state = reopen(s)
    assert state.txns == [(1, b"x")]


def test_snapshot_then_later_txns(backend, reopen):
    s = backend.open()
    s.load()
    for z in range(1, 11):
        s.append(z, txn(z))
    s.sync()
    s.save_snapshot(10, b"tree@10")
    for z in range(11, 16):
        s.append(z, txn(z))
    s.sync()
    s, state = reopen(s)
    assert (state.snapshot_zxid, state.snapshot) == (10, b"tree@10")
    assert state.txns == [(z, txn(z)) for z in range(11, 16)]
    assert state.last_zxid == 15


def test_snapshot_of_unsynced_txns_keeps_later_appends(backend, reopen):
    """A snapshot taken while txns at and after its zxid are still pending loses none."""
    s = backend.open()
    s.load()
    for z in range(1, 6):
        s.append(z, txn(z))
    s.save_snapshot(3, b"tree@3")
    s.sync()
    s, state = reopen(s)
    assert state.snapshot_zxid == 3
    assert [z for z, _ in state.txns] == [4, 5]


def test_snapshot_ahead_of_log_raises_the_floor(backend, reopen):
    """A snapshot received from a leader (beyond our log) sets where appends resume."""
    s = backend.open()
    s.load()
    s.save_snapshot(100, b"tree@100")
    with pytest.raises(StorageError):
        s.append(50, b"below the snapshot")
    s.append(101, b"ok")
    s.sync()
    s, state = reopen(s)
    assert (state.snapshot_zxid, state.txns, state.last_zxid) == (100, [(101, b"ok")], 101)


def test_newest_snapshot_wins_and_three_are_kept(backend, reopen):
    s = backend.open()
    s.load()
    for z in range(1, 21):
        s.append(z, txn(z))
        s.sync()
        if z % 4 == 0:
            s.save_snapshot(z, b"tree@%d" % z)
    s, state = reopen(s)
    assert (state.snapshot_zxid, state.snapshot) == (20, b"tree@20")
    assert state.txns == []


def test_append_and_sync_on_different_threads(backend, reopen):
    """The runtime appends on its loop thread while a worker syncs: nothing is lost."""
    s = backend.open()
    s.load()
    total = 5000
    done = threading.Event()

    def syncer():
        while not done.is_set():
            s.sync()

    worker = threading.Thread(target=syncer)
    worker.start()
    try:
        for z in range(1, total + 1):
            s.append(z, txn(z))
    finally:
        done.set()
        worker.join(timeout=30)
    assert not worker.is_alive()
    s.sync()
    s, state = reopen(s)
    assert [z for z, _ in state.txns] == list(range(1, total + 1))


def test_snapshot_on_worker_while_appending(backend, reopen):
    s = backend.open()
    s.load()
    errors = []

    def snapshotter():
        try:
            for k in range(1, 6):
                s.save_snapshot(k, b"early-%d" % k)
        except Exception as e:  # surfaced by the assert below
            errors.append(e)

    for z in range(1, 6):
        s.append(z, txn(z))
    s.sync()
    worker = threading.Thread(target=snapshotter)
    worker.start()
    for z in range(6, 3006):
        s.append(z, txn(z))
        if z % 100 == 0:
            s.sync()
    worker.join(timeout=30)
    assert not worker.is_alive() and errors == []
    s.sync()
    s, state = reopen(s)
    assert state.snapshot_zxid == 5
    assert [z for z, _ in state.txns] == list(range(6, 3006))


def test_append_copies_the_caller_buffer(backend, reopen):
    s = backend.open()
    s.load()
    buf = bytearray(b"abc")
    s.append(1, buf)
    buf[0] = ord("X")
    s.sync()
    _, state = reopen(s)
    assert state.txns == [(1, b"abc")]
