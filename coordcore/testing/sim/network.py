"""SimNetwork: the links between simulated servers, with the fault model of a TCP mesh.

Each ordered pair (src, dst) is one link.  A link is FIFO, like a TCP connection: a message's
delivery time is never earlier than the one sent before it on the same link.  Faults:

* drop / duplicate / delay of single messages, chosen when a message is sent (FaultProfile odds);
  a dropped ZAB packet takes its TCP connection with it (the simulator breaks the link);
* a *reconnect* of a link: the old connection's in-flight messages are each lost or delivered late,
  in a new random order -- the only way messages on one link are reordered;
* partitions: a set of blocked links.  A blocked link loses what is in flight and what is sent on it
  (the connection is broken); the scheduler tells both ends ``link_lost`` after a detection delay.

The network holds no clock and draws no random numbers of its own: the simulator passes its one
seeded ``random.Random`` and the virtual time in.  It does not model bandwidth or message sizes.
"""
from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field


@dataclass(slots=True)
class InFlight:
    """One message on the wire; `alive` goes False when a fault takes it off."""

    deliver_ms: int
    src: int
    dst: int
    msg: object
    alive: bool = True
    late: bool = False          # re-timed by a reconnect (may arrive out of order)


@dataclass(slots=True)
class FaultProfile:
    """The odds of every network and node fault for one run (a seed picks a profile)."""

    name: str = "calm"
    delay_ms_min: int = 1
    delay_ms_max: int = 8
    drop: float = 0.0            # per message
    duplicate: float = 0.0       # per election notification (TCP does not duplicate ZAB packets)
    duplicate_zab: float = 0.0   # per ZAB packet: off unless a profile asks for a hostile network
    delay: float = 0.0           # per message: a long delay (stays FIFO: it holds up the link)
    delay_ms_long: int = 800
    fault_interval_ms_min: int = 100
    fault_interval_ms_max: int = 1500
    weights: dict[str, int] = field(default_factory=dict)   # fault kind -> weight
    site_crash_sync: float = 0.0     # per Ready with a non-Append write: crash at a named host step
    site_crash_broadcast: float = 0.0   # per other Ready with writes or messages
    crash_keeps_prefix: float = 0.3  # odds that a crash keeps a prefix of the pending appends
    disk_ms_max: int = 3
    slow_disk_ms_min: int = 50
    slow_disk_ms_max: int = 1500


class SimNetwork:
    def __init__(self, rng: random.Random, profile: FaultProfile) -> None:
        self.rng = rng
        self.profile = profile
        self.heap: list = []            # shared with the simulator: (time, seq, kind, payload)
        self.seq = 0
        self.link_tail_ms: dict[tuple[int, int], int] = {}
        self.in_flight: dict[tuple[int, int], list[InFlight]] = {}
        self.blocked: set[tuple[int, int]] = set()
        self.faults_enabled = True

    def push(self, t: int, kind: str, payload: object) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (t, self.seq, kind, payload))

    def send(self, now: int, src: int, dst: int, msg: object, is_election: bool) -> str:
        """Put msg on the link src->dst; returns what happened (for the trace)."""
        if src == dst:
            # Self-addressed notifications go round the loop at once and never fail.
            self._enqueue(now, src, dst, msg, now)
            return "self"
        if (src, dst) in self.blocked:
            return "lost(partition)"
        p, rng = self.profile, self.rng
        if self.faults_enabled:
            if p.drop and rng.random() < p.drop:
                # An election notification may vanish alone (ZooKeeper drops queued notifications when
                # a connection fails); a ZAB packet can be lost only with its TCP connection, so the
                # caller breaks the link and tells both ends.
                return "dropped" if is_election else "dropped(connection)"
            delay = rng.randint(p.delay_ms_min, p.delay_ms_max)
            outcome = "sent"
            if p.delay and rng.random() < p.delay:
                delay += rng.randint(p.delay_ms_long // 4, p.delay_ms_long)
                outcome = "delayed"
            self._enqueue(now, src, dst, msg, now + delay)
            dup = p.duplicate if is_election else p.duplicate_zab
            if dup and rng.random() < dup:
                self._enqueue(now, src, dst, msg, now + delay + rng.randint(0, p.delay_ms_max))
                outcome += "+dup"
            return outcome
        self._enqueue(now, src, dst, msg, now + rng.randint(p.delay_ms_min, p.delay_ms_max))
        return "sent"

    def _enqueue(self, now: int, src: int, dst: int, msg: object, t: int) -> None:
        key = (src, dst)
        t = max(t, self.link_tail_ms.get(key, 0))
        self.link_tail_ms[key] = t
        item = InFlight(t, src, dst, msg)
        flying = self.in_flight.setdefault(key, [])
        if len(flying) > 64:
            flying[:] = [m for m in flying if m.alive]
        flying.append(item)
        self.push(t, "deliver", item)

    def delivered(self, item: InFlight) -> None:
        item.alive = False

    def hold_link(self, src: int, dst: int, until_ms: int) -> None:
        """Later messages on src->dst wait at least until `until_ms` (the receiver is paused)."""
        key = (src, dst)
        self.link_tail_ms[key] = max(self.link_tail_ms.get(key, 0), until_ms)

    def break_link(self, src: int, dst: int) -> int:
        """The connection src->dst breaks: everything in flight on it is lost.  Returns the count."""
        lost = 0
        for item in self.in_flight.pop((src, dst), []):
            if item.alive:
                item.alive = False
                lost += 1
        return lost

    def reconnect(self, now: int, src: int, dst: int) -> tuple[int, int]:
        """The connection drops and comes back: each in-flight message is lost or arrives late, reordered."""
        survivors, lost = [], 0
        for item in self.in_flight.pop((src, dst), []):
            if not item.alive:
                continue
            item.alive = False
            if self.rng.random() < 0.5:
                lost += 1
            else:
                survivors.append(item.msg)
        self.link_tail_ms[(src, dst)] = now
        flying = self.in_flight.setdefault((src, dst), [])
        for msg in survivors:
            item = InFlight(now + self.rng.randint(1, 4 * self.profile.delay_ms_max + 20), src, dst, msg, late=True)
            flying.append(item)
            self.push(item.deliver_ms, "deliver", item)
        return len(survivors), lost

    def block(self, links: set[tuple[int, int]]) -> int:
        lost = 0
        for key in sorted(links - self.blocked):
            lost += self.break_link(*key)
        self.blocked |= links
        return lost

    def heal(self) -> None:
        self.blocked = set()
