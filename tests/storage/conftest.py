"""Backends for the storage tests: each yields fresh handles on one persistent store."""
from __future__ import annotations

import pytest

from coordcore.storage.disk import DiskStorage
from coordcore.storage.memory import MemoryStorage


class DiskBackend:
    name = "disk"

    def __init__(self, root) -> None:
        self.log_dir = str(root / "log")
        self.snap_dir = str(root / "snap")

    def open(self) -> DiskStorage:
        return DiskStorage(self.log_dir, self.snap_dir)


class MemoryBackend:
    """A MemoryStorage *is* the disk, so reopening returns the same object."""
    name = "memory"

    def __init__(self) -> None:
        self.store = MemoryStorage()

    def open(self) -> MemoryStorage:
        return self.store


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
