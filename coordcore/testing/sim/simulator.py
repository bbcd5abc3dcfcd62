"""Simulation: N simulated servers, one seeded scheduler, a virtual clock in ms, checks after every event.

One ``random.Random(seed)`` makes every choice: message delays and faults, which fault comes next,
crash points, client writes.  Events sit in one heap ordered by (virtual time, sequence number), so
a seed gives the same schedule, and the same trace, byte for byte.

A run has two phases.  *Chaos*: ``steps`` events with faults and client writes.  *Heal*: partitions
heal, crashed servers restart, paused ones resume, disks and links turn reliable, clients stop; the
run then continues until the ensemble has converged (one leader serving, everyone following it and
applied up to the same zxid) or the liveness bound passes, which is a violation.

Three kinds of server hosts run under the same scheduler: :class:`~coordcore.testing.sim.zab_host.ZabHost`
drives a real QuorumPeer (the full ensemble core) with opaque txns,
:class:`~coordcore.testing.sim.replica_host.ReplicaHost` drives the real Replica (node and tree) over a
QuorumPeer over a MemoryStorage with simulated clients, and :class:`~coordcore.testing.sim.fle_host.FleHost`
drives FastLeaderElection alone (election under faults, with fixed histories).

The trace is one line per event: ``<step> <virtual ms> <event>``.  Events in capitals are faults and
milestones (CRASH, PARTITION, HEAL, LEADER, CONVERGED, VIOLATION); ``send a->b <outcome> <msg>`` and
``recv a->b <msg>`` are the network, ``write``/``persisted``/``apply``/``reset`` the host steps.

This module does not know the peer's internals; the hosts see only the step API.
"""
from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field

from coordcore.testing.sim.checker import Checker, Violation
from coordcore.testing.sim.network import FaultProfile, InFlight, SimNetwork
from coordcore.testing.sim.profiles import profiles
from coordcore.zab.quorum import QuorumConfig

TRACE_FIELD_MAX = 160
DEFAULT_LINK_LOST_ODDS = 0.7


@dataclass(slots=True)
class SimConfig:
    seed: int = 0
    voters: int = 3
    observers: int = 0
    steps: int = 400                 # events in the chaos phase (default_steps(mode))
    mode: str = "zab"                # "zab" (QuorumPeer, opaque txns), "replica" (Replica + QuorumPeer +
                                     # MemoryStorage, simulated clients) or "fle" (FastLeaderElection only)
    profile: str | None = None       # None: the seed picks one
    tick_ms: int = 200
    init_limit: int = 10
    sync_limit: int = 5
    finalize_wait_ms: int = 200
    max_notification_interval_ms: int = 2_000
    client_interval_ms_min: int = 10
    client_interval_ms_max: int = 150
    liveness_ms: int | None = None   # None: derived from the timeouts
    trace: bool = False
    tolerate: frozenset[str] = frozenset()   # known-issue ids the checker reports as counters, not violations
    # Odds that a crash or partition is reported to the other end as link_lost().  The step API makes
    # link_lost optional for a transport, so by default some breaks go unreported; 1.0 models a
    # transport that always notices (TCP keepalive, a reconnect that reports the old connection's loss).
    link_lost_odds: float = DEFAULT_LINK_LOST_ODDS

    def liveness_bound_ms(self) -> int:
        if self.liveness_ms is not None:
            return self.liveness_ms
        # An election can wait out one notification backoff; then discovery and sync each get initLimit.
        return 4 * self.max_notification_interval_ms + 4 * self.init_limit * self.tick_ms + 10 * self.tick_ms


@dataclass(slots=True)
class RunResult:
    seed: int
    voters: int
    observers: int
    mode: str
    profile: str
    steps: int = 0
    now_ms: int = 0
    violation: Violation | None = None
    violation_step: int | None = None
    trace: list[str] | None = None
    acked: int = 0
    committed: int = 0
    elections: int = 0
    converged_ms: int | None = None
    counters: dict[str, int] = field(default_factory=dict)
    steps_arg: int | None = None          # what the replay command must repeat
    profile_arg: str | None = None
    tolerate: frozenset[str] = frozenset()
    link_lost_odds: float | None = None   # set when not the default

    @property
    def ok(self) -> bool:
        return self.violation is None

    def replay_command(self) -> str:
        extra = "" if self.mode == "zab" else f" --mode {self.mode}"
        if self.steps_arg is not None:
            extra += f" --steps {self.steps_arg}"
        if self.profile_arg:
            extra += f" --profile {self.profile_arg}"
        if self.tolerate:
            extra += f" --tolerate {','.join(sorted(self.tolerate))}"
        if self.link_lost_odds is not None:
            extra += f" --link-lost-odds {self.link_lost_odds:g}"
        return (f"python3 -m coordcore sim --seed {self.seed} --voters {self.voters} "
                f"--observers {self.observers}{extra} --trace")


