"""The ensemble test harness (coordcore.testing.ensembles, coordcore.testing.linkproxy).

First the link proxy alone, with plain sockets (cut, delay, partition, client cuts: exact and fast);
then Apache ZooKeeper ensembles, asserting what a test author relies on: one leader, replication to
every member, fail-over after a leader crash or a partition, one-way cuts and delays, pause/resume,
observers, moving a single client off a member, and session expiry by the servers.  Apache ZooKeeper
missing is a failure (ZooKeeperNotFound), never a skip.

Timing: every wait has a deadline; no assertion says "faster than"; the only timing assertion is a
lower bound that the delay itself guarantees.
"""
from __future__ import annotations

import socket
import struct
import threading
import time
import uuid

import pytest
from kazoo.client import KazooState
from kazoo.exceptions import KazooException

from coordcore.testing.ensembles import CoordcoreEnsemble, ZooKeeperEnsemble, make_ensemble
from coordcore.testing.linkproxy import CLIENT, LinkProxy

pytestmark = pytest.mark.timeout(120)


try:  # the helpers every ensemble test file shares (wait_until, the clients fixture)
    from tests.integration.ensemble_util import clients, wait_until  # noqa: F401
except ImportError:
    from ensemble_util import clients, wait_until  # noqa: F401


# -- the link proxy, with plain sockets ---------------------------------------------------------

@pytest.fixture
def proxy():
    with LinkProxy() as p:
        yield p


@pytest.fixture
def listener():
    with socket.create_server(("127.0.0.1", 0)) as lst:
        lst.settimeout(5)
        yield lst


def connect_through(link, lst):
    """(initiator socket, acceptor socket) of a new connection through ``link`` to listener ``lst``."""
    initiator = socket.create_connection(("127.0.0.1", link.port), timeout=5)
    acceptor, _ = lst.accept()
    acceptor.settimeout(5)
    return initiator, acceptor


