"""DiskStorage: the durable :class:`coordcore.storage.api.Storage` on real files.

Files live in a ``coordcore-v1/`` subdirectory of the given log and snapshot
directories (which may be the same directory, like ZooKeeper's dataLogDir and
dataDir), so a ZooKeeper ``version-2/`` directory beside it is never read or
touched.  Each subdirectory holds a ``LOCK`` file, held with ``flock`` while the
storage is open, so two servers cannot write one log.

Threading: one thread may call :meth:`append` while another calls
:meth:`sync` or :meth:`save_snapshot` (the runtime appends on the event loop and
syncs/snapshots on worker threads).  ``append`` only takes a short lock to add
to the pending batch; ``sync`` swaps the batch out under that lock and writes
and fsyncs it under a second lock, so the next batch keeps growing meanwhile.

Failure policy: if a write or fsync of the log fails, the storage refuses all
further use (after a failed fsync the kernel may have dropped the dirty pages,
so nothing written since the last good sync can be trusted).  Restart and
load() again.

What it does not do: epochs (acceptedEpoch/currentEpoch) and TRUNC of the log
-- the contract in api.py has no operations for them yet.
"""
from __future__ import annotations

import os
import tempfile
import threading
from typing import Iterable

import structlog

from coordcore.storage import snapfiles, txnlog
from coordcore.storage.api import CorruptLogError, DurableState

try:
    import fcntl
except ImportError:  # pragma: no cover - non-POSIX: run without the directory lock
    fcntl = None  # type: ignore[assignment]

log = structlog.get_logger("coordcore.storage")

SUBDIR = "coordcore-v1"
LOCK_NAME = "LOCK"
SNAPSHOTS_KEPT = 3


class StorageError(RuntimeError):
    """The storage cannot be used: bad directory, in use, misuse, or an earlier I/O failure."""


def _prepare_dir(path: str) -> str:
    """Create ``path`` if missing and prove it is a writable directory."""
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise StorageError(f"cannot create storage directory {path}: {e.strerror or e}") from e
    if not os.path.isdir(path):
        raise StorageError(f"storage path {path} is not a directory")
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-probe-", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise StorageError(f"storage directory {path} is not writable: {e.strerror or e}") from e
    return path


def _lock_dir(path: str) -> int:
    lock_path = os.path.join(path, LOCK_NAME)
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise StorageError(f"cannot open lock file {lock_path}: {e.strerror or e}") from e
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            raise StorageError(f"storage directory {path} is in use by another coordcore "
                               f"server (lock {lock_path} is held)") from e
    return fd


