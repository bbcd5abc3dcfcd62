"""The learner role (follower and observer), rule by rule (reference sections 5, 6.2, 7-9).

Follower 1 of voters {1,2,3} follows leader 3; observer 4 observes it.  Both start with acceptedEpoch =
currentEpoch = 2 and the history 1.1..1.5, 2.1..2.3 unless a test says otherwise.
"""
from __future__ import annotations

import pytest

from coordcore.zab import messages as m
from coordcore.zab.election import PeerState
from coordcore.zab.ready import Append, InstallSnapshot, SetAcceptedEpoch, SetCurrentEpoch, Truncate
from role_env import (INIT_LIMIT, SYNC_LIMIT, TICK_MS, Z, appended, enter, make_peer, non_appends,
                      notifications, txns, zab)

HISTORY = txns(1, 1, 5) + txns(2, 1, 3)
E = Z(3, 0)  # the NEWLEADER marker of epoch 3


def learner(sid=1, **kw):
    kw.setdefault("accepted", 2)
    kw.setdefault("current", 2)
    kw.setdefault("log", HISTORY)
    p = make_peer(sid, (1, 2, 3), (4,), **kw)
    r = enter(p, PeerState.FOLLOWING if sid != 4 else PeerState.OBSERVING, 3)
    return p, r


def synced(sid=1, extra=(), **kw):
    """A learner that got DIFF + `extra` proposals + NEWLEADER, persisted them and ACKed."""
    p, _ = learner(sid, **kw)
    p.receive(3, m.LeaderInfo(3), 0)
    p.receive(3, m.Diff(Z(2, 3)), 0)
    if extra:
        p.receive(3, m.Proposal(tuple(extra), Z(2, 3)), 0)
    p.receive(3, m.Commit(extra[-1][0] if extra else Z(2, 3)), 0)
    p.receive(3, m.NewLeader(E, p.last_zxid), 0)
    p.persisted(p.last_zxid)
    p.ready()
    return p


def serving(sid=1, **kw):
    p = synced(sid, **kw)
    p.receive(3, m.UpToDate(E), 0)
    p.ready()
    assert p.serving
    return p


def test_a_follower_starts_with_followerinfo_and_an_observer_with_observerinfo():
    _, r = learner(1)
    assert zab(r) == [(3, m.FollowerInfo(1, 2))]
    _, r = learner(4)
    assert zab(r) == [(3, m.ObserverInfo(4, 2))]


@pytest.mark.parametrize("epoch, writes, ack", [
    (3, [SetAcceptedEpoch(3)], m.AckEpoch(Z(2, 3), 2)),   # a new promise, durable before the ACKEPOCH
    (2, [], m.AckEpoch(Z(2, 3), -1)),                      # already promised: -1, but still our lastZxid
])
def test_leaderinfo(epoch, writes, ack):
    p, _ = learner()
    p.receive(3, m.LeaderInfo(epoch), 0)
    r = p.ready()
    assert r.writes == writes and zab(r) == [(3, ack)]


def test_leaderinfo_below_our_accepted_epoch_goes_back_to_looking():
    p, _ = learner(accepted=5)
    p.receive(3, m.LeaderInfo(4), 0)
    r = p.ready()
    assert p.state == PeerState.LOOKING and r.reset and r.writes == []


def test_newleader_ack_waits_for_the_durable_history_then_current_epoch_then_ack():
    """6.2 step 3 (ZOOKEEPER-3911, -4646, -4643, -4785)."""
    p, _ = learner()
    p.receive(3, m.LeaderInfo(3), 0)
    p.ready()
    p.receive(3, m.Diff(Z(2, 3)), 0)
    p.receive(3, m.Proposal(((Z(2, 4), b"a"), (Z(2, 5), b"b")), Z(2, 3)), 0)
    p.receive(3, m.Commit(Z(2, 5)), 0)
    p.receive(3, m.NewLeader(E, Z(2, 5)), 0)
    r = p.ready()
    assert appended(r) == [Z(2, 4), Z(2, 5)] and non_appends(r) == [] and zab(r) == []
    p.persisted(Z(2, 4))
    r = p.ready()
    assert r.writes == [] and zab(r) == []              # half the history is not enough
    p.persisted(Z(2, 5))
    r = p.ready()
    assert r.writes == [SetCurrentEpoch(3)] and zab(r) == [(3, m.Ack(E))]
    assert r.applies == [] and not p.serving            # nothing applied before UPTODATE
    p.receive(3, m.UpToDate(E), 0)
    r = p.ready()
    assert p.serving and r.state_changed
    assert [z for z, _ in r.applies] == [z for z, _ in HISTORY] + [Z(2, 4), Z(2, 5)]
    assert p.fle.vote.peer_epoch == 3                   # ZOOKEEPER-1732


