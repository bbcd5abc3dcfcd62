"""multi/transaction results exactly as ZooKeeper returns them, the check op, error codes and precedence."""
from __future__ import annotations

import pytest
from kazoo.exceptions import (BadVersionError, NoAuthError, NodeExistsError, NoNodeError, NotEmptyError,
                              RolledBackError, RuntimeInconsistency)
from kazoo.security import make_digest_acl

try:
    from tests.integration import rawzk
except ImportError:
    import rawzk

pytestmark = pytest.mark.timeout(60)


def test_multi_success_results_and_single_zxid(zk_client, zk_root):
    zk_client.create(zk_root + "/s", b"v0")
    t = zk_client.transaction()
    t.create(zk_root + "/a", b"1")
    t.create(zk_root + "/q-", b"", sequence=True)
    t.set_data(zk_root + "/s", b"v1")
    t.check(zk_root + "/s", 1)
    t.delete(zk_root + "/a")
    results = t.commit()
    assert results[0] == zk_root + "/a"
    assert results[1] == zk_root + "/q-0000000002"
    stat = results[2]
    assert stat.version == 1 and stat.dataLength == 2
    assert results[3] is True and results[4] is True
    # one zxid for the whole multi: the created node and the setData share it
    q = zk_client.exists(zk_root + "/q-0000000002")
    assert q.czxid == stat.mzxid
    assert q.ctime == stat.mtime
    parent = zk_client.exists(zk_root)
    assert parent.pzxid == q.czxid
    assert zk_client.exists(zk_root + "/a") is None


def test_multi_failure_results_and_atomicity(zk_client, zk_root):
    zk_client.create(zk_root + "/s", b"v0")
    before = zk_client.exists(zk_root)
    t = zk_client.transaction()
    t.create(zk_root + "/a")
    t.set_data(zk_root + "/s", b"v1")
    t.delete(zk_root + "/missing")
    t.create(zk_root + "/b")
    t.check(zk_root + "/s", 0)
    results = t.commit()
    assert [type(r) for r in results] == [RolledBackError, RolledBackError, NoNodeError, RuntimeInconsistency,
                                          RuntimeInconsistency]
    assert zk_client.exists(zk_root + "/a") is None
    assert zk_client.get(zk_root + "/s")[0] == b"v0"
    after = zk_client.exists(zk_root)
    assert (after.cversion, after.numChildren, after.pzxid) == (before.cversion, before.numChildren,
                                                                before.pzxid)


def test_multi_sees_its_own_earlier_ops(zk_client, zk_root):
    t = zk_client.transaction()
    t.create(zk_root + "/p")
    t.create(zk_root + "/p/c")
    t.set_data(zk_root + "/p/c", b"x")
    t.check(zk_root + "/p/c", 1)
    t.delete(zk_root + "/p/c")
    t.delete(zk_root + "/p")
    t.create(zk_root + "/p", b"again")
    results = t.commit()
    assert results[0] == zk_root + "/p" and results[-1] == zk_root + "/p"
    assert zk_client.get(zk_root + "/p")[0] == b"again"
    # the root saw 2 creates and 1 delete of its children: cversion 3
    assert zk_client.exists(zk_root).cversion == 3


def test_multi_errors_per_kind(zk_client, zk_root):
    zk_client.create(zk_root + "/x", b"")
    zk_client.create(zk_root + "/x/y", b"")
    cases = [
        (lambda t: t.create(zk_root + "/x"), NodeExistsError),
        (lambda t: t.delete(zk_root + "/x"), NotEmptyError),
        (lambda t: t.set_data(zk_root + "/x", b"", version=5), BadVersionError),
        (lambda t: t.check(zk_root + "/x", 3), BadVersionError),
        (lambda t: t.check(zk_root + "/nope", 0), NoNodeError),
        (lambda t: t.delete(zk_root + "/x/y", version=2), BadVersionError),
    ]
    for add, exc in cases:
        t = zk_client.transaction()
        add(t)
        assert [type(r) for r in t.commit()] == [exc]


def test_multi_failed_consumes_one_zxid(zk_client, zk_root):
    _, s1 = zk_client.create(zk_root + "/z1", include_data=True)
    t = zk_client.transaction()
    t.create(zk_root + "/ok")
    t.create(zk_root + "/z1")
    t.commit()
    _, s2 = zk_client.create(zk_root + "/z2", include_data=True)
    assert s2.czxid == s1.czxid + 2


