"""The session-loss policy, in one place.

Every recipe (fair lock, non-fair lock, election) asks the same question: *may I still act as the owner?*
The answer comes from the ZooKeeper session, never from memory:

* ``LOST`` (the session expired, so the server deleted our ephemeral node) -> not held, for good.
* ``SUSPENDED`` (connection gone, session maybe alive) -> still held only for ``grace`` seconds.
  kazoo notices a silent connection loss up to 2/3 of the session timeout after the last server reply
  (it pings every 1/3 and gives up after one unanswered ping), and the server may expire the session one
  full timeout after it last heard from us. So the session may be gone as early as ~1/3 of the timeout
  after SUSPENDED; the default grace is 0.3 x the session timeout, just inside that.
  Past the grace the ownership is declared lost (the ``lost`` event fires) even if the session later
  turns out to be alive -- the owner was told to stop, so it must acquire again; our node is then
  deleted as soon as the connection is back so the next contender is not blocked.
* ``CONNECTED`` after ``SUSPENDED`` -> re-judged from a ``sync()``ed read: our node must still exist and
  be owned by our session (``ephemeralOwner``); if not, lost.  Until that read answers, trusted as while
  suspended: within the grace from the suspension, on the same session, never longer.
* A frozen process (GC pause, SIGSTOP, an overloaded host) sees none of those transitions until it runs
  again, and kazoo still says CONNECTED when it wakes. So ownership is also trusted only for half a
  session timeout after the last request we *sent* that the server answered: a background check reads
  our node every quarter timeout. The server cannot have expired our session earlier than one full
  timeout after it heard from us, so this never trusts a dead session; after a long pause ``is_held`` is
  False at once (and the node check or kazoo's own detection then settles whether it was lost).

The session timeout used is the one the client *asked* for (kazoo does not expose the negotiated
value); a server that negotiates a shorter one needs an explicit ``suspended_grace``.
"""

from __future__ import annotations

import collections
import threading
import time
from typing import Any, Callable, Optional

import structlog
from kazoo.exceptions import (
    ConnectionClosedError,
    ConnectionLoss,
    NoNodeError,
    OperationTimeoutError,
    SessionExpiredError,
)
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.protocol.states import KazooState
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_exponential

from recipes.errors import ClientNotStartedError

log = structlog.get_logger("recipes")

DEFAULT_GRACE_FRACTION = 0.3

#: Errors after which the same request may simply be retried (the session may still be alive).
RETRYABLE = (ConnectionLoss, OperationTimeoutError, KazooTimeoutError)


def session_timeout_s(client: Any) -> float:
    """The session timeout the client asked for, in seconds."""
    return float(getattr(client, "_session_timeout", 10000)) / 1000.0


def default_grace(client: Any) -> float:
    return DEFAULT_GRACE_FRACTION * session_timeout_s(client)


def current_session_id(client: Any) -> Optional[int]:
    """The id of the client's current session (None before the first connect)."""
    return getattr(client, "_session_id", None)


def client_stopped(client: Any) -> bool:
    stopped = getattr(client, "_stopped", None)
    if stopped is not None:
        return bool(stopped.is_set())
    return False


def ensure_started(client: Any) -> None:
    """Raise :class:`ClientNotStartedError` instead of letting a recipe hang on a client never started."""
    if client_stopped(client):
        raise ClientNotStartedError(
            "the kazoo client is not started (or was stopped): call client.start() before using a recipe"
        )


