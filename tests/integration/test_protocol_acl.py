"""ACLs and authentication: world, auth, digest, ip, NOAUTH, INVALIDACL, getACL masking, super digest,
auth failure closing the connection."""
from __future__ import annotations

import base64
import hashlib
import threading

import pytest
from kazoo.client import KazooState
from kazoo.exceptions import AuthFailedError, InvalidACLError, NoAuthError
from kazoo.security import ACL, Id, Permissions, make_acl, make_digest_acl

try:
    from tests.integration import rawzk
except ImportError:
    import rawzk

pytestmark = pytest.mark.timeout(60)


def digest(user: str, password: str) -> str:
    return user + ":" + base64.b64encode(hashlib.sha1(f"{user}:{password}".encode()).digest()).decode()


def test_default_acl_is_world_anyone_all(zk_client, zk_root):
    zk_client.create(zk_root + "/n")
    acls, stat = zk_client.get_acls(zk_root + "/n")
    assert acls == [ACL(Permissions.ALL, Id("world", "anyone"))]
    assert stat.aversion == 0


def test_digest_acl_enforced_per_permission(zk_client_factory, zk_root):
    owner = zk_client_factory(auth_data=[("digest", "alice:secret")])
    other = zk_client_factory()
    owner.create(zk_root + "/r", b"data", acl=[make_digest_acl("alice", "secret", all=True),
                                               make_acl("world", "anyone", read=True)])
    assert other.get(zk_root + "/r")[0] == b"data"
    assert other.get_children(zk_root + "/r") == []
    with pytest.raises(NoAuthError):
        other.set(zk_root + "/r", b"x")
    with pytest.raises(NoAuthError):
        other.create(zk_root + "/r/kid")
    with pytest.raises(NoAuthError):
        other.set_acls(zk_root + "/r", [make_acl("world", "anyone", all=True)])
    owner.create(zk_root + "/r/kid")
    with pytest.raises(NoAuthError):
        other.delete(zk_root + "/r/kid")
    # a second client authenticating as alice has all rights
    alice2 = zk_client_factory()
    alice2.add_auth("digest", "alice:secret")
    alice2.set(zk_root + "/r", b"changed")
    alice2.delete(zk_root + "/r/kid")
    # wrong password: not alice
    mallory = zk_client_factory()
    mallory.add_auth("digest", "alice:wrong")
    with pytest.raises(NoAuthError):
        mallory.set(zk_root + "/r", b"x")


def test_write_only_node_denies_reads(zk_client_factory, zk_root):
    owner = zk_client_factory(auth_data=[("digest", "bob:pw")])
    owner.create(zk_root + "/w", b"secret", acl=[make_digest_acl("bob", "pw", all=True),
                                                 make_acl("world", "anyone", write=True)])
    other = zk_client_factory()
    with pytest.raises(NoAuthError):
        other.get(zk_root + "/w")
    with pytest.raises(NoAuthError):
        other.get_children(zk_root + "/w")
    assert other.exists(zk_root + "/w") is not None  # exists needs no permission in 3.8.0
    other.set(zk_root + "/w", b"overwritten")
    assert owner.get(zk_root + "/w")[0] == b"overwritten"


def test_auth_scheme_expands_to_callers_ids(zk_client_factory, zk_root):
    owner = zk_client_factory(auth_data=[("digest", "carol:pw"), ("digest", "dave:pw2")])
    owner.create(zk_root + "/a", acl=[make_acl("auth", "", all=True)])
    acls, _ = owner.get_acls(zk_root + "/a")
    assert sorted((a.id.scheme, a.id.id, a.perms) for a in acls) == [
        ("digest", digest("carol", "pw"), 31), ("digest", digest("dave", "pw2"), 31)]
    anon = zk_client_factory()
    with pytest.raises(InvalidACLError):  # no authenticated ids to expand to
        anon.create(zk_root + "/b", acl=[make_acl("auth", "", all=True)])


def test_invalid_acls(zk_client, zk_root):
    for acl in ([ACL(31, Id("digest", "nocolon"))], [ACL(31, Id("nosuchscheme", "x"))],
                [ACL(31, Id("ip", "not-an-ip"))]):
        with pytest.raises(InvalidACLError):
            zk_client.create(zk_root + "/bad", acl=acl)
    zk_client.create(zk_root + "/ok")
    with pytest.raises(InvalidACLError):
        zk_client.set_acls(zk_root + "/ok", [ACL(31, Id("digest", "nocolon"))])


def test_ip_acl(zk_client_factory, zk_root):
    c = zk_client_factory()
    c.create(zk_root + "/ip", b"x", acl=[make_acl("ip", "127.0.0.1", all=True)])
    assert c.get(zk_root + "/ip")[0] == b"x"
    c.create(zk_root + "/net", b"x", acl=[make_acl("ip", "127.0.0.0/8", read=True)])
    assert c.get(zk_root + "/net")[0] == b"x"
    c.create(zk_root + "/far", b"x", acl=[make_acl("ip", "10.1.2.3", all=True),
                                          make_acl("world", "anyone", admin=True)])
    with pytest.raises(NoAuthError):
        c.get(zk_root + "/far")


def test_duplicate_acl_entries_are_dropped(zk_client, zk_root):
    acl = make_acl("world", "anyone", all=True)
    zk_client.create(zk_root + "/d", acl=[acl, acl])
    assert zk_client.get_acls(zk_root + "/d")[0] == [acl]


