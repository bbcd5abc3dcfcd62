"""Request prep: error precedence (ZooKeeper 3.8's PrepRequestProcessor order), ACLs, fixupACL, multi
atomicity and validation against pending (prepped, not yet committed) writes."""
from __future__ import annotations

import pytest

from coordcore.errors import ApiError, Err
from coordcore.node import acl as A
from coordcore.node.acl import AuthInfo
from coordcore.tree import txn as T
from coordcore.wire import proto as P

from nodeharness import OPEN, FakeConn, Harness, parse_multi_reply, pending_state

READ_ONLY = [(A.PERM_READ, "world", "anyone")]
NOTHING = [(A.PERM_READ, "digest", A.digest_id("nobody:pw"))]  # nobody here is "nobody"


def _setup(h):
    """/p (open) with /p/c; /ro (read-only, child /ro/c); /e, /e2 ephemeral; /full with a child."""
    sid = h.open_session()
    h.create("/p")
    h.create("/p/c", b"v")
    h.create("/ro")
    h.create("/ro/c")
    h.set_acl("/ro", READ_ONLY)
    h.create("/e", flags=1, session_id=sid)
    h.create("/e2", flags=1, session_id=sid)
    h.create("/full")
    h.create("/full/kid")
    return sid


# ---- error precedence ---------------------------------------------------------------------------------

CREATE_CASES = [
    # (path, flags, acl, op, ttl, expected)
    ("/p/x", 7, OPEN, P.CREATE, -1, Err.BADARGUMENTS),                   # unknown flags first
    ("/missing/x", 7, [], P.CREATE, -1, Err.BADARGUMENTS),
    ("/p/x", 5, OPEN, P.CREATE_TTL, 0, Err.BADARGUMENTS),               # ttl out of range
    ("/p/x", 5, OPEN, P.CREATE_TTL, 0xFFFFFFFFFF + 1, Err.BADARGUMENTS),
    ("/p/x", 0, OPEN, P.CREATE_TTL, 100, Err.BADARGUMENTS),             # ttl with a non-TTL mode
    ("noslash", 0, OPEN, P.CREATE, -1, Err.BADARGUMENTS),
    ("/p/x\x00", 0, [], P.CREATE, -1, Err.BADARGUMENTS),                 # NUL before the ACL
    ("/missing/x", 0, [], P.CREATE, -1, Err.INVALIDACL),                # ACL before the parent lookup
    ("/missing/x", 0, [(31, "bogus", "x")], P.CREATE, -1, Err.INVALIDACL),
    ("/missing/x", 0, OPEN, P.CREATE, -1, Err.NONODE),
    ("/missing/bad/", 0, OPEN, P.CREATE, -1, Err.NONODE),               # parent lookup before path rules
    ("/ro/x", 0, OPEN, P.CREATE, -1, Err.NOAUTH),
    ("/ro/c", 0, OPEN, P.CREATE, -1, Err.NOAUTH),                       # ACL before NODEEXISTS
    ("/ro/\U0001F600", 0, OPEN, P.CREATE, -1, Err.NOAUTH),              # ACL before path rules
    ("/ro/./", 0, OPEN, P.CREATE, -1, Err.NONODE),                      # parent "/ro/." does not exist
    ("/p/", 0, OPEN, P.CREATE, -1, Err.BADARGUMENTS),                   # trailing slash, not sequential
    ("/p/.", 0, OPEN, P.CREATE, -1, Err.BADARGUMENTS),
    ("/p/\U0001F600", 0, OPEN, P.CREATE, -1, Err.BADARGUMENTS),
    ("/p/c", 0, OPEN, P.CREATE, -1, Err.NODEEXISTS),
    ("/", 0, OPEN, P.CREATE, -1, Err.NODEEXISTS),
    ("/e/x", 0, OPEN, P.CREATE, -1, Err.NOCHILDRENFOREPHEMERALS),
    ("/p/x", 0, OPEN, P.CREATE, -1, Err.OK),
    ("/p/", 2, OPEN, P.CREATE, -1, Err.OK),
    ("/p/x", 5, OPEN, P.CREATE_TTL, 0xFFFFFFFFFF, Err.OK),
]


@pytest.mark.parametrize("path, flags, acl, op, ttl, expected", CREATE_CASES)
def test_create_error_precedence(h, path, flags, acl, op, ttl, expected):
    _setup(h)
    assert h.create(path, flags=flags, acl=acl, op=op, ttl=ttl)[0] == expected


