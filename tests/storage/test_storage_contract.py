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


# ---------------------------------------------------------------- epochs (api.py obligations 4-5)


def z(epoch: int, counter: int) -> int:
    return Z.make(epoch, counter)


def test_epochs_round_trip_and_survive_reopen_and_crash(backend, reopen, crash):
    s = backend.open()
    s.load()
    s.set_accepted_epoch(3)
    s.set_current_epoch(2)
    s, state = reopen(s)
    assert (state.accepted_epoch, state.current_epoch) == (3, 2)
    s.set_current_epoch(3)
    s, state = crash(s)                 # durable on return: no sync, no close needed
    assert (state.accepted_epoch, state.current_epoch) == (3, 3)


def test_epochs_only_grow(backend, reopen):
    s = backend.open()
    s.load()
    s.set_accepted_epoch(5)
    s.set_current_epoch(4)
    with pytest.raises(StorageError, match="acceptedEpoch only grows: 4 is below 5"):
        s.set_accepted_epoch(4)
    with pytest.raises(StorageError, match="currentEpoch only grows: 3 is below 4"):
        s.set_current_epoch(3)
    with pytest.raises(StorageError, match="would exceed acceptedEpoch 5"):
        s.set_current_epoch(6)
    s.set_accepted_epoch(5)             # setting the same value again is not lowering it
    s, state = reopen(s)
    assert (state.accepted_epoch, state.current_epoch) == (5, 4)


@pytest.mark.parametrize("bad", [-1, 1 << 32, 1.0, "2"])
def test_epoch_outside_a_zxid_epoch_field_is_refused(backend, bad):
    s = backend.open()
    s.load()
    with pytest.raises(StorageError, match="epoch"):
        s.set_accepted_epoch(bad)


def test_current_epoch_below_the_epoch_of_the_last_zxid_is_refused(backend, reopen):
    s = backend.open()
    s.load()
    s.set_accepted_epoch(2)
    s.append(z(2, 1), b"pending, not synced")
    with pytest.raises(StorageError, match=r"currentEpoch 1 is below epoch 2 of the last appended zxid 0x200000001"):
        s.set_current_epoch(1)
    s.set_current_epoch(2)
    s, state = reopen(s)
    assert (state.accepted_epoch, state.current_epoch, state.last_zxid) == (2, 2, z(2, 1))


@pytest.mark.parametrize("setter", ["set_accepted_epoch", "set_current_epoch"])
def test_an_epoch_write_first_makes_earlier_appends_durable(backend, crash, setter):
    """History durable, then currentEpoch (ZAB 6.2 step 3): the storage keeps that order itself."""
    s = backend.open()
    s.load()
    s.set_accepted_epoch(1)
    s.append(z(1, 1), b"a")
    s.append(z(1, 2), b"b")
    getattr(s, setter)(1)
    s, state = crash(s)
    assert state.txns == [(z(1, 1), b"a"), (z(1, 2), b"b")]


def test_standalone_history_in_epoch_0_loads_with_epochs_0(backend, reopen):
    s = backend.open()
    s.load()
    for n in range(1, 6):
        s.append(n, txn(n))
    s.sync()
    s.save_snapshot(3, b"tree@3")
    s, state = reopen(s)
    assert (state.accepted_epoch, state.current_epoch, state.last_zxid) == (0, 0, 5)


def test_missing_epochs_are_initialised_from_the_last_zxid_and_kept(backend, reopen):
    """ZooKeeper's upgrade path: a history in epoch 3 with no epoch stored starts as (3, 3) -- and
    stays so once stored, even when a later truncate removes every epoch-3 txn."""
    s = backend.open()
    s.load()
    s.append(z(2, 1), b"x")
    s.append(z(3, 1), b"y")
    s.sync()
    s, state = reopen(s)
    assert (state.accepted_epoch, state.current_epoch) == (3, 3)
    s.truncate(z(2, 1))
    s, state = reopen(s)
    assert (state.accepted_epoch, state.current_epoch, state.last_zxid) == (3, 3, z(2, 1))


def test_load_refuses_accepted_epoch_below_current_epoch(backend):
    s = backend.open()
    s.load()
    s.close()
    backend.force_epochs(accepted=1, current=2)
    s = backend.open()
    with pytest.raises(StorageError, match="acceptedEpoch 1 is less than currentEpoch 2"):
        s.load()
    with pytest.raises(StorageError, match="load"):
        s.append(1, b"a refused load leaves the storage unusable")


def test_load_refuses_a_last_zxid_of_an_epoch_never_accepted(backend):
    s = backend.open()
    s.load()
    s.append(z(3, 7), b"x")
    s.close()
    backend.force_epochs(accepted=2, current=2)
    s = backend.open()
    with pytest.raises(StorageError, match=r"currentEpoch 2 is older than epoch 3 of the last logged zxid 0x300000007"):
        s.load()
    with pytest.raises(StorageError, match="load"):
        s.set_current_epoch(3)


