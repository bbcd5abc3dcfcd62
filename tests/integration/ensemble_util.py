"""Helpers shared by the ensemble tests (test_ensemble_sync.py, test_ensemble_peer_faults.py).

* :func:`clients` -- a fixture (import it into a test module) handing out kazoo clients with a capped
  reconnect delay, all stopped and closed afterwards;
* :class:`Writer` -- a thread writing one create after the other, recording which were ACKNOWLEDGED
  (the server answered OK), which failed and which are unknown (the connection went away, or no answer
  came in time: such a create may or may not have happened);
* :func:`create_surely` -- a create through a client that may be reconnecting;
* :func:`member_tree` -- a member's whole tree (data and stat of every node) after a sync, to compare
  members; :func:`children_on` -- one directory as a member sees it;
* :func:`sync_kinds` -- how a member was synced by its leader in its latest run, read from its log:
  coordcore's ``sync.diff`` / ``sync.trunc`` / ``sync.snap`` events, Apache ZooKeeper's Learner lines
  "Getting a diff from the leader", "Truncating log to get in sync with the leader", "Getting a
  snapshot from leader";
* :func:`run_zkcli` -- zkCli.sh driven the way tests/integration/test_zkcli.py drives it, against
  any connect string.

Every wait has a deadline.
"""
from __future__ import annotations

import os
import re
import subprocess
import threading
import time

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import (ConnectionClosedError, ConnectionLoss, NodeExistsError, NoNodeError,
                              OperationTimeoutError, SessionExpiredError)

BACKENDS = ["zookeeper", "coordcore"]


