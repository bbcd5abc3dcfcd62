"""DiskStorage recovery: torn tails cut, mid-log corruption refused, snapshot fallback, purge."""
from __future__ import annotations

import os

import pytest

from coordcore.storage import snapfiles, txnlog
from coordcore.storage.api import CorruptLogError
from coordcore.storage.disk import SUBDIR, DiskStorage, StorageError


def txn(zxid: int) -> bytes:
    return b"txn-%d-" % zxid + b"p" * 90


@pytest.fixture
def dirs(tmp_path):
    return str(tmp_path / "log"), str(tmp_path / "snap")


def write_txns(dirs, zxids, *, snapshot_at=()):
    with DiskStorage(*dirs) as s:
        s.load()
        for z in zxids:
            s.append(z, txn(z))
            s.sync()
            if z in snapshot_at:
                s.save_snapshot(z, b"tree@%d" % z)


def load(dirs):
    with DiskStorage(*dirs) as s:
        return s.load()


def segments(dirs):
    return txnlog.list_segments(os.path.join(dirs[0], SUBDIR))


def record_offsets(path):
    """Start offset of every record in a clean segment file."""
    data = open(path, "rb").read()
    offsets, off = [], txnlog.HEADER_SIZE
    while off < len(data):
        offsets.append(off)
        length = int.from_bytes(data[off:off + 4], "big")
        off += txnlog.RECORD_HEADER_SIZE + length
    return offsets


def flip_byte(path, offset):
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0xFF]))


def test_torn_tail_partial_record_is_cut(dirs):
    write_txns(dirs, range(1, 6))
    [(_, path)] = segments(dirs)
    good_size = os.path.getsize(path)
    # What a crash mid-write leaves: the start of a record for zxid 6.
    partial = txnlog.encode_records(0, [(6, txn(6))])[:40]
    with open(path, "ab") as f:
        f.write(partial)
    state = load(dirs)
    assert [z for z, _ in state.txns] == [1, 2, 3, 4, 5]
    assert state.truncated_bytes == 40
    assert os.path.getsize(path) == good_size          # really cut, not just skipped
    assert load(dirs).truncated_bytes == 0             # and stays cut


def test_torn_tail_partial_record_header_is_cut(dirs):
    write_txns(dirs, range(1, 4))
    [(_, path)] = segments(dirs)
    with open(path, "ab") as f:
        f.write(b"\x00\x01\x00")
    state = load(dirs)
    assert (state.last_zxid, state.truncated_bytes) == (3, 3)


def test_bad_crc_on_last_record_is_cut(dirs):
    write_txns(dirs, range(1, 6))
    [(_, path)] = segments(dirs)
    last = record_offsets(path)[-1]
    size = os.path.getsize(path)
    flip_byte(path, size - 1)                          # last payload byte of zxid 5
    state = load(dirs)
    assert [z for z, _ in state.txns] == [1, 2, 3, 4]
    assert state.truncated_bytes == size - last
    assert os.path.getsize(path) == last


def test_bad_crc_on_last_records_of_one_batch_is_cut(dirs):
    """A torn group commit: the last several records all fail their CRC."""
    write_txns(dirs, range(1, 9))
    [(_, path)] = segments(dirs)
    offsets = record_offsets(path)
    for off in offsets[-3:]:
        flip_byte(path, off + txnlog.RECORD_HEADER_SIZE + 2)
    state = load(dirs)
    assert state.last_zxid == 5
    assert os.path.getsize(path) == offsets[-3]


def test_corrupt_middle_record_is_refused_with_file_and_offset(dirs):
    write_txns(dirs, range(1, 6))
    [(_, path)] = segments(dirs)
    third = record_offsets(path)[2]
    flip_byte(path, third + txnlog.RECORD_HEADER_SIZE + 5)
    size = os.path.getsize(path)
    with pytest.raises(CorruptLogError) as info:
        load(dirs)
    assert path in str(info.value) and f"offset {third}" in str(info.value)
    assert os.path.getsize(path) == size               # nothing cut: an operator must look


