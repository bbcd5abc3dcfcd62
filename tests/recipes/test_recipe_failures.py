"""Holder failure: the holder's process is killed, its session is expired by the servers, or the servers
become unreachable -- each on a standalone server and on a 3-member ensemble of each backend (the
``deployment`` fixture, tests/recipes/conftest.py)."""

from __future__ import annotations

import threading
import time

import pytest

from recipe_helpers import Worker, wait_for
from recipes import LeaderElection, Lock, OwnershipLostError

SESSION_TIMEOUT = 2.0
MARGIN = 10.0  # generous: shared CI machines


def test_a_healthy_holder_stays_held_past_the_trust_window(deployment):
    """``is_held`` trusts the session for half a timeout after the last answered check, and the
    background confirmer renews that. A lock held on a healthy connection for longer than the session
    timeout must never read as lost -- the second time too, when the confirmer already runs and takes
    the new guard through its lock-free queue."""
    client = deployment.client(timeout=SESSION_TIMEOUT)
    for attempt in range(2):
        lock = Lock(client, f"{deployment.root}/lock")
        with lock:
            until = time.monotonic() + 1.25 * SESSION_TIMEOUT  # 2.5 trust windows
            misses = 0
            while time.monotonic() < until:
                misses += not lock.is_held
                time.sleep(0.02)
            assert misses == 0, f"attempt {attempt}: is_held read False {misses} times while healthy"
            assert not lock.lost.is_set()


def test_holder_process_killed_next_waiter_acquires_with_larger_token(deployment):
    path = f"{deployment.root}/lock"
    zk_client = deployment.client()
    holder = Worker("hold", deployment.connect_string, path, "victim", str(SESSION_TIMEOUT))
    try:
        dead_token = int(holder.expect("HELD", timeout=30).split()[1])
        waiter = Lock(zk_client, path, "survivor")
        assert waiter.acquire(blocking=False) is False
        got = []
        t = threading.Thread(target=lambda: got.append(waiter.acquire(timeout=SESSION_TIMEOUT + MARGIN + 20)))
        t.start()
        wait_for(lambda: len(zk_client.get_children(path)) == 2, what="waiter queued")
        holder.kill()
        t.join(SESSION_TIMEOUT + MARGIN + 30)
        assert got == [True]
        assert waiter.fencing_token > dead_token
        assert waiter.contenders() == ["survivor"]  # the dead holder's node went with its session
        waiter.release()
    finally:
        holder.kill()


def test_session_expired_on_server_holder_sees_lost(deployment):
    path, res = f"{deployment.root}/lock", f"{deployment.root}/res"
    a = deployment.client(timeout=SESSION_TIMEOUT)
    b = deployment.client(timeout=SESSION_TIMEOUT)
    b.create(res, b"")
    callbacks = []
    holder = Lock(a, path, "a", on_lost=lambda lk: callbacks.append(lk.node))
    assert holder.acquire()
    token_a = holder.fencing_token
    waiter = Lock(b, path, "b")
    got = []
    t = threading.Thread(target=lambda: got.append(waiter.acquire(timeout=SESSION_TIMEOUT + MARGIN + 20)))
    t.start()
    wait_for(lambda: len(b.get_children(path)) == 2, what="waiter queued")
    assert holder.is_held and not holder.lost.is_set()

    deployment.expire(a)

    t.join(SESSION_TIMEOUT + MARGIN + 30)
    assert got == [True] and waiter.fencing_token > token_a
    assert holder.lost.wait(SESSION_TIMEOUT + MARGIN), "the holder was never told it lost the lock"
    assert holder.is_held is False
    wait_for(lambda: callbacks == [holder.node], what="on_lost callback")
    with pytest.raises(OwnershipLostError):  # fenced write from the deposed holder is rejected
        holder.guarded_set(res, b"from-deposed-holder")
    waiter.guarded_set(res, b"from-new-holder")
    b.sync(res)
    assert b.get(res)[0] == b"from-new-holder"
    assert holder.release() is True  # cleanup after loss is quiet and confirmed
    waiter.release()
    # the deposed holder can queue again on its client's new session
    assert holder.acquire(timeout=10) and holder.is_held and not holder.lost.is_set()
    holder.release()


def test_session_expired_leader_is_told_to_stop(deployment):
    path = f"{deployment.root}/election"
    a = deployment.client(timeout=SESSION_TIMEOUT)
    b = deployment.client(timeout=SESSION_TIMEOUT)
    leading = threading.Event()
    events = []

    held = []

    def lead_a(leadership):
        held.append(leadership)
        leading.set()
        while not leadership.wait(0.05):
            pass
        events.append(("a-stopped", leadership.is_leader))

    ea = LeaderElection(a, path, "a", on_lost=lambda e: events.append("a-lost-callback"))
    ta = threading.Thread(target=ea.run, args=(lead_a,))
    ta.start()
    assert leading.wait(10)
    eb = LeaderElection(b, path, "b")
    b_led = threading.Event()
    tb = threading.Thread(target=eb.run, args=(lambda ld: (b_led.set(), ld.wait(30)),))
    tb.start()
    wait_for(lambda: eb.contenders() == ["a", "b"], what="b queued")
    deployment.expire(a)
    ta.join(SESSION_TIMEOUT + MARGIN)
    assert not ta.is_alive()
    # The callback is told to stop as soon as ownership is in doubt (is_leader is already False then);
    # the loss itself is declared when the session verdict arrives, which may be a moment later.
    assert ("a-stopped", False) in events
    wait_for(lambda: "a-lost-callback" in events, what="on_lost callback")
    assert held[0].lost.is_set()
    assert b_led.wait(SESSION_TIMEOUT + MARGIN)
    assert eb.is_leader and not ea.is_leader and eb.leader() == "b"
    eb.resign()
    tb.join(10)
    assert not tb.is_alive()


@pytest.mark.stops_server
def test_suspended_past_grace_means_not_held_and_node_is_cleaned_up(deployment):
    """Servers unreachable: the holder stops trusting the lock inside the session timeout, is told it
    lost it, and once the connection is back its node is deleted so the queue moves on."""
    path = f"{deployment.root}/lock"
    a = deployment.client(timeout=4.0)
    lost = threading.Event()
    holder = Lock(a, path, "a", on_lost=lambda lk: lost.set())
    assert holder.acquire(timeout=10) and holder.is_held
    node = holder.node
    deployment.cut_off(a)
    # is_held stops vouching within the session timeout (half of it after the last answered check),
    # before any server could expire the session and hand the lock to someone else
    wait_for(lambda: holder.is_held is False, timeout=4.0, what="is_held False inside the session timeout")
    # and the loss is declared once kazoo says SUSPENDED (at once when a server goes away, after its
    # read timeout when the connection goes silent) and the grace passes
    assert lost.wait(4.0 + MARGIN), "SUSPENDED past the grace must be reported as a loss"
    assert holder.is_held is False
    deployment.reconnect(a)
    b = deployment.client(timeout=4.0)
    # the session may have survived; either way the old node goes away
    wait_for(lambda: b.sync(path) is not None and b.exists(node) is None, timeout=15,
             what="lost holder's node removed")
    nxt = Lock(b, path, "b")
    assert nxt.acquire(timeout=10)
    assert nxt.fencing_token > holder.fencing_token
    nxt.release()
    holder.release()
