"""ZabHost: a simulated server running a real QuorumPeer over a SimDisk, obeying the HOST RULES.

The host loop for one Ready (coordcore/zab/ready.py):

1. execute ``writes`` in order on the SimDisk (an Append is buffered; anything else syncs first);
2. send ``messages`` through the SimNetwork;
3. sync the remaining Appends -- at once, or later when the disk is slow -- then ``persisted()``;
4. apply ``applies`` to the replica (here: the list of applied (zxid, txn)), then answer ``synced``;
5. on ``reset``, rebuild the replica: newest snapshot plus durable txns <= ``peer.applied_zxid``.

Between those steps are the *named fault sites* where the scheduler may crash the server:
``write[i]`` (before the i-th write), ``after-writes``, ``send[j]`` (after j messages), ``after-send``,
``after-sync`` (synced, persisted() not yet called), ``after-persisted``.  Readies with a non-Append
write (discovery and sync: epochs, TRUNC, SNAP) get their own, higher crash odds, because that is
where ZooKeeper's data-loss bugs lived (reference section 13).

The replica is opaque bytes: a snapshot is the applied history itself (disk.encode_history), so the
checker can tell which txns any disk holds.  Client writes are proposed on the leader with a txn that
names the payload, the zxid and the proposing sid, so two leaders can never produce equal bytes.
"""
from __future__ import annotations

from coordcore import zxid as zx
from coordcore.testing.sim.checker import Violation
from coordcore.testing.sim.disk import HostRuleError, SimDisk, decode_history, encode_history
from coordcore.zab import messages as m
from coordcore.zab.election import Notification, PeerState
from coordcore.zab.peer import (Append, InstallSnapshot, PeerDurable, QuorumPeer, SetAcceptedEpoch,
                                SetCurrentEpoch, Truncate)

READY_ROUNDS_MAX = 200     # a peer that keeps producing output this long without input is broken