def test_load_keeps_an_older_current_epoch_in_the_sync_window(backend):
    """currentEpoch < epoch(last zxid) <= acceptedEpoch: a learner died after making a new leader's sync
    history durable and before writing currentEpoch -- ZAB's own order (history first, ZOOKEEPER-4785).
    The server starts, still advertising the older epoch; adopting the new one is the NEWLEADER's job."""
    s = backend.open()
    s.load()
    s.append(z(3, 7), b"x")
    s.close()
    backend.force_epochs(accepted=3, current=2)
    s = backend.open()
    state = s.load()
    assert (state.accepted_epoch, state.current_epoch, state.last_zxid) == (3, 2, z(3, 7))
    s.set_current_epoch(3)  # the next NEWLEADER completes it
    s.close()
    assert backend.open().load().current_epoch == 3


def test_load_refuses_a_missing_accepted_epoch_below_current_epoch(backend):
    """A missing acceptedEpoch is initialised from the last zxid (as ZooKeeper does) and then checked."""
    s = backend.open()
    s.load()
    s.append(z(1, 1), b"x")
    s.close()
    backend.force_epochs(accepted=None, current=4)
    with pytest.raises(StorageError, match="acceptedEpoch 1 is less than currentEpoch 4"):
        backend.open().load()


# ---------------------------------------------------------------- truncate (obligation 6)


def fill(s, zxids, *, snapshot_at=()):
    for n in zxids:
        s.append(n, txn(n))
        s.sync()
        if n in snapshot_at:
            s.save_snapshot(n, b"tree@%d" % n)


def test_truncate_keeps_exactly_the_txns_up_to_zxid(backend, reopen):
    s = backend.open()
    s.load()
    fill(s, range(1, 11))
    s.truncate(6)
    with pytest.raises(StorageError, match="not above"):
        s.append(6, b"the cut point stays")
    s.append(7, b"new 7")                 # appends continue from the cut
    s.sync()
    s, state = reopen(s)
    assert state.txns == [(n, txn(n)) for n in range(1, 7)] + [(7, b"new 7")]


def test_truncate_is_durable_at_once(backend, crash):
    s = backend.open()
    s.load()
    fill(s, range(1, 11))
    s.truncate(4)
    s, state = crash(s)
    assert [n for n, _ in state.txns] == [1, 2, 3, 4]


def test_truncate_drops_pending_appends_above_zxid_and_keeps_those_below(backend, crash):
    s = backend.open()
    s.load()
    fill(s, range(1, 4))
    for n in range(4, 9):
        s.append(n, txn(n))               # not synced
    s.truncate(6)
    s, state = crash(s)
    assert [n for n, _ in state.txns] == [1, 2, 3, 4, 5, 6]


def test_truncate_across_epochs_and_segments(backend, reopen):
    """The leader's TRUNC goes to the last zxid it shares with us, maybe in an older epoch."""
    s = backend.open()
    s.load()
    s.set_accepted_epoch(4)
    s.set_current_epoch(4)
    history = [z(1, 1), z(1, 2), z(1, 3), z(2, 1), z(2, 2), z(3, 1), z(3, 2)]
    for part in (history[:2], history[2:5], history[5:]):   # a restart starts a new segment
        fill(s, part)
        s, _ = reopen(s)
    s.truncate(z(2, 1))
    s, state = reopen(s)
    assert [n for n, _ in state.txns] == history[:4]
    s.append(z(4, 1), b"next epoch")
    s.sync()
    s, state = reopen(s)
    assert [n for n, _ in state.txns] == history[:4] + [z(4, 1)]


def test_truncate_drops_every_snapshot_newer_than_zxid(backend, reopen, crash):
    s = backend.open()
    s.load()
    fill(s, range(1, 21), snapshot_at=(10, 14, 18))
    s.truncate(12)
    s, state = crash(s)
    assert (state.snapshot_zxid, state.snapshot) == (10, b"tree@10")
    assert [n for n, _ in state.txns] == [11, 12]
    s.append(13, b"new 13")
    s.sync()
    s, state = reopen(s)
    assert (state.snapshot_zxid, [n for n, _ in state.txns]) == (10, [11, 12, 13])
    assert state.txns[-1] == (13, b"new 13")


def test_truncate_to_a_snapshot_zxid_leaves_the_snapshot_alone(backend, reopen):
    s = backend.open()
    s.load()
    fill(s, range(1, 13), snapshot_at=(6, 9))
    s.truncate(9)
    s, state = reopen(s)
    assert (state.snapshot_zxid, state.txns, state.last_zxid) == (9, [], 9)