def test_ttl_needs_extended_types():
    h = Harness(extended_types=False)
    assert h.create("/t", flags=5, op=P.CREATE_TTL, ttl=100)[0] == Err.UNIMPLEMENTED
    assert h.create("/c", flags=4, op=P.CREATE_CONTAINER)[0] == Err.OK


DELETE_CASES = [
    ("/", -1, Err.BADARGUMENTS),
    ("/zookeeper", -1, Err.BADARGUMENTS),
    ("/zookeeper/quota", -1, Err.BADARGUMENTS),
    ("/zookeeper/config", -1, Err.BADARGUMENTS),
    ("noslash", -1, Err.BADARGUMENTS),
    ("/p\x00", -1, Err.BADARGUMENTS),
    ("/missing/x", 5, Err.NONODE),
    ("/ro/c", 5, Err.NOAUTH),           # the parent's DELETE permission, checked before the node
    ("/ro/none", -1, Err.NOAUTH),
    ("/p/none", -1, Err.NONODE),
    ("/full", 5, Err.BADVERSION),       # version before NOTEMPTY
    ("/full", -1, Err.NOTEMPTY),
    ("/full", 0, Err.NOTEMPTY),
    ("/p/c", 1, Err.BADVERSION),
    ("/p/c", 0, Err.OK),
    ("/p/c", -1, Err.OK),
]


@pytest.mark.parametrize("path, version, expected", DELETE_CASES)
def test_delete_error_precedence(h, path, version, expected):
    _setup(h)
    assert h.delete(path, version) == expected


SET_DATA_CASES = [
    ("/p/", 5, Err.BADARGUMENTS),
    ("/missing", 5, Err.NONODE),
    ("/ro", 5, Err.NOAUTH),             # NOAUTH before BADVERSION
    ("/p/c", 5, Err.BADVERSION),
    ("/p/c", 0, Err.OK),
    ("/ro/c", -1, Err.OK),              # the node's own ACL counts, not the parent's
]


@pytest.mark.parametrize("path, version, expected", SET_DATA_CASES)
def test_set_data_error_precedence(h, path, version, expected):
    _setup(h)
    assert h.set_data(path, b"new", version) == expected


SET_ACL_CASES = [
    ("/p/", OPEN, 5, Err.BADARGUMENTS),
    ("/missing", [], 5, Err.INVALIDACL),  # ACL fixup before the lookup
    ("/missing", OPEN, 5, Err.NONODE),
    ("/ro", OPEN, 5, Err.NOAUTH),         # READ only: no ADMIN
    ("/p/c", OPEN, 3, Err.BADVERSION),    # compared with aversion, not version
    ("/p/c", OPEN, 0, Err.OK),
]


@pytest.mark.parametrize("path, acl, version, expected", SET_ACL_CASES)
def test_set_acl_error_precedence(h, path, acl, version, expected):
    _setup(h)
    h.set_data("/p/c", b"bump")  # version 1, aversion still 0
    assert h.set_acl(path, acl, version) == expected


CHECK_CASES = [
    ("/p/", 0, Err.BADARGUMENTS),
    ("/missing", 0, Err.NONODE),
    ("/p/c", 3, Err.BADVERSION),
    ("/p/c", 0, Err.OK),
    ("/p/c", -1, Err.OK),
    ("/ro", 0, Err.OK),                  # check needs READ only
]


@pytest.mark.parametrize("path, version, expected", CHECK_CASES)
def test_check_error_precedence(h, path, version, expected):
    _setup(h)
    assert h.check(path, version) == expected


def test_check_needs_read(h):
    h.create("/secret", acl=NOTHING)
    assert h.check("/secret", 0) == Err.NOAUTH
    assert h.check("/missing", 0) == Err.NONODE


def test_reconfig_is_disabled(h):
    assert h.write(P.RECONFIG, P.Reconfig(None, None, None, -1))[0] == Err.RECONFIGDISABLED


# ---- ACL checks -----------------------------------------------------------------------------------------

