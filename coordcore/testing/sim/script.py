"""Scripted schedules: the simulator's real hosts, disks and checker, with the test choosing every fault.

A seeded run (simulator.py) picks its faults at random; a *scenario* names them.  ``Script`` builds a
Simulation with no random faults (a fixed 1 ms link delay, fsync at once unless a disk is held, no
crash sites picked by chance) and lets a test say, in its own words, where a server dies:

    s = Script(voters=3)
    s.elect()
    s.crash_at(2, after_write(SetCurrentEpoch), label="2: epoch written, NEWLEADER ACK not sent")

A *trap* is armed for one server and fires on the first Ready of that server it matches; the server is
then crashed at one of the host's named fault sites (zab_host.py: ``write[i]`` before the i-th write,
``after-writes``, ``send[j]`` before the j-th message, ``after-send``, ``after-sync`` synced but
persisted() not called, ``after-persisted``).  Site builders name those windows by what the Ready holds:

* ``before_write(Kind)`` / ``after_write(Kind)``: around the first write of that type (SetAcceptedEpoch,
  SetCurrentEpoch, Truncate, InstallSnapshot, Append);
* ``before_send(match)`` / ``after_send(match)``: around the first message ``match`` accepts (a message
  type, or one of the matchers below such as ``NEWLEADER_ACK``);
* ``after_sync()`` / ``after_persisted()``: a Ready with Appends, after its fsync, before or after the
  peer hears about it.

An optional ``when(host)`` narrows the trap to a phase (``in_phase(LearnerPhase.NEWLEADER)``).

Every event still goes through the Checker (I1, I2, PFX, ORD, DUR, ACKQ, LOST, I6, HOST, I8), so a
scenario fails on the first broken invariant, not only on its own final asserts.  Messages can be held
back and released later (the one way to reorder a FIFO link: a reconnect), disks can be held (fsync only
when the script says), links cut and healed.

This module adds no switch to the code under test: it drives the real QuorumPeer through the step API,
exactly like the seeded simulator.  In its default mode (``zab``) the servers are ZabHosts with opaque
txns and the only clients are "propose on the leader" and "forward through a learner"; with
``mode="replica"`` they are ReplicaHosts (the real Replica, node and tree over the QuorumPeer) and the
test drives clients of its own (script_clients.ScriptClient): sessions, writes, reads, watches, sync.
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Callable

from coordcore import zxid as zx
from coordcore.errors import Err
from coordcore.node.replica import EVENT
from coordcore.testing.sim.network import FaultProfile
from coordcore.testing.sim.replica_host import ReplicaHost
from coordcore.testing.sim.simulator import SimConfig, Simulation
from coordcore.testing.sim.zab_host import ZabHost
from coordcore.zab import messages as m
from coordcore.zab.election import Notification, PeerState

Site = tuple[str, int]
SiteFinder = Callable[[object], "Site | None"]   # Ready -> a site of the host loop, or None


# ---------------------------------------------------------------- message matchers

def NEWLEADER_ACK(msg) -> bool:
    """The learner's ACK of NEWLEADER: an Ack whose counter is 0."""
    return isinstance(msg, m.Ack) and zx.counter(msg.zxid) == 0


def PROPOSAL_ACK(msg) -> bool:
    """An ACK of real txns (counter > 0)."""
    return isinstance(msg, m.Ack) and zx.counter(msg.zxid) > 0


def _matcher(what) -> Callable[[object], bool]:
    if isinstance(what, type):
        return lambda msg: isinstance(msg, what)
    return what


# ---------------------------------------------------------------- site builders

def before_write(kind: type) -> SiteFinder:
    def find(r) -> Site | None:
        for i, w in enumerate(r.writes):
            if isinstance(w, kind):
                return ("write", i)
        return None
    find.__doc__ = f"before its {kind.__name__} write"
    return find


def after_write(kind: type) -> SiteFinder:
    def find(r) -> Site | None:
        for i, w in enumerate(r.writes):
            if isinstance(w, kind):
                return ("write", i + 1) if i + 1 < len(r.writes) else ("after-writes", 0)
        return None
    find.__doc__ = f"after its {kind.__name__} write"
    return find


