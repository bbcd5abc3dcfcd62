"""Replica mode: the real Replica (node and tree) over a real QuorumPeer over MemoryStorage, driven by
simulated clients under the seeded scheduler (coordcore/testing/sim/replica_host.py).

What a user relies on here: the same seed replays the same run byte for byte; a few hundred seeded
runs over 3 and 5 voters, with and without an observer, keep every invariant (equal trees and session
tables at equal zxid, no acknowledged write lost, client zxids monotone, replies only after a quorum
holds the txn, replies in order) and finish well inside the CI budget; and a leader that crashes
right after proposing the closeSession of a session with ephemerals leaves every server agreeing on
whether the ephemerals exist (ZOOKEEPER-2355 / -5010).
"""
import time

from coordcore.testing.sim import SimConfig, Simulation, run
from coordcore.testing.sim.replica_host import ReplicaHost
from coordcore.tree import txn as T
from coordcore.zab.peer import Append

#: Replica runs report every broken link to the peers (an unreported loss is a liveness case of its
#: own, tests/sim/test_sim_known_bugs.py).
BASELINE = dict(mode="replica", link_lost_odds=1.0)


def test_the_same_seed_gives_the_same_trace_in_replica_mode():
    cfg = dict(seed=5, voters=5, observers=1, steps=800, trace=True, **BASELINE)  # partitions and a crash
    first, second = run(SimConfig(**cfg)), run(SimConfig(**cfg))
    assert first.ok, f"{first.violation}\n  replay: {first.replay_command()}"
    assert any(" client " in line and "<-" in line for line in first.trace), "no client got a reply"
    assert first.trace == second.trace
    assert "--mode replica" in first.replay_command()


SEEDS = 75           # x (3, 5 voters) x (0, 1 observers) = 300 runs
STEPS = 800
BUDGET_S = 45


def test_a_few_hundred_seeded_replica_runs_keep_every_invariant():
    started = time.monotonic()
    failures, runs, acked = [], 0, 0
    for seed in range(SEEDS):
        for voters in (3, 5):
            for observers in (0, 1):
                result = run(SimConfig(seed=seed, voters=voters, observers=observers, steps=STEPS, **BASELINE))
                runs += 1
                acked += result.acked
                if not result.ok:
                    failures.append(f"seed={seed} voters={voters} observers={observers} step={result.violation_step} "
                                    f"{result.violation}\n  replay: {result.replay_command()}")
    elapsed = time.monotonic() - started
    print(f"\n{runs} replica runs, {acked} acknowledged client writes, {elapsed:.1f} s")
    assert acked > 2 * runs, "the clients got almost nothing acknowledged: the runs do not exercise writes"
    assert not failures, f"{len(failures)} of {runs} runs broke an invariant:\n" + "\n".join(failures[:10])
    assert elapsed < BUDGET_S, f"{runs} runs took {elapsed:.0f} s (budget {BUDGET_S} s): lower STEPS"


def _close_session_with_ephemerals(host, ready) -> int | None:
    """The session id if this leader's Ready appends the closeSession of a session owning ephemerals."""
    if not host.is_leader():
        return None
    owned = host.replica.node.committed.ephemerals
    for w in ready.writes:
        if isinstance(w, Append):
            txn = T.decode(w.txn)
            if txn.type == T.T_CLOSE_SESSION and owned.get(txn.session_id):
                return txn.session_id
    return None


def test_a_leader_crash_right_after_proposing_a_close_session_leaves_ephemerals_agreed(monkeypatch):
    # ZOOKEEPER-2355 / -5010: a closeSession proposed, then the leader dies before it commits.  Whether
    # it survives (a follower logged it) or not, every server must agree on the session's ephemerals.
    original = ReplicaHost._process
    hits = []

    def process(self, ready):
        sid = _close_session_with_ephemerals(self, ready) if not self.sim.healed and not hits else None
        original(self, ready)
        if sid is not None and self.up:
            hits.append((self.sim.cfg.seed, sid))
            self.sim.crash(self.sid, "after proposing closeSession")  # sent, not yet durable here

    monkeypatch.setattr(ReplicaHost, "_process", process)
    checked = 0
    for seed in range(60):
        hits.clear()
        sim = Simulation(SimConfig(seed=seed, voters=3, observers=seed % 2, steps=1500, profile="calm",
                                   trace=False, **BASELINE))
        result = sim.run()
        assert result.ok, f"{result.violation}\n  replay: {result.replay_command()}"
        if not hits:
            continue
        checked += 1
        session = hits[0][1]
        views = {s: sorted(h.replica.node.committed.ephemerals.get(session, ())) for s, h in sim.hosts.items()}
        assert len({tuple(v) for v in views.values()}) == 1, f"seed {seed}: servers disagree: {views}"
        alive = {s: session in h.replica.node.sessions.sessions for s, h in sim.hosts.items()}
        assert len(set(alive.values())) == 1, f"seed {seed}: session alive on some servers only: {alive}"
        if checked >= 5:
            break
    assert checked >= 3, f"only {checked} runs reached the window (a closeSession of a session with ephemerals)"
