"""Ensemble durability and learner sync, on coordcore and on Apache ZooKeeper 3.8.

* kill -9 of the leader (or of a follower) under a stream of writes: writes resume, and every
  ACKNOWLEDGED write is on every member afterwards;
* how a restarted member is synced: DIFF when it fell behind within the leader's log, SNAP when it fell
  behind further (snapCount small, hundreds of writes while it was down), TRUNC when it holds an
  uncommitted tail of an old epoch (the tail is visible nowhere afterwards);
* the whole ensemble killed with SIGKILL and restarted: every acknowledged write is there.

The sync kind is read from the restarted member's log (see ensemble_util.sync_events): coordcore's
``sync.diff`` / ``sync.trunc`` / ``sync.snap`` events; ZooKeeper's Learner lines "Getting a diff from the
leader", "Getting a snapshot from leader", "Truncating log to get in sync with the leader" (INFO/WARN,
kept by the harness's log4j config: rootLogger=INFO).

ZooKeeper's leader decides in LearnerHandler.syncFollower; two facts the tests rely on:
* it keeps the last 500 committed proposals in memory (ZKDatabase's committedLog, commitLogCount) and
  DIFFs a learner whose last zxid is among them; an older learner gets a DIFF from the on-disk txn log
  only if the log files it would read are smaller than a third of the last snapshot
  (snapshotSizeFactor 0.33), and txn log files are preallocated to 64 MB, so in practice it SNAPs;
* a learner whose last zxid is beyond the leader's committed log is TRUNCed -- but if the leader has
  proposals of a newer epoch after the learner's last zxid, it will not TRUNC across the epoch boundary
  ("Cannot send TRUNC to peer sid: N peer zxid is from different epoch") and sends a SNAP instead.
coordcore keeps the same in-memory window (coordcore/zab/history.py, 500 applied txns, trimmed in
chunks) and TRUNCs to the newest common point in both cases.

Timing: every wait has a deadline; nothing asserts a duration.
"""
from __future__ import annotations

import pytest
from kazoo.exceptions import KazooException

from coordcore.testing.ensembles import make_ensemble

try:
    from tests.integration.ensemble_util import (BACKENDS, Writer, assert_acked_everywhere, children_on, clients,
                                                 create_surely, latest_run_log, log_count, member_client,
                                                 wait_synced, wait_until)
except ImportError:
    from ensemble_util import (BACKENDS, Writer, assert_acked_everywhere, children_on, clients,  # noqa: F401
                               create_surely, latest_run_log, log_count, member_client, wait_synced, wait_until)

pytestmark = pytest.mark.timeout(150)

__all__ = ["clients"]  # the fixture, imported


def create_many(client, paths, data: bytes = b"x", timeout: float = 60) -> None:
    """Create ``paths``, pipelined (kazoo keeps them in order on the connection); each must succeed."""
    pending = [client.create_async(p, data) for p in paths]
    for p, r in zip(paths, pending):
        r.get(timeout=timeout)


SNAP_COUNT = 50
SNAP_WRITES = 800  # beyond both leaders' in-memory window of 500 committed txns


def other_voters(ens, *sids):
    return [s for s in ens.sids if s not in sids]


def srvr_zxid(ens, sid: int) -> int:
    return int(ens.srvr(sid)["Zxid"], 16)


def epoch_of(zxid: int) -> int:
    return zxid >> 32


# -- kill -9 under a stream of writes -------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("victim", ["leader", "follower"])
def test_kill9_under_writes_loses_no_acknowledged_write(backend, victim, clients):
    # snapCount small: snapshots are taken (and, on ZooKeeper, txn logs rolled) during the stream
    with make_ensemble(backend, voters=3, config={"snapCount": SNAP_COUNT}) as ens:
        leader = ens.leader()
        target = leader if victim == "leader" else next(s for s in ens.sids if s != leader)
        client = clients(ens.connect_string, timeout=10)
        client.create("/stream")
        writer = Writer(client, "/stream")
        writer.start()
        try:
            writer.wait_acked(40)
            at_kill = writer.acked_count()
            ens.kill(target)
            modes = ens.wait_serving(45)
            assert set(modes) == set(other_voters(ens, target))
            if victim == "leader":
                assert ens.leader() != target
            else:
                assert ens.leader() == leader  # a follower's crash costs no election
            writer.wait_acked(at_kill + 40, timeout=45, message="writes resume after the kill")
            ens.start_member(target)  # it catches up while the writes go on
            assert ens.mode(target) == "follower"
            at_restart = writer.acked_count()
            writer.wait_acked(at_restart + 20, timeout=45, message="writes go on after the restart")
        finally:
            writer.finish()
        assert len(writer.acked) >= 100
        assert_acked_everywhere(ens, clients, writer)