def test_digest_acl(h):
    bob = A.digest_id("bob:secret")
    assert bob == "bob:fyVmFCwVbTJYrznoSu1koqYEYF0="  # DigestAuthenticationProvider's output
    h.create("/d", acl=[(31, "digest", bob)])
    assert h.set_data("/d", b"x") == Err.NOAUTH
    auth = AuthInfo("127.0.0.1")
    assert A.authenticate(auth, "digest", b"bob:wrong", "127.0.0.1", None)  # accepted, but another id
    assert h.set_data("/d", b"x", auth=auth) == Err.NOAUTH
    assert A.authenticate(auth, "digest", b"bob:secret", "127.0.0.1", None)
    assert h.set_data("/d", b"x", auth=auth) == Err.OK


@pytest.mark.parametrize("client_ip, acl_ip, allowed", [
    ("127.0.0.1", "127.0.0.1", True),
    ("127.0.0.1", "127.0.0.2", False),
    ("10.1.2.3", "10.0.0.0/8", True),
    ("11.1.2.3", "10.0.0.0/8", False),
    ("192.168.1.77", "192.168.1.64/26", True),
    ("192.168.1.128", "192.168.1.64/26", False),
])
def test_ip_acl(h, client_ip, acl_ip, allowed):
    h.create("/n", acl=[(31, "ip", acl_ip)])
    assert h.set_data("/n", b"x", auth=AuthInfo(client_ip)) == (Err.OK if allowed else Err.NOAUTH)


def test_permission_bits_are_checked_per_operation(h):
    h.create("/n", acl=[(A.PERM_READ | A.PERM_CREATE, "world", "anyone")])
    assert h.set_data("/n", b"x") == Err.NOAUTH
    assert h.set_acl("/n", OPEN) == Err.NOAUTH
    assert h.create("/n/c")[0] == Err.OK
    assert h.delete("/n/c") == Err.NOAUTH   # no DELETE on the parent
    conn = FakeConn()
    assert h.node.read(P.GET_DATA, P.PathWatch("/n", False), conn)[0] == Err.OK


def test_node_without_permissions_is_deletable_through_its_parent(h):
    h.create("/p")
    h.create("/p/locked", acl=NOTHING)
    assert h.set_data("/p/locked", b"") == Err.NOAUTH
    assert h.delete("/p/locked") == Err.OK


def test_super_bypasses_acls():
    h = Harness(super_digest=A.digest_id("super:admin"))
    h.create("/n", acl=NOTHING)
    auth = AuthInfo("127.0.0.1")
    A.authenticate(auth, "digest", b"super:admin", "127.0.0.1", h.proposer.super_digest)
    assert auth.is_super
    assert h.set_data("/n", b"x", auth=auth) == Err.OK
    assert h.set_acl("/n", OPEN, auth=auth) == Err.OK


def test_super_id_added_directly_bypasses_acls(h):
    h.create("/n", acl=NOTHING)
    auth = AuthInfo("127.0.0.1")
    auth.add("super", "")
    assert h.set_data("/n", b"x", auth=auth) == Err.OK


def test_unknown_auth_scheme_fails(h):
    assert A.authenticate(AuthInfo("127.0.0.1"), "kerberos", b"x", "127.0.0.1", None) is False


# ---- fixupACL ---------------------------------------------------------------------------------------------

def _digest_auth(*users):
    auth = AuthInfo("127.0.0.1")
    for u in users:
        A.authenticate(auth, "digest", u.encode(), "127.0.0.1", None)
    return auth


@pytest.mark.parametrize("acl, auth, expected", [
    (OPEN, AuthInfo("127.0.0.1"), OPEN),
    (OPEN + OPEN, AuthInfo("127.0.0.1"), OPEN),                                    # duplicates removed
    ([(31, "auth", "")], _digest_auth("a:1"), [(31, "digest", A.digest_id("a:1"))]),
    ([(5, "auth", "ignored")], _digest_auth("a:1", "b:2"),
     [(5, "digest", A.digest_id("a:1")), (5, "digest", A.digest_id("b:2"))]),
    ([(1, "digest", "u:hash"), (31, "ip", "10.0.0.0/8"), (31, "ip", "::1")], AuthInfo("127.0.0.1"),
     [(1, "digest", "u:hash"), (31, "ip", "10.0.0.0/8"), (31, "ip", "::1")]),
    ([(1, "digest", "u:hash:")], AuthInfo("127.0.0.1"), [(1, "digest", "u:hash:")]),  # Java split drops it
])
def test_fixup_acl(acl, auth, expected):
    assert [tuple(a) for a in A.fixup(acl, auth)] == expected


