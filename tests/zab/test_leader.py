"""The leader role, rule by rule (reference sections 5-8), on a QuorumPeer put straight into LEADING.

Leader 3 of voters {1,2,3} (or {1..5}) starts with acceptedEpoch = currentEpoch = 2 and the history
1.1..1.5, 2.1..2.3 unless a test says otherwise.
"""
from __future__ import annotations

import pytest

from coordcore.zab import messages as m
from coordcore.zab.election import PeerState
from coordcore.zab.peer import NotBroadcasting
from coordcore.zab.ready import Append, SetAcceptedEpoch, SetCurrentEpoch
from role_env import (INIT_LIMIT, SYNC_LIMIT, TICK_MS, Z, appended, enter, make_peer, non_appends, txns,
                      zab)

HISTORY = txns(1, 1, 5) + txns(2, 1, 3)


def leader(voters=(1, 2, 3), observers=(), **kw):
    kw.setdefault("accepted", 2)
    kw.setdefault("current", 2)
    kw.setdefault("log", HISTORY)
    p = make_peer(3, voters, observers, **kw)
    enter(p, PeerState.LEADING, 3)
    return p


def establish(p, sid=1, last=Z(2, 3), current=2, accepted=2):
    p.receive(sid, m.FollowerInfo(sid, accepted), 0)
    p.receive(sid, m.AckEpoch(last, current), 0)
    return p.ready()


def broadcasting(voters=(1, 2, 3), observers=(), followers=(1,), **kw):
    p = leader(voters, observers, **kw)
    for sid in followers:
        p.receive(sid, m.FollowerInfo(sid, 2), 0)
    for sid in followers:
        p.receive(sid, m.AckEpoch(Z(2, 3), 2), 0)
    for sid in followers:
        p.receive(sid, m.Ack(Z(3, 0)), 0)
    assert p.serving
    p.ready()
    return p


# ------------------------------------------------------------------------------------------ discovery
def test_no_leaderinfo_before_a_quorum_then_epoch_is_persisted_before_it_is_sent():
    p = leader(voters=(1, 2, 3, 4, 5))
    p.receive(1, m.FollowerInfo(1, 7), 0)
    r = p.ready()
    assert zab(r) == [] and r.writes == []          # leader + 1 of 5 is no quorum
    p.receive(2, m.FollowerInfo(2, 4), 0)
    r = p.ready()
    assert r.writes == [SetAcceptedEpoch(8)]        # e' = max(7, 4, own 2) + 1, durable before sending
    assert zab(r) == [(1, m.LeaderInfo(8)), (2, m.LeaderInfo(8))]
    p.receive(4, m.FollowerInfo(4, 5), 0)           # late learners get the same e'
    assert zab(p.ready()) == [(4, m.LeaderInfo(8))]


def test_observers_never_count_towards_the_epoch_quorum():
    p = leader(voters=(1, 2, 3), observers=(4,))
    p.receive(4, m.ObserverInfo(4, 2), 0)
    assert zab(p.ready()) == []
    p.receive(1, m.FollowerInfo(1, 2), 0)
    assert {to for to, _ in zab(p.ready())} == {1, 4}


@pytest.mark.parametrize("msg", [m.FollowerInfo(4, 0), m.ObserverInfo(1, 0), m.FollowerInfo(2, 0),
                                 m.FollowerInfo(1, 0, protocol_version=1)])
def test_a_bad_learner_info_drops_that_learner_only(msg):
    p = leader(observers=(4,))
    p.receive(1 if msg.sid != 4 else 4, msg, 0)  # wrong role, sid mismatch, or an unknown version
    p.receive(1, m.Ack(Z(2, 1)), 0)
    r = p.ready()
    assert zab(r) == [] and p.state == PeerState.LEADING


def test_ackepoch_quorum_persists_current_epoch_then_syncs():
    p = leader()
    r = establish(p)
    assert non_appends(r) == [SetAcceptedEpoch(3), SetCurrentEpoch(3)]
    assert zab(r)[-1] == (1, m.NewLeader(Z(3, 0), Z(2, 3)))


def test_an_ackepoch_of_minus_one_does_not_count():
    p = leader()
    p.receive(1, m.FollowerInfo(1, 3), 0)   # it already promised e' = 3 ... to another leader
    p.receive(1, m.AckEpoch(Z(2, 3), -1), 0)
    r = p.ready()
    assert SetCurrentEpoch(3) not in r.writes and all(not isinstance(x, m.NewLeader) for _, x in zab(r))