def delete_confirmed(
    client: Any,
    node_path: str,
    owner_session: Optional[int],
    *,
    find: Optional[Callable[[], Optional[str]]] = None,
) -> str:
    """Delete ``node_path`` and confirm it is gone, retrying through connection loss.

    Returns why it stopped: ``"deleted"``, ``"absent"`` (already gone), ``"session_gone"`` (the session
    that owned it ended, so the server removed it or will), or ``"client_stopped"``. ``find`` may locate
    the node by its unique prefix when its name is unknown (a create whose reply was lost); it then
    returns the path to delete or None.
    """
    budget = max(2.0 * session_timeout_s(client), 5.0)
    deadline = time.monotonic() + budget
    delay = 0.05
    while True:
        if client_stopped(client):
            return "client_stopped"
        sid = current_session_id(client)
        if owner_session is not None and sid is not None and sid != owner_session:
            return "session_gone"
        try:
            target = node_path if find is None else find()
            if target is None:
                return "absent"
            client.delete_async(target).get(timeout=session_timeout_s(client))
            return "deleted"
        except NoNodeError:
            return "absent"
        except SessionExpiredError:
            return "session_gone"
        except ConnectionClosedError:
            return "client_stopped"
        except RETRYABLE:
            pass
        if time.monotonic() >= deadline:
            # Disconnected for longer than the session timeout: the server has expired the session and
            # removed the ephemeral node.
            return "session_gone"
        time.sleep(delay)
        delay = min(delay * 2, 0.5)


def reap_in_background(client: Any, node_path: str, owner_session: Optional[int], **kw: Any) -> None:
    """Run :func:`delete_confirmed` on a daemon thread (cleanup that must not delay the caller)."""
    t = threading.Thread(
        target=delete_confirmed, args=(client, node_path, owner_session), kwargs=kw, daemon=True,
        name="recipes-reaper",
    )
    t.start()


