"""One scripted scenario per ZooKeeper data-loss bug of the ZAB reference, section 13.

Each test crashes (or reorders) exactly in the window the bug lived in and asserts what must hold
afterwards.  The simulator's checker runs after every event too (tests/zab/scenario_util.py).
"""
from __future__ import annotations

import pytest

from coordcore import zxid as zx
from coordcore.testing.sim.script import (NEWLEADER_ACK, PROPOSAL_ACK, after_send, after_sync, after_write,
                                          before_send, in_phase)
from coordcore.zab import messages as m
from coordcore.zab.learner import Phase as LearnerPhase
from coordcore.zab.ready import InstallSnapshot, SetCurrentEpoch
from scenario_util import applied_anywhere, converged_with, logged_anywhere, miss_an_epoch, scenario, sync_head

VOTERS = [3, 5]


@pytest.mark.parametrize("voters", VOTERS)
def test_zookeeper_1154_no_diff_on_top_of_a_txn_the_leader_never_had(voters):
    """ZOOKEEPER-1154/1156.  Window: the old leader logged a txn nobody else has, died, and rejoins
    the new epoch.  Rule: TRUNC to the last common zxid (keeping everything <= it) or SNAP, never DIFF;
    the txn never becomes visible; nothing committed is cut."""
    s = scenario(voters)
    old = s.elect()
    zs = s.writes(3)
    s.hold(m.Proposal, src=old)
    z = s.write(b"leader-only")
    s.settle(5)
    s.crash(old)
    s.drop_held()
    s.elect()
    s.restart(old)
    converged_with(s, zs)
    head = sync_head(s, old)
    assert isinstance(head, (m.Trunc, m.Snap)) and (not isinstance(head, m.Trunc) or head.zxid == zs[-1])
    assert applied_anywhere(s, z) == [] and logged_anywhere(s, z) == []


def test_zookeeper_2355_crash_mid_diff_does_not_look_in_sync():
    """ZOOKEEPER-2355.  Window: a follower received DIFF and the history (e.g. a closeSession txn),
    logged it durably, and crashed before NEWLEADER was acknowledged.  Rule (I7): it did not advance
    its advertised/applied point past what it applied, so after the restart the txn is applied on it
    like everywhere else."""
    s = scenario(3)
    lead = s.elect()
    f = min(s.followers())
    s.crash(f)
    zs = s.writes(3)
    trap = s.crash_at(f, after_sync(), when=in_phase(LearnerPhase.SYNC), label="DIFF history durable, not acked")
    s.restart(f)
    s.run_until_fired(trap)
    assert isinstance(sync_head(s, f), m.Diff)
    assert all(any(z == x for x, _ in s.disk(f).log) for z in zs) and not s.host(f).applied[-1:] == zs[-1:]
    s.restart(f)
    converged_with(s, zs)


def test_zookeeper_2845_logged_but_uncommitted_txns_apply_after_a_leader_change():
    """ZOOKEEPER-2845.  Window: a follower logged a txn, the COMMIT never reached it, the leader died.
    Rule (R3): on the role change the follower rebuilds from its log; the txn (committed by the
    quorum) is applied on it exactly once and its replica equals the others'."""
    s = scenario(3)
    lead = s.elect()
    s.writes(2)
    f = min(s.followers())
    s.hold(m.Commit, src=lead, dst=f)
    z = s.write(b"commit-lost")
    s.settle(10)
    assert z in s.acked() and z not in dict(s.host(f).applied)
    s.crash(lead)
    s.drop_held()
    s.elect()
    s.restart(lead)
    converged_with(s, [z])


@pytest.mark.parametrize("window", ["after InstallSnapshot", "before the NEWLEADER ACK"])
def test_zookeeper_3104_snap_sync_crash_before_the_newleader_ack(window):
    """ZOOKEEPER-3104.  Window: SNAP sync; the follower installed the snapshot and crashes before (or
    right at) its NEWLEADER ACK.  Rule: NEWLEADER comes strictly after the whole snapshot, and the
    snapshot is durable before the ACK; after the restart the follower converges."""
    s = scenario(3)
    s.elect()
    f = min(s.followers())
    lead = miss_an_epoch(s, f)
    for sid in s.up():
        s.snapshot(sid)
    s.crash(lead)
    s.restart(lead)
    s.elect()
    find = after_write(InstallSnapshot) if window == "after InstallSnapshot" else before_send(NEWLEADER_ACK)
    trap = s.crash_at(f, find, label=window)
    mark = len(s.received(dst=f))
    s.restart(f)
    s.run_until_fired(trap)
    got = [type(msg) for _, _, msg in s.received(dst=f)[mark:]]
    assert m.Snap in got and (m.NewLeader not in got or got.index(m.Snap) < got.index(m.NewLeader))
    if window != "after InstallSnapshot":
        assert s.disk(f).snapshot_zxid > 0   # durable before the ACK that was about to go
    s.restart(f)
    converged_with(s, [z for z, _ in s.committed()])


