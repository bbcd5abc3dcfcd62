"""Named scenarios B1-B11 and O1 of the ZAB reference (section 15, broadcast, failover, observers), scripted.

Each test is one schedule on coordcore.testing.sim.script, with the simulator's checker after every
event (see tests/zab/scenario_util.py).  B10 (failed writes consume zxids) needs the node layer:
txns are opaque bytes here, so it belongs with the node-level simulator.
"""
from __future__ import annotations

import pytest

from coordcore import zxid as zx
from coordcore.testing.sim.script import after_send, before_send, before_write
from coordcore.zab import messages as m
from coordcore.zab.election import PeerState
from coordcore.zab.ready import SetAcceptedEpoch, SetCurrentEpoch
from scenario_util import applied_anywhere, converged_with, logged_anywhere, scenario

VOTERS = [3, 5]


@pytest.mark.parametrize("voters", VOTERS)
def test_b1_leader_crash_before_any_follower_logs_the_proposal(voters):
    """B1.  Window: the leader logged a proposal, no PROPOSAL reached anyone, it dies.
    Rule: the txn is lost everywhere (truncated on the old leader when it rejoins) and was never acked."""
    s = scenario(voters)
    old = s.elect()
    s.writes(3)
    s.hold(m.Proposal, src=old)
    z = s.write(b"b1")
    s.settle(5)
    s.crash(old)
    s.drop_held()
    s.elect()
    s.writes(2)
    s.restart(old)
    converged_with(s, [])
    assert z not in s.acked() and logged_anywhere(s, z) == [] and applied_anywhere(s, z) == []


@pytest.mark.parametrize("branch", ["holder leads: committed", "holder down: truncated"])
def test_b2_leader_crash_after_a_minority_logged_the_proposal(branch):
    """B2.  Window (5 voters): the proposal reached one follower only, then the leader died.
    Rule (I4): it is committed by the next leader (the holder has the newest history and wins) or,
    if the holder is down during the election, truncated everywhere when it rejoins; nothing else."""
    s = scenario(5)
    old = s.elect()
    s.writes(3)
    holder = min(s.followers())
    for f in s.followers():
        if f != holder:
            s.hold(m.Proposal, src=old, dst=f)
    z = s.write(b"minority")
    s.settle(5)
    assert sorted(logged_anywhere(s, z)) == sorted([old, holder]) and z not in s.acked()
    s.crash(old)
    s.drop_held()
    if branch.startswith("holder down"):
        s.crash(holder)
        s.elect()
        s.writes(2)
        s.restart(holder)
    else:
        assert s.elect() == holder
    s.restart(old)
    s.converge()
    if branch.startswith("holder down"):
        assert logged_anywhere(s, z) == [] and applied_anywhere(s, z) == []
    else:
        assert sorted(applied_anywhere(s, z)) == s.sim.sids


@pytest.mark.parametrize("voters", VOTERS)
def test_b3_leader_crash_after_a_quorum_acked_before_commit_went_out(voters):
    """B3.  Window: a quorum ACKed the proposal; the leader dies before its first COMMIT is sent (so
    it applied nothing and the client saw only a disconnect).  Rule (I3): the next leader commits it."""
    s = scenario(voters)
    old = s.elect()
    s.writes(2)
    trap = s.crash_at(old, before_send(m.Commit), label="quorum ACKed, COMMIT not sent")
    z = s.write(b"b3")
    s.run_until_fired(trap)
    assert z not in s.acked()
    s.elect()
    s.restart(old)
    converged_with(s, [z])


@pytest.mark.parametrize("voters", VOTERS)
def test_b4_leader_crash_after_commit_reached_some_followers(voters):
    """B4.  Window: the COMMIT went to the first follower only, then the leader died.
    Rule: the follower that applied it and every other server end with it applied; no server
    applies a different txn at that zxid."""
    s = scenario(voters)
    old = s.elect()
    s.writes(2)
    first = min(s.followers())
    trap = s.crash_at(old, after_send(m.Commit, to=first), label="COMMIT sent to one follower")
    z = s.write(b"b4")
    s.run_until_fired(trap)
    s.run_until(lambda: z in dict(s.host(first).applied) or not s.host(first).peer.serving, 1000)
    s.elect()
    s.restart(old)
    converged_with(s, [z])


