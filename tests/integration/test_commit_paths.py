"""Both group-commit paths (fsync on the loop for a fast disk, on the storage thread for a slow one)
acknowledge only durable writes, in order, and switch between each other as the disk's speed changes."""
from __future__ import annotations

import tempfile

import pytest
from kazoo.client import KazooClient

from coordcore.config import ServerConfig
from coordcore.runtime import serve

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("inline_max_s", [1.0, 0.0], ids=["loop-thread-fsync", "storage-thread-fsync"])
def test_pipelined_writes_are_durable_and_in_order(monkeypatch, inline_max_s):
    monkeypatch.setattr(serve, "SYNC_INLINE_MAX_S", inline_max_s)
    data_dir = tempfile.mkdtemp()
    server = serve.ServerThread(ServerConfig(client_port=0, data_dir=data_dir)).start()
    try:
        c = KazooClient(hosts="127.0.0.1:%d" % server.port)
        c.start(10)
        c.create("/p")
        results = [c.create_async("/p/n-", b"%d" % i, sequence=True) for i in range(300)]
        names = [r.get(10) for r in results]
        # replies arrive in request order, with the sequence numbers the server assigned in that order
        assert names == ["/p/n-%010d" % i for i in range(300)]
        sets = [c.set_async("/p", b"v%d" % i) for i in range(100)]
        versions = [s.get(10).version for s in sets]
        assert versions == list(range(1, 101))
        assert server.server.syncs > 0
        c.stop()
        c.close()
    finally:
        server.crash()
    # everything acknowledged is on disk: a new server on the same directory has it all
    again = serve.ServerThread(ServerConfig(client_port=0, data_dir=data_dir)).start()
    try:
        c = KazooClient(hosts="127.0.0.1:%d" % again.port)
        c.start(10)
        assert len(c.get_children("/p")) == 300
        assert c.get("/p")[0] == b"v99"
        c.stop()
        c.close()
    finally:
        again.stop()
