"""``coordcore status`` with several addresses (an ensemble's connect string), against fake servers.

Each fake server answers ``srvr``/``mntr`` with canned ZooKeeper 3.8 replies, so the lag arithmetic
and the lines for servers that do not answer are exact: a leader in epoch 2 at counter 10, a follower
3 txns behind, an observer in an older epoch (not comparable: lag "-"), a port nobody listens on.
The command runs in-process (cli.main); the live-ensemble counterpart is
tests/integration/test_ensemble_fourletter.py.
"""
from __future__ import annotations

import json
import re
import socket
import threading

import pytest

from coordcore import cli
from coordcore.testing.servers import free_port

pytestmark = pytest.mark.timeout(60)


def srvr_text(mode: str, zxid: int, connections: int = 2) -> str:
    text = ("Zookeeper version: 3.8.0-test, built on 2024-01-01 00:00 UTC\n"
            "Latency min/avg/max: 0/0.5/3\nReceived: 10\nSent: 9\n"
            f"Connections: {connections}\nOutstanding: 0\nZxid: 0x{zxid:x}\nMode: {mode}\nNode count: 6\n")
    if mode == "leader":
        text += "Proposal sizes last/min/max: 72/48/190\n"
    return text


def mntr_text(mode: str) -> str:
    state = {"leader": "leading", "follower": "following", "observer": "observing"}[mode]
    rows = [("zk_version", "3.8.0-test"), ("zk_server_state", mode), ("zk_peer_state", f"{state} - broadcast")]
    if mode == "leader":
        rows += [("zk_learners", "3"), ("zk_synced_followers", "2"), ("zk_synced_observers", "1"),
                 ("zk_pending_syncs", "0")]
    rows.append(("zk_quorum_size", "3"))
    return "".join(f"{k}\t{v}\n" for k, v in rows)


class FakeServer:
    """Answers each four-letter word from ``replies`` (missing: an empty reply), then closes."""

    def __init__(self, replies: dict[str, str]):
        self.replies = replies
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            with conn:
                conn.settimeout(5)
                try:
                    word = conn.recv(4).decode("ascii", "replace")
                    conn.sendall(self.replies.get(word, "").encode())
                except OSError:
                    pass

    def close(self) -> None:
        self._stop.set()
        self.thread.join(5)
        self.sock.close()


@pytest.fixture
def fake_servers():
    made = []

    def make(replies):
        s = FakeServer(replies)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


def member(make, mode, zxid, connections=2):
    return make({"srvr": srvr_text(mode, zxid, connections), "mntr": mntr_text(mode)})


def run_cli(capsys, *argv):
    try:
        code = cli.main(["status", *argv])
    except SystemExit as e:  # argparse: --help (0) and usage errors (2)
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def cells(line: str) -> list[str]:
    return re.split(r"\s{2,}", line.strip())


@pytest.fixture
def ensemble(fake_servers):
    leader = member(fake_servers, "leader", (2 << 32) | 10, connections=5)
    follower = member(fake_servers, "follower", (2 << 32) | 7)
    observer = member(fake_servers, "observer", (1 << 32) | 30, connections=0)
    return leader, follower, observer


def test_one_line_per_member_with_lag_behind_the_leader(capsys, ensemble):
    leader, follower, observer = ensemble
    code, out, err = run_cli(capsys, ",".join(s.address for s in (follower, leader, observer)))
    assert code == 0, err
    assert err == ""
    lines = out.splitlines()
    assert [cells(line) for line in lines] == [
        [follower.address, "follower", "zxid 0x200000007", "lag 3", "connections 2"],
        [leader.address, "leader", "zxid 0x20000000a", "lag 0", "connections 5"],
        [observer.address, "observer", "zxid 0x10000001e", "lag -", "connections 0"],  # another epoch
    ]
    # aligned columns: every cell starts at the same offset on every line
    for word in ("zxid", "lag", "connections"):
        assert len({line.index(word) for line in lines}) == 1, out


def test_a_member_that_does_not_answer_gets_a_line_and_exit_status_1(capsys, ensemble, fake_servers):
    leader, follower, observer = ensemble
    closed = f"127.0.0.1:{free_port()}"
    silent = fake_servers({})  # accepts, then closes without a word
    looking = fake_servers({"srvr": "This ZooKeeper instance is not currently serving requests\n"})
    addresses = [leader.address, closed, follower.address, silent.address, looking.address, observer.address]
    code, out, err = run_cli(capsys, ",".join(addresses), "--timeout", "5")
    assert code == 1
    assert err == "coordcore: error: 3 of 6 servers did not answer\n"
    lines = out.splitlines()
    assert [cells(line)[0] for line in lines] == addresses
    assert cells(lines[0])[1:4] == ["leader", "zxid 0x20000000a", "lag 0"]
    assert cells(lines[2])[1:4] == ["follower", "zxid 0x200000007", "lag 3"]
    assert cells(lines[1])[1].startswith(f"error: cannot reach {closed}: ")
    assert cells(lines[3])[1] == f"error: {silent.address} closed the connection without answering 'srvr'"
    assert cells(lines[4])[1] == f"error: {looking.address} is up but not serving requests (starting, or no quorum)"