@pytest.mark.parametrize("voters", VOTERS)
def test_b5_isolated_leader_abdicates_and_its_unacked_writes_are_truncated(voters):
    """B5.  Window: the leader is partitioned from every follower and keeps taking writes.
    Rule: it acknowledges none of them, steps down within about syncLimit ticks, the majority elects,
    and its proposals are truncated when it rejoins."""
    s = scenario(voters)
    old = s.elect()
    s.writes(2)
    s.isolate(old)
    start = s.now
    zs = [s.write(b"isolated") for _ in range(3)]
    s.run_until(lambda: s.host(old).peer.state == PeerState.LOOKING, 10_000)
    assert s.now - start <= (s.sim.cfg.sync_limit + 2) * s.sim.cfg.tick_ms
    assert not any(z in s.acked() for z in zs)
    s.run_until(lambda: s.leader() not in (None, old), 20_000)
    s.writes(2)
    s.heal()
    converged_with(s, [])
    for z in zs:
        assert applied_anywhere(s, z) == [] and logged_anywhere(s, z) == []


def test_b6_slow_follower_fsync_is_dropped_and_resynced():
    """B6.  Window: one follower's fsync takes longer than syncLimit while writes continue.
    Rule: commits continue with the other quorum; the leader drops the slow follower; once its disk
    catches up it rejoins and converges.  A slow leader fsync only delays commits."""
    s = scenario(3)
    lead = s.elect()
    slow, fast = sorted(s.followers())
    s.hold_disk(slow)
    zs = s.writes(3, settle_ms=20)
    assert all(z in s.acked() for z in zs)
    s.settle((s.sim.cfg.sync_limit + 3) * s.sim.cfg.tick_ms)
    assert zs[-1] not in dict(s.host(slow).applied)   # nothing applied before its own fsync (R1)
    s.fsync(slow)
    converged_with(s, zs)
    assert s.leader() == lead
    # A slow leader disk: nothing commits until its own fsync, then everything in order.
    s.hold_disk(lead)
    zs2 = s.writes(3, settle_ms=20)
    assert not s.acked().keys() & set(zs2)   # the leader counts itself only after its own fsync
    s.fsync(lead)
    converged_with(s, zs + zs2)


def test_b6_a_follower_that_does_not_ack_within_sync_limit_is_dropped():
    """B6 (the drop).  Window: a follower's fsync stalls for more than syncLimit ticks while the rest of
    the quorum commits.  Rule (section 8): the leader drops a learner that has not ACKed its oldest
    proposal within syncLimit ticks; the learner then rejoins through a new sync.  The drop is the
    leader going silent (no link close in the step API): the learner leaves syncLimit ticks after the
    last packet it got, so it is out within about two syncLimits of the stall."""
    s = scenario(3)
    lead = s.elect()
    slow = min(s.followers())
    tick, limit = s.sim.cfg.tick_ms, s.sim.cfg.sync_limit * s.sim.cfg.tick_ms

    def syncs() -> int:
        return len(s.received(dst=slow, what=lambda x: isinstance(x, (m.Diff, m.Trunc, m.Snap))))

    synced_before = syncs()
    s.hold_disk(slow)
    zs = s.writes(3, settle_ms=20)
    assert all(z in s.acked() for z in zs)           # committed on the others' ACKs meanwhile
    s.settle(limit + 2 * tick)                        # the leader checks once a tick
    pings = len(s.received(src=lead, dst=slow, what=m.Ping))
    s.settle(2 * tick)                                # four PING rounds, none of them to `slow`
    assert len(s.received(src=lead, dst=slow, what=m.Ping)) == pings
    s.settle(limit)
    assert not s.host(slow).peer.serving
    s.fsync(slow)
    converged_with(s, zs)
    assert syncs() > synced_before                    # it came back through a new sync


SITES_B7 = {
    "leader before SetAcceptedEpoch": (before_write(SetAcceptedEpoch), True),
    "leader before SetCurrentEpoch": (before_write(SetCurrentEpoch), True),
    "follower before SetCurrentEpoch": (before_write(SetCurrentEpoch), False),
}


@pytest.mark.parametrize("voters", VOTERS)
@pytest.mark.parametrize("site", ["pending appends lost"] + sorted(SITES_B7))
def test_b7_whole_ensemble_restart_at_a_crash_point(voters, site):
    """B7.  Window: every server dies at once: with appends still pending, or while the next leader
    is writing an epoch file.  Rule: recovery passes I6 and every acknowledged write survives."""
    s = scenario(voters)
    lead = s.elect()
    zs = s.writes(4)
    if site == "pending appends lost":
        for sid in s.sim.sids:
            s.hold_disk(sid)
        s.write(b"pending-everywhere")
        s.settle(5)
    for sid in s.sim.sids:
        s.crash(sid)
    s.held_disks.clear()
    if site != "pending appends lost":
        find, on_leader = SITES_B7[site]
        who = lead if on_leader else min(x for x in s.sim.sids if x != lead)
        trap = s.crash_at(who, find, label=site)
        for sid in s.sim.sids:
            s.restart(sid)
        s.run_until_fired(trap)
        s.restart(who)
    else:
        for sid in s.sim.sids:
            s.restart(sid)
    converged_with(s, zs)


