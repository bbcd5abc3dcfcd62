#!/usr/bin/env python
"""Leader election, done right: N processes elect a leader; the leader is killed; the next takes over.

    python examples/election_demo.py                 # on an embedded coordcore server (no Java needed)
    python examples/election_demo.py --backend zookeeper
    python examples/election_demo.py --connect 127.0.0.1:2181 --candidates 4
    python examples/election_demo.py --ensemble 3     # on a local 3-member ensemble (real processes)

Each candidate is a separate process running ``recipes.LeaderElection``. The demo kills the current
leader with SIGKILL (no goodbye: its session simply stops), and the next candidate in line is elected
once the server expires that session -- within the session timeout. Every leader's fencing token (the
czxid of its election node) is larger than its predecessor's.

With ``--ensemble N`` the server is a local ensemble of N member processes, and the demo first kills the
ensemble's leading *server* with SIGKILL: the members elect a new leader, the candidates' clients move to
another member with their sessions, and the elected candidate stays the leader -- no second leader, no
gap.  Then it kills candidates as above.
"""

from __future__ import annotations

import argparse
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # run from a checkout without installing, too


def worker(args: argparse.Namespace) -> None:
    from kazoo.client import KazooClient

    from recipes import LeaderElection

    quiet()
    client = KazooClient(hosts=args.connect, timeout=args.session_timeout)
    client.start(15)
    election = LeaderElection(client, args.path, identifier=args.name)
    print(f"READY {args.name}", flush=True)

    def lead(leadership):
        print(f"LEADER {args.name} {leadership.fencing_token}", flush=True)
        while not leadership.should_stop:  # do the leader's work here, in small steps
            leadership.wait(0.2)
        print(f"STEPPED-DOWN {args.name}", flush=True)

    election.run(lead)


def quiet() -> None:
    """Keep the story readable: only warnings from kazoo and the recipes."""
    import structlog

    logging.basicConfig(level=logging.CRITICAL)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


def start_server(backend: str):
    try:
        from coordcore.testing import make_server
    except ImportError as e:  # pragma: no cover - a broken install
        raise SystemExit(f"error: cannot import coordcore.testing ({e}); run `pip install -e .` first")
    server = make_server(backend, embedded=(backend == "coordcore"))
    try:
        server.start()
    except Exception as e:
        server.close()
        raise SystemExit(f"error: could not start an embedded {backend} server: {e}")
    return server


