"""Bugs the simulator found in the zab code, replayed from the seeds that showed them.

Both were liveness bugs, fixed in zab ("PINGs carry the committed zxid; a leader steps down for a voter
that promised a higher epoch").  A seed names one schedule only for one version of the code, so these
runs guard the schedules that once failed; the rules themselves are pinned by the zab unit tests and
scenarios.  A new open bug goes here as a strict xfail with its replay command in the reason.
"""
from coordcore.testing.sim import SimConfig, run


def replay(**cfg):
    result = run(SimConfig(steps=300, **cfg))
    assert result.ok, f"{result.violation}\n  replay: {result.replay_command()}"


def test_an_observer_catches_up_after_a_silently_lost_inform():
    """An INFORM lost without link_lost() (a transport may not notice) used to leave an observer one txn
    behind forever, its link kept alive by PINGs; a PING now carries the committed zxid."""
    replay(seed=20, voters=5, observers=1)


def test_a_voter_that_promised_a_higher_failed_epoch_can_rejoin():
    """A voter whose acceptedEpoch is above the epoch the leader established (it promised a failed
    attempt) got LEADERINFO(e < acceptedEpoch), went LOOKING and followed the same leader again, forever
    (ZooKeeper's learner does the same); the leader now steps down so a higher epoch follows."""
    replay(seed=87, voters=3, observers=0, link_lost_odds=1.0)