def test_corrupt_length_field_in_middle_is_refused(dirs):
    """A damaged length that points past EOF must not pass for a torn tail."""
    write_txns(dirs, range(1, 6))
    [(_, path)] = segments(dirs)
    second = record_offsets(path)[1]
    with open(path, "r+b") as f:
        f.seek(second)
        f.write((10_000_000).to_bytes(4, "big"))
    with pytest.raises(CorruptLogError, match=f"offset {second}"):
        load(dirs)


def test_damage_followed_by_a_valid_later_segment_is_refused(dirs):
    write_txns(dirs, range(1, 11), snapshot_at={5})   # log.1 holds 1..5, log.6 holds 6..10
    (_, first), (_, second) = segments(dirs)
    # Damage the tail of the OLDER segment; with an older snapshot fallback forced,
    # both segments are read.
    flip_byte(first, os.path.getsize(first) - 1)
    os.unlink(os.path.join(dirs[1], SUBDIR, "snapshot.5"))
    with pytest.raises(CorruptLogError, match="valid records follow"):
        load(dirs)


def test_zxid_going_backwards_is_corruption(dirs):
    log_dir = os.path.join(dirs[0], SUBDIR)
    os.makedirs(log_dir)
    with open(os.path.join(log_dir, "log.1"), "wb") as f:
        f.write(txnlog.encode_header(7, 1))
        f.write(txnlog.encode_records(7, [(1, b"a"), (3, b"b"), (2, b"c")]))
    with pytest.raises(CorruptLogError, match="does not increase"):
        load(dirs)


def test_foreign_file_is_rejected_clearly(dirs):
    log_dir = os.path.join(dirs[0], SUBDIR)
    os.makedirs(log_dir)
    with open(os.path.join(log_dir, "log.1"), "wb") as f:
        f.write(b"ZKLG\x00\x00\x00\x02" + b"\x01" * 100)   # a ZooKeeper txn log header
    with pytest.raises(CorruptLogError, match="not a coordcore txn log"):
        load(dirs)


def test_segment_created_but_never_written_is_removed(dirs):
    """Crash after a new segment's header, before its first batch: reuse of the name works."""
    write_txns(dirs, range(1, 4))
    log_dir = os.path.join(dirs[0], SUBDIR)
    with open(os.path.join(log_dir, "log.4"), "wb") as f:
        f.write(txnlog.encode_header(9, 4)[:10])           # torn header
    with DiskStorage(*dirs) as s:
        state = s.load()
        assert state.last_zxid == 3 and state.truncated_bytes == 10
        s.append(4, txn(4))
        s.sync()
    assert load(dirs).last_zxid == 4


def test_corrupt_newest_snapshot_falls_back_to_older(dirs):
    write_txns(dirs, range(1, 13), snapshot_at={4, 8})
    snap = os.path.join(dirs[1], SUBDIR, "snapshot.8")
    flip_byte(snap, os.path.getsize(snap) - 1)
    state = load(dirs)
    assert (state.snapshot_zxid, state.snapshot) == (4, b"tree@4")
    assert [z for z, _ in state.txns] == list(range(5, 13))


def test_truncated_newest_snapshot_falls_back_to_older(dirs):
    write_txns(dirs, range(1, 9), snapshot_at={4, 8})
    with open(os.path.join(dirs[1], SUBDIR, "snapshot.8"), "r+b") as f:
        f.truncate(20)
    assert load(dirs).snapshot_zxid == 4


def test_every_snapshot_corrupt_is_refused(dirs):
    write_txns(dirs, range(1, 5), snapshot_at={4})
    snap = os.path.join(dirs[1], SUBDIR, "snapshot.4")
    flip_byte(snap, os.path.getsize(snap) - 1)
    with pytest.raises(CorruptLogError, match="every snapshot is corrupt"):
        load(dirs)


def test_leftover_snapshot_tmp_is_ignored_and_removed(dirs):
    write_txns(dirs, range(1, 5), snapshot_at={2})
    tmp = os.path.join(dirs[1], SUBDIR, "snapshot.4.tmp")
    with open(tmp, "wb") as f:
        f.write(b"half a snapshot")
    state = load(dirs)
    assert state.snapshot_zxid == 2 and [z for z, _ in state.txns] == [3, 4]
    assert not os.path.exists(tmp)