# -- how a restarted follower is synced -----------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_follower_behind_within_the_leaders_log_is_synced_by_diff(backend, clients):
    """A follower and an observer, killed, miss 60 writes (far fewer than the 500 the leader keeps)."""
    with make_ensemble(backend, voters=3, observers=1) as ens:
        leader = ens.leader()
        follower = next(s for s in (1, 2, 3) if s != leader)
        behind = (follower, 4)
        c = member_client(ens, clients, leader)
        c.create("/diff")
        create_many(c, [f"/diff/before-{i:03d}" for i in range(20)])
        for sid in behind:
            assert len(children_on(member_client(ens, clients, sid), "/diff")) == 20  # they have them
            ens.kill(sid)
        create_many(c, [f"/diff/while-down-{i:03d}" for i in range(60)])
        for sid in behind:
            ens.start_member(sid)
        assert ens.mode(follower) == "follower" and ens.mode(4) == "observer"
        for sid in behind:
            events = wait_synced(ens, sid)
            kind, fields = events[0]
            assert kind == "diff", f"member {sid} was synced by {events}"
            if backend == "coordcore":  # DIFF names the learner's own last zxid
                assert fields["zxid"] == fields["last_zxid"], fields
            assert len(children_on(member_client(ens, clients, sid), "/diff")) == 80


