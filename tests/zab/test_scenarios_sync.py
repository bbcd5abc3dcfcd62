"""Named scenarios S1-S8 of the ZAB reference (section 15, discovery and synchronization), scripted.

Each test is one schedule on coordcore.testing.sim.script: the simulator's real hosts, disks and
checker, with every fault placed by the test.  The checker runs after every event, so besides each
test's own asserts no invariant of checker.py may break at any point of the schedule.
"""
from __future__ import annotations

import pytest

from coordcore import zxid as zx
from coordcore.testing.sim.script import (NEWLEADER_ACK, PROPOSAL_ACK, Script, after_send, after_sync, after_write,
                                          before_write, in_phase)
from coordcore.zab import messages as m
from coordcore.zab.election import PeerState
from coordcore.zab.learner import Phase as LearnerPhase
from coordcore.zab.ready import InstallSnapshot, SetCurrentEpoch, Truncate
from scenario_util import applied_anywhere, converged_with, logged_anywhere, miss_an_epoch, sync_head, scenario

VOTERS = [3, 5]


def strand_a_txn_on_the_leader(s: Script) -> tuple[int, int]:
    """The leader logs a proposal no follower ever sees, then dies.  Returns (old leader, zxid)."""
    old = s.leader()
    s.hold(m.Proposal, src=old)
    z = s.write(b"only-on-the-old-leader")
    s.settle(5)
    assert logged_anywhere(s, z) == [old]
    s.crash(old)
    s.drop_held()
    return old, z


@pytest.mark.parametrize("voters", VOTERS)
def test_s1_divergent_tail_of_an_older_epoch_disappears_everywhere(voters):
    """S1.  Window: a txn logged (durably) only by a leader that dies; the others move to a new epoch
    and write.  Rule (6.1, ZOOKEEPER-1154): the rejoining server gets TRUNC to the last common zxid or
    SNAP, never DIFF on its unknown tail; the tail is gone from every disk and never applied."""
    s = scenario(voters)
    s.elect()
    s.writes(3)
    old, z = strand_a_txn_on_the_leader(s)
    s.elect()
    s.writes(3)
    s.restart(old)
    converged_with(s, [])
    assert isinstance(sync_head(s, old), (m.Trunc, m.Snap))
    assert logged_anywhere(s, z) == [] and applied_anywhere(s, z) == []


def test_s2_follower_ahead_within_the_same_epoch_is_truncated():
    """S2.  Window: a follower logged a proposal of epoch 1 that nobody else made durable (the leader's
    own fsync was still pending when it died); the new leader has no txn of its own epoch yet.
    Rule (6.1): the follower's p is above the leader's max -> TRUNC(max); the txn is gone."""
    s = scenario(3)
    lead = s.elect()
    s.writes(2)
    f_ahead, f_other = sorted(s.followers())
    s.hold(m.Proposal, src=lead, dst=f_other)
    s.hold_disk(lead)
    z = s.write(b"ahead")
    s.settle(5)
    assert logged_anywhere(s, z) == [f_ahead, lead] and z not in s.acked()
    s.crash(lead)              # its pending append is lost
    s.drop_held()
    s.crash(f_ahead)
    s.restart(lead)
    s.held_disks.clear()
    s.elect()
    s.restart(f_ahead)
    converged_with(s, [])
    head = sync_head(s, f_ahead)
    assert isinstance(head, m.Trunc) and head.zxid == z - 1
    assert logged_anywhere(s, z) == []