@pytest.mark.parametrize("current, last", [(3, Z(1, 1)), (2, Z(2, 4))])
def test_a_learner_ahead_of_the_leader_makes_it_abdicate(current, last):
    """Section 5 step 4: FLE picked the wrong server."""
    p = leader()
    p.receive(1, m.FollowerInfo(1, 2), 0)
    p.receive(1, m.AckEpoch(last, current), 0)
    r = p.ready()
    assert p.state == PeerState.LOOKING and r.reset and SetCurrentEpoch(3) not in r.writes


# ---------------------------------------------------------------------------------------------- sync
SYNC_TABLE = [
    # (learner p, ackepoch epoch, expected head, zxids shipped as the Proposal)
    ("equal: empty DIFF", Z(2, 3), 2, m.Diff(Z(2, 3)), []),
    ("behind, in window: DIFF", Z(1, 5), 1, m.Diff(Z(1, 5)), [Z(2, 1), Z(2, 2), Z(2, 3)]),
    ("empty learner: DIFF from 0", 0, 0, m.Diff(0), [z for z, _ in HISTORY]),
    ("divergent epoch-1 tail: TRUNC to the last common zxid", Z(1, 8), 1, m.Trunc(Z(1, 5)),
     [Z(2, 1), Z(2, 2), Z(2, 3)]),
    ("ahead of the leader (already promised e'): TRUNC to its last", Z(2, 5), -1, m.Trunc(Z(2, 3)), []),
]


@pytest.mark.parametrize("why, p_zxid, epoch, head, shipped", SYNC_TABLE, ids=[r[0] for r in SYNC_TABLE])
def test_sync_choice(why, p_zxid, epoch, head, shipped):
    p = leader()
    if epoch == -1:  # count a second voter so the -1 learner still gets synced
        establish(p, sid=2)
        p.receive(1, m.FollowerInfo(1, 3), 0)
    else:
        p.receive(1, m.FollowerInfo(1, 2), 0)
    p.receive(1, m.AckEpoch(p_zxid, epoch), 0)
    to_1 = [x for to, x in zab(p.ready()) if to == 1 and not isinstance(x, m.LeaderInfo)]
    assert to_1[0] == head
    proposals = [z for x in to_1 if isinstance(x, m.Proposal) for z, _ in x.txns]
    assert proposals == shipped
    # The whole history is committed by the NEWLEADER quorum, so it ships with a Commit of its end,
    # and NEWLEADER comes last (ZOOKEEPER-3104).
    assert to_1[-2:] == [m.Commit(Z(2, 3)), m.NewLeader(Z(3, 0), Z(2, 3))]


def test_learner_older_than_the_window_gets_a_snapshot_then_the_txns_after_it():
    p = leader(snapshot_zxid=Z(1, 3), log=HISTORY[3:], snapshot=(Z(1, 3), b"tree@1.3"))
    p.receive(1, m.FollowerInfo(1, 1), 0)
    p.receive(1, m.AckEpoch(Z(1, 1), 1), 0)
    to_1 = [x for to, x in zab(p.ready()) if to == 1][1:]
    assert to_1[0] == m.Snap(Z(1, 3), b"tree@1.3")
    assert [z for z, _ in to_1[1].txns] == [Z(1, 4), Z(1, 5), Z(2, 1), Z(2, 2), Z(2, 3)]


def test_newleader_quorum_activates_and_sends_uptodate():
    p = leader()
    establish(p)
    assert not p.serving and p.next_zxid() is None
    with pytest.raises(NotBroadcasting):
        p.propose(b"too early")   # I8: no proposal before the NEWLEADER quorum
    p.receive(1, m.Ack(Z(3, 0)), 0)
    r = p.ready()
    assert p.serving and r.state_changed and zab(r) == [(1, m.UpToDate(Z(3, 0)))]
    assert [z for z, _ in r.applies] == [z for z, _ in HISTORY]   # the adopted history is committed
    assert p.fle.vote.peer_epoch == 3                                # ZOOKEEPER-1732
    assert p.next_zxid() == Z(3, 1)


def test_newleader_quorum_not_reached_within_init_limit_abdicates():
    p = leader(voters=(1, 2, 3, 4, 5))
    establish(p, 1)
    establish(p, 2)
    p.receive(1, m.Ack(Z(3, 0)), 0)
    p.tick(INIT_LIMIT * TICK_MS - 1)
    assert p.state == PeerState.LEADING
    p.tick(INIT_LIMIT * TICK_MS)
    assert p.state == PeerState.LOOKING and p.ready().reset


def test_no_followers_within_init_limit_abdicates():
    p = leader()
    p.tick(INIT_LIMIT * TICK_MS)
    assert p.state == PeerState.LOOKING


