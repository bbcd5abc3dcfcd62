"""DiskStorage's ensemble files: epoch files (I6 check and repair), truncate and install on disk.

The behaviour both backends share is in test_storage_contract.py; these tests look at the files.
"""
from __future__ import annotations

import os

import pytest

from coordcore import zxid as Z
from coordcore.storage import snapfiles, txnlog
from coordcore.storage.api import CorruptLogError, StorageError
from coordcore.storage.disk import SUBDIR, DiskStorage


def txn(zxid: int) -> bytes:
    return b"txn-%d-" % zxid + b"p" * 90


@pytest.fixture
def dirs(tmp_path):
    return str(tmp_path / "log"), str(tmp_path / "snap")


def snap_dir(dirs) -> str:
    return os.path.join(dirs[1], SUBDIR)


def log_dir(dirs) -> str:
    return os.path.join(dirs[0], SUBDIR)


def write(dirs, zxids, *, snapshot_at=(), epochs=None):
    """One server session: append and sync each zxid (a new segment per call), maybe snapshot."""
    with DiskStorage(*dirs) as s:
        s.load()
        if epochs is not None:
            s.set_accepted_epoch(epochs)
            s.set_current_epoch(epochs)
        for n in zxids:
            s.append(n, txn(n))
            s.sync()
            if n in snapshot_at:
                s.save_snapshot(n, b"tree@%d" % n)


def load(dirs):
    with DiskStorage(*dirs) as s:
        return s.load()


def put(dirs, name: str, content: bytes) -> None:
    with open(os.path.join(snap_dir(dirs), name), "wb") as f:
        f.write(content)


