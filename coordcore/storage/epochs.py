"""acceptedEpoch and currentEpoch: the load-time check (pure) and the files that hold them.

The check, :func:`resolve`, is shared by DiskStorage and MemoryStorage so both
refuse and repair the same states.  It enforces invariant I6 of the ZAB
reference, ``acceptedEpoch >= currentEpoch >= epoch(last logged zxid)``, the way
ZooKeeper's ``QuorumPeer.loadDataBase`` does:

* an epoch never stored is initialised from the epoch of the last logged zxid
  (ZooKeeper's upgrade path; for a standalone or fresh data dir that is 0, and
  a 0 is not written, so such a directory gains no files);
* if currentEpoch is older than the last zxid's epoch and a value that was being
  written when the server died (``currentEpoch.tmp``) fixes that, it is used
  (ZOOKEEPER-1653/-2354).  Unlike ZooKeeper we use the temp value only if it
  really satisfies I6, and only if it is complete (see below);
* otherwise a currentEpoch older than the last zxid's epoch is accepted only when
  that epoch is one this server accepted (``currentEpoch < epoch(last) <=
  acceptedEpoch``): the window ZAB's sync order leaves between making a new
  leader's history durable and writing currentEpoch (see resolve());
* anything else that breaks I6 raises StorageError naming the values.

Files (in DiskStorage's snapshot directory, named as ZooKeeper names them):
decimal text.  We write a trailing newline and read files with or without one
(ZooKeeper writes none), except ``currentEpoch.tmp``: a temp file is only
trusted for the repair when it ends in the newline, since a crash before its
fsync may have left a prefix of the digits ("1" of "12").  Writes go to
``<name>.tmp``, are fsynced, renamed into place and the directory fsynced.

What this module does not do: decide when an epoch changes (that is ZAB's), or
lock directories.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass

from coordcore import zxid as Z
from coordcore.storage.api import StorageError
from coordcore.storage.txnlog import fsync_dir

ACCEPTED_NAME = "acceptedEpoch"
CURRENT_NAME = "currentEpoch"
TMP_SUFFIX = ".tmp"
MAX_EPOCH = 0xFFFFFFFF                   # the high 32 bits of a zxid

_DECIMAL = re.compile(rb"([0-9]{1,20})(\n?)")


def check_value(epoch: int) -> None:
    """StorageError unless ``epoch`` fits in a zxid's epoch field."""
    if type(epoch) is not int or not 0 <= epoch <= MAX_EPOCH:
        raise StorageError(f"epoch {epoch!r} is not an integer in 0..{MAX_EPOCH:#x}")


@dataclass(frozen=True, slots=True)
class Resolved:
    """What load() should report, and which values it must (re)write durably first."""
    accepted: int
    current: int
    write_accepted: bool
    write_current: bool
    notes: tuple[str, ...]