def test_old_segments_and_snapshots_are_purged(dirs):
    write_txns(dirs, range(1, 31), snapshot_at={5, 10, 15, 20, 25})
    names = sorted(os.listdir(os.path.join(dirs[1], SUBDIR)))
    assert [n for n in names if n.startswith("snapshot.")] == \
        sorted(snapfiles.snapshot_name(z) for z in (15, 20, 25))
    firsts = [first for first, _ in segments(dirs)]
    # Segments holding only zxids <= 15 (the oldest kept snapshot) are gone.
    assert firsts == [16, 21, 26]
    # and the corrupt-newest fallback still has the log it needs
    for z in (25, 20):
        snap = os.path.join(dirs[1], SUBDIR, snapfiles.snapshot_name(z))
        flip_byte(snap, os.path.getsize(snap) - 1)
    state = load(dirs)
    assert state.snapshot_zxid == 15 and [z for z, _ in state.txns] == list(range(16, 31))


def test_same_directory_for_log_and_snapshots(tmp_path):
    both = str(tmp_path / "data")
    write_txns((both, both), range(1, 8), snapshot_at={3})
    state = load((both, both))
    assert state.snapshot_zxid == 3 and state.last_zxid == 7


def test_zookeeper_files_beside_ours_are_left_alone(tmp_path):
    data = tmp_path / "data"
    zk = data / "version-2"
    zk.mkdir(parents=True)
    (zk / "log.1").write_bytes(b"ZKLG zookeeper data")
    (zk / "snapshot.0").write_bytes(b"zookeeper snapshot")
    write_txns((str(data), str(data)), range(1, 4), snapshot_at={2})
    assert load((str(data), str(data))).last_zxid == 3
    assert sorted(os.listdir(zk)) == ["log.1", "snapshot.0"]
    assert (zk / "log.1").read_bytes() == b"ZKLG zookeeper data"


def test_missing_directories_are_created(tmp_path):
    deep = tmp_path / "a" / "b" / "c"
    with DiskStorage(str(deep), str(deep)) as s:
        assert s.load().last_zxid == 0
    assert (deep / SUBDIR).is_dir()


