"""FastLeaderElection rule by rule (reference sections 4, 8, 9 and 15 E1-E8; ZooKeeper's
FastLeaderElection.lookForLeader, WorkerReceiver, totalOrderPredicate, checkLeader and Vote.equals).

Each test feeds one server hand-made notifications and checks what it sends, records and decides.
Interaction between several servers is in test_election_traces.py.
"""
import pytest

from coordcore.errors import ProtocolError
from coordcore.zab.election import (NO_VOTE, FastLeaderElection, Notification, PeerState, Vote,
                                    total_order_predicate)
from coordcore.zab.quorum import QuorumConfig

LOOKING, FOLLOWING, LEADING, OBSERVING = PeerState.LOOKING, PeerState.FOLLOWING, PeerState.LEADING, PeerState.OBSERVING
Q3 = QuorumConfig(frozenset({1, 2, 3}), frozenset({4}))
Q5 = QuorumConfig(frozenset({1, 2, 3, 4, 5}))


def note(sender, leader, zxid=0, round=1, state=LOOKING, epoch=0):
    return Notification(leader=leader, zxid=zxid, election_epoch=round, state=state, sender=sender, peer_epoch=epoch)


def looking(sid=2, quorum=Q3, zxid=0, epoch=0, now=0, **options):
    """A server that just called look(); its initial broadcast already drained."""
    fle = FastLeaderElection(sid, quorum, **options)
    fle.look(now, zxid, epoch)
    fle.take_messages()
    return fle


def sent(fle):
    """(to, leader, round, state) of every message sent since the last call."""
    return [(to, n.leader, n.election_epoch, PeerState(n.state)) for to, n in fle.take_messages()]


def in_final_wait(fle):
    return fle._finalize_at_ms is not None


# ---------------------------------------------------------------- vote order (4.2, E2)

@pytest.mark.parametrize("new, current, wins", [
    # E2: a newer currentEpoch beats a longer log from an older epoch (the stale uncommitted tail).
    (Vote(1, 0x4_00000010, 5), Vote(3, 0x4_00000012, 4), True),
    (Vote(3, 0x4_00000012, 4), Vote(1, 0x4_00000010, 5), False),
    (Vote(1, 0x5_00000002, 5), Vote(3, 0x5_00000001, 5), True),   # same epoch: the longer log
    (Vote(1, 0x5_00000001, 5), Vote(3, 0x5_00000002, 5), False),
    (Vote(3, 0x5_00000001, 5), Vote(2, 0x5_00000001, 5), True),   # same epoch and zxid: the higher sid
    (Vote(2, 0x5_00000001, 5), Vote(3, 0x5_00000001, 5), False),
    (Vote(2, 7, 1), Vote(2, 7, 1), False),                        # equal never "beats"
    (Vote(4, 0x9_00000000, 9), Vote(1, 0, 0), False),             # an observer never wins
    (Vote(9, 0x9_00000000, 9), Vote(1, 0, 0), False),             # nor an unknown sid
    (Vote(1, 0, 0), NO_VOTE, True),                               # any voter beats nobody
], ids=["E2-epoch-over-zxid", "E2-reverse", "zxid", "zxid-reverse", "sid", "sid-reverse", "equal",
        "observer", "unknown", "no-vote"])
def test_total_order_predicate(new, current, wins):
    assert total_order_predicate(new, current, Q3) is wins


def test_the_dataclass_order_is_not_the_vote_order():
    # Guard against sorting votes by field order (leader first): there is no < on Vote at all.
    with pytest.raises(TypeError):
        Vote(3, 0, 0) < Vote(1, 0, 1)  # noqa: B015


# ---------------------------------------------------------------- look (4.2)

def test_look_starts_a_round_and_sends_the_initial_vote_to_every_voter_including_itself():
    fle = FastLeaderElection(2, Q3)
    fle.look(0, 0x1_00000005, 1)
    assert fle.logical_clock == 1 and fle.state == LOOKING
    assert fle.vote == Vote(2, 0x1_00000005, 1)
    assert fle.take_messages() == [(to, Notification(2, 0x1_00000005, 1, LOOKING, 2, 1)) for to in (1, 2, 3)]
    fle.look(500, 0x1_00000006, 1)
    assert fle.logical_clock == 2 and [to for to, _ in fle.take_messages()] == [1, 2, 3]


# ---------------------------------------------------------------- receive while LOOKING (4.3)

