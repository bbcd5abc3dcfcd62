"""SimDisk obeys the host rules the simulator relies on: pending vs durable, rule 1, crash, truncate."""
import pytest

from coordcore import zxid as zx
from coordcore.testing.sim.disk import HostRuleError, SimDisk, decode_history, encode_history

Z1, Z2, Z3 = zx.make(1, 1), zx.make(1, 2), zx.make(1, 3)


def test_an_append_is_durable_only_after_sync_and_a_crash_loses_it():
    d = SimDisk()
    d.append(Z1, b"a")
    assert not d.holds_durably(Z1, b"a")
    d.sync()
    d.append(Z2, b"b")
    assert d.crash() == 1
    assert d.load().txns == [(Z1, b"a")]


def test_a_crash_may_keep_a_prefix_of_the_pending_appends_never_a_hole():
    d = SimDisk()
    for z, t in ((Z1, b"a"), (Z2, b"b"), (Z3, b"c")):
        d.append(z, t)
    d.crash(keep_pending=1)
    assert [z for z, _ in d.load().txns] == [Z1]


def test_an_epoch_write_first_syncs_every_earlier_append():
    d = SimDisk()
    d.append(Z1, b"a")
    d.set_current_epoch(1)
    d.crash()
    assert d.holds_durably(Z1, b"a") and d.current_epoch == 1


def test_an_append_that_goes_backwards_breaks_the_host_rules():
    d = SimDisk()
    d.append(Z2, b"b")
    with pytest.raises(HostRuleError):
        d.append(Z1, b"a")


def test_truncate_keeps_txns_up_to_the_cut_and_drops_a_newer_snapshot():
    d = SimDisk()
    d.append(Z1, b"a")
    d.append(Z2, b"b")
    d.save_snapshot(Z2, [(Z1, b"a"), (Z2, b"b")])
    removed = d.truncate(Z1)
    assert removed == [(Z2, b"b")]
    state = d.load()
    assert state.snapshot_zxid == 0 and state.txns == [(Z1, b"a")]


def test_install_snapshot_replaces_the_whole_history():
    d = SimDisk()
    d.append(Z3, b"old")
    data = encode_history([(Z1, b"a"), (Z2, b"b")])
    d.install_snapshot(Z2, data)
    assert decode_history(data) == [(Z1, b"a"), (Z2, b"b")]
    assert d.holds_durably(Z1, b"a") and not d.holds_durably(Z3, b"old")
    assert d.load().txns == [] and d.load().snapshot_zxid == Z2


def test_the_epoch_rule_is_checked_on_durable_state():
    d = SimDisk(accepted_epoch=1, current_epoch=1)
    d.append(zx.make(2, 1), b"x")
    assert d.epoch_rule_broken() is None          # still pending: a crash would lose it
    d.sync()
    assert "currentEpoch=1" in d.epoch_rule_broken()