def resolve(accepted: int | None, current: int | None, last_zxid: int,
            current_tmp: int | None = None, *, where: str = "storage") -> Resolved:
    """Apply I6 to the stored epochs (None: never stored) and the last logged zxid.

    ``current_tmp`` is a complete leftover new currentEpoch, or None.  Raises
    StorageError, naming ``where``, the values and the way out, when I6 fails
    and cannot be repaired.
    """
    e = Z.epoch(last_zxid)
    notes = []
    write_accepted = write_current = False
    if current is None:
        current, write_current = e, e > 0
        if e > 0:
            notes.append(f"{CURRENT_NAME} missing: initialised to {e}, the epoch of the last zxid {last_zxid:#x}")
    if current < e:
        if current_tmp is not None and e <= current_tmp and (accepted is None or current_tmp <= accepted):
            notes.append(f"{CURRENT_NAME} {current} is older than the last zxid {last_zxid:#x}; "
                         f"used {current_tmp} from {CURRENT_NAME}{TMP_SUFFIX} (a write cut short by a crash)")
            current, write_current = current_tmp, True
        elif accepted is not None and e <= accepted:
            # ZAB's own order leaves this window: a learner makes its sync history durable -- txns of the
            # new epoch among them -- and only then writes currentEpoch (reference 6.2 step 3; writing it
            # first loses committed txns, ZOOKEEPER-4785).  The txns came from the leader of an epoch this
            # server accepted, whose NEWLEADER it never ACKed: it keeps advertising the older
            # currentEpoch, so its vote ranks lower, and the next leader commits or truncates that tail
            # like any other (I4).  ZooKeeper refuses to start here (ZOOKEEPER-1653/-2354); we start.
            notes.append(f"{CURRENT_NAME} {current} is older than epoch {e} of the last zxid {last_zxid:#x}, "
                         f"an epoch this server accepted ({ACCEPTED_NAME} {accepted}): a crash between a "
                         f"sync's history and its currentEpoch write; the older epoch stays")
        else:
            tmp = ("" if current_tmp is None
                   else f" ({CURRENT_NAME}{TMP_SUFFIX} holds {current_tmp}, which does not fix it)")
            raise StorageError(
                f"{where}: {CURRENT_NAME} {current} is older than epoch {e} of the last logged zxid "
                f"{last_zxid:#x}{tmp}; the history may belong to a leader this server never synced "
                f"with, so it refuses to start (restore the epoch files or wipe this server's data "
                f"and let it resync from the leader)")
    if accepted is None:
        accepted, write_accepted = e, e > 0
        if e > 0:
            notes.append(f"{ACCEPTED_NAME} missing: initialised to {e}, the epoch of the last zxid {last_zxid:#x}")
    if accepted < current:
        raise StorageError(
            f"{where}: {ACCEPTED_NAME} {accepted} is less than {CURRENT_NAME} {current} (last logged "
            f"zxid {last_zxid:#x}); a server adopts only an epoch it accepted first, so the epoch "
            f"files are damaged or were edited")
    return Resolved(accepted, current, write_accepted, write_current, tuple(notes))


# ---------------------------------------------------------------- files


def read_file(directory: str, name: str, *, need_newline: bool = False) -> int | None:
    """The epoch in ``directory/name``; None if the file does not exist.

    With ``need_newline`` (for a temp file) an incomplete file also gives None.
    Any other content raises StorageError naming the file.
    """
    path = os.path.join(directory, name)
    try:
        with open(path, "rb") as f:
            data = f.read(64)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise StorageError(f"cannot read {path}: {e.strerror or e}") from e
    match = _DECIMAL.fullmatch(data)
    if match is None or int(match.group(1)) > MAX_EPOCH:
        if need_newline:
            return None  # a temp file torn by a crash: never evidence of anything
        raise StorageError(f"{path}: not an epoch (decimal text expected, found {data[:32]!r})")
    if need_newline and not match.group(2):
        return None
    return int(match.group(1))


def write_file(directory: str, name: str, epoch: int, *, fsync: bool = True) -> None:
    """Atomically replace ``directory/name`` with ``epoch``: temp file, fsync, rename, directory fsync."""
    path = os.path.join(directory, name)
    tmp = path + TMP_SUFFIX
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            data = b"%d\n" % epoch
            if os.write(fd, data) != len(data):
                raise OSError(f"short write to {tmp}")
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        if fsync:
            fsync_dir(directory)
    except OSError as e:
        raise StorageError(f"writing {path} failed: {e.strerror or e}") from e


def remove_temp_files(directory: str) -> list[str]:
    """Delete leftover ``acceptedEpoch.tmp`` / ``currentEpoch.tmp``; returns their paths."""
    gone = []
    for name in (ACCEPTED_NAME, CURRENT_NAME):
        path = os.path.join(directory, name + TMP_SUFFIX)
        try:
            os.unlink(path)
        except FileNotFoundError:
            continue
        gone.append(path)
    return gone