def before_send(what, to: int | None = None) -> SiteFinder:
    match = _matcher(what)

    def find(r) -> Site | None:
        for j, (dst, msg) in enumerate(r.messages):
            if match(msg) and (to is None or dst == to):
                return ("send", j)
        return None
    find.__doc__ = f"before it sends {getattr(what, '__name__', what)}"
    return find


def after_send(what, to: int | None = None) -> SiteFinder:
    match = _matcher(what)

    def find(r) -> Site | None:
        for j, (dst, msg) in enumerate(r.messages):
            if match(msg) and (to is None or dst == to):
                return ("send", j + 1) if j + 1 < len(r.messages) else ("after-send", 0)
        return None
    find.__doc__ = f"after it sends {getattr(what, '__name__', what)}"
    return find


def after_sync() -> SiteFinder:
    """Appends fsynced, persisted() not yet called (nothing ACKed for them)."""
    return lambda r: ("after-sync", 0) if any(type(w).__name__ == "Append" for w in r.writes) else None


def after_persisted() -> SiteFinder:
    """Appends fsynced and reported; whatever the peer does next is not done."""
    return lambda r: ("after-persisted", 0) if any(type(w).__name__ == "Append" for w in r.writes) else None


def in_phase(phase) -> Callable[[ZabHost], bool]:
    """A `when` for traps: the server's current role is in `phase` (a leader or learner Phase)."""
    def when(host: ZabHost) -> bool:
        role = host.peer.role if host.peer is not None else None
        return role is not None and type(getattr(role, "phase", None)) is type(phase) and role.phase == phase
    return when


@dataclass(slots=True)
class Trap:
    sid: int
    find: SiteFinder
    when: Callable[[ZabHost], bool] | None
    label: str
    keep_pending: int = 0
    fired_at: str | None = None


# ---------------------------------------------------------------- the scripted host

class ScriptedHost(ZabHost):
    """A ZabHost whose crash sites come from armed traps and whose fsyncs are immediate or held."""

    script: "Script"

    def receive(self, src: int, msg) -> None:
        if not isinstance(msg, Notification):
            self.script.deliveries.append((src, self.sid, msg))
        super().receive(src, msg)

    def _pick_site(self, r) -> Site | None:
        for trap in self.script.traps:
            if trap.sid != self.sid or trap.fired_at is not None:
                continue
            if trap.when is not None and not trap.when(self):
                continue
            site = trap.find(r)
            if site is not None:
                trap.fired_at = site[0] if site[0] not in ("write", "send") else f"{site[0]}[{site[1]}]"
                self.script.fired.append(trap)
                self.script.current_trap = trap
                return site
        return None

    def _crash_at(self, site: Site) -> None:
        trap = self.script.current_trap
        self.script.current_trap = None
        name = site[0] if site[0] not in ("write", "send") else f"{site[0]}[{site[1]}]"
        self.script.crash(self.sid, at=f"{name} ({trap.label})" if trap else name,
                          keep_pending=trap.keep_pending if trap else 0)

    def _crash_here(self, odds: float, name: str) -> bool:
        return False   # no crash by chance in a script

    def _sync_appends(self, appended: int, site) -> None:
        if self.sid in self.script.held_disks:
            self.sim.log(f"disk {self.sid} held: {zx.fmt(appended)} stays pending")
            if site is not None and site[0] in ("after-sync", "after-persisted"):
                self._crash_at(("before-sync", 0))
            return
        self.disk.sync(appended)
        self.sim.checker.disk_changed(self.sid, self.disk)
        if site is not None and site[0] == "after-sync":
            return self._crash_at(site)
        self.sim.log(f"persisted {self.sid} {zx.fmt(appended)}")
        self._report_persisted(appended)   # (replica mode tells the Replica, which tells its peer)
        if site is not None and site[0] == "after-persisted":
            return self._crash_at(site)


# ---------------------------------------------------------------- the script

SCRIPTED = FaultProfile(name="scripted", delay_ms_min=1, delay_ms_max=1, weights={},
                        site_crash_sync=0.0, site_crash_broadcast=0.0, crash_keeps_prefix=0.0)


