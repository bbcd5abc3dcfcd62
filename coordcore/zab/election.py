"""FastLeaderElection (FLE) as a pure state machine: notifications in, notifications and a decision out.

This is ZooKeeper's FastLeaderElection with the threads, queues and sockets taken out.  The host calls
`look()` when the server enters LOOKING, `receive()` for every notification a link delivers (its own
included: a server's vote reaches its own recvset through the normal path), and `tick()` when
`next_deadline_ms()` has passed.  It drains `outbox` (take_messages) and `decision` (take_decision).
Time is only ever an argument.

Theory of operation (the rules of the reference, section 4; ZooKeeper names in brackets):

* Vote order [totalOrderPredicate]: a candidate that is not a voter never wins; otherwise the higher
  (peer_epoch, zxid, sid) wins.  The currentEpoch comes first so that a stale uncommitted tail of an old
  epoch cannot beat a server that adopted a newer epoch with a shorter log.
* Rounds [logicalclock]: `look()` increments the logical clock and proposes (me, lastLoggedZxid,
  currentEpoch) to every voter.  A LOOKING notification from a higher round makes us jump to that round,
  forget the votes of the old round and propose the better of our *initial* vote and the sender's; one
  from a lower round is not recorded, but we answer it with our proposal so the sender catches up; one
  from our round is recorded, and adopted if it beats our proposal.
* Termination: when a quorum of the votes recorded this round equals our proposal (leader, zxid, round,
  peer_epoch all equal), we wait for `finalize_wait_ms` of silence [finalizeWait].  A notification that
  does not beat our proposal is dropped and restarts the silence; one that beats it ends the wait and is
  processed as usual.  Silence decides: LEADING if we proposed ourselves, else FOLLOWING (or OBSERVING).
* Resend: if no notification arrives for a notification interval, resend our proposal to every voter
  and double the interval (200 ms up to 60 s); only a new `look()` resets it.
* Joining an established ensemble [receivedFollowingNotification, checkLeader]: FOLLOWING and LEADING
  notifications are recorded in `outofelection` (and, when from our round, in recvset).  We follow L once
  a quorum of those agrees on (leader, peer_epoch) -- zxid and round may legitimately differ between
  members (ZOOKEEPER-1805) -- and L itself said it is LEADING (or, if L is us, the round is ours).  That
  last check stops a restarted server from following a dead leader the others still name
  (ZOOKEEPER-975).  After sync every member rewrites its vote's peer_epoch (`update_peer_epoch`), so all
  members report the same (leader, peer_epoch) to late joiners (ZOOKEEPER-1732).
* Not LOOKING: a LOOKING notification from a voter is answered with our current vote, its round and our
  state; everything else is ignored.
* Non-voters: notifications from a non-voter are answered at once with our current vote and otherwise
  ignored; votes that name a non-voter are ignored.  An observer proposes nobody (`NO_VOTE`), sends to
  the voters only, ignores LOOKING notifications and learns the leader only from the FOLLOWING/LEADING
  rule above, so it never changes an outcome.

Deliberate differences from ZooKeeper 3.8:
* A non-voter never answers a notification.  ZooKeeper's observers answer LOOKING notifications while
  OBSERVING, and a LOOKING voter answers every observer notification at once, so a late reply can
  bounce between the two until the voter decides.  No voter ever needs an observer's answer.
* Answers to non-voters while LOOKING carry our proposal (ZooKeeper sends the peer's stale
  currentVote); observers ignore LOOKING answers either way.
* Notifications before the first `look()` are ignored (ZooKeeper has no such window).
* Reconfiguration, the two-node oracle (ZOOKEEPER-3922) and the "no valid database" (-1 zxid) guard
  are not implemented.

This module does not open connections, persist anything (nothing in FLE is durable) or run ZAB; the
peer (coordcore.zab.peer) switches to the leader or learner role on a decision.
"""
import enum
from dataclasses import dataclass, replace

from coordcore.errors import ProtocolError
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
        try:
            state = PeerState(self.state).name
        except ValueError:
            state = f"state={self.state!r}"
        return (f"{state} round={self.election_epoch} leader={self.leader} "
                f"zxid=0x{self.zxid:x} peer_epoch={self.peer_epoch}")


