"""What the QuorumPeer and its two roles (leader.py, learner.py) share: the failure signal and the hooks.

The roles never import each other or the peer; the peer passes itself in as the role's `peer` and swaps
roles on every election decision (etcd's `r.step` swap).  A role reports "leave this role now" by raising
RoleFailed; the peer then goes LOOKING with Ready.reset (R3).

This module holds no protocol logic.
"""


class RoleFailed(Exception):
    """Leave LEADING/FOLLOWING/OBSERVING: a timeout, a lost quorum, a fatal packet, a rollover."""


class Role:
    """The hooks the peer calls on the current role."""

    serving = False  # True only in BROADCAST (reference section 3)

    def on_message(self, from_sid: int, msg, now_ms: int) -> None:
        raise NotImplementedError

    def tick(self, now_ms: int) -> None:
        raise NotImplementedError

    def on_persisted(self, now_ms: int) -> None:
        """More of the local log became durable."""

    def link_lost(self, sid: int, now_ms: int) -> None:
        """The link to `sid` broke."""

    def flush(self) -> None:
        """Called before ready() hands out the accumulated output (send batched frames now)."""

    def next_deadline_ms(self) -> int | None:
        raise NotImplementedError
