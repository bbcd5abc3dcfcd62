"""Golden interaction traces for the ZAB roles (etcd raft's testdata/*.txt style), on zab_driver.Cluster.

Each tests/zab/testdata/zab_*.txt script drives whole QuorumPeers (election included) and records every
ZAB packet delivered (`a->b PACKET`), and under it what the receiver's Ready did: durable writes,
appends, applies, resets and state changes.  Election notifications are left out (the FLE scripts
cover them); `t=N` marks virtual time moving to the next deadline.  If a trace changes on purpose,
rerun with ``--rewrite`` and review the diff of the .txt file.

Commands:
    cluster voters=(1,2,3) [observers=(4)] [commit_log_count=N]
    serving [sids=(..)] [quiet]    run until those (default: all live) serve under one leader
    propose <text> [n=K]           the leader proposes K txns (text-0 .. text-K-1, or text if K is 1)
    stabilize [quiet]              deliver everything in flight (no time passes)
    settle <ms> [quiet]            run for ms of virtual time
    crash <sid> / restart <sid>    crash keeps only durable writes; restart builds a peer from them
    cut <a> <b> / heal             drop / stop dropping everything between a and b
    status                         state, epoch, last zxid and applied zxid of every live peer
    log <sid>                      the durable log of a server
"""
import pathlib

import pytest

import datadriven
from zab_driver import Cluster

TESTDATA = pathlib.Path(__file__).parent / "testdata"
SCRIPTS = sorted(TESTDATA.glob("zab_*.txt"))


class Handler:
    def __init__(self) -> None:
        self.c: Cluster | None = None

    def __call__(self, case: datadriven.Case) -> str:
        if case.cmd == "cluster":
            self.c = Cluster([int(s) for s in case.get_list("voters")],
                             [int(s) for s in case.get_list("observers")],
                             commit_log_count=case.get_int("commit_log_count", 500))
            self.c.tracing = True
            return "ok"
        c = self.c
        if c is None:
            raise case.fail("the script must start with `cluster`")
        c.take_trace()
        quiet = "quiet" in case.positional
        if case.cmd == "serving":
            sids = [int(s) for s in case.get_list("sids")] or None
            c.run_until(lambda: c.all_serving(sids), 30_000)
        elif case.cmd == "propose":
            n = case.get_int("n", 1)
            text = case.positional[0]
            for i in range(n):
                c.propose((text if n == 1 else f"{text}-{i}").encode())
        elif case.cmd == "stabilize":
            while c.deliver_one():
                pass
        elif case.cmd == "settle":
            c.settle(int(case.positional[0]))
        elif case.cmd == "crash":
            c.crash(int(case.positional[0]))
        elif case.cmd == "restart":
            c.restart(int(case.positional[0]))
        elif case.cmd == "cut":
            c.cut.add(frozenset(int(s) for s in case.positional[:2]))
        elif case.cmd == "heal":
            c.cut.clear()
        elif case.cmd == "status":
            return "\n".join(c.describe().split("; "))
        elif case.cmd == "log":
            host = c.hosts[int(case.positional[0])]
            return " ".join(f"{z:#x}" for z, _ in host.log) or "(empty)"
        else:
            raise case.fail("unknown command")
        lines = c.take_trace()
        if quiet:
            return "\n".join(c.describe().split("; "))
        return "\n".join(lines) if lines else "(nothing)"


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_zab_trace(script, rewrite):
    datadriven.run_file(script, Handler(), rewrite=rewrite)


def test_every_scenario_has_a_script():
    names = {p.name for p in SCRIPTS}
    assert {"zab_three_voters.txt", "zab_divergent_tail.txt", "zab_observer_join.txt"} <= names
