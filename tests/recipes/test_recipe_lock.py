"""Fair and non-fair lock behaviour on a real server (every backend selected with --zk-backend)."""

from __future__ import annotations

import json
import threading
import uuid

import pytest
from kazoo.client import KazooClient
from kazoo.recipe.lock import Lock as KazooLock

from recipe_helpers import CountingClient, Worker, wait_for
from recipes import (
    AlreadyHeldError,
    ClientNotStartedError,
    Lock,
    NonFairLock,
    NotHeldError,
    OwnershipLostError,
)


class Resource:
    """A shared resource that rejects stale fencing tokens and records overlapping holders."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self.inside: str | None = None
        self.last_token = -1
        self.violations: list[str] = []
        self.entries: list[str] = []

    def enter(self, who: str, token: int) -> None:
        with self._mutex:
            if self.inside is not None:
                self.violations.append(f"{who} entered while {self.inside} inside")
            if token <= self.last_token:
                self.violations.append(f"{who} stale token {token} <= {self.last_token}")
            self.inside = who
            self.last_token = max(token, self.last_token)
            self.entries.append(who)

    def leave(self, who: str) -> None:
        with self._mutex:
            if self.inside == who:
                self.inside = None


def test_with_statement_token_and_contenders(zk_client, zk_root):
    path = f"{zk_root}/lock"
    lock = Lock(zk_client, path, identifier="me")
    assert not lock.is_held and lock.fencing_token is None
    with lock:
        assert lock.is_held
        node_stat = zk_client.exists(lock.node)
        assert lock.fencing_token == node_stat.czxid
        assert node_stat.ephemeralOwner == zk_client.client_id[0]
        assert lock.contenders() == ["me"]
    assert not lock.is_held
    assert zk_client.get_children(path) == []


def test_every_attempt_gets_its_own_kazoo_style_node_prefix(zk_client, zk_root):
    # <32 hex>__lock__<10 digits>, as kazoo names them; the 32 hex digits differ on every attempt
    # (a lost create reply is recovered by prefix, so a prefix must never match an older attempt's node)
    import re

    path = f"{zk_root}/lock"
    one, two = Lock(zk_client, path), Lock(zk_client, path)
    names = []
    for lock in (one, one, two):
        with lock:
            names.append(lock.node.rsplit("/", 1)[1])
    assert all(re.fullmatch(r"[0-9a-f]{32}__lock__\d{10}", n) for n in names), names
    prefixes = [n[:32] for n in names]
    assert len(set(prefixes)) == 3
    assert prefixes[0][:24] == prefixes[1][:24] != prefixes[2][:24]  # random per object, then a counter


def test_lock_objects_made_per_use_leave_no_state_listener_behind(zk_client, zk_root):
    # A lock object keeps one kazoo state listener for its lifetime (not one per acquisition); a
    # service that makes a Lock per request must not pile them up on its client.
    import gc

    before = len(zk_client.state_listeners)
    for i in range(20):
        lock = Lock(zk_client, f"{zk_root}/lock") if i % 2 else NonFairLock(zk_client, f"{zk_root}/nf")
        with lock:
            pass
        del lock
    gc.collect()
    assert len(zk_client.state_listeners) == before


def test_acquire_timeout_and_nonblocking_return_false_and_clean_up(zk_client_factory, zk_root):
    path = f"{zk_root}/lock"
    a, b = zk_client_factory(), zk_client_factory()
    holder = Lock(a, path, "holder")
    assert holder.acquire()
    other = Lock(b, path, "other")
    assert other.acquire(blocking=False) is False
    assert other.acquire(timeout=0.3) is False
    assert other.acquire(timeout=0) is False
    wait_for(lambda: len(a.get_children(path)) == 1, what="waiter nodes removed")
    holder.release()
    assert other.acquire(timeout=5) is True
    assert other.release() is True
    assert other.release() is False  # not held any more


class _Answer:
    """Stands in for a kazoo async result that has already arrived."""

    def __init__(self, value):
        self.value = value

    def get(self, timeout=None):
        return self.value


def test_listing_sent_ahead_is_used_only_if_it_shows_our_node(zk_client_factory, zk_root):
    """The lock sends its listing right behind its create, before it knows the answer will show its
    node. An answer without our node (say from a server that reordered them) must never be read as
    "our node is gone": that would queue a second node."""
    path = f"{zk_root}/lock"
    a, b = zk_client_factory(), zk_client_factory()
    holder = Lock(a, path, "holder")
    assert holder.acquire()
    waiter = Lock(b, path, "waiter")
    create = waiter._create_node

    def create_then_stale_listing(prefix, deadline):
        name, stat = create(prefix, deadline)
        waiter._prefetch = (name, _Answer([]))
        return name, stat

    waiter._create_node = create_then_stale_listing
    got = []
    t = threading.Thread(target=lambda: got.append(waiter.acquire(timeout=10)))
    t.start()
    # the guard is built once the waiter watches its predecessor, just before it blocks
    wait_for(lambda: waiter._spare_guard is not None, what="the waiter to watch its predecessor")
    assert len(a.get_children(path)) == 2  # the holder's node and one of the waiter's
    holder.release()
    t.join(10)
    assert got == [True]
    assert a.get_children(path) == [waiter.node.rsplit("/", 1)[1]]
    waiter.release()
    assert a.get_children(path) == []


def test_fencing_tokens_increase_and_guarded_write(zk_client_factory, zk_root):
    path, res = f"{zk_root}/lock", f"{zk_root}/res"
    a, b = zk_client_factory(), zk_client_factory()
    a.create(res, b"0")
    la, lb = Lock(a, path, "a"), Lock(b, path, "b")
    tokens = []
    for lk in (la, lb, la, lb):
        assert lk.acquire(timeout=5)
        tokens.append(lk.fencing_token)
        lk.guarded_set(res, str(lk.fencing_token).encode())
        lk.release()
    assert tokens == sorted(tokens) and len(set(tokens)) == 4
    assert a.get(res)[0] == str(tokens[-1]).encode()
    with pytest.raises(NotHeldError):
        la.transaction()
    # a deposed holder's write is rejected by the server
    assert la.acquire(timeout=5)
    a.delete(la.node)  # e.g. an operator removed it, or the session expired
    with pytest.raises(OwnershipLostError):
        la.guarded_set(res, b"stale")
    assert a.get(res)[0] == str(tokens[-1]).encode()
    la.release()


def test_reentrancy_is_explicit_and_other_threads_wait(zk_client, zk_root):
    path = f"{zk_root}/lock"
    lock = Lock(zk_client, path)
    assert lock.acquire()
    with pytest.raises(AlreadyHeldError):
        lock.acquire()
    results = []
    t = threading.Thread(target=lambda: results.append(lock.acquire(timeout=0.3)))
    t.start()
    t.join(10)
    assert results == [False]  # another thread using the same object waits like threading.Lock
    lock.release()

    rlock = Lock(zk_client, f"{zk_root}/rlock", reentrant=True)
    assert rlock.acquire() and rlock.acquire()
    token = rlock.fencing_token
    assert rlock.release() and rlock.is_held and rlock.fencing_token == token
    assert rlock.release() and not rlock.is_held
    assert zk_client.get_children(f"{zk_root}/rlock") == []


def test_client_not_started_raises_clear_error(zk_server, zk_root):
    client = KazooClient(hosts=zk_server.connect_string)
    for recipe in (Lock(client, f"{zk_root}/l"), NonFairLock(client, f"{zk_root}/n")):
        with pytest.raises(ClientNotStartedError):
            recipe.acquire(timeout=1)
    client.start(10)
    client.stop()
    with pytest.raises(ClientNotStartedError):
        Lock(client, f"{zk_root}/l").acquire(timeout=1)
    client.close()


def test_cancel_at_every_stage(zk_client_factory, zk_root):
    path = f"{zk_root}/lock"
    a, b = zk_client_factory(), zk_client_factory()
    holder = Lock(a, path, "holder")
    waiter = Lock(b, path, "waiter")
    assert waiter.cancel() is False  # idle: nothing to cancel, and no lasting effect
    assert waiter.acquire(timeout=5)
    assert waiter.cancel() is False  # held: cancel does not release
    assert waiter.is_held
    waiter.release()

    assert holder.acquire()
    result = []
    t = threading.Thread(target=lambda: result.append(waiter.acquire()))
    t.start()
    wait_for(lambda: len(a.get_children(path)) == 2, what="waiter queued")
    assert waiter.cancel() is True
    t.join(10)
    assert result == [False]
    assert len(a.get_children(path)) == 1  # confirmed: the waiter's node is gone when acquire returns
    holder.release()
    assert waiter.acquire(timeout=5)  # a later acquisition is unaffected
    waiter.release()


def test_fifo_order(zk_client_factory, zk_root):
    path = f"{zk_root}/lock"
    admin = zk_client_factory()
    holder = Lock(admin, path, "holder")
    assert holder.acquire()
    order: list[str] = []
    threads = []
    for i in range(6):
        client = zk_client_factory()
        lk = Lock(client, path, f"w{i}")

        def run(lk=lk, i=i):
            assert lk.acquire(timeout=30)
            order.append(f"w{i}")
            lk.release()

        t = threading.Thread(target=run)
        t.start()
        threads.append(t)
        wait_for(lambda n=i + 2: len(admin.get_children(path)) == n, what=f"waiter {i} queued")
    assert holder.contenders() == ["holder"] + [f"w{i}" for i in range(6)]
    holder.release()
    for t in threads:
        t.join(30)
    assert order == [f"w{i}" for i in range(6)]


def test_mutual_exclusion_threads(zk_client_factory, zk_root):
    path = f"{zk_root}/lock"
    resource = Resource()
    clients = [zk_client_factory() for _ in range(3)]
    errors = []

    def worker(n: int) -> None:
        client = clients[n % len(clients)]
        me = f"t{n}"
        try:
            for _ in range(8):
                lock = Lock(client, path, me)
                with lock:
                    resource.enter(me, lock.fencing_token)
                    resource.leave(me)
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(9)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    assert not errors
    assert resource.violations == []
    assert len(resource.entries) == 72


def test_mutual_exclusion_processes(zk_server, zk_client, zk_root):
    path, res = f"{zk_root}/lock", f"{zk_root}/resource"
    zk_client.create(res, b"0")
    workers = [Worker("lock-loop", zk_server.connect_string, path, res, "10", f"p{i}") for i in range(3)]
    try:
        reports = [json.loads(w.expect("{", timeout=90)) for w in workers]
    finally:
        for w in workers:
            w.kill()
    assert [v for r in reports for v in r["violations"]] == []
    all_tokens = sorted(t for r in reports for t in r["tokens"])
    assert len(all_tokens) == len(set(all_tokens)) == 30
    assert int(zk_client.get(res)[0]) == all_tokens[-1]


def test_kazoo_interop_alternating(zk_client_factory, zk_root):
    path = f"{zk_root}/lock"
    resource = Resource()
    errors = []
    ours_client, kazoo_client = zk_client_factory(), zk_client_factory()

    def ours():
        try:
            for _ in range(10):
                with Lock(ours_client, path, "ours") as lk:
                    resource.enter("ours", lk.fencing_token)
                    resource.leave("ours")
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    def theirs():
        try:
            for _ in range(10):
                lk = KazooLock(kazoo_client, path, "kazoo")
                with lk:
                    token = kazoo_client.exists(f"{path}/{lk.node}").czxid
                    resource.enter("kazoo", token)
                    resource.leave("kazoo")
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    threads = [threading.Thread(target=f) for f in (ours, theirs, ours, theirs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    assert not errors and resource.violations == []
    assert resource.entries.count("ours") == 20 and resource.entries.count("kazoo") == 20

    # and each sees the other as a contender, in queue order
    k = KazooLock(kazoo_client, path, "kazoo-holder")
    assert k.acquire(timeout=5)
    ours_lock = Lock(ours_client, path, "ours-waiter")
    assert ours_lock.acquire(blocking=False) is False
    t = threading.Thread(target=lambda: ours_lock.acquire(timeout=20))
    t.start()
    wait_for(lambda: len(kazoo_client.get_children(path)) == 2, what="our waiter queued")
    assert ours_lock.contenders() == ["kazoo-holder", "ours-waiter"]
    assert k.contenders() == ["kazoo-holder", "ours-waiter"]
    assert not KazooLock(kazoo_client, path).acquire(blocking=False)
    k.release()
    t.join(20)
    assert ours_lock.is_held
    kazoo_waiter = KazooLock(kazoo_client, path)
    assert kazoo_waiter.acquire(blocking=False) is False
    ours_lock.release()
    assert kazoo_waiter.acquire(timeout=5)
    kazoo_waiter.release()


def test_herd_one_notification_per_release(zk_server, zk_root):
    path = f"{zk_root}/lock"
    clients = []
    try:
        for _ in range(6):
            c = CountingClient(hosts=zk_server.connect_string, timeout=10)
            c.start(15)
            clients.append(c)
        holder = Lock(clients[0], path, "holder")
        assert holder.acquire()
        waiters = [Lock(c, path, f"w{i}") for i, c in enumerate(clients[1:])]
        acquired = [threading.Event() for _ in waiters]
        proceed = [threading.Event() for _ in waiters]

        def run(i):
            assert waiters[i].acquire(timeout=60)
            acquired[i].set()
            assert proceed[i].wait(60)
            waiters[i].release()

        threads = []
        for i in range(len(waiters)):
            t = threading.Thread(target=run, args=(i,))
            t.start()
            threads.append(t)
            wait_for(lambda n=i + 2: len(clients[0].get_children(path)) == n, what="queued")
        # every waiter has registered its watch on its predecessor
        wait_for(lambda: all(zk_server_has_watch(c, path) for c in clients[1:]), what="watches set")

        def total():
            for c in clients:
                c.drain(path)
            return sum(c.notifications for c in clients)

        assert total() == 0
        holder.release()
        for i in range(len(waiters)):
            assert acquired[i].wait(30)
            assert total() == i + 1, "a release must wake exactly one waiter"
            proceed[i].set()
        for t in threads:
            t.join(30)
    finally:
        for c in clients:
            c.stop()
            c.close()


def zk_server_has_watch(client: CountingClient, path: str) -> bool:
    """True once this client's lock object waits with a data watch on some node under ``path``."""
    return any(p.startswith(path + "/") for p in client._data_watchers)


