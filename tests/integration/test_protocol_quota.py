"""Quotas, as zkCli's setquota/listquota use them: the server keeps /zookeeper/quota/<path>/zookeeper_stats
equal to the subtree's node count and data bytes, and with enforceQuota fails writes past a hard limit.
Every test runs against coordcore and Apache ZooKeeper."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import MarshallingError, QuotaExceededError

from coordcore.testing import make_server

pytestmark = pytest.mark.timeout(90)

QUOTA = "/zookeeper/quota"


def set_quota(zk, path: str, limits: bytes) -> None:
    """What zkCli's setquota does for a path without a quota: the limits node, then the stats node."""
    zk.ensure_path(QUOTA + path)
    zk.create(f"{QUOTA}{path}/zookeeper_limits", limits)
    zk.create(f"{QUOTA}{path}/zookeeper_stats", b"count=0,bytes=0")


def stats(zk, path: str) -> bytes:
    return zk.get(f"{QUOTA}{path}/zookeeper_stats")[0]


def test_stats_count_the_subtree_and_follow_every_write(zk_client, zk_root):
    q = zk_root + "/q"
    zk_client.create(q)
    zk_client.create(q + "/a", b"12345")
    zk_client.create(q + "/b")
    zk_client.create(q + "/b/c", b"1234567890")
    zk_client.create(zk_root + "/outside", b"not counted")
    set_quota(zk_client, q, b"count=5,bytes=-1")
    assert stats(zk_client, q) == b"count=4,bytes=15"

    zk_client.create(q + "/d", b"xyz")
    assert stats(zk_client, q) == b"count=5,bytes=18"
    zk_client.create(q + "/e", b"over the soft limit: only reported")
    assert stats(zk_client, q) == b"count=6,bytes=52"
    zk_client.set(q + "/a", b"1")
    assert stats(zk_client, q) == b"count=6,bytes=48"
    zk_client.delete(q + "/e")
    zk_client.delete(q + "/b", recursive=True)
    assert stats(zk_client, q) == b"count=3,bytes=4"
    t = zk_client.transaction()
    t.create(q + "/m1", b"ab")
    t.create(q + "/m2")
    t.set_data(q + "/d", b"")
    t.commit()
    assert stats(zk_client, q) == b"count=5,bytes=3"
    zk_client.create(zk_root + "/outside/x", b"still not counted")
    zk_client.set(zk_root + "/outside", b"")
    assert stats(zk_client, q) == b"count=5,bytes=3"

    # rewritten in place: no new version, mzxid or watch, only the data (and so dataLength)
    data, st = zk_client.get(f"{QUOTA}{q}/zookeeper_stats")
    assert (st.version, st.mzxid, st.data_length) == (0, st.czxid, len(data))


def test_ephemerals_of_a_closed_session_leave_the_stats(zk_client_factory, zk_root):
    admin = zk_client_factory()
    q = zk_root + "/eph"
    admin.create(q)
    set_quota(admin, q, b"count=-1,bytes=100")
    other = zk_client_factory()
    for i in range(3):
        other.create(f"{q}/e{i}", b"xx", ephemeral=True)
    assert stats(admin, q) == b"count=4,bytes=6"
    other.stop()
    other.close()
    assert stats(admin, q) == b"count=1,bytes=0"


def test_deleting_the_limits_node_stops_the_counting(zk_client, zk_root):
    q = zk_root + "/gone"
    zk_client.create(q)
    set_quota(zk_client, q, b"count=3,bytes=-1")
    zk_client.create(q + "/a")
    assert stats(zk_client, q) == b"count=2,bytes=0"
    zk_client.delete(f"{QUOTA}{q}/zookeeper_limits")
    zk_client.create(q + "/b")
    assert stats(zk_client, q) == b"count=2,bytes=0"


def test_extra_keys_are_kept_sorted_after_count_and_bytes(zk_client, zk_root):
    q = zk_root + "/x"
    zk_client.create(q, b"ab")
    set_quota(zk_client, q, b"count=-1,bytes=-1=;countHardLimit=10")
    zk_client.set(f"{QUOTA}{q}/zookeeper_stats", b"count=1;zeta=3,bytes=2;alpha=-1")
    zk_client.create(q + "/c", b"xyz")
    assert stats(zk_client, q) == b"count=2,bytes=5=;alpha=-1;zeta=3"


def test_nested_quota_counts_in_the_deepest_one(zk_client, zk_root):
    outer, inner = zk_root + "/o", zk_root + "/o/i"
    zk_client.create(inner, makepath=True)
    set_quota(zk_client, outer, b"count=100,bytes=-1")
    set_quota(zk_client, inner, b"count=100,bytes=-1")
    assert (stats(zk_client, outer), stats(zk_client, inner)) == (b"count=2,bytes=0", b"count=1,bytes=0")
    zk_client.create(inner + "/n", b"abc")
    zk_client.create(outer + "/n", b"de")
    assert (stats(zk_client, outer), stats(zk_client, inner)) == (b"count=3,bytes=2", b"count=2,bytes=3")


def _newest_snapshot_zxid(data_dir: Path) -> int:
    zxids = [int(p.name.split(".")[1], 16) for p in data_dir.rglob("snapshot.*")
             if len(p.name.split(".")) == 2]
    return max(zxids, default=-1)


# ZooKeeper snapshots once the txns logged since its last snapshot exceed snapCount/2 plus a random
# 0..snapCount/2-1 (SyncRequestProcessor.shouldSnapshot), so after anywhere from snapCount/2+1 to snapCount
# txns; coordcore after exactly snapCount.  Both count from the server's start.  With 100, the first part
# of the test below (about 13 txns, the launcher's readiness probe and kazoo's sessions included) ends long
# before either server can snapshot, and SNAP_COUNT writes in the second part make both snapshot.
SNAP_COUNT = 100