def test_raw_multi_reply_layout(zk_server, zk_root):
    """Header err 0 on a failed multi, per-op headers with error type -1 and 0/-2 fill-ins."""
    with rawzk.connected(zk_server.connect_string) as c:
        w = rawzk.Writer()
        # ZooKeeper 3.8 answers a create2 (op 15) inside multi with a plain create result (path only)
        w.int(rawzk.CREATE2).bool(False).int(-1).string(zk_root + "/c2").buffer(b"ab").acls(rawzk.OPEN_ACL).int(0)
        w.int(rawzk.CHECK).bool(False).int(-1).string(zk_root + "/c2").int(0)
        w.int(-1).bool(True).int(-1)
        r = c.call(rawzk.MULTI, w.bytes())
        assert r.err == 0
        res = rawzk.parse_multi(r.body)
        assert res == [(rawzk.CREATE, 0, zk_root + "/c2"), (rawzk.CHECK, 0, None)]
        st = c.exists(zk_root + "/c2").reader().stat()
        assert st.dataLength == 2 and st.czxid == r.zxid

        w = rawzk.Writer()
        w.int(rawzk.SET_DATA).bool(False).int(-1).string(zk_root + "/c2").buffer(b"x").int(-1)
        w.int(rawzk.CHECK).bool(False).int(-1).string(zk_root + "/c2").int(7)
        w.int(rawzk.DELETE).bool(False).int(-1).string(zk_root + "/c2").int(-1)
        w.int(-1).bool(True).int(-1)
        r = c.call(rawzk.MULTI, w.bytes())
        assert r.err == 0
        assert rawzk.parse_multi(r.body) == [(-1, 0, 0), (-1, rawzk.BADVERSION, rawzk.BADVERSION),
                                             (-1, rawzk.RUNTIMEINCONSISTENCY, rawzk.RUNTIMEINCONSISTENCY)]

        # empty multi is legal
        r = c.call(rawzk.MULTI, rawzk.Writer().int(-1).bool(True).int(-1).bytes())
        assert r.err == 0 and rawzk.parse_multi(r.body) == []

        # a read op inside a write multi
        w = rawzk.Writer()
        w.int(rawzk.GET_DATA).bool(False).int(-1).string(zk_root + "/c2").bool(False)
        w.int(-1).bool(True).int(-1)
        r = c.call(rawzk.MULTI, w.bytes())
        assert r.err == rawzk.MARSHALLINGERROR or (r.err == 0 and rawzk.parse_multi(r.body)[0][0] == -1)


def test_multi_read(zk_server, zk_root):
    with rawzk.connected(zk_server.connect_string) as c:
        assert c.create(zk_root + "/d", b"data").err == 0
        r = c.multi_read([(rawzk.GET_DATA, zk_root + "/d"), (rawzk.GET_CHILDREN, zk_root + "/nope"),
                          (rawzk.GET_CHILDREN, zk_root)])
        assert r.err == 0
        res = rawzk.parse_multi(r.body)
        assert res[0][0] == rawzk.GET_DATA and res[0][2][0] == b"data"
        assert res[1] == (-1, rawzk.NONODE, rawzk.NONODE)
        assert res[2] == (rawzk.GET_CHILDREN, 0, ["d"])


# ---------------------------------------------------------------- error precedence (section 12)

def test_delete_precedence(zk_client, zk_root):
    zk_client.create(zk_root + "/p/c", makepath=True)
    with pytest.raises(BadVersionError):  # BADVERSION before NOTEMPTY
        zk_client.delete(zk_root + "/p", version=3)
    with pytest.raises(NotEmptyError):
        zk_client.delete(zk_root + "/p", version=0)
    with pytest.raises(NoNodeError):  # missing parent
        zk_client.delete(zk_root + "/nope/c", version=3)


def test_acl_precedence(zk_client_factory, zk_root):
    owner = zk_client_factory()
    owner.add_auth("digest", "own:pw")
    locked = [make_digest_acl("own", "pw", all=True)]
    owner.create(zk_root + "/locked", b"", acl=locked)
    owner.create(zk_root + "/locked/kid", b"", acl=locked)
    other = zk_client_factory()
    with pytest.raises(NoAuthError):  # parent NOAUTH before NODEEXISTS
        other.create(zk_root + "/locked/kid")
    with pytest.raises(NoNodeError):  # parent NONODE before parent NOAUTH (no such parent)
        other.create(zk_root + "/locked/nope/x")
    with pytest.raises(NoAuthError):  # delete: parent NOAUTH before node NONODE
        other.delete(zk_root + "/locked/missing")
    with pytest.raises(NoAuthError):  # setData: NOAUTH before BADVERSION
        other.set(zk_root + "/locked", b"", version=42)
    with pytest.raises(NoNodeError):  # setData: NONODE before NOAUTH
        other.set(zk_root + "/locked/missing", b"")
    with pytest.raises(NoAuthError):  # setACL: NOAUTH before BADVERSION
        other.set_acls(zk_root + "/locked", locked, version=42)
    t = other.transaction()
    t.check(zk_root + "/locked", 42)
    assert [type(r) for r in t.commit()] == [NoAuthError]  # check needs READ, before BADVERSION


def test_create_invalid_acl_before_nonode(zk_server, zk_root):
    with rawzk.connected(zk_server.connect_string) as c:
        assert c.create(zk_root + "/nope/x", acl=[]).err == rawzk.INVALIDACL
        assert c.create(zk_root + "/nope/x", acl=[(31, "digest", "no-colon")]).err == rawzk.INVALIDACL
        assert c.create(zk_root + "/nope/x", acl=[(31, "bogus", "x")]).err == rawzk.INVALIDACL
        assert c.create(zk_root + "/nope/x", acl=[(31, "auth", "")]).err == rawzk.INVALIDACL  # no auth ids
        # bad flags before bad path
        assert c.create("bad", flags=9).err == rawzk.BADARGUMENTS
        assert c.create(zk_root + "/nope/x").err == rawzk.NONODE
