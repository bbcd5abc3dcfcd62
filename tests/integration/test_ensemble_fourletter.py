"""Four-letter words on ensemble members, and ``coordcore status`` on an ensemble: both backends alike.

One 3-voter + 1-observer ensemble per backend (module scope; sids 1-3 vote, 4 observes), a few writes,
then every member is asked.  The same assertions run on Apache ZooKeeper 3.8 (which keeps them honest:
they were written from its replies) and on coordcore.  What they pin down, per role:

* ``mntr``: the keys and their order.  ZooKeeper prints several hundred metrics; coordcore prints a
  subset, so ZooKeeper's reply is compared after dropping the keys coordcore never prints
  (:data:`MNTR_KEYS` lists, per role, the keys both print, in ZooKeeper's order); coordcore's reply
  must be exactly that list, so coordcore never prints a key that ZooKeeper does not print for the
  role.  zk_server_state / zk_peer_state ("leading - broadcast" ...), zk_quorum_size (voters: 3),
  an observer's zk_observer_master_id (the leader's sid), a leader's zk_learners (3: followers AND
  observers), zk_synced_followers (2: voters only), zk_synced_non_voting_followers (0),
  zk_synced_observers (1), zk_pending_syncs (0), zk_leader_uptime (ms since it began to serve: above
  0, no more than the process's zk_uptime) and its proposal sizes.
* ``srvr`` / ``stat``: the lines, ``Mode: <role>``, the same zxid on every member once they are in
  step, and on the leader only ``Proposal sizes last/min/max`` (equal to mntr's figures).
* ``conf``: the standalone keys, then initLimit ... peerType, ``membership: `` and one
  ``server.N=host:quorumPort:electionPort:participant|observer`` line per member as that member's
  own zoo.cfg names it (the harness gives each member its own view), then ``version=0`` with no
  newline after it.
* ``isro``: ``rw`` on every serving member.
* ``coordcore status <connect string>`` (a child process): one line per member with its mode, the
  common zxid, lag 0 and its connections; with a member killed, a line saying why it did not answer,
  the others as before, exit status 1.

Apache ZooKeeper missing is a failure (ZooKeeperNotFound), never a skip.  Every wait has a deadline;
nothing asserts how long anything took.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import pytest
from kazoo.client import KazooClient

from coordcore.testing.ensembles import make_ensemble

BACKENDS = ["zookeeper", "coordcore"]
ROLES = ("leader", "follower", "observer")
PEER_STATES = {"leader": "leading - broadcast", "follower": "following - broadcast",
               "observer": "observing - broadcast"}

pytestmark = pytest.mark.timeout(240)

# mntr keys both backends print, per role, in ZooKeeper 3.8's order (its metrics map order)
_HEAD = ["zk_version", "zk_server_state", "zk_peer_state"]
_BODY = ["zk_ephemerals_count", "zk_num_alive_connections", "zk_avg_latency", "zk_outstanding_requests",
         "zk_znode_count", "zk_global_sessions", "zk_packets_sent", "zk_packets_received", "zk_watch_count",
         "zk_min_latency", "zk_max_file_descriptor_count", "zk_approximate_data_size",
         "zk_open_file_descriptor_count", "zk_local_sessions", "zk_uptime", "zk_max_latency"]
MNTR_KEYS = {
    "follower": _HEAD + _BODY + ["zk_quorum_size"],
    "observer": _HEAD + ["zk_observer_master_id"] + _BODY + ["zk_quorum_size"],
    "leader": _HEAD + ["zk_ephemerals_count", "zk_num_alive_connections", "zk_avg_latency",
                       "zk_min_proposal_size", "zk_outstanding_requests", "zk_znode_count", "zk_global_sessions",
                       "zk_packets_sent", "zk_packets_received", "zk_max_proposal_size", "zk_synced_followers",
                       "zk_watch_count", "zk_synced_non_voting_followers", "zk_synced_observers",
                       "zk_min_latency", "zk_max_file_descriptor_count", "zk_approximate_data_size",
                       "zk_open_file_descriptor_count", "zk_last_proposal_size", "zk_pending_syncs",
                       "zk_leader_uptime", "zk_local_sessions", "zk_uptime", "zk_max_latency", "zk_learners", "zk_quorum_size"],
}
#: Keys ZooKeeper 3.8 prints for a role that coordcore does not, each with the key it follows there.
ZK_ONLY: dict[str, dict[str, str]] = {}
_KNOWN = set().union(*MNTR_KEYS.values(), *ZK_ONLY.values())

_INT = r"-?\d+"
_DOUBLE = r"\d+\.\d+(E\d+)?"
_VERSION = r"Zookeeper version: 3\.8\.\d+-[^\n]*, built on [^\n]+\n"
_BRIEF = r" /[0-9a-fA-F.:]+:\d+\[[0-9a-f]+\]\(queued=\d+,recved=\d+,sent=\d+\)\n"


def _stats(role: str) -> str:
    s = (r"Latency min/avg/max: \d+/" + _DOUBLE + r"/\d+\nReceived: \d+\nSent: \d+\nConnections: \d+\n"
         rf"Outstanding: \d+\nZxid: 0x[0-9a-f]+\nMode: {role}\nNode count: \d+\n")
    if role == "leader":
        s += rf"Proposal sizes last/min/max: {_INT}/{_INT}/{_INT}\n"
    return s


def wait_until(predicate, timeout: float = 30.0, interval: float = 0.1, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{message} not reached within {timeout}s")
        time.sleep(interval)


def zxids(ens) -> dict[int, int | None]:
    out = {}
    for sid in ens.sids:
        z = ens.srvr(sid).get("Zxid")
        out[sid] = int(z, 16) if z else None
    return out


def in_step(ens) -> int:
    """Wait until every running member serves and reports the same zxid; return it."""
    ens.wait_serving(60)

    def same():
        z = {s: v for s, v in zxids(ens).items() if ens.running(s)}
        values = set(z.values())
        return values.pop() if len(values) == 1 and None not in values else None

    return wait_until(same, 30, message=f"{ens.backend} members reporting one zxid")


def roles(ens) -> dict[str, list[int]]:
    modes = ens.wait_serving(60)
    out: dict[str, list[int]] = {r: [] for r in ROLES}
    for sid, mode in sorted(modes.items()):
        out[mode].append(sid)
    return out


def mntr_pairs(ens, sid: int) -> list[tuple[str, str]]:
    text = ens.four_letter(sid, "mntr")
    assert text.endswith("\n"), text[-200:]
    return [tuple(line.split("\t", 1)) for line in text.splitlines()]


def run_status(*argv, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "coordcore", "status", *argv], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module", params=BACKENDS)
def ensemble(request):
    with make_ensemble(request.param, voters=3, observers=1) as ens:
        client = KazooClient(hosts=ens.connect_string, timeout=10)
        client.start(timeout=30)
        try:
            client.create("/fourletter", b"x" * 100)
            client.set("/fourletter", b"y" * 10)
            client.create("/fourletter/child", b"")
        finally:
            client.stop()
            client.close()
        in_step(ens)
        yield ens


# -- mntr ----------------------------------------------------------------------------------------------

def test_one_leader_two_followers_one_observer(ensemble):
    r = roles(ensemble)
    assert len(r["leader"]) == 1 and len(r["follower"]) == 2
    assert r["observer"] == [4]


@pytest.mark.parametrize("role", ROLES)
def test_mntr_keys_per_role_as_zookeeper(ensemble, role):
    for sid in roles(ensemble)[role]:
        keys = [k for k, _ in mntr_pairs(ensemble, sid)]
        assert len(keys) == len(set(keys)), f"a key printed twice: {keys}"
        if ensemble.backend == "zookeeper":
            expected = list(MNTR_KEYS[role])
            for key, after in ZK_ONLY.get(role, {}).items():
                expected.insert(expected.index(after) + 1, key)
            assert [k for k in keys if k in _KNOWN] == expected
        else:
            assert keys == MNTR_KEYS[role]


@pytest.mark.parametrize("role", ROLES)
def test_mntr_member_values(ensemble, role):
    leader = roles(ensemble)["leader"][0]
    for sid in roles(ensemble)[role]:
        values = dict(mntr_pairs(ensemble, sid))
        assert re.fullmatch(r"3\.8\.\d+-.*, built on .+", values["zk_version"])
        assert values["zk_server_state"] == role
        assert values["zk_peer_state"] == PEER_STATES[role]
        assert values["zk_quorum_size"] == "3"
        assert re.fullmatch(_DOUBLE, values["zk_avg_latency"])
        for key in MNTR_KEYS[role]:
            if key not in ("zk_version", "zk_server_state", "zk_peer_state", "zk_avg_latency"):
                assert re.fullmatch(_INT, values[key]), (key, values[key])
        if role == "observer":
            assert values["zk_observer_master_id"] == str(leader)
        if role == "leader":
            # learners counts every learner (observers too); synced_followers only the voters
            assert {k: values[k] for k in ("zk_learners", "zk_synced_followers", "zk_synced_non_voting_followers",
                                           "zk_synced_observers", "zk_pending_syncs")} == {
                "zk_learners": "3", "zk_synced_followers": "2", "zk_synced_non_voting_followers": "0",
                "zk_synced_observers": "1", "zk_pending_syncs": "0"}
            last, lo, hi = (int(values[f"zk_{k}_proposal_size"]) for k in ("last", "min", "max"))
            assert 0 < lo <= last <= hi  # the fixture wrote: sizes of real proposals, not -1
            assert 0 < int(values["zk_leader_uptime"]) <= int(values["zk_uptime"])
            srvr = ensemble.four_letter(sid, "srvr")
            assert f"\nProposal sizes last/min/max: {last}/{lo}/{hi}\n" in srvr


# -- srvr, stat, isro, conf ----------------------------------------------------------------------------

@pytest.mark.parametrize("role", ROLES)
def test_srvr_and_stat_per_role(ensemble, role):
    zxid = in_step(ensemble)
    for sid in roles(ensemble)[role]:
        srvr = ensemble.four_letter(sid, "srvr")
        assert re.fullmatch(_VERSION + _stats(role), srvr), srvr
        assert f"\nZxid: 0x{zxid:x}\n" in srvr
        stat = ensemble.four_letter(sid, "stat")
        assert re.fullmatch(_VERSION + r"Clients:\n(" + _BRIEF + r")+\n" + _stats(role), stat), stat
    assert zxid >> 32 >= 1  # an epoch was established


def test_isro_and_ruok_on_every_member(ensemble):
    ensemble.wait_serving(60)
    for sid in ensemble.sids:
        assert ensemble.four_letter(sid, "isro") == "rw"
        assert ensemble.four_letter(sid, "ruok") == "imok"


def expected_quorum_conf(ens, sid: int) -> str:
    """conf's quorum section for member ``sid``: its own ports, and the members as its zoo.cfg names
    them (its own line with its real ports, the others' with the proxy ports of ``sid -> other``)."""
    m = ens.member(sid)
    lines = [f"initLimit=10", "syncLimit=5", "electionAlg=3", f"electionPort={m.election_port}",
             f"quorumPort={m.quorum_port}", f"peerType={1 if m.role == 'observer' else 0}", "membership: "]
    for other in ens.sids:
        o = ens.member(other)
        if other == sid:
            host, q, e = ens.host, o.quorum_port, o.election_port
        else:
            ql, el = ens.link(sid, other, "quorum"), ens.link(sid, other, "election")
            host, q, e = ql.host, ql.port, el.port
        lines.append(f"server.{other}={host}:{q}:{e}:{'observer' if o.role == 'observer' else 'participant'}")
    return "\n".join(lines) + "\nversion=0"


def test_conf_lists_the_members_like_zookeeper(ensemble):
    ensemble.wait_serving(60)
    for sid in ensemble.sids:
        conf = ensemble.four_letter(sid, "conf")
        m = ensemble.member(sid)
        head = (rf"clientPort={m.client_port}\nsecureClientPort=-1\ndataDir=[^\n]+\ndataDirSize=\d+\n"
                r"dataLogDir=[^\n]+\ndataLogSize=\d+\ntickTime=200\nmaxClientCnxns=\d+\nminSessionTimeout=\d+\n"
                rf"maxSessionTimeout=\d+\nclientPortListenBacklog=-?\d+\nserverId={sid}\n")
        match = re.match(head, conf)
        assert match, conf
        assert conf[match.end():] == expected_quorum_conf(ensemble, sid)


# -- coordcore status ------------------------------------------------------------------------------------

def status_cells(line: str) -> list[str]:
    return re.split(r"\s{2,}", line.strip())


def test_status_prints_one_line_per_member(ensemble):
    zxid = in_step(ensemble)
    modes = ensemble.wait_serving(60)
    proc = run_status(ensemble.connect_string)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == len(ensemble.sids), proc.stdout
    for sid, line in zip(ensemble.sids, lines):
        cells = status_cells(line)
        assert cells[:4] == [ensemble.member_connect_string(sid), modes[sid], f"zxid 0x{zxid:x}", "lag 0"], line
        assert re.fullmatch(r"connections \d+", cells[4]), line
        assert len(cells) == 5


def test_status_json_lists_the_members(ensemble):
    zxid = in_step(ensemble)
    modes = ensemble.wait_serving(60)
    proc = run_status(ensemble.connect_string, "--json")
    assert proc.returncode == 0, proc.stderr
    members = json.loads(proc.stdout)
    assert [m["server"] for m in members] == [ensemble.member_connect_string(s) for s in ensemble.sids]
    for sid, m in zip(ensemble.sids, members):
        assert m["mode"] == modes[sid] and m["zxid"] == zxid and m["lag"] == 0
        assert m["mntr"]["zk_peer_state"] == PEER_STATES[modes[sid]]


def test_status_with_a_member_killed(ensemble):
    """Last in the module: it kills a follower, and starts it again afterwards."""
    modes = ensemble.wait_serving(60)
    victim = next(s for s, m in sorted(modes.items()) if m == "follower")
    ensemble.kill(victim)
    try:
        after = ensemble.wait_serving(60)  # two voters of three still make a quorum
        assert {s: m for s, m in modes.items() if s != victim} == after
        zxid = in_step(ensemble)
        proc = run_status(ensemble.connect_string, "--timeout", "5")
        assert proc.returncode == 1, (proc.stdout, proc.stderr)
        assert "1 of 4 servers did not answer" in proc.stderr
        lines = proc.stdout.splitlines()
        assert len(lines) == len(ensemble.sids), proc.stdout
        for sid, line in zip(ensemble.sids, lines):
            cells = status_cells(line)
            assert cells[0] == ensemble.member_connect_string(sid)
            if sid == victim:
                assert len(cells) == 2 and cells[1].startswith("error: "), line
            else:
                assert cells[1:4] == [modes[sid], f"zxid 0x{zxid:x}", "lag 0"], line
        # the same through the members' real ports: the closed one is refused outright
        direct = ",".join(ensemble.direct_connect_string(s) for s in ensemble.sids)
        proc = run_status(direct, "--json")
        assert proc.returncode == 1
        members = json.loads(proc.stdout)
        down = [m for m in members if "error" in m]
        assert [m["server"] for m in down] == [ensemble.direct_connect_string(victim)]
        assert down[0]["error"].startswith(f"cannot reach {ensemble.direct_connect_string(victim)}: ")
        assert sorted(m["mode"] for m in members if "error" not in m) == sorted(
            m for s, m in modes.items() if s != victim)
    finally:
        ensemble.start_member(victim, wait=True, timeout=60)