@pytest.mark.parametrize("voters", VOTERS)
def test_b8_rolling_restart_and_leader_restarts_under_load(voters):
    """B8.  Window: every server restarted in turn while writes flow, then the leader alone twice.
    Rule: no acknowledged write is lost; everyone converges."""
    s = scenario(voters)
    s.elect()
    for sid in s.sim.sids:
        s.writes(3)
        s.crash(sid)
        if s.leader() is not None:
            s.writes(2)
        s.restart(sid)
        s.elect()
    for _ in range(2):
        s.writes(3)
        s.crash(s.leader())
        s.elect()
        s.restart(next(x for x in s.sim.sids if not s.host(x).up))
    converged_with(s, list(s.acked()))


def test_b9_counter_rollover_forces_a_new_epoch(monkeypatch):
    """B9 / ZOOKEEPER-1277.  Window: the leader's counter reaches the limit under load (the limit is
    lowered from 0xffffffff to 20 so the test needs no four billion txns).  Rule: it abdicates before
    using the limit; a new epoch follows; nothing is lost or duplicated."""
    from coordcore.zab import leader as leader_mod
    monkeypatch.setattr(leader_mod, "COUNTER_LIMIT", 20)
    s = scenario(3)
    lead = s.elect()
    zs = []
    while s.host(lead).peer.next_zxid() is not None:
        zs.append(s.write())
        s.settle(1)
    assert zx.counter(zs[-1]) == 19
    s.settle(20)
    s.elect()
    assert s.epoch(s.leader()) == 2
    more = s.writes(3)
    converged_with(s, [z for z in zs if z in s.acked()] + more)
    assert [z for z, _ in s.host(1).applied] == sorted(set(z for z, _ in s.host(1).applied))


def test_b11_snapshot_mid_load_then_crash_and_replay():
    """B11.  Window: a follower snapshots its applied state mid-load (its log below is purged), more
    txns follow, it crashes with some unsynced.  Rule: it restarts from the snapshot plus its log and
    converges to the same history."""
    s = scenario(3)
    s.elect()
    f = min(s.followers())
    s.writes(5)
    s.snapshot(f)
    assert s.disk(f).snapshot_zxid > 0
    s.writes(5)
    s.hold_disk(f)
    s.writes(2)
    s.crash(f)
    s.held_disks.clear()
    s.restart(f)
    converged_with(s, list(s.acked()))


def test_o1_observer_sees_only_committed_txns_and_never_counts():
    """O1.  Window: an observer through commits, voter failures, its own crash and a catch-up.
    Rule: it applies only committed txns in order; its crash never blocks commits; with a voter quorum
    gone it cannot keep the leader up; it catches up via DIFF (short absence) or SNAP (after purge)."""
    s = scenario(3, 1)
    obs = 4
    lead = s.elect()
    assert s.host(obs).peer.state == PeerState.OBSERVING
    zs = s.writes(3)
    got = [msg for _, _, msg in s.received(dst=obs)]
    live = got[got.index(m.UpToDate(zx.make(s.epoch(lead), 0))) + 1:]
    assert {type(x) for x in live} <= {m.Inform, m.Ping}   # never a PROPOSAL or COMMIT
    assert [z for x in live if isinstance(x, m.Inform) for z, _ in x.txns] == zs
    s.crash(obs)
    zs += s.writes(3)
    assert all(z in s.acked() for z in zs)
    s.restart(obs)
    converged_with(s, zs)
    assert isinstance([msg for _, d, msg in s.received(dst=obs) if isinstance(msg, (m.Diff, m.Snap))][-1], m.Diff)
    # One voter down: the other voter plus the leader still commit; the observer does not count.
    f1, f2 = sorted(s.followers())
    s.crash(f1)
    z = s.write()
    s.settle(20)
    assert z in s.acked()
    s.crash(f2)
    s.run_until(lambda: s.host(lead).peer.state == PeerState.LOOKING, 5_000)
    s.restart(f1)
    s.restart(f2)
    s.crash(obs)
    s.elect()
    s.writes(3)
    for sid in s.up():
        s.snapshot(sid)
    lead = s.leader()
    s.crash(lead)
    s.restart(lead)
    s.elect()
    s.restart(obs)
    converged_with(s, [z])
    assert isinstance([msg for _, d, msg in s.received(dst=obs) if isinstance(msg, (m.Diff, m.Snap))][-1], m.Snap)
