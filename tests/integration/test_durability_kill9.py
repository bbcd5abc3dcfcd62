"""kill -9 durability: every write a client saw acknowledged survives a server crash.

A writer *process* (kazoo) writes in a loop and prints one line per acknowledged write (flushed); the
test SIGKILLs the server process mid-stream, restarts it on the same data dir and port, and checks that
every acknowledged write is there and that the zxid counter did not go backwards.  The pipelined case
keeps many requests outstanding so that several txns share one log write/fsync (group commit).

A SIGKILL ends the process, not the machine: data the server had handed to the kernel survives it even
without fsync.  So this catches acknowledging before the write reached the OS (user-space buffers, a
reply sent before the log write), not a missing fsync; the storage tests cover lost unsynced writes.
"""
from __future__ import annotations

import subprocess
import sys
import threading
import time

from kazoo.client import KazooClient

WRITER = r'''
import os, sys, threading, time
from kazoo.client import KazooClient

hosts, root, mode, outstanding = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
MAX_WRITES, MAX_SECONDS = 200000, 120
out_lock = threading.Lock()

def emit(line):
    with out_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

def finish(code):
    sys.stdout.flush()
    os._exit(code)  # do not wait for kazoo's threads to notice the dead server

client = KazooClient(hosts=hosts, timeout=10, connection_retry=None)
client.start(timeout=15)
client.ensure_path(root + "/nodes")
client.create(root + "/counter", b"0")
emit("READY")
deadline = time.monotonic() + MAX_SECONDS

if mode == "sync":
    # alternate a create of a new node and a set of one counter node; wait for each reply
    for i in range(MAX_WRITES):
        if time.monotonic() > deadline:
            break
        try:
            if i % 2 == 0:
                path, stat = client.create_async(f"{root}/nodes/n{i:08d}", str(i).encode(),
                                                 include_data=True).get(timeout=10)
                emit(f"C {path} {i} {stat.mzxid}")
            else:
                stat = client.set_async(root + "/counter", str(i).encode()).get(timeout=10)
                emit(f"S {root}/counter {i} {stat.mzxid} {stat.version}")
        except Exception as e:
            emit(f"ERR {type(e).__name__}")
            finish(0)
else:
    # pipelined creates: keep `outstanding` requests in flight, print each reply as it arrives
    window = threading.Semaphore(outstanding)
    failed = threading.Event()

    def make_callback(i):
        def done(result):
            try:
                path, stat = result.get()
                emit(f"C {path} {i} {stat.mzxid}")
            except Exception as e:
                failed.set()
                emit(f"ERR {type(e).__name__}")
            finally:
                window.release()
        return done

    for i in range(MAX_WRITES):
        while not window.acquire(timeout=1):
            if failed.is_set() or time.monotonic() > deadline:
                finish(0)
        if failed.is_set() or time.monotonic() > deadline:
            finish(0)
        client.create_async(f"{root}/nodes/n{i:08d}", str(i).encode(),
                            include_data=True).rawlink(make_callback(i))
emit("DONE")
finish(0)
'''


