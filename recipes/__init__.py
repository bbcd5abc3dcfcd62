"""Coordination recipes over kazoo: a fair lock, a non-fair lock and leader election.

They use only the public ZooKeeper API (through kazoo), so they run unchanged against coordcore or an
Apache ZooKeeper ensemble. This package never imports coordcore.
"""

from recipes.election import LeaderElection, Leadership
from recipes.errors import (
    AlreadyHeldError,
    CancelledError,
    ClientNotStartedError,
    NotHeldError,
    OwnershipLostError,
    RecipeError,
)
from recipes.lock import Lock, NonFairLock

__all__ = [
    "AlreadyHeldError",
    "CancelledError",
    "ClientNotStartedError",
    "LeaderElection",
    "Leadership",
    "Lock",
    "NonFairLock",
    "NotHeldError",
    "OwnershipLostError",
    "RecipeError",
]