class DiskStorage:
    """Segmented txn log + snapshots, fsynced; see the module docstring.

    ``fsync=False`` skips every fsync (tests and benchmarks only: a crash of the
    machine may then lose synced txns; a crash of the process still does not).
    """

    def __init__(self, log_dir: str, snap_dir: str, *, fsync: bool = True) -> None:
        self.log_dir = _prepare_dir(os.path.join(os.path.abspath(log_dir), SUBDIR))
        self.snap_dir = _prepare_dir(os.path.join(os.path.abspath(snap_dir), SUBDIR))
        self._fsync = fsync
        self._lock_fds = [_lock_dir(self.log_dir)]
        if os.path.realpath(self.snap_dir) != os.path.realpath(self.log_dir):
            try:
                self._lock_fds.append(_lock_dir(self.snap_dir))
            except BaseException:
                os.close(self._lock_fds.pop())
                raise
        self._pending_lock = threading.Lock()    # guards _pending and _last_zxid (append vs sync)
        self._io_lock = threading.Lock()         # serialises log file I/O, load, purge, close
        self._snap_lock = threading.Lock()       # serialises snapshot writes
        self._pending: list[tuple[int, bytes]] = []
        self._last_zxid: int | None = None       # None until load(): appends are refused
        self._writer: txnlog.SegmentWriter | None = None
        self._roll = False                       # start a new segment at the next write
        self._failed: BaseException | None = None
        self._closed = False

    # ------------------------------------------------------------ contract

    def load(self) -> DurableState:
        """Newest valid snapshot + every txn after it; cuts a torn log tail.

        Pending appends are first written as by sync(), so they are included.
        Raises CorruptLogError for mid-log corruption, or when snapshot files
        exist but none is valid (the log before them may have been purged).
        """
        with self._io_lock:
            self._check_usable()
            self._write_pending()
            if self._writer is not None:
                self._writer.close()
                self._writer = None
            for path in snapfiles.remove_temp_files(self.snap_dir):
                log.info("storage.snapshot_tmp_removed", path=path)
            snapshot_zxid, snapshot = self._newest_valid_snapshot()
            recovery = txnlog.recover_log(self.log_dir, snapshot_zxid, fsync=self._fsync)
            for note in recovery.removed:
                log.warning("storage.log_truncated", detail=note)
            state = DurableState(snapshot_zxid=snapshot_zxid, snapshot=snapshot,
                                 txns=recovery.txns, truncated_bytes=recovery.truncated_bytes)
            with self._pending_lock:
                self._last_zxid = max(snapshot_zxid, recovery.last_zxid or 0)
            log.info("storage.loaded", log_dir=self.log_dir, snap_dir=self.snap_dir,
                     snapshot_zxid=hex(snapshot_zxid), txns=len(state.txns),
                     last_zxid=hex(state.last_zxid), truncated_bytes=state.truncated_bytes)
            return state

    def append(self, zxid: int, txn: bytes) -> None:
        """Queue one txn for the next sync(); cheap, never touches the disk."""
        if type(txn) is not bytes:
            txn = bytes(txn)
        with self._pending_lock:
            last = self._last_zxid
            if last is None:
                self._check_usable()
                raise StorageError("load() must be called before append()")
            if zxid <= last:
                raise ValueError(f"zxid {zxid:#x} is not above the last appended zxid {last:#x}")
            if zxid > txnlog.MAX_ZXID:
                raise ValueError(f"zxid {zxid:#x} does not fit in 64 bits")
            if len(txn) > txnlog.MAX_TXN_BYTES:
                raise ValueError(f"txn of {len(txn)} bytes exceeds {txnlog.MAX_TXN_BYTES}")
            self._pending.append((zxid, txn))
            self._last_zxid = zxid

    def sync(self) -> None:
        """Write every txn appended so far and fsync once (group commit)."""
        with self._io_lock:
            self._check_usable()
            self._write_pending()

    def save_snapshot(self, zxid: int, data: bytes) -> None:
        """Durably store a snapshot at ``zxid``, then retain 3 and purge covered segments.

        Safe to call from a worker thread while append() goes on: pending txns
        stay pending, and the next sync() starts a new segment.
        """
        self._check_usable()
        if self._last_zxid is None:
            raise StorageError("load() must be called before save_snapshot()")
        with self._snap_lock:
            self.write_snapshot_file(zxid, data)
        self.snapshot_written(zxid)

    def write_snapshot_file(self, zxid: int, data: bytes) -> str:
        """Only write ``snapshot.<zxid>`` durably (no locks, no logging: safe in a forked child).

        The caller then calls :meth:`snapshot_written` in the process that owns this storage.
        """
        return snapfiles.write_snapshot(self.snap_dir, zxid, bytes(data), fsync=self._fsync)

    def write_snapshot_stream(self, zxid: int, length: int, chunks: Iterable[bytes]) -> str:
        """:meth:`write_snapshot_file` for a body that arrives in pieces (``length`` bytes in all)."""
        return snapfiles.write_snapshot_chunks(self.snap_dir, zxid, length, chunks, fsync=self._fsync)

    def snapshot_written(self, zxid: int) -> None:
        """A snapshot file at ``zxid`` is durable: retain 3 snapshots and purge covered segments."""
        self._check_usable()
        path = os.path.join(self.snap_dir, snapfiles.snapshot_name(zxid))
        try:
            size = os.path.getsize(path)
        except OSError:
            size = None
        log.info("storage.snapshot_saved", path=path, zxid=hex(zxid), size=size)
        with self._pending_lock:
            # Later appends must sort after the snapshot or load() would skip them.
            self._last_zxid = max(self._last_zxid or 0, zxid)
        with self._io_lock:
            self._roll = True
            self._purge()

    def close(self) -> None:
        """Write (and fsync) pending txns, close files, release the directory locks."""
        with self._io_lock:
            if self._closed:
                return
            try:
                if self._failed is None:
                    self._write_pending()
            finally:
                self._closed = True
                if self._writer is not None:
                    self._writer.close()
                    self._writer = None
                with self._pending_lock:
                    self._last_zxid = None
                for fd in self._lock_fds:
                    os.close(fd)
                self._lock_fds = []

    def __enter__(self) -> DiskStorage:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------ internals

    def _check_usable(self) -> None:
        if self._closed:
            raise StorageError(f"storage in {self.log_dir} is closed")
        if self._failed is not None:
            raise StorageError(f"storage in {self.log_dir} failed earlier "
                               f"({self._failed!r}); restart and load() again")

    def _write_pending(self) -> None:
        """Under _io_lock: write the pending batch, starting a segment if needed."""
        with self._pending_lock:
            batch, self._pending = self._pending, []
        if not batch:
            return
        try:
            if self._writer is None or self._roll:
                if self._writer is not None:
                    self._writer.close()
                self._writer = txnlog.SegmentWriter(self.log_dir, batch[0][0], fsync=self._fsync)
                self._roll = False
                log.debug("storage.segment_created", path=self._writer.path)
            self._writer.write_batch(batch)
        except BaseException as e:
            self._failed = e
            raise StorageError(f"writing the txn log in {self.log_dir} failed: {e}") from e

    def _newest_valid_snapshot(self) -> tuple[int, bytes | None]:
        snaps = snapfiles.list_snapshots(self.snap_dir)
        reasons = []
        for zxid, path in snaps:
            try:
                return zxid, snapfiles.read_snapshot(path, zxid)
            except snapfiles.SnapshotInvalid as e:
                reasons.append(str(e))
                log.warning("storage.snapshot_invalid", path=path, reason=str(e))
        if snaps:
            raise CorruptLogError("every snapshot is corrupt: " + "; ".join(reasons))
        return 0, None

    def _purge(self) -> None:
        """Under _io_lock: keep the newest snapshots and the segments they need."""
        deleted, oldest_kept = snapfiles.retain_newest(self.snap_dir, SNAPSHOTS_KEPT)
        if oldest_kept is None:
            return
        segments = txnlog.list_segments(self.log_dir)
        # Segment i holds zxids below segment i+1's first; it is needed unless
        # all of them are covered by the oldest snapshot kept.  The newest
        # segment (perhaps open for writing) is always kept.
        for (first, path), (next_first, _) in zip(segments, segments[1:]):
            if next_first <= oldest_kept + 1:
                os.unlink(path)
                deleted.append(path)
        if deleted:
            log.info("storage.purged", files=deleted, oldest_snapshot_zxid=hex(oldest_kept))
