"""A tiny deterministic driver for QuorumPeers: a dict of peers, one FIFO of messages, dict-backed hosts.

Each Host obeys the HOST RULES of coordcore/zab/ready.py: writes in order (an Append is buffered, any
other write first syncs the buffered Appends), then the messages, then persisted() (at once, or when the
test says so), applies and a reset rebuilding the replica from the newest snapshot plus the durable txns
up to Ready.applied_zxid.  The replica is the list of applied (zxid, txn); its snapshot is that list.

Time only moves when the network is quiet: to the earliest next_deadline_ms() of the live peers.  Every
message is delivered in FIFO order with no delay; codec round trips are checked on every delivery.
No randomness: the same script always gives the same trace.
"""
from __future__ import annotations

import ast
from collections import deque

from coordcore.zab import messages as m
from coordcore.zab.election import Notification, PeerState
from coordcore.zab.peer import QuorumPeer
from coordcore.zab.quorum import QuorumConfig
from coordcore.zab.ready import (Append, InstallSnapshot, PeerDurable, SetAcceptedEpoch, SetCurrentEpoch,
                                 Truncate)


def encode_state(txns) -> bytes:
    return repr([(z, t) for z, t in txns]).encode()


def decode_state(data: bytes) -> list:
    return [tuple(x) for x in ast.literal_eval(data.decode())]


def fmt_range(zxids) -> str:
    return f"{zxids[0]:#x}" if len(zxids) == 1 else f"{zxids[0]:#x}..{zxids[-1]:#x} ({len(zxids)})"


def fmt_msg(msg) -> str:
    """A compact one-line form of a ZAB packet: zxids in hex, batches as ranges."""
    name = type(msg).__name__.upper()
    if isinstance(msg, (m.Proposal, m.Inform)):
        body = fmt_range([z for z, _ in msg.txns]) if msg.txns else "(empty)"
        return f"{name} {body} after {msg.prev_zxid:#x}"
    parts = []
    for field in msg.__dataclass_fields__:
        v = getattr(msg, field)
        if field == "protocol_version":
            continue
        if isinstance(v, bool) or not isinstance(v, int):
            parts.append(f"{field}={v!r}" if not isinstance(v, bytes) else f"{field}={len(v)}B")
        elif "zxid" in field:
            parts.append(f"{field}={v:#x}")
        else:
            parts.append(f"{field}={v}")
    return " ".join([name] + parts)


def fmt_write(w) -> str:
    if isinstance(w, InstallSnapshot):
        return f"InstallSnapshot(zxid={w.zxid:#x}, {len(w.data)}B)"
    if isinstance(w, Truncate):
        return f"Truncate(zxid={w.zxid:#x})"
    return repr(w)


class Host:
    """Durable storage (epochs, snapshots, synced txns) plus the unsynced buffer and the replica."""

    def __init__(self) -> None:
        self.accepted_epoch = 0
        self.current_epoch = 0
        self.snapshots: list[tuple[int, bytes]] = [(0, encode_state([]))]
        self.log: list[tuple[int, bytes]] = []      # durable txns after the newest snapshot... and older
        self.buffer: list[tuple[int, bytes]] = []   # appended, not synced
        self.replica: list[tuple[int, bytes]] = []  # applied txns, in order
        self.writes_done: list = []

    def execute(self, w) -> None:
        self.writes_done.append(w)
        if isinstance(w, Append):
            assert not self.buffer and not self.log or (self.buffer or self.log)[-1][0] < w.zxid or \
                (self.buffer and self.buffer[-1][0] < w.zxid), f"append {w.zxid:#x} not ascending"
            self.buffer.append((w.zxid, w.txn))
            return
        self.sync()
        if isinstance(w, SetAcceptedEpoch):
            self.accepted_epoch = w.epoch
        elif isinstance(w, SetCurrentEpoch):
            self.current_epoch = w.epoch
        elif isinstance(w, Truncate):
            self.log = [t for t in self.log if t[0] <= w.zxid]
            self.snapshots = [s for s in self.snapshots if s[0] <= w.zxid]
        elif isinstance(w, InstallSnapshot):
            self.snapshots.append((w.zxid, w.data))
            self.log = []
        else:
            raise AssertionError(f"unknown write {w!r}")

    def sync(self) -> int | None:
        if not self.buffer:
            return None
        self.log.extend(self.buffer)
        last = self.buffer[-1][0]
        self.buffer = []
        return last

    def load(self) -> PeerDurable:
        snap_zxid = self.snapshots[-1][0]
        return PeerDurable(self.accepted_epoch, self.current_epoch, snap_zxid,
                           tuple(t for t in self.log if t[0] > snap_zxid))

    def rebuild(self, applied_zxid: int) -> None:
        snap_zxid, data = self.snapshots[-1]
        self.replica = decode_state(data) + [t for t in self.log if snap_zxid < t[0] <= applied_zxid]

    def snapshot(self) -> tuple[int, bytes]:
        return (self.replica[-1][0] if self.replica else self.snapshots[-1][0]), encode_state(self.replica)

    def take_snapshot(self) -> None:
        """Like storage.save_snapshot of the applied state (a consistent snapshot at an exact zxid)."""
        self.snapshots.append(self.snapshot())

    def crash(self) -> None:
        self.buffer = []


