"""The CI simulation budget: over 1,000 seeded runs across 3, 5 and 7 voters, with and without an observer,
every invariant holding after every event, in well under two minutes on one core.

The runs use the baseline of tests/sim/sim_mutation.py: the open I6-SYNC issue is tolerated (counted,
not failed; see test_sim_known_bugs.py) and the transport reports every broken link, as TCP does.
Anything else that breaks prints its replay command.
"""
import time

from coordcore.testing.sim import run

from sim_mutation import sim_config

SEEDS = 167            # x 3 voter counts x 2 observer counts = 1,002 runs
STEPS = 300            # chaos-phase events per run; a run then heals and must converge
BUDGET_S = 90


def test_a_thousand_seeded_runs_keep_every_invariant():
    started = time.monotonic()
    failures, runs, events, acked = [], 0, 0, 0
    for seed in range(SEEDS):
        for voters in (3, 5, 7):
            for observers in (0, 1):
                result = run(sim_config(seed, voters, observers, steps=STEPS))
                runs += 1
                events += result.steps
                acked += result.acked
                if not result.ok:
                    failures.append(f"seed={seed} voters={voters} observers={observers} "
                                    f"step={result.violation_step} {result.violation}\n"
                                    f"  replay: {result.replay_command()}")
    elapsed = time.monotonic() - started
    print(f"\n{runs} runs, {events} events, {acked} acknowledged writes, {elapsed:.1f} s, "
          f"{runs / elapsed:.0f} runs/s")
    assert runs >= 1000
    assert acked > runs, "the workload acknowledged almost nothing: the runs are not exercising broadcast"
    assert not failures, f"{len(failures)} of {runs} runs broke an invariant:\n" + "\n".join(failures[:10])
    assert elapsed < BUDGET_S, f"{runs} runs took {elapsed:.0f} s (budget {BUDGET_S} s): lower STEPS"