def test_wrap_ordering_integration(zk_client_factory, zk_root):
    """Contenders whose suffixes straddle the signed 32-bit wrap queue in creation order."""
    path = f"{zk_root}/lock"
    admin = zk_client_factory()
    admin.ensure_path(path)

    class ExplicitSuffixLock(Lock):
        """Our lock, except that the server's counter is replaced by a chosen suffix (the counter
        cannot be driven to the wrap in a test)."""

        def __init__(self, *a, suffix: int, **kw):
            super().__init__(*a, **kw)
            self.suffix = suffix

        def _create_node(self, prefix, deadline):
            seq = f"{self.suffix:010d}" if self.suffix >= 0 else f"-{-self.suffix:09d}"
            created, stat = self.client.create(
                f"{self.path}/{prefix}{seq}", self.identifier.encode(), ephemeral=True, include_data=True
            )
            return created.rsplit("/", 1)[1], stat

    first = f"{uuid.uuid4().hex}__lock__2147483646"
    admin.create(f"{path}/{first}", b"before-wrap", ephemeral=True)
    x = ExplicitSuffixLock(zk_client_factory(), path, "max", suffix=2147483647)
    y = ExplicitSuffixLock(zk_client_factory(), path, "after-wrap", suffix=-2147483648)
    assert y.acquire(blocking=False) is False  # string order would have let it in
    got = []
    tx = threading.Thread(target=lambda: got.append(("max", x.acquire(timeout=30))))
    tx.start()
    wait_for(lambda: len(admin.get_children(path)) == 2, what="x queued")
    ty = threading.Thread(target=lambda: got.append(("after-wrap", y.acquire(timeout=30))))
    ty.start()
    wait_for(lambda: len(admin.get_children(path)) == 3, what="y queued")
    assert x.contenders() == ["before-wrap", "max", "after-wrap"]
    admin.delete(f"{path}/{first}")
    tx.join(30)
    assert got == [("max", True)] and x.is_held and not y.is_held
    x.release()
    ty.join(30)
    assert got[-1] == ("after-wrap", True) and y.is_held
    y.release()


def test_nonfair_lock(zk_client_factory, zk_root):
    path = f"{zk_root}/leader"
    clients = [zk_client_factory() for _ in range(4)]
    resource = Resource()
    errors = []

    def worker(i):
        try:
            for _ in range(5):
                lk = NonFairLock(clients[i], path, f"n{i}")
                with lk:
                    assert lk.contenders() == [f"n{i}"]
                    resource.enter(f"n{i}", lk.fencing_token)
                    resource.leave(f"n{i}")
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and resource.violations == [] and len(resource.entries) == 20
    assert clients[0].exists(path) is None

    a, b = NonFairLock(clients[0], path, "a"), NonFairLock(clients[1], path, "b")
    assert a.acquire() and b.acquire(timeout=0.2) is False
    with pytest.raises(AlreadyHeldError):
        a.acquire()
    a.release()
    assert b.acquire(timeout=5) and b.contenders() == ["b"]
    b.release()