@pytest.mark.parametrize("acl, auth", [
    ([], AuthInfo("127.0.0.1")),
    ([(31, "auth", "")], AuthInfo("127.0.0.1")),      # auth scheme with no digest id: only the ip id
    ([(31, "world", "someone")], AuthInfo("127.0.0.1")),
    ([(31, "digest", "nocolon")], AuthInfo("127.0.0.1")),
    ([(31, "digest", "a:b:c")], AuthInfo("127.0.0.1")),
    ([(31, "ip", "not-an-ip")], AuthInfo("127.0.0.1")),
    ([(31, "ip", "10.0.0.0/33")], AuthInfo("127.0.0.1")),
    ([(31, "kerberos", "x")], AuthInfo("127.0.0.1")),
    (OPEN + [(31, "bogus", "x")], AuthInfo("127.0.0.1")),
])
def test_fixup_acl_rejects(acl, auth):
    with pytest.raises(ApiError) as e:
        A.fixup(acl, auth)
    assert e.value.code == Err.INVALIDACL


def test_create_with_auth_acl_stores_the_digest(h):
    auth = _digest_auth("alice:pw")
    assert h.create("/mine", acl=[(31, "auth", "")], auth=auth)[0] == Err.OK
    assert list(h.node.committed.nodes["/mine"].acl) == [(31, "digest", A.digest_id("alice:pw"))]
    assert h.set_data("/mine", b"x") == Err.NOAUTH
    assert h.set_data("/mine", b"x", auth=auth) == Err.OK


def test_get_acl_masks_digests_without_admin(h):
    alice = A.digest_id("alice:pw")
    h.create("/m", acl=[(A.PERM_READ, "world", "anyone"), (31, "digest", alice)])
    err, body = h.node.read(P.GET_ACL, P.PathOnly("/m"), FakeConn())
    assert err == 0 and b"alice:x" in body and alice.encode() not in body
    conn = FakeConn()
    conn.auth = _digest_auth("alice:pw")
    err, body = h.node.read(P.GET_ACL, P.PathOnly("/m"), conn)
    assert err == 0 and alice.encode() in body


# ---- multi ------------------------------------------------------------------------------------------------

def _multi(*ops):
    return P.Multi(list(ops))


def _create(path, data=b"", flags=0):
    return (P.CREATE, P.Create(path, data, list(OPEN), flags))


def test_failing_multi_changes_neither_tree(h):
    _setup(h)
    pending_before, committed_before = pending_state(h.proposer), h.committed_bytes()
    req = _multi(_create("/m1"), (P.SET_DATA, P.SetData("/p/c", b"z", -1)), (P.DELETE, P.PathVersion("/p/c", -1)),
                 _create("/m1/kid", flags=2), (P.CHECK, P.PathVersion("/p", 99)), _create("/m2"))
    txn = h.prep(P.MULTI, req)
    # the pending tree was rolled back right away, before anything was committed
    assert pending_state(h.proposer) == pending_before
    assert [st for st, _ in txn.body[0]] == [T.T_ERROR] * 6
    assert [sb[0] for _, sb in txn.body[0]] == [0, 0, 0, 0, Err.BADVERSION, Err.RUNTIMEINCONSISTENCY]
    err, body = h.node.reply_body(P.MULTI, req, txn, h.commit(txn))
    assert err == 0  # the header carries no error for a multi; the results do
    assert parse_multi_reply(body) == [(-1, 0), (-1, 0), (-1, 0), (-1, 0), (-1, Err.BADVERSION),
                                       (-1, Err.RUNTIMEINCONSISTENCY)]
    # only the header's last zxid may differ
    assert h.committed_bytes()[12:] == committed_before[12:]
    assert pending_state(h.proposer) == {}
    # the sequence counter was rolled back too
    assert h.create("/p/s", flags=2) == (0, "/p/s0000000001")