class Writer:
    """The writer process and a thread collecting its acknowledgement lines."""

    def __init__(self, script, hosts, root, mode, outstanding=1):
        self.proc = subprocess.Popen([sys.executable, str(script), hosts, root, mode, str(outstanding)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self.cond = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.lines.append("<EOF>")
            self.cond.notify_all()

    def acks(self) -> list[list[str]]:
        with self.cond:
            return [line.split() for line in self.lines if line[:2] in ("C ", "S ")]

    def wait_for_acks(self, n: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                count = sum(1 for line in self.lines if line[:2] in ("C ", "S "))
                if count >= n:
                    return
                if "<EOF>" in self.lines or time.monotonic() > deadline:
                    break
                self.cond.wait(timeout=0.5)
        self.stop()
        raise AssertionError(f"writer made {count} acknowledged writes, wanted {n}; output tail: "
                             f"{self.lines[-5:]}; stderr: {self.proc.stderr.read()[-2000:]}")

    def wait_for_exit(self, timeout: float) -> None:
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop()
        self.reader.join(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def _crash_and_check(zk_server_factory, tmp_path, mode, outstanding, acks_before_kill):
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    server = zk_server_factory()  # a process of its own for either backend: kill() is SIGKILL
    assert server.pid is not None
    root = "/durability"
    writer = Writer(script, server.connect_string, root, mode, outstanding)
    try:
        writer.wait_for_acks(acks_before_kill, timeout=90)
        server.kill()  # SIGKILL mid-stream: the writer is still writing
        writer.wait_for_exit(timeout=60)
    finally:
        writer.stop()
    acks = writer.acks()
    assert "DONE" not in writer.lines, "the writer finished before the crash; nothing was tested"
    assert len(acks) >= acks_before_kill

    server.restart()
    client = KazooClient(hosts=server.connect_string, timeout=10)
    client.start(timeout=15)
    try:
        max_acked_zxid = 0
        last_set = None
        missing = []
        for ack in acks:
            kind, path, value, mzxid = ack[0], ack[1], ack[2], int(ack[3])
            max_acked_zxid = max(max_acked_zxid, mzxid)
            if kind == "C":
                stat = client.exists(path)
                if stat is None:
                    missing.append(path)
                else:
                    assert client.get(path)[0] == value.encode()
                    assert stat.czxid == mzxid
            else:
                last_set = (value, mzxid, int(ack[4]))
        assert not missing, f"{len(missing)} of {len(acks)} acknowledged creates lost, e.g. {missing[:5]}"
        if last_set is not None:
            data, stat = client.get(root + "/counter")
            # later sets may have been applied without their reply reaching the writer; never fewer
            assert stat.version >= last_set[2] and stat.mzxid >= last_set[1]
            if stat.version == last_set[2]:
                assert data == last_set[0].encode()
        # zxids continue from where they were: a new write is ordered after every acknowledged one
        _, stat = client.create(root + "/after-restart", include_data=True)
        assert stat.czxid > max_acked_zxid
        print(f"{server.backend} {mode}: {len(acks)} acknowledged writes before SIGKILL, all recovered")
    finally:
        client.stop()
        client.close()


def test_acknowledged_writes_survive_sigkill(zk_server_factory, tmp_path):
    _crash_and_check(zk_server_factory, tmp_path, "sync", 1, acks_before_kill=400)


def test_pipelined_acknowledged_writes_survive_sigkill(zk_server_factory, tmp_path):
    _crash_and_check(zk_server_factory, tmp_path, "pipelined", 64, acks_before_kill=2000)



def _wait_until(predicate, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def test_live_session_and_its_ephemeral_survive_sigkill(zk_server_factory):
    """A client that reconnects within its session timeout keeps its session and ephemerals across a
    server crash (sessions are recovered from the log, with a fresh timeout, as ZooKeeper does)."""
    from kazoo.protocol.states import KazooState

    server = zk_server_factory()
    client = KazooClient(hosts=server.connect_string, timeout=10,
                         connection_retry={"max_tries": -1, "delay": 0.1, "backoff": 1.5, "max_delay": 0.5})
    client.start(timeout=15)
    try:
        session_id = client.client_id[0]
        client.create("/mine", b"e", ephemeral=True)
        server.kill()
        assert _wait_until(lambda: client.state != KazooState.CONNECTED, timeout=15)
        server.restart()
        assert _wait_until(lambda: client.state == KazooState.CONNECTED, timeout=30), "client never reconnected"
        assert client.client_id[0] == session_id
        stat = client.exists("/mine")
        assert stat is not None and stat.ephemeralOwner == session_id
    finally:
        client.stop()
        client.close()


def test_session_that_does_not_come_back_expires_after_restart(zk_server_factory):
    """A session recovered from the log whose client never returns is expired, and its ephemerals go."""
    server = zk_server_factory()
    owner = KazooClient(hosts=server.connect_string, timeout=4, connection_retry={"max_tries": 0})
    owner.start(timeout=15)
    owner.create("/theirs", b"e", ephemeral=True)
    server.kill()
    owner.stop()  # the server is down: no closeSession reaches it
    owner.close()
    server.restart()
    watcher = KazooClient(hosts=server.connect_string, timeout=10)
    watcher.start(timeout=15)
    try:
        assert watcher.exists("/theirs") is not None  # recovered with its session
        assert _wait_until(lambda: watcher.exists("/theirs") is None, timeout=30), "session never expired"
    finally:
        watcher.stop()
        watcher.close()