# ----------------------------------------------------------------------------------------- broadcast
def test_commit_needs_the_leaders_own_durable_ack():
    p = broadcasting()
    z1, z2 = p.propose(b"a"), p.propose(b"b")
    r = p.ready()
    assert appended(r) == [z1, z2]
    assert zab(r) == [(1, m.Proposal(((z1, b"a"), (z2, b"b")), Z(2, 3)))]   # one frame for the batch
    p.receive(1, m.Ack(z2), 0)
    assert zab(p.ready()) == []          # follower + an undurable leader is no quorum
    p.persisted(z1)
    r = p.ready()
    assert zab(r) == [(1, m.Commit(z1))] and r.applies == [(z1, b"a")]
    p.persisted(z2)
    assert zab(p.ready()) == [(1, m.Commit(z2))]


def test_observers_get_inform_of_committed_txns_only():
    p = broadcasting(observers=(4,), followers=(1,))
    p.receive(4, m.ObserverInfo(4, 2), 0)
    p.receive(4, m.AckEpoch(Z(2, 3), 2), 0)
    p.receive(4, m.Ack(Z(3, 0)), 0)
    p.ready()
    z = p.propose(b"x")
    r = p.ready()
    assert [to for to, x in zab(r)] == [1]   # no PROPOSAL to the observer
    p.persisted(z)
    p.receive(1, m.Ack(z), 0)
    assert zab(p.ready()) == [(1, m.Commit(z)), (4, m.Inform(((z, b"x"),), Z(2, 3)))]


def test_late_voter_gets_outstanding_proposals_observer_does_not():
    p = broadcasting(voters=(1, 2, 3), observers=(4,), followers=(1,))
    z = p.propose(b"pending")
    p.ready()
    to_2 = [x for to, x in zab(establish(p, sid=2)) if to == 2]
    assert to_2[1:] == [m.Diff(Z(2, 3)), m.Proposal(((z, b"pending"),), Z(2, 3)), m.Commit(Z(2, 3)),
                        m.NewLeader(Z(3, 0), z)]
    p.receive(4, m.ObserverInfo(4, 2), 0)
    p.receive(4, m.AckEpoch(Z(2, 3), 2), 0)
    to_4 = [x for to, x in zab(p.ready()) if to == 4]
    assert to_4[1:] == [m.Diff(Z(2, 3)), m.Commit(Z(2, 3)), m.NewLeader(Z(3, 0), Z(2, 3))]


def test_a_proposal_ack_overtaking_the_newleader_ack_counts():
    """ZOOKEEPER-4394/-4685: the leader must accept an ACK that overtakes the NEWLEADER ACK."""
    p = broadcasting(voters=(1, 2, 3, 4, 5), followers=(1, 2))
    z = p.propose(b"x")
    p.persisted(z)
    establish(p, sid=4, last=Z(2, 3))
    p.ready()
    p.receive(4, m.Ack(z), 0)
    assert (1, m.Commit(z)) not in zab(p.ready())   # leader + 4 = 2 of 5
    p.receive(1, m.Ack(z), 0)
    assert (1, m.Commit(z)) in zab(p.ready())


def test_acks_are_up_to_and_commits_go_in_zxid_order():
    p = broadcasting()
    zs = [p.propose(b"%d" % i) for i in range(3)]
    p.persisted(zs[-1])
    p.ready()
    p.receive(1, m.Ack(zs[2]), 0)
    r = p.ready()
    assert zab(r) == [(1, m.Commit(zs[2]))] and [z for z, _ in r.applies] == zs
    p.receive(1, m.Ack(Z(3, 99)), 0)                  # an unknown zxid: ignored
    assert zab(p.ready()) == []


def test_leader_abdicates_when_its_learners_fall_silent():
    p = broadcasting()
    t = SYNC_LIMIT * TICK_MS
    p.receive(1, m.Ping(0), t - 1)                    # any packet extends the deadline
    p.tick(t + TICK_MS)
    assert p.state == PeerState.LEADING
    p.tick(2 * t + TICK_MS)
    assert p.state == PeerState.LOOKING


