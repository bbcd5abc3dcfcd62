"""Shared helpers for the recipe tests: worker processes, deadlines, a watch-counting kazoo client."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
from typing import Callable

from kazoo.client import KazooClient
from kazoo.protocol.states import Callback

WORKERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "workers.py")


def wait_for(cond: Callable[[], object], timeout: float = 10.0, what: str = "condition") -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


class Worker:
    """A worker process (tests/recipes/workers.py) whose stdout lines are read on a thread."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, WORKERS, *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True,
        )
        self.lines: "queue.Queue[str]" = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def expect(self, prefix: str, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"worker {self.proc.pid}: no line starting {prefix!r} in {timeout}s")
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if line.startswith(prefix):
                return line

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)

    def wait(self, timeout: float = 60.0) -> int:
        return self.proc.wait(timeout=timeout)


class CountingClient(KazooClient):
    """A KazooClient that counts every watch notification it delivers to any callback."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.notifications = 0
        self._count_lock = threading.Lock()

    def _wrap(self, watch):
        if watch is None:
            return None

        def counted(event):
            with self._count_lock:
                self.notifications += 1
            return watch(event)

        return counted

    def get_async(self, path, watch=None):
        return super().get_async(path, self._wrap(watch))

    def exists_async(self, path, watch=None):
        return super().exists_async(path, self._wrap(watch))

    def get_children_async(self, path, watch=None, include_data=False):
        return super().get_children_async(path, self._wrap(watch), include_data)

    def drain(self, path: str = "/") -> None:
        """Make sure every notification the server sent before now has been delivered and counted.

        ZooKeeper sends a watch event before the reply to any later request of the same session, and
        kazoo runs callbacks in order on one thread: so after a sync round trip, a marker callback
        queued behind the events runs after them.
        """
        self.sync(path)
        done = threading.Event()
        self.handler.dispatch_callback(Callback("watch", done.set, ()))
        assert done.wait(10), "kazoo callback thread stuck"


def expire_session(client: KazooClient, hosts: str) -> None:
    """Expire ``client``'s session on the server: attach a second client to the same session and close
    it (the server then closes the session for real; ``client`` later sees it as expired)."""
    session_id, password = client.client_id
    other = KazooClient(hosts=hosts, client_id=(session_id, password), timeout=client._session_timeout / 1000)
    other.start(15)
    other.stop()
    other.close()
