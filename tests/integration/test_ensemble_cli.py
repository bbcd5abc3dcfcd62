"""``coordcore ensemble``: a local ensemble of real processes, as a user runs it from a shell."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest
from kazoo.client import KazooClient

pytestmark = pytest.mark.timeout(120)


def _read_until(proc, pattern: str, timeout: float = 60) -> list[str]:
    lines = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"the command ended before {pattern!r}: {lines}")
        lines.append(line.rstrip("\n"))
        if re.search(pattern, line):
            return lines
    raise AssertionError(f"no {pattern!r} within {timeout}s: {lines}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_it_starts_members_reports_a_role_change_and_stops_them_all_on_ctrl_c(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "coordcore", "ensemble", "--voters", "3", "--observers", "1",
                             "--tick-time", "200", "--data", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    members: dict[int, tuple[int, str]] = {}
    try:
        lines = _read_until(proc, "Ctrl-C stops every member")
        connect = next(line.split(": ", 1)[1] for line in lines if line.startswith("connect string: "))
        members = {int(m.group(1)): (int(m.group(2)), m.group(3))
                   for m in (re.match(r"\s+server\.(\d+)\s+pid (\d+)\s+(\w+)", line) for line in lines) if m}
        assert sorted(members) == [1, 2, 3, 4]
        assert sorted(role for _, role in members.values()) == ["follower", "follower", "leader", "observer"]
        assert members[4][1] == "observer"
        client = KazooClient(hosts=connect, timeout=10)
        client.start(timeout=20)
        try:
            client.create("/from-the-cli", b"hello")
            assert client.get("/from-the-cli")[0] == b"hello"
        finally:
            client.stop()
            client.close()
        leader = next(sid for sid, (_, role) in members.items() if role == "leader")
        os.kill(members[leader][0], signal.SIGKILL)
        seen = []  # the command reports the exit, and another member taking over (in either order)
        while not (any(re.search(rf"server\.{leader} \(pid .*\): leader -> exited", x) for x in seen)
                   and any(re.search(rf"server\.(?!{leader}\b)\d+ .*-> leader", x) for x in seen)):
            seen += _read_until(proc, r"->")
        assert (tmp_path / "member-1" / "zoo.cfg").exists()  # --data keeps what the members wrote
        proc.send_signal(signal.SIGINT)
        _read_until(proc, "stopping")
        assert proc.wait(30) == 0
        for pid, _ in members.values():
            deadline = time.monotonic() + 10
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert not _alive(pid), f"member pid {pid} outlived the command"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        for pid, _ in members.values():  # members run in sessions of their own: a failed run stops them here
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def test_bad_sizes_are_refused_with_a_clear_error():
    r = subprocess.run([sys.executable, "-m", "coordcore", "ensemble", "--voters", "1"], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 2 and "at least one voter and two members" in r.stderr
