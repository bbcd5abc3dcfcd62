"""Backends for the storage tests: each yields fresh handles on one persistent store."""
from __future__ import annotations

import os

import pytest

from coordcore.storage.disk import SUBDIR, DiskStorage
from coordcore.storage.memory import MemoryStorage


class DiskBackend:
    name = "disk"

    def __init__(self, root) -> None:
        self.log_dir = str(root / "log")
        self.snap_dir = str(root / "snap")

    def open(self) -> DiskStorage:
        return DiskStorage(self.log_dir, self.snap_dir)

    def crash(self, storage: DiskStorage) -> DiskStorage:
        """What kill -9 leaves: files closed by the kernel, nothing flushed, trimmed or unlocked politely."""
        if storage._writer is not None:
            os.close(storage._writer._fd)
            storage._writer._fd = -1
            storage._writer = None
        for fd in storage._lock_fds:
            os.close(fd)
        storage._lock_fds = []
        storage._pending = []
        storage._closed = True
        return self.open()

    def force_epochs(self, accepted: int | None, current: int | None) -> None:
        """Write the epoch files by hand, as ZooKeeper does (no newline); None removes one."""
        for name, value in (("acceptedEpoch", accepted), ("currentEpoch", current)):
            path = os.path.join(self.snap_dir, SUBDIR, name)
            if value is None:
                if os.path.exists(path):
                    os.unlink(path)
            else:
                with open(path, "w") as f:
                    f.write(str(value))


class MemoryBackend:
    """A MemoryStorage *is* the disk, so reopening returns the same object."""
    name = "memory"

    def __init__(self) -> None:
        self.store = MemoryStorage()

    def open(self) -> MemoryStorage:
        return self.store

    def crash(self, storage: MemoryStorage) -> MemoryStorage:
        storage.crash()
        return self.store

    def force_epochs(self, accepted: int | None, current: int | None) -> None:
        """Put the store into a state its API refuses to create (the simulator's 'bad disk')."""
        self.store._accepted, self.store._current = accepted, current


@pytest.fixture(params=["disk", "memory"])
def backend(request, tmp_path):
    if request.param == "disk":
        return DiskBackend(tmp_path)
    return MemoryBackend()


@pytest.fixture
def reopen(backend):
    """``reopen(storage)``: close it and load a new handle, as a restarted server would."""
    def _reopen(storage):
        storage.close()
        fresh = backend.open()
        return fresh, fresh.load()
    return _reopen


@pytest.fixture
def crash(backend):
    """``crash(storage)``: kill it without close() and load a new handle; unsynced appends may be gone."""
    def _crash(storage):
        fresh = backend.crash(storage)
        return fresh, fresh.load()
    return _crash