def start_ensemble(backend: str, voters: int):
    try:
        from coordcore.testing import make_ensemble
    except ImportError as e:  # pragma: no cover - a broken install
        raise SystemExit(f"error: cannot import coordcore.testing ({e}); run `pip install -e .` first")
    # tickTime 500: sessions of 1-10 s, and a failover well inside the demo's 2 s session timeout
    ens = make_ensemble(backend, voters=voters, config={"tickTime": 500}, proxied=False)
    try:
        ens.start()
    except Exception as e:
        ens.close()
        raise SystemExit(f"error: could not start a local {backend} ensemble: {e}")
    return ens


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--connect", help="host:port of a running server (default: start an embedded one)")
    p.add_argument("--backend", choices=("coordcore", "zookeeper"), default="coordcore",
                   help="server to start when --connect is not given (default: coordcore, in-process)")
    p.add_argument("--ensemble", type=int, metavar="N", default=0,
                   help="start a local ensemble of N member processes instead of one server, and kill its "
                        "leading server as well as candidates (3, 5 or 7)")
    p.add_argument("--candidates", type=int, default=3, help="number of candidate processes (>= 2)")
    p.add_argument("--session-timeout", type=float, default=None,
                   help="client session timeout, seconds (default 2; 4 with --ensemble, so that sessions "
                        "outlast a server failover on either backend)")
    p.add_argument("--path", default="/demo/leader_election", help="election znode path")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--name", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    if args.candidates < 2:
        p.error("--candidates must be at least 2")
    if args.ensemble and (args.ensemble < 3 or args.connect):
        p.error("--ensemble needs at least 3 members and no --connect")
    if args.session_timeout is None:
        args.session_timeout = 4.0 if args.ensemble else 2.0

    quiet()
    server = ens = None
    if args.ensemble:
        ens = start_ensemble(args.backend, args.ensemble)
        args.connect = ens.connect_string
        roles = ", ".join(f"server.{sid} {mode}" for sid, mode in sorted(ens.modes().items()))
        print(f"started a local {args.backend} ensemble on {args.connect} ({roles})")
    elif args.connect is None:
        server = start_server(args.backend)
        args.connect = server.connect_string
        kind = "an embedded coordcore" if args.backend == "coordcore" else "an Apache ZooKeeper"
        print(f"started {kind} server on {args.connect}")
    lines: "queue.Queue[tuple[str, str]]" = queue.Queue()
    procs: dict[str, subprocess.Popen] = {}

    def pump(name: str, proc: subprocess.Popen) -> None:
        for line in proc.stdout:
            lines.put((name, line.strip()))

    pending: list[tuple[str, str]] = []  # lines seen but not yet asked for

    def expect(kind: str, among: set[str], timeout: float) -> tuple[str, str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for item in pending:
                if item[1].startswith(kind) and item[0] in among:
                    pending.remove(item)
                    return item
            try:
                pending.append(lines.get(timeout=0.1))
            except queue.Empty:
                continue
        raise SystemExit(f"error: no {kind} from {sorted(among)} within {timeout:.0f}s")

    try:
        from kazoo.client import KazooClient

        admin = KazooClient(hosts=args.connect)
        admin.start(15)
        admin.ensure_path(args.path)
        for i in range(1, args.candidates + 1):
            name = f"candidate-{i}"
            proc = subprocess.Popen(
                [sys.executable, os.path.abspath(__file__), "--worker", "--connect", args.connect,
                 "--path", args.path, "--name", name, "--session-timeout", str(args.session_timeout)],
                stdout=subprocess.PIPE, text=True,
            )
            procs[name] = proc
            threading.Thread(target=pump, args=(name, proc), daemon=True).start()
            expect("READY", {name}, 30)
            # join the election in order, so the line of succession is predictable
            deadline = time.monotonic() + 30
            while len(admin.get_children(args.path)) < i and time.monotonic() < deadline:
                time.sleep(0.05)
            print(f"{name} (pid {proc.pid}) joined the election")
        alive = set(procs)
        leader, line = expect("LEADER", alive, 30)
        token = int(line.split()[2])
        print(f"\n==> {leader} is the leader (fencing token {token})")
        if ens is not None:
            lead_server = ens.leader()
            print(f"    killing the ensemble's leading server, server.{lead_server}, with SIGKILL "
                  f"(pid {ens.pid(lead_server)}) ...")
            t0 = time.monotonic()
            ens.kill(lead_server)
            modes = ens.wait_serving(30)
            new_server = next(sid for sid, mode in modes.items() if mode == "leader")
            print(f"    the members elected server.{new_server} in {time.monotonic() - t0:.1f}s")
            # the candidates' sessions survived: the same candidate leads, nobody else took over
            admin.retry(admin.sync, args.path)  # (the admin's own member may be the one that died)
            names = sorted(admin.retry(admin.get_children, args.path))
            assert len(names) == len(alive), names
            try:
                other = expect("LEADER", alive - {leader}, 2 * args.session_timeout)
            except SystemExit:
                other = None
            if other is not None or any(n == leader and k.startswith("STEPPED-DOWN") for n, k in pending):
                raise SystemExit(f"error: leadership moved while only a server died: {other}")
            print(f"==> {leader} is still the leader after the failover (every candidate's session survived)")
        while len(alive) > 1:
            print(f"    killing {leader} with SIGKILL (pid {procs[leader].pid}) ...")
            t0 = time.monotonic()
            procs[leader].send_signal(signal.SIGKILL)
            procs[leader].wait(10)
            alive.discard(leader)
            new, line = expect("LEADER", alive, args.session_timeout + 15)
            new_token = int(line.split()[2])
            print(f"==> {new} took over after {time.monotonic() - t0:.1f}s "
                  f"(fencing token {new_token} > {token})")
            leader, token = new, new_token
        print(f"\n{leader} is the last candidate standing; demo done.")
        admin.stop()
        admin.close()
        return 0
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)
        if server is not None:
            server.close()
        if ens is not None:
            ens.close()


if __name__ == "__main__":
    sys.exit(main())
