"""ElectionEnv: several FastLeaderElection objects on an explicit, in-memory network, driven by the
commands of tests/zab/testdata/election_*.txt (see test_election_traces.py for the command list).

Messages sit in per-link FIFO queues until a command delivers or drops them; time moves only on
`tick`.  Every output line is deterministic: servers are visited in sid order.
"""
from __future__ import annotations

from collections import deque

from coordcore.zab.election import FastLeaderElection, Notification, PeerState, Vote
from coordcore.zab.quorum import QuorumConfig


def sids(text: str) -> list[int]:
    return [int(s) for s in text.split(",")] if text else []


class ElectionEnv:
    def __init__(self, voters, observers=(), **options) -> None:
        self.quorum = QuorumConfig(frozenset(voters), frozenset(observers))
        self.options = options
        self.now_ms = 0
        self.servers: dict[int, FastLeaderElection] = {}
        self.down: set[int] = set()
        self.partitions: list[frozenset[int]] = []   # while set, messages between groups are lost
        self.links: dict[tuple[int, int], deque[Notification]] = {}
        for sid in sorted(self.quorum.members):
            self.servers[sid] = FastLeaderElection(sid, self.quorum, **options)

    # ---- network

    def in_flight(self) -> list[tuple[int, int, Notification]]:
        return [(a, b, n) for (a, b), q in sorted(self.links.items()) for n in q]

    def _matches(self, specs: list[str], frm: int, to: int) -> bool:
        if not specs:
            return True
        for spec in specs:
            a, _, b = spec.partition("->")
            if (a == "*" or int(a) == frm) and (b == "*" or int(b) == to):
                return True
        return False

    def _collect(self, sid: int, indent: str, out: list[str], before_wait: int | None = None) -> None:
        """Move `sid`'s outbox to the network and describe what it did."""
        fle = self.servers[sid]
        msgs = fle.take_messages()
        i = 0
        while i < len(msgs):
            j = i
            while j + 1 < len(msgs) and msgs[j + 1][1] == msgs[i][1]:
                j += 1
            targets = [to for to, _ in msgs[i:j + 1]]
            dest = str(targets[0]) if len(targets) == 1 else "(" + ",".join(map(str, targets)) + ")"
            out.append(f"{indent}{sid}->{dest} {msgs[i][1]}")
            i = j + 1
        for to, n in msgs:
            self.links.setdefault((sid, to), deque()).append(n)
        wait = fle._finalize_at_ms
        if wait != before_wait:
            if wait is not None:
                out.append(f"{indent}{sid} final wait until t={wait}")
            elif fle.state == PeerState.LOOKING:
                out.append(f"{indent}{sid} final wait interrupted")
        decision = fle.take_decision()
        if decision is not None:
            state, vote = decision
            out.append(f"{indent}{sid} DECIDED {state.name} {vote} round={fle.logical_clock}")

    def deliver(self, specs: list[str], count: int | None = None) -> list[str]:
        """Deliver the messages in flight now on the matching links, oldest first per link."""
        out: list[str] = []
        chosen = [(a, b) for (a, b), q in sorted(self.links.items()) if q and self._matches(specs, a, b)]
        for link in chosen:
            queue = self.links[link]
            for _ in range(len(queue) if count is None else min(count, len(queue))):
                n = queue.popleft()
                a, b = link
                if b in self.down:
                    out.append(f"{a}->{b} {n} (lost: {b} is down)")
                    continue
                if self.partitions and not any(a in group and b in group for group in self.partitions):
                    out.append(f"{a}->{b} {n} (lost: partitioned)")
                    continue
                out.append(f"{a}->{b} {n}")
                fle = self.servers[b]
                before = fle._finalize_at_ms
                fle.receive(n, self.now_ms)
                self._collect(b, "  ", out, before)
        return out

    def stabilize(self, specs: list[str]) -> list[str]:
        out: list[str] = []
        while any(q and self._matches(specs, a, b) for (a, b), q in self.links.items()):
            out.extend(self.deliver(specs))
        return out

    def drop(self, specs: list[str]) -> list[str]:
        out = []
        for (a, b), queue in sorted(self.links.items()):
            if self._matches(specs, a, b):
                out.extend(f"dropped {a}->{b} {n}" for n in queue)
                queue.clear()
        return out

    def duplicate(self, specs: list[str]) -> list[str]:
        out = []
        for (a, b), queue in sorted(self.links.items()):
            if self._matches(specs, a, b):
                out.extend(f"duplicated {a}->{b} {n}" for n in queue)
                queue.extend(list(queue))
        return out

    def partition(self, groups: list[list[int]]) -> None:
        self.partitions = [frozenset(g) for g in groups]

    def heal(self) -> None:
        self.partitions = []

    # ---- servers

    def look(self, who: list[int], zxid: int, epoch: int) -> list[str]:
        out: list[str] = []
        for sid in who:
            self.servers[sid].look(self.now_ms, zxid, epoch)
            self._collect(sid, "", out)
        return out

    def tick(self, ms: int) -> list[str]:
        """Advance time by `ms`, firing every deadline on the way in time order (then sid order)."""
        target = self.now_ms + ms
        out: list[str] = []
        while True:
            due = [(d, sid) for sid, fle in self.servers.items() if sid not in self.down
                   and (d := fle.next_deadline_ms()) is not None and d <= target]
            if not due:
                break
            self.now_ms = max(self.now_ms, min(due)[0])
            for d, sid in sorted(due):
                if d <= self.now_ms:
                    out.append(f"t={self.now_ms} {sid} tick")
                    before = self.servers[sid]._finalize_at_ms
                    self.servers[sid].tick(self.now_ms)
                    self._collect(sid, "  ", out, before)
        self.now_ms = target
        out.append(f"t={self.now_ms}")
        return out

    def restart(self, sid: int) -> None:
        """A crash and restart: a fresh election object (the logical clock is not durable) and no links."""
        self.down.discard(sid)
        for (a, b), queue in self.links.items():
            if sid in (a, b):
                queue.clear()
        self.servers[sid] = FastLeaderElection(sid, self.quorum, **self.options)

    def crash(self, sid: int) -> None:
        self.down.add(sid)
        for (a, b), queue in self.links.items():
            if a == sid:
                queue.clear()

    def status(self) -> list[str]:
        out = []
        for sid, fle in self.servers.items():
            if sid in self.down:
                out.append(f"{sid} down")
                continue
            deadline = fle.next_deadline_ms()
            out.append(f"{sid} {fle.state.name} lc={fle.logical_clock} {fle.vote}"
                       + ("" if deadline is None else f" deadline=t={deadline}"))
        return out


def vote_of(case) -> Vote:
    return Vote(case.get_int("leader"), case.get_int("zxid", 0), case.get_int("epoch", 0))