def total_order_predicate(new: Vote, current: Vote, quorum: QuorumConfig) -> bool:
    """True if `new` beats `current`: a non-voter never wins; otherwise (peer_epoch, zxid, leader) decides."""
    if not quorum.is_voter(new.leader):
        return False
    return (new.peer_epoch, new.zxid, new.leader) > (current.peer_epoch, current.zxid, current.leader)


@dataclass(frozen=True, slots=True)
class _Ballot:
    """A vote as recorded in recvset/outofelection: what the sender proposed, in which round and state."""

    leader: int
    zxid: int
    election_epoch: int
    peer_epoch: int
    state: PeerState

    @staticmethod
    def of(n: Notification, state: PeerState) -> "_Ballot":
        return _Ballot(n.leader, n.zxid, n.election_epoch, n.peer_epoch, state)


def _same_vote(a: _Ballot, b: _Ballot) -> bool:
    """ZooKeeper's Vote.equals.  If either side is LOOKING the whole vote must match; between servers out
    of the election only (leader, peer_epoch) matter, since their zxid and round legitimately differ
    (ZOOKEEPER-1805)."""
    if a.state == PeerState.LOOKING or b.state == PeerState.LOOKING:
        return (a.leader, a.zxid, a.election_epoch, a.peer_epoch) == (b.leader, b.zxid, b.election_epoch, b.peer_epoch)
    return (a.leader, a.peer_epoch) == (b.leader, b.peer_epoch)


