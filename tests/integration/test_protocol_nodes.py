"""Znodes as a client sees them: Stat fields, sequential names, create modes, null vs empty data, paths.

Every test runs against both backends (``zk_backend``); the expected values are what Apache ZooKeeper 3.8
answers, so a coordcore failure here is a protocol disagreement.
"""
from __future__ import annotations

import time

import pytest
from kazoo.exceptions import (BadArgumentsError, NoChildrenForEphemeralsError, NodeExistsError, NoNodeError,
                              NotEmptyError)

try:
    from tests.integration import rawzk
except ImportError:  # tests/integration is not a package
    import rawzk

pytestmark = pytest.mark.timeout(60)


def wait_until(predicate, timeout=10.0, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


# ---------------------------------------------------------------- built-in nodes (fresh server)

def test_fresh_server_special_nodes(zk_server_factory):
    server = zk_server_factory({})
    with rawzk.connected(server.connect_string) as c:
        root = c.exists("/").reader().stat()
        assert (root.czxid, root.mzxid, root.pzxid, root.ctime, root.mtime) == (0, 0, 0, 0, 0)
        assert root.cversion == -1 and root.numChildren == 1 and root.version == 0 and root.aversion == 0
        assert root.dataLength == 0
        zk = c.exists("/zookeeper").reader().stat()
        assert zk.cversion == -2 and zk.numChildren == 2
        assert sorted(c.get_children("/zookeeper").reader().strings()) == ["config", "quota"]
        r = c.call(rawzk.GET_ACL, rawzk.Writer().string("/zookeeper/config").bytes()).reader()
        assert r.acls() == [(1, "world", "anyone")]
        assert r.stat().aversion == -1
        # root data is empty, not null
        data = c.get_data("/").reader().buffer()
        assert data == b""
        created = c.create("/first", b"x", op=rawzk.CREATE2).reader()
        assert created.string() == "/first"
        st = created.stat()
        assert st.czxid == st.mzxid == st.pzxid > 0
        root2 = c.exists("/").reader().stat()
        assert root2.cversion == 0 and root2.numChildren == 2 and root2.pzxid == st.czxid


# ---------------------------------------------------------------- Stat rules

def test_stat_after_create(zk_client, zk_root):
    zk_client.ensure_path(zk_root)
    path, stat = zk_client.create(zk_root + "/n", b"hello", include_data=True)
    assert path == zk_root + "/n"
    assert stat.czxid == stat.mzxid == stat.pzxid
    assert stat.ctime == stat.mtime
    assert (stat.version, stat.cversion, stat.aversion) == (0, 0, 0)
    assert stat.ephemeralOwner == 0
    assert stat.dataLength == 5 and stat.numChildren == 0
    assert zk_client.exists(zk_root + "/n") == stat
    data, stat2 = zk_client.get(zk_root + "/n")
    assert data == b"hello" and stat2 == stat


def test_stat_parent_counters_on_child_create_and_delete(zk_client, zk_root):
    zk_client.ensure_path(zk_root)
    before = zk_client.exists(zk_root)
    _, a = zk_client.create(zk_root + "/a", include_data=True)
    _, b = zk_client.create(zk_root + "/b", include_data=True)
    p = zk_client.exists(zk_root)
    assert p.cversion == before.cversion + 2 and p.numChildren == 2 and p.pzxid == b.czxid
    assert p.mzxid == before.mzxid and p.version == before.version  # data untouched
    zk_client.delete(zk_root + "/a")
    p2 = zk_client.exists(zk_root)
    assert p2.cversion == p.cversion + 1 and p2.numChildren == 1
    assert p2.pzxid > b.czxid
    # pzxid is the zxid of that delete: the next write's zxid is bigger by one
    _, c = zk_client.create(zk_root + "/c", include_data=True)
    assert c.czxid == p2.pzxid + 1
    # setData on a child does not touch the parent
    zk_client.set(zk_root + "/b", b"x")
    p3 = zk_client.exists(zk_root)
    assert p3.cversion == p2.cversion + 1 and p3.pzxid == c.czxid and p3.numChildren == 2


def test_stat_set_data_and_set_acl(zk_client, zk_root):
    zk_client.ensure_path(zk_root)
    _, created = zk_client.create(zk_root + "/n", b"12345", include_data=True)
    s1 = zk_client.set(zk_root + "/n", b"ab")
    assert s1.version == 1 and s1.dataLength == 2 and s1.mzxid > created.mzxid
    assert s1.czxid == created.czxid and s1.ctime == created.ctime and s1.mtime >= created.mtime
    assert s1.pzxid == created.pzxid and s1.cversion == 0
    s2 = zk_client.set_acls(zk_root + "/n", list(zk_client.get_acls(zk_root + "/n")[0]))
    assert s2.aversion == 1
    assert (s2.mzxid, s2.mtime, s2.version) == (s1.mzxid, s1.mtime, s1.version)  # setACL: aversion only
    s3 = zk_client.set(zk_root + "/n", None)
    assert s3.dataLength == 0 and s3.version == 2
    data, _ = zk_client.get(zk_root + "/n")
    assert data is None


def test_ephemeral_owner_is_session_id(zk_client, zk_root):
    zk_client.ensure_path(zk_root)
    _, stat = zk_client.create(zk_root + "/e", ephemeral=True, include_data=True)
    session_id, _ = zk_client.client_id
    assert stat.ephemeralOwner == session_id
    assert zk_client.exists(zk_root).ephemeralOwner == 0


def test_null_and_empty_data_are_different(zk_server, zk_root):
    with rawzk.connected(zk_server.connect_string) as c:
        assert c.create(zk_root + "/null", None).err == 0
        assert c.create(zk_root + "/empty", b"").err == 0
        r = c.get_data(zk_root + "/null").reader()
        assert r.buffer() is None and r.stat().dataLength == 0
        r = c.get_data(zk_root + "/empty").reader()
        assert r.buffer() == b"" and r.stat().dataLength == 0
        assert c.set_data(zk_root + "/empty", None).err == 0
        assert c.get_data(zk_root + "/empty").reader().buffer() is None
        assert c.set_data(zk_root + "/null", b"").err == 0
        assert c.get_data(zk_root + "/null").reader().buffer() == b""


# ---------------------------------------------------------------- sequential names

def test_sequential_names_use_parent_creation_counter(zk_client, zk_root):
    zk_client.ensure_path(zk_root)
    folder = zk_root + "/folder"
    zk_client.create(folder)
    assert zk_client.create(folder + "/a", sequence=True) == folder + "/a0000000000"
    assert zk_client.create(folder + "/a", sequence=True) == folder + "/a0000000001"
    assert zk_client.create(folder + "/", sequence=True) == folder + "/0000000002"
    zk_client.create(folder + "/plain")  # non-sequential creates count too
    zk_client.delete(folder + "/a0000000000")  # deletes do not give numbers back
    zk_client.delete(folder + "/a0000000001")
    assert zk_client.create(folder + "/b-", sequence=True, ephemeral=True) == folder + "/b-0000000004"
    assert zk_client.exists(folder).cversion == 7  # 5 creates + 2 deletes


def test_sequential_collision(zk_client, zk_root):
    zk_client.ensure_path(zk_root)
    zk_client.create(zk_root + "/x0000000000")  # counter 0 -> 1
    zk_client.create(zk_root + "/x0000000002")  # counter 1 -> 2
    with pytest.raises(NodeExistsError):
        zk_client.create(zk_root + "/x", sequence=True)  # wants x0000000002
    # the failed create did not advance the counter
    with pytest.raises(NodeExistsError):
        zk_client.create(zk_root + "/x", sequence=True)
    assert zk_client.create(zk_root + "/y", sequence=True) == zk_root + "/y0000000002"


def test_trailing_slash_only_for_sequential(zk_server, zk_root):
    with rawzk.connected(zk_server.connect_string) as c:
        assert c.create(zk_root + "/").err == rawzk.BADARGUMENTS
        r = c.create(zk_root + "/", flags=2)
        assert r.err == 0 and r.reader().string() == zk_root + "/0000000000"


# ---------------------------------------------------------------- create modes

def test_ephemeral_cannot_have_children(zk_client, zk_root):
    zk_client.ensure_path(zk_root)
    zk_client.create(zk_root + "/e", ephemeral=True)
    with pytest.raises(NoChildrenForEphemeralsError):
        zk_client.create(zk_root + "/e/child")
    with pytest.raises(NoChildrenForEphemeralsError):
        zk_client.create(zk_root + "/e/child", sequence=True, ephemeral=True)


def test_invalid_create_flags_are_badarguments(zk_server, zk_root):
    with rawzk.connected(zk_server.connect_string) as c:
        for flags in (7, 8, -1, 100):
            assert c.create(zk_root + "/f", flags=flags).err == rawzk.BADARGUMENTS, flags
        # a TTL mode through create/create2 (no ttl field) with TTLs disabled: UNIMPLEMENTED
        for flags in (5, 6):
            assert c.create(zk_root + "/f", flags=flags).err == rawzk.UNIMPLEMENTED
            assert c.create(zk_root + "/f", flags=flags, op=rawzk.CREATE2).err == rawzk.UNIMPLEMENTED
        assert c.exists(zk_root + "/f").err == rawzk.NONODE


def test_ttl_disabled_is_unimplemented(zk_server, zk_root):
    with rawzk.connected(zk_server.connect_string) as c:
        r = c.create(zk_root + "/ttl", b"", flags=5, op=rawzk.CREATE_TTL, ttl=1000)
        assert r.err == rawzk.UNIMPLEMENTED
        assert c.exists(zk_root + "/ttl").err == rawzk.NONODE


def test_container_create_via_opcode_19(zk_server, zk_root):
    with rawzk.connected(zk_server.connect_string) as c:
        r = c.create(zk_root + "/box", b"d", flags=4, op=rawzk.CREATE_CONTAINER)
        assert r.err == 0
        rd = r.reader()
        assert rd.string() == zk_root + "/box"
        st = rd.stat()
        assert st.ephemeralOwner == 0 and st.czxid == st.mzxid and st.dataLength == 1
        # ZooKeeper 3.8 also accepts the container flag through plain create (op 1)
        assert c.create(zk_root + "/box2", flags=4).err == 0
        # and createContainer with flags 0 creates a container too
        assert c.create(zk_root + "/box3", flags=0, op=rawzk.CREATE_CONTAINER).err == 0
        # a container flag through createTTL is refused
        assert c.create(zk_root + "/box4", flags=4, op=rawzk.CREATE_TTL, ttl=5).err == rawzk.BADARGUMENTS


@pytest.fixture
def extended_server(zk_server_factory):
    """One fresh server with TTL enabled and a fast container/TTL reaper."""
    return zk_server_factory({"extendedTypesEnabled": True, "znode.container.checkIntervalMs": 100})


def test_ttl_and_container_lifecycle(extended_server):
    with rawzk.connected(extended_server.connect_string) as c:
        # TTL argument checks
        assert c.create("/t0", flags=5, op=rawzk.CREATE_TTL, ttl=0).err == rawzk.BADARGUMENTS
        assert c.create("/t0", flags=5, op=rawzk.CREATE_TTL, ttl=-5).err == rawzk.BADARGUMENTS
        assert c.create("/t0", flags=5, op=rawzk.CREATE_TTL, ttl=0x10000000000).err == rawzk.BADARGUMENTS
        assert c.create("/t0", flags=0, op=rawzk.CREATE_TTL, ttl=100).err == rawzk.BADARGUMENTS
        assert c.create("/t0", flags=1, op=rawzk.CREATE_TTL, ttl=100).err == rawzk.BADARGUMENTS
        # a TTL node with a long ttl survives, with ephemeralOwner 0
        r = c.create("/keep", b"", flags=5, op=rawzk.CREATE_TTL, ttl=600000)
        assert r.err == 0
        rd = r.reader()
        assert rd.string() == "/keep" and rd.stat().ephemeralOwner == 0
        # sequential TTL
        r = c.create("/seq", b"", flags=6, op=rawzk.CREATE_TTL, ttl=600000)
        assert r.err == 0 and r.reader().string() == "/seq0000000001"  # failed creates do not count
        # a short TTL node is reaped once expired
        assert c.create("/short", b"", flags=5, op=rawzk.CREATE_TTL, ttl=200).err == 0
        # containers: reaped only after having had a child and becoming empty
        assert c.create("/box", flags=4, op=rawzk.CREATE_CONTAINER).err == 0
        assert c.create("/never", flags=4, op=rawzk.CREATE_CONTAINER).err == 0
        assert c.create("/box/child").err == 0
        # a TTL node with a child is not reaped
        assert c.create("/ttlparent", b"", flags=5, op=rawzk.CREATE_TTL, ttl=200).err == 0
        assert c.create("/ttlparent/kid").err == 0
        assert c.exists("/never", watch=True).err == 0
        assert c.exists("/short", watch=True).err == 0
        deadline = time.monotonic() + 10
        while c.exists("/short").err != rawzk.NONODE:
            assert time.monotonic() < deadline, "TTL node not reaped"
            time.sleep(0.1)
        assert c.delete("/box/child").err == 0
        while c.exists("/box").err != rawzk.NONODE:
            assert time.monotonic() < deadline, "empty container not reaped"
            time.sleep(0.1)
        time.sleep(0.5)  # several reaper intervals
        assert c.exists("/never").err == 0  # never had a child: kept
        assert c.exists("/keep").err == 0
        assert c.exists("/ttlparent").err == 0
        # the deletion of /short fired the exists-watch
        types = [(e.type, e.path) for e in c.events]
        assert (2, "/short") in types


# ---------------------------------------------------------------- paths

# Path validation as ZooKeeper 3.8 does it, observed: for each path (``{r}`` is an existing node), the error
# of create, sequential create, delete, setData, getData, exists, getChildren and sync.  Note the quirks:
# create validates the final path only after the parent lookup (so "/a//b" is NONODE), reads never validate
# (except exists, which rejects NUL), delete checks the parent first, setData validates first, sync never.
N, B, OK = rawzk.NONODE, rawzk.BADARGUMENTS, 0
PATH_MATRIX = [
    # path            create seq  delete set  get  exists gc   sync
    ("",              (B,    B,   B,     B,   OK,  OK,    OK,  OK)),
    ("noslash",       (B,    B,   B,     B,   N,   N,     N,   OK)),
    ("{r}/",          (B,    OK,  N,     B,   N,   N,     N,   OK)),
    ("{r}//b",        (N,    N,   N,     B,   N,   N,     N,   OK)),
    ("{r}/.",         (B,    OK,  N,     B,   N,   N,     N,   OK)),
    ("{r}/..",        (B,    OK,  N,     B,   N,   N,     N,   OK)),
    ("{r}/./b",       (N,    N,   N,     B,   N,   N,     N,   OK)),
    ("{r}/../b",      (N,    N,   N,     B,   N,   N,     N,   OK)),
    ("{r}/b/",        (N,    N,   N,     B,   N,   N,     N,   OK)),
    ("{r}/b\x00",     (B,    B,   B,     B,   N,   B,     N,   OK)),
    ("{r}/\x01b",     (B,    B,   N,     B,   N,   N,     N,   OK)),
    ("{r}/\x7fb",     (B,    B,   N,     B,   N,   N,     N,   OK)),
    ("{r}/\x85b",     (B,    B,   N,     B,   N,   N,     N,   OK)),
    ("{r}/\ue000b",   (B,    B,   N,     B,   N,   N,     N,   OK)),
    ("{r}/\ufff0b",   (B,    B,   N,     B,   N,   N,     N,   OK)),
    ("{r}/\U0001f600", (B,    B,   N,     B,   N,   N,     N,   OK)),
    ("//",            (B,    B,   N,     B,   N,   N,     N,   OK)),
]


@pytest.mark.parametrize("template,expected", PATH_MATRIX, ids=[t for t, _ in PATH_MATRIX])
def test_path_validation_matrix(zk_server, zk_root, template, expected):
    path = template.format(r=zk_root)
    with rawzk.connected(zk_server.connect_string) as c:

        def create(flags):
            w = rawzk.Writer().buffer(path.encode("utf-8")).buffer(b"").acls(rawzk.OPEN_ACL).int(flags)
            return c.call(rawzk.CREATE, w.bytes()).err

        got = (create(0), create(2), c.delete(path).err, c.set_data(path, b"").err, c.get_data(path).err,
               c.exists(path).err, c.get_children(path).err, c.sync(path).err)
        assert got == expected


def test_special_nodes_cannot_be_deleted(zk_server):
    with rawzk.connected(zk_server.connect_string) as c:
        for path in ("/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"):
            assert c.delete(path).err == rawzk.BADARGUMENTS, path
        assert c.create("/").err == rawzk.NODEEXISTS


def test_unicode_bmp_path_round_trips(zk_client, zk_root):
    zk_client.ensure_path(zk_root)
    path = zk_root + "/h\u00e9llo-\u4e16\u754c"
    zk_client.create(path, b"v")
    assert zk_client.get_children(zk_root) == ["h\u00e9llo-\u4e16\u754c"]


def test_delete_rules(zk_client, zk_root):
    zk_client.ensure_path(zk_root + "/p/c")
    with pytest.raises(NotEmptyError):
        zk_client.delete(zk_root + "/p")
    with pytest.raises(NoNodeError):
        zk_client.delete(zk_root + "/nope")
    zk_client.delete(zk_root + "/p", recursive=True)
    assert zk_client.exists(zk_root + "/p") is None


def test_coordcore_lists_children_sorted_on_every_run():
    # ZooKeeper leaves getChildren's order unspecified; coordcore sorts, so a listing does not change
    # from one server process to the next (a set's order would: str hashes are seeded per process).
    from kazoo.client import KazooClient  # noqa: PLC0415

    from coordcore.testing import make_server  # noqa: PLC0415

    names = ["n", "a", "q", "d", "z", "k", "w", "y", "b", "c", "e", "m", "0000000001", "Z", "é"]
    for _ in range(2):
        server = make_server("coordcore")
        server.start()
        zk = KazooClient(hosts=server.connect_string)
        try:
            zk.start(30)
            for name in names:
                zk.create(f"/ord/{name}", makepath=True)
            assert zk.get_children("/ord") == sorted(names)
            children, stat = zk.get_children("/ord", include_data=True)
            assert children == sorted(names) and stat.numChildren == len(names)
            server.restart()
            assert zk.get_children("/ord") == sorted(names)
        finally:
            zk.stop()
            zk.close()
            server.close()