def test_json_is_a_list_for_several_addresses(capsys, ensemble):
    leader, follower, observer = ensemble
    closed = f"127.0.0.1:{free_port()}"
    code, out, _ = run_cli(capsys, f"{leader.address},{follower.address},{observer.address},{closed}", "--json")
    assert code == 1
    got = json.loads(out)
    assert [m["server"] for m in got] == [leader.address, follower.address, observer.address, closed]
    assert [m.get("lag") for m in got[:3]] == [0, 3, None]
    assert [m["mode"] for m in got[:3]] == ["leader", "follower", "observer"]
    assert got[0]["mntr"]["zk_learners"] == 3 and got[0]["proposal_sizes"] == [72, 48, 190]
    assert set(got[3]) == {"server", "error"} and got[3]["error"].startswith(f"cannot reach {closed}")


def test_json_stays_an_object_for_one_address(capsys, ensemble):
    leader, _, _ = ensemble
    code, out, _ = run_cli(capsys, leader.address, "--json")
    assert code == 0
    st = json.loads(out)
    assert isinstance(st, dict) and st["mode"] == "leader" and "lag" not in st
    assert st["mntr"]["zk_peer_state"] == "leading - broadcast"


def test_one_leader_address_shows_the_ensemble_figures(capsys, ensemble):
    leader, _, _ = ensemble
    code, out, _ = run_cli(capsys, leader.address)
    assert code == 0
    rows = dict(re.split(r"\s{2,}", line.strip(), maxsplit=1) for line in out.splitlines())
    assert rows["mode"] == "leader"
    assert rows["peer state"] == "leading - broadcast"
    assert rows["voters"] == "3"
    assert rows["learners"] == "3 connected; synced: 2 followers, 1 observers"
    assert rows["pending syncs"] == "0"
    assert rows["proposals"] == "last/min/max 72/48/190 bytes"


def test_no_leader_among_them_means_no_lag(capsys, fake_servers):
    a = member(fake_servers, "follower", (3 << 32) | 4)
    b = member(fake_servers, "follower", (3 << 32) | 2)
    code, out, _ = run_cli(capsys, f"{a.address},{b.address}")
    assert code == 0
    assert [cells(line)[3] for line in out.splitlines()] == ["lag -", "lag -"]


def test_two_leaders_the_newest_epoch_counts(capsys, fake_servers):
    stale = member(fake_servers, "leader", (1 << 32) | 50)  # cut off, not aware yet
    new = member(fake_servers, "leader", (2 << 32) | 5)
    follower = member(fake_servers, "follower", (2 << 32) | 4)
    code, out, _ = run_cli(capsys, f"{stale.address},{new.address},{follower.address}")
    assert code == 0
    assert [cells(line)[3] for line in out.splitlines()] == ["lag -", "lag 0", "lag 1"]


def test_a_member_ahead_of_the_leader_shows_lag_0(capsys, fake_servers):
    # the servers are asked one after another: a follower may have applied more by the time it is asked
    leader = member(fake_servers, "leader", (2 << 32) | 5)
    follower = member(fake_servers, "follower", (2 << 32) | 6)
    code, out, _ = run_cli(capsys, f"{leader.address},{follower.address}")
    assert code == 0
    assert [cells(line)[3] for line in out.splitlines()] == ["lag 0", "lag 0"]


def test_a_chroot_at_the_end_of_a_connect_string_is_ignored(capsys, ensemble):
    leader, follower, _ = ensemble
    code, out, _ = run_cli(capsys, f"{leader.address},{follower.address}/app/x")
    assert code == 0
    assert [cells(line)[0] for line in out.splitlines()] == [leader.address, follower.address]


@pytest.mark.parametrize("text, message", [
    ("127.0.0.1:2181,,127.0.0.1:2182", "empty address in '127.0.0.1:2181,,127.0.0.1:2182'"),
    ("127.0.0.1:2181,host:abc", "bad port 'abc' in 'host:abc' in '127.0.0.1:2181,host:abc'"),
    ("127.0.0.1:2181,[::1", "missing ']'"),
    ("127.0.0.1:2181,127.0.0.1:2181", "'127.0.0.1:2181' is listed twice"),
    ("127.0.0.1:2181,", "empty address"),
])
def test_bad_addresses_are_usage_errors(capsys, text, message):
    code, out, err = run_cli(capsys, text)
    assert code == 2
    assert out == ""
    assert err.startswith("coordcore: error: ") and message in err, err
    if "listed twice" not in message:
        assert "(expected HOST:PORT[,HOST:PORT...])" in err


def test_timeout_must_be_positive(capsys):
    code, _, err = run_cli(capsys, "127.0.0.1:2181,127.0.0.1:2182", "--timeout", "0")
    assert code == 2 and "--timeout must be positive" in err


def test_help_describes_several_addresses(capsys):
    code, out, _ = run_cli(capsys, "--help")
    assert code == 0
    text = " ".join(out.split())
    assert "HOST:PORT[,HOST:PORT...]" in text
    assert "one line per server" in text and "lag" in text
    assert "Exit status: 0 when every server answered; 1 when one did not" in text


def test_format_status_of_a_list():
    rows = [{"server": "a:1", "mode": "leader", "zxid_hex": "0x100000002", "lag": 0, "connections": 3},
            {"server": "long-host-name:2181", "error": "cannot reach long-host-name:2181: timed out after 5 s"},
            {"server": "b:2", "mode": "follower", "zxid_hex": "0x100000001", "lag": 1, "connections": 10,
             "read_only": True}]
    assert cli.format_status(rows) == (
        "a:1                  leader                zxid 0x100000002  lag 0  connections 3\n"
        "long-host-name:2181  error: cannot reach long-host-name:2181: timed out after 5 s\n"
        "b:2                  follower (read-only)  zxid 0x100000001  lag 1  connections 10\n")
