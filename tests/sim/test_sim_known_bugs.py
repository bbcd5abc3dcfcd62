"""Open bugs the simulator found in the zab code, each pinned to the seed that shows it (strict xfail).

When a fix lands these turn into XPASS failures: then check the replay command, and either drop the
marker (and the tolerance in sim_mutation.BASELINE) or pin the bug to a seed that still shows it -- a
seed names one schedule only for one version of the code under test.
"""
import pytest

from coordcore.testing.sim import SimConfig, run


def replay(**cfg):
    result = run(SimConfig(steps=300, **cfg))
    assert result.ok, f"{result.violation}\n  replay: {result.replay_command()}"


@pytest.mark.xfail(strict=True, reason="LIVE: an INFORM lost without link_lost (the step API makes link_lost "
                   "optional) leaves an observer one txn behind forever; PINGs keep the link alive")
def test_an_observer_catches_up_after_a_silently_lost_inform():
    replay(seed=20, voters=5, observers=1, tolerate=frozenset({"I6-SYNC"}))


@pytest.mark.xfail(strict=True, reason="LIVE: a voter whose acceptedEpoch is above the epoch the leader "
                   "established (it promised a failed attempt) gets LEADERINFO(e < acceptedEpoch), goes "
                   "LOOKING, follows the same leader again, forever (ZooKeeper's learner does the same)")
def test_a_voter_that_promised_a_higher_failed_epoch_can_rejoin():
    replay(seed=87, voters=3, observers=0, tolerate=frozenset({"I6-SYNC"}), link_lost_odds=1.0)