def get(dirs, name: str) -> bytes | None:
    try:
        with open(os.path.join(snap_dir(dirs), name), "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


def names(directory: str) -> list[str]:
    return sorted(n for n in os.listdir(directory) if n != "LOCK")


def record_ends(path: str) -> list[int]:
    data = open(path, "rb").read()
    ends, off = [], txnlog.HEADER_SIZE
    while off + txnlog.RECORD_HEADER_SIZE <= len(data):
        length = int.from_bytes(data[off:off + 4], "big")
        if length == 0 and not any(data[off:off + txnlog.RECORD_HEADER_SIZE]):
            break                                       # preallocated zeros
        off += txnlog.RECORD_HEADER_SIZE + length
        ends.append(off)
    return ends


# ---------------------------------------------------------------- epoch files


def test_standalone_data_dir_gets_no_epoch_files(dirs):
    write(dirs, range(1, 6), snapshot_at=(3,))
    state = load(dirs)
    assert (state.accepted_epoch, state.current_epoch) == (0, 0)
    assert names(snap_dir(dirs)) == ["snapshot.3"]


def test_epoch_files_hold_decimal_text_and_no_temp_file_is_left(dirs):
    with DiskStorage(*dirs) as s:
        s.load()
        s.set_accepted_epoch(12)
        s.set_current_epoch(11)
    assert (get(dirs, "acceptedEpoch"), get(dirs, "currentEpoch")) == (b"12\n", b"11\n")
    assert names(snap_dir(dirs)) == ["acceptedEpoch", "currentEpoch"]


def test_zookeeper_style_epoch_files_without_a_newline_load(dirs):
    write(dirs, [Z.make(4, 1)], epochs=4)
    put(dirs, "acceptedEpoch", b"5")
    put(dirs, "currentEpoch", b"4")
    state = load(dirs)
    assert (state.accepted_epoch, state.current_epoch) == (5, 4)


def test_upgrade_path_stores_the_epochs_it_derives(dirs):
    write(dirs, [Z.make(3, 1), Z.make(3, 2)])
    assert get(dirs, "currentEpoch") is None
    assert (load(dirs).current_epoch, get(dirs, "acceptedEpoch"), get(dirs, "currentEpoch")) == (3, b"3\n", b"3\n")


@pytest.mark.parametrize("content", [b"", b"seven", b"-1", b"1 2", b"4294967296", b"3\n\n"])
def test_an_epoch_file_that_is_not_an_epoch_is_refused_by_name(dirs, content):
    write(dirs, [1])
    put(dirs, "acceptedEpoch", content)
    with pytest.raises(StorageError, match="acceptedEpoch: not an epoch"):
        load(dirs)


def test_current_epoch_tmp_repairs_a_crash_during_its_rename(dirs):
    """ZOOKEEPER-1653/-2354: the new currentEpoch was written to the temp file, then the server died."""
    write(dirs, [Z.make(2, 1), Z.make(3, 1)], epochs=3)
    put(dirs, "currentEpoch", b"2\n")
    put(dirs, "currentEpoch.tmp", b"3\n")
    state = load(dirs)
    assert (state.accepted_epoch, state.current_epoch) == (3, 3)
    assert (get(dirs, "currentEpoch"), get(dirs, "currentEpoch.tmp")) == (b"3\n", None)   # rename finished
    assert load(dirs).current_epoch == 3


@pytest.mark.parametrize("tmp, why", [
    (b"3", "torn: no newline, so maybe a prefix of the digits"),
    (b"", "empty"),
    (b"2\n", "does not reach epoch 3 of the last zxid"),
    (b"4\n", "above acceptedEpoch 3"),
])
def test_a_current_epoch_tmp_that_does_not_fix_it_is_not_used(dirs, tmp, why):
    write(dirs, [Z.make(3, 1)], epochs=3)
    put(dirs, "currentEpoch", b"2\n")
    put(dirs, "currentEpoch.tmp", tmp)
    assert load(dirs).current_epoch == 2, why  # the sync window: the older epoch stays
    assert get(dirs, "currentEpoch") == b"2\n", why
    put(dirs, "acceptedEpoch", b"2\n")  # and without an accepted epoch 3 the history is a stranger's
    with pytest.raises(StorageError, match="currentEpoch 2 is older than epoch 3"):
        load(dirs)


def test_a_leftover_epoch_tmp_is_ignored_and_removed_when_the_epochs_hold(dirs):
    """The rename never happened, so the new value was never adopted (no NEWLEADER ACK was sent)."""
    write(dirs, [Z.make(3, 1)], epochs=3)
    put(dirs, "currentEpoch.tmp", b"9\n")
    put(dirs, "acceptedEpoch.tmp", b"9\n")
    state = load(dirs)
    assert (state.accepted_epoch, state.current_epoch) == (3, 3)
    assert names(snap_dir(dirs)) == ["acceptedEpoch", "currentEpoch"]


def test_a_failed_epoch_write_makes_the_storage_refuse_further_use(dirs, monkeypatch):
    s = DiskStorage(*dirs)
    s.load()
    s.set_accepted_epoch(1)

    def broken(fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", broken)
    with pytest.raises(StorageError, match="acceptedEpoch failed"):
        s.set_accepted_epoch(2)
    monkeypatch.undo()
    with pytest.raises(StorageError, match="failed earlier"):
        s.set_accepted_epoch(2)
    s.close()
    assert load(dirs).accepted_epoch == 1      # the rename never happened


# ---------------------------------------------------------------- truncate on disk


def test_a_cut_segment_ends_exactly_after_the_last_kept_record(dirs):
    """Cutting the segment still open for writing (preallocated with zeros): no zeros, no torn bytes left."""
    s = DiskStorage(*dirs)
    s.load()
    for n in range(1, 11):
        s.append(n, txn(n))
        s.sync()
    [(_, path)] = txnlog.list_segments(log_dir(dirs))
    assert os.path.getsize(path) >= txnlog.PREALLOC_BYTES
    ends = record_ends(path)
    s.truncate(6)
    assert os.path.getsize(path) == ends[5]
    s.append(7, b"new 7")
    s.sync()
    s.close()
    assert names(log_dir(dirs)) == ["log.1", "log.7"]
    state = load(dirs)
    assert (state.truncated_bytes, state.txns[-2:]) == (0, [(6, txn(6)), (7, b"new 7")])


def test_truncate_deletes_the_segments_above_the_cut(dirs):
    write(dirs, range(1, 4))
    write(dirs, range(4, 7))
    write(dirs, range(7, 10))
    with DiskStorage(*dirs) as s:
        s.load()
        s.truncate(2)
    assert names(log_dir(dirs)) == ["log.1"]
    assert [n for n, _ in load(dirs).txns] == [1, 2]


def test_truncate_refuses_when_the_only_snapshots_below_the_cut_are_invalid(dirs):
    write(dirs, range(1, 10), snapshot_at=(3, 6))
    path = os.path.join(snap_dir(dirs), "snapshot.3")
    with open(path, "r+b") as f:
        f.seek(40)
        f.write(b"\xff")
    with DiskStorage(*dirs) as s:
        s.load()
        with pytest.raises(StorageError, match=r"every snapshot is newer \(0x6\) or invalid"):
            s.truncate(4)
    assert load(dirs).snapshot_zxid == 6                # nothing was deleted


def test_a_failure_between_dropping_snapshots_and_cutting_the_log_leaves_the_old_history(dirs, monkeypatch):
    write(dirs, range(1, 21), snapshot_at=(10, 14, 18))
    s = DiskStorage(*dirs)
    s.load()

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(txnlog, "truncate_log", broken)
    with pytest.raises(StorageError, match="truncating"):
        s.truncate(12)
    s.close()
    monkeypatch.undo()
    state = load(dirs)      # snapshots 14 and 18 are gone; snapshot 10 and the whole log remain
    assert (state.snapshot_zxid, [n for n, _ in state.txns]) == (10, list(range(11, 21)))


# ---------------------------------------------------------------- install on disk


def test_install_leaves_one_snapshot_and_no_log(dirs):
    write(dirs, range(1, 5), snapshot_at=(2,), epochs=1)
    write(dirs, range(5, 9), snapshot_at=(6,))
    with DiskStorage(*dirs) as s:
        s.load()
        s.install_snapshot(5, b"leader@5")
    assert names(log_dir(dirs)) == []
    assert names(snap_dir(dirs)) == ["acceptedEpoch", "currentEpoch", "snapshot.5"]


def test_truncate_and_install_when_log_and_snapshots_share_one_directory(tmp_path):
    """Like ZooKeeper's dataDir without a dataLogDir: log.*, snapshot.*, install.* and epochs side by side."""
    one = (str(tmp_path / "data"), str(tmp_path / "data"))
    write(one, range(1, 10), snapshot_at=(4,), epochs=1)
    with DiskStorage(*one) as s:
        s.load()
        s.truncate(6)
    assert (load(one).snapshot_zxid, [n for n, _ in load(one).txns]) == (4, [5, 6])
    with DiskStorage(*one) as s:
        s.load()
        s.install_snapshot(3, b"leader@3")
    assert names(snap_dir(one)) == ["acceptedEpoch", "currentEpoch", "snapshot.3"]
    assert (load(one).snapshot, load(one).current_epoch) == (b"leader@3", 1)


def test_install_streamed_in_pieces(dirs):
    write(dirs, range(1, 5))
    with DiskStorage(*dirs) as s:
        s.load()
        s.install_snapshot_stream(9, 9, [b"tree", b"@9", b"..."])
        with pytest.raises(StorageError, match="announced"):
            s.install_snapshot_stream(12, 100, [b"short"])
    state = load(dirs)
    assert (state.snapshot_zxid, state.snapshot, state.txns) == (9, b"tree@9...", [])


def test_load_finishes_an_install_cut_short_after_its_commit_point(dirs):
    write(dirs, range(1, 10), snapshot_at=(3, 7))
    snapfiles.write_snapshot_chunks(snap_dir(dirs), 5, 8, [b"leader@5"], name=snapfiles.install_name(5))
    state = load(dirs)
    assert (state.snapshot_zxid, state.snapshot, state.txns) == (5, b"leader@5", [])
    assert names(snap_dir(dirs)) == ["snapshot.5"]
    assert names(log_dir(dirs)) == []


def test_an_install_temp_file_is_discarded_and_the_old_history_stays(dirs):
    write(dirs, range(1, 10), snapshot_at=(7,))
    put(dirs, "install.5.tmp", b"half a snapshot")
    state = load(dirs)
    assert (state.snapshot_zxid, [n for n, _ in state.txns]) == (7, [8, 9])
    assert names(snap_dir(dirs)) == ["snapshot.7"]


def test_a_damaged_committed_install_is_refused(dirs):
    write(dirs, range(1, 10))
    path = snapfiles.write_snapshot_chunks(snap_dir(dirs), 5, 8, [b"leader@5"], name=snapfiles.install_name(5))
    with open(path, "r+b") as f:
        f.seek(-1, os.SEEK_END)
        f.write(b"X")
    with pytest.raises(CorruptLogError, match="install.5: a committed snapshot install is damaged"):
        load(dirs)


def test_a_failure_while_finishing_an_install_is_finished_by_the_next_load(dirs, monkeypatch):
    write(dirs, range(1, 10), snapshot_at=(4, 8))
    s = DiskStorage(*dirs)
    s.load()
    real_replace = os.replace

    def broken(src, dst):
        if os.path.basename(src).startswith("install.") and not src.endswith(".tmp"):
            raise OSError(5, "Input/output error")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(StorageError, match="load"):
        s.install_snapshot(6, b"leader@6")
    monkeypatch.undo()
    s.close()
    state = load(dirs)
    assert (state.snapshot_zxid, state.snapshot, state.txns) == (6, b"leader@6", [])
