"""FleHost: a simulated server running FastLeaderElection alone, with a fixed history.

Used before (and besides) the full QuorumPeer runs: elections under message loss, duplication,
delay, reconnects, partitions, crashes and restarts.  A decision is taken as final at once (the host
calls ``established``), standing in for a ZAB phase that always succeeds; the ``relook`` fault makes a
server leave its role and look again, as a failed sync would.

Checks, on every notification sent and every decision:
* a voter's vote names a voter, and carries that voter's true (last zxid, currentEpoch) -- histories
  are fixed in these runs, so anything else is a corrupted or mixed-up vote;
* LEADING names the server itself, FOLLOWING another voter, and only observers OBSERVE;
* after healing, everyone restarts at once over reliable links and must decide the best voter by
  (currentEpoch, zxid, sid) within the liveness bound (ZooKeeper's total order, reference 4.2).

Standing in for ZAB's timeouts, a server whose decided role goes nowhere looks again after initLimit
ticks: a follower whose leader is not LEADING, a leader that fewer than a quorum follow.  Without
that, FLE alone can legitimately strand a server (it joins only a leader that reports LEADING).
"""
from __future__ import annotations

from coordcore import zxid as zx
from coordcore.testing.sim.checker import Violation
from coordcore.testing.sim.disk import SimDisk
from coordcore.zab.election import FastLeaderElection, Notification, PeerState