@pytest.mark.parametrize("bad_op, code", [
    ((P.CREATE, P.Create("/full/kid", b"", list(OPEN), 0)), Err.NODEEXISTS),
    ((P.DELETE, P.PathVersion("/full", -1)), Err.NOTEMPTY),
    ((P.SET_DATA, P.SetData("/ro", b"", -1)), Err.NOAUTH),
    ((P.CREATE, P.Create("/e/x", b"", list(OPEN), 0)), Err.NOCHILDRENFOREPHEMERALS),
    ((P.CREATE, P.Create("/p/x", b"", [], 0)), Err.INVALIDACL),
    ((P.DELETE, P.PathVersion("/zookeeper", -1)), Err.BADARGUMENTS),
])
def test_multi_failure_after_deletes_and_creates_restores_everything(h, bad_op, code):
    sid = _setup(h)
    h.create("/pending-elsewhere")  # committed: leaves no change record
    other = h.prep(P.SET_DATA, P.SetData("/p", b"in flight", -1))  # stays pending across the multi
    before = pending_state(h.proposer)
    assert before
    req = _multi((P.DELETE, P.PathVersion("/e2", -1)), (P.SET_DATA, P.SetData("/p/c", b"z", -1)),
                 (P.DELETE, P.PathVersion("/p/c", -1)), _create("/new"), _create("/new/kid", flags=2),
                 (P.SET_ACL, P.SetACL("/new/kid0000000000", list(READ_ONLY), -1)), bad_op)
    txn = h.prep(P.MULTI, req)
    assert [sb[0] for _, sb in txn.body[0]] == [0, 0, 0, 0, 0, 0, code]
    assert pending_state(h.proposer) == before
    h.commit(other)
    h.commit(txn)
    assert pending_state(h.proposer) == {}
    assert sorted(h.proposer.prep_close_session(sid, h.now).body[0]) == ["/e", "/e2"]


def test_multi_later_ops_see_earlier_ones(h):
    req = _multi(_create("/a"), _create("/a/b", b"1"), (P.SET_DATA, P.SetData("/a/b", b"2", 0)),
                 (P.CHECK, P.PathVersion("/a/b", 1)), _create("/a/s-", flags=2), _create("/a/s-", flags=2))
    txn = h.prep(P.MULTI, req)
    err, body = h.node.reply_body(P.MULTI, req, txn, h.commit(txn))
    assert err == 0
    assert parse_multi_reply(body) == [(P.CREATE, 0), (P.CREATE, 0), (P.SET_DATA, 0), (P.CHECK, 0),
                                       (P.CREATE, 0), (P.CREATE, 0)]
    assert h.children("/a") == {"b", "s-0000000001", "s-0000000002"}
    assert h.node.committed.nodes["/a/b"].data == b"2"
    # all sub-ops share one zxid
    z = txn.zxid
    assert (h.stat("/a").czxid, h.stat("/a/b").czxid, h.stat("/a/b").mzxid, h.stat("/a").pzxid) == (z, z, z, z)
    assert pending_state(h.proposer) == {}


def test_multi_delete_child_then_parent(h):
    h.create("/a")
    h.create("/a/b")
    req = _multi((P.DELETE, P.PathVersion("/a/b", 0)), (P.DELETE, P.PathVersion("/a", -1)))
    txn = h.prep(P.MULTI, req)
    err, body = h.node.reply_body(P.MULTI, req, txn, h.commit(txn))
    assert parse_multi_reply(body) == [(P.DELETE, 0), (P.DELETE, 0)]
    assert "/a" not in h.node.committed.nodes and "/a/b" not in h.node.committed.nodes
    assert "a" not in h.children("/")


def test_multi_parent_delete_before_child_fails(h):
    h.create("/a")
    h.create("/a/b")
    req = _multi((P.DELETE, P.PathVersion("/a", -1)), (P.DELETE, P.PathVersion("/a/b", -1)))
    txn = h.prep(P.MULTI, req)
    assert [sb[0] for _, sb in txn.body[0]] == [Err.NOTEMPTY, Err.RUNTIMEINCONSISTENCY]


def test_multi_create_reply_formats(h):
    req = _multi((P.CREATE2, P.Create("/x", b"", list(OPEN), 0)),
                 (P.CREATE_CONTAINER, P.Create("/c", b"", list(OPEN), 4)))
    txn = h.prep(P.MULTI, req)
    _, body = h.node.reply_body(P.MULTI, req, txn, h.commit(txn))
    # ZooKeeper 3.8 answers create2 inside a multi path-only; container creates carry the Stat
    assert parse_multi_reply(body) == [(P.CREATE, 0), (P.CREATE2, 0)]


# ---- pending writes -----------------------------------------------------------------------------------------

