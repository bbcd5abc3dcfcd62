"""The ownership guard's answer across a reconnect, with a stand-in client (no server): what a
lock holder or leader reads from ``is_held`` / ``should_stop`` while kazoo goes SUSPENDED and back."""
from __future__ import annotations

import threading

from kazoo.protocol.states import KazooState

from recipes.session import OwnershipGuard

SESSION = 0x1234


class _Pending:
    """An async result that answers only when the test says so (the re-check's sync in flight)."""

    def __init__(self, gate: threading.Event, value=None):
        self.gate, self.value = gate, value

    def get(self, timeout=None):
        self.gate.wait(timeout)
        return self.value

    def rawlink(self, callback):
        pass


class _Stat:
    ephemeralOwner = SESSION


class StandInClient:
    def __init__(self):
        self.state = KazooState.CONNECTED
        self._session_id = SESSION
        self._session_timeout = 10_000
        self.answer = threading.Event()

    def sync_async(self, path):
        return _Pending(self.answer)

    def exists_async(self, path):
        return _Pending(self.answer, _Stat())

    def add_listener(self, listener):
        pass


def test_a_reconnect_whose_recheck_is_still_in_flight_is_trusted_within_the_grace():
    """After SUSPENDED and back, the re-check (a sync()ed read) takes a moment: the ownership is no less
    trustworthy then than during the suspension, so is_held stays True -- were it False for those
    milliseconds, a leader polling should_stop would resign at some failovers and not at others."""
    client = StandInClient()
    lost = []
    guard = OwnershipGuard(client, "/lock/n-0000000001", SESSION, grace=5.0, on_lost=lost.append)
    try:
        guard.start()
        assert guard.is_trusted()
        client.state = KazooState.SUSPENDED
        guard.on_state(KazooState.SUSPENDED)
        assert guard.is_trusted()                 # within the grace
        client.state = KazooState.CONNECTED
        guard.on_state(KazooState.CONNECTED)      # the re-check starts and waits on client.answer
        assert guard._verifying
        assert guard.is_trusted()                 # still within the grace, same session
        client._session_id = SESSION + 1          # ... but never on another session
        assert not guard.is_trusted()
        client._session_id = SESSION
        client.answer.set()                       # the re-check answers: our node, our session
        for _ in range(1000):                     # (a deadline of 10 s)
            if not guard._verifying:
                break
            threading.Event().wait(0.01)
        assert not guard._verifying and guard.is_trusted() and lost == []
    finally:
        client.answer.set()
        guard.close()
