"""The structured log events the recipes promise (issue: path, node, token and wait time on each)."""

from __future__ import annotations

from structlog.testing import capture_logs

from recipe_helpers import expire_session, wait_for
from recipes import LeaderElection, Lock

SESSION_TIMEOUT = 2.0


def _events(entries, prefix):
    return [e for e in entries if str(e.get("event", "")).startswith(prefix)]


def test_lock_logs_acquired_and_released_with_path_node_token_and_times(zk_client, zk_root):
    path = f"{zk_root}/lock"
    lock = Lock(zk_client, path, identifier="logger-test")
    with capture_logs() as entries:
        with lock:
            node, token = lock.node, lock.fencing_token
    got = _events(entries, "lock.")
    assert [e["event"] for e in got] == ["lock.acquired", "lock.released"]
    acquired, released = got
    assert (acquired["path"], acquired["node"], acquired["token"]) == (path, node, token)
    assert acquired["wait_s"] >= 0 and acquired["identifier"] == "logger-test"
    assert (released["path"], released["node"], released["token"]) == (path, node, token)
    assert released["held_s"] >= 0 and released["outcome"] == "deleted"
    assert acquired["log_level"] == released["log_level"] == "info"


def test_lock_logs_lost_when_the_session_expires(zk_server, zk_client_factory, zk_root):
    a = zk_client_factory(timeout=SESSION_TIMEOUT)
    lock = Lock(a, f"{zk_root}/lock", identifier="a")
    with capture_logs() as entries:
        assert lock.acquire()
        node, token = lock.node, lock.fencing_token
        expire_session(a, zk_server.connect_string)
        assert lock.lost.wait(SESSION_TIMEOUT + 20)
        wait_for(lambda: _events(entries, "lock.lost"), what="lock.lost event")
    lost = _events(entries, "lock.lost")[0]
    assert (lost["node"], lost["token"], lost["log_level"]) == (node, token, "warning")
    assert lost["reason"]
    lock.release()


def test_election_logs_elected_and_resigned(zk_client, zk_root):
    path = f"{zk_root}/election"
    election = LeaderElection(zk_client, path, identifier="candidate-1")
    seen = {}

    def lead(leadership):
        seen["token"] = leadership.fencing_token

    with capture_logs() as entries:
        assert election.run(lead) is True
    got = _events(entries, "election.")
    assert [e["event"] for e in got] == ["election.elected", "election.resigned"]
    elected, resigned = got
    assert elected["path"] == resigned["path"] == path
    assert elected["token"] == resigned["token"] == seen["token"]
    assert elected["node"] == resigned["node"] and elected["node"].startswith(path + "/")
    assert elected["wait_s"] >= 0