def wait_until(predicate, timeout: float = 20.0, interval: float = 0.05, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{message} not reached within {timeout}s")
        time.sleep(interval)


# -- clients -------------------------------------------------------------------------------------

@pytest.fixture
def clients():
    """``connect(hosts, timeout=4, **kw)`` -> started KazooClient; all stopped and closed afterwards.
    The connection retry is capped at 0.5 s so that a client finds a healed member quickly."""
    started = []

    def connect(hosts: str, timeout: float = 4, start_timeout: float = 15, **kwargs) -> KazooClient:
        kwargs.setdefault("connection_retry", dict(max_tries=-1, delay=0.1, backoff=2, max_delay=0.5))
        client = KazooClient(hosts=hosts, timeout=timeout, **kwargs)
        started.append(client)
        client.start(timeout=start_timeout)
        return client

    yield connect
    for client in reversed(started):
        try:
            client.stop()
        finally:
            client.close()


def member_client(ens, connect, sid: int, **kwargs) -> KazooClient:
    """A client of member ``sid`` alone (through its client proxy)."""
    return connect(ens.member_connect_string(sid), **kwargs)


def connected_member(ens, client) -> int | None:
    sock = getattr(client._connection, "_socket", None)
    if sock is None or not client.connected:
        return None
    try:
        return ens.sid_of_address(sock.getpeername())
    except OSError:
        return None


# -- reading what a member holds ------------------------------------------------------------------

def children_on(client, path: str) -> set[str]:
    """``path``'s children on the client's member, after a sync (so every committed write is there)."""
    client.sync(path)
    try:
        return set(client.get_children(path))
    except NoNodeError:
        return set()


def member_tree(client, root: str = "/") -> dict[str, tuple]:
    """Every node under ``root`` (``/zookeeper`` left out) on the client's member, after a sync:
    path -> (data, czxid, mzxid, pzxid, version, cversion, ephemeralOwner, numChildren)."""
    client.sync(root)
    out: dict[str, tuple] = {}

    def walk(path: str) -> None:
        try:
            data, stat = client.get(path)
            kids = client.get_children(path)
        except NoNodeError:
            return
        out[path] = (data, stat.czxid, stat.mzxid, stat.pzxid, stat.version, stat.cversion,
                     stat.ephemeralOwner, stat.numChildren)
        for kid in sorted(kids):
            child = (path.rstrip("/") + "/" + kid)
            if child != "/zookeeper":
                walk(child)

    walk(root)
    return out


# -- a stream of writes --------------------------------------------------------------------------

WRITE_ERRORS = (ConnectionLoss, SessionExpiredError, ConnectionClosedError, OperationTimeoutError)


class Writer(threading.Thread):
    """Creates ``root/n000000``, ``root/n000001``, ... one after the other through ``client``.

    ``acked``: the paths the server acknowledged; ``unknown``: the ones whose outcome the client never
    learned (connection lost, no answer within ``reply_timeout``) -- they may or may not exist; every
    other error is kept in ``errors`` (and fails :meth:`finish`).  A create is never retried, so each
    path is attempted exactly once.
    """

    def __init__(self, client: KazooClient, root: str, reply_timeout: float = 5.0, pause: float = 0.0):
        super().__init__(name=f"writer{root}", daemon=True)
        self.client = client
        self.root = root
        self.reply_timeout = reply_timeout
        self.pause = pause
        self.acked: list[str] = []
        self.unknown: list[str] = []
        self.errors: list[tuple[str, BaseException]] = []
        self.attempted: list[str] = []
        self._stop_event = threading.Event()
        self._lock = threading.Lock()

    def run(self) -> None:
        i = 0
        timeout_exc = self.client.handler.timeout_exception
        while not self._stop_event.is_set():
            path = f"{self.root}/n{i:06d}"
            i += 1
            self.attempted.append(path)
            try:
                self.client.create_async(path, b"w").get(timeout=self.reply_timeout)
            except WRITE_ERRORS + (timeout_exc,):
                with self._lock:
                    self.unknown.append(path)
                self._stop_event.wait(0.05)  # the client is reconnecting: do not spin
                continue
            except Exception as e:  # noqa: BLE001 - recorded and reported by finish()
                with self._lock:
                    self.errors.append((path, e))
                self._stop_event.wait(0.05)
                continue
            with self._lock:
                self.acked.append(path)
            if self.pause:
                self._stop_event.wait(self.pause)

    def acked_count(self) -> int:
        with self._lock:
            return len(self.acked)

    def wait_acked(self, n: int, timeout: float = 30.0, message: str = "") -> None:
        """Wait until ``n`` creates in all were acknowledged."""
        wait_until(lambda: self.acked_count() >= n, timeout, interval=0.02,
                   message=message or f"{n} acknowledged writes (have {self.acked_count()})")

    def finish(self, timeout: float = 30.0) -> None:
        self._stop_event.set()
        self.join(timeout)
        assert not self.is_alive(), "the writer did not stop"
        assert not self.errors, f"unexpected write errors: {self.errors[:5]}"

    def names(self, paths) -> set[str]:
        return {p.rsplit("/", 1)[1] for p in paths}


def create_surely(client, path: str, data: bytes = b"", timeout: float = 30) -> None:
    """Create ``path`` through a client that may be reconnecting (a NodeExists after a lost reply means
    an earlier attempt made it)."""
    deadline = time.monotonic() + timeout
    attempts = 0
    while True:
        attempts += 1
        try:
            client.create_async(path, data).get(timeout=5)
            return
        except NodeExistsError:
            if attempts > 1:
                return
            raise
        except WRITE_ERRORS + (client.handler.timeout_exception,):
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.1)


def assert_acked_everywhere(ens, connect, writer: Writer, sids=None) -> None:
    """Every acknowledged create is on every member (after a sync), and nothing never attempted is."""
    acked, attempted = writer.names(writer.acked), writer.names(writer.attempted)
    for sid in sids or ens.sids:
        c = member_client(ens, connect, sid, timeout=10)
        present = children_on(c, writer.root)
        missing = acked - present
        assert not missing, f"member {sid} lost {len(missing)} acknowledged writes: {sorted(missing)[:10]}"
        assert present <= attempted, f"member {sid} has writes nobody made: {sorted(present - attempted)[:10]}"


# -- how a member was synced ----------------------------------------------------------------------

_START_MARKER = "\n==== start "
_CC_SYNC = re.compile(r"\] (sync\.(diff|trunc|snap))\s+\[coordcore\](.*)$", re.M)
_ZK_SYNC = {
    "diff": "Getting a diff from the leader",
    "trunc": "Truncating log to get in sync with the leader",
    "snap": "Getting a snapshot from leader",
}
_ZK_SYNC_RE = re.compile("(" + "|".join(re.escape(v) for v in _ZK_SYNC.values()) + r") 0x([0-9a-f]+)")
_ZK_KIND = {v: k for k, v in _ZK_SYNC.items()}