class Simulation:
    def __init__(self, cfg: SimConfig, *, profile_override: FaultProfile | None = None) -> None:
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        table = profiles()
        name = cfg.profile or self.rng.choice(sorted(table))
        self.profile = profile_override or table[name]
        self.net = SimNetwork(self.rng, self.profile)
        voters = range(1, cfg.voters + 1)
        observers = range(cfg.voters + 1, cfg.voters + cfg.observers + 1)
        self.quorum = QuorumConfig(frozenset(voters), frozenset(observers))
        self.sids = sorted(self.quorum.members)
        self.checker = Checker(self.quorum, tolerate=cfg.tolerate, count=self.count)
        self.now = 0
        self.step = 0
        self.trace: list[str] | None = [] if cfg.trace else None
        self.healed = False
        self.heal_ms: int | None = None
        self.converged_ms: int | None = None
        self.counters: dict[str, int] = {}
        self.client_seq = 0
        self.conn_seq = 0
        self.snapshot_histories: dict[bytes, list] = {}   # replica mode: snapshot bytes -> txns they cover
        if cfg.mode == "zab":
            from coordcore.testing.sim.zab_host import ZabHost as Host
        elif cfg.mode == "replica":
            from coordcore.testing.sim.replica_host import ReplicaHost as Host
        elif cfg.mode == "fle":
            from coordcore.testing.sim.fle_host import FleHost as Host
        else:
            raise ValueError(f"unknown simulation mode {cfg.mode!r}")
        self.Host = Host
        self.hosts = {sid: Host(self, sid) for sid in self.sids}
        self.disks = {sid: h.disk for sid, h in self.hosts.items()}
        make_workload = getattr(Host, "make_workload", None)
        self.workload = make_workload(self) if make_workload is not None else None

    # -- trace and counters

    def log(self, text: str) -> None:
        if self.trace is not None:
            if len(text) > 400:
                text = text[:400] + "..."
            self.trace.append(f"{self.step:06d} {self.now:>8} {text}")

    def count(self, key: str) -> None:
        self.counters[key] = self.counters.get(key, 0) + 1

    # -- scheduling helpers

    def push(self, t: int, kind: str, payload: object = None) -> None:
        self.net.push(t, kind, payload)

    def send(self, src: int, dst: int, msg: object, is_election: bool) -> None:
        outcome = self.net.send(self.now, src, dst, msg, is_election)
        if self.trace is not None:
            self.log(f"send {src}->{dst} {outcome} {short(msg)}")
        if outcome != "sent" and outcome != "self":
            self.count("msg_" + outcome.split("(")[0])
            if outcome == "dropped(connection)":
                self._connection_broken(src, dst)

    def _connection_broken(self, a: int, b: int) -> None:
        lost = self.net.break_link(a, b) + self.net.break_link(b, a)
        self.log(f"CONNECTION {a}<->{b} broken: {lost} more in flight lost")
        for x, y in ((a, b), (b, a)):
            if self.hosts[x].up:
                self.push(self.now + self.rng.randint(1, self.cfg.tick_ms), "link_lost", (x, y))

    # -- the run

    def run(self) -> RunResult:
        cfg = self.cfg
        result = RunResult(cfg.seed, cfg.voters, cfg.observers, cfg.mode, self.profile.name,
                           steps_arg=None if cfg.steps == default_steps(cfg.mode) else cfg.steps,
                           profile_arg=cfg.profile, tolerate=cfg.tolerate,
                           link_lost_odds=None if cfg.link_lost_odds == DEFAULT_LINK_LOST_ODDS else cfg.link_lost_odds)
        try:
            self._run()
        except Violation as v:
            result.violation = v
            result.violation_step = self.step
            self.log(f"VIOLATION {v}")
        except Exception as e:  # noqa: BLE001 - a crash of the code under test is a finding, not our crash
            import traceback

            where = traceback.extract_tb(e.__traceback__)[-1]
            v = Violation("EXC", f"{type(e).__name__}: {e} (at {where.filename.rsplit('/', 1)[-1]}:{where.lineno} "
                                 f"in {where.name})")
            v.__cause__ = e
            result.violation = v
            result.violation_step = self.step
            self.log(f"VIOLATION {v}")
        result.steps, result.now_ms, result.trace = self.step, self.now, self.trace
        result.acked = len(self.checker.acked)
        result.committed = len(self.checker.committed)
        result.converged_ms = self.converged_ms
        result.counters = dict(sorted(self.counters.items()))
        return result

    def _run(self) -> None:
        cfg = self.cfg
        self.log(f"start seed={cfg.seed} mode={cfg.mode} voters={sorted(self.quorum.voters)} "
                 f"observers={sorted(self.quorum.observers)} profile={self.profile.name}")
        for sid in self.sids:
            # Staggered starts: servers rarely come up in the same millisecond.
            self.push(self.rng.randint(0, 50), "start", sid)
        self.push(self._next_fault_ms(), "fault")
        if cfg.mode in ("zab", "replica"):
            self.push(self.rng.randint(cfg.client_interval_ms_min, cfg.client_interval_ms_max), "client")
        hard_stop = cfg.steps * 20 + 50_000
        heap = self.net.heap
        while True:
            if not self.healed and self.step >= cfg.steps:
                self._heal()
            if self.healed:
                if self._converged():
                    return
                if self.now > self.heal_ms + cfg.liveness_bound_ms() or self.step > hard_stop:
                    raise Violation("LIVE", self._liveness_report())
            if not heap:
                if self.healed:
                    raise Violation("LIVE", "no events left before convergence: " + self._liveness_report())
                self._heal()
                continue
            t, _, kind, payload = heapq.heappop(heap)
            if not self._is_live(kind, payload, t):
                continue
            self.now = max(self.now, t)
            self.step += 1
            getattr(self, "_on_" + kind)(payload)

    def _is_live(self, kind: str, payload, t: int) -> bool:
        if kind == "deliver":
            return payload.alive
        if kind == "timer":
            sid, incarnation = payload
            h = self.hosts[sid]
            return h.up and h.incarnation == incarnation and h.timer_ms == t
        if kind == "sync":
            h = self.hosts[payload[0]]
            return h.up and h.incarnation == payload[1] and h.sync_generation == payload[2]
        if kind in ("fault", "client") and self.healed:
            return False
        return True

    # -- event handlers

    def _on_start(self, sid: int) -> None:
        h = self.hosts[sid]
        if not h.up:
            h.start()

    def _on_restart(self, sid: int) -> None:
        h = self.hosts[sid]
        if not h.up:
            h.start()

    def _on_deliver(self, item: InFlight) -> None:
        self.net.delivered(item)
        h = self.hosts[item.dst]
        if not h.up:
            self.log(f"recv {item.src}->{item.dst} lost(down) {short(item.msg)}")
            return
        if h.paused_until > self.now:
            # A paused process reads nothing; the message waits in the socket buffer, still in order.
            item2 = InFlight(h.paused_until, item.src, item.dst, item.msg, late=item.late)
            self.net.hold_link(item.src, item.dst, h.paused_until)
            self.net.in_flight.setdefault((item.src, item.dst), []).append(item2)
            self.push(h.paused_until, "deliver", item2)
            self.step -= 1
            return
        if self.trace is not None:
            self.log(f"recv {item.src}->{item.dst}{' late' if item.late else ''} {short(item.msg)}")
        h.receive(item.src, item.msg)

    def _on_timer(self, payload) -> None:
        h = self.hosts[payload[0]]
        if h.paused_until > self.now:
            h.schedule_timer(h.paused_until)
            self.step -= 1
            return
        self.log(f"tick {h.sid}")
        h.tick()

    def _on_sync(self, payload) -> None:
        sid, _, _, up_to = payload
        h = self.hosts[sid]
        if h.paused_until > self.now:
            self.push(h.paused_until, "sync", payload)
            self.step -= 1
            return
        h.sync_done(up_to)

    def _on_resume(self, sid: int) -> None:
        h = self.hosts[sid]
        if h.up and h.paused_until <= self.now:
            self.log(f"resume {sid}")
            h.tick()

    def _on_link_lost(self, payload) -> None:
        sid, other = payload
        h = self.hosts[sid]
        if h.up and h.paused_until <= self.now:
            self.log(f"link_lost {sid} from {other}")
            h.link_lost(other)

    def _on_client(self, _) -> None:
        cfg = self.cfg
        if self.workload is not None:
            self.push(self.now + self.workload.next_interval_ms(), "client")
            self.workload.step()
            return
        self.push(self.now + self.rng.randint(cfg.client_interval_ms_min, cfg.client_interval_ms_max), "client")
        sid = self.rng.choice(self.sids)
        h = self.hosts[sid]
        if not h.up or h.paused_until > self.now:
            self.log(f"client -> {sid}: down")
            return
        self.client_seq += 1
        h.client_write(b"w%d" % self.client_seq)

    def _on_heal_partition(self, generation: int) -> None:
        if generation == self.partition_generation and self.net.blocked:
            self._heal_partition()

    # -- faults

    partition_generation = 0

    def _next_fault_ms(self) -> int:
        p = self.profile
        return self.now + self.rng.randint(p.fault_interval_ms_min, p.fault_interval_ms_max)

    def _on_fault(self, _) -> None:
        self.push(self._next_fault_ms(), "fault")
        weights = self.profile.weights
        if not weights:
            return
        kinds = sorted(weights)
        kind = self.rng.choices(kinds, [weights[k] for k in kinds])[0]
        getattr(self, "_fault_" + kind)()

    def _up(self) -> list[int]:
        return [s for s in self.sids if self.hosts[s].up]

    def _leaders(self) -> list[int]:
        return [s for s in self.sids if self.hosts[s].up and self.hosts[s].is_leader()]

    def crash(self, sid: int, site: str) -> None:
        h = self.hosts[sid]
        keep = 0
        if h.disk.pending and self.rng.random() < self.profile.crash_keeps_prefix:
            keep = self.rng.randint(0, len(h.disk.pending))
        lost = h.crash(keep)
        self.count("crash")
        self.log(f"CRASH {sid} at {site}: lost {lost} pending appends, kept {keep}")
        self._links_lost(sid)
        if not self.healed:
            self.push(self.now + self.rng.randint(20, 4 * self.cfg.tick_ms * self.cfg.sync_limit), "restart", sid)

    def _links_lost(self, sid: int) -> None:
        for other in self.sids:
            if other != sid and self.hosts[other].up and self.rng.random() < self.cfg.link_lost_odds:
                self.push(self.now + self.rng.randint(1, 2 * self.cfg.tick_ms), "link_lost", (other, sid))

    def _fault_crash(self) -> None:
        up = self._up()
        if up:
            self.crash(self.rng.choice(up), "fault")

    def _fault_crash_leader(self) -> None:
        leaders = self._leaders()
        if leaders:
            self.crash(self.rng.choice(leaders), "fault(leader)")

    def _fault_crash_all(self) -> None:
        for sid in self._up():
            self.crash(sid, "fault(all)")

    def _fault_restart_all(self) -> None:
        self._fault_crash_all()

    def _fault_tick(self) -> None:
        up = self._up()
        if up:
            sid = self.rng.choice(up)
            if self.hosts[sid].paused_until <= self.now:
                self.log(f"clock tick {sid}")
                self.hosts[sid].tick()

    def _fault_pause(self) -> None:
        up = [s for s in self._up() if self.hosts[s].paused_until <= self.now]
        if up:
            sid = self.rng.choice(up)
            until = self.now + self.rng.randint(50, 3 * self.cfg.tick_ms * self.cfg.sync_limit)
            self.hosts[sid].paused_until = until
            self.count("pause")
            self.log(f"PAUSE {sid} until {until}")
            self.push(until, "resume", sid)

    def _fault_slow_disk(self) -> None:
        sid = self.rng.choice(self.sids)
        h = self.hosts[sid]
        h.slow_disk_until = self.now + self.rng.randint(200, 4 * self.cfg.tick_ms * self.cfg.sync_limit)
        self.count("slow_disk")
        self.log(f"SLOW_DISK {sid} until {h.slow_disk_until}")

    def _fault_snapshot(self) -> None:
        up = self._up()
        if up:
            self.hosts[self.rng.choice(up)].take_snapshot()

    def _fault_relook(self) -> None:
        up = self._up()
        if up:
            self.hosts[self.rng.choice(up)].relook()

    def _fault_reconnect(self) -> None:
        a, b = self.rng.sample(self.sids, 2)
        for src, dst in ((a, b), (b, a)):
            late, lost = self.net.reconnect(self.now, src, dst)
            self.log(f"RECONNECT {src}->{dst}: {late} late, {lost} lost")
        self.count("reconnect")
        for x, y in ((a, b), (b, a)):
            if self.hosts[x].up:
                self.push(self.now + self.rng.randint(0, 20), "link_lost", (x, y))

    def _partition(self, links: set[tuple[int, int]], what: str) -> None:
        if self.net.blocked:
            self._heal_partition()
        lost = self.net.block(links)
        self.count("partition")
        self.partition_generation += 1
        self.log(f"PARTITION {what}: {lost} in flight lost")
        ends: set[tuple[int, int]] = set()
        for src, dst in links:
            ends.add((src, dst))
            ends.add((dst, src))
        for x, y in sorted(ends):
            if self.hosts[x].up and self.rng.random() < self.cfg.link_lost_odds:
                self.push(self.now + self.rng.randint(1, 3 * self.cfg.tick_ms), "link_lost", (x, y))
        self.push(self.now + self.rng.randint(200, 6 * self.cfg.tick_ms * self.cfg.sync_limit),
                  "heal_partition", self.partition_generation)

    def _split(self) -> tuple[list[int], list[int]]:
        sids = list(self.sids)
        self.rng.shuffle(sids)
        k = self.rng.randint(1, len(sids) - 1)
        return sorted(sids[:k]), sorted(sids[k:])

    @staticmethod
    def _between(a: list[int], b: list[int]) -> set[tuple[int, int]]:
        return {(x, y) for x in a for y in b}

    def _fault_partition(self) -> None:
        a, b = self._split()
        self._partition(self._between(a, b) | self._between(b, a), f"{a} | {b}")

    def _fault_one_way(self) -> None:
        a, b = self._split()
        self._partition(self._between(a, b), f"{a} -> {b} blocked")

    def _fault_isolate_leader(self) -> None:
        leaders = self._leaders()
        if not leaders:
            return self._fault_partition()
        lead = [self.rng.choice(leaders)]
        rest = [s for s in self.sids if s != lead[0]]
        self._partition(self._between(lead, rest) | self._between(rest, lead), f"leader {lead} isolated")

    def _fault_bridge(self) -> None:
        if len(self.sids) < 3:
            return self._fault_partition()
        sids = list(self.sids)
        self.rng.shuffle(sids)
        bridge, rest = sids[0], sids[1:]
        k = self.rng.randint(1, len(rest) - 1)
        a, b = sorted(rest[:k]), sorted(rest[k:])
        self._partition(self._between(a, b) | self._between(b, a), f"{a} | {b} bridged by {bridge}")

    def _fault_heal(self) -> None:
        if self.net.blocked:
            self._heal_partition()

    def _heal_partition(self) -> None:
        self.net.heal()
        self.log("HEAL partition")

    # -- the heal phase and convergence

    def _heal(self) -> None:
        self.healed = True
        self.heal_ms = self.now
        self.net.faults_enabled = False
        self.net.heal()
        self.log("HEAL everything: links reliable, disks fast, clients stop")
        for sid in self.sids:
            h = self.hosts[sid]
            h.slow_disk_until = 0
            if h.paused_until > self.now:
                h.paused_until = self.now
                self.push(self.now, "resume", sid)
        for sid in self.sids:
            if not self.hosts[sid].up:
                self.push(self.now + self.rng.randint(0, 20), "restart", sid)
        for h in self.hosts.values():
            h.healed()

    def _converged(self) -> bool:
        ok = self._convergence_gap() is None
        if ok and self.converged_ms is None:
            self.converged_ms = self.now - self.heal_ms
            self.log(f"CONVERGED {self.converged_ms} ms after healing")
            self.Host.final_check(self)
        return ok

    def _convergence_gap(self) -> str | None:
        return self.Host.convergence_gap(self)

    def _liveness_report(self) -> str:
        states = " ".join(self.hosts[s].describe() for s in self.sids)
        return (f"not converged {self.now - self.heal_ms} ms after healing (bound {self.cfg.liveness_bound_ms()} ms): "
                f"{self._convergence_gap()}; {states}")


def default_steps(mode: str) -> int:
    # replica mode: client events share the budget, so a run needs more of them to get past elections
    return {"fle": 300, "replica": 1200}.get(mode, 400)


def short(msg: object) -> str:
    text = str(msg)
    return text if len(text) <= TRACE_FIELD_MAX else text[:TRACE_FIELD_MAX] + "..."


def run(cfg: SimConfig) -> RunResult:
    return Simulation(cfg).run()