def test_higher_round_adopts_the_round_and_a_better_vote_and_broadcasts():
    fle = looking(sid=2)
    fle.receive(note(3, 3, round=5), 10)
    assert fle.logical_clock == 5 and fle.vote == Vote(3, 0, 0)
    assert sent(fle) == [(1, 3, 5, LOOKING), (2, 3, 5, LOOKING), (3, 3, 5, LOOKING)]


def test_higher_round_restarts_from_the_initial_vote_not_the_old_proposal():
    fle = looking(sid=2)
    fle.receive(note(3, 3, round=1), 0)           # round 1: 2 adopts 3
    assert fle.vote.leader == 3
    fle.receive(note(1, 1, round=2), 0)           # round 2 from 1, proposing 1: 2 is better than 1
    assert fle.logical_clock == 2 and fle.vote == Vote(2, 0, 0)
    assert sent(fle)[-3:] == [(1, 2, 2, LOOKING), (2, 2, 2, LOOKING), (3, 2, 2, LOOKING)]


def test_higher_round_clears_the_votes_of_the_old_round():
    # Only a FOLLOWING/LEADING vote shows it: those match on (leader, peer_epoch) alone, so a stale
    # round-1 FOLLOWING vote left in recvset would complete a round-2 quorum.
    fle = looking(sid=1, quorum=Q5)
    fle.receive(note(2, 3, round=1, state=FOLLOWING), 0)   # recorded in recvset (and outofelection)
    fle.receive(note(3, 3, round=2), 0)                    # round 2: recvset restarts
    fle.receive(note(1, 3, round=2), 0)                    # our own round-2 vote for 3
    fle.receive(note(3, 3, round=2, state=LEADING), 0)
    # recvset {1, 3} and outofelection {2, 3}: two of five each, no decision.
    assert fle.state == LOOKING and fle._recvset.keys() == {1, 3}


def test_lower_round_is_answered_with_our_proposal_and_not_recorded():
    fle = looking(sid=2)
    fle.receive(note(3, 3, round=3), 0)    # we are at round 3, proposing 3
    sent(fle)
    fle.receive(note(1, 3, round=1), 0)
    assert sent(fle) == [(1, 3, 3, LOOKING)]
    assert fle.logical_clock == 3 and fle.vote.leader == 3
    assert fle._recvset.keys() == {3}      # 1's stale vote for 3 was not counted


def test_same_round_better_vote_is_adopted_and_broadcast():
    fle = looking(sid=2)
    fle.receive(note(3, 3), 0)
    assert fle.vote == Vote(3, 0, 0) and [to for to, *_ in sent(fle)] == [1, 2, 3]


def test_same_round_worse_vote_is_recorded_without_sending():
    fle = looking(sid=2)
    fle.receive(note(1, 1), 0)
    assert fle.vote == Vote(2, 0, 0) and sent(fle) == []
    assert fle._recvset.keys() == {1}


def test_notification_from_a_non_voter_is_answered_at_once_and_ignored():
    fle = looking(sid=2)
    fle.receive(note(4, -1, zxid=-1, epoch=-1, round=7), 0)
    assert sent(fle) == [(4, 2, 1, LOOKING)]
    assert fle.logical_clock == 1 and fle._recvset == {}


def test_vote_naming_a_non_voter_is_ignored():
    fle = looking(sid=2)
    fle.receive(note(1, 4, zxid=0x9_00000000, epoch=9, round=5), 0)
    assert (fle.logical_clock, fle.vote, sent(fle), fle._recvset) == (1, Vote(2, 0, 0), [], {})


@pytest.mark.parametrize("bad, message", [
    (Notification(1, 1, 1, 7, 1, 0), "unknown state"),
    (Notification(1, 1, 1, LOOKING, 9, 0), "not a member"),
])
def test_invalid_notifications_raise_protocol_error(bad, message):
    fle = looking(sid=2)
    with pytest.raises(ProtocolError, match=message):
        fle.receive(bad, 0)
    assert fle.state == LOOKING and fle.vote == Vote(2, 0, 0)


def test_notifications_before_the_first_look_are_ignored():
    fle = FastLeaderElection(2, Q3)
    fle.receive(note(1, 1), 0)
    assert fle.take_messages() == [] and fle.next_deadline_ms() is None


# ---------------------------------------------------------------- termination and final wait (4.4)

