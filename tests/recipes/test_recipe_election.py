"""Leader election: failover between processes, cancel()/resign() at every stage, queries."""

from __future__ import annotations

import threading
import time

from recipe_helpers import Worker, wait_for
from recipes import LeaderElection

SESSION_TIMEOUT = 2.0
MARGIN = 10.0


def leader_line(workers, timeout):
    """The first LEADER line printed by any of ``workers`` (worker, ident, token)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for w in workers:
            try:
                line = w.lines.get_nowait()
            except Exception:  # noqa: BLE001 - queue.Empty
                continue
            if line.startswith("LEADER"):
                _, ident, token = line.split()
                return w, ident, int(token)
        time.sleep(0.02)
    raise AssertionError("no leader elected in time")


def test_failover_when_leader_process_is_killed(deployment):
    """On a standalone server and on a 3-member ensemble (the ``deployment`` fixture)."""
    path = f"{deployment.root}/election"
    zk_client = deployment.client()
    zk_client.ensure_path(path)
    workers = []
    for i in range(3):
        w = Worker("elect", deployment.connect_string, path, f"c{i}", str(SESSION_TIMEOUT))
        w.expect("READY", timeout=30)
        workers.append(w)
        wait_for(lambda n=i + 1: len(zk_client.get_children(path)) == n, what="candidate queued")
    try:
        first, ident, token = leader_line(workers, 30)
        assert ident == "c0"
        observer = LeaderElection(zk_client, path)
        zk_client.sync(path)  # on an ensemble the observer's member may apply a moment later
        assert observer.leader() == "c0" and observer.contenders() == ["c0", "c1", "c2"]
        alive = [w for w in workers if w is not first]
        tokens = [token]
        for expected in ("c1", "c2"):
            first.kill()
            nxt, ident, token = leader_line(alive, SESSION_TIMEOUT + MARGIN)
            assert ident == expected and token > tokens[-1]
            tokens.append(token)
            # exactly one new leader: the other survivors stay followers
            others = [w for w in alive if w is not nxt]
            for w in others:
                assert all(not line.startswith("LEADER") for line in list(w.lines.queue))
            zk_client.sync(path)
            assert observer.leader() == expected
            first, alive = nxt, others
    finally:
        for w in workers:
            w.kill()


def test_run_calls_callback_and_resigns_on_return(zk_client, zk_root):
    path = f"{zk_root}/election"
    seen = []
    election = LeaderElection(zk_client, path, "solo")
    assert not election.is_leader

    def lead(leadership):
        seen.append((leadership.identifier, leadership.is_leader, election.is_leader, election.leader(),
                     leadership.fencing_token == zk_client.exists(leadership.node).czxid))

    assert election.run(lead) is True
    assert seen == [("solo", True, True, "solo", True)]
    assert not election.is_leader and zk_client.get_children(path) == []


def test_callback_exception_propagates_after_resigning(zk_client, zk_root):
    path = f"{zk_root}/election"
    election = LeaderElection(zk_client, path, "boom")

    def lead(leadership):
        raise RuntimeError("leader failed")

    try:
        election.run(lead)
    except RuntimeError as e:
        assert str(e) == "leader failed"
    else:
        raise AssertionError("exception swallowed")
    assert zk_client.get_children(path) == []


def test_cancel_and_resign_at_every_stage(zk_client_factory, zk_root):
    path = f"{zk_root}/election"
    a, b = zk_client_factory(), zk_client_factory()
    ea, eb = LeaderElection(a, path, "a"), LeaderElection(b, path, "b")

    # before running: no effect on a later run
    eb.cancel()
    eb.resign()
    assert eb.run(lambda ld: None) is True

    # while waiting: run() returns False without calling the callback, node removed
    a_leading, a_release = threading.Event(), threading.Event()

    def lead_a(ld):
        a_leading.set()
        a_release.wait(30)

    ta = threading.Thread(target=ea.run, args=(lead_a,))
    ta.start()
    assert a_leading.wait(10)
    result, called = [], []
    tb = threading.Thread(target=lambda: result.append(eb.run(lambda ld: called.append(1))))
    tb.start()
    wait_for(lambda: len(a.get_children(path)) == 2, what="b waiting")
    eb.cancel()
    tb.join(10)
    assert result == [False] and called == [] and len(a.get_children(path)) == 1

    # same with resign() while waiting
    result.clear()
    tb = threading.Thread(target=lambda: result.append(eb.run(lambda ld: called.append(1))))
    tb.start()
    wait_for(lambda: len(a.get_children(path)) == 2, what="b waiting")
    eb.resign()
    tb.join(10)
    assert result == [False] and called == []

    # while leading, from another thread: the callback is told to stop, the next candidate takes over
    b_led = threading.Event()
    stop_seen = []

    def lead_b(ld):
        b_led.set()
        stop_seen.append(ld.wait(30))

    tb = threading.Thread(target=lambda: result.append(eb.run(lead_b)))
    result.clear()
    tb.start()
    wait_for(lambda: len(a.get_children(path)) == 2, what="b waiting")
    a_release.set()
    ta.join(10)
    assert b_led.wait(10) and eb.is_leader
    ea2 = LeaderElection(a, path, "a2")
    a2_led = threading.Event()
    ta2 = threading.Thread(target=ea2.run, args=(lambda ld: (a2_led.set(), ld.wait(30)),))
    ta2.start()
    wait_for(lambda: ea2.contenders() == ["b", "a2"], what="a2 waiting")
    eb.resign()
    assert a2_led.wait(10)
    tb.join(10)
    assert stop_seen == [True] and result == [True] and not eb.is_leader

    # while leading, from inside the callback
    ea2.cancel()
    ta2.join(10)
    assert not ta2.is_alive()

    def resign_inside(ld):
        ld.resign()
        stop_seen.append((ld.should_stop, ld.is_leader))

    assert ea.run(resign_inside) is True
    assert stop_seen[-1] == (True, False)

    # after run returned: harmless
    ea.cancel()
    ea.resign()
    assert a.get_children(path) == []