class Script:
    """One scripted scenario: build, elect, write, arm traps, run, assert."""

    def __init__(self, voters: int = 3, observers: int = 0, *, seed: int = 0, tick_ms: int = 200,
                 init_limit: int = 10, sync_limit: int = 5, start: bool = True,
                 tolerate: frozenset[str] = frozenset(), mode: str = "zab") -> None:
        cfg = SimConfig(seed=seed, voters=voters, observers=observers, steps=0, tick_ms=tick_ms,
                        init_limit=init_limit, sync_limit=sync_limit, trace=True, link_lost_odds=1.0,
                        tolerate=tolerate, mode=mode)
        self.sim = sim = Simulation(cfg, profile_override=SCRIPTED)
        sim.net.faults_enabled = False
        self.Host = {"zab": ScriptedHost, "replica": ScriptedReplicaHost}[mode]
        sim.hosts = {sid: self._host(sid) for sid in sim.sids}
        sim.disks = {sid: h.disk for sid, h in sim.hosts.items()}
        sim.Host = self.Host
        self.traps: list[Trap] = []
        self.fired: list[Trap] = []
        self.current_trap: Trap | None = None
        self.held_disks: set[int] = set()
        self.held_msgs: list[tuple[int, int, object]] = []
        self.holds: list[tuple[int | None, int | None, Callable[[object], bool]]] = []
        self.payload_seq = 0
        self.deliveries: list[tuple[int, int, object]] = []   # ZAB packets delivered, in order
        sim.send = self._send  # the holds sit between a host and the network
        if start:
            for sid in sim.sids:
                self.start(sid)

    def _host(self, sid: int) -> ScriptedHost:
        host = self.Host(self.sim, sid)
        host.script = self
        return host

    # -- views

    @property
    def now(self) -> int:
        return self.sim.now

    @property
    def checker(self):
        return self.sim.checker

    def host(self, sid: int) -> ScriptedHost:
        return self.sim.hosts[sid]

    def disk(self, sid: int):
        return self.sim.hosts[sid].disk

    def up(self) -> list[int]:
        return [s for s in self.sim.sids if self.sim.hosts[s].up]

    def leader(self) -> int | None:
        leaders = [s for s in self.up() if self.host(s).is_leader() and self.host(s).peer.serving]
        return max(leaders, key=lambda s: self.host(s).peer.epoch) if leaders else None

    def followers(self) -> list[int]:
        lead = self.leader()
        return [s for s in self.sim.sids if s != lead and self.sim.quorum.is_voter(s)]

    def serving(self, sids=None) -> bool:
        sids = self.up() if sids is None else sids
        lead = self.leader()
        return lead is not None and all(self.host(s).up and self.host(s).peer.serving and
                                        self.host(s).peer.leader_sid == lead for s in sids)

    def applied(self, sid: int) -> list[tuple[int, bytes]]:
        return list(self.host(sid).applied)

    def epoch(self, sid: int) -> int:
        return self.host(sid).peer.epoch

    def describe(self) -> str:
        return " ".join(self.host(s).describe() for s in self.sim.sids)

    def trace_tail(self, n: int = 40) -> str:
        return "\n".join((self.sim.trace or [])[-n:])

    # -- the schedule

    def step(self) -> bool:
        """Run one event of the heap (a delivery, a timer, a restart...); False if none is left."""
        sim, heap = self.sim, self.sim.net.heap
        while heap:
            t, _, kind, payload = heapq.heappop(heap)
            if not sim._is_live(kind, payload, t):
                continue
            sim.now = max(sim.now, t)
            sim.step += 1
            getattr(sim, "_on_" + kind)(payload)
            return True
        return False

    def run_until(self, predicate: Callable[[], bool], max_ms: int = 30_000, what: str = "") -> None:
        end = self.now + max_ms
        while not predicate():
            heap = self.sim.net.heap
            if not heap or heap[0][0] > end or not self.step():
                raise AssertionError(f"{what or 'condition'} not reached by t={self.now}: {self.describe()}\n"
                                     f"{self.trace_tail()}")

    def settle(self, ms: int) -> None:
        """Run every event due in the next `ms` of virtual time."""
        end = self.now + ms
        heap = self.sim.net.heap
        while heap and heap[0][0] <= end:
            self.step()
        self.sim.now = max(self.sim.now, end)

    def elect(self, sids=None, max_ms: int = 30_000) -> int:
        """Run until one leader serves and every given (default: every live) server follows it."""
        self.run_until(lambda: self.serving(sids), max_ms, "an elected, serving ensemble")
        return self.leader()

    def converge(self, max_ms: int = 30_000) -> None:
        """Every server up, one leader, all applied to the same zxid; then the checker's final check
        (equal histories everywhere, every acknowledged write in them)."""
        self.run_until(lambda: self.Host.convergence_gap(self.sim) is None, max_ms,
                       "convergence")
        self.Host.final_check(self.sim)

    # -- servers

    def start(self, sid: int) -> None:
        self.sim.push(self.now, "start", sid)

    def restart(self, sid: int) -> None:
        assert not self.host(sid).up, f"server {sid} is up"
        self.start(sid)
        self.step_until_up(sid)

    def step_until_up(self, sid: int) -> None:
        self.run_until(lambda: self.host(sid).up, 1_000, f"server {sid} up")

    def crash(self, sid: int, at: str = "script", keep_pending: int = 0) -> int:
        """kill -9 of `sid`: pending appends lost (except the first `keep_pending`), links broken."""
        h = self.host(sid)
        lost = h.crash(keep_pending)
        self.sim.log(f"CRASH {sid} at {at}: lost {lost} pending appends, kept {keep_pending}")
        self.held_msgs = [x for x in self.held_msgs if sid not in (x[0], x[1])]
        for other in self.sim.sids:
            if other != sid:
                self.sim.net.break_link(sid, other)
                self.sim.net.break_link(other, sid)
                if self.host(other).up:
                    self.sim.push(self.now + 1, "link_lost", (other, sid))
        return lost

    def crash_at(self, sid: int, find: SiteFinder, *, when=None, label: str = "", keep_pending: int = 0) -> Trap:
        """Arm a trap: crash `sid` at the site `find` picks in its first matching Ready."""
        trap = Trap(sid, find, when, label or (find.__doc__ or "trap"), keep_pending)
        self.traps.append(trap)
        return trap

    def run_until_fired(self, trap: Trap, max_ms: int = 30_000) -> None:
        self.run_until(lambda: trap.fired_at is not None, max_ms, f"trap '{trap.label}' on {trap.sid}")

    # -- disks

    def hold_disk(self, sid: int) -> None:
        """Appends of `sid` stay pending (a slow fsync) until fsync(sid)."""
        self.held_disks.add(sid)

    def fsync(self, sid: int) -> None:
        """Finish the held fsync of `sid` (and stop holding)."""
        self.held_disks.discard(sid)
        h = self.host(sid)
        if h.up and h.disk.pending:
            h.sync_done(h.disk.pending[-1][0])

    def snapshot(self, sid: int) -> None:
        """`sid` snapshots its applied state by itself (snapCount), purging the log below it."""
        self.host(sid).take_snapshot()

    # -- network

    def _send(self, src: int, dst: int, msg, is_election: bool) -> None:
        for hs, hd, match in self.holds:
            if (hs is None or hs == src) and (hd is None or hd == dst) and match(msg):
                self.held_msgs.append((src, dst, msg))
                self.sim.log(f"send {src}->{dst} HELD {msg}")
                return
        Simulation.send(self.sim, src, dst, msg, is_election)

    def hold(self, what, src: int | None = None, dst: int | None = None) -> None:
        """Messages src->dst that `what` matches are held back (not lost) until release()."""
        self.holds.append((src, dst, _matcher(what)))

    def release(self, src: int | None = None) -> None:
        """Stop holding (messages from `src`, or all); send what was held now, behind anything already
        in flight on its link (a reordering)."""
        def mine(s_: int | None) -> bool:
            return src is None or s_ == src
        held = [x for x in self.held_msgs if mine(x[0])]
        self.held_msgs = [x for x in self.held_msgs if not mine(x[0])]
        self.holds = [h for h in self.holds if not mine(h[0])]
        for s_, dst, msg in held:
            if self.host(s_).up:
                Simulation.send(self.sim, s_, dst, msg, is_election(msg))

    def drop_held(self) -> int:
        """Stop holding and lose what was held, with no link_lost: a packet that silently never came
        (what a buggy transport or a lost connection's tail looks like).  Returns the count."""
        n, self.held_msgs, self.holds = len(self.held_msgs), [], []
        return n

    def received(self, dst: int | None = None, src: int | None = None, what=None) -> list:
        """Messages delivered so far (src, dst, msg), in delivery order, filtered."""
        match = _matcher(what) if what is not None else (lambda msg: True)
        return [(s, d, msg) for s, d, msg in self.deliveries
                if (dst is None or d == dst) and (src is None or s == src) and match(msg)]

    def cut(self, a: int, b: int) -> None:
        """Break the link a<->b both ways (until heal); both ends notice."""
        self.sim.net.block({(a, b), (b, a)})
        self.sim.log(f"PARTITION {a} <-/-> {b}")
        for x, y in ((a, b), (b, a)):
            if self.host(x).up:
                self.sim.push(self.now + 1, "link_lost", (x, y))

    def isolate(self, sid: int) -> None:
        for other in self.sim.sids:
            if other != sid:
                self.cut(sid, other)

    def heal(self) -> None:
        self.sim.net.heal()
        self.sim.log("HEAL partition")

    # -- clients

    def write(self, payload: bytes | None = None, via: int | None = None) -> int | None:
        """A client write: proposed on the leader (or forwarded by learner `via`).  Returns the zxid the
        leader gave it (None when forwarded)."""
        if payload is None:
            self.payload_seq += 1
            payload = b"w%d" % self.payload_seq
        if via is not None and via != self.leader():
            h = self.host(via)
            h.peer.forward(payload)
            h.drive()
            return None
        lead = self.leader()
        assert lead is not None, f"no leader: {self.describe()}"
        h = self.host(lead)
        z = h.peer.next_zxid()
        h._propose(payload)
        h.drive()
        return z

    def writes(self, n: int, settle_ms: int = 50) -> list[int]:
        zs = [self.write() for _ in range(n)]
        self.settle(settle_ms)
        return zs

    def acked(self) -> dict[int, bytes]:
        """Client writes acknowledged so far (their leader applied them after a durable quorum)."""
        return dict(self.sim.checker.acked)

    def committed(self) -> list[tuple[int, bytes]]:
        return list(self.sim.checker.committed)