@pytest.mark.parametrize("head", ["TRUNC", "SNAP"])
def test_zookeeper_3642_abandoned_sync_reloads_from_disk(head):
    """ZOOKEEPER-3642 / 5094.  Window: a follower got TRUNC (or SNAP), the leader died before NEWLEADER.
    Rule: the abandoned sync is discarded -- memory is rebuilt from disk -- and the next sync starts
    from that; all converge, nothing committed lost."""
    s = scenario(5)
    old = s.elect()
    zs = s.writes(3)
    f = min(s.followers())
    if head == "TRUNC":
        s.hold(m.Proposal, src=old)
        s.write(b"tail")   # logged on the old leader only: it will be TRUNCated
        s.settle(5)
        s.crash(old)
        s.drop_held()
        lead = s.elect()
        rejoin = old
    else:
        s.crash(f)
        s.writes(3)
        for sid in s.up():
            s.snapshot(sid)
        s.crash(old)
        s.restart(old)
        lead = s.elect()
        rejoin = f
    s.hold(m.NewLeader, src=lead, dst=rejoin)
    s.restart(rejoin)
    want = m.Trunc if head == "TRUNC" else m.Snap
    s.run_until(lambda: s.received(dst=rejoin, what=want), what=head)
    s.crash(lead)
    s.drop_held()
    s.restart(lead)
    converged_with(s, zs)


@pytest.mark.parametrize("voters", VOTERS)
def test_zookeeper_3911_newleader_ack_never_precedes_the_durable_history(voters):
    """ZOOKEEPER-3911 (asynchronous logging).  Window: the follower's disk is slow during sync; its
    history is still unsynced when NEWLEADER arrives.  Rule (6.2 step 3): no NEWLEADER ACK until the
    history is durable; a crash then loses only unacknowledged appends; the ensemble keeps every
    committed txn (the only copy of a txn was never counted on the slow follower's word)."""
    s = scenario(voters)
    s.elect()
    f = min(s.followers())
    lead = miss_an_epoch(s, f)
    s.hold_disk(f)
    acks = len(s.received(src=f, dst=lead, what=NEWLEADER_ACK))
    seen = len(s.received(dst=f, what=m.NewLeader))
    s.restart(f)
    s.run_until(lambda: len(s.received(dst=f, what=m.NewLeader)) > seen, what="NEWLEADER")
    s.settle(50)
    assert s.disk(f).pending and len(s.received(src=f, dst=lead, what=NEWLEADER_ACK)) == acks
    assert s.disk(f).current_epoch < s.epoch(lead)
    s.crash(f)
    s.held_disks.clear()
    s.restart(f)
    converged_with(s, [z for z, _ in s.committed()])


def test_zookeeper_4394_proposal_ack_before_newleader_ack_is_accepted():
    """ZOOKEEPER-4394.  Window: a follower joining a broadcasting leader ACKs a live proposal; a
    reconnect delivers that ACK before its NEWLEADER ACK.  Rule (6.2 step 4): the leader accepts the
    reordered ACK (no NullPointerException-style shutdown), stays leader, and the follower converges."""
    s = scenario(3)
    lead = s.elect()
    f = min(s.followers())
    s.crash(f)
    s.writes(2)
    s.hold(NEWLEADER_ACK, src=f)
    s.restart(f)
    s.run_until(lambda: s.held_msgs, what="the NEWLEADER ACK")
    z = s.write()
    s.settle(20)
    assert s.received(src=f, dst=lead, what=PROPOSAL_ACK)
    s.release()
    converged_with(s, [z])
    assert s.leader() == lead and s.epoch(lead) == 1


@pytest.mark.parametrize("window", ["currentEpoch written, ACK not sent", "COMMIT right after the NEWLEADER ACK"])
def test_zookeeper_4643_4646_4685_epoch_after_history_and_early_commits(window):
    """ZOOKEEPER-4643 / 4646 / 4685.  Windows: (a) the follower wrote currentEpoch and crashed before
    its NEWLEADER ACK -- the epoch must never be written before the history is durable, so its disk
    then holds the whole sync history; (b) a COMMIT arrives right after the NEWLEADER ACK, before
    UPTODATE -- it must be matched against the logged proposal, not lost.  Both end converged."""
    s = scenario(3)
    lead = s.elect()
    f = min(s.followers())
    s.crash(f)
    zs = s.writes(3)
    if window.startswith("currentEpoch"):
        trap = s.crash_at(f, after_write(SetCurrentEpoch), label=window)
        s.restart(f)
        s.run_until_fired(trap)
        assert [z for z, _ in s.disk(f).log][-3:] == zs and not s.disk(f).pending
        s.restart(f)
        converged_with(s, zs)
    else:
        s.hold(m.UpToDate, dst=f)
        s.restart(f)
        s.run_until(lambda: s.received(src=f, dst=lead, what=NEWLEADER_ACK), what="NEWLEADER ACK")
        z = s.write(b"early-commit")
        s.settle(20)
        got = [msg for _, _, msg in s.received(dst=f)]
        assert m.Commit(z) in got
        s.release()
        converged_with(s, zs + [z])