def test_trunc_cuts_the_log_and_resets_the_replica():
    p, _ = learner(log=HISTORY + txns(2, 4, 6), current=2)
    p.receive(3, m.LeaderInfo(3), 0)
    p.receive(3, m.Trunc(Z(2, 3)), 0)
    r = p.ready()
    assert Truncate(Z(2, 3)) in r.writes and r.reset and p.last_zxid == Z(2, 3)
    p.receive(3, m.Proposal(((Z(3, 1), b"n"),), Z(2, 3)), 0)   # the next txn follows the cut point
    assert p.state == PeerState.FOLLOWING


def test_snap_installs_the_snapshot_and_resets_the_replica():
    p, _ = learner(log=txns(1, 1, 2), current=1, accepted=1)
    p.receive(3, m.LeaderInfo(3), 0)
    p.receive(3, m.Snap(Z(2, 3), b"tree"), 0)
    p.receive(3, m.Proposal(((Z(2, 4), b"n"),), Z(2, 3)), 0)
    p.receive(3, m.Commit(Z(2, 4)), 0)
    p.receive(3, m.NewLeader(E, Z(2, 4)), 0)
    r = p.ready()
    assert r.writes[1:] == [InstallSnapshot(Z(2, 3), b"tree"), Append(Z(2, 4), b"n")] and r.reset
    assert p.applied_zxid == Z(2, 3)
    p.persisted(Z(2, 4))
    assert zab(p.ready()) == [(3, m.Ack(E))]


@pytest.mark.parametrize("packets, why", [
    ([m.Diff(Z(2, 3)), m.Proposal(((Z(2, 5), b"gap"),), Z(2, 3))], "a gap (ZOOKEEPER-4925)"),
    ([m.Diff(Z(2, 3)), m.Proposal(((Z(3, 2), b"gap"),), Z(2, 3))], "a new epoch not starting at 1"),
    ([m.Diff(Z(2, 3)), m.Proposal(((Z(3, 1), b"x"),), Z(2, 9))], "a lost frame across an epoch boundary"),
    ([m.Diff(Z(2, 3)), m.Proposal(((Z(2, 4), b"x"),), Z(2, 3)), m.NewLeader(E, Z(2, 6))],
     "NEWLEADER after history we never got"),
    ([m.Diff(Z(2, 2))], "a DIFF from a zxid we do not end at"),
    ([m.Proposal(((Z(2, 4), b"x"),), Z(2, 3))], "history before the sync head"),
    ([m.Diff(Z(2, 3)), m.Commit(Z(2, 9))], "a COMMIT matching nothing"),
    ([m.Diff(Z(2, 3)), m.NewLeader(Z(4, 0), Z(2, 3))], "NEWLEADER for another epoch"),
    ([m.Diff(Z(2, 3)), m.UpToDate(E)], "UPTODATE before NEWLEADER"),
    ([m.Diff(Z(2, 3)), m.Diff(Z(2, 3))], "two sync heads"),
    ([m.Diff(Z(2, 3)), m.Inform((), Z(2, 3))], "INFORM to a follower"),
    ([m.Diff(Z(2, 3)), m.Revalidate(1, 1)], "a learner-to-leader packet"),
])
def test_protocol_violations_send_the_learner_back_to_looking_with_a_reset(packets, why):
    p, _ = learner()
    p.receive(3, m.LeaderInfo(3), 0)
    p.ready()
    for pkt in packets:
        p.receive(3, pkt, 0)
    r = p.ready()
    assert p.state == PeerState.LOOKING and r.reset and not p.serving, why


def test_proposals_between_newleader_and_uptodate_are_acked_after_the_newleader_ack():
    """6.2 step 4: log them, ACK once durable, and always after ACK(NEWLEADER)."""
    p, _ = learner()
    p.receive(3, m.LeaderInfo(3), 0)
    p.receive(3, m.Diff(Z(2, 3)), 0)
    p.receive(3, m.Proposal(((Z(2, 4), b"hist"),), Z(2, 3)), 0)
    p.receive(3, m.Commit(Z(2, 4)), 0)
    p.receive(3, m.NewLeader(E, Z(2, 4)), 0)
    p.receive(3, m.Proposal(((Z(3, 1), b"live"),), Z(2, 4)), 0)
    p.ready()
    p.persisted(Z(3, 1))
    r = p.ready()
    assert zab(r) == [(3, m.Ack(E)), (3, m.Ack(Z(3, 1)))]
    p.receive(3, m.Commit(Z(3, 1)), 0)
    assert p.ready().applies == []          # committed, but not serving yet
    p.receive(3, m.UpToDate(E), 0)
    assert p.ready().applies[-1] == (Z(3, 1), b"live")