class ZabHost:
    def __init__(self, sim, sid: int) -> None:
        self.sim = sim
        self.sid = sid
        self.voter = sim.quorum.is_voter(sid)
        self.disk = SimDisk()
        self.peer: QuorumPeer | None = None
        self.up = False
        self.incarnation = 0
        self.paused_until = 0
        self.slow_disk_until = 0
        self.timer_ms: int | None = None
        self.sync_generation = 0
        self.sync_tail_ms = 0
        self.applied: list[tuple[int, bytes]] = []
        self.serving_epoch: int | None = None     # epoch this server was last seen leading+serving
        self.last_acked = 0                       # leader: newest own proposal applied (acknowledged)
        self.syncs: dict[int, int] = {}           # client sync token -> zxid it must have applied
        self.sync_token = 0

    # -- life cycle

    def start(self) -> None:
        sim, disk = self.sim, self.disk
        loaded = disk.load()
        self.up = True
        self.incarnation += 1
        self.timer_ms = None
        self.sync_tail_ms = 0
        self.serving_epoch = None
        self.syncs = {}
        # HOST RULE 5 at start: the replica is the newest snapshot, nothing replayed.
        self.applied = list(disk.snapshot_history)
        sim.checker.reloaded(self.sid)
        self._check_replica()
        durable = PeerDurable(loaded.accepted_epoch, loaded.current_epoch, loaded.snapshot_zxid, tuple(loaded.txns))
        sim.log(f"START {self.sid} accepted={loaded.accepted_epoch} current={loaded.current_epoch} "
                f"snapshot={zx.fmt(loaded.snapshot_zxid)} last={zx.fmt(loaded.last_zxid)} txns={len(loaded.txns)}")
        try:
            self.peer = QuorumPeer(self.sid, sim.quorum, tick_ms=sim.cfg.tick_ms, init_limit=sim.cfg.init_limit,
                                   sync_limit=sim.cfg.sync_limit, durable=durable, now_ms=sim.now,
                                   snapshot_provider=self._snapshot, finalize_wait_ms=sim.cfg.finalize_wait_ms)
        except ValueError as e:
            raise Violation("I6", f"server {self.sid} cannot restart from its disk: {e}") from None
        fle = getattr(self.peer, "fle", None)
        if fle is not None and hasattr(fle, "max_notification_interval_ms"):
            # A tuning knob, not a behaviour switch: shorter election backoff keeps runs short.
            fle.max_notification_interval_ms = sim.cfg.max_notification_interval_ms
        self.drive()

    def crash(self, keep_pending: int) -> int:
        self.up = False
        self.peer = None
        self.timer_ms = None
        self.serving_epoch = None
        lost = self.disk.crash(keep_pending)
        self.sim.checker.disk_changed(self.sid, self.disk)
        return lost

    def healed(self) -> None:
        pass

    def relook(self) -> None:
        pass

    def is_leader(self) -> bool:
        return self.peer is not None and self.peer.state == PeerState.LEADING

    def _snapshot(self) -> tuple[int, bytes]:
        last = self.applied[-1][0] if self.applied else 0
        return last, encode_history(self.applied)

    def take_snapshot(self) -> None:
        """The server snapshots its applied state by itself (ZooKeeper's snapCount), purging the log."""
        if not self.applied or self.paused_until > self.sim.now:
            return
        z = self.applied[-1][0]
        if z <= self.disk.snapshot_zxid:
            return
        self.disk.save_snapshot(z, self.applied)
        self.sim.log(f"SNAPSHOT {self.sid} at {zx.fmt(z)}")
        self.sim.checker.disk_changed(self.sid, self.disk)

    # -- inputs

    def receive(self, src: int, msg) -> None:
        self.peer.receive(src, msg, self.sim.now)
        self.drive()

    def tick(self) -> None:
        self.peer.tick(self.sim.now)
        self.drive()

    def link_lost(self, other: int) -> None:
        self.peer.link_lost(other, self.sim.now)
        self.drive()

    def sync_done(self, up_to: int) -> None:
        disk = self.disk
        disk.sync(up_to)
        self.sim.checker.disk_changed(self.sid, disk)
        if self._crash_here(self.sim.profile.site_crash_broadcast, "after-sync(slow)"):
            return
        self.sim.log(f"persisted {self.sid} {zx.fmt(up_to)}")
        self._report_persisted(up_to)
        self.drive()

    def client_write(self, payload: bytes) -> None:
        sim, peer = self.sim, self.peer
        if not peer.serving:
            sim.log(f"client -> {self.sid}: not serving")
            return
        roll = sim.rng.random()
        if roll < 0.1 and peer.state != PeerState.LEADING:
            self.sync_token += 1
            leader = sim.hosts.get(peer.leader_sid)
            target = leader.last_acked if leader is not None and leader.peer is not None and \
                leader.peer.epoch == peer.epoch else 0
            self.syncs[self.sync_token] = target
            sim.log(f"client sync -> {self.sid} token={self.sync_token} must see {zx.fmt(target)}")
            peer.sync(self.sync_token)
        elif roll < 0.15:
            session = sim.rng.randint(1, 8)
            sim.log(f"client touch -> {self.sid} session={session}")
            peer.touch(session, 4 * sim.cfg.tick_ms)
        elif peer.state == PeerState.LEADING:
            self._propose(payload)
        else:
            sim.log(f"client write -> {self.sid} forward {payload!r}")
            peer.forward(payload)
        self.drive()

    def _propose(self, payload: bytes) -> None:
        peer, sim = self.peer, self.sim
        z = peer.next_zxid()
        if z is None:
            sim.log(f"client write -> {self.sid} {payload!r}: leader not broadcasting")
            return
        txn = b"%s@%x/s%d" % (payload, z, self.sid)
        got = peer.propose(txn)
        if got != z:
            raise Violation("API", f"server {self.sid}: next_zxid() said {zx.fmt(z)}, propose() gave {zx.fmt(got)}")
        sim.log(f"propose {self.sid} {zx.fmt(z)} {txn!r}")
        self._observe_state()
        sim.checker.proposed(self.sid, z, txn, sim.disks, peer.epoch)

    # -- the host loop

    def drive(self) -> None:
        for _ in range(READY_ROUNDS_MAX):
            if not self.up:
                return
            r = self.peer.ready()
            if r.is_empty():
                break
            self._process(r)
            if self.up:
                self._observe_state()
        else:
            raise Violation("API", f"server {self.sid}'s ready() never runs dry")
        if not self.up:
            return
        if self.applied and self.applied[-1][0] != self.peer.applied_zxid or \
                not self.applied and self.peer.applied_zxid != 0:
            raise Violation("API", f"server {self.sid}: replica applied up to "
                                   f"{zx.fmt(self.applied[-1][0] if self.applied else 0)} but "
                                   f"peer.applied_zxid is {zx.fmt(self.peer.applied_zxid)}")
        self.schedule_timer(self.peer.next_deadline_ms())

    def _pick_site(self, r) -> tuple[str, int] | None:
        sim = self.sim
        if sim.healed:
            return None
        p = sim.profile
        special = any(not isinstance(w, Append) for w in r.writes)
        odds = p.site_crash_sync if special else (p.site_crash_broadcast if (r.writes or r.messages) else 0.0)
        if not odds or sim.rng.random() >= odds:
            return None
        sites = [("write", i) for i in range(1, len(r.writes))]
        sites += [("after-writes", 0)] if r.writes else []
        sites += [("send", j) for j in range(1, len(r.messages))]
        sites += [("after-send", 0), ("after-sync", 0), ("after-persisted", 0)]
        return sim.rng.choice(sites)

    def _crash_at(self, site: tuple[str, int]) -> None:
        name = site[0] if site[0] not in ("write", "send") else f"{site[0]}[{site[1]}]"
        self.sim.crash(self.sid, name)

    def _crash_here(self, odds: float, name: str) -> bool:
        sim = self.sim
        if sim.healed or not odds or sim.rng.random() >= odds:
            return False
        sim.crash(self.sid, name)
        return True

    def _write_send_sync(self, r) -> bool:
        """HOST RULES 1-3 for one Ready, with its crash sites; False if the server crashed on the way."""
        sim, disk, checker = self.sim, self.disk, self.sim.checker
        site = self._pick_site(r)
        appended = None
        for i, w in enumerate(r.writes):
            if site == ("write", i):
                self._crash_at(site)
                return False
            if isinstance(w, Append):
                appended = w.zxid
            self._write(w)
        if site is not None and site[0] == "after-writes":
            self._crash_at(site)
            return False
        leader_epoch = self.peer.epoch
        for j, (to, msg) in enumerate(r.messages):
            if site == ("send", j):
                self._crash_at(site)
                return False
            if isinstance(msg, m.Ack):
                checker.sent_ack(self.sid, msg.zxid, disk)
            elif isinstance(msg, m.Proposal):
                for z, t in msg.txns:
                    checker.sent_proposal(self.sid, z, t, sim.disks, leader_epoch)
            sim.send(self.sid, to, msg, isinstance(msg, Notification))
        if site is not None and site[0] == "after-send":
            self._crash_at(site)
            return False
        if appended is not None:
            self._sync_appends(appended, site)
            if not self.up:
                return False
        return True

    def _process(self, r) -> None:
        sim, disk, checker = self.sim, self.disk, self.sim.checker
        if not self._write_send_sync(r):
            return
        for z, t in r.applies:
            self.applied.append((z, t))
            checker.applied(self.sid, self.applied, disk, sim.disks)
            if checker.proposer.get(z) == self.sid:
                self.last_acked = z
            if sim.trace is not None:
                sim.log(f"apply {self.sid} {zx.fmt(z)} {t!r}")
        for token in r.synced:
            self._synced(token)
        for from_sid, payload in r.requests:
            self._propose_forwarded(from_sid, payload)
        for from_sid, session_id, _timeout in r.revalidations:
            self.peer.revalidated(from_sid, session_id, session_id % 3 != 0)
        if r.touches or r.revalidated:
            sim.log(f"sessions {self.sid} touches={len(r.touches)} revalidated={r.revalidated}")
        if r.reset:
            self._reset()
        if r.state_changed:
            p = self.peer
            sim.log(f"state {self.sid} {p.state.name} serving={p.serving} leader={p.leader_sid} epoch={p.epoch}")

    def _write(self, w) -> None:
        disk, checker, sim = self.disk, self.sim.checker, self.sim
        try:
            if isinstance(w, Append):
                checker.saw_txn(f"Append on {self.sid}", w.zxid, w.txn)
                disk.append(w.zxid, w.txn)
                if sim.trace is not None:
                    sim.log(f"write {self.sid} Append {zx.fmt(w.zxid)}")
                return
            if isinstance(w, SetAcceptedEpoch):
                disk.set_accepted_epoch(w.epoch)
            elif isinstance(w, SetCurrentEpoch):
                disk.set_current_epoch(w.epoch)
            elif isinstance(w, Truncate):
                disk.truncate(w.zxid)
            elif isinstance(w, InstallSnapshot):
                for z, t in _history_of(w):
                    checker.saw_txn(f"InstallSnapshot on {self.sid}", z, t)
                disk.install_snapshot(w.zxid, w.data)
            else:
                raise Violation("API", f"server {self.sid}: unknown write {w!r}")
        except HostRuleError as e:
            raise Violation("HOST", f"server {self.sid}: {e}") from None
        sim.log(f"write {self.sid} {_write_text(w)}")
        checker.disk_changed(self.sid, disk)

    def _sync_appends(self, appended: int, site) -> None:
        sim = self.sim
        slow = self.slow_disk_until > sim.now
        p = sim.profile
        if slow or sim.rng.random() < 0.5:
            lo, hi = (p.slow_disk_ms_min, p.slow_disk_ms_max) if slow else (1, max(1, p.disk_ms_max))
            t = max(sim.now + sim.rng.randint(lo, hi), self.sync_tail_ms)
            self.sync_tail_ms = t
            sim.push(t, "sync", (self.sid, self.incarnation, self.sync_generation, appended))
            if site is not None and site[0] in ("after-sync", "after-persisted"):
                self._crash_at(("before-sync", 0))
            return
        self.disk.sync(appended)
        sim.checker.disk_changed(self.sid, self.disk)
        if site is not None and site[0] == "after-sync":
            return self._crash_at(site)
        self._report_persisted(appended)
        if site is not None and site[0] == "after-persisted":
            return self._crash_at(site)

    def _report_persisted(self, zxid: int) -> None:
        """HOST RULE 3: the appends through zxid are durable (replica mode tells its Replica instead)."""
        self.peer.persisted(zxid)

    def _propose_forwarded(self, from_sid: int, payload: bytes) -> None:
        if self.peer.next_zxid() is None:
            self.sim.log(f"request {self.sid} from {from_sid} {payload!r}: not broadcasting, dropped")
            return
        self._propose(payload)

    def _synced(self, token: int) -> None:
        target = self.syncs.pop(token, None)
        if target is None:
            raise Violation("API", f"server {self.sid} answers sync token {token} it never got")
        last = self.applied[-1][0] if self.applied else 0
        self.sim.log(f"synced {self.sid} token={token} applied={zx.fmt(last)}")
        if last < target:
            raise Violation("SYNC", f"server {self.sid} answers sync {token} at {zx.fmt(last)}, before "
                                    f"{zx.fmt(target)} which its leader had acknowledged earlier")

    def _reset(self) -> None:
        """HOST RULE 5: the newest snapshot, plus the durable txns up to peer.applied_zxid."""
        upto = self.peer.applied_zxid
        disk = self.disk
        self.applied = list(disk.snapshot_history) + [t for t in disk.log if t[0] <= upto]
        self.sim.log(f"reset {self.sid} replica rebuilt up to {zx.fmt(self.applied[-1][0] if self.applied else 0)}")
        self.sim.checker.reloaded(self.sid)
        self._check_replica()

    def _check_replica(self) -> None:
        if self.applied:
            self.sim.checker.match_prefix(self.sid, self.applied)

    def _observe_state(self) -> None:
        p = self.peer
        if p.state == PeerState.LEADING and p.serving:
            if self.serving_epoch != p.epoch:
                self.serving_epoch = p.epoch
                self.last_acked = 0
                self.sim.count("leaders")
                self.sim.log(f"LEADER {self.sid} serves epoch {p.epoch}")
                self.sim.checker.leader_serving(self.sid, p.epoch, self.disk.history())
        else:
            self.serving_epoch = None

    def schedule_timer(self, t: int | None) -> None:
        if t is None:
            self.timer_ms = None
            return
        t = max(t, self.sim.now)
        if t != self.timer_ms:
            self.timer_ms = t
            self.sim.push(t, "timer", (self.sid, self.incarnation))

    # -- convergence (class-level: looks at every host)

    @staticmethod
    def convergence_gap(sim) -> str | None:
        hosts = sim.hosts
        down = [s for s in sim.sids if not hosts[s].up]
        if down:
            return f"servers {down} are down"
        leaders = [s for s in sim.sids if hosts[s].peer.state == PeerState.LEADING and hosts[s].peer.serving]
        if len(leaders) != 1:
            return f"{len(leaders)} leaders serving"
        lead = hosts[leaders[0]]
        last = lead.applied[-1][0] if lead.applied else 0
        if lead.disk.last_zxid != last:
            return f"leader {lead.sid} has not applied its log (applied {zx.fmt(last)}, logged {zx.fmt(lead.disk.last_zxid)})"
        for s in sim.sids:
            h = hosts[s]
            if not h.peer.serving or h.peer.leader_sid != lead.sid:
                return f"server {s} is not serving under leader {lead.sid}"
            mine = h.applied[-1][0] if h.applied else 0
            if mine != last:
                return f"server {s} applied up to {zx.fmt(mine)}, leader {lead.sid} up to {zx.fmt(last)}"
        return None

    @staticmethod
    def final_check(sim) -> None:
        sim.checker.final({s: h.applied for s, h in sim.hosts.items()})

    def describe(self) -> str:
        if not self.up:
            return f"{self.sid}:down"
        p = self.peer
        last = self.applied[-1][0] if self.applied else 0
        return (f"{self.sid}:{p.state.name}{'*' if p.serving else ''}(leader={p.leader_sid},epoch={p.epoch},"
                f"applied={zx.fmt(last)},logged={zx.fmt(self.disk.last_zxid)})")


def _history_of(w) -> list[tuple[int, bytes]]:
    return decode_history(w.data)


def _write_text(w) -> str:
    if isinstance(w, InstallSnapshot):
        return f"InstallSnapshot {zx.fmt(w.zxid)} ({len(w.data)} bytes)"
    if isinstance(w, Truncate):
        return f"Truncate {zx.fmt(w.zxid)}"
    return f"{type(w).__name__} {w.epoch}"