class FastLeaderElection:
    """One server's leader election.  Attributes the host may read: `logical_clock`, `state`, `vote` (our
    proposal while LOOKING, the decided or established vote otherwise), `outbox`, `decision`."""

    def __init__(self, sid: int, quorum: QuorumConfig, *, finalize_wait_ms: int = 200,
                 min_notification_interval_ms: int = 200, max_notification_interval_ms: int = 60_000) -> None:
        if not quorum.is_member(sid):
            raise ValueError(f"sid {sid} is not a member of {quorum}")
        if not 0 < min_notification_interval_ms <= max_notification_interval_ms:
            raise ValueError("need 0 < min_notification_interval_ms <= max_notification_interval_ms")
        self.sid = sid
        self.quorum = quorum
        self.finalize_wait_ms = finalize_wait_ms
        self.min_notification_interval_ms = min_notification_interval_ms
        self.max_notification_interval_ms = max_notification_interval_ms
        self.is_voter = quorum.is_voter(sid)

        self.logical_clock = 0
        self.state = PeerState.LOOKING
        self.vote = NO_VOTE
        self.outbox: list[tuple[int, Notification]] = []
        self.decision: tuple[PeerState, Vote] | None = None

        self._started = False               # look() or established() was called at least once
        self._initial_vote = NO_VOTE        # (me, lastLoggedZxid, currentEpoch) of the current look()
        self._vote_round = 0                # the round `vote` was decided in (answers carry it)
        self._recvset: dict[int, _Ballot] = {}        # votes of the current round, by sender
        self._outofelection: dict[int, _Ballot] = {}  # FOLLOWING/LEADING votes of any round, by sender
        self._notification_interval_ms = min_notification_interval_ms
        self._resend_at_ms: int | None = None
        self._finalize_at_ms: int | None = None       # set while in the final wait

    # ------------------------------------------------------------------ inputs

    def look(self, now_ms: int, last_zxid: int, current_epoch: int) -> None:
        """Start a new election: a new round, our initial vote, sent to every voter (us included)."""
        self._started = True
        self.logical_clock += 1
        self.state = PeerState.LOOKING
        self.decision = None
        self._initial_vote = Vote(self.sid, last_zxid, current_epoch) if self.is_voter else NO_VOTE
        self.vote = self._initial_vote
        self._vote_round = self.logical_clock
        self._recvset.clear()
        self._outofelection.clear()
        self._finalize_at_ms = None
        self._notification_interval_ms = self.min_notification_interval_ms
        self._resend_at_ms = now_ms + self._notification_interval_ms
        self._send_notifications()

    def validate(self, n: Notification) -> None:
        """Raise ProtocolError if `n` cannot be valid (what receive() would raise)."""
        self._validate(n)

    def receive(self, n: Notification, now_ms: int) -> None:
        """One notification from the link to `n.sender`.  Raises ProtocolError if it cannot be valid."""
        state = self._validate(n)
        if not self._started:
            return
        if not self.quorum.is_voter(n.sender):
            # A non-voter only wants to learn the leader: answer at once, never count it (reference 4.3, 9).
            self._answer(n.sender)
            return
        if self.state != PeerState.LOOKING:
            self.on_notification_while_established(n, state)
            return
        if state == PeerState.LOOKING and n.election_epoch < self.logical_clock:
            # ZooKeeper's receiver thread answers a lagging LOOKING sender with our proposal, even during
            # the final wait; the election loop then ignores the notification.
            self._answer(n.sender)
        if not self.quorum.is_voter(n.leader):
            return  # a vote for a non-voter (an observer, an unknown sid) is ignored (E7)
        if self._finalize_at_ms is not None:
            if not total_order_predicate(n.vote, self.vote, self.quorum):
                self._finalize_at_ms = now_ms + self.finalize_wait_ms  # dropped; the silence starts again
                return
            self._finalize_at_ms = None  # a better vote ends the wait and is processed like any other
        self._resend_at_ms = now_ms + self._notification_interval_ms
        if state == PeerState.LOOKING:
            if self.is_voter:
                self.on_looking_notification(n, now_ms)
        elif state in (PeerState.FOLLOWING, PeerState.LEADING):
            self.on_established_notification(n, state)
        # OBSERVING notifications come only from non-voters, answered above.

    def tick(self, now_ms: int) -> None:
        """Decide after the final wait's silence, or resend after a quiet notification interval."""
        if not self._started or self.state != PeerState.LOOKING:
            return
        if self._finalize_at_ms is not None:
            if now_ms >= self._finalize_at_ms:
                self.on_finalize_wait_timeout()
            return
        if self._resend_at_ms is not None and now_ms >= self._resend_at_ms:
            self.on_notification_timeout(now_ms)

    def next_deadline_ms(self) -> int | None:
        """The earliest time tick() has something to do, or None (not LOOKING)."""
        if not self._started or self.state != PeerState.LOOKING:
            return None
        if self._finalize_at_ms is not None:
            return self._finalize_at_ms  # no resend during the final wait (ZooKeeper's loop is blocked in it)
        return self._resend_at_ms

    def established(self, state: PeerState, vote: Vote) -> None:
        """The peer is FOLLOWING, LEADING or OBSERVING with this vote (after a decision, or set up directly).
        From now on LOOKING voters are answered with it."""
        state = PeerState(state)
        if state == PeerState.LOOKING:
            raise ValueError("established() takes FOLLOWING, LEADING or OBSERVING; use look() to start LOOKING")
        expected = (PeerState.OBSERVING if not self.is_voter
                    else PeerState.LEADING if vote.leader == self.sid else PeerState.FOLLOWING)
        if state != expected:
            raise ValueError(f"sid {self.sid} with leader {vote.leader} must be {expected.name}, not {state.name}")
        if not self.quorum.is_voter(vote.leader):
            raise ValueError(f"leader {vote.leader} is not a voter")
        self._started = True
        self.state = state
        self.vote = vote
        self._vote_round = self.logical_clock
        self._finalize_at_ms = None
        self._resend_at_ms = None

    def update_peer_epoch(self, epoch: int) -> None:
        """After sync, report the new epoch in our vote so late joiners see one (leader, peer_epoch)
        from every member (ZOOKEEPER-1732).  Leader: after the NEWLEADER quorum; learner: after UPTODATE."""
        if self.state == PeerState.LOOKING:
            raise ValueError("update_peer_epoch() is for a server out of the election (FOLLOWING/LEADING/OBSERVING)")
        self.vote = replace(self.vote, peer_epoch=epoch)

    def take_messages(self) -> list[tuple[int, Notification]]:
        out, self.outbox = self.outbox, []
        return out

    def take_decision(self) -> tuple[PeerState, Vote] | None:
        decision, self.decision = self.decision, None
        return decision

    # ------------------------------------------------------------------ handlers

    def on_looking_notification(self, n: Notification, now_ms: int) -> None:
        """A LOOKING vote from a voter for a voter, while we are LOOKING (reference 4.3, 4.4)."""
        if n.election_epoch > self.logical_clock:
            # A newer round: forget this round's votes, and propose the better of our initial vote and
            # the sender's -- not of our current proposal, which belonged to the old round.
            self.logical_clock = n.election_epoch
            self._recvset.clear()
            better = total_order_predicate(n.vote, self._initial_vote, self.quorum)
            self.vote = n.vote if better else self._initial_vote
            self._send_notifications()
        elif n.election_epoch < self.logical_clock:
            return  # a stale round; already answered in receive()
        elif total_order_predicate(n.vote, self.vote, self.quorum):
            self.vote = n.vote
            self._send_notifications()
        self._recvset[n.sender] = _Ballot.of(n, PeerState.LOOKING)
        mine = _Ballot(self.vote.leader, self.vote.zxid, self.logical_clock, self.vote.peer_epoch, PeerState.LOOKING)
        if self._has_quorum(self._recvset, mine):
            self._finalize_at_ms = now_ms + self.finalize_wait_ms

    def on_established_notification(self, n: Notification, state: PeerState) -> None:
        """A FOLLOWING or LEADING vote while we are LOOKING: maybe an ensemble we should join (4.5)."""
        ballot = _Ballot.of(n, state)
        if n.election_epoch == self.logical_clock:
            self._recvset[n.sender] = ballot
            if self._has_quorum(self._recvset, ballot) and self._check_leader(self._recvset, n.leader, n.election_epoch):
                self._decide(n.vote, n.election_epoch)
                return
        # outofelection holds the FOLLOWING/LEADING votes of every round, this one included (ZOOKEEPER-1732).
        self._outofelection[n.sender] = ballot
        if self._has_quorum(self._outofelection, ballot) and self._check_leader(self._outofelection, n.leader, n.election_epoch):
            self.logical_clock = n.election_epoch
            self._decide(n.vote, n.election_epoch)

    def on_notification_while_established(self, n: Notification, state: PeerState) -> None:
        """We are out of the election: tell a LOOKING voter whom we follow or that we lead."""
        if state == PeerState.LOOKING:
            self._answer(n.sender)

    def on_finalize_wait_timeout(self) -> None:
        """finalize_wait_ms passed without a better vote: our proposal is the outcome (4.4)."""
        self._decide(self.vote, self.logical_clock)

    def on_notification_timeout(self, now_ms: int) -> None:
        """Nothing arrived for a notification interval: resend our proposal and back off (4.4)."""
        self._send_notifications()
        self._notification_interval_ms = min(2 * self._notification_interval_ms, self.max_notification_interval_ms)
        self._resend_at_ms = now_ms + self._notification_interval_ms

    # ------------------------------------------------------------------ helpers

    def _validate(self, n: Notification) -> PeerState:
        try:
            state = PeerState(n.state)
        except ValueError:
            raise ProtocolError(f"notification from sid {n.sender} has an unknown state {n.state!r}") from None
        if not self.quorum.is_member(n.sender):
            raise ProtocolError(f"notification from sid {n.sender}, which is not a member of the ensemble")
        return state

    def _has_quorum(self, votes: dict[int, _Ballot], vote: _Ballot) -> bool:
        return self.quorum.is_quorum(sid for sid, b in votes.items() if _same_vote(vote, b))

    def _check_leader(self, votes: dict[int, _Ballot], leader: int, election_epoch: int) -> bool:
        """ZooKeeper's checkLeader: another server is leader only if it said so itself (LEADING); we are
        leader only if the others' votes are from our own round.  Stops a quorum from electing a dead
        leader that others still name."""
        if leader != self.sid:
            own = votes.get(leader)
            return own is not None and own.state == PeerState.LEADING
        return self.logical_clock == election_epoch

    def _decide(self, vote: Vote, election_epoch: int) -> None:
        if vote.leader == self.sid:
            self.state = PeerState.LEADING
        else:
            self.state = PeerState.FOLLOWING if self.is_voter else PeerState.OBSERVING
        self.vote = vote
        self._vote_round = election_epoch
        self._finalize_at_ms = None
        self._resend_at_ms = None
        self.decision = (self.state, vote)

    def _notification(self, vote: Vote, election_epoch: int) -> Notification:
        return Notification(vote.leader, vote.zxid, election_epoch, self.state, self.sid, vote.peer_epoch)

    def _send_notifications(self) -> None:
        """Our proposal to every voter, ourselves included, in sid order (deterministic traces)."""
        n = self._notification(self.vote, self.logical_clock)
        self.outbox.extend((to, n) for to in sorted(self.quorum.voters))

    def _answer(self, to: int) -> None:
        """Our current vote to one server.  A non-voter never answers: no voter needs its view, and two
        servers answering each other's answers would never stop."""
        if not self.is_voter:
            return
        round_ = self.logical_clock if self.state == PeerState.LOOKING else self._vote_round
        self.outbox.append((to, self._notification(self.vote, round_)))
