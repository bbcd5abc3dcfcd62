"""Quorum arithmetic for a static ensemble: voters, observers and strict majorities.

A quorum is more than half of the *voters*; observers (and any sid not in the configuration) never
count, so adding observers never changes which sets form a quorum.  Any two quorums intersect in at
least one voter, which is what election and ZAB safety rest on.

This module does not handle dynamic reconfiguration or hierarchical/weighted quorums (ZooKeeper's
QuorumHierarchical); every voter has weight 1.
"""
from typing import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class QuorumConfig:
    """The members of one ensemble: `voters` elect and acknowledge, `observers` only learn."""

    voters: frozenset[int]
    observers: frozenset[int] = frozenset()

    def __post_init__(self) -> None:
        # Accept any iterable for convenience but store frozensets, so the config is hashable.
        object.__setattr__(self, "voters", frozenset(self.voters))
        object.__setattr__(self, "observers", frozenset(self.observers))
        if not self.voters:
            raise ValueError("a quorum configuration needs at least one voter")
        both = self.voters & self.observers
        if both:
            raise ValueError(f"sids {sorted(both)} are both voters and observers")
        bad = [sid for sid in self.voters | self.observers if not isinstance(sid, int) or sid < 0]
        if bad:
            raise ValueError(f"sids must be non-negative integers, got {bad}")

    @property
    def size(self) -> int:
        """The number of voters (observers are not part of the quorum system)."""
        return len(self.voters)

    @property
    def quorum_size(self) -> int:
        """The smallest number of voters that forms a quorum: 2 of 3, 3 of 5, 4 of 7."""
        return len(self.voters) // 2 + 1

    @property
    def members(self) -> frozenset[int]:
        return self.voters | self.observers

    def is_voter(self, sid: int) -> bool:
        return sid in self.voters

    def is_observer(self, sid: int) -> bool:
        return sid in self.observers

    def is_member(self, sid: int) -> bool:
        return sid in self.voters or sid in self.observers

    def is_quorum(self, sids: Iterable[int]) -> bool:
        """True if the voters among `sids` are a strict majority of all voters; non-voters are ignored."""
        return 2 * len(self.voters.intersection(sids)) > len(self.voters)