def test_broadcast_logs_acks_up_to_the_durable_zxid_and_applies_committed_durable_only():
    p = serving()
    p.receive(3, m.Proposal(((Z(3, 1), b"a"), (Z(3, 2), b"b")), Z(2, 3)), 0)
    r = p.ready()
    assert appended(r) == [Z(3, 1), Z(3, 2)] and zab(r) == []
    p.receive(3, m.Commit(Z(3, 2)), 0)            # a COMMIT can beat the local fsync (R1)
    assert p.ready().applies == []
    p.persisted(Z(3, 1))
    r = p.ready()
    assert zab(r) == [(3, m.Ack(Z(3, 1)))] and r.applies == [(Z(3, 1), b"a")]
    p.persisted(Z(3, 2))
    r = p.ready()
    assert zab(r) == [(3, m.Ack(Z(3, 2)))] and r.applies == [(Z(3, 2), b"b")]


def test_observer_applies_informs_and_refuses_live_proposals():
    p = serving(4)
    p.receive(3, m.Inform(((Z(3, 1), b"i"),), Z(2, 3)), 0)
    p.persisted(Z(3, 1))
    r = p.ready()
    assert r.applies == [(Z(3, 1), b"i")] and zab(r) == []     # observers never ACK
    p.receive(3, m.Proposal(((Z(3, 2), b"p"),), Z(3, 1)), 0)
    assert p.state == PeerState.LOOKING


def test_the_leader_must_be_heard_within_init_limit_then_sync_limit():
    p, _ = learner()
    p.tick(INIT_LIMIT * TICK_MS - 1)
    assert p.state == PeerState.FOLLOWING
    p.tick(INIT_LIMIT * TICK_MS)
    assert p.state == PeerState.LOOKING
    p = serving()
    p.receive(3, m.Ping(E), 1000)
    p.tick(1000 + SYNC_LIMIT * TICK_MS - 1)
    assert p.serving
    p.tick(1000 + SYNC_LIMIT * TICK_MS)
    assert p.state == PeerState.LOOKING and p.ready().reset


def test_packets_from_anyone_but_our_leader_are_ignored():
    p = serving()
    p.receive(2, m.Proposal(((Z(9, 1), b"x"),), Z(2, 3)), 0)
    assert p.serving and p.ready().writes == []


def test_ping_reply_carries_the_touched_sessions_once():
    p = serving()
    p.touch(7, 4000)
    p.touch(8, 6000)
    p.touch(7, 5000)
    p.receive(3, m.Ping(E), 0)
    assert zab(p.ready()) == [(3, m.Ping(E, ((7, 5000), (8, 6000))))]
    p.receive(3, m.Ping(E), 0)
    assert zab(p.ready()) == [(3, m.Ping(E, ()))]


def test_forward_revalidate_and_sync():
    p = serving()
    p.forward(b"w")
    p.revalidate(9, 3000)
    p.sync(5)
    assert zab(p.ready()) == [(3, m.Request(b"w")), (3, m.Revalidate(9, 3000)), (3, m.Sync(5))]
    p.receive(3, m.RevalidateReply(9, False), 0)
    assert p.ready().revalidated == [(9, False)]
    p.receive(3, m.Proposal(((Z(3, 1), b"a"),), Z(2, 3)), 0)
    p.receive(3, m.Commit(Z(3, 1)), 0)
    p.receive(3, m.SyncReply(5, Z(3, 1)), 0)
    assert p.ready().synced == []           # not applied here yet: the txn is not durable
    p.persisted(Z(3, 1))
    r = p.ready()
    assert r.applies == [(Z(3, 1), b"a")] and r.synced == [5]


def test_leaving_a_role_votes_only_with_the_durable_log():
    """I7: the next election round starts once every Append is durable, advertising it."""
    p = serving()
    p.receive(3, m.Proposal(((Z(3, 1), b"a"),), Z(2, 3)), 0)
    p.ready()
    p.link_lost(3, 10)
    r = p.ready()
    assert p.state == PeerState.LOOKING and r.reset and notifications(r) == []
    p.persisted(Z(3, 1))
    n = notifications(p.ready())
    assert n and all(x.zxid == Z(3, 1) and x.peer_epoch == 3 for _, x in n)


