"""FastLeaderElection (FLE) as a pure state machine: votes in, notifications and a decision out.

Skeleton commit: the types and the API are final; the rules follow in the next commit.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass

from coordcore.zab.quorum import QuorumConfig


class PeerState(enum.IntEnum):
    """A server's election state; the values are ZooKeeper's wire values (ServerState ordinals)."""

    LOOKING = 0
    FOLLOWING = 1
    LEADING = 2
    OBSERVING = 3


@dataclass(frozen=True, slots=True)
class Vote:
    """A proposal for leader: the candidate's sid, its last logged zxid and its currentEpoch.

    Votes are ordered by (peer_epoch, zxid, leader) through `total_order_predicate`, never by the
    dataclass field order (which would compare the sid first).
    """

    leader: int
    zxid: int
    peer_epoch: int

    def __str__(self) -> str:
        return f"leader={self.leader} zxid=0x{self.zxid:x} peer_epoch={self.peer_epoch}"


# What a non-voter proposes: nobody.  Leader -1 is never a voter, so this vote never wins.
NO_VOTE = Vote(leader=-1, zxid=-1, peer_epoch=-1)


@dataclass(frozen=True, slots=True)
class Notification:
    """One FLE message.  `election_epoch` is the sender's logical clock (its round); `sender` is taken
    from the link by the host and carried here for convenience."""

    leader: int
    zxid: int
    election_epoch: int
    state: PeerState
    sender: int
    peer_epoch: int

    @property
    def vote(self) -> Vote:
        return Vote(self.leader, self.zxid, self.peer_epoch)

    def __str__(self) -> str:
        return (f"{PeerState(self.state).name} round={self.election_epoch} leader={self.leader} "
                f"zxid=0x{self.zxid:x} peer_epoch={self.peer_epoch}")


def total_order_predicate(new: Vote, current: Vote, quorum: QuorumConfig) -> bool:
    """True if `new` beats `current`: a non-voter never wins; otherwise (peer_epoch, zxid, leader) decides."""
    if not quorum.is_voter(new.leader):
        return False
    return (new.peer_epoch, new.zxid, new.leader) > (current.peer_epoch, current.zxid, current.leader)


class FastLeaderElection:
    """One server's election; see the module docstring for the rules."""

    def __init__(self, sid: int, quorum: QuorumConfig, *, finalize_wait_ms: int = 200,
                 min_notification_interval_ms: int = 200, max_notification_interval_ms: int = 60_000) -> None:
        self.sid = sid
        self.quorum = quorum
        self.finalize_wait_ms = finalize_wait_ms
        self.min_notification_interval_ms = min_notification_interval_ms
        self.max_notification_interval_ms = max_notification_interval_ms
        self.logical_clock = 0
        self.state = PeerState.LOOKING
        self.vote = NO_VOTE
        self.outbox: list[tuple[int, Notification]] = []
        self.decision: tuple[PeerState, Vote] | None = None

    def look(self, now_ms: int, last_zxid: int, current_epoch: int) -> None:
        raise NotImplementedError

    def receive(self, n: Notification, now_ms: int) -> None:
        raise NotImplementedError

    def tick(self, now_ms: int) -> None:
        raise NotImplementedError

    def next_deadline_ms(self) -> int | None:
        raise NotImplementedError

    def established(self, state: PeerState, vote: Vote) -> None:
        raise NotImplementedError

    def update_peer_epoch(self, epoch: int) -> None:
        raise NotImplementedError

    def take_messages(self) -> list[tuple[int, Notification]]:
        out, self.outbox = self.outbox, []
        return out

    def take_decision(self) -> tuple[PeerState, Vote] | None:
        decision, self.decision = self.decision, None
        return decision