def test_a_quorum_for_our_proposal_starts_the_final_wait_and_silence_decides():
    fle = looking(sid=3)
    fle.receive(note(3, 3), 0)
    assert not in_final_wait(fle)
    fle.receive(note(1, 3), 50)
    assert fle.next_deadline_ms() == 250
    fle.tick(249)
    assert fle.state == LOOKING and fle.decision is None
    fle.tick(250)
    assert fle.state == LEADING and fle.take_decision() == (LEADING, Vote(3, 0, 0))
    assert fle.take_decision() is None and fle.next_deadline_ms() is None


def test_a_follower_decides_following():
    fle = looking(sid=1)
    for sender in (3, 2):
        fle.receive(note(sender, 3), 0)
    fle.tick(200)
    assert fle.take_decision() == (FOLLOWING, Vote(3, 0, 0))


def test_the_quorum_must_match_zxid_round_and_epoch_too():
    fle = looking(sid=3, zxid=5)
    fle.receive(note(3, 3, zxid=5), 0)
    fle.receive(note(1, 3, zxid=4), 0)      # an older view of 3's zxid: not the same vote
    assert not in_final_wait(fle)


def test_a_vote_that_does_not_beat_the_proposal_during_the_wait_restarts_the_silence():
    fle = looking(sid=3)
    fle.receive(note(3, 3), 0)
    fle.receive(note(1, 3), 0)
    fle.receive(note(2, 2), 150)            # dropped
    assert fle.next_deadline_ms() == 350 and fle._recvset.keys() == {1, 3} and sent(fle) == []
    fle.tick(349)
    assert fle.state == LOOKING
    fle.tick(350)
    assert fle.state == LEADING


def test_a_better_vote_during_the_wait_ends_it_and_is_processed():
    fle = looking(sid=1)
    fle.receive(note(2, 2), 0)
    sent(fle)
    fle.receive(note(1, 2), 0)
    assert in_final_wait(fle)
    fle.receive(note(3, 3), 100)
    assert not in_final_wait(fle) and fle.vote.leader == 3
    assert [to for to, *_ in sent(fle)] == [1, 2, 3]
    fle.tick(200)                           # the old wait's deadline passes: no decision
    assert fle.state == LOOKING


def test_a_better_vote_of_a_stale_round_ends_the_wait_but_is_not_recorded():
    fle = looking(sid=1, quorum=Q5)
    fle.receive(note(2, 2, round=2), 0)     # round 2, proposing 2
    for sender in (1, 3):
        fle.receive(note(sender, 2, round=2), 0)
    assert in_final_wait(fle)
    sent(fle)
    fle.receive(note(5, 5, round=1), 10)    # ZooKeeper puts it back, then the loop ignores it
    assert not in_final_wait(fle) and fle.vote.leader == 2
    assert sent(fle) == [(5, 2, 2, LOOKING)]   # the lagging sender still gets our proposal


# ---------------------------------------------------------------- resend and backoff (4.4, 8)

def test_resend_backs_off_from_min_doubling_to_max_and_resets_only_on_a_new_election():
    fle = looking(sid=2, min_notification_interval_ms=200, max_notification_interval_ms=1000)
    times = []
    now = 0
    for _ in range(6):
        now = fle.next_deadline_ms()
        fle.tick(now)
        assert [to for to, *_ in sent(fle)] == [1, 2, 3]
        times.append(now)
    assert times == [200, 600, 1400, 2400, 3400, 4400]
    fle.look(now, 0, 0)
    assert fle.next_deadline_ms() == now + 200


def test_a_received_notification_postpones_the_resend_without_resetting_the_backoff():
    fle = looking(sid=2)
    fle.tick(200)
    sent(fle)
    assert fle.next_deadline_ms() == 600
    fle.receive(note(1, 1), 500)
    assert fle.next_deadline_ms() == 900    # 500 + the current interval (400)
    fle.tick(899)
    assert sent(fle) == []


def test_tick_before_the_deadline_does_nothing():
    fle = looking(sid=2)
    fle.tick(199)
    assert sent(fle) == [] and fle.next_deadline_ms() == 200


# ---------------------------------------------------------------- FOLLOWING / LEADING while LOOKING (4.5)

