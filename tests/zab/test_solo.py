"""Solo, the standalone server's consensus: a quorum of one behind QuorumPeer's step API."""
from coordcore import zxid as zx
from coordcore.zab.ready import Append
from coordcore.zab.solo import Solo


def test_nothing_is_applied_before_it_is_durable_and_then_in_order_through_the_persisted_zxid():
    solo = Solo(last_zxid=0)
    zxids = [solo.propose(b"t%d" % i) for i in range(3)]
    assert zxids == [1, 2, 3]
    ready = solo.ready()
    assert ready.writes == [Append(1, b"t0"), Append(2, b"t1"), Append(3, b"t2")]
    assert ready.applies == [] and ready.messages == []
    solo.persisted(2)
    assert solo.ready().applies == [(1, b"t0"), (2, b"t1")]
    assert solo.applied_zxid == 2
    solo.persisted(3)
    ready = solo.ready()
    assert ready.applies == [(3, b"t2")] and ready.applied_zxid == 3
    assert solo.ready().applies == []  # handed out once


def test_zxids_continue_in_the_epoch_the_log_has():
    last = zx.make(3, 41)
    solo = Solo(last_zxid=last)
    assert solo.next_zxid() == zx.make(3, 42)
    assert solo.propose(b"x") == zx.make(3, 42)