def test_set_acl_version_is_aversion(zk_client, zk_root):
    zk_client.create(zk_root + "/v")
    zk_client.set(zk_root + "/v", b"1")  # version 1, aversion 0
    from kazoo.exceptions import BadVersionError
    with pytest.raises(BadVersionError):
        zk_client.set_acls(zk_root + "/v", [make_acl("world", "anyone", all=True)], version=1)
    st = zk_client.set_acls(zk_root + "/v", [make_acl("world", "anyone", all=True)], version=0)
    assert st.aversion == 1 and st.version == 1


def test_get_acl_masks_digest_without_admin(zk_client_factory, zk_root):
    owner = zk_client_factory(auth_data=[("digest", "erin:pw")])
    owner.create(zk_root + "/m", acl=[make_digest_acl("erin", "pw", all=True),
                                      make_acl("world", "anyone", read=True)])
    full, _ = owner.get_acls(zk_root + "/m")
    other = zk_client_factory()
    seen, _ = other.get_acls(zk_root + "/m")
    assert (full[0].id.scheme, full[0].id.id) == ("digest", digest("erin", "pw"))
    assert sorted((a.id.scheme, a.id.id, a.perms) for a in seen) == sorted(
        [("digest", "erin:x", 31), ("world", "anyone", 1)])


def test_auth_failure_closes_connection(zk_server):
    with rawzk.connected(zk_server.connect_string) as c:
        r = c.auth("nosuchscheme", b"whatever")
        assert (r.xid, r.zxid, r.err) == (-4, 0, rawzk.AUTHFAILED)
        assert c.wait_closed(5)
    with rawzk.connected(zk_server.connect_string) as c:
        r = c.auth("digest", b"user:pw")
        assert (r.xid, r.zxid, r.err) == (-4, 0, 0)
        assert c.ping().err == 0


@pytest.mark.parametrize("credential", [None, b""], ids=["null", "empty"])
def test_digest_auth_with_null_credential_fails_but_empty_is_an_id(zk_server, credential):
    # zkCli's `addauth digest` with no argument sends a null buffer: ZooKeeper's digest provider
    # fails on it (AUTHFAILED, connection closed). An empty buffer is an id like any other.
    with rawzk.connected(zk_server.connect_string) as c:
        r = c.auth("digest", credential)
        if credential is None:
            assert (r.xid, r.err) == (-4, rawzk.AUTHFAILED)
            assert c.wait_closed(5)
        else:
            assert (r.xid, r.err) == (-4, 0)
            assert c.ping().err == 0


def test_kazoo_auth_failed_state(zk_client_factory):
    c = zk_client_factory()
    states = []
    lost = threading.Event()

    def listener(state):
        states.append(state)
        if state == KazooState.LOST:
            lost.set()

    c.add_listener(listener)
    with pytest.raises(AuthFailedError):
        c.add_auth("bogus", "x")
    assert lost.wait(10), states


def test_super_digest_bypasses_acls(zk_server_factory):
    server = zk_server_factory({"DigestAuthenticationProvider.superDigest": digest("super", "adminpw")})
    from kazoo.client import KazooClient
    owner = KazooClient(hosts=server.connect_string, auth_data=[("digest", "u:p")])
    admin = KazooClient(hosts=server.connect_string, auth_data=[("digest", "super:adminpw")])
    try:
        owner.start(10)
        admin.start(10)
        owner.create("/locked", b"x", acl=[make_digest_acl("u", "p", all=True)])
        owner.create("/locked/kid", acl=[make_digest_acl("u", "p", all=True)])
        assert admin.get("/locked")[0] == b"x"
        admin.set("/locked", b"y")
        acls, _ = admin.get_acls("/locked")
        assert acls[0].id.id == digest("u", "p")  # super has ADMIN: unmasked
        admin.delete("/locked", recursive=True)
        assert admin.exists("/locked") is None
    finally:
        for c in (owner, admin):
            c.stop()
            c.close()


def test_who_am_i(zk_server):
    with rawzk.connected(zk_server.connect_string) as c:
        def ids():
            r = c.who_am_i().reader()
            return sorted((r.string(), r.string()) for _ in range(r.int()))
        assert ids() == [("ip", "127.0.0.1")]
        assert c.auth("digest", b"frank:pw").err == 0
        assert ids() == [("digest", "frank"), ("ip", "127.0.0.1")]


# against ZooKeeper, kazoo's connection thread dies of the mismatch: that is the point, not noise
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_auth_pipelined_behind_requests_is_answered_in_turn(zk_server, zk_client_factory, zk_root):
    """The README's documented difference: coordcore answers an auth packet in request order, so
    kazoo (which takes the oldest pending request to be the one answered) can pipeline add_auth
    behind other requests. ZooKeeper 3.8 answers the auth at once, ahead of them, and kazoo's
    connection then fails with "xids do not match"; pinned so the README cannot go stale."""
    client = zk_client_factory()
    # enough creates that ZooKeeper is still fsyncing some when the auth packet arrives (with 20 it
    # sometimes had answered them all first, and then nothing was out of turn)
    creates = [client.create_async(f"{zk_root}/n{i}", b"x") for i in range(300)]
    auth = client.add_auth_async("digest", "bob:secret")
    outcomes = []
    for f in creates + [auth]:
        try:
            f.get(timeout=10)
            outcomes.append("ok")
        except Exception as e:  # noqa: BLE001 - the kind of failure is what is compared
            outcomes.append(type(e).__name__)
    if zk_server.backend == "coordcore":
        assert outcomes == ["ok"] * 301
        acl = [make_digest_acl("bob", "secret", all=True)]
        client.create(zk_root + "/bob", b"", acl=acl)  # the auth took effect
        assert client.get(zk_root + "/bob")[0] == b""
    else:
        assert "ConnectionLoss" in outcomes
