#!/usr/bin/env python
"""Contending workers guard a shared resource with a lock and its fencing token.

    python examples/lock_demo.py                     # embedded coordcore server
    python examples/lock_demo.py --backend zookeeper --workers 4 --rounds 5

Each worker process takes ``recipes.Lock`` and appends to a shared ledger (a znode). The ledger is the
"storage service" of the classic fencing argument: it remembers the highest token it has seen and
refuses writes with a lower one. The demo then replays the famous failure: one worker takes the lock
and freezes (SIGSTOP, as a long GC pause would) past its session timeout; its lock expires and another
worker takes it; when the frozen worker wakes up and writes, its stale token is rejected -- and its
``lock.is_held`` already says False.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

LEDGER = "/demo/ledger"
LOCK = "/demo/ledger-lock"


def quiet() -> None:
    import structlog

    logging.basicConfig(level=logging.CRITICAL)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))


def ledger_append(client, token: int, entry: str) -> str:
    """The storage service: accept the write only if ``token`` is not older than the newest seen."""
    from kazoo.exceptions import BadVersionError

    while True:
        raw, stat = client.retry(client.get, LEDGER)
        ledger = json.loads(raw or b'{"max_token": 0, "entries": []}')
        if token < ledger["max_token"]:
            return f"REJECTED stale token {token} < {ledger['max_token']}"
        ledger["max_token"] = token
        ledger["entries"].append(entry)
        try:
            client.retry(client.set, LEDGER, json.dumps(ledger).encode(), version=stat.version)
            return f"accepted (token {token})"
        except BadVersionError:
            continue  # someone wrote meanwhile: re-read and re-check


def worker(args: argparse.Namespace) -> None:
    from kazoo.client import KazooClient

    from recipes import Lock

    quiet()
    client = KazooClient(hosts=args.connect, timeout=args.session_timeout)
    client.start(15)
    if args.zombie:
        lock = Lock(client, LOCK, args.name)
        lock.acquire()
        print(f"HELD {lock.fencing_token}", flush=True)
        time.sleep(1.0)  # the parent freezes us here
        held = lock.is_held
        result = ledger_append(client, lock.fencing_token, f"{args.name}: write after waking up")
        print(f"WOKE is_held={held} write {result}", flush=True)
        lock.release()
        return
    for i in range(args.rounds):
        with Lock(client, LOCK, args.name) as lock:
            result = ledger_append(client, lock.fencing_token, f"{args.name} round {i}")
            print(f"WROTE {args.name} round {i}: {result}", flush=True)
    client.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--connect", help="host:port of a running server (default: start an embedded one)")
    p.add_argument("--backend", choices=("coordcore", "zookeeper"), default="coordcore",
                   help="server to start when --connect is not given (default: coordcore, in-process)")
    p.add_argument("--workers", type=int, default=3, help="number of contending worker processes")
    p.add_argument("--rounds", type=int, default=3, help="lock acquisitions per worker")
    p.add_argument("--session-timeout", type=float, default=2.0, help="client session timeout, seconds")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--zombie", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--name", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    quiet()

    from kazoo.client import KazooClient

    server = None
    if args.connect is None:
        from coordcore.testing import make_server

        server = make_server(args.backend, embedded=(args.backend == "coordcore"))
        try:
            server.start()
        except Exception as e:
            server.close()
            raise SystemExit(f"error: could not start a {args.backend} server: {e}")
        args.connect = server.connect_string
        print(f"started a {args.backend} server on {args.connect}")
    procs = []

    def spawn(name: str, *extra: str) -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--worker", "--connect", args.connect, "--name", name,
             "--rounds", str(args.rounds), "--session-timeout", str(args.session_timeout), *extra],
            stdout=subprocess.PIPE, text=True,
        )
        procs.append(proc)
        return proc

    try:
        admin = KazooClient(hosts=args.connect)
        admin.start(15)
        admin.ensure_path(LEDGER)
        admin.set(LEDGER, b'{"max_token": 0, "entries": []}')

        print(f"\n--- {args.workers} workers contend for {LOCK} ---")
        workers = [spawn(f"worker-{i}") for i in range(1, args.workers + 1)]
        for proc in workers:
            for line in proc.stdout:
                print("   ", line.strip())
            proc.wait(60)

        print("\n--- a holder freezes (SIGSTOP) past its session timeout ---")
        zombie = spawn("zombie", "--zombie")
        line = zombie.stdout.readline().strip()
        print(f"    zombie acquired the lock: {line}")
        zombie.send_signal(signal.SIGSTOP)
        print(f"    zombie frozen; waiting {args.session_timeout + 2:.0f}s for its session to expire ...")
        time.sleep(args.session_timeout + 2)
        rescuer = spawn("rescuer", "--rounds", "1")
        out = rescuer.stdout.readline().strip()
        print(f"    another worker got the lock meanwhile: {out}")
        zombie.send_signal(signal.SIGCONT)
        print("    zombie resumed:", zombie.stdout.readline().strip())
        zombie.wait(30)
        rescuer.wait(30)

        ledger = json.loads(admin.get(LEDGER)[0])
        print(f"\nledger: {len(ledger['entries'])} entries, newest token {ledger['max_token']}")
        admin.stop()
        admin.close()
        return 0
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.kill()
            proc.wait(10)
        if server is not None:
            server.close()


if __name__ == "__main__":
    sys.exit(main())