def test_second_conditional_set_data_before_commit_is_bad_version(h):
    h.create("/a")
    first = h.prep(P.SET_DATA, P.SetData("/a", b"1", 0))
    second = h.prep(P.SET_DATA, P.SetData("/a", b"2", 0))
    assert first.type == T.T_SET_DATA
    assert second.type == T.T_ERROR and second.body == (Err.BADVERSION,)
    h.commit(first)
    h.commit(second)
    assert h.node.committed.nodes["/a"].data == b"1"
    assert h.stat("/a").version == 1


def test_reads_see_only_committed_state(h):
    txn = h.prep(P.CREATE, P.Create("/pending", b"", list(OPEN), 0))
    conn = FakeConn()
    assert h.node.read(P.EXISTS, P.PathWatch("/pending", True), conn)[0] == Err.NONODE
    h.commit(txn)
    assert conn.events == [(1, "/pending")]  # NodeCreated fired by the commit
    assert h.node.read(P.EXISTS, P.PathWatch("/pending", False), conn)[0] == Err.OK


def test_pending_create_and_delete_are_seen_by_later_preps(h):
    a = h.prep(P.CREATE, P.Create("/a", b"", list(OPEN), 0))
    b = h.prep(P.CREATE, P.Create("/a/b", b"", list(OPEN), 0))
    again = h.prep(P.CREATE, P.Create("/a", b"", list(OPEN), 0))
    assert (a.type, b.type, again.body) == (T.T_CREATE, T.T_CREATE, (Err.NODEEXISTS,))
    not_empty = h.prep(P.DELETE, P.PathVersion("/a", -1))
    assert not_empty.body == (Err.NOTEMPTY,)
    for txn in (a, b, again, not_empty):
        h.commit(txn)
    assert h.children("/a") == {"b"}


def test_pending_sequence_numbers_are_unique(h):
    h.create("/q")
    txns = [h.prep(P.CREATE, P.Create("/q/n-", b"", list(OPEN), 2)) for _ in range(3)]
    assert [t.body[0] for t in txns] == ["/q/n-0000000000", "/q/n-0000000001", "/q/n-0000000002"]
    for t in txns:
        h.commit(t)
    assert h.stat("/q").cversion == 3


def test_close_session_lists_pending_ephemerals(h):
    sid = h.open_session()
    h.create("/e1", flags=1, session_id=sid)
    pending = h.prep(P.CREATE, P.Create("/e2", b"", list(OPEN), 1), session_id=sid)
    close = h.proposer.prep_close_session(sid, h.now)
    assert sorted(close.body[0]) == ["/e1", "/e2"]
    # and after the close is prepped, the pending tree no longer has them
    assert h.proposer.pending.get("/e1") is None and h.proposer.pending.get("/e2") is None
    assert h.proposer.prep_close_session(sid, h.now).body == ([],)
    h.commit(pending)
    h.commit(close)
    assert "/e1" not in h.node.committed.nodes and "/e2" not in h.node.committed.nodes
    assert sid not in h.node.committed.ephemerals
    assert pending_state(h.proposer) == {}


def test_pending_delete_of_ephemeral_is_not_listed_by_close(h):
    sid = h.open_session()
    h.create("/e1", flags=1, session_id=sid)
    h.create("/e2", flags=1, session_id=sid)
    gone = h.prep(P.DELETE, P.PathVersion("/e1", -1))
    close = h.proposer.prep_close_session(sid, h.now)
    assert close.body == (["/e2"],)
    h.commit(gone)
    h.commit(close)
    assert not {"/e1", "/e2"} & set(h.node.committed.nodes)


def test_write_behind_a_pending_set_acl_is_judged_by_the_new_acl(h):
    """A setData prepared while a setACL on the same node is still in flight sees the new ACL: the two
    are ordered, so the write comes after the change. (ZooKeeper's prep keeps the old ACL until the
    setACL commits, so its answer there depends on timing; the README notes the difference.)"""
    h.create("/acl", b"")
    narrowing = h.prep(P.SET_ACL, P.SetACL("/acl", list(READ_ONLY), -1))
    blocked = h.prep(P.SET_DATA, P.SetData("/acl", b"x", 7))
    assert blocked.type == T.T_ERROR and blocked.body == (Err.NOAUTH,)  # NoAuth before BadVersion
    h.commit(narrowing)
    h.commit(blocked)
    assert h.node.committed.nodes["/acl"].data == b""
