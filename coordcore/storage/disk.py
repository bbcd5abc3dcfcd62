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
truncate(), install_snapshot() and the epoch setters take the same locks but
must not race with append() (api.py, "Threading").

Failure policy: if a write or fsync of the log fails, the storage refuses all
further use (after a failed fsync the kernel may have dropped the dirty pages,
so nothing written since the last good sync can be trusted).  Restart and
load() again.

Epochs: ``acceptedEpoch`` and ``currentEpoch`` live in the snapshot
subdirectory as decimal text, each replaced atomically (:mod:`.epochs`).

Multi-step operations and crashes (each step is durable before the next):

* truncate(z): delete snapshots newer than z, then log segments starting
  above z, then cut the segment holding z (:func:`.txnlog.truncate_log`).
  A crash in between leaves a prefix of the old history no shorter than the
  truncated one: a snapshot is only dropped while the log still continues the
  older one that load() then uses.
* install_snapshot(z): write ``install.<z>`` (temp, fsync, rename, directory
  fsync).  That file is the commit point: a load() that finds it finishes the
  install -- deletes every log segment and every other snapshot, fsyncs both
  directories, and only then renames it to ``snapshot.<z>``.  A crash before
  the rename of ``install.<z>.tmp`` leaves the old history (the temp file is
  deleted); any crash after it gives the new one.