def test_a_quorum_following_l_is_not_enough_without_l_saying_leading():
    fle = looking(sid=1, quorum=Q5)
    for sender in (2, 4, 5):
        fle.receive(note(sender, 3, round=4, state=FOLLOWING, epoch=2), 0)
    assert fle.state == LOOKING       # checkLeader: 3 might be dead (ZOOKEEPER-975)
    fle.receive(note(3, 3, round=4, state=LEADING, epoch=2), 0)
    assert fle.take_decision() == (FOLLOWING, Vote(3, 0, 2)) and fle.logical_clock == 4


def test_leading_from_l_without_a_quorum_is_not_enough():
    fle = looking(sid=1, quorum=Q5)
    fle.receive(note(3, 3, round=4, state=LEADING, epoch=2), 0)
    fle.receive(note(2, 3, round=4, state=FOLLOWING, epoch=2), 0)
    assert fle.state == LOOKING
    fle.receive(note(5, 3, round=4, state=FOLLOWING, epoch=2), 0)
    assert fle.state == FOLLOWING


def test_out_of_election_votes_match_on_leader_and_peer_epoch_only():
    # ZOOKEEPER-1805: members report different zxids and rounds for the same leader.
    fle = looking(sid=1, quorum=Q5)
    fle.receive(note(2, 3, zxid=0x2_00000001, round=3, state=FOLLOWING, epoch=2), 0)
    fle.receive(note(5, 3, zxid=0x2_00000007, round=6, state=FOLLOWING, epoch=2), 0)
    fle.receive(note(3, 3, zxid=0x1_00000004, round=4, state=LEADING, epoch=2), 0)
    assert fle.take_decision() == (FOLLOWING, Vote(3, 0x1_00000004, 2)) and fle.logical_clock == 4


def test_out_of_election_votes_with_different_peer_epochs_do_not_match():
    # ZOOKEEPER-1732: until every member rewrites its peer epoch after sync, they disagree.
    fle = looking(sid=1)
    fle.receive(note(2, 3, round=2, state=FOLLOWING, epoch=1), 0)
    fle.receive(note(3, 3, round=2, state=LEADING, epoch=2), 0)
    assert fle.state == LOOKING
    fle.receive(note(2, 3, round=2, state=FOLLOWING, epoch=2), 0)
    assert fle.state == FOLLOWING


def test_same_round_following_votes_count_together_with_looking_votes():
    # recvset path, 5 voters: our own LOOKING vote for 3 plus 2 FOLLOWING and 3 LEADING, all of round
    # 1, make three.  outofelection alone ({2, 3}) would not be a quorum.
    fle = looking(sid=1, quorum=Q5)
    fle.receive(note(3, 3), 0)           # adopt 3
    fle.receive(note(1, 3), 0)           # our own vote comes back: {1, 3} LOOKING, no quorum of 5
    fle.receive(note(2, 3, state=FOLLOWING), 0)
    assert fle.state == LOOKING
    fle.receive(note(3, 3, state=LEADING), 0)
    assert fle.take_decision() == (FOLLOWING, Vote(3, 0, 0))
    assert fle._outofelection.keys() == {2}   # decided on the recvset path, before recording it there


def test_same_round_looking_votes_must_match_fully():
    fle = looking(sid=1)
    fle.receive(note(2, 3, zxid=7), 0)   # 2's LOOKING vote for 3 with another zxid
    fle.receive(note(3, 3, state=LEADING), 0)
    assert fle.state == LOOKING


def test_we_lead_only_if_the_others_follow_us_in_our_own_round():
    fle = looking(sid=3)
    for sender in (1, 2):
        fle.receive(note(sender, 3, round=7, state=FOLLOWING), 0)   # another round: not our election
    assert fle.state == LOOKING
    fle = looking(sid=3)
    fle.receive(note(1, 3, round=1, state=FOLLOWING), 0)
    fle.receive(note(2, 3, round=1, state=FOLLOWING), 0)
    assert fle.take_decision() == (LEADING, Vote(3, 0, 0))


def test_observing_notifications_are_answered_and_never_counted():
    fle = looking(sid=1)
    fle.receive(note(4, 3, state=OBSERVING), 0)
    assert sent(fle) == [(4, 1, 1, LOOKING)] and fle._outofelection == {}


# ---------------------------------------------------------------- out of the election

def test_established_servers_answer_looking_voters_with_vote_round_and_state():
    fle = looking(sid=3)
    for sender in (3, 1):
        fle.receive(note(sender, 3), 0)
    fle.tick(200)
    fle.receive(note(2, 2, round=9), 300)
    assert fle.take_messages() == [(2, Notification(3, 0, 1, LEADING, 3, 0))]
    assert fle.logical_clock == 1      # an answer does not move our round