def test_a_vote_heard_while_the_log_becomes_durable_counts_in_the_round_that_follows():
    """LOOKING before the round starts (an Append still unsynced): a voter's notification is kept for
    the round, as ZooKeeper queues it for lookForLeader -- not answered with the finished role's vote
    and dropped, which left the sender waiting for a resend."""
    from coordcore.zab.election import Notification

    p = serving()
    p.receive(3, m.Proposal(((Z(3, 1), b"a"),), Z(2, 3)), 0)
    p.ready()
    p.link_lost(3, 10)
    p.ready()
    better = Notification(leader=2, zxid=Z(3, 1), election_epoch=p.fle.logical_clock + 1,
                          state=PeerState.LOOKING, sender=2, peer_epoch=3)
    p.receive(2, better, 11)
    assert notifications(p.ready()) == []        # no answer with the old role's vote
    p.persisted(Z(3, 1))
    sent = notifications(p.ready())
    # the round starts with our own vote, and the kept one (sid 2, same log: a better vote) is taken
    # at once: we switch to it and tell everyone
    assert [x.leader for _, x in sent][-1] == 2 and p.fle.vote.leader == 2


def test_a_peer_refuses_to_start_with_broken_epochs():
    """I6: acceptedEpoch >= currentEpoch >= epoch(last zxid)."""
    with pytest.raises(ValueError):
        make_peer(1, accepted=1, current=2)
    with pytest.raises(ValueError):
        make_peer(1, accepted=1, current=1, log=txns(2, 1, 1))


def test_a_crash_between_the_durable_sync_history_and_current_epoch_still_starts():
    """The history of epoch 2's leader is durable, SetCurrentEpoch(3) never happened: the peer starts
    and advertises its old currentEpoch with the durable last zxid."""
    p = make_peer(1, accepted=3, current=1, log=txns(1, 1, 2) + txns(2, 1, 4))
    p.tick(0)
    assert p.fle.vote.peer_epoch == 1 and p.fle.vote.zxid == Z(2, 4)


def test_sync_commits_are_provisional_until_uptodate():
    """A leader dying before its NEWLEADER quorum committed nothing: the next leader may TRUNC that
    history, and the learner must accept the TRUNC (and must not have applied any of it)."""
    p, _ = learner(log=HISTORY, current=2)
    p.receive(3, m.LeaderInfo(3), 0)
    p.receive(3, m.Diff(Z(2, 3)), 0)
    p.receive(3, m.Proposal(((Z(2, 4), b"tail of the dying leader"),), Z(2, 3)), 0)
    p.receive(3, m.Commit(Z(2, 4)), 0)
    p.receive(3, m.NewLeader(E, Z(2, 4)), 0)
    p.persisted(Z(2, 4))
    p.ready()
    p.link_lost(3, 5)                 # leader 3 dies before its NEWLEADER quorum
    assert p.state == PeerState.LOOKING and p.ready().applies == []
    enter(p, PeerState.FOLLOWING, 2)
    p.receive(2, m.LeaderInfo(4), 0)
    p.receive(2, m.Trunc(Z(2, 3)), 0)  # leader 2 never had 2.4
    r = p.ready()
    assert p.state == PeerState.FOLLOWING and Truncate(Z(2, 3)) in r.writes


def test_a_ping_repairs_a_silently_lost_commit():
    p = serving()
    p.receive(3, m.Proposal(((Z(3, 1), b"a"),), Z(2, 3)), 0)
    p.persisted(Z(3, 1))
    p.ready()
    p.receive(3, m.Ping(Z(3, 1), (), Z(3, 1)), 0)   # its COMMIT never arrived
    r = p.ready()
    assert r.applies == [(Z(3, 1), b"a")] and p.serving


@pytest.mark.parametrize("sid, ping", [(1, m.Ping(Z(3, 2), (), 0)), (4, m.Ping(Z(3, 2), (), Z(3, 2)))],
                         ids=["follower lost a PROPOSAL", "observer lost an INFORM"])
def test_a_learner_behind_a_ping_lost_a_packet_and_resyncs(sid, ping):
    p = serving(sid)
    p.receive(3, ping, 0)
    assert p.state == PeerState.LOOKING and p.ready().reset


def test_a_lost_uptodate_is_noticed_on_the_next_full_ping():
    p = synced()
    p.receive(3, m.Ping(E), 0)              # a plain PING: the leader has not sent UPTODATE yet
    assert p.state == PeerState.FOLLOWING
    p.receive(3, m.Ping(E, (), Z(2, 3)), 0)  # a full one: UPTODATE came before it, so it was lost
    assert p.state == PeerState.LOOKING


def test_replies_to_requests_of_an_earlier_connection_are_ignored():
    p = serving()
    p.receive(3, m.SyncReply(1, Z(2, 3)), 0)          # we never sent Sync(1) in this role
    p.receive(3, m.RevalidateReply(5, True), 0)       # nor Revalidate(5)
    r = p.ready()
    assert r.synced == [] and r.revalidated == [] and p.serving