class FleHost:
    def __init__(self, sim, sid: int) -> None:
        self.sim = sim
        self.sid = sid
        self.voter = sim.quorum.is_voter(sid)
        # Histories are drawn so that epoch and zxid disagree often (E2: a server that adopted epoch E+1
        # without new txns must beat one with a longer tail from epoch E).
        rng = sim.rng
        if not hasattr(sim, "fle_base_epoch"):
            sim.fle_base_epoch = rng.randint(1, 3)      # one ensemble: one epoch its history is in
        base_epoch = sim.fle_base_epoch
        self.current_epoch = base_epoch + rng.randint(0, 1)
        last_epoch = base_epoch if rng.random() < 0.95 else self.current_epoch
        self.last_zxid = zx.make(last_epoch, rng.randint(0, 9))
        epoch = self.current_epoch
        self.disk = SimDisk(accepted_epoch=epoch, current_epoch=epoch)
        self.up = False
        self.incarnation = 0
        self.paused_until = 0
        self.slow_disk_until = 0
        self.timer_ms: int | None = None
        self.sync_generation = 0
        self.fle: FastLeaderElection | None = None
        self.decided = None            # (PeerState, Vote) of the current incarnation
        self.role_deadline_ms: int | None = None

    # -- life cycle

    def start(self) -> None:
        sim = self.sim
        self.up = True
        self.incarnation += 1
        self.decided = None
        self.role_deadline_ms = None
        self.fle = FastLeaderElection(self.sid, sim.quorum, finalize_wait_ms=sim.cfg.finalize_wait_ms,
                                      max_notification_interval_ms=sim.cfg.max_notification_interval_ms)
        sim.log(f"START {self.sid} zxid={zx.fmt(self.last_zxid)} epoch={self.current_epoch}")
        self.fle.look(sim.now, self.last_zxid, self.current_epoch)
        self._flush()

    def crash(self, keep_pending: int) -> int:
        self.up = False
        self.fle = None
        self.timer_ms = None
        return 0

    def relook(self, flush: bool = True) -> None:
        if self.decided is None or self.paused_until > self.sim.now:
            return
        self.sim.log(f"RELOOK {self.sid}")
        self.decided = None
        self.role_deadline_ms = None
        self.fle.look(self.sim.now, self.last_zxid, self.current_epoch)
        if flush:
            self._flush()

    def healed(self) -> None:
        # The convergence test: every server restarts at the same moment over reliable links.
        # Everyone restarting drops every connection, so nothing from before is still in flight.
        if self.up:
            self.crash(0)
        net = self.sim.net
        for key in sorted(net.in_flight):
            if self.sid in key:
                net.break_link(*key)
        self.sim.push(self.sim.now, "restart", self.sid)

    # -- inputs

    def receive(self, src: int, msg) -> None:
        self.fle.receive(msg, self.sim.now)
        self._flush()

    def tick(self) -> None:
        now = self.sim.now
        self.fle.tick(now)
        if self.decided is not None and self.role_deadline_ms is not None and now >= self.role_deadline_ms:
            self._check_role()
        self._flush()

    def _check_role(self) -> None:
        sim = self.sim
        state, vote = self.decided
        if state == PeerState.LEADING:
            followers = [s for s, h in sim.hosts.items()
                         if h.up and h.decided is not None and h.decided[1].leader == self.sid]
            healthy = sim.quorum.is_quorum(followers)
        else:
            leader = sim.hosts[vote.leader]
            healthy = leader.up and leader.decided is not None and leader.decided[0] == PeerState.LEADING
        if healthy:
            self.role_deadline_ms = sim.now + self._role_timeout_ms()
        else:
            sim.log(f"role of {self.sid} timed out ({state.name} {vote.leader})")
            self.relook(flush=False)

    def _role_timeout_ms(self) -> int:
        return self.sim.cfg.init_limit * self.sim.cfg.tick_ms

    def link_lost(self, other: int) -> None:
        pass

    def sync_done(self, up_to: int) -> None:
        pass

    def client_write(self, payload: bytes) -> None:
        pass

    def take_snapshot(self) -> None:
        pass

    def is_leader(self) -> bool:
        return self.decided is not None and self.decided[0] == PeerState.LEADING

    # -- outputs

    def _flush(self) -> None:
        sim = self.sim
        for to, n in self.fle.take_messages():
            self._check_notification(n)
            sim.send(self.sid, to, n, True)
        decision = self.fle.take_decision()
        if decision is not None:
            self._check_decision(*decision)
            self.decided = decision
            sim.log(f"DECIDE {self.sid} {decision[0].name} {decision[1]}")
            sim.count("decisions")
            self.fle.established(*decision)
            self.role_deadline_ms = sim.now + self._role_timeout_ms()
            for to, n in self.fle.take_messages():
                sim.send(self.sid, to, n, True)
        deadlines = [t for t in (self.fle.next_deadline_ms(), self.role_deadline_ms) if t is not None]
        self.schedule_timer(min(deadlines) if deadlines else None)

    def schedule_timer(self, t: int | None) -> None:
        if t is not None:
            t = max(t, self.sim.now)
            if t != self.timer_ms:
                self.timer_ms = t
                self.sim.push(t, "timer", (self.sid, self.incarnation))
        else:
            self.timer_ms = None

    # -- checks

    def _truth(self, sid: int) -> tuple[int, int]:
        h = self.sim.hosts[sid]
        return h.last_zxid, h.current_epoch

    def _check_notification(self, n: Notification) -> None:
        if n.sender != self.sid:
            raise Violation("FLE", f"server {self.sid} sends a notification claiming sender {n.sender}")
        if not self.voter and n.state == PeerState.LOOKING:
            return        # an observer's own vote is empty
        if not self.sim.quorum.is_voter(n.leader):
            raise Violation("FLE", f"voter {self.sid} proposes non-voter {n.leader}: {n}")
        if (n.zxid, n.peer_epoch) != self._truth(n.leader):
            z, e = self._truth(n.leader)
            raise Violation("FLE", f"server {self.sid} sends a vote for {n.leader} with zxid={zx.fmt(n.zxid)} "
                                   f"peer_epoch={n.peer_epoch}, but {n.leader} has zxid={zx.fmt(z)} epoch={e}")

    def _check_decision(self, state: PeerState, vote) -> None:
        sid, q = self.sid, self.sim.quorum
        if not q.is_voter(vote.leader):
            raise Violation("FLE", f"server {sid} decides {state.name} for non-voter {vote.leader}")
        if state == PeerState.LEADING and (vote.leader != sid or not self.voter):
            raise Violation("FLE", f"server {sid} decides LEADING for {vote.leader}")
        if state == PeerState.FOLLOWING and (vote.leader == sid or not self.voter):
            raise Violation("FLE", f"server {sid} decides FOLLOWING {vote.leader}")
        if state == PeerState.OBSERVING and self.voter:
            raise Violation("FLE", f"voter {sid} decides OBSERVING")
        if state == PeerState.LOOKING:
            raise Violation("FLE", f"server {sid} decides LOOKING")
        if (vote.zxid, vote.peer_epoch) != self._truth(vote.leader):
            raise Violation("FLE", f"server {sid} decides a vote with a wrong history: {vote}")

    # -- convergence (class-level: looks at every host)

    @staticmethod
    def _best(sim) -> int:
        return max(sim.quorum.voters, key=lambda s: (sim.hosts[s].current_epoch, sim.hosts[s].last_zxid, s))

    @staticmethod
    def convergence_gap(sim) -> str | None:
        for sid in sim.sids:
            h = sim.hosts[sid]
            if not h.up or h.decided is None:
                return f"server {sid} has not decided"
        leaders = {h.decided[1].leader for h in sim.hosts.values()}
        if len(leaders) != 1:
            return f"servers decided different leaders {sorted(leaders)}"
        return None

    @staticmethod
    def final_check(sim) -> None:
        best = FleHost._best(sim)
        leader = sim.hosts[sim.sids[0]].decided[1].leader
        if leader != best:
            h = sim.hosts[best]
            raise Violation("FLE", f"after a clean restart everyone decided {leader}, but the best voter by "
                                   f"(epoch, zxid, sid) is {best} (epoch {h.current_epoch}, zxid {zx.fmt(h.last_zxid)})")

    def describe(self) -> str:
        if not self.up:
            return f"{self.sid}:down"
        d = self.decided
        return f"{self.sid}:{d[0].name}({d[1].leader})" if d else f"{self.sid}:LOOKING"