def test_stats_follow_a_restart_and_are_recounted_from_a_snapshot(zk_server_factory):
    server = zk_server_factory({"snapCount": SNAP_COUNT})
    data_dir = Path(server.zoo_cfg()["dataDir"])
    zk = KazooClient(hosts=server.connect_string)
    zk.start(30)
    try:
        zk.create("/r/a", b"abc", makepath=True)
        set_quota(zk, "/r", b"count=10,bytes=-1")
        zk.create("/r/b", b"de")
        # Stats written by a client stand until the server recounts them, which it does only for
        # the quotas in a snapshot it loads; the txns replayed after it update them as they go.
        written = zk.set(f"{QUOTA}/r/zookeeper_stats", b"count=999,bytes=999").mzxid
        zk.create("/r/c")
        assert stats(zk, "/r") == b"count=1000,bytes=999"
    finally:
        zk.stop()
    server.stop()
    assert _newest_snapshot_zxid(data_dir) < written, "a snapshot holds the written stats: raise SNAP_COUNT"
    server.start()
    zk.start(30)
    try:
        assert stats(zk, "/r") == b"count=1000,bytes=999"  # no snapshot since: replayed
        stamp = zk.set(f"{QUOTA}/r/zookeeper_stats", b"count=7,bytes=7").mzxid
        for i in range(SNAP_COUNT):
            zk.create(f"/elsewhere-{i}")
        deadline = time.monotonic() + 20  # ZooKeeper writes its snapshot on a thread of its own
        while _newest_snapshot_zxid(data_dir) < stamp and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _newest_snapshot_zxid(data_dir) >= stamp
        zk.create("/r/d", b"f")
    finally:
        zk.stop()
    server.restart()
    zk.start(30)
    try:
        assert stats(zk, "/r") == b"count=5,bytes=6"  # recounted from the snapshot, then /r/d replayed
    finally:
        zk.stop()
        zk.close()


@pytest.fixture
def enforcing_client(zk_server_factory):
    server = zk_server_factory({"enforceQuota": "true"})
    zk = KazooClient(hosts=server.connect_string)
    zk.start(30)
    yield zk
    zk.stop()
    zk.close()


def test_enforced_hard_limits_fail_writes(enforcing_client):
    zk = enforcing_client
    zk.create("/h")
    set_quota(zk, "/h", b"count=-1,bytes=-1=;byteHardLimit=10;countHardLimit=3")
    zk.create("/h/a", b"12345")
    zk.create("/h/b")
    with pytest.raises(QuotaExceededError):
        zk.create("/h/c")
    with pytest.raises(QuotaExceededError):
        zk.set("/h/a", b"12345678901")
    t = zk.transaction()  # in a multi, the whole transaction fails
    t.set_data("/h/a", b"1")
    t.create("/h/c")
    results = t.commit()
    assert isinstance(results[1], QuotaExceededError), results
    assert zk.get("/h/a")[0] == b"12345"
    zk.set("/h/a", b"1234567890")  # exactly at the limit
    zk.delete("/h/b")
    zk.create("/h/c")
    assert stats(zk, "/h") == b"count=3,bytes=10"


def test_soft_limits_are_not_enforced(enforcing_client):
    zk = enforcing_client
    zk.create("/s")
    set_quota(zk, "/s", b"count=1,bytes=1")
    zk.create("/s/a", b"too many bytes")
    assert stats(zk, "/s") == b"count=2,bytes=14"


def test_hard_limits_are_not_enforced_by_default(zk_client, zk_root):
    q = zk_root + "/d"
    zk_client.create(q)
    set_quota(zk_client, q, b"count=-1,bytes=-1=;countHardLimit=1")
    zk_client.create(q + "/a")
    assert stats(zk_client, q) == b"count=2,bytes=0"


def test_unreadable_limits_fail_an_enforced_write_with_marshalling_error(enforcing_client):
    zk = enforcing_client
    zk.create("/u")
    set_quota(zk, "/u", b"count=-1,bytes=-1=;countHardLimit=3")
    zk.set(f"{QUOTA}/u/zookeeper_limits", b"not a limit")  # ZooKeeper's parser throws on it
    with pytest.raises(MarshallingError):
        zk.create("/u/a")
    zk.set(f"{QUOTA}/u/zookeeper_limits", b"count=-1,bytes=-1=;countHardLimit=3")
    zk.create("/u/a")
    assert stats(zk, "/u") == b"count=2,bytes=0"


def test_unreadable_stats_are_left_alone_and_the_server_keeps_serving():
    # coordcore only: ZooKeeper 3.8 dies on this input -- its apply thread throws on the stats data
    # ("Severe unrecoverable error, from thread SyncThread") and the server exits.
    server = make_server("coordcore")
    server.start()
    zk = KazooClient(hosts=server.connect_string)
    try:
        zk.start(30)
        zk.create("/bad")
        set_quota(zk, "/bad", b"count=10,bytes=-1")
        zk.set(f"{QUOTA}/bad/zookeeper_stats", b"garbage")
        zk.create("/bad/a", b"x")
        zk.set("/bad/a", b"xyz")
        assert stats(zk, "/bad") == b"garbage"
        zk.set(f"{QUOTA}/bad/zookeeper_stats", b"count=2,bytes=3")
        zk.delete("/bad/a")
        assert stats(zk, "/bad") == b"count=1,bytes=0"
    finally:
        zk.stop()
        zk.close()
        server.close()