def test_s3_behind_the_window_gets_snap_and_in_sync_gets_an_empty_diff():
    """S3.  Window: a follower is down while the others write and then restart from a snapshot (the
    leader's log no longer reaches back to the follower); another follower restarts with nothing new.
    Rule (6.1): the first is synced by SNAP, the second by an empty DIFF (no PROPOSAL after it)."""
    s = scenario(3)
    lead = s.elect()
    behind, other = sorted(s.followers())
    s.writes(2)
    s.crash(behind)
    s.writes(5)
    for sid in (lead, other):
        s.snapshot(sid)
    s.crash(lead)
    s.restart(lead)
    lead = s.elect()
    s.restart(behind)
    s.converge()
    assert isinstance(sync_head(s, behind), m.Snap)
    # In sync: crash a follower and bring it straight back.
    f = min(x for x in s.sim.sids if x != lead)
    s.crash(f)
    mark = len(s.received(dst=f))
    s.restart(f)
    s.converge()
    got = [msg for _, _, msg in s.received(dst=f)[mark:]]
    heads = [msg for msg in got if isinstance(msg, (m.Diff, m.Trunc, m.Snap))]
    assert heads == [m.Diff(s.disk(f).last_zxid)]
    i = got.index(heads[0])
    assert isinstance(got[i + 1], (m.Commit, m.NewLeader))   # no PROPOSAL: nothing to ship


# S4: the crash windows of 6.2, on a follower that missed an epoch change and is re-synced.
S4_WINDOWS = {
    "mid-snapshot (before InstallSnapshot)": (before_write(InstallSnapshot), None, True),
    "after InstallSnapshot, before the NEWLEADER ACK": (after_write(InstallSnapshot), None, True),
    "history logged and fsynced, currentEpoch not written": (after_sync(), in_phase(LearnerPhase.SYNC), False),
    "currentEpoch written, NEWLEADER ACK not sent": (after_write(SetCurrentEpoch), None, False),
    "NEWLEADER ACK sent, UPTODATE not received": (after_send(NEWLEADER_ACK), None, False),
}


@pytest.mark.parametrize("voters", VOTERS)
@pytest.mark.parametrize("window", sorted(S4_WINDOWS))
def test_s4_follower_crash_at_each_step_of_sync_loses_nothing(voters, window):
    """S4.  Window: each step of the learner's strict order (6.2), crashing the follower there, then
    restarting it.  Rule: no committed txn is lost, the follower converges to the same history, and
    its disk always satisfies acceptedEpoch >= currentEpoch >= epoch(last logged) (the checker)."""
    find, when, snap = S4_WINDOWS[window]
    s = scenario(voters)
    s.elect()
    f = min(s.followers())
    lead = miss_an_epoch(s, f)
    if snap:
        for sid in s.up():
            s.snapshot(sid)
        s.crash(lead)
        s.restart(lead)
        lead = s.elect()
    trap = s.crash_at(f, find, when=when, label=window)
    s.restart(f)
    s.run_until_fired(trap)
    assert not s.host(f).up and s.fired == [trap]
    s.restart(f)
    converged_with(s, [z for z, _ in s.committed()])


def test_s4_crash_between_uptodate_and_the_first_commit():
    """S4, last window.  Window: the follower got UPTODATE (serving) and a PROPOSAL, but not its COMMIT.
    Rule: after the restart the txn is applied once, on every server."""
    s = scenario(3)
    lead = s.elect()
    f = min(s.followers())
    s.crash(f)
    s.writes(3)
    s.hold(m.Commit, src=lead, dst=f)
    s.restart(f)
    s.run_until(lambda: s.host(f).peer.serving, what="follower serving")
    z = s.write(b"committed-elsewhere")
    s.settle(20)
    assert z in s.acked() and z not in dict(s.host(f).applied)
    s.crash(f)
    s.drop_held()
    s.restart(f)
    converged_with(s, [z])


