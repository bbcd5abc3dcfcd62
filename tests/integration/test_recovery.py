"""Recovery of a coordcore server process from its data dir: torn tail, mid-log corruption, snapshots.

coordcore-only: these damage coordcore's own log format (ZooKeeper's is another format).
"""
from __future__ import annotations

import glob
import os

import pytest
from kazoo.client import KazooClient

from coordcore.testing.servers import CoordcoreProcess, ServerStartError

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