def test_established_servers_ignore_following_and_leading_notifications():
    fle = looking(sid=1)
    fle.established(FOLLOWING, Vote(3, 0, 1))
    fle.receive(note(2, 3, state=FOLLOWING), 0)
    fle.receive(note(3, 3, state=LEADING), 0)
    assert sent(fle) == [] and fle.state == FOLLOWING


def test_established_servers_answer_non_voters():
    fle = looking(sid=1)
    fle.established(FOLLOWING, Vote(3, 0x5, 1))
    fle.receive(note(4, -1, zxid=-1, epoch=-1), 0)
    assert fle.take_messages() == [(4, Notification(3, 0x5, 1, FOLLOWING, 1, 1))]


def test_update_peer_epoch_changes_what_late_joiners_are_told():
    fle = looking(sid=1)
    fle.established(FOLLOWING, Vote(3, 0x1_00000005, 1))
    fle.update_peer_epoch(2)
    assert fle.vote == Vote(3, 0x1_00000005, 2)
    fle.receive(note(2, 2), 0)
    assert fle.take_messages()[0][1].peer_epoch == 2


def test_update_peer_epoch_while_looking_is_a_mistake():
    with pytest.raises(ValueError):
        looking(sid=1).update_peer_epoch(2)


@pytest.mark.parametrize("sid, state, vote", [
    (1, LOOKING, Vote(3, 0, 0)),       # use look()
    (1, LEADING, Vote(3, 0, 0)),       # 1 cannot lead for 3
    (3, FOLLOWING, Vote(3, 0, 0)),     # nor follow itself
    (1, OBSERVING, Vote(3, 0, 0)),     # a voter does not observe
    (4, FOLLOWING, Vote(3, 0, 0)),     # an observer does not follow
    (1, FOLLOWING, Vote(4, 0, 0)),     # the leader must be a voter
])
def test_established_refuses_inconsistent_states(sid, state, vote):
    with pytest.raises(ValueError):
        FastLeaderElection(sid, Q3).established(state, vote)


def test_no_deadline_out_of_the_election():
    fle = looking(sid=1)
    fle.established(FOLLOWING, Vote(3, 0, 0))
    assert fle.next_deadline_ms() is None
    fle.tick(10**9)
    assert sent(fle) == []


# ---------------------------------------------------------------- observers (9, E7)

def test_an_observer_proposes_nobody_to_the_voters_only():
    obs = FastLeaderElection(4, Q3)
    obs.look(0, 0x9_00000000, 9)
    assert obs.vote == NO_VOTE
    assert [(to, n.vote) for to, n in obs.take_messages()] == [(1, NO_VOTE), (2, NO_VOTE), (3, NO_VOTE)]


def test_an_observer_ignores_looking_votes_and_never_answers():
    obs = looking(sid=4)
    obs.receive(note(1, 3, round=5), 0)
    obs.receive(note(2, 3, round=0), 0)
    assert (obs.logical_clock, obs.vote, sent(obs), obs._recvset) == (1, NO_VOTE, [], {})
    obs.established(OBSERVING, Vote(3, 0, 0))
    obs.receive(note(1, 1), 0)
    assert sent(obs) == []            # no answer: a voter's answer to it would be answered again


def test_an_observer_learns_the_leader_from_a_voter_quorum_and_the_leaders_own_word():
    obs = looking(sid=4)
    obs.receive(note(1, 3, round=2, state=FOLLOWING, epoch=1), 0)
    obs.receive(note(2, 3, round=2, state=FOLLOWING, epoch=1), 0)
    assert obs.state == LOOKING
    obs.receive(note(3, 3, round=2, state=LEADING, epoch=1), 0)
    assert obs.take_decision() == (OBSERVING, Vote(3, 0, 1))


def test_an_observer_never_waits_for_a_final_wait_or_leads():
    obs = looking(sid=4)
    for sender in (1, 2, 3):
        obs.receive(note(sender, 3), 0)
    assert not in_final_wait(obs) and obs.state == LOOKING


def test_a_voter_never_counts_an_observer_towards_a_quorum():
    fle = looking(sid=3)
    fle.receive(note(3, 3), 0)
    fle.receive(note(4, 3), 0)             # even if an observer's notification named 3
    assert not in_final_wait(fle)