What it does not do: decide when to snapshot, truncate or install (ZAB and the
runtime decide); check that a snapshot given to save_snapshot is one the log
continues (truncate relies on it -- a snapshot from a leader must go through
install_snapshot); coordinate with a snapshot file written by another process
(write_snapshot_file in a forked child) while truncate or install runs; or
survive a power loss with ``fsync=False``.
"""
from __future__ import annotations

import os
import tempfile
import threading
from typing import Iterable

import structlog

from coordcore import zxid as Z
from coordcore.storage import epochs, snapfiles, txnlog
from coordcore.storage.api import CorruptLogError, DurableState, StorageError

try:
    import fcntl
except ImportError:  # pragma: no cover - non-POSIX: run without the directory lock
    fcntl = None  # type: ignore[assignment]

log = structlog.get_logger("coordcore.storage")

SUBDIR = "coordcore-v1"
LOCK_NAME = "LOCK"
SNAPSHOTS_KEPT = 3


__all__ = ["DiskStorage", "StorageError", "CorruptLogError", "SUBDIR", "SNAPSHOTS_KEPT"]
# StorageError lives in api.py (the contract; MemoryStorage raises it too) and
# is re-exported here for the callers that import it from this module.


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
    """Segmented txn log + snapshots + epoch files, fsynced; see the module docstring.

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
        # Lock order: _snap_lock, then _io_lock, then _pending_lock.
        self._pending_lock = threading.Lock()    # guards _pending and _last_zxid (append vs sync)
        self._io_lock = threading.Lock()         # serialises log file I/O, epochs, load, purge, close
        self._snap_lock = threading.Lock()       # serialises snapshot writes, truncate and install
        self._pending: list[tuple[int, bytes]] = []
        self._last_zxid: int | None = None       # None until load(): appends are refused
        self._stored_last = 0                    # highest zxid written to the log or a snapshot
        self._accepted_epoch = 0
        self._current_epoch = 0
        self._writer: txnlog.SegmentWriter | None = None
        self._roll = False                       # start a new segment at the next write
        self._failed: BaseException | None = None
        self._closed = False

    # ------------------------------------------------------------ contract

    def load(self) -> DurableState:
        """Newest valid snapshot + every txn after it + the epochs; cuts a torn log tail.

        Pending appends are first written as by sync(), so they are included.
        An install cut short by a crash is finished first.  Raises
        CorruptLogError for mid-log corruption, or when snapshot files exist
        but none is valid (the log before them may have been purged), and
        StorageError when the epochs break I6 (see api.py).
        """
        with self._snap_lock, self._io_lock:
            self._check_usable()
            self._write_pending()
            self._close_writer()
            with self._pending_lock:
                self._last_zxid = None           # until this load succeeds
            self._finish_installs()
            for path in snapfiles.remove_temp_files(self.snap_dir):
                log.info("storage.snapshot_tmp_removed", path=path)
            snapshot_zxid, snapshot = self._newest_valid_snapshot()
            recovery = txnlog.recover_log(self.log_dir, snapshot_zxid, fsync=self._fsync)
            for note in recovery.removed:
                log.warning("storage.log_truncated", detail=note)
            last_zxid = max(snapshot_zxid, recovery.last_zxid or 0)
            resolved = self._load_epochs(last_zxid)
            state = DurableState(snapshot_zxid=snapshot_zxid, snapshot=snapshot,
                                 txns=recovery.txns, truncated_bytes=recovery.truncated_bytes,
                                 accepted_epoch=resolved.accepted, current_epoch=resolved.current)
            self._accepted_epoch, self._current_epoch = resolved.accepted, resolved.current
            with self._pending_lock:
                self._last_zxid = self._stored_last = last_zxid
            log.info("storage.loaded", log_dir=self.log_dir, snap_dir=self.snap_dir,
                     snapshot_zxid=hex(snapshot_zxid), txns=len(state.txns),
                     last_zxid=hex(state.last_zxid), truncated_bytes=state.truncated_bytes,
                     accepted_epoch=state.accepted_epoch, current_epoch=state.current_epoch)
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
                raise StorageError(f"zxid {zxid:#x} is not above the last appended zxid {last:#x}")
            if zxid > txnlog.MAX_ZXID:
                raise StorageError(f"zxid {zxid:#x} does not fit in 64 bits")
            if len(txn) > txnlog.MAX_TXN_BYTES:
                raise StorageError(f"txn of {len(txn)} bytes exceeds {txnlog.MAX_TXN_BYTES}")
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
        self._check_loaded("save_snapshot")
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
            self._stored_last = max(self._stored_last, zxid)
            self._roll = True
            self._purge()

    @property
    def accepted_epoch(self) -> int:
        return self._accepted_epoch

    @property
    def current_epoch(self) -> int:
        return self._current_epoch

    def set_accepted_epoch(self, epoch: int) -> None:
        """Durably store acceptedEpoch (it only grows); pending appends are synced first."""
        epochs.check_value(epoch)
        with self._io_lock:
            self._check_loaded("set_accepted_epoch")
            if epoch < self._accepted_epoch:
                raise StorageError(f"acceptedEpoch only grows: {epoch} is below {self._accepted_epoch}")
            self._write_pending()
            if epoch != self._accepted_epoch:
                self._write_epoch(epochs.ACCEPTED_NAME, epoch)
                self._accepted_epoch = epoch
                log.info("storage.accepted_epoch", epoch=epoch)

    def set_current_epoch(self, epoch: int) -> None:
        """Durably store currentEpoch, after syncing pending appends (the history it adopts).

        Refused (StorageError, nothing changed) if it would lower currentEpoch,
        exceed acceptedEpoch, or lie below the epoch of the last appended zxid.
        """
        epochs.check_value(epoch)
        with self._io_lock:
            self._check_loaded("set_current_epoch")
            if epoch < self._current_epoch:
                raise StorageError(f"currentEpoch only grows: {epoch} is below {self._current_epoch}")
            if epoch > self._accepted_epoch:
                raise StorageError(f"currentEpoch {epoch} would exceed acceptedEpoch {self._accepted_epoch}: "
                                   f"an epoch is accepted before it is adopted")
            last = self._last_zxid or 0
            if epoch < Z.epoch(last):
                raise StorageError(f"currentEpoch {epoch} is below epoch {Z.epoch(last)} of the last "
                                   f"appended zxid {last:#x}")
            self._write_pending()
            if epoch != self._current_epoch:
                self._write_epoch(epochs.CURRENT_NAME, epoch)
                self._current_epoch = epoch
                log.info("storage.current_epoch", epoch=epoch)

    def truncate(self, zxid: int) -> None:
        """Durably keep exactly the txns <= ``zxid`` and drop every snapshot newer than it (ZAB's TRUNC).

        The rule and crash behaviour are api.py's obligation 6; the order of
        the steps is in the module docstring.  Pending appends <= ``zxid`` are
        written, those above it dropped.  Raises StorageError, changing
        nothing, when the cut needs a snapshot that does not exist.
        """
        with self._snap_lock, self._io_lock:
            self._check_loaded("truncate")
            snaps = snapfiles.list_snapshots(self.snap_dir)             # newest first
            newer = [(z, path) for z, path in snaps if z > zxid]
            older = [(z, path) for z, path in snaps if z <= zxid]
            if newer and self._newest_valid(older) is None:
                raise StorageError(
                    f"cannot truncate to {zxid:#x}: every snapshot is newer ("
                    + ", ".join(f"{z:#x}" for z, _ in newer) + ")"
                    + (" or invalid" if older else "")
                    + f", and the txns up to {zxid:#x} may have been purged into them; "
                      "this server needs a SNAP")
            with self._pending_lock:
                self._pending = [t for t in self._pending if t[0] <= zxid]
            self._write_pending()
            if not newer and zxid >= self._stored_last:  # nothing above zxid is stored
                with self._pending_lock:
                    self._pending = []
                    self._last_zxid = self._stored_last
                return
            self._close_writer()
            try:
                for z, path in newer:
                    os.unlink(path)
                    log.info("storage.snapshot_dropped", path=path, zxid=hex(z), truncate_to=hex(zxid))
                if newer and self._fsync:
                    txnlog.fsync_dir(self.snap_dir)
                cut = txnlog.truncate_log(self.log_dir, zxid, fsync=self._fsync)
            except OSError as e:
                self._failed = e
                raise StorageError(f"truncating the txn log in {self.log_dir} failed: {e}") from e
            except CorruptLogError as e:
                self._failed = e
                raise
            for note in cut.removed:
                log.info("storage.log_truncated", detail=note)
            last = max([z for z, _ in older] + [cut.last_zxid or 0])
            with self._pending_lock:
                self._pending = []
                self._last_zxid = self._stored_last = last
            log.info("storage.truncated", zxid=hex(zxid), last_zxid=hex(last))

    def install_snapshot(self, zxid: int, data: bytes) -> None:
        """Make the history exactly this snapshot from a leader (ZAB's SNAP); durable on return.

        Order (crash-safe, see the module docstring): write ``install.<zxid>``
        durably -- the commit point -- then delete every log segment and every
        other snapshot and fsync, then rename it to ``snapshot.<zxid>``.  A
        crash before the commit point leaves the old history; after it, load()
        finishes the install.  Pending appends are dropped.
        """
        data = bytes(data)
        self._install(zxid, len(data), (data,))

    def install_snapshot_stream(self, zxid: int, length: int, chunks: Iterable[bytes]) -> None:
        """:meth:`install_snapshot` for a body that arrives in pieces (``length`` bytes in all)."""
        self._install(zxid, length, chunks)

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
                self._close_writer()
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

    def _check_loaded(self, what: str) -> None:
        self._check_usable()
        if self._last_zxid is None:
            raise StorageError(f"load() must be called before {what}()")

    def _close_writer(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _write_pending(self) -> None:
        """Under _io_lock: write the pending batch, starting a segment if needed."""
        with self._pending_lock:
            batch, self._pending = self._pending, []
        if not batch:
            return
        try:
            if self._writer is None or self._roll:
                self._close_writer()
                self._writer = txnlog.SegmentWriter(self.log_dir, batch[0][0], fsync=self._fsync)
                self._roll = False
                log.debug("storage.segment_created", path=self._writer.path)
            self._writer.write_batch(batch)
            self._stored_last = max(self._stored_last, batch[-1][0])
        except BaseException as e:
            self._failed = e
            raise StorageError(f"writing the txn log in {self.log_dir} failed: {e}") from e

    def _write_epoch(self, name: str, epoch: int) -> None:
        """Under _io_lock: replace one epoch file; a failure makes the storage refuse further use."""
        try:
            epochs.write_file(self.snap_dir, name, epoch, fsync=self._fsync)
        except StorageError as e:
            self._failed = e
            raise

    def _load_epochs(self, last_zxid: int) -> epochs.Resolved:
        """Under _io_lock in load(): read the epoch files, apply I6 (repairing if allowed), store repairs."""
        accepted = epochs.read_file(self.snap_dir, epochs.ACCEPTED_NAME)
        current = epochs.read_file(self.snap_dir, epochs.CURRENT_NAME)
        current_tmp = epochs.read_file(self.snap_dir, epochs.CURRENT_NAME + epochs.TMP_SUFFIX,
                                       need_newline=True)
        resolved = epochs.resolve(accepted, current, last_zxid, current_tmp, where=self.snap_dir)
        for note in resolved.notes:
            log.warning("storage.epoch_initialised", detail=note)
        # acceptedEpoch first: a crash between the two leaves a state that resolves the same way.
        if resolved.write_accepted:
            self._write_epoch(epochs.ACCEPTED_NAME, resolved.accepted)
        if resolved.write_current:
            self._write_epoch(epochs.CURRENT_NAME, resolved.current)  # also finishes a cut-short rename
        for path in epochs.remove_temp_files(self.snap_dir):
            log.info("storage.epoch_tmp_removed", path=path)
        return resolved

    def _install(self, zxid: int, length: int, chunks: Iterable[bytes]) -> None:
        if not 0 <= zxid <= txnlog.MAX_ZXID:
            raise StorageError(f"snapshot zxid {zxid!r} is not a 64-bit zxid")
        with self._snap_lock, self._io_lock:
            self._check_loaded("install_snapshot")
            try:
                path = snapfiles.write_snapshot_chunks(self.snap_dir, zxid, length, chunks,
                                                       fsync=self._fsync, name=snapfiles.install_name(zxid))
            except ValueError as e:     # the pieces did not add up: no file, nothing changed
                raise StorageError(f"installing snapshot {zxid:#x}: {e}") from e
            except OSError as e:
                # Most failures leave the old history (the .tmp is removed), but a failed
                # directory fsync comes after the rename: trust nothing until a reload.
                self._failed = e
                raise StorageError(f"writing snapshot {zxid:#x} to install failed: {e}") from e
            # Committed: from here on only the new history exists, whatever happens.
            with self._pending_lock:
                self._pending = []
                self._last_zxid = self._stored_last = zxid
            self._close_writer()
            try:
                self._complete_install(zxid, path)
            except OSError as e:
                self._failed = e
                raise StorageError(f"finishing the install of snapshot {zxid:#x} failed: {e}; "
                                   f"restart and load() again to finish it") from e

    def _finish_installs(self) -> None:
        """Under the locks in load(): complete an install that a crash cut short after its commit point."""
        for zxid, path in snapfiles.list_installs(self.snap_dir):
            try:
                snapfiles.read_snapshot(path, zxid)
            except snapfiles.SnapshotInvalid as e:
                raise CorruptLogError(f"{path}: a committed snapshot install is damaged ({e}); the old "
                                      f"history may already be deleted, so this server needs a SNAP") from e
            log.warning("storage.install_resumed", path=path, zxid=hex(zxid))
            self._complete_install(zxid, path)

    def _complete_install(self, zxid: int, path: str) -> None:
        """Delete the log and every other snapshot (durably), then rename ``install.<zxid>`` into place.

        The rename comes last: until it is durable, ``install.<zxid>`` tells
        load() to redo these steps; if it became durable before the deletions,
        a power loss could bring back old segments or a newer divergent snapshot.
        """
        removed = []
        for _, seg in reversed(txnlog.list_segments(self.log_dir)):
            os.unlink(seg)
            removed.append(seg)
        if self._fsync:
            txnlog.fsync_dir(self.log_dir)
        for _, snap in snapfiles.list_snapshots(self.snap_dir):
            os.unlink(snap)
            removed.append(snap)
        if self._fsync:
            txnlog.fsync_dir(self.snap_dir)
        target = os.path.join(self.snap_dir, snapfiles.snapshot_name(zxid))
        os.replace(path, target)
        if self._fsync:
            txnlog.fsync_dir(self.snap_dir)
        log.info("storage.snapshot_installed", path=target, zxid=hex(zxid), removed=removed)

    @staticmethod
    def _newest_valid(snaps: list[tuple[int, str]], reasons: list[str] | None = None
                      ) -> tuple[int, bytes] | None:
        """The first valid one of ``snaps`` (newest first); None if none.  Invalid ones are logged."""
        for zxid, path in snaps:
            try:
                return zxid, snapfiles.read_snapshot(path, zxid)
            except snapfiles.SnapshotInvalid as e:
                if reasons is not None:
                    reasons.append(str(e))
                log.warning("storage.snapshot_invalid", path=path, reason=str(e))
        return None

    def _newest_valid_snapshot(self) -> tuple[int, bytes | None]:
        snaps = snapfiles.list_snapshots(self.snap_dir)
        reasons: list[str] = []
        found = self._newest_valid(snaps, reasons)
        if found is not None:
            return found
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