@pytest.mark.parametrize("backend", BACKENDS)
def test_follower_behind_past_a_snapshot_is_synced_by_snap(backend, clients):
    """A follower and an observer, killed, miss 800 writes while the leader snapshots (snapCount=50)."""
    with make_ensemble(backend, voters=3, observers=1, config={"snapCount": SNAP_COUNT}) as ens:
        leader = ens.leader()
        follower = next(s for s in (1, 2, 3) if s != leader)
        behind = (follower, 4)
        c = member_client(ens, clients, leader)
        c.create("/snap")
        create_many(c, [f"/snap/before-{i:03d}" for i in range(10)])
        for sid in behind:
            assert len(children_on(member_client(ens, clients, sid), "/snap")) == 10
        snapshot_line = r"snapshot\.saved" if backend == "coordcore" else r"Snapshotting: 0x"
        snapshots_before = log_count(ens, leader, snapshot_line)
        for sid in behind:
            ens.kill(sid)
        create_many(c, [f"/snap/while-down-{i:04d}" for i in range(SNAP_WRITES)])
        # the premise: the leader took a snapshot while they were down
        wait_until(lambda: log_count(ens, leader, snapshot_line) > snapshots_before, 20,
                   message=f"leader {leader} snapshots (snapCount={SNAP_COUNT})")
        for sid in behind:
            ens.start_member(sid)
        assert ens.mode(follower) == "follower" and ens.mode(4) == "observer"
        for sid in behind:
            events = wait_synced(ens, sid)
            assert events[0][0] == "snap", f"member {sid} was synced by {events}"
            assert len(children_on(member_client(ens, clients, sid), "/snap")) == 10 + SNAP_WRITES
        # and the snapshot it was sent is durable: after a kill -9 and restart it still has everything
        ens.kill(follower)
        ens.start_member(follower)
        assert len(children_on(member_client(ens, clients, follower), "/snap")) == 10 + SNAP_WRITES


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("new_epoch_writes", [True, False], ids=["new-epoch-writes", "no-new-epoch-writes"])
def test_old_leader_with_an_uncommitted_tail_is_truncated(backend, new_epoch_writes, clients):
    """The leader proposes a write no follower ever hears (its links to both are cut), is killed, the
    others elect and (maybe) write on; restarted, the old leader must drop the tail.

    coordcore TRUNCs it in both cases.  ZooKeeper TRUNCs it when the new leader has nothing of its own
    epoch yet; once it has, ZooKeeper refuses to TRUNC across the epoch boundary and SNAPs."""
    # sessions long enough that none expires (a closeSession would be a txn of the new epoch)
    with make_ensemble(backend, voters=3, config={"maxSessionTimeout": 120000}) as ens:
        old = ens.leader()
        rest = other_voters(ens, old)
        writer = member_client(ens, clients, old, timeout=120)
        majority_client = member_client(ens, clients, rest[0], timeout=120)
        writer.create("/trunc")
        create_many(writer, [f"/trunc/committed-{i}" for i in range(5)])
        common = srvr_zxid(ens, old)  # the last committed txn: the end of the history all share
        wait_until(lambda: all(srvr_zxid(ens, s) == common for s in ens.sids), 10,
                   message=f"every member applied {common:#x}")
        ens.partition([[old], rest])
        unacked = writer.create_async("/trunc/unacked", b"never acknowledged")
        modes = ens.wait_serving(45, sids=rest)
        new = next(s for s, m in modes.items() if m == "leader")
        # the old leader gives up (it has no quorum); its client never hears OK
        wait_until(lambda: ens.mode(old) != "leader", 30, message=f"old leader {old} steps down")
        with pytest.raises((KazooException, writer.handler.timeout_exception)):
            unacked.get(timeout=10)
        ens.kill(old)
        if new_epoch_writes:
            create_surely(majority_client, "/trunc/new-epoch-0", b"e2")
            create_many(majority_client, [f"/trunc/new-epoch-{i}" for i in range(1, 10)])
            assert epoch_of(srvr_zxid(ens, new)) > epoch_of(common)
        else:  # the premise: the new leader has no txn of its own epoch yet
            z = srvr_zxid(ens, new)
            assert z == common or (epoch_of(z) > epoch_of(common) and z & 0xFFFFFFFF == 0), hex(z)
        ens.heal()
        ens.start_member(old)
        assert ens.mode(old) == "follower" and ens.leader() == new
        events = wait_synced(ens, old)
        kind, fields = events[0]
        if backend == "coordcore":
            assert kind == "trunc", f"member {old} was synced by {events}"
            # the common point, below the old leader's own last zxid (its uncommitted tail)
            assert int(fields["zxid"], 16) == common < int(fields["last_zxid"], 16), fields
        elif new_epoch_writes:
            assert kind == "snap", f"member {old} was synced by {events}"
            assert "peer zxid is from different epoch" in latest_run_log(ens, new)
        else:
            assert kind == "trunc", f"member {old} was synced by {events}"
            assert int(fields["zxid"], 16) == common, fields
        # the tail is visible nowhere; what the majority wrote is everywhere
        expected = {f"committed-{i}" for i in range(5)} | (
            {f"new-epoch-{i}" for i in range(10)} if new_epoch_writes else set())
        for sid in ens.sids:
            assert children_on(member_client(ens, clients, sid), "/trunc") == expected, f"member {sid}"
        # ... also after the old leader restarts once more from its (truncated) log
        ens.kill(old)
        ens.start_member(old)
        assert children_on(member_client(ens, clients, old), "/trunc") == expected
        create_surely(majority_client, "/trunc/after", b"")
        assert "after" in children_on(member_client(ens, clients, old), "/trunc")


# -- the whole ensemble killed --------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_whole_ensemble_kill9_and_restart_keeps_every_acknowledged_write(backend, clients):
    with make_ensemble(backend, voters=3, config={"snapCount": SNAP_COUNT}) as ens:
        client = clients(ens.connect_string, timeout=10)
        client.create("/all")
        writer = Writer(client, "/all", reply_timeout=3)
        writer.start()
        try:
            writer.wait_acked(80)
            for sid in ens.sids:
                ens.kill(sid)
            assert all(not ens.running(s) for s in ens.sids)
        finally:
            writer.finish()
        acked = len(writer.acked)
        for sid in ens.sids:
            ens.start_member(sid, wait=False)
        ens.wait_serving(60)
        assert_acked_everywhere(ens, clients, writer)
        assert acked >= 80
