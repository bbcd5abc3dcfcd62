"""A seed is a complete description of a run: the same seed gives the same trace, byte for byte.

Also the command line: `coordcore sim` prints a one-line summary last, exits 1 on a violation, and a
failure's replay command reproduces exactly that failure.
"""
import subprocess
import sys

import pytest

from coordcore.testing.sim import SimConfig, run
from coordcore.testing.sim.runner import parse_seeds


@pytest.mark.parametrize("mode,voters,observers", [("zab", 3, 0), ("zab", 5, 1), ("fle", 7, 2)])
def test_the_same_seed_gives_the_same_trace(mode, voters, observers):
    cfg = dict(seed=12, voters=voters, observers=observers, mode=mode, steps=300, trace=True,
               tolerate=frozenset({"I6-SYNC"}))
    first, second = run(SimConfig(**cfg)), run(SimConfig(**cfg))
    assert len(first.trace) > 300
    assert first.trace == second.trace
    assert first.violation is None or str(first.violation) == str(second.violation)


def test_different_seeds_give_different_runs():
    a = run(SimConfig(seed=1, steps=200, trace=True, tolerate=frozenset({"I6-SYNC"})))
    b = run(SimConfig(seed=2, steps=200, trace=True, tolerate=frozenset({"I6-SYNC"})))
    assert a.trace != b.trace


def test_the_trace_does_not_depend_on_hash_randomisation():
    # Set iteration order over str/bytes changes with PYTHONHASHSEED; the trace must not.
    code = ("from coordcore.testing.sim import SimConfig, run\n"
            "r = run(SimConfig(seed=5, voters=5, observers=1, steps=250, trace=True, tolerate=frozenset({'I6-SYNC'})))\n"
            "print('\\n'.join(r.trace))\n")
    outs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                           env={"PYTHONHASHSEED": h, "PATH": ""}, cwd=".").stdout for h in ("1", "2")]
    assert outs[0] and outs[0] == outs[1]


def test_seed_lists_parse_ranges_inclusively():
    assert parse_seeds("0..3") == [0, 1, 2, 3]
    assert parse_seeds("7") == [7]
    assert parse_seeds("1..2,9") == [1, 2, 9]
    with pytest.raises(ValueError):
        parse_seeds("5..1")


def sim_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "coordcore", "sim", *args], capture_output=True, text=True,
                          timeout=90)


def test_the_cli_ends_with_a_one_line_summary_and_exits_0_when_clean():
    p = sim_cli("--seeds", "0..3", "--voters", "3,5", "--observers", "0,1", "--mode", "fle")
    assert p.returncode == 0, p.stdout + p.stderr
    last = p.stdout.strip().splitlines()[-1]
    assert last.startswith("sim OK: 16 runs") and "runs/s" in last and "0 violations" in last


def test_the_cli_rejects_bad_arguments_with_status_2():
    p = sim_cli("--seeds", "3..1")
    assert p.returncode == 2 and "empty seed range" in p.stderr
    p = sim_cli("--voters", "0")
    assert p.returncode == 2


def test_a_failure_prints_a_replay_command_that_reproduces_it():
    # A deliberately broken election (the votes compare zxid before epoch) fails in FLE-only runs; the
    # replay command printed for it must reproduce the same violation at the same step.
    code = ("import coordcore.zab.election as e\n"
            "e.total_order_predicate = lambda new, cur, q: q.is_voter(new.leader) and "
            "(new.zxid, new.peer_epoch, new.leader) > (cur.zxid, cur.peer_epoch, cur.leader)\n"
            "import sys\n"
            "from coordcore.testing.sim import runner\n"
            "sys.exit(runner.main(sys.argv[1:]))\n")
    p = subprocess.run([sys.executable, "-c", code, "--seeds", "0..30", "--mode", "fle", "--quiet"],
                       capture_output=True, text=True, timeout=90)
    assert p.returncode == 1, p.stdout
    lines = p.stdout.strip().splitlines()
    assert lines[-1].startswith("sim FAIL:")
    violation = next(line for line in lines if line.startswith("VIOLATION"))
    replay = next(line for line in lines if line.strip().startswith("replay:")).split("replay: ", 1)[1]
    assert replay.startswith("python3 -m coordcore sim --seed ") and replay.endswith("--trace")
    args = replay.split()[4:]
    again = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=90)
    assert again.returncode == 1
    assert violation in again.stdout.splitlines()
