"""Recovery of a coordcore server process from its data dir: torn tail, mid-log corruption, snapshots.

coordcore-only: these damage coordcore's own log format (ZooKeeper's is another format).
"""
from __future__ import annotations

import glob
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest
from kazoo.client import KazooClient

from coordcore.testing.servers import CoordcoreProcess, ServerStartError, free_port

pytestmark = pytest.mark.timeout(90)


def _client(server):
    c = KazooClient(hosts=server.connect_string, timeout=10)
    c.start(timeout=10)
    return c


def _log_files(server):
    return sorted(glob.glob(os.path.join(str(server.data_dir), "coordcore-v1", "log.*")))


def _write(server, n, prefix="/n"):
    c = _client(server)
    try:
        for i in range(n):
            c.create("%s%d" % (prefix, i), b"v%d" % i)
    finally:
        c.stop()
        c.close()


def test_torn_tail_is_cut_and_every_write_survives():
    with CoordcoreProcess() as server:
        server.start()
        _write(server, 50)
        server.kill()
        with open(_log_files(server)[-1], "ab") as f:
            f.write(b"\x00\x00\x01\x00half a record")  # a crash in the middle of a write
        server.restart()
        c = _client(server)
        try:
            assert all(c.get("/n%d" % i)[0] == b"v%d" % i for i in range(50))
            c.create("/after", b"x")  # and the log accepts new writes after the cut
        finally:
            c.stop()
            c.close()
        server.kill()
        server.restart()
        c = _client(server)
        try:
            assert c.exists("/after") is not None and c.exists("/n49") is not None
        finally:
            c.stop()
            c.close()


def test_corruption_in_the_middle_of_the_log_refuses_to_serve():
    with CoordcoreProcess() as server:
        server.start()
        _write(server, 100)
        server.kill()
        path = _log_files(server)[0]
        data = bytearray(open(path, "rb").read())
        used = len(data.rstrip(b"\x00"))  # the log is preallocated: damage a record, not the spare zeros
        data[used // 2] ^= 0xFF
        open(path, "wb").write(data)
        with pytest.raises(ServerStartError) as info:
            server.restart(timeout=15)
        assert "CRC mismatch" in str(info.value) and "log." in str(info.value)


def test_snapshots_and_log_together_recover_everything():
    with CoordcoreProcess(config={"snapCount": 20}) as server:
        server.start()
        _write(server, 75)
        server.kill()
        snaps = glob.glob(os.path.join(str(server.data_dir), "coordcore-v1", "snapshot.*"))
        assert snaps, "snapCount=20 with 75+ txns must have written a snapshot"
        server.restart()
        c = _client(server)
        try:
            assert sorted(c.get_children("/")) == sorted(["zookeeper"] + ["n%d" % i for i in range(75)])
            assert c.get("/n74")[0] == b"v74"
        finally:
            c.stop()
            c.close()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_snapshots_come_from_a_forked_writer_and_serve_the_restart():
    """The server process snapshots in a forked child (copy-on-write, exact at the fork's zxid)."""
    with CoordcoreProcess(config={"snapCount": 50}) as server:
        server.start()
        pgid = server.pid
        _write(server, 400)
        deadline = time.monotonic() + 20
        while "snapshot.saved" not in server.log_path.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        text = server.log_path.read_text()
        assert "snapshot.forked" in text and "snapshot.saved" in text
        assert "snapshot.failed" not in text
        server.stop()
        # a graceful stop leaves no snapshot writer behind
        assert not _group_alive(pgid)
        server.restart()
        last_start = server.log_path.read_text().rsplit("==== start", 1)[1]
        started = [line for line in last_start.splitlines() if "server.started" in line][0]
        assert int(re.search(r"snapshot_zxid=(0x[0-9a-f]+)", started).group(1), 16) > 0  # began from a snapshot
        c = _client(server)
        try:
            assert len(c.get_children("/")) == 401
            assert c.get("/n399")[0] == b"v399"
        finally:
            c.stop()
            c.close()


def test_a_snapshot_writer_outliving_a_killed_server_does_not_hold_its_port(tmp_path):
    """kill -9 of the server while its forked snapshot writer runs: the port is free at once."""
    port = free_port()
    cfg = tmp_path / "zoo.cfg"
    cfg.write_text(f"tickTime=2000\ndataDir={tmp_path / 'data'}\nclientPort={port}\nsnapCount=500\n")
    proc = subprocess.Popen([sys.executable, "-m", "coordcore", "serve", "--config", str(cfg)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    c = KazooClient(hosts=f"127.0.0.1:{port}", timeout=10)
    try:
        c.start(timeout=20)
        c.create("/m")
        for start in range(0, 30000, 3000):  # a tree whose snapshot takes the child a while
            for f in [c.create_async(f"/m/n{i}", b"x" * 100) for i in range(start, start + 3000)]:
                f.get(10)
        children: list[str] = []
        deadline = time.monotonic() + 30
        i = 0
        while not children and time.monotonic() < deadline:
            c.create(f"/m/y{i}")  # keeps snapshots coming, one child at a time
            i += 1
            children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True,
                                      text=True).stdout.split()
        assert children, "no snapshot writer was ever seen running"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))  # what a restarted server does first
        finally:
            s.close()
    finally:
        c.stop()
        c.close()
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(10)
