"""Golden interaction traces for FastLeaderElection (etcd raft's testdata/*.txt style).

Each tests/zab/testdata/election_*.txt script drives several FastLeaderElection objects over an
explicit network (fle_env.ElectionEnv) and records every message, final wait and decision.  If a
trace changes on purpose, rerun with ``--rewrite`` and review the diff of the .txt file.

Commands:
    cluster voters=(1,2,3) [observers=(4)] [finalize=ms] [min=ms] [max=ms]
    look <sid,...> [zxid=0x..] [epoch=N]        enter LOOKING with this durable state
    deliver [a->b ...] [n=K]                     deliver what is in flight now (all links, or the given ones;
                                                 '*' matches any sid); n=K takes at most K per link
    stabilize [a->b ...]                         deliver until those links are empty (no time passes)
    drop [a->b ...] / dup [a->b ...]             lose / duplicate what is in flight
    tick <ms>                                    advance time, firing deadlines in order
    established <sid> state=S leader=L [zxid=..] [epoch=..]
    update-peer-epoch <sid,...> epoch=N
    crash <sid> / restart <sid>                  restart = a fresh object (logical clock 0), links emptied
    partition (1,2) (3,4,5) / heal               messages between groups are lost when delivered
    status / network
"""
import pathlib

import pytest

import datadriven
from fle_env import ElectionEnv, sids, vote_of

from coordcore.zab.election import PeerState

TESTDATA = pathlib.Path(__file__).parent / "testdata"
SCRIPTS = sorted(TESTDATA.glob("election_*.txt"))


class Handler:
    def __init__(self) -> None:
        self.env: ElectionEnv | None = None

    def __call__(self, case: datadriven.Case) -> str:
        cmd = case.cmd
        if cmd == "cluster":
            options = {}
            for key, name in (("finalize", "finalize_wait_ms"), ("min", "min_notification_interval_ms"),
                              ("max", "max_notification_interval_ms")):
                if case.has(key):
                    options[name] = case.get_int(key)
            self.env = ElectionEnv([int(s) for s in case.get_list("voters")],
                                   [int(s) for s in case.get_list("observers")], **options)
            return "ok"
        env = self.env
        if env is None:
            raise case.fail("the script must start with `cluster`")
        if cmd == "look":
            lines = env.look(sids(case.positional[0]), case.get_int("zxid", 0), case.get_int("epoch", 0))
        elif cmd == "deliver":
            lines = env.deliver(case.positional, case.get_int("n"))
        elif cmd == "stabilize":
            lines = env.stabilize(case.positional)
        elif cmd == "drop":
            lines = env.drop(case.positional)
        elif cmd == "dup":
            lines = env.duplicate(case.positional)
        elif cmd == "tick":
            lines = env.tick(int(case.positional[0]))
        elif cmd == "established":
            sid = int(case.positional[0])
            env.servers[sid].established(PeerState[case.get("state")], vote_of(case))
            lines = env.status()[sorted(env.servers).index(sid):][:1]
        elif cmd == "update-peer-epoch":
            for sid in sids(case.positional[0]):
                env.servers[sid].update_peer_epoch(case.get_int("epoch"))
            lines = ["ok"]
        elif cmd == "crash":
            env.crash(int(case.positional[0]))
            lines = ["ok"]
        elif cmd == "restart":
            env.restart(int(case.positional[0]))
            lines = ["ok"]
        elif cmd == "partition":
            env.partition([sids(g.strip("()")) for g in case.positional])
            lines = ["ok"]
        elif cmd == "heal":
            env.heal()
            lines = ["ok"]
        elif cmd == "status":
            lines = env.status()
        elif cmd == "network":
            lines = [f"{a}->{b} {n}" for a, b, n in env.in_flight()]
        else:
            raise case.fail("unknown command")
        return "\n".join(lines) if lines else "(nothing)"


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_election_trace(script, rewrite):
    datadriven.run_file(script, Handler(), rewrite=rewrite)


def test_every_scenario_has_a_script():
    names = {p.name for p in SCRIPTS}
    for expected in ("election_cold_start.txt", "election_late_joiner.txt", "election_racing_rounds.txt",
                     "election_finalize_wait.txt", "election_observers.txt", "election_minority.txt"):
        assert expected in names
