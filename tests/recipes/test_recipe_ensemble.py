"""The recipes on a 3-member ensemble of each backend, where the failures are a *server's*.

What a user relies on: a lock holder whose member dies keeps the lock as long as its session
survives the failover (kazoo reconnects to another member within the session timeout); a holder
cut off from every member until the servers expire its session is told `lost`, and the next waiter
takes over with a larger fencing token; an elected leader whose member is killed stays the one
leader, and when its session does go, exactly one other candidate takes over.
"""
from __future__ import annotations

import threading
import time

import pytest
from kazoo.client import KazooClient

from recipes import LeaderElection, Lock
from recipes.errors import OwnershipLostError

pytestmark = pytest.mark.timeout(180)

SESSION_TIMEOUT = 8.0   # seconds: longer than a failover (about 1 s with tickTime 200), short for a test
RETRY = dict(max_tries=-1, delay=0.1, backoff=2, max_delay=0.5)


def wait_for(cond, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def kazoo_clients():
    made = []

    def make(hosts, timeout=SESSION_TIMEOUT):
        c = KazooClient(hosts=hosts, timeout=timeout, connection_retry=RETRY, command_retry=RETRY)
        made.append(c)
        c.start(timeout=20)
        return c

    yield make
    for c in reversed(made):
        try:
            c.stop()
        finally:
            c.close()


def candidates(client) -> int:
    """How many candidates are queued, as the client's member sees it after a sync."""
    client.sync("/")
    return len(client.get_children("/ens/election")) if client.exists("/ens/election") else 0


def member_of(ens, client) -> int:
    sock = client._connection._socket
    return ens.sid_of_address(sock.getpeername())


def test_a_lock_holder_keeps_the_lock_when_its_member_dies(zk_ensemble, kazoo_clients):
    ens = zk_ensemble
    holder_client = kazoo_clients(ens.connect_string)
    holder_member = member_of(ens, holder_client)
    others = [s for s in ens.sids if s != holder_member]
    waiter_client = kazoo_clients(ens.member_connect_string(others[0]))
    # the holder trusts a suspended connection for as long as its session can live (the recipe's default
    # grace is shorter: it gives up first, which is safe too, and handled below)
    holder = Lock(holder_client, "/ens/lock", "holder", suspended_grace=SESSION_TIMEOUT)
    assert holder.acquire(timeout=20)
    token = holder.fencing_token
    waiter = Lock(waiter_client, "/ens/lock", "waiter")
    got = []
    t = threading.Thread(target=lambda: got.append(waiter.acquire(timeout=60)))
    t.start()
    wait_for(lambda: len(waiter_client.get_children("/ens/lock")) == 2, what="the waiter queued")

    ens.kill(holder_member)  # the holder's server dies; its client moves to another member
    # after a SUSPENDED the recipe re-checks its node before it calls itself the holder again; if the
    # failover outlasted the session (a slow election), it is told `lost` and the waiter takes over
    def moved():
        sock = holder_client._connection._socket
        return holder_client.connected and sock is not None and member_of(ens, holder_client) != holder_member

    wait_for(lambda: moved() or holder.lost.is_set(), timeout=SESSION_TIMEOUT * 4,
             what="the holder's client failing over, or told it lost the lock")
    wait_for(lambda: holder.is_held or holder.lost.is_set(), timeout=SESSION_TIMEOUT * 4,
             what="the holder verified on its new member, or told it lost the lock")
    if holder.lost.is_set():
        t.join(60)
        assert got == [True] and waiter.fencing_token > token and not holder.is_held
        with pytest.raises(OwnershipLostError):
            holder.guarded_set("/ens", b"from-the-deposed-holder")
        waiter.release()
        return
    assert not holder.lost.is_set()
    assert got == [] and waiter.contenders() == ["holder", "waiter"]
    holder.guarded_set("/ens", b"still-mine")  # the fenced write still goes through

    holder.release()
    t.join(30)
    assert got == [True] and waiter.fencing_token > token
    waiter.release()


def test_a_holder_cut_off_until_its_session_expires_is_told_lost_and_the_waiter_takes_over(
        zk_ensemble, kazoo_clients):
    ens = zk_ensemble
    a = kazoo_clients(ens.connect_string)
    b = kazoo_clients(ens.connect_string)
    b.ensure_path("/ens")
    holder = Lock(a, "/ens/lock", "a")
    assert holder.acquire(timeout=20)
    token = holder.fencing_token
    waiter = Lock(b, "/ens/lock", "b")
    got = []
    t = threading.Thread(target=lambda: got.append(waiter.acquire(timeout=90)))
    t.start()
    wait_for(lambda: len(b.get_children("/ens/lock")) == 2, what="the waiter queued")

    ens.expire_session(a)  # a partition between the holder and every member, until the servers expire it

    t.join(60)
    assert got == [True] and waiter.fencing_token > token
    assert holder.lost.wait(30) and not holder.is_held
    with pytest.raises(OwnershipLostError):
        holder.guarded_set("/ens", b"from-the-deposed-holder")
    waiter.guarded_set("/ens", b"from-the-new-holder")
    b.sync("/ens")
    assert b.get("/ens")[0] == b"from-the-new-holder"
    waiter.release()


def test_the_elected_leader_survives_its_member_dying_and_one_successor_follows_its_session(
        zk_ensemble, kazoo_clients):
    ens = zk_ensemble
    clients = [kazoo_clients(ens.connect_string) for _ in ens.sids]
    leading = []
    timeline = []  # ("start" | "stop", name): terms never overlap
    stop = threading.Event()
    lock = threading.Lock()

    def lead(name):
        def body(leadership):
            with lock:
                leading.append(name)
                timeline.append(("start", name))
            while not leadership.should_stop and not stop.is_set():
                time.sleep(0.05)
            with lock:
                timeline.append(("stop", name))
        return body

    # every candidate trusts a suspended connection for as long as its session can live (as the lock
    # holder above); the default grace gives up sooner, which is safe too and handled below
    elections = [LeaderElection(c, "/ens/election", f"c{i}", suspended_grace=SESSION_TIMEOUT)
                 for i, c in enumerate(clients)]
    threads = []
    for i, e in enumerate(elections):
        th = threading.Thread(target=e.run, args=(lead(f"c{i}"),), daemon=True)
        th.start()
        threads.append(th)
        wait_for(lambda: candidates(clients[0]) == i + 1, what="candidate queued")
    wait_for(lambda: leading == ["c0"], what="the first candidate leading")

    first_member = member_of(ens, clients[0])
    ens.kill(first_member)  # the leader's server dies during its term

    def moved():
        sock = clients[0]._connection._socket
        return clients[0].connected and sock is not None and member_of(ens, clients[0]) != first_member

    # the leader keeps leading on its new member, or -- a failover slower than its trust in the session
    # (half the session timeout without an answered check) -- stops and exactly one successor takes over
    wait_for(lambda: (moved() and elections[0].is_leader) or len(leading) == 2,
             timeout=SESSION_TIMEOUT * 4, what="the leader verified on its new member, or a successor")
    if len(leading) == 2:
        assert leading == ["c0", "c1"] and not elections[0].is_leader
        assert timeline[:3] == [("start", "c0"), ("stop", "c0"), ("start", "c1")]  # no overlap
    else:
        assert leading == ["c0"]  # still the one leader: its session survived, nobody else took over
        ens.start_member(first_member)
        ens.expire_session(clients[0])  # now its session goes: exactly one successor
        wait_for(lambda: len(leading) == 2, timeout=60, what="a successor leading")
        assert leading == ["c0", "c1"]
        wait_for(lambda: not elections[0].is_leader, what="the first leader told it is not leading")
    stop.set()
    for e in elections:
        e.cancel()
    for th in threads:
        th.join(30)