class OwnershipGuard:
    """Watches the session on behalf of one ownership (one held lock, one leadership term).

    ``is_trusted()`` answers "may I still act as the owner?"; ``lost`` is set (once) and ``on_lost`` is
    called (on its own thread, never on kazoo's connection thread) as soon as the answer becomes no for a
    reason other than a voluntary release.
    """

    def __init__(
        self,
        client: Any,
        node_path: str,
        owner_session: int,
        *,
        grace: Optional[float],
        on_lost: Callable[[str], None],
    ) -> None:
        self.client = client
        self.node_path = node_path
        self.parent = node_path.rsplit("/", 1)[0] or "/"
        self.owner_session = owner_session
        self.grace = default_grace(client) if grace is None else float(grace)
        self._on_lost: Optional[Callable[[str], None]] = on_lost
        self._mutex = threading.Lock()
        self._state = KazooState.CONNECTED
        self._suspended_at: Optional[float] = None
        self._verifying = False
        self._timer: Optional[threading.Timer] = None
        self._closed = False
        self.trust_window = 0.5 * session_timeout_s(client)
        self.check_interval = max(0.05, 0.25 * session_timeout_s(client))
        self._confirmed_at = time.monotonic()
        self._check_in_flight = False
        self.lost = threading.Event()
        self.lost_reason: Optional[str] = None

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> None:
        """Begin guarding. The owner forwards every kazoo state change to :meth:`on_state` (a lock
        object keeps one listener for its lifetime), so a guard registers none of its own: that was an
        add and a remove per ownership, on the hand-over's path."""
        # Trust starts from the evidence that made us owner, just before this call (the guard may
        # have been built earlier, while its owner waited).
        self._confirmed_at = time.monotonic()
        # The state may have changed between our last request and the owner forwarding states to us.
        state = self.client.state
        if state != KazooState.CONNECTED:
            self._listener(state)
        _CONFIRMER.add(self)

    def close(self) -> None:
        with self._mutex:
            self._closed = True
            # The confirmer may hold a closed guard until it next wakes; it must not keep the owner
            # (the lock object, through this callback) alive meanwhile.
            self._on_lost = None
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        # The confirmer drops a closed guard itself when it next meets it.

    def on_state(self, state: str) -> None:
        """A kazoo state change, forwarded by the owner (see :meth:`start`)."""
        self._listener(state)

    # -- the answer ----------------------------------------------------------------------------------
    def is_trusted(self) -> bool:
        with self._mutex:
            if self.lost.is_set() or self._closed:
                return False
            state = self._state
            suspended_at = self._suspended_at
            confirmed_at = self._confirmed_at
            verifying = self._verifying
        if time.monotonic() - confirmed_at >= self.trust_window:
            return False
        live = self.client.state
        within_grace = suspended_at is not None and time.monotonic() - suspended_at < self.grace
        if verifying:
            # Reconnected, the re-check not answered yet: no less trustworthy than the suspension
            # before it, so trusted by the same grace (never more).  Were it distrusted for those few
            # milliseconds, a leader polling should_stop would resign at some failovers and not at
            # others, by the luck of its polling.
            return (within_grace and live in (KazooState.SUSPENDED, KazooState.CONNECTED)
                    and current_session_id(self.client) == self.owner_session)
        if state == KazooState.CONNECTED and live == KazooState.CONNECTED:
            return current_session_id(self.client) == self.owner_session
        if state == KazooState.SUSPENDED and live in (KazooState.SUSPENDED, KazooState.CONNECTED):
            return within_grace
        return False

    def declare_lost(self, reason: str) -> bool:
        """Mark the ownership lost (idempotent). Returns True the first time."""
        with self._mutex:
            if self.lost.is_set() or self._closed:
                return False
            self.lost_reason = reason
            self.lost.set()
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            on_lost = self._on_lost
        threading.Thread(target=on_lost, args=(reason,), daemon=True, name="recipes-lost").start()
        return True

    # -- kazoo states, forwarded from the connection thread (never block here) -----------------------
    def _listener(self, state: str) -> None:
        with self._mutex:
            if self._closed:
                return
            previous = self._state
            self._state = state
            if state == KazooState.SUSPENDED:
                if previous != KazooState.SUSPENDED:
                    self._suspended_at = time.monotonic()
                    self._timer = threading.Timer(self.grace, self._suspended_too_long)
                    self._timer.daemon = True
                    self._timer.start()
                return
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            already_lost = self.lost.is_set()
            if state == KazooState.CONNECTED and not already_lost:
                self._verifying = True
        if state == KazooState.LOST:
            self.declare_lost("session_lost")
        elif state == KazooState.CONNECTED:
            if already_lost:
                # We told the owner to stop; free the queue for the others as soon as we can.
                reap_in_background(self.client, self.node_path, self.owner_session)
            else:
                threading.Thread(target=self._verify, daemon=True, name="recipes-verify").start()

    def _check(self) -> None:
        """Refresh the evidence that our session is alive and our node still ours (asynchronously).

        At most one check is in flight: while the last one is unanswered, none is sent.  That is not
        only thrift.  kazoo counts every request it sends as a ping ("requests act as implicit pings")
        and pings only after a third of the session timeout without sending anything, while it learns
        that a connection went silent (a partition, a paused server) only from an unanswered ping.  So
        checks sent every quarter of the timeout into a silent connection would keep kazoo from ever
        noticing: no SUSPENDED, no failover to another member, and the holder never told it lost the
        lock while the servers expire its session.  Holding back until the answer comes lets kazoo's
        own ping go out and time out (within two thirds of the session timeout)."""
        if self.lost.is_set() or self._closed or self._check_in_flight:
            return
        sent = time.monotonic()
        self._check_in_flight = True
        try:
            self.client.exists_async(self.node_path).rawlink(lambda res: self._checked(sent, res))
        except Exception:  # noqa: BLE001 - no evidence this round; the listener handles the states
            self._check_in_flight = False

    def _checked(self, sent: float, result: Any) -> None:
        # kazoo answers every request it sent, with an error when the connection drops, so the flag
        # always clears
        self._check_in_flight = False
        if not result.successful():
            return
        stat = result.value
        with self._mutex:
            if self._closed:
                return
            if stat is not None and stat.ephemeralOwner == self.owner_session:
                self._confirmed_at = max(self._confirmed_at, sent)
                return
        self.declare_lost("node_gone")

    def _suspended_too_long(self) -> None:
        with self._mutex:
            still = self._state == KazooState.SUSPENDED and not self._closed
        if still and self.declare_lost("suspended_past_grace"):
            # When (if) the connection comes back, delete the node we no longer claim.
            self.client.add_listener(self._reap_on_reconnect)

    def _reap_on_reconnect(self, state: str) -> Optional[bool]:
        if state == KazooState.CONNECTED:
            reap_in_background(self.client, self.node_path, self.owner_session)
            return True
        if state == KazooState.LOST:
            return True  # the server removed the node with the session
        return None

    def _verify(self) -> None:
        """Re-judge ownership after a reconnect from a sync()ed read."""
        reason: Optional[str] = None
        try:
            for attempt in Retrying(
                retry=retry_if_exception_type(RETRYABLE),
                wait=wait_exponential(multiplier=0.05, max=0.5),
                stop=stop_after_delay(max(self.grace, 1.0) * 3),
                reraise=True,
            ):
                with attempt:
                    tmo = session_timeout_s(self.client)
                    self.client.sync_async(self.parent).get(timeout=tmo)
                    stat = self.client.exists_async(self.node_path).get(timeout=tmo)
            if stat is None:
                reason = "node_gone"
            elif stat.ephemeralOwner != self.owner_session or (
                current_session_id(self.client) != self.owner_session
            ):
                reason = "session_changed"
        except (SessionExpiredError, ConnectionClosedError):
            reason = "session_lost"
        except Exception:  # noqa: BLE001 - cannot confirm ownership: be safe
            reason = "unverifiable"
        with self._mutex:
            self._verifying = False
        if reason is not None:
            self.declare_lost(reason)
        else:
            log.debug("recipes.ownership_verified", node=self.node_path)


