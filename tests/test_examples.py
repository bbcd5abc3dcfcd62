"""The examples run as a new user runs them (the README's first command is the election demo)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = pytest.mark.timeout(120)


def _run(script, *args):
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "examples", script), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=100)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def test_election_demo_hands_over_leadership_on_the_embedded_server():
    out = _run("election_demo.py")
    assert "started an embedded coordcore server" in out
    leads = [line for line in out.splitlines() if "is the leader" in line or "took over" in line]
    assert len(leads) == 3, out  # the first leader, then one take-over per kill
    tokens = [int(line.split("fencing token ")[1].split()[0].rstrip(")")) for line in leads]
    assert tokens == sorted(tokens) and len(set(tokens)) == 3, out


def test_election_demo_on_an_ensemble_survives_its_leading_server_dying():
    out = _run("election_demo.py", "--ensemble", "3")
    assert "started a local coordcore ensemble" in out
    assert "is still the leader after the failover" in out, out
    leads = [line for line in out.splitlines() if "is the leader" in line or "took over" in line]
    assert len(leads) == 3, out
    tokens = [int(line.split("fencing token ")[1].split()[0].rstrip(")")) for line in leads]
    assert tokens == sorted(tokens) and len(set(tokens)) == 3, out


def test_lock_demo_rejects_the_zombie_holder():
    out = _run("lock_demo.py", "--workers", "2", "--rounds", "2")
    assert "is_held=False" in out and "REJECTED stale token" in out, out
    assert "accepted" in out