def test_truncate_without_snapshots_can_cut_everything(backend, reopen):
    s = backend.open()
    s.load()
    fill(s, range(1, 6))
    s.truncate(0)
    s, state = reopen(s)
    assert (state.txns, state.last_zxid) == ([], 0)
    s.append(1, b"again")
    s.sync()
    assert reopen(s)[1].txns == [(1, b"again")]


def test_truncate_at_or_above_the_last_zxid_changes_nothing(backend, reopen):
    s = backend.open()
    s.load()
    fill(s, range(1, 6), snapshot_at=(3,))
    s.truncate(5)
    s.truncate(100)
    s.append(6, txn(6))
    s.sync()
    s, state = reopen(s)
    assert (state.snapshot_zxid, [n for n, _ in state.txns]) == (3, [4, 5, 6])


def test_truncate_below_every_snapshot_needs_a_snap_and_changes_nothing(backend, reopen):
    """Snapshots at 8, 12, 16 are kept and the log up to 8 is purged: the state at 5 is gone."""
    s = backend.open()
    s.load()
    fill(s, range(1, 21), snapshot_at=(4, 8, 12, 16))
    s.append(21, txn(21))                 # pending: a refused truncate keeps it pending
    with pytest.raises(StorageError, match=r"cannot truncate to 0x5: every snapshot is newer.*needs a SNAP"):
        s.truncate(5)
    s.sync()
    s, state = reopen(s)
    assert (state.snapshot_zxid, [n for n, _ in state.txns]) == (16, [17, 18, 19, 20, 21])


# ---------------------------------------------------------------- install_snapshot (obligation 7)


def test_install_snapshot_replaces_a_divergent_history(backend, reopen):
    """A follower with an uncommitted tail above the leader's snapshot: after SNAP only the snapshot is left."""
    s = backend.open()
    s.load()
    s.set_accepted_epoch(2)
    s.set_current_epoch(1)
    fill(s, [z(1, n) for n in range(1, 9)], snapshot_at=(z(1, 3), z(1, 6)))
    s.append(z(1, 9), b"pending, divergent")
    s.install_snapshot(z(1, 4), b"leader@1:4")
    s.append(z(1, 5), b"from the leader")  # below the old last zxid: the old tail is gone
    s.sync()
    s, state = reopen(s)
    assert (state.snapshot_zxid, state.snapshot) == (z(1, 4), b"leader@1:4")
    assert state.txns == [(z(1, 5), b"from the leader")]
    assert (state.accepted_epoch, state.current_epoch) == (2, 1)   # ZAB, not storage, moves the epochs


def test_install_snapshot_is_durable_at_once_with_no_txns(backend, crash):
    s = backend.open()
    s.load()
    fill(s, range(1, 10), snapshot_at=(5,))
    s.install_snapshot(20, b"leader@20")
    s, state = crash(s)
    assert (state.snapshot_zxid, state.snapshot, state.txns, state.last_zxid) == (20, b"leader@20", [], 20)
    with pytest.raises(StorageError, match="not above"):
        s.append(20, b"x")


def test_install_snapshot_leaves_no_older_snapshot_to_fall_back_to(backend, reopen):
    """An older snapshot of the divergent history must not survive: truncating to it is refused."""
    s = backend.open()
    s.load()
    fill(s, range(1, 10), snapshot_at=(3, 6))
    s.install_snapshot(5, b"leader@5")
    with pytest.raises(StorageError, match="needs a SNAP"):
        s.truncate(3)
    s, state = reopen(s)
    assert (state.snapshot_zxid, state.txns) == (5, [])


def test_install_then_truncate_to_the_snapshot_and_grow_again(backend, reopen):
    s = backend.open()
    s.load()
    s.install_snapshot(z(1, 10), b"leader")
    fill(s, [z(1, 11), z(1, 12)])
    s.truncate(z(1, 10))
    fill(s, [z(2, 1)])
    s, state = reopen(s)
    assert (state.snapshot_zxid, [n for n, _ in state.txns]) == (z(1, 10), [z(2, 1)])


# ---------------------------------------------------------------- misuse (obligation 8)


CALLS = {
    "append": lambda s: s.append(1, b"x"),
    "save_snapshot": lambda s: s.save_snapshot(1, b"x"),
    "set_accepted_epoch": lambda s: s.set_accepted_epoch(1),
    "set_current_epoch": lambda s: s.set_current_epoch(0),
    "truncate": lambda s: s.truncate(0),
    "install_snapshot": lambda s: s.install_snapshot(1, b"x"),
}


@pytest.mark.parametrize("call", sorted(CALLS))
def test_every_operation_before_load_is_a_storage_error(backend, call):
    with pytest.raises(StorageError, match="load"):
        CALLS[call](backend.open())


@pytest.mark.parametrize("call", sorted(CALLS))
def test_every_operation_after_close_is_a_storage_error(backend, call):
    s = backend.open()
    s.load()
    s.close()
    with pytest.raises(StorageError):
        CALLS[call](s)