def log_size(ens, sid: int) -> int:
    """Member ``sid``'s log size now: a ``since`` for :func:`latest_run_log` / :func:`sync_events`."""
    try:
        return ens.member(sid).log_path.stat().st_size
    except FileNotFoundError:
        return 0


def latest_run_log(ens, sid: int, since: int | None = None) -> str:
    """Member ``sid``'s log since its latest start (the harness writes a "==== start" line each time),
    or since byte offset ``since`` (see :func:`log_size`)."""
    raw = ens.member(sid).log_path.read_bytes()
    if since is not None:
        return raw[since:].decode(errors="replace")
    text = raw.decode(errors="replace")
    i = text.rfind(_START_MARKER)
    return text[i:] if i >= 0 else text


def sync_events(ens, sid: int, since: int | None = None) -> list[tuple[str, dict[str, str]]]:
    """(kind, fields) of every sync member ``sid`` was told in its latest run (or since byte offset
    ``since``), in order; kind is "diff", "trunc" or "snap".  coordcore: the fields of its sync.* event
    (leader, zxid, last_zxid); ZooKeeper: {"zxid": the zxid in its Learner log line}."""
    text = latest_run_log(ens, sid, since)
    if ens.backend == "coordcore":
        return [(m.group(2), dict(re.findall(r"(\w+)=(\S+)", m.group(3)))) for m in _CC_SYNC.finditer(text)]
    return [(_ZK_KIND[m.group(1)], {"zxid": "0x" + m.group(2)}) for m in _ZK_SYNC_RE.finditer(text)]


def sync_kinds(ens, sid: int) -> list[str]:
    return [kind for kind, _ in sync_events(ens, sid)]


def wait_synced(ens, sid: int, timeout: float = 30, since: int | None = None) -> list[tuple[str, dict[str, str]]]:
    """Wait until member ``sid`` logged at least one sync in its latest run (or since ``since``); its
    :func:`sync_events`."""
    return wait_until(lambda: sync_events(ens, sid, since), timeout, interval=0.1,
                      message=f"member {sid} logs how it was synced")


def leader_learners(ens, leader: int) -> dict[str, int]:
    """The leader's own count of its learners (``mntr``: zk_learners, zk_synced_followers,
    zk_synced_observers); {} if it does not answer as a leader."""
    try:
        text = ens.four_letter(leader, "mntr")
    except OSError:
        return {}
    return {k: int(v) for k, v in re.findall(
        r"^zk_(learners|synced_followers|synced_observers)\s+(\d+)$", text, re.M)}


def log_count(ens, sid: int, pattern: str) -> int:
    """How many times ``pattern`` (a regex) occurs in member ``sid``'s whole log."""
    return len(re.findall(pattern, ens.member(sid).log_path.read_text(errors="replace")))


# -- zkCli.sh ------------------------------------------------------------------------------------

ZKCLI_MARKER = "printwatches is on"


def run_zkcli(connect_string: str, commands: list[str], timeout: float = 90) -> list[list[str]]:
    """Run ``commands`` in one zkCli session against ``connect_string``; the output lines of each.
    (As tests/integration/test_zkcli.py: commands on stdin, each followed by ``printwatches`` whose
    "printwatches is on" splits the output into one block per command.)"""
    from coordcore.testing import find_zkcli

    zkcli = find_zkcli()
    script = "printwatches\n" + "".join(f"{cmd}\nprintwatches\n" for cmd in commands) + "quit\n"
    env = dict(os.environ)
    env["CLIENT_JVMFLAGS"] = "-Xmx64m -XX:+UseSerialGC -XX:TieredStopAtLevel=1"
    proc = subprocess.run([zkcli, "-waitforconnection", "-timeout", "15000", "-server", connect_string],
                          input=script, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=timeout, env=env)
    lines = proc.stdout.splitlines()
    marks = [i for i, line in enumerate(lines) if line.strip() == ZKCLI_MARKER]
    assert len(marks) == len(commands) + 1, f"zkCli output did not follow the script:\n{proc.stdout}"
    return [[line for line in lines[a + 1:b] if line.strip()] for a, b in zip(marks, marks[1:])]