def is_election(msg) -> bool:
    return isinstance(msg, Notification)


# ---------------------------------------------------------------- replica mode

class ScriptedReplicaHost(ScriptedHost, ReplicaHost):
    """``Script(mode="replica")``: a ReplicaHost (the real Replica over a real QuorumPeer over a
    MemoryStorage) with the scripted traps and fsyncs, whose watch events reach the clients (the seeded
    simulator only counts them) and whose clients may send ``sync``.  The clients are the test's
    (script_clients.ScriptClient): nothing acts by chance."""

    def _deliver(self, kind, conn, a, b) -> None:
        if kind is EVENT and conn.open:
            self.sim.count("watch_events")
            conn.client.event(conn, a, b)
            return
        super()._deliver(kind, conn, a, b)

    def client_sync(self, conn, token) -> None:
        """A client's sync (Replica.sync): answered now or once this server caught up."""
        replica = self.replica
        if not replica.accepts_requests(conn.session_id):
            self._reply(conn, token, (int(Err.SESSIONEXPIRED), b""))
            return
        replica.touch(conn.session_id, self.sim.now)
        answer = replica.sync(conn, token)
        if answer is not None:
            self.drive()
            self._reply(conn, token, answer)
        self.drive()


__all__ = ["Script", "ScriptedHost", "ScriptedReplicaHost", "Trap", "NEWLEADER_ACK", "PROPOSAL_ACK",
           "before_write", "after_write", "before_send", "after_send", "after_sync", "after_persisted",
           "in_phase", "PeerState"]
