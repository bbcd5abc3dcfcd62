"""``coordcore sim``: run many seeds, report progress and failures, replay one seed with its trace.

Usage:
    coordcore sim --seeds 0..999 --voters 3,5,7 --observers 0,1 [--steps K] [--mode zab|replica|fle]
    coordcore sim --seed 17 --voters 5 --observers 1 --trace       # replay one run, print its trace

Every (seed, voters, observers) combination is one run.  A failing run prints the seed, the step,
the invariant and the command that replays it exactly.  The LAST line of output is always a one-line
summary (tools read it); the exit status is 1 if any run broke an invariant, 2 on bad arguments.
"""
from __future__ import annotations

import argparse
import sys
import time

from coordcore.testing.sim.simulator import DEFAULT_LINK_LOST_ODDS, RunResult, SimConfig, default_steps, run


def parse_seeds(text: str) -> list[int]:
    """'7', '0..99' (inclusive), '1,5,9' or a mix: '0..9,20'."""
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            raise ValueError(f"bad seed list {text!r}")
        if ".." in part:
            lo, _, hi = part.partition("..")
            a, b = int(lo), int(hi)
            if b < a:
                raise ValueError(f"empty seed range {part!r}")
            out.extend(range(a, b + 1))
        else:
            out.append(int(part))
    return out


def parse_ints(text: str, what: str, lo: int, hi: int) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"bad {what} list {text!r}") from None
    if not values or any(not lo <= v <= hi for v in values):
        raise ValueError(f"{what} must be integers in {lo}..{hi}, got {text!r}")
    return values


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seeds", metavar="A..B", help="seeds to run: 'A..B' (inclusive), 'N', or a comma list")
    p.add_argument("--seed", metavar="N", help="one seed (same as --seeds N)")
    p.add_argument("--voters", default="3", metavar="LIST", help="voter counts, comma separated (default 3)")
    p.add_argument("--observers", default="0", metavar="LIST", help="observer counts, comma separated (default 0)")
    p.add_argument("--steps", type=int, default=None, metavar="K",
                   help="events in the chaos phase of each run (default 400; 300 for fle)")
    p.add_argument("--mode", choices=["zab", "replica", "fle"], default="zab",
                   help="zab: full QuorumPeers with opaque txns (default); replica: Replica (node, tree) over "
                        "QuorumPeer over MemoryStorage, with simulated clients; fle: FastLeaderElection alone")
    p.add_argument("--profile", default=None, help="force one fault profile (default: each seed picks one)")
    p.add_argument("--trace", action="store_true", help="print every run's trace (one line per event)")
    p.add_argument("--tolerate", default="", metavar="IDS",
                   help="known-issue invariant ids to count instead of failing on (comma list, e.g. LIVE)")
    p.add_argument("--link-lost-odds", type=float, default=DEFAULT_LINK_LOST_ODDS, metavar="P",
                   help="odds that a broken link is reported to the peers (default 0.7; 1 = always)")
    p.add_argument("--quiet", action="store_true", help="no progress lines, only failures and the summary")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="coordcore sim",
        description="Deterministic simulation of a coordcore ensemble: FastLeaderElection and ZAB peers under "
                    "one seeded scheduler with message loss, duplication, delay and reordering, partitions, "
                    "crashes at named host steps, restarts, pauses and slow disks; invariants are checked "
                    "after every event.  The same seed always gives the same run, byte for byte.",
        epilog="Examples: 'coordcore sim --seeds 0..999 --voters 3,5,7 --observers 0,1' runs 6,000 simulations; "
               "'coordcore sim --seed 17 --voters 5 --observers 1 --trace' replays one and prints its trace. "
               "The last line of output is a one-line summary. Exit status: 0 no violation, 1 a violation, "
               "2 bad arguments.")
    add_arguments(p)
    args = p.parse_args(argv)
    try:
        return run_cli(args, p)
    except BrokenPipeError:
        # stdout closed early (coordcore sim ... | head): stop quietly.
        import os

        sys.stdout = open(os.devnull, "w")
        return 0


def run_cli(args, parser: argparse.ArgumentParser) -> int:
    try:
        if args.seeds and args.seed:
            raise ValueError("give --seeds or --seed, not both")
        seeds = parse_seeds(args.seeds or args.seed or "0")
        voters = parse_ints(args.voters, "--voters", 1, 15)
        observers = parse_ints(args.observers, "--observers", 0, 8)
        if not 0.0 <= args.link_lost_odds <= 1.0:
            raise ValueError("--link-lost-odds must be between 0 and 1")
        if args.steps is not None and args.steps < 0:
            raise ValueError("--steps must be >= 0")
        if args.profile is not None:
            from coordcore.testing.sim.profiles import PROFILE_NAMES

            if args.profile not in PROFILE_NAMES:
                raise ValueError(f"--profile must be one of {', '.join(PROFILE_NAMES)}")
    except ValueError as e:
        parser.error(str(e))
    tolerate = frozenset(x.strip() for x in args.tolerate.split(",") if x.strip())
    steps = args.steps if args.steps is not None else default_steps(args.mode)
    combos = [(s, v, o) for s in seeds for v in voters for o in observers]
    out = sys.stdout
    started = time.monotonic()
    failures: list[RunResult] = []
    total_steps = 0
    last_report = started
    for i, (seed, v, o) in enumerate(combos, 1):
        cfg = SimConfig(seed=seed, voters=v, observers=o, steps=steps, mode=args.mode, profile=args.profile,
                        trace=args.trace, tolerate=tolerate, link_lost_odds=args.link_lost_odds)
        result = run(cfg)
        total_steps += result.steps
        if args.trace:
            out.write("\n".join(result.trace or []) + "\n")
        if not result.ok:
            failures.append(result)
            out.write(failure_report(result) + "\n")
        elif args.trace:
            out.write(f"ok seed={seed} voters={v} observers={o} profile={result.profile} steps={result.steps} "
                      f"acked={result.acked} committed={result.committed} converged_ms={result.converged_ms}\n")
        now = time.monotonic()
        if not args.quiet and not args.trace and (now - last_report >= 2.0 or i == len(combos)) and len(combos) > 1:
            last_report = now
            rate = i / max(now - started, 1e-9)
            out.write(f"progress {i}/{len(combos)} runs, {rate:.1f} runs/s, {len(failures)} failing\n")
        out.flush()
    elapsed = time.monotonic() - started
    rate = len(combos) / max(elapsed, 1e-9)
    verdict = "FAIL" if failures else "OK"
    first = f"; first failure: {failures[0].replay_command()}" if failures else ""
    out.write(f"sim {verdict}: {len(combos)} runs ({len(seeds)} seeds x voters {args.voters} x observers "
              f"{args.observers}, mode {args.mode}), {len(failures)} violations, {total_steps} events, "
              f"{elapsed:.1f} s, {rate:.1f} runs/s{first}\n")
    return 1 if failures else 0


def failure_report(result: RunResult) -> str:
    v = result.violation
    return (f"VIOLATION seed={result.seed} voters={result.voters} observers={result.observers} "
            f"profile={result.profile} step={result.violation_step} invariant={v.invariant}: {v.detail}\n"
            f"  replay: {result.replay_command()}")


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
