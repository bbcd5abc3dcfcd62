"""The ZAB peer packets as frozen values, and a compact binary codec for every peer message.

Each packet is a frozen slotted dataclass named after ZooKeeper's packet type (Leader.java constants):
discovery (FollowerInfo/ObserverInfo -> LeaderInfo -> AckEpoch), synchronisation (Diff/Trunc/Snap, then
Proposal/Commit, then NewLeader -> Ack -> UpToDate) and broadcast (Proposal/Ack/Commit/Inform, Ping,
Request, Revalidate, Sync).  Txns are opaque `(zxid, bytes)` pairs; the replica gives them meaning.

Batching: one Proposal or Inform frame carries many txns in zxid order; Ack and Commit mean "everything up
to and including this zxid", so one frame acknowledges or commits a whole group commit.

`encode(msg) -> bytes` / `decode(bytes) -> msg` give the frame body for the real transport (framing and
the sender's sid belong to the link).  It is coordcore's own format, not ZooKeeper's QuorumPacket: one
tag byte, then the fields as jute primitives.  `decode` raises ProtocolError on an unknown tag, a
truncated or over-long body, or a field out of range; it never returns a half-built message.

This module does not check protocol *order* (that is the roles' job) and does no I/O.
"""

from dataclasses import dataclass, fields
from typing import Any

from coordcore.errors import ProtocolError
from coordcore.wire.jute import Reader, Writer
from coordcore.zab.election import Notification, PeerState

PROTOCOL_VERSION = 0x10000  # ZooKeeper's Learner protocol version; checked on FOLLOWERINFO/OBSERVERINFO

Txn = tuple[int, bytes]


# ----------------------------------------------------------------------------------------- discovery
@dataclass(frozen=True, slots=True)
class FollowerInfo:
    """Voter -> leader on connect (paper: CEPOCH): the learner's durable acceptedEpoch."""
    sid: int
    accepted_epoch: int
    protocol_version: int = PROTOCOL_VERSION


@dataclass(frozen=True, slots=True)
class ObserverInfo:
    """Observer -> leader on connect; like FollowerInfo but never counted in a quorum."""
    sid: int
    accepted_epoch: int
    protocol_version: int = PROTOCOL_VERSION


@dataclass(frozen=True, slots=True)
class LeaderInfo:
    """Leader -> learner (paper: NEWEPOCH): the epoch e' the leader proposes to establish."""
    epoch: int


@dataclass(frozen=True, slots=True)
class AckEpoch:
    """Learner -> leader (paper: ACK-E): its durable last logged zxid and currentEpoch, or
    current_epoch = -1 if it had already accepted e' (it may not promise twice, but the leader
    still needs last_zxid to sync it)."""
    last_zxid: int
    current_epoch: int


# ------------------------------------------------------------------------------------------- sync
@dataclass(frozen=True, slots=True)
class Diff:
    """Leader -> learner: keep your log up to `zxid` (your own last zxid); txns after it follow."""
    zxid: int


@dataclass(frozen=True, slots=True)
class Trunc:
    """Leader -> learner: durably cut your log to zxid <= `zxid`, the last zxid we have in common."""
    zxid: int


@dataclass(frozen=True, slots=True)
class Snap:
    """Leader -> learner: replace your state by this snapshot of committed state at `zxid`."""
    zxid: int
    data: bytes


@dataclass(frozen=True, slots=True)
class NewLeader:
    """Leader -> learner after the whole sync history: zxid is (e', 0), never a real txn; last_zxid is
    the end of the history sent before it (the learner's log must end there: nothing was lost)."""
    zxid: int
    last_zxid: int


@dataclass(frozen=True, slots=True)
class UpToDate:
    """Leader -> learner once a quorum ACKed NEWLEADER (Medeiros: COMMIT-LD): start serving."""
    zxid: int


# -------------------------------------------------------------------------------------- broadcast
@dataclass(frozen=True, slots=True)
class Proposal:
    """Leader -> voter: txns to log, in zxid order, gap-free, directly after `prev_zxid` (the learner's
    log must end there, as in Raft's prevLogIndex: a lost or reordered frame is never papered over,
    even across an epoch boundary where the zxid counter alone cannot show a hole)."""
    txns: tuple[Txn, ...]
    prev_zxid: int


@dataclass(frozen=True, slots=True)
class Ack:
    """Voter -> leader: every txn up to `zxid` is durably logged.  Counter 0 = the NEWLEADER ACK."""
    zxid: int


@dataclass(frozen=True, slots=True)
class Commit:
    """Leader -> voter: every txn up to `zxid` is committed."""
    zxid: int


@dataclass(frozen=True, slots=True)
class Inform:
    """Leader -> observer: committed txns directly after `prev_zxid` (observers never see uncommitted
    proposals)."""
    txns: tuple[Txn, ...]
    prev_zxid: int


@dataclass(frozen=True, slots=True)
class Ping:
    """Leader -> learner every tick/2 with the leader's last proposed zxid and, once it sent that learner
    UPTODATE, its last committed zxid (0 before); the learner's reply echoes the zxid and carries the sessions touched since its last
    reply: ((session_id, timeout_ms), ...).  On a FIFO link every PROPOSAL/INFORM/COMMIT the PING names
    came before it, so a learner behind it lost a packet without seeing the link break."""
    zxid: int
    touches: tuple[tuple[int, int], ...] = ()
    committed_zxid: int = 0