@pytest.mark.parametrize("voters", VOTERS)
def test_s5_leader_crash_after_a_minority_of_newleader_acks(voters):
    """S5a.  Window: the new leader has shipped its history, one NEWLEADER ACK arrived (not a quorum
    with 5 voters; with 3 it is, so the leader is killed before it counts that ACK), and it dies.
    Rule: nothing was committed in the new epoch; every txn committed before survives; all converge."""
    s = scenario(voters)
    s.elect()
    s.writes(3)
    old = s.leader()
    s.crash(old)
    s.elect()   # a new leader; now kill the next one mid-sync
    lead = s.leader()
    s.restart(old)
    s.elect()
    before = dict(s.committed())
    s.crash(lead)
    acks = len(s.received(what=NEWLEADER_ACK))
    need_minority = 1 if voters == 5 else 0
    s.run_until(lambda: len(s.received(what=NEWLEADER_ACK)) >= acks + need_minority and
                any(s.host(x).is_leader() for x in s.up()) and
                not any(s.host(x).peer.serving for x in s.up() if s.host(x).is_leader()),
                what="a leader with a minority of NEWLEADER ACKs")
    new = next(x for x in s.up() if s.host(x).is_leader())
    s.crash(new)
    s.restart(lead)
    s.restart(new)
    converged_with(s, before)


@pytest.mark.parametrize("voters", VOTERS)
def test_s5_leader_crash_after_the_newleader_quorum_before_any_uptodate(voters):
    """S5b.  Window: a txn X was logged by a quorum in epoch 1 but its COMMIT never went out; the next
    leader ships X, gets its NEWLEADER quorum (X is now committed, COMMIT-LD), and dies before any
    UPTODATE leaves.  Rule (I3, I4): X is on a quorum, so the leader after that commits it too."""
    s = scenario(voters)
    lead = s.elect()
    s.writes(2)
    s.hold(m.Commit, src=lead)
    x = s.write(b"x")
    s.settle(10)
    s.crash(lead)
    s.drop_held()
    s.hold(m.UpToDate)
    s.run_until(lambda: any(s.host(y).is_leader() and s.host(y).peer.serving for y in s.up()),
                what="the NEWLEADER quorum")
    second = s.leader()
    assert not any(s.host(y).peer.serving for y in s.up() if y != second)
    s.crash(second)
    s.drop_held()
    s.restart(lead)
    s.restart(second)
    converged_with(s, [x])


@pytest.mark.parametrize("voters", VOTERS)
def test_s6_ackepoch_minus_one_for_an_epoch_already_accepted(voters):
    """S6a.  Window: a follower accepted the leader's epoch, sent its ACKEPOCH, and lost the link before
    its NEWLEADER ACK; it reconnects to the same leader in the same epoch.  Rule (5.): it cannot promise
    e' twice, so its second ACKEPOCH carries -1; it is still synced and serves."""
    s = scenario(voters)
    lead = s.elect()
    f = min(s.followers())
    s.crash(f)
    s.writes(2)
    trap = s.crash_at(f, before_write(SetCurrentEpoch), label="before its NEWLEADER ACK")
    s.restart(f)
    s.run_until_fired(trap)
    mark = len(s.received(dst=lead, src=f))
    s.restart(f)
    s.converge()
    acks = [msg for _, _, msg in s.received(dst=lead, src=f)[mark:] if isinstance(msg, m.AckEpoch)]
    assert [a.current_epoch for a in acks] == [-1]
    assert s.leader() == lead


def test_s6_a_follower_more_recent_than_the_leader_makes_it_abdicate():
    """S6b.  Window: server 3 holds the newest history but its election notifications are late; 1 and
    2 elect 2, and 3 joins during 2's discovery (1's ACKEPOCH is slow).  Rule (5., step 4): 3's
    ACKEPOCH is ahead of 2's (currentEpoch, lastZxid), so 2 abdicates; 3 leads and keeps its txns."""
    from coordcore.zab.election import Notification
    s = scenario(3)
    lead = s.elect()
    assert lead == 3
    s.writes(2)
    s.hold(m.Proposal, src=3)
    z = s.write(b"newest")
    s.settle(5)
    s.crash(3)
    s.drop_held()
    s.crash(1)
    s.crash(2)
    s.hold(Notification, src=3)
    s.hold(m.AckEpoch, src=1)
    for sid in (1, 2, 3):
        s.restart(sid)
    s.run_until(lambda: s.host(2).is_leader(), what="2 LEADING")
    s.release(src=3)
    s.run_until(lambda: s.received(dst=2, src=3, what=m.AckEpoch), what="3's ACKEPOCH")
    assert s.host(2).peer.state == PeerState.LOOKING
    s.release()
    s.converge()
    assert s.leader() == 3 and z in dict(s.host(1).applied)