@pytest.mark.parametrize("voters", VOTERS)
def test_zookeeper_4785_txns_vouched_for_by_the_newleader_ack_survive_the_follower(voters):
    """ZOOKEEPER-4785 (DIFF sync race).  Window: a follower ACKed NEWLEADER for a history whose only
    other copy is the leader's; the leader commits it (NEWLEADER quorum) and both die.  Rule: the ACK
    meant "durable", so the follower's disk alone carries the history into the next epoch."""
    s = scenario(voters)
    lead = s.elect()
    s.writes(2)
    others = s.followers()
    f = others[0]
    s.crash(f)
    # The txns only the leader and (after sync) f will hold: the other followers stay disconnected.
    for g in others[1:]:
        s.hold(m.Proposal, src=lead, dst=g)
    zs = [s.write(b"x%d" % i) for i in range(2)]
    s.settle(5)
    trap = s.crash_at(f, after_send(NEWLEADER_ACK), label="NEWLEADER ACK sent")
    s.restart(f)
    s.run_until_fired(trap)
    s.run_until(lambda: all(z in s.acked() for z in zs) or not s.host(lead).peer.serving, 2_000)
    s.crash(lead)
    s.drop_held()
    assert all(any(z == x for x, _ in s.disk(f).log) for z in zs)
    s.restart(f)
    s.restart(lead)
    converged_with(s, zs if all(z in s.acked() for z in zs) else [])


def test_zookeeper_4882_commit_before_local_fsync_is_not_applied_early():
    """ZOOKEEPER-4882.  Window: a COMMIT reaches a follower whose fsync of that proposal is still
    pending (a disk hiccup); it crashes then, losing the append.  Rule (R1): it never applied the txn
    before it was durable (the checker's DUR); after the restart it is resynced and applies it."""
    s = scenario(3)
    s.elect()
    f = min(s.followers())
    s.hold_disk(f)
    z = s.write(b"commit-before-fsync")
    s.settle(20)
    assert z in s.acked() and z not in dict(s.host(f).applied)
    assert s.received(dst=f, what=lambda msg: isinstance(msg, m.Commit) and msg.zxid >= z)
    s.crash(f)
    s.held_disks.clear()
    s.restart(f)
    converged_with(s, [z])


def test_zookeeper_4925_a_proposal_silently_lost_is_a_gap_not_a_hole():
    """ZOOKEEPER-4925.  Window: one PROPOSAL to a follower vanishes without the link breaking; later
    proposals and COMMITs arrive.  Rule: a history with a hole is rejected -- the follower resyncs
    instead of logging past the gap -- so its log stays contiguous and a stale follower that later
    leads cannot spread the hole."""
    s = scenario(3)
    lead = s.elect()
    f = min(s.followers())
    s.writes(2)
    s.hold(m.Proposal, src=lead, dst=f)
    gap = s.write(b"lost")
    s.settle(2)
    s.drop_held()
    after = s.writes(3)
    zs = [z for z, _ in s.disk(f).history()]
    assert gap in zs, "the follower did not resync past the lost PROPOSAL"
    assert all(zx.counter(b) == zx.counter(a) + 1 for a, b in zip(zs, zs[1:]) if zx.epoch(a) == zx.epoch(b))
    # Make the stale follower the next leader: crash the leader and the other follower's disk copy
    # is not needed -- whoever leads must have the whole committed history.
    s.crash(lead)
    s.elect()
    s.restart(lead)
    converged_with(s, [gap] + after)


@pytest.mark.parametrize("voters", VOTERS)
def test_zookeeper_5010_leader_crash_around_ephemeral_create_and_close(voters):
    """ZOOKEEPER-5010 (open upstream).  Window: the leader proposes an ephemeral create and then the
    closeSession that deletes it; a quorum logs both; its COMMITs reach one follower only, then it
    dies; the others resync by DIFF.  Rule: every replica ends with the same history --
    both txns or neither, never the create without the close."""
    s = scenario(voters)
    old = s.elect()
    s.writes(2)
    first = min(s.followers())
    for g in s.followers():
        if g != first:
            s.hold(m.Commit, src=old, dst=g)
    create = s.write(b"create-ephemeral")
    close = s.write(b"close-session")
    s.settle(10)
    assert {create, close} <= dict(s.host(first).applied).keys()
    s.crash(old)     # the others logged both and never got a COMMIT
    s.drop_held()
    s.elect()
    s.restart(old)
    s.converge()
    histories = {tuple(s.host(sid).applied) for sid in s.sim.sids}
    assert len(histories) == 1
    applied = dict(next(iter(histories)))
    assert (create in applied) == (close in applied)