def recv_exactly(sock, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise AssertionError(f"closed after {data!r}")
        data += chunk
    return data


def nothing_arrives(sock, wait: float = 0.3) -> bool:
    sock.settimeout(wait)
    try:
        sock.recv(1)
    except socket.timeout:
        return True
    finally:
        sock.settimeout(5)
    return False


def closed_by_peer(sock, timeout: float = 5) -> bool:
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def test_one_way_cut_holds_one_direction_until_heal(proxy, listener):
    a_to_b = proxy.add_link(1, 2, listener.getsockname())
    b_to_a = proxy.add_link(2, 1, listener.getsockname())  # initiated by 2: same cut, other way round
    one, two = connect_through(a_to_b, listener)
    two_init, one_acc = connect_through(b_to_a, listener)
    proxy.cut(1, 2)
    one.sendall(b"1 to 2")
    one_acc.sendall(b"1 to 2 again")
    two.sendall(b"2 to 1")
    two_init.sendall(b"2 to 1 again")
    assert recv_exactly(one, 6) == b"2 to 1"
    assert recv_exactly(one_acc, 12) == b"2 to 1 again"
    assert nothing_arrives(two) and nothing_arrives(two_init)
    assert proxy.is_cut(1, 2) and not proxy.is_cut(2, 1)
    proxy.heal()
    assert recv_exactly(two, 6) == b"1 to 2"  # held bytes are delivered on heal, in order
    assert recv_exactly(two_init, 12) == b"1 to 2 again"
    one.sendall(b"more")
    assert recv_exactly(two, 4) == b"more"
    for s in (one, two, two_init, one_acc):
        s.close()


def test_full_cut_refuses_new_connections_and_a_close_travels_like_data(proxy, listener):
    link = proxy.add_link(1, 2, listener.getsockname())
    proxy.cut(1, 2, both=True)
    refused = socket.create_connection(("127.0.0.1", link.port), timeout=5)
    assert closed_by_peer(refused)  # accepted, then closed at once
    listener.settimeout(0.3)
    with pytest.raises(socket.timeout):
        listener.accept()  # and never reached the target
    listener.settimeout(5)
    refused.close()
    proxy.heal()
    one, two = connect_through(link, listener)
    proxy.cut(1, 2)  # one way: the close from 1 is held with its bytes
    one.sendall(b"bye")
    one.close()
    assert nothing_arrives(two)
    proxy.heal()
    assert recv_exactly(two, 3) == b"bye"
    assert closed_by_peer(two)


def test_delay_delivers_late_in_one_direction(proxy, listener):
    link = proxy.add_link(1, 2, listener.getsockname())
    one, two = connect_through(link, listener)
    proxy.delay(1, 2, 300)
    t0 = time.monotonic()
    one.sendall(b"slow")
    assert recv_exactly(two, 4) == b"slow"
    assert time.monotonic() - t0 >= 0.3
    two.sendall(b"back")  # the other direction is not delayed (only checked to arrive)
    assert recv_exactly(one, 4) == b"back"
    assert proxy.faults()["delays"] == {(1, 2): 300.0}
    proxy.delay(1, 2, 0)
    assert proxy.faults()["delays"] == {}
    one.close()
    two.close()


def test_partition_cuts_between_groups_and_replaces_earlier_cuts(proxy):
    proxy.cut(1, 2)
    proxy.partition([[1, 2], [3]])
    assert {c for c in proxy.faults()["cuts"]} == {(1, 3), (3, 1), (2, 3), (3, 2)}
    proxy.partition([[1], [2, 3]])
    assert {c for c in proxy.faults()["cuts"]} == {(1, 2), (2, 1), (1, 3), (3, 1)}
    with pytest.raises(ValueError):
        proxy.partition([[1, 2], [2, 3]])
    proxy.heal()
    assert proxy.faults() == {"cuts": [], "delays": {}, "client_cuts": {}}


def _connect_request(session_id: int) -> bytes:
    body = struct.pack(">iqiq", 0, 0, 4000, session_id) + struct.pack(">i", 16) + b"\0" * 16 + b"\0"
    return struct.pack(">i", len(body)) + body


def test_client_cut_refuses_that_session_only(proxy, listener):
    link = proxy.add_client_link(7, listener.getsockname())
    assert link.initiator == CLIENT
    client, server = connect_through(link, listener)
    client.sendall(_connect_request(0x1234))
    assert recv_exactly(server, len(_connect_request(0))) == _connect_request(0x1234)
    assert proxy.cut_client(7, session_id=0x1234) == 1
    client.sendall(b"ping")
    assert nothing_arrives(server)
    # a reconnect of the cut session is closed before anything reaches the member
    again, again_server = connect_through(link, listener)
    again.sendall(_connect_request(0x1234))
    assert closed_by_peer(again)
    assert closed_by_peer(again_server)
    # other sessions and four-letter words pass
    other, other_server = connect_through(link, listener)
    other.sendall(_connect_request(0x99))
    assert recv_exactly(other_server, len(_connect_request(0))) == _connect_request(0x99)
    word, word_server = connect_through(link, listener)
    word.sendall(b"srvr")
    assert recv_exactly(word_server, 4) == b"srvr"
    proxy.heal_client(7, session_id=0x1234)
    assert recv_exactly(server, 4) == b"ping"
    for s in (client, server, again, other, other_server, word, word_server):
        s.close()


# -- Apache ZooKeeper ensembles ------------------------------------------------------------------

def test_factory():
    assert isinstance(make_ensemble("coordcore"), CoordcoreEnsemble)
    assert isinstance(make_ensemble("zookeeper"), ZooKeeperEnsemble)
    with pytest.raises(ValueError):
        make_ensemble("etcd")
    with pytest.raises(ValueError):
        ZooKeeperEnsemble(config={"server.1": "127.0.0.1:1:2"})


@pytest.fixture
def path():
    return f"/harness-{uuid.uuid4().hex[:10]}"


def member_clients(ens, connect, sids=None):
    return {sid: connect(ens.member_connect_string(sid)) for sid in (sids or ens.sids)}


def read_on(client, path: str):
    """Read ``path`` on the client's member after a sync, so the read sees every committed write."""
    client.sync(path)
    return client.exists(path) and client.get(path)[0]


def connected_member(ens, client) -> int | None:
    sock = client._connection._socket
    if sock is None or not client.connected:
        return None
    try:
        return ens.sid_of_address(sock.getpeername())
    except OSError:
        return None


BACKENDS = ["zookeeper", "coordcore"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_kill_the_leader_a_new_one_takes_over_and_the_old_one_follows(backend, clients, path):
    with make_ensemble(backend, voters=3) as ens:
        old = ens.leader()
        rest = [s for s in ens.sids if s != old]
        survivor = clients(ens.member_connect_string(rest[0]), timeout=10)
        survivor.create(path, b"before")
        ens.kill(old)
        assert ens.pid(old) is None
        modes = ens.wait_serving(30)
        assert set(modes) == set(rest)
        new = ens.leader()
        assert new in rest
        survivor.retry(survivor.create, path + "-after", b"after")
        assert survivor.retry(survivor.get, path)[0] == b"before"
        ens.start_member(old)
        assert ens.mode(old) == "follower" and ens.leader() == new
        assert read_on(clients(ens.member_connect_string(old)), path + "-after") == b"after"
        # a graceful restart of a follower comes back with its data
        follower = next(s for s in rest if s != new)
        ens.restart(follower)
        assert ens.mode(follower) == "follower"
        assert read_on(clients(ens.member_connect_string(follower)), path) == b"before"
    assert all(ens.pid(s) is None for s in ens.sids)
    assert not ens.work_dir.exists()


@pytest.fixture(scope="module", params=BACKENDS)
def shared_ensemble(request):
    """3 voters (sids 1-3) and an observer (sid 4), shared by the tests that leave it healthy (the
    ``ens`` fixture heals it, restarts and resumes members, and waits until it serves after each)."""
    with make_ensemble(request.param, voters=3, observers=1,
                       config={"maxSessionTimeout": 20000, "forceSync": False}) as ens:
        yield ens


@pytest.fixture
def ens(shared_ensemble):
    ens = shared_ensemble
    ens.wait_serving(30)
    yield ens
    ens.heal()
    for sid in ens.sids:
        if ens.member(sid).paused:
            ens.resume(sid)
        if not ens.running(sid):
            ens.start_member(sid, wait=False)
    ens.wait_serving(45)


def test_starts_with_one_leader_and_per_member_configs(ens):
    modes = ens.wait_serving()
    assert sorted(modes.values()) == ["follower", "follower", "leader", "observer"]
    assert modes[4] == "observer" and ens.leader() in (1, 2, 3)
    # every member runs its own zoo.cfg: its own line names its real ports, the others' proxy ports
    texts = {sid: ens.member(sid).config_path.read_text() for sid in ens.sids}
    assert len(set(texts.values())) == 4
    for sid, text in texts.items():
        m = ens.member(sid)
        assert f"server.{sid}=127.0.0.1:{m.quorum_port}:{m.election_port}" in text
        for other in ens.sids:
            if other != sid:
                e = ens.link(sid, other, "election")
                assert f"server.{other}=127.0.0.1:{ens.link(sid, other, 'quorum').port}:{e.port}" in text
        assert ("peerType=observer" in text) == (sid == 4)
        assert "server.4=" in text and text.split("server.4=")[1].splitlines()[0].endswith(":observer")
    # ... and apart from those lines and the member's own dirs and port, the configs are the same
    own = ("server.", "dataDir=", "clientPort=", "peerType=")
    common = {tuple(line for line in text.splitlines() if not line.startswith(own)) for text in texts.values()}
    assert len(common) == 1
    # config overrides reach every member: zoo.cfg keys in zoo.cfg, system-property keys as -D flags
    if ens.backend == "zookeeper":
        assert "forceSync" not in texts[1] and "-Dzookeeper.forceSync=no" in ens.member_command(1)
    else:  # coordcore reads every key from zoo.cfg
        assert "forceSync=false" in texts[1]
    assert all("maxSessionTimeout=20000" in ens.four_letter(sid, "conf") for sid in ens.sids)
    # and every election connection (one per pair) runs through the proxy
    pairs = {frozenset((a, b)) for a in ens.sids for b in ens.sids if a < b}

    def proxied_pairs():
        return {frozenset((c.link.initiator, c.link.acceptor)) for c in ens.proxy.connections()
                if c.link.kind == "election"}
    wait_until(lambda: proxied_pairs() == pairs, message=f"election connections for {pairs}")


def test_a_write_through_one_member_is_readable_on_every_member(ens, clients, path):
    by_member = member_clients(ens, clients)
    writer = next(s for s in ens.sids if ens.mode(s) == "follower")
    by_member[writer].create(path, b"replicated")
    for sid, client in by_member.items():
        assert read_on(client, path) == b"replicated", f"member {sid}"
    assert all(connected_member(ens, c) == sid for sid, c in by_member.items())


def test_partition_leader_alone_majority_takes_over_then_converges(ens, clients, path):
    old = ens.leader()
    rest = [s for s in ens.sids if s != old]
    by_member = member_clients(ens, clients)
    ens.partition([[old], rest])
    modes = ens.wait_serving(30, sids=rest)
    new = next(s for s, m in modes.items() if m == "leader")
    assert new != old and new in (1, 2, 3)
    # the majority serves writes ...
    majority = by_member[rest[0]]
    majority.retry(majority.create, path, b"majority")
    # ... the old leader, alone, gives up leading and cannot write
    wait_until(lambda: ens.mode(old) is None, message=f"isolated member {old} stops serving")
    with pytest.raises((KazooException, majority.handler.timeout_exception)):
        by_member[old].create_async(path + "-minority", b"x").get(timeout=3)
    with pytest.raises(majority.handler.timeout_exception):
        clients(ens.member_connect_string(old), start_timeout=2)
    assert majority.exists(path + "-minority") is None
    ens.heal()
    modes = ens.wait_serving(30)
    assert modes[old] == "follower" and ens.leader() == new
    for sid in ens.sids:
        fresh = clients(ens.member_connect_string(sid))
        assert read_on(fresh, path) == b"majority", f"member {sid}"


def test_one_way_cut_from_the_leader_takes_a_follower_out_until_heal(ens, clients, path):
    leader = ens.leader()
    follower, other = [s for s in (1, 2, 3) if s != leader]
    writer = clients(ens.member_connect_string(other))
    ens.cut(leader, follower)  # the follower no longer hears the leader; its own traffic still flows
    wait_until(lambda: ens.mode(follower) is None, message=f"member {follower} drops out")
    writer.retry(writer.create, path, b"while cut")  # leader + the other follower are a quorum
    assert ens.mode(leader) == "leader"
    ens.heal()
    assert ens.wait_member_serving(follower) == "follower"
    assert read_on(clients(ens.member_connect_string(follower)), path) == b"while cut"


def test_delay_from_the_leader_slows_writes_through_that_follower(ens, clients, path):
    leader = ens.leader()
    follower = next(s for s in (1, 2, 3) if s != leader)
    client = clients(ens.member_connect_string(follower))
    client.create(path, b"0")
    ens.delay(leader, follower, 400)  # below syncLimit * tickTime: the follower stays in
    t0 = time.monotonic()
    client.set(path, b"1")  # the follower answers once the leader's commit reached it
    assert time.monotonic() - t0 >= 0.4
    assert ens.mode(follower) == "follower"
    ens.delay(leader, follower, 0)
    assert read_on(client, path) == b"1"


def test_pause_and_resume_a_follower(ens, clients, path):
    leader = ens.leader()
    follower = next(s for s in (1, 2, 3) if s != leader)
    writer = clients(ens.member_connect_string(leader))
    ens.pause(follower)
    assert ens.pid(follower) is not None and ens.mode(follower) is None
    with pytest.raises(OSError):  # connected by the kernel, never answered
        ens.four_letter(follower, "ruok", timeout=1)
    writer.create(path, b"while paused")  # the rest is still a quorum
    ens.resume(follower)
    ens.wait_member_serving(follower)
    assert read_on(clients(ens.member_connect_string(follower)), path) == b"while paused"


def test_observer_serves_reads_and_killing_it_does_not_stop_writes(ens, clients, path):
    assert ens.mode(4) == "observer"
    writer = clients(ens.member_connect_string(ens.leader()))
    writer.create(path, b"one")
    assert read_on(clients(ens.member_connect_string(4)), path) == b"one"
    ens.kill(4)
    assert ens.pid(4) is None and ens.mode(4) is None
    writer.set(path, b"two")
    ens.start_member(4)
    assert ens.mode(4) == "observer"
    assert read_on(clients(ens.member_connect_string(4)), path) == b"two"


def test_cut_client_fails_over_to_another_member_keeping_its_session(ens, clients, path):
    client = clients(ens.connect_string, timeout=3)
    states = []
    client.add_listener(states.append)
    first = wait_until(lambda: connected_member(ens, client), message="client connected")
    session = client.client_id[0]
    client.create(path, b"mine", ephemeral=True)
    assert ens.cut_client(client, first) == 1
    moved = wait_until(lambda: (m := connected_member(ens, client)) not in (None, first) and m,
                       message="client moved to another member")
    assert client.client_id[0] == session
    assert KazooState.SUSPENDED in states and KazooState.LOST not in states
    client.set(path, b"still mine")
    ens.heal_client(client, first)
    checker = clients(ens.member_connect_string(first))
    assert read_on(checker, path) == b"still mine"
    assert checker.get(path)[1].ephemeralOwner == session
    assert moved != first


def test_expire_session_by_the_servers(ens, clients, path):
    client = clients(ens.connect_string, timeout=2)
    lost = threading.Event()
    client.add_listener(lambda state: lost.set() if state == KazooState.LOST else None)
    client.create(path, b"gone soon", ephemeral=True)
    watchers = member_clients(ens, clients)
    session = client.client_id[0]
    assert all(read_on(c, path) == b"gone soon" for c in watchers.values())
    assert ens.expire_session(client) == session
    assert lost.is_set()
    for sid, c in watchers.items():
        c.sync(path)
        assert c.exists(path) is None, f"member {sid}"
    assert not ens.session_known(session)
    # kazoo starts a new session by itself
    wait_until(lambda: client.connected and client.client_id[0] != session, message="a new session")
    client.create(path, b"new session")
