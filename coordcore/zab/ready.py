"""What a QuorumPeer hands its host: storage actions, messages, applies (the `Ready`), and what it starts from.

The peer never does I/O.  Everything it needs done comes out of `QuorumPeer.ready()` as one `Ready`, and
the host obeys these HOST RULES (the ordering obligations that make ZAB durable):

1. Execute `writes` in order.  An `Append` is buffered.  Any other write first syncs the Appends before
   it, then is itself done durably (epoch files: temp + fsync + rename + dir fsync).
2. Then send `messages`.  A message never depends on an Append of the same Ready (the peer waits for
   `persisted()` before it ACKs), only on the non-Append writes before it (acceptedEpoch before
   LEADERINFO / ACKEPOCH).
3. Sync the remaining Appends (maybe later, maybe on another thread), then call
   `persisted(last appended zxid)`.
4. Apply `applies` to the replica, then answer `synced`, in order.
5. If `reset`: after 1-2, rebuild the replica from storage: load the newest snapshot and replay the
   loaded txns with zxid <= `Ready.applied_zxid` (every one of them is committed and durable; this
   already covers the Ready's own `applies`, which are then NOT applied again).  The peer never applies
   uncommitted txns, so nothing above applied_zxid may be replayed: the peer itself emits those in
   `applies` once they commit.  The same rule holds when the host first builds the replica for a new
   QuorumPeer: replica = newest snapshot, nothing replayed (the peer's applied point starts there).

This module does not decide anything; it only names the values.
"""

from dataclasses import dataclass, field
from typing import NamedTuple


class Append(NamedTuple):
    """Buffer this txn at the end of the log.  Durable only once the host reports persisted().

    A named tuple, not a dataclass like the other writes: one is made per txn on every server's hot path,
    and a tuple is made in two thirds of the time."""
    zxid: int
    txn: bytes


@dataclass(frozen=True, slots=True)
class SetAcceptedEpoch:
    """Durably write acceptedEpoch (the epoch this server promised)."""
    epoch: int


@dataclass(frozen=True, slots=True)
class SetCurrentEpoch:
    """Durably write currentEpoch (the epoch whose history this server adopted)."""
    epoch: int


@dataclass(frozen=True, slots=True)
class Truncate:
    """Durably cut the log to zxid <= `zxid`, and drop every snapshot newer than `zxid` (reference R5)."""
    zxid: int


@dataclass(frozen=True, slots=True)
class InstallSnapshot:
    """Durably replace the whole history by this snapshot: save it as the newest snapshot at `zxid` and
    discard every logged txn (those after it arrive as Appends).  load() then returns snapshot_zxid ==
    zxid and no txns until new Appends."""
    zxid: int
    data: bytes


Write = Append | SetAcceptedEpoch | SetCurrentEpoch | Truncate | InstallSnapshot


@dataclass(frozen=True, slots=True)
class PeerDurable:
    """What storage.load() gave the host when it built the peer: the durable epochs, the newest snapshot's
    zxid and the logged txns after it, ascending.  Must satisfy acceptedEpoch >= currentEpoch >=
    epoch(last zxid) (reference I6); the peer refuses to start otherwise."""
    accepted_epoch: int = 0
    current_epoch: int = 0
    snapshot_zxid: int = 0
    txns: tuple[tuple[int, bytes], ...] | list[tuple[int, bytes]] = ()


@dataclass(slots=True)
class Ready:
    """Everything the peer accumulated since the last ready(); obey the HOST RULES of the module docstring.

    writes        storage actions, in order (Append is buffered; the others are durable before `messages`)
    messages      [(to_sid, msg)]: Notifications and ZAB packets, sent AFTER the non-Append writes
    applies       [(zxid, txn)]: committed AND locally durable, in zxid order, gap-free
    requests      leader: [(from_sid, payload)] forwarded client writes for the replica to prep and propose
    touches       leader: [(session_id, timeout_ms)] touched sessions (from learners' pings and touch())
    revalidations leader: [(from_sid, session_id, timeout_ms)] for the replica to judge -> revalidated()
    revalidated   [(session_id, valid)]: answers to this server's revalidate() calls
    synced        [token]: sync()s that may now be answered (after `applies` of this Ready)
    reset         rebuild the replica from storage (rule 5): after TRUNC/SNAP, an abandoned sync, or
                  leaving LEADING/FOLLOWING/OBSERVING (ZOOKEEPER-2845, -3642)
    state_changed state / serving / leader_sid changed since the last ready()
    applied_zxid  the peer's applied point as of this Ready (the replay bound of a reset, rule 5)
    """
    writes: list = field(default_factory=list)
    messages: list = field(default_factory=list)
    applies: list = field(default_factory=list)
    requests: list = field(default_factory=list)
    touches: list = field(default_factory=list)
    revalidations: list = field(default_factory=list)
    revalidated: list = field(default_factory=list)
    synced: list = field(default_factory=list)
    reset: bool = False
    state_changed: bool = False
    applied_zxid: int = 0

    def is_empty(self) -> bool:
        return not (self.writes or self.messages or self.applies or self.requests or self.touches
                    or self.revalidations or self.revalidated or self.synced or self.reset
                    or self.state_changed)