@pytest.mark.parametrize("voters", VOTERS)
def test_s7_proposal_ack_overtakes_the_newleader_ack_and_commits_precede_uptodate(voters):
    """S7.  Window: a follower rejoins a broadcasting leader; its NEWLEADER ACK is delayed (a reconnect
    reorders it) so an ACK of a live proposal reaches the leader first; and COMMITs reach the follower
    between its NEWLEADER ACK and UPTODATE.  Rule (6.2 step 4, ZOOKEEPER-4394/-4685): the leader takes
    the early ACK, the follower logs and matches the COMMITs; no shutdown, everything applies."""
    s = scenario(voters)
    lead = s.elect()
    f = min(s.followers())
    s.crash(f)
    s.writes(3)
    s.hold(NEWLEADER_ACK, src=f)
    s.hold(m.UpToDate, dst=f)
    s.restart(f)
    s.run_until(lambda: s.held_msgs, what="the NEWLEADER ACK")
    zs = s.writes(3, settle_ms=30)
    early = s.received(dst=lead, src=f, what=PROPOSAL_ACK)
    assert early, "no proposal ACK overtook the NEWLEADER ACK"
    assert all(z in s.acked() for z in zs)
    s.release()
    converged_with(s, zs)
    got = [type(msg) for _, _, msg in s.received(dst=f)]
    newleader = len(got) - 1 - got[::-1].index(m.NewLeader)
    assert m.Commit in got[newleader:got.index(m.UpToDate, newleader)], "no COMMIT before UPTODATE"

    assert s.host(lead).is_leader() and s.leader() == lead


@pytest.mark.parametrize("voters", VOTERS)
def test_s8_learner_joins_during_heavy_broadcast(voters):
    """S8.  Window: a follower restarts and syncs while the leader proposes a txn every millisecond.
    Rule (6.1 "Then"): outstanding proposals are queued to it after its history, it ACKs them, and it
    ends with exactly the committed sequence."""
    s = scenario(voters)
    s.elect()
    f = min(s.followers())
    s.crash(f)
    s.writes(5)
    s.start(f)
    zs = []
    for _ in range(60):
        zs.append(s.write())
        s.settle(1)
    converged_with(s, zs)


def test_s4_a_crash_between_new_epoch_txns_and_current_epoch_restarts_and_loses_nothing():
    """S4.  Window: the follower's sync history holds txns of the leader's new epoch; it has fsynced them
    and not yet written currentEpoch (ZAB's order: history first, ZOOKEEPER-4785).  Its disk then holds
    currentEpoch < epoch(last logged) <= acceptedEpoch -- the one state outside I6 that storage loads
    (storage/epochs.py; ZooKeeper refuses to start there, ZOOKEEPER-1653).  Crashed exactly there, it
    must restart, keep advertising the older epoch, rejoin and lose nothing."""
    s = Script(3)   # no tolerance needed: the checker counts the window, and raises on any other I6 break
    s.elect()
    f = min(s.followers())
    miss_an_epoch(s, f)
    trap = s.crash_at(f, before_write(SetCurrentEpoch))
    s.restart(f)
    s.run_until_fired(trap)
    disk = s.disk(f)
    assert disk.current_epoch < zx.epoch(disk.last_durable_zxid) <= disk.accepted_epoch
    s.restart(f)
    s.converge()
    assert s.sim.counters.get("I6-SYNC window", 0) >= 1