def test_unusable_directory_error_names_the_path(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_bytes(b"")
    with pytest.raises(StorageError, match=str(blocker)):
        DiskStorage(str(blocker / "log"), str(tmp_path / "snap"))


def test_unwritable_directory_error_names_the_path(tmp_path):
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        # root ignores permission bits; sysfs refuses even root
        target = "/sys/coordcore-storage-test"
        with pytest.raises(StorageError, match=target):
            DiskStorage(target, target)
        return
    ro = tmp_path / "ro"
    (ro / SUBDIR).mkdir(parents=True)
    (ro / SUBDIR).chmod(0o500)
    try:
        with pytest.raises(StorageError, match="not writable"):
            DiskStorage(str(ro), str(ro))
    finally:
        (ro / SUBDIR).chmod(0o700)


def test_second_storage_on_the_same_directory_is_refused(dirs):
    with DiskStorage(*dirs):
        with pytest.raises(StorageError, match="in use"):
            DiskStorage(*dirs)
    with DiskStorage(*dirs) as again:          # released on close
        again.load()


def test_use_after_close_is_refused(dirs):
    s = DiskStorage(*dirs)
    s.load()
    s.close()
    with pytest.raises(StorageError, match="closed"):
        s.sync()
    with pytest.raises(StorageError):
        s.append(1, b"x")


def test_zero_filled_tail_is_cut(dirs):
    """Zeros after the last record are preallocated space (or a power loss before the last batch
    reached the disk, which looks the same): cut silently, not reported as a torn record."""
    write_txns(dirs, range(1, 4))
    [(_, path)] = segments(dirs)
    size = os.path.getsize(path)
    with open(path, "ab") as f:
        f.write(bytes(64 * 1024))
    state = load(dirs)
    assert (state.last_zxid, state.truncated_bytes) == (3, 0)
    assert os.path.getsize(path) == size


def test_preallocated_segment_survives_a_crash(dirs):
    """A writer killed with its segment preallocated: every synced txn loads, the zeros are given back."""
    s = DiskStorage(*dirs)
    s.load()
    for z in range(1, 6):
        s.append(z, b"txn-%d" % z)
    s.sync()
    [(_, path)] = segments(dirs)
    assert os.path.getsize(path) >= txnlog.PREALLOC_BYTES  # the log really is preallocated
    os.close(s._writer._fd)  # a crash: no close(), so no truncation
    s._writer._fd = -1
    for fd in s._lock_fds:
        os.close(fd)
    s._lock_fds = []
    state = load(dirs)
    assert [z for z, _ in state.txns] == [1, 2, 3, 4, 5] and state.truncated_bytes == 0
    assert os.path.getsize(path) < txnlog.PREALLOC_BYTES


def test_payload_that_embeds_a_record_does_not_hide_a_torn_tail(dirs):
    """A txn whose bytes look like a framed record must not turn a torn tail into 'corruption'."""
    write_txns(dirs, range(1, 3))
    [(_, path)] = segments(dirs)
    fake = txnlog.encode_records(0, [(99, b"looks valid")])
    with DiskStorage(*dirs) as s:
        s.load()
    torn = txnlog.encode_records(0, [(3, b"A" * 10 + fake + b"B" * 10)])[:-5]
    with open(path, "ab") as f:
        f.write(torn)
    state = load(dirs)
    assert state.last_zxid == 2 and state.truncated_bytes == len(torn)


def test_damaged_header_with_records_after_it_is_refused(dirs):
    write_txns(dirs, range(1, 4))
    [(_, path)] = segments(dirs)
    flip_byte(path, 12)                                # inside the salt: header CRC fails
    with pytest.raises(CorruptLogError, match="damaged segment header"):
        load(dirs)
    assert os.path.exists(path)


def test_failed_fsync_makes_the_storage_refuse_further_use(dirs, monkeypatch):
    """After a failed write/fsync the page cache cannot be trusted: stop, restart, reload."""
    s = DiskStorage(*dirs)
    s.load()
    s.append(1, b"ok")
    s.sync()

    def broken(self, txns):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(txnlog.SegmentWriter, "write_batch", broken)
    s.append(2, b"doomed")
    with pytest.raises(StorageError, match="failed"):
        s.sync()
    with pytest.raises(StorageError, match="failed earlier"):
        s.sync()
    s.close()
    monkeypatch.undo()
    assert load(dirs).txns == [(1, b"ok")]


def test_snapshot_written_in_pieces_is_the_same_file_and_loads(tmp_path):
    whole, pieces = str(tmp_path / "whole"), str(tmp_path / "pieces")
    os.makedirs(whole)
    os.makedirs(pieces)
    body = [b"head", b"", b"x" * 70000, b"tail"]
    a = snapfiles.write_snapshot(whole, 0x1F, b"".join(body))
    b = snapfiles.write_snapshot_chunks(pieces, 0x1F, sum(map(len, body)), iter(body))
    with open(a, "rb") as fa, open(b, "rb") as fb:
        assert fa.read() == fb.read()
    assert snapfiles.read_snapshot(b, 0x1F) == b"".join(body)


def test_snapshot_pieces_that_do_not_add_up_leave_no_file(tmp_path):
    with pytest.raises(ValueError, match="announced"):
        snapfiles.write_snapshot_chunks(str(tmp_path), 5, 10, iter([b"12345"]))
    assert os.listdir(tmp_path) == []


def test_storage_loads_a_snapshot_written_in_pieces(dirs):
    write_txns(dirs, range(1, 7))
    with DiskStorage(*dirs) as s:
        s.load()
        s.write_snapshot_stream(4, 9, [b"tree", b"@4", b"..."])
        s.snapshot_written(4)
    state = load(dirs)
    assert (state.snapshot_zxid, state.snapshot) == (4, b"tree@4...")
    assert [z for z, _ in state.txns] == [5, 6]