class _Confirmer:
    """One daemon thread that periodically asks every live guard to re-check its node.

    (One shared thread rather than one per ownership: starting a thread per acquisition costs more
    than the acquisition's own round trips.) Adding a guard happens on the hand-over's path, so it is
    usually lock-free: a new guard goes onto a queue the thread drains when it next wakes -- never
    later than the guard's first check is due, see :meth:`add`. There is no removal: the thread drops
    a closed guard when it meets it.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._due: dict[OwnershipGuard, float] = {}
        self._incoming: collections.deque = collections.deque()
        self._thread: Optional[threading.Thread] = None
        self._sleep_until = 0.0
        # With no guard the thread naps this long (the shortest check interval seen), so that a new
        # guard's first check (one check interval away) never needs a wake-up: waking the thread on
        # every acquisition cost a thread switch each time, which showed with 16 contending processes.
        self._nap = 1.0

    def add(self, guard: OwnershipGuard) -> None:
        due = time.monotonic() + guard.check_interval
        thread = self._thread
        if guard.check_interval >= self._nap and thread is not None and thread.is_alive():
            # The thread never sleeps longer than _nap past the moment it last looked, so it wakes
            # by ``due`` and finds this guard then (deque.append is atomic).
            self._incoming.append((guard, due))
            return
        with self._cond:
            self._nap = min(self._nap, guard.check_interval)
            self._due[guard] = due
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, daemon=True, name="recipes-confirmer")
                self._thread.start()
            elif due < self._sleep_until:
                self._cond.notify()  # only wake the thread when it would otherwise sleep past this one

    def _run(self) -> None:
        while True:
            with self._cond:
                now = time.monotonic()  # before draining: a guard queued after it is due after now + nap
                incoming = self._incoming
                while incoming:
                    guard, due = incoming.popleft()
                    self._due[guard] = due
                due_now = []
                for g, t in list(self._due.items()):
                    if g._closed:
                        del self._due[g]
                    elif t <= now:
                        due_now.append(g)
                        self._due[g] = now + g.check_interval
                if not due_now:
                    # never past now + _nap: that is what lets add() skip the lock
                    self._sleep_until = min(min(self._due.values(), default=now + self._nap), now + self._nap)
                    self._cond.wait(max(0.0, self._sleep_until - now))
                    continue
            for g in due_now:
                g._check()


_CONFIRMER = _Confirmer()
