"""Worker processes for the recipe tests and benchmark (run as a script, one process per worker).

    workers.py lock-loop HOSTS LOCK_PATH RESOURCE_PATH ITERATIONS IDENT [--kazoo]
        acquire/release ITERATIONS times; inside, update a fenced resource znode; print JSON stats.
    workers.py hold HOSTS LOCK_PATH IDENT SESSION_TIMEOUT
        acquire, print "HELD <token>", then sleep until killed.
    workers.py elect HOSTS ELECTION_PATH IDENT SESSION_TIMEOUT
        run for leadership; print "LEADER <ident> <token>" when elected, then lead until killed.
"""

from __future__ import annotations

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import structlog  # noqa: E402
from kazoo.client import KazooClient  # noqa: E402
from kazoo.exceptions import BadVersionError, NodeExistsError  # noqa: E402

from recipes import LeaderElection, Lock  # noqa: E402

structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))


def fenced_update(client: KazooClient, resource: str, token: int, ident: str) -> list[str]:
    """The shared resource: a znode holding the highest token seen; rejects stale tokens and overlap."""
    violations = []
    try:
        client.create(resource + "/occupant", ident.encode(), ephemeral=True)
    except NodeExistsError:
        other = client.get(resource + "/occupant")[0].decode()
        violations.append(f"overlap: {ident} entered while {other} inside")
        return violations
    try:
        while True:
            data, stat = client.get(resource)
            last = int(data or b"0")
            if token <= last:
                violations.append(f"stale token {token} <= {last} from {ident}")
                break
            try:
                client.set(resource, str(token).encode(), version=stat.version)
                break
            except BadVersionError:
                violations.append(f"concurrent write to resource seen by {ident}")
                break
    finally:
        client.delete(resource + "/occupant")
    return violations


def lock_loop(hosts: str, path: str, resource: str, n: int, ident: str, use_kazoo: bool) -> None:
    client = KazooClient(hosts=hosts, timeout=10)
    client.start(15)
    violations: list[str] = []
    tokens = []
    for _ in range(n):
        if use_kazoo:
            lock = client.Lock(path, ident)
            lock.acquire()
            token = client.exists(f"{path}/{lock.node}").czxid
        else:
            lock = Lock(client, path, ident)
            lock.acquire()
            token = lock.fencing_token
        tokens.append(token)
        violations += fenced_update(client, resource, token, ident)
        lock.release()
    client.stop()
    client.close()
    print(json.dumps({"ident": ident, "violations": violations, "tokens": tokens}), flush=True)


def hold(hosts: str, path: str, ident: str, timeout: float) -> None:
    client = KazooClient(hosts=hosts, timeout=timeout)
    client.start(15)
    lock = Lock(client, path, ident)
    lock.acquire()
    print(f"HELD {lock.fencing_token}", flush=True)
    while True:
        time.sleep(1)


def elect(hosts: str, path: str, ident: str, timeout: float) -> None:
    client = KazooClient(hosts=hosts, timeout=timeout)
    client.start(15)
    print(f"READY {ident}", flush=True)

    def lead(leadership):
        print(f"LEADER {ident} {leadership.fencing_token}", flush=True)
        while not leadership.should_stop:
            leadership.wait(0.2)
        print(f"STOPPED {ident}", flush=True)

    LeaderElection(client, path, ident).run(lead)


def main(argv: list[str]) -> None:
    cmd, args = argv[0], argv[1:]
    if cmd == "lock-loop":
        lock_loop(args[0], args[1], args[2], int(args[3]), args[4], "--kazoo" in args)
    elif cmd == "hold":
        hold(args[0], args[1], args[2], float(args[3]))
    elif cmd == "elect":
        elect(args[0], args[1], args[2], float(args[3]))
    else:
        raise SystemExit(f"unknown command {cmd!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