def test_pings_every_half_tick_and_touches_come_back():
    p = broadcasting()
    p.tick(TICK_MS // 2)
    assert (1, m.Ping(Z(3, 0), (), Z(2, 3))) in zab(p.ready())
    p.receive(1, m.Ping(Z(3, 0), ((77, 4000),)), TICK_MS // 2)
    assert p.ready().touches == [(77, 4000)]


def test_request_revalidate_and_sync_services():
    p = broadcasting()
    p.receive(1, m.Request(b"write"), 0)
    p.receive(1, m.Revalidate(9, 5000), 0)
    r = p.ready()
    assert r.requests == [(1, b"write")] and r.revalidations == [(1, 9, 5000)]
    p.revalidated(1, 9, True)
    assert zab(p.ready()) == [(1, m.RevalidateReply(9, True))]
    z = p.propose(b"w")
    p.receive(1, m.Sync(5), 0)
    assert all(not isinstance(x, m.SyncReply) for _, x in zab(p.ready()))  # z not committed yet
    p.persisted(z)
    p.receive(1, m.Ack(z), 0)
    assert zab(p.ready()) == [(1, m.Commit(z)), (1, m.SyncReply(5, z))]   # COMMIT first on the link


def test_local_sync_completes_after_apply():
    p = broadcasting()
    z = p.propose(b"w")
    p.sync(11)
    assert p.ready().synced == []
    p.persisted(z)
    p.receive(1, m.Ack(z), 0)
    r = p.ready()
    assert r.applies == [(z, b"w")] and r.synced == [11]


def test_bad_packet_from_a_learner_drops_it_but_the_leader_stays():
    p = broadcasting(voters=(1, 2, 3, 4, 5), followers=(1, 2))
    p.receive(2, m.Diff(0), 0)                  # nonsense from a learner
    z = p.propose(b"x")
    r = p.ready()
    assert [to for to, _ in zab(r)] == [1] and p.state == PeerState.LEADING
    assert Append(z, b"x") in r.writes


def test_a_voter_that_does_not_ack_within_sync_limit_is_dropped():
    """Java's SyncLimitCheck: the oldest outstanding proposal must be ACKed within syncLimit ticks."""
    p = broadcasting(followers=(1, 2))
    z = p.propose(b"x")           # the leader's own disk is slow: z stays outstanding
    p.receive(1, m.Ack(z), 0)     # 1 acks it, 2 never does (but keeps pinging)
    for t in range(TICK_MS, (SYNC_LIMIT + 2) * TICK_MS, TICK_MS // 2):
        for sid in (1, 2):
            p.receive(sid, m.Ping(0), t)
        p.tick(t)
    p.ready()
    p.propose(b"y")
    assert {to for to, x in zab(p.ready())} == {1}     # 2 was dropped; leader + 1 is still a quorum
    assert p.state == PeerState.LEADING


def test_a_learner_stuck_in_the_handshake_is_dropped():
    """A lost NEWLEADER ACK must not leave a learner half-joined forever (it would keep getting PINGs)."""
    p = broadcasting(followers=(1,))
    p.receive(2, m.FollowerInfo(2, 2), 0)
    p.receive(2, m.AckEpoch(Z(2, 3), 2), 0)    # ... its NEWLEADER ACK never arrives
    first_deadline = (INIT_LIMIT + SYNC_LIMIT) * TICK_MS
    for t in range(TICK_MS // 2, first_deadline + TICK_MS, TICK_MS // 2):
        p.receive(1, m.Ping(0), t)
        p.tick(t)
    p.ready()
    p.tick(first_deadline + TICK_MS)
    assert {to for to, x in zab(p.ready()) if isinstance(x, m.Ping)} == {1}


def test_a_single_voter_ensemble_leads_alone():
    """Standalone is a quorum of one: it establishes its epoch and commits on its own durable ACK."""
    from zab_driver import Cluster
    c = Cluster([1], auto_persist=False)
    c.run_until(c.all_serving, 5_000)
    p = c.peers[1]
    assert p.state == PeerState.LEADING and p.epoch == 1
    z = p.propose(b"solo")
    assert p.ready().applies == []
    p.persisted(z)
    assert p.ready().applies == [(z, b"solo")]


def test_a_voter_that_promised_a_higher_epoch_makes_the_leader_step_down():
    """It can never ACK our epoch (its promise forbids it), so it would loop forever; stepping down lets
    the next round pick an epoch above its promise."""
    p = broadcasting(followers=(1,))
    p.receive(2, m.FollowerInfo(2, 3), 0)      # == e': an ordinary reconnect, it acks with -1
    assert p.state == PeerState.LEADING
    p.receive(2, m.FollowerInfo(2, 4), 0)      # > e' = 3
    assert p.state == PeerState.LOOKING and p.ready().reset


def test_pings_carry_the_committed_zxid_in_broadcast():
    p = broadcasting()
    z = p.propose(b"a")
    p.persisted(z)
    p.receive(1, m.Ack(z), 0)
    p.ready()
    p.tick(TICK_MS // 2)
    assert (1, m.Ping(z, (), z)) in zab(p.ready())


def _ping_and_tick(p, sids, start_ms, end_ms):
    """Every half tick from start_ms to end_ms: each of `sids` pings (so it is alive), then the leader ticks."""
    for t in range(start_ms, end_ms + 1, TICK_MS // 2):
        for sid in sids:
            p.receive(sid, m.Ping(0), t)
        p.tick(t)
    p.ready()


def test_a_voter_is_dropped_for_its_own_missing_ack_even_after_the_proposal_committed():
    """Java's per-LearnerHandler SyncLimitCheck: the clock runs per learner, from when we sent it the
    oldest proposal it has not ACKed; the others committing that proposal does not stop it.  The
    drop leaves leader + 1 of 3, still a quorum; an observer, which ACKs no proposal, stays."""
    p = broadcasting(observers=(4,), followers=(1, 2))
    p.receive(4, m.ObserverInfo(4, 2), 0)
    p.receive(4, m.AckEpoch(Z(2, 3), 2), 0)
    p.receive(4, m.Ack(Z(3, 0)), 0)
    z = p.propose(b"x")
    p.persisted(z)
    p.receive(1, m.Ack(z), 0)
    assert (1, m.Commit(z)) in zab(p.ready())          # committed without 2
    limit = SYNC_LIMIT * TICK_MS
    _ping_and_tick(p, (1, 2, 4), TICK_MS // 2, limit)
    p.propose(b"y")
    assert {to for to, x in zab(p.ready())} == {1, 2}   # not yet: exactly syncLimit has passed
    p.receive(1, m.Ack(Z(3, 2)), limit)
    _ping_and_tick(p, (1, 2, 4), limit + TICK_MS // 2, limit + TICK_MS)
    p.propose(b"z")
    assert {to for to, x in zab(p.ready())} == {1}      # 2 dropped: no PROPOSAL, and no PING below
    p.tick(limit + 3 * TICK_MS // 2)
    assert {to for to, x in zab(p.ready()) if isinstance(x, m.Ping)} == {1, 4}
    assert p.state == PeerState.LEADING


def test_an_ack_of_the_oldest_proposal_restarts_the_clock_at_the_next_one():
    p = broadcasting(followers=(1, 2))
    limit = SYNC_LIMIT * TICK_MS
    z1 = p.propose(b"a")                                # sent at 0
    p.ready()
    _ping_and_tick(p, (1, 2), TICK_MS // 2, 3 * TICK_MS)
    p.propose(b"b")                                     # sent at 3 ticks
    p.ready()
    for sid in (1, 2):
        p.receive(sid, m.Ack(z1), 4 * TICK_MS)          # z1 ACKed within syncLimit; z2 never
    _ping_and_tick(p, (1, 2), 4 * TICK_MS, 3 * TICK_MS + limit)
    assert p.state == PeerState.LEADING                 # z2's clock started at 3 ticks, not at 0
    _ping_and_tick(p, (1, 2), 3 * TICK_MS + limit + TICK_MS // 2, 4 * TICK_MS + limit)
    assert p.state == PeerState.LOOKING                 # both dropped, and the leader's quorum with them


def test_the_sync_limit_clock_of_a_late_learner_starts_at_its_newleader_ack():
    """Frames forwarded to a learner still syncing wait for its NEWLEADER ACK (bounded by the handshake
    deadline), so a long sync does not get it dropped the moment it finishes."""
    p = broadcasting(followers=(1,))
    limit = SYNC_LIMIT * TICK_MS
    p.receive(2, m.FollowerInfo(2, 2), 0)
    p.receive(2, m.AckEpoch(Z(2, 3), 2), 0)            # SYNCING: live frames go to it from now on
    z = p.propose(b"x")                                 # forwarded to 1 and 2 at 0
    p.persisted(z)
    p.receive(1, m.Ack(z), 0)
    p.ready()
    joined = 4 * TICK_MS
    _ping_and_tick(p, (1,), TICK_MS // 2, joined - TICK_MS // 2)
    p.receive(2, m.Ack(Z(3, 0)), joined)                # its NEWLEADER ACK; it has not ACKed z yet
    _ping_and_tick(p, (1, 2), joined, joined + limit)   # 9 ticks after z went out, 5 after its sync
    p.tick(joined + limit + TICK_MS // 2)
    assert {to for to, x in zab(p.ready()) if isinstance(x, m.Ping)} == {1, 2}
    p.tick(joined + limit + TICK_MS)                    # the next check: 2 is dropped ...
    p.ready()
    p.tick(joined + limit + 3 * TICK_MS // 2)           # ... so the next PING round leaves it out
    assert {to for to, x in zab(p.ready()) if isinstance(x, m.Ping)} == {1}
    assert p.state == PeerState.LEADING