@dataclass(frozen=True, slots=True)
class Request:
    """Learner -> leader: a forwarded client write, opaque to zab."""
    payload: bytes


@dataclass(frozen=True, slots=True)
class Revalidate:
    """Learner -> leader: a client reconnected here with this session; is it still valid?"""
    session_id: int
    timeout_ms: int


@dataclass(frozen=True, slots=True)
class RevalidateReply:
    """Leader -> learner: the replica's verdict on a Revalidate."""
    session_id: int
    valid: bool


@dataclass(frozen=True, slots=True)
class Sync:
    """Learner -> leader: a client `sync`; `token` is the learner's handle for it."""
    token: int


@dataclass(frozen=True, slots=True)
class SyncReply:
    """Leader -> learner: every proposal made before the Sync, up to `zxid`, has committed."""
    token: int
    zxid: int


ZabMessage = (FollowerInfo | ObserverInfo | LeaderInfo | AckEpoch | Diff | Trunc | Snap | NewLeader | UpToDate
              | Proposal | Ack | Commit | Inform | Ping | Request | Revalidate | RevalidateReply | Sync | SyncReply)

# ------------------------------------------------------------------------------------------ codec
# Field kinds: "l" long (signed 64), "i" int (signed 32), "b" bool, "y" bytes, "t" txn batch,
# "s" session touches, "e" PeerState.  The tag byte values are coordcore's own (stable: never reuse one).
_LAYOUT: dict[type, tuple[int, str]] = {
    Notification: (1, "lllell"),  # leader, zxid, election_epoch, state, sender, peer_epoch
    FollowerInfo: (11, "lli"),
    ObserverInfo: (16, "lli"),
    LeaderInfo: (17, "l"),
    AckEpoch: (18, "ll"),
    Diff: (13, "l"),
    Trunc: (14, "l"),
    Snap: (15, "ly"),
    NewLeader: (10, "ll"),
    UpToDate: (12, "l"),
    Proposal: (2, "tl"),
    Ack: (3, "l"),
    Commit: (4, "l"),
    Inform: (8, "tl"),
    Ping: (5, "lsl"),
    Request: (20, "y"),
    Revalidate: (6, "li"),
    RevalidateReply: (7, "lb"),
    Sync: (21, "l"),
    SyncReply: (22, "ll"),
}
_BY_TAG = {tag: (cls, kinds) for cls, (tag, kinds) in _LAYOUT.items()}
_FIELDS = {cls: tuple(f.name for f in fields(cls)) for cls in _LAYOUT}
MAX_BATCH = 1 << 20  # txns per frame; a larger count is garbage, not a batch


def encode(msg: Any) -> bytes:
    """The frame body of one peer message (Notification or ZAB packet)."""
    try:
        tag, kinds = _LAYOUT[type(msg)]
    except KeyError:
        raise TypeError(f"not a peer message: {msg!r}") from None
    w = Writer()
    w.raw(bytes((tag,)))
    for kind, name in zip(kinds, _FIELDS[type(msg)]):
        _write(w, kind, getattr(msg, name))
    return w.getvalue()


def decode(data: bytes, max_len: int = 64 << 20) -> Any:
    """The message in one frame body; ProtocolError if it is not exactly one well-formed message."""
    if not data:
        raise ProtocolError("empty peer message")
    entry = _BY_TAG.get(data[0])
    if entry is None:
        raise ProtocolError(f"unknown peer message tag {data[0]}")
    cls, kinds = entry
    r = Reader(data, 1, max_len=max_len)
    values = [_read(r, kind) for kind in kinds]
    if not r.at_end():
        raise ProtocolError(f"{cls.__name__}: {r.end - r.pos} trailing bytes")
    return cls(*values)


def _write(w: Writer, kind: str, v: Any) -> None:
    if kind == "l":
        w.long(v)
    elif kind == "i" or kind == "e":
        w.int(int(v))
    elif kind == "b":
        w.bool(v)
    elif kind == "y":
        w.buffer(v)
    elif kind == "t":
        w.int(len(v))
        for zxid, txn in v:
            w.long(zxid).buffer(txn)
    else:  # "s"
        w.int(len(v))
        for session_id, timeout_ms in v:
            w.long(session_id).int(timeout_ms)


def _read(r: Reader, kind: str) -> Any:
    if kind == "l":
        return r.long()
    if kind == "i":
        return r.int()
    if kind == "e":
        v = r.int()
        try:
            return PeerState(v)
        except ValueError:
            raise ProtocolError(f"bad peer state {v}") from None
    if kind == "b":
        r._need(1)
        if r.buf[r.pos] > 1:
            raise ProtocolError("bad boolean")
        return r.bool()
    if kind == "y":
        v = r.buffer()
        if v is None:
            raise ProtocolError("null buffer in a peer message")
        return v
    n = _count(r)
    if kind == "t":
        txns = []
        for _ in range(n):
            zxid = r.long()
            txn = r.buffer()
            if txn is None:
                raise ProtocolError("null txn in a batch")
            txns.append((zxid, txn))
        return tuple(txns)
    return tuple((r.long(), r.int()) for _ in range(n))


def _count(r: Reader) -> int:
    n = r.int()
    if n < 0 or n > MAX_BATCH:
        raise ProtocolError(f"bad batch length {n}")
    return n
