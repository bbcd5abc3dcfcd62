"""Leader election over kazoo (the classic ZooKeeper recipe, with ownership you can trust).

Each candidate creates an ephemeral-sequential node ``<guid>_<10-digit sequence>`` under the election
path; the lowest (wrap-aware) is the leader; every other candidate watches only its next-lower node and
re-checks when it goes (one notification per departure, no herd).

    election = LeaderElection(client, "/app/leader_election", identifier="node-1")
    election.run(lead)          # blocks until elected, calls lead(leadership), resigns when it returns

    def lead(leadership):
        while not leadership.should_stop:          # False once resigned/cancelled or leadership lost
            leadership.guarded_set("/app/state", b"...")   # rejected if we were deposed
            leadership.wait(1.0)

``leadership.is_leader`` answers from the session (see :mod:`recipes.session`); ``leadership.lost`` is
set and the ``on_lost`` callback runs when leadership may be gone. ``fencing_token`` is our node's czxid.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Optional

import structlog
from kazoo.exceptions import NoNodeError

from recipes import contenders as cont
from recipes.lock import Lock, _LockBase
from recipes.session import delete_confirmed, ensure_started

log = structlog.get_logger("recipes")


class _Candidacy(Lock):
    """The election's queue: a fair lock with the election's node names and event names."""

    _MARKER = cont.ELECTION_MARKER
    _EVENTS = {"acquired": "election.elected", "released": "election.resigned", "lost": "election.lost"}


class Leadership:
    """Handle given to the leader's callback for one term of leadership."""

    def __init__(self, election: "LeaderElection", candidacy: _Candidacy) -> None:
        self._election = election
        self._candidacy = candidacy
        self.identifier = election.identifier
        self.node = candidacy.node
        self.fencing_token = candidacy.fencing_token
        #: Set when leadership may be gone (session LOST / SUSPENDED past grace / node gone).
        self.lost = candidacy.lost
        #: Set when the callback should return: leadership lost, or resign()/cancel() called.
        self.stop_requested = threading.Event()

    @property
    def is_leader(self) -> bool:
        return self._candidacy.is_held and not self.stop_requested.is_set()

    @property
    def should_stop(self) -> bool:
        return self.stop_requested.is_set() or self.lost.is_set() or not self._candidacy.is_held

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Sleep up to ``timeout`` seconds; returns True early (and at once) if the callback should stop."""
        self.stop_requested.wait(timeout)
        return self.should_stop

    def resign(self) -> None:
        """Give up leadership now (the node is deleted); the callback should return."""
        self._election.resign()

    def transaction(self) -> Any:
        return self._candidacy.transaction()

    def guarded_set(self, path: str, value: bytes, version: int = -1) -> Any:
        return self._candidacy.guarded_set(path, value, version)


class LeaderElection:
    """Leader election: ``run(callback)``, ``cancel()``, ``resign()``, ``contenders()``, ``leader()``,
    ``is_leader``.

    ``on_lost(election)`` is called (on its own thread) when a running leadership may be gone.
    """

    def __init__(
        self,
        client: Any,
        path: str,
        identifier: Optional[str] = None,
        *,
        on_lost: Optional[Callable[["LeaderElection"], None]] = None,
        suspended_grace: Optional[float] = None,
    ) -> None:
        self.client = client
        self.path = path
        self.identifier = "" if identifier is None else str(identifier)
        self.on_lost = on_lost
        self._candidacy = _Candidacy(
            client, path, self.identifier, on_lost=self._lost, suspended_grace=suspended_grace
        )
        self._mutex = threading.Lock()
        self._leadership: Optional[Leadership] = None
        self._withdrawn = threading.Event()

    @property
    def lost(self) -> threading.Event:
        return self._candidacy.lost

    @property
    def is_leader(self) -> bool:
        with self._mutex:
            lead = self._leadership
        return lead is not None and lead.is_leader

    @property
    def fencing_token(self) -> Optional[int]:
        return self._candidacy.fencing_token

    def run(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> bool:
        """Block until elected, call ``func(leadership, *args, **kwargs)``, resign when it returns.

        Returns True if we led (the callback ran), False if cancelled before being elected. An exception
        from the callback propagates after resigning.
        """
        if not callable(func):
            raise ValueError("leader function is not callable")
        ensure_started(self.client)
        self._withdrawn.clear()
        if not self._candidacy.acquire():
            return False
        leadership = Leadership(self, self._candidacy)
        with self._mutex:
            self._leadership = leadership
        try:
            if self._withdrawn.is_set():
                leadership.stop_requested.set()
            else:
                func(leadership, *args, **kwargs)
            return True
        finally:
            leadership.stop_requested.set()
            with self._mutex:
                self._leadership = None
            self._candidacy.release()

    def cancel(self) -> None:
        """Withdraw at whatever stage: a waiting ``run`` returns False; a leader resigns."""
        self._withdraw()

    def resign(self) -> None:
        """Stop leading now: our node is deleted and the callback is told to stop. While still waiting
        to be elected, withdraws like :meth:`cancel`."""
        self._withdraw()

    def _withdraw(self) -> None:
        self._withdrawn.set()
        self._candidacy.cancel()
        with self._mutex:
            lead = self._leadership
        if lead is not None:
            lead.stop_requested.set()
            # Delete the node at once so the next candidate can take over; run() logs the resignation
            # when the callback returns. The node is confirmed gone (or our session is).
            node = self._candidacy.node
            stat = self._candidacy._stat
            if node is not None:
                self._candidacy._close_guard()
                delete_confirmed(self.client, node, stat.ephemeralOwner if stat else None)

    def _lost(self, candidacy: _LockBase) -> None:
        with self._mutex:
            lead = self._leadership
        if lead is not None:
            lead.stop_requested.set()
        if self.on_lost is not None:
            self.on_lost(self)

    def contenders(self) -> list[str]:
        """Identifiers of all candidates, leader first."""
        return self._candidacy.contenders()

    def leader(self) -> Optional[str]:
        """The current leader's identifier (None when there is no candidate)."""
        ensure_started(self.client)
        try:
            children = self.client.get_children(self.path)
        except NoNodeError:
            return None
        for name in cont.ordered_names(children, (cont.ELECTION_MARKER,)):
            try:
                data, _ = self.client.get(f"{self.path}/{name}")
            except NoNodeError:
                continue
            return (data or b"").decode("utf-8", "replace")
        return None