class Cluster:
    def __init__(self, voters, observers=(), *, tick_ms: int = 100, init_limit: int = 10, sync_limit: int = 5,
                 commit_log_count: int = 500, auto_persist: bool = True) -> None:
        self.quorum = QuorumConfig(frozenset(voters), frozenset(observers))
        self.tick_ms, self.init_limit, self.sync_limit = tick_ms, init_limit, sync_limit
        self.commit_log_count = commit_log_count
        self.auto_persist = auto_persist
        self.slow: set[int] = set()   # hosts whose appends are synced only by persist(sid)
        self.now = 0
        self.hosts = {sid: Host() for sid in sorted(self.quorum.members)}
        self.peers: dict[int, QuorumPeer] = {}
        self.down: set[int] = set()
        self.cut: set[frozenset[int]] = set()   # broken links: messages are lost, both ends told
        self.silent_loss = False                # True: a cut link drops messages without link_lost
        self.net: deque = deque()
        self.trace: list[str] = []     # filled while `tracing`: one line per ZAB event (fmt_event)
        self.tracing = False
        self.resets: dict[int, int] = {sid: 0 for sid in self.hosts}
        self.applied_ever: dict[int, bytes] = {}  # zxid -> txn, over all members and all time
        for sid in self.hosts:
            self.start(sid)

    # ------------------------------------------------------------ lifecycle
    def start(self, sid: int) -> None:
        host = self.hosts[sid]
        host.rebuild(host.snapshots[-1][0])  # a new peer starts from the newest snapshot only
        self.peers[sid] = QuorumPeer(sid, self.quorum, tick_ms=self.tick_ms, init_limit=self.init_limit,
                                     sync_limit=self.sync_limit, durable=host.load(), now_ms=self.now,
                                     snapshot_provider=host.snapshot, commit_log_count=self.commit_log_count)
        self.down.discard(sid)
        self.drain(sid)

    def crash(self, sid: int) -> None:
        """Lose every volatile thing: the peer, unsynced appends, messages in flight to and from it."""
        self.hosts[sid].crash()
        del self.peers[sid]
        self.down.add(sid)
        self.net = deque(x for x in self.net if sid not in (x[0], x[1]))

    def restart(self, sid: int) -> None:
        self.start(sid)

    # ------------------------------------------------------------ host loop
    def drain(self, sid: int) -> None:
        peer, host = self.peers[sid], self.hosts[sid]
        r = peer.ready()
        if self.tracing:
            self._trace_ready(sid, peer, r)
        for w in r.writes:
            host.execute(w)
        for to, msg in r.messages:
            if frozenset((sid, to)) not in self.cut:
                self.net.append((sid, to, msg))
        for z, t in r.applies:
            assert self.applied_ever.setdefault(z, t) == t, f"two txns at {z:#x}"
        if r.reset:
            self.resets[sid] += 1
            host.rebuild(r.applied_zxid)
        else:
            host.replica.extend(r.applies)
        if self.auto_persist and sid not in self.slow:
            last = host.sync()
            if last is not None:
                peer.persisted(last)
                self.drain(sid)

    def persist(self, sid: int) -> None:
        last = self.hosts[sid].sync()
        if last is not None:
            self.peers[sid].persisted(last)
        self.drain(sid)

    def deliver_one(self) -> bool:
        while self.net:
            frm, to, msg = self.net.popleft()
            if to in self.down or frm in self.down:
                continue
            if frozenset((frm, to)) in self.cut:
                if not self.silent_loss:  # TCP: loss only when the connection breaks, and both ends see it
                    for a, b in ((frm, to), (to, frm)):
                        if a not in self.down:
                            self.peers[a].link_lost(b, self.now)
                            self.drain(a)
                continue
            assert m.decode(m.encode(msg)) == msg
            if self.tracing and not isinstance(msg, Notification):
                self.trace.append(f"{frm}->{to} {fmt_msg(msg)}")
            self.peers[to].receive(frm, msg, self.now)
            self.drain(to)
            return True
        return False

    def advance(self) -> bool:
        """Move time to the next deadline and tick whoever is due; False if nothing is scheduled."""
        deadlines = [p.next_deadline_ms() for s, p in self.peers.items() if s not in self.down]
        deadlines = [d for d in deadlines if d is not None]
        if not deadlines:
            return False
        if self.tracing and min(deadlines) > self.now:
            self.trace.append(f"t={min(deadlines)}")
        self.now = max(self.now, min(deadlines))
        for sid, peer in sorted(self.peers.items()):
            d = peer.next_deadline_ms()
            if d is not None and d <= self.now:
                peer.tick(self.now)
                self.drain(sid)
        return True

    def run_until(self, predicate, max_ms: int = 60_000) -> None:
        end = self.now + max_ms
        while not predicate():
            if not self.deliver_one():
                if self.now >= end or not self.advance():
                    raise AssertionError(f"condition not reached by t={self.now}: {self.describe()}")

    def settle(self, ms: int) -> None:
        """Run everything for `ms` of virtual time."""
        end = self.now + ms
        while True:
            while self.deliver_one():
                pass
            deadlines = [p.next_deadline_ms() for s, p in self.peers.items() if s not in self.down]
            deadlines = [d for d in deadlines if d is not None]
            if not deadlines or min(deadlines) > end:
                self.now = max(self.now, end)
                return
            self.advance()

    def _trace_ready(self, sid: int, peer: QuorumPeer, r) -> None:
        appends = [w.zxid for w in r.writes if isinstance(w, Append)]
        for w in r.writes:
            if not isinstance(w, Append):
                self.trace.append(f"  {sid} write {fmt_write(w)}")
        if appends:
            self.trace.append(f"  {sid} append {fmt_range(appends)}")
        if r.applies:
            self.trace.append(f"  {sid} apply {fmt_range([z for z, _ in r.applies])}")
        if r.reset:
            self.trace.append(f"  {sid} reset (rebuild from storage, replay <= {r.applied_zxid:#x})")
        if r.state_changed:
            lead = "" if peer.leader_sid is None else f" leader={peer.leader_sid}"
            self.trace.append(f"  {sid} {peer.state.name}{lead} epoch={peer.epoch}"
                              f"{' serving' if peer.serving else ''}")

    def take_trace(self) -> list[str]:
        out, self.trace = self.trace, []
        return out

    # ------------------------------------------------------------ views
    def live(self):
        return {s: p for s, p in self.peers.items() if s not in self.down}

    def leader(self) -> int | None:
        leaders = [s for s, p in self.live().items() if p.state == PeerState.LEADING and p.serving]
        assert len(leaders) <= 1 or len({self.peers[s].epoch for s in leaders}) == len(leaders)
        return max(leaders, key=lambda s: self.peers[s].epoch) if leaders else None

    def all_serving(self, sids=None) -> bool:
        sids = self.live() if sids is None else sids
        lead = self.leader()
        return lead is not None and all(self.peers[s].serving and self.peers[s].leader_sid == lead for s in sids)

    def describe(self) -> str:
        return "; ".join(f"{s}:{p.state.name}{'*' if p.serving else ''} e{p.epoch} last={p.last_zxid:#x} "
                         f"applied={p.applied_zxid:#x}" for s, p in sorted(self.live().items()))

    def propose(self, txn: bytes) -> int:
        lead = self.leader()
        assert lead is not None, self.describe()
        z = self.peers[lead].propose(txn)
        self.drain(lead)
        return z
