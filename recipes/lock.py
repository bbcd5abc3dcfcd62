"""Distributed locks over kazoo: :class:`Lock` (fair, FIFO) and :class:`NonFairLock`.

Fair lock (the classic ZooKeeper recipe)
    Each contender creates an ephemeral-sequential node ``<32 hex>__lock__<seq>`` under the lock path;
    the lowest sequence (wrap-aware, see :mod:`recipes.contenders`) holds the lock; every other contender
    watches only its next-lower node. Cost per release: **one** watch notification (the successor's),
    one ``getChildren``; waiters queue in FIFO order. The node naming is kazoo's, so a kazoo ``Lock`` and
    ours on the same path exclude each other.

Non-fair lock
    Whoever creates the single ephemeral node at the lock path holds it; everybody else watches that
    node and races to create it when it disappears. Cost per release: **N** notifications for N waiters,
    N create attempts of which N-1 fail, N-1 new watches (the herd effect); no ordering. Cheap when
    contention is rare, expensive when it is not.

Both give: ``with lock:``, ``acquire(blocking=True, timeout=None) -> bool`` (False on timeout, cancel or
non-blocking miss -- never an exception for those), ``release()``, ``cancel()``, ``contenders()``,
``is_held`` (from the session, see :mod:`recipes.session`), ``lost`` (an Event) and ``on_lost``
(a callback), ``fencing_token`` (our node's czxid; strictly increasing across holders) and guarded
writes (``transaction()``, ``guarded_set()``: a multi that first checks our node still exists).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
import uuid
import weakref
from typing import Any, Callable, Optional

import structlog
from kazoo.exceptions import (
    ConnectionClosedError,
    NodeExistsError,
    NoNodeError,
    SessionExpiredError,
)
from kazoo.protocol.states import EventType, ZnodeStat

from recipes import contenders as cont
from recipes.errors import AlreadyHeldError, CancelledError, NotHeldError, OwnershipLostError
from recipes.session import (
    RETRYABLE,
    OwnershipGuard,
    client_stopped,
    current_session_id,
    delete_confirmed,
    ensure_started,
    reap_in_background,
    session_timeout_s,
)

log = structlog.get_logger("recipes")


_LOG_OFF = object()  # stands for a logger that drops info events


def _info_logger() -> Any:
    """A bound logger for an info event, or ``_LOG_OFF`` when the logging setup would drop it anyway
    (then the event's fields are not even gathered)."""
    bound = log.bind()
    enabled = getattr(bound, "is_enabled_for", None)
    try:
        if enabled is not None and not enabled(logging.INFO):
            return _LOG_OFF
    except Exception:  # noqa: BLE001 - an unusual wrapper class: just log
        pass
    return bound


class _GaveUp(Exception):
    """Internal: the deadline passed or the attempt was cancelled."""


class _LockBase:
    """Everything the fair and non-fair locks share: local gate, reentrancy, ownership, fencing."""

    _EVENTS = {"acquired": "lock.acquired", "released": "lock.released", "lost": "lock.lost"}

    def __init__(
        self,
        client: Any,
        path: str,
        identifier: Optional[str] = None,
        *,
        reentrant: bool = False,
        on_lost: Optional[Callable[["_LockBase"], None]] = None,
        suspended_grace: Optional[float] = None,
    ) -> None:
        if not path.startswith("/") or path == "/" or path.endswith("/"):
            raise ValueError(f"lock path must be an absolute znode path, not {path!r}")
        self.client = client
        self.path = path
        self.identifier = "" if identifier is None else str(identifier)
        self.reentrant = reentrant
        self.on_lost = on_lost
        self.suspended_grace = suspended_grace
        #: Set when an ownership this object had is judged lost (session LOST, SUSPENDED past the grace,
        #: node gone after a reconnect). Cleared at the start of the next acquisition.
        self.lost = threading.Event()
        # _gate is held for the whole time this object owns the lock: a second thread using the same
        # object waits here, like threading.Lock.
        self._gate = threading.Lock()
        self._mutex = threading.RLock()
        self._wake = threading.Event()
        self._cancel = threading.Event()
        self._acquiring = False
        self._owner_thread: Optional[int] = None
        self._depth = 0
        self._node_path: Optional[str] = None
        self._stat: Optional[ZnodeStat] = None
        self._guard: Optional[OwnershipGuard] = None
        # A guard built for our node while we wait, so that taking over costs only its start().
        self._spare_guard: Optional[OwnershipGuard] = None
        self._acquired_log: Any = None  # the bound logger for our next "acquired" event
        self._acquired_at = 0.0
        self._path_ensured = False
        self._listener_registered = False

    # -- public API -------------------------------------------------------------------------------
    def acquire(self, blocking: bool = True, timeout: Optional[float] = None) -> bool:
        """Take the lock. Returns True when held; False on timeout, cancel() or a non-blocking miss."""
        ensure_started(self.client)
        if timeout is not None and timeout < 0:
            raise ValueError("timeout must be >= 0 or None")
        me = threading.get_ident()
        with self._mutex:
            if self._owner_thread == me and self._node_path is not None:
                if not self.reentrant:
                    raise AlreadyHeldError(
                        f"{self.path}: this thread already holds the lock (create it with reentrant=True "
                        "to allow nested acquisition)"
                    )
                self._depth += 1
                return True
        started = time.monotonic()
        deadline = None if timeout is None else started + timeout
        if not blocking:
            got_gate = self._gate.acquire(blocking=False)
        else:
            got_gate = self._gate.acquire(timeout=-1 if timeout is None else timeout)
        if not got_gate:
            return False
        with self._mutex:
            self._acquiring = True
            self._cancel.clear()
        ok = False
        try:
            self.lost.clear()
            self._acquired_log = None  # bound afresh for this attempt: the logging setup may have changed
            ok = self._contend(blocking, deadline)
            if ok:
                self._became_owner(me, started)
            return ok
        except _GaveUp:
            return False
        finally:
            with self._mutex:
                self._acquiring = False
            if not ok:
                self._gate.release()

    def release(self) -> bool:
        """Give the lock up and confirm our node is gone (or our session is). False if not held."""
        with self._mutex:
            if self._node_path is None:
                return False
            if self._depth > 1:
                self._depth -= 1
                return True
            node_path, stat, guard = self._node_path, self._stat, self._guard
            held_s = time.monotonic() - self._acquired_at
            self._node_path = None
            self._stat = None
            self._guard = None
            self._owner_thread = None
            self._depth = 0
        try:
            if guard is not None:
                guard.close()
            outcome = self._delete_own(node_path, stat.ephemeralOwner if stat else None)
            log.info(
                self._EVENTS["released"], path=self.path, node=node_path,
                token=stat.czxid if stat else None, held_s=round(held_s, 6), outcome=outcome,
            )
            if outcome == "session_gone" and guard is not None and not guard.lost.is_set():
                # The session ended under the ownership and we learn it only now: the owner was cut
                # off (a partition, a failover slower than the session), stopped trusting the lock,
                # and released before the verdict arrived.  That is a loss, not a resignation: say so
                # as the guard would have (before the gate opens to a new acquire).
                self._report_lost("session_lost", node_path, stat, background=True)
        finally:
            self._gate.release()
        return True

    def cancel(self) -> bool:
        """Abort an acquire in progress (in another thread): it returns False after removing its node.

        Returns True if an acquisition was in progress. Has no effect on a lock already held (use
        :meth:`release`) or on later acquisitions.
        """
        with self._mutex:
            if not self._acquiring:
                return False
            self._cancel.set()
            self._wake.set()
            return True

    @property
    def is_held(self) -> bool:
        """True only while we hold the lock *and* the session vouches for it."""
        with self._mutex:
            guard = self._guard if self._node_path is not None else None
        return guard is not None and guard.is_trusted()

    @property
    def fencing_token(self) -> Optional[int]:
        """The czxid of our lock node while we own it (strictly increasing across holders), else None."""
        with self._mutex:
            return self._stat.czxid if self._stat is not None and self._node_path is not None else None

    @property
    def node(self) -> Optional[str]:
        """Full path of our lock node while we own it."""
        with self._mutex:
            return self._node_path

    def transaction(self) -> Any:
        """A kazoo transaction that commits only if our lock node still exists (a fenced write).

        Add operations and ``commit()``; if we were deposed the whole transaction fails atomically
        (the first result is a ``NoNodeError``). Raises :class:`OwnershipLostError` at once when the loss
        is already known.
        """
        with self._mutex:
            node_path = self._node_path
        if node_path is None:
            raise NotHeldError(f"{self.path}: lock not held")
        if self.lost.is_set():
            raise OwnershipLostError(f"{self.path}: ownership of {node_path} was lost")
        tx = self.client.transaction()
        tx.check(node_path, -1)
        return tx

    def guarded_set(self, path: str, value: bytes, version: int = -1) -> ZnodeStat:
        """``set(path, value)`` that the server rejects unless we still hold the lock.

        Raises :class:`OwnershipLostError` if our node is gone (another holder may exist now).
        """
        tx = self.transaction()
        tx.set_data(path, value, version)
        try:
            results = tx.commit()
        except SessionExpiredError as e:  # the session, and with it our node, is gone
            raise OwnershipLostError(f"{self.path}: session expired; write rejected") from e
        if isinstance(results[0], Exception):
            raise OwnershipLostError(f"{self.path}: lock node {self.node} is gone; write rejected")
        if isinstance(results[1], Exception):
            raise results[1]
        return results[1]

    def __enter__(self) -> "_LockBase":
        if not self.acquire():
            raise CancelledError(f"{self.path}: acquisition cancelled")
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()

    # -- shared machinery ----------------------------------------------------------------------------
    def _contend(self, blocking: bool, deadline: Optional[float]) -> bool:  # pragma: no cover
        raise NotImplementedError

    def _became_owner(self, me: int, started: float) -> None:
        assert self._node_path is not None and self._stat is not None
        self._prepare_guard(self._node_path, self._stat.ephemeralOwner)  # unless built while we waited
        guard, self._spare_guard = self._spare_guard, None
        with self._mutex:
            self._guard = guard
            self._owner_thread = me
            self._depth = 1
            self._acquired_at = time.monotonic()
        guard.start()
        logger, self._acquired_log = self._acquired_log, None
        if logger is not _LOG_OFF:
            logger.info(
                self._EVENTS["acquired"], path=self.path, node=self._node_path, token=self._stat.czxid,
                wait_s=round(self._acquired_at - started, 6), identifier=self.identifier,
            )

    def _prepare_guard(self, node_path: str, owner_session: int) -> None:
        """Build the guard for our node (a waiter does it before it blocks, off the hand-over's path)."""
        spare = self._spare_guard
        if spare is None or spare.node_path != node_path or spare.owner_session != owner_session:
            self._spare_guard = OwnershipGuard(
                self.client, node_path, owner_session, grace=self.suspended_grace, on_lost=self._handle_lost,
            )
        if self._acquired_log is None:
            # Resolved now, not on the hand-over's path: a call through structlog's lazy proxy binds a
            # logger first (a new one each time unless the application caches them), and right after
            # a long wait that alone showed as ~15 us of the ~50 us between listing and returning.
            self._acquired_log = _info_logger()

    def _close_guard(self) -> None:
        """Stop watching the session for this ownership (a voluntary resignation is not a loss)."""
        with self._mutex:
            guard = self._guard
        if guard is not None:
            guard.close()

    def _handle_lost(self, reason: str) -> None:
        with self._mutex:
            node_path, stat = self._node_path, self._stat
        self._report_lost(reason, node_path, stat)

    def _report_lost(self, reason: str, node_path: Optional[str], stat: Any, background: bool = False) -> None:
        self.lost.set()
        log.warning(
            self._EVENTS["lost"], path=self.path, node=node_path, token=stat.czxid if stat else None,
            reason=reason,
        )
        if self.on_lost is not None:
            if background:  # from release(): the user's callback never runs on the releasing thread
                threading.Thread(target=self._call_on_lost, daemon=True, name="recipes-lost").start()
            else:
                self._call_on_lost()

    def _call_on_lost(self) -> None:
        try:
            self.on_lost(self)
        except Exception:  # noqa: BLE001 - a user callback must not kill the guard
            log.exception("recipes.on_lost_failed", path=self.path)

    def _delete_own(self, node_path: str, owner: Optional[int]) -> str:
        return delete_confirmed(self.client, node_path, owner)

    def _remaining(self, deadline: Optional[float]) -> Optional[float]:
        if deadline is None:
            return None
        left = deadline - time.monotonic()
        if left <= 0:
            raise _GaveUp()
        return left

    def _request_timeout(self, deadline: Optional[float]) -> float:
        """How long to wait for one reply: the session timeout, or less if the deadline is nearer."""
        left = self._remaining(deadline)
        per_call = session_timeout_s(self.client)
        return per_call if left is None else min(left, per_call)

    def _check_cancel(self) -> None:
        if self._cancel.is_set():
            raise _GaveUp()

    def _call(self, make: Callable[[], Any], deadline: Optional[float]) -> Any:
        """Run one kazoo async request to completion, retrying through connection loss.

        Gives up (``_GaveUp``) at the deadline or on cancel; the client being stopped surfaces as
        :class:`ClientNotStartedError` rather than a hang.
        """
        delay = 0.02
        while True:
            self._check_cancel()
            left = self._remaining(deadline)
            ensure_started(self.client)
            per_call = session_timeout_s(self.client)
            tmo = per_call if left is None else min(left, per_call)
            try:
                return make().get(timeout=tmo)
            except RETRYABLE:
                pass
            except SessionExpiredError:
                pass  # kazoo opens a new session; the caller re-checks whether our node survived
            except ConnectionClosedError:
                ensure_started(self.client)
                raise
            # Back off rather than spin; a cancel wakes us at once.
            self._cancel.wait(delay if left is None else min(delay, max(left, 0)))
            delay = min(delay * 2, 0.5)

    def _ensure_path(self, parent: str, deadline: Optional[float]) -> None:
        if self._path_ensured:
            return
        self._call(lambda: self.client.ensure_path_async(parent), deadline)
        self._path_ensured = True

    def _listen(self) -> None:
        """Register this object's one kazoo state listener (once: not on every acquisition's path).

        The listener holds the lock object weakly and is removed from the client when the object is
        garbage-collected, so a lock object made per request does not leave a listener behind.
        A state change wakes a waiting acquisition and reaches the guard of a held lock.
        """
        if self._listener_registered:
            return
        self._listener_registered = True
        ref = weakref.ref(self)

        def listener(state: str) -> Optional[bool]:
            me = ref()
            if me is None:
                return True  # kazoo removes a listener that returns True
            me._on_state(state)
            return None

        self.client.add_listener(listener)
        weakref.finalize(self, self.client.remove_listener, listener)

    def _on_state(self, state: str) -> None:
        self._wake.set()  # a waiter re-checks (a spurious wake-up is harmless: it lists again)
        guard = self._guard
        if guard is not None:
            guard.on_state(state)


class Lock(_LockBase):
    """Fair (FIFO) distributed lock; interoperates with :class:`kazoo.recipe.lock.Lock` on the same path.

    >>> with Lock(client, "/zkroot/lock", identifier="worker-1") as lock:
    ...     lock.guarded_set("/zkroot/resource", b"...")   # rejected by the server if we were deposed

    ``extra_markers`` adds name markers of other contenders to respect (as kazoo's
    ``extra_lock_patterns``).
    """

    _MARKER = cont.LOCK_MARKER

    def __init__(
        self,
        client: Any,
        path: str,
        identifier: Optional[str] = None,
        *,
        reentrant: bool = False,
        on_lost: Optional[Callable[["_LockBase"], None]] = None,
        suspended_grace: Optional[float] = None,
        extra_markers: tuple[str, ...] = (),
    ) -> None:
        super().__init__(
            client, path, identifier, reentrant=reentrant, on_lost=on_lost,
            suspended_grace=suspended_grace,
        )
        self._markers = (self._MARKER, *extra_markers)
        self._prefix_base = uuid.uuid4().hex[:24]
        self._attempts = itertools.count()  # next() on it is atomic: safe from several threads
        #: Watch notifications this object received while waiting (for herd measurements).
        self.watch_notifications = 0
        self._attempt_session: Optional[int] = None
        self._deleted: Optional[str] = None  # path of a predecessor the server told us was deleted
        # (our node name, a child listing already in flight): sent right behind our create.
        self._prefetch: Optional[tuple[str, Any]] = None

    # kazoo-compatible alias used by some callers
    @property
    def is_acquired(self) -> bool:
        return self.is_held

    def contenders(self) -> list[str]:
        """Identifiers of the contenders in queue order (holder first); kazoo contenders included."""
        ensure_started(self.client)
        try:
            children = self._call(lambda: self.client.get_children_async(self.path), None)
        except NoNodeError:
            return []
        out = []
        for name in cont.ordered_names(children, self._markers):
            try:
                data, _ = self._call(lambda n=name: self.client.get_async(f"{self.path}/{n}"), None)
            except NoNodeError:
                continue
            out.append((data or b"").decode("utf-8", "replace"))
        return out

    # -- the algorithm --------------------------------------------------------------------------------
    def _new_prefix(self) -> str:
        # 32 hex digits unique to this attempt: 96 random bits drawn once per lock object, then an
        # attempt counter. (A uuid4 per attempt cost an os.urandom call, which drops the GIL, on the
        # path from release() to the next acquire(); contending threads paid for it at every hand-over.)
        return f"{self._prefix_base}{next(self._attempts) & 0xFFFFFFFF:08x}{self._MARKER}"

    def _create_node(self, prefix: str, deadline: Optional[float]) -> tuple[str, ZnodeStat]:
        """Create our ephemeral-sequential node; recover it by prefix if a reply was lost."""
        base = f"{self.path}/{prefix}"
        tried = False
        while True:
            self._check_cancel()
            if tried:
                children = self._call(lambda: self.client.get_children_async(self.path), deadline)
                found = cont.find_by_prefix(children, prefix)
                if found is not None:
                    stat = self._call(lambda: self.client.exists_async(f"{self.path}/{found}"), deadline)
                    if stat is not None:
                        return found, stat
                    continue
            tried = True
            ensure_started(self.client)
            tmo = self._request_timeout(deadline)
            try:
                creating = self.client.create_async(
                    base, self.identifier.encode("utf-8"), ephemeral=True, sequence=True,
                    include_data=True,
                )
                # The server answers one session's requests in order, so a listing sent right behind
                # the create already shows our node: the first decision needs no extra round trip.
                listing = self.client.get_children_async(self.path)
                created, stat = creating.get(timeout=tmo)
                name = created.rsplit("/", 1)[1]
                self._prefetch = (name, listing)
                return name, stat
            except NoNodeError:
                self._path_ensured = False
                self._ensure_path(self.path, deadline)
                tried = False
            except (*RETRYABLE, SessionExpiredError):
                time.sleep(0.02)

    def _contend(self, blocking: bool, deadline: Optional[float]) -> bool:
        self._ensure_path(self.path, deadline)
        prefix = self._new_prefix()
        name: Optional[str] = None
        self._listen()
        try:
            name, stat = self._create_node(prefix, deadline)
            # Who was queued before our node at the last listing (None: not listed yet for this node).
            ahead: Optional[list[str]] = None
            while True:
                self._wake.clear()
                self._check_cancel()
                children = self._list(name, deadline)
                if ahead is None:
                    ahead = cont.queue_ahead(children, name, self._markers)
                else:
                    ahead = cont.still_ahead(ahead, children, name)
                d = cont.decision(ahead)
                if not d.present:
                    # Our session ended while we waited and took the node along: queue again.
                    prefix = self._new_prefix()
                    name = None
                    name, stat = self._create_node(prefix, deadline)
                    ahead = None
                    continue
                if d.holder:
                    with self._mutex:
                        self._node_path = f"{self.path}/{name}"
                        self._stat = stat
                    return True
                if not blocking:
                    raise _GaveUp()
                pred = f"{self.path}/{d.predecessor}"
                self._deleted = None
                try:
                    self._call(lambda: self.client.get_async(pred, watch=self._on_predecessor), deadline)
                except NoNodeError:
                    continue  # already gone: re-check at once
                self._prepare_guard(f"{self.path}/{name}", stat.ephemeralOwner)
                left = self._remaining(deadline)
                self._wake.wait(left)
                if d.position == 1 and self._deleted == pred and not self._cancel.is_set():
                    # We queued right behind the holder and it is gone.  Nobody can be ahead of us
                    # now: a node created after our listing gets a later sequence number, and the
                    # server told us on our live session, so our own node still exists.  This
                    # saves the re-listing round trip on every hand-over.
                    with self._mutex:
                        self._node_path = f"{self.path}/{name}"
                        self._stat = stat
                    return True
        except _GaveUp:
            self._abandon(prefix, name)
            raise
        except BaseException:
            self._abandon(prefix, name)
            raise
        finally:
            self._prefetch = None

    def _list(self, name: str, deadline: Optional[float]) -> list[str]:
        """The lock's children for deciding on ``name``: the listing sent with our create, else a new one."""
        prefetched, self._prefetch = self._prefetch, None
        if prefetched is not None and prefetched[0] == name:
            tmo = self._request_timeout(deadline)
            try:
                children = prefetched[1].get(timeout=tmo)
            except Exception:  # noqa: BLE001 - any trouble: ask again with the usual retry policy
                children = None
            # A listing without our node is never trusted to mean "our node is gone" (that would
            # queue us again); only one asked for after the create's reply decides that.
            if children is not None and name in children:
                return children
        return self._call(lambda: self.client.get_children_async(self.path), deadline)

    def _on_predecessor(self, event: Any) -> None:
        # Only wake the waiter. (Sending the re-listing from here, a thread hop earlier, was measured:
        # with the GIL the waiter then woke later and the answer came no sooner.)
        self.watch_notifications += 1
        if event.type == EventType.DELETED:
            self._deleted = event.path
        self._wake.set()

    def _abandon(self, prefix: str, name: Optional[str]) -> None:
        """Remove the node of an attempt that did not end in ownership (confirmed, or in background)."""
        if client_stopped(self.client):
            return
        owner = current_session_id(self.client)
        if name is not None:
            path = f"{self.path}/{name}"
            if self._cancel.is_set():
                delete_confirmed(self.client, path, owner)
                return
            try:  # one quick try so acquire(blocking=False / timeout) returns promptly...
                self.client.delete_async(path).get(timeout=min(1.0, session_timeout_s(self.client)))
            except NoNodeError:
                pass
            except Exception:  # noqa: BLE001 - ...and a confirmed cleanup in the background otherwise
                reap_in_background(self.client, path, owner)
            return

        # The create may have happened without us seeing the reply: find it by its unique prefix.
        def find() -> Optional[str]:
            kids = self.client.get_children_async(self.path).get(timeout=session_timeout_s(self.client))
            found = cont.find_by_prefix(kids, prefix)
            return None if found is None else f"{self.path}/{found}"

        if self._cancel.is_set():
            delete_confirmed(self.client, self.path, owner, find=find)
        else:
            reap_in_background(self.client, self.path, owner, find=find)


class NonFairLock(_LockBase):
    """Non-fair lock: the single ephemeral node *at* ``path`` is the lock (see the module doc for its
    herd cost). Same API as :class:`Lock`."""

    def __init__(self, client: Any, path: str, identifier: Optional[str] = None, **kw: Any) -> None:
        super().__init__(client, path, identifier, **kw)
        self._token = uuid.uuid4().hex
        self.watch_notifications = 0

    def _data(self) -> bytes:
        return f"{self._token}\n{self.identifier}".encode("utf-8")

    def contenders(self) -> list[str]:
        """The holder's identifier (a non-fair lock has no queue to show), or [] when free."""
        ensure_started(self.client)
        try:
            data, _ = self._call(lambda: self.client.get_async(self.path), None)
        except NoNodeError:
            return []
        return [(data or b"").decode("utf-8", "replace").split("\n", 1)[-1]]

    def _mine(self, deadline: Optional[float]) -> Optional[ZnodeStat]:
        try:
            data, stat = self._call(lambda: self.client.get_async(self.path), deadline)
        except NoNodeError:
            return None
        if data == self._data() and stat.ephemeralOwner == current_session_id(self.client):
            return stat
        return None

    def _contend(self, blocking: bool, deadline: Optional[float]) -> bool:
        parent = self.path.rsplit("/", 1)[0]
        if parent:
            self._ensure_path(parent, deadline)
        self._listen()
        tried = False
        try:
            while True:
                self._wake.clear()
                self._check_cancel()
                stat = self._mine(deadline) if tried else None
                if stat is None:
                    tried = True
                    tmo = self._request_timeout(deadline)
                    ensure_started(self.client)
                    try:
                        _, stat = self.client.create_async(
                            self.path, self._data(), ephemeral=True, include_data=True,
                        ).get(timeout=tmo)
                    except NodeExistsError:
                        stat = None
                    except (*RETRYABLE, SessionExpiredError):
                        time.sleep(0.02)
                        continue
                if stat is not None:
                    with self._mutex:
                        self._node_path = self.path
                        self._stat = stat
                    return True
                if not blocking:
                    raise _GaveUp()
                try:
                    data, _ = self._call(
                        lambda: self.client.get_async(self.path, watch=self._on_holder), deadline
                    )
                except NoNodeError:
                    continue
                if data == self._data():
                    continue  # ours after all (a lost create reply): _mine() confirms ownership
                self._wake.wait(self._remaining(deadline))
        except BaseException:
            if tried and not client_stopped(self.client):
                self._abandon()
            raise

    def _abandon(self) -> None:
        owner = current_session_id(self.client)

        def find() -> Optional[str]:
            try:
                data, stat = self.client.get_async(self.path).get(timeout=session_timeout_s(self.client))
            except NoNodeError:
                return None
            return self.path if data == self._data() else None

        if self._cancel.is_set():
            delete_confirmed(self.client, self.path, owner, find=find)
        else:
            reap_in_background(self.client, self.path, owner, find=find)

    def _on_holder(self, event: Any) -> None:
        self.watch_notifications += 1
        self._wake.set()

    def _delete_own(self, node_path: str, owner: Optional[int]) -> str:
        # Delete only if the node is still ours (a later holder may own a node at the same path).
        def find() -> Optional[str]:
            try:
                data, stat = self.client.get_async(node_path).get(timeout=session_timeout_s(self.client))
            except NoNodeError:
                return None
            return node_path if (data == self._data() and stat.ephemeralOwner == owner) else None

        return delete_confirmed(self.client, node_path, owner, find=find)
