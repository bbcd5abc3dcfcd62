"""A finished snapshot lets go of the tree it encoded.

The server runs with the cyclic collector almost never doing a full pass (the
tree is millions of long-lived objects), so anything a snapshot leaves in a
reference cycle stays resident: once, that was every node the snapshot saw
plus its encoded bytes -- 170 MiB after a benchmark whose nodes were all
deleted.  With the collector off, deleted nodes must still be freed.
"""
from __future__ import annotations

import gc
import time

import pytest
from kazoo.client import KazooClient

from coordcore.config import ServerConfig
from coordcore.runtime import serve
from coordcore.tree.datatree import ZNode

pytestmark = pytest.mark.timeout(60)


def test_deleted_nodes_are_freed_after_snapshots_without_the_cycle_collector(tmp_path):
    server = serve.ServerThread(ServerConfig(client_port=0, data_dir=str(tmp_path), snap_count=100)).start()
    c = KazooClient(hosts="127.0.0.1:%d" % server.port)
    gc.collect()
    gc.disable()
    try:
        # other servers of the test session (the shared embedded one) hold znodes too, idle meanwhile
        others = sum(1 for o in gc.get_objects() if type(o) is ZNode) - server.server.node.committed.node_count()
        c.start(10)
        c.create("/p")
        for r in [c.create_async("/p/n%d" % i, b"x" * 100) for i in range(500)]:
            r.get(10)
        for r in [c.delete_async("/p/n%d" % i) for i in range(500)]:
            r.get(10)
        c.create("/done")  # one more batch, so the last snapshot has surely been started
        deadline = time.monotonic() + 10
        while server.server.snapshotting and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not server.server.snapshotting
        assert len(list(tmp_path.rglob("snapshot.*"))) >= 1
        live = sum(1 for o in gc.get_objects() if type(o) is ZNode)
        assert live - others == server.server.node.committed.node_count()
    finally:
        gc.enable()
        c.stop()
        c.close()
        server.stop()
