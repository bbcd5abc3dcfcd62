"""Seeded random runs of whole QuorumPeers on the deterministic driver: proposals, crashes that keep
only durable writes, restarts, links that silently drop everything (so learners see gaps mid-stream),
slow disks.  After every step replicas must agree (prefixes, one txn per zxid); at the end, with every
fault healed, every member must serve and hold every txn ever applied anywhere (I3, I4, I5).

A failure names its seed; `run(seed)` replays it exactly.
"""
import random

import pytest

from test_cluster import check_agreement, check_all_committed_everywhere
from zab_driver import Cluster


def run(seed: int, steps: int = 60) -> Cluster:
    rng = random.Random(seed)
    voters = 5 if seed % 2 else 3
    c = Cluster(range(1, voters + 1), (9,) if seed % 3 == 0 else (), commit_log_count=rng.choice([5, 500]))
    c.run_until(c.all_serving, 20_000)
    for step in range(steps):
        event = rng.random()
        lead = c.leader()
        if event < 0.4 and lead is not None:
            for i in range(rng.randint(1, 8)):
                if c.peers[lead].next_zxid() is None:
                    break
                c.peers[lead].propose(b"%d-%d" % (step, i))
            c.drain(lead)
        elif event < 0.5 and len(c.down) < (voters - 1) // 2:
            c.crash(rng.choice(sorted(c.live())))
        elif event < 0.6 and c.down:
            c.restart(rng.choice(sorted(c.down)))
        elif event < 0.7:
            c.cut.add(frozenset(rng.sample(sorted(c.hosts), 2)))
        elif event < 0.75:
            c.cut.clear()
        elif event < 0.8:
            c.slow ^= {rng.choice(sorted(c.hosts))}
        elif event < 0.85:
            for s in sorted(c.slow & set(c.live())):
                c.persist(s)
        c.settle(rng.choice([0, 5, 50, 300, 1000]))
        check_agreement(c)
    c.cut.clear()
    c.slow.clear()
    for s in sorted(c.down):
        c.restart(s)
    for s in sorted(c.live()):
        c.persist(s)
    c.run_until(lambda: c.all_serving(sorted(c.hosts)), 120_000)
    c.settle(2000)
    check_agreement(c)
    check_all_committed_everywhere(c, sorted(c.hosts))
    return c


@pytest.mark.parametrize("seed", range(12))
def test_seeded_faults_lose_no_committed_txn(seed):
    try:
        c = run(seed)
    except AssertionError as e:
        raise AssertionError(f"seed={seed}: {e}") from None
    assert c.applied_ever, f"seed={seed}: nothing was ever committed"
