"""kill -9 a real writer process: every txn it saw sync() return for survives load()."""
from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from coordcore.storage.disk import DiskStorage

# The writer appends on one thread and syncs on another (as the runtime does),
# snapshots now and then, and prints "SYNCED <zxid>" with the highest zxid each
# sync covered (other stdout lines are log output).
CHILD = textwrap.dedent("""
    import sys, threading, time
    from coordcore.storage.disk import DiskStorage

    def payload(z):
        return b"%d:" % z + bytes([z % 256]) * (z % 300)

    s = DiskStorage(sys.argv[1], sys.argv[2])
    state = s.load()
    appended = synced = state.last_zxid

    def appender():
        global appended
        z = appended
        while True:
            if z - synced > 5000:
                time.sleep(0.001)
                continue
            z += 1
            s.append(z, payload(z))
            appended = z

    threading.Thread(target=appender, daemon=True).start()
    syncs = 0
    while True:
        upto = appended
        s.sync()
        synced = upto
        print("SYNCED", upto, flush=True)
        syncs += 1
        if syncs % 25 == 0:
            s.save_snapshot(upto, b"state@%d" % upto)
""")


def payload(z: int) -> bytes:
    return b"%d:" % z + bytes([z % 256]) * (z % 300)


def parse(lines: list[bytes]) -> list[int]:
    return [int(line.split()[1]) for line in lines if line.startswith(b"SYNCED ")]


def run_and_kill(log_dir: str, snap_dir: str, kill_after_syncs: int) -> list[int]:
    """Start the writer, SIGKILL it after it reported that many syncs; return reported zxids."""
    proc = subprocess.Popen([sys.executable, "-c", CHILD, log_dir, snap_dir],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    reported, buf = [], b""
    deadline = time.monotonic() + 60
    try:
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            while len(reported) < kill_after_syncs:
                assert time.monotonic() < deadline, "writer reported too few syncs in time"
                assert proc.poll() is None, "writer exited early"
                if not sel.select(timeout=1):
                    continue
                chunk = os.read(proc.stdout.fileno(), 65536)
                buf += chunk
                *lines, buf = buf.split(b"\n")
                reported += parse(lines)
        proc.send_signal(signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
    rest = buf + proc.stdout.read()
    proc.stdout.close()
    *lines, _unterminated = rest.split(b"\n")
    return reported + parse(lines)


@pytest.mark.parametrize("kill_after_syncs", [3, 60, 200])
def test_synced_txns_survive_sigkill(tmp_path, kill_after_syncs):
    log_dir, snap_dir = str(tmp_path / "log"), str(tmp_path / "snap")
    reported = []
    for _round in range(2):   # crash, recover, write on, crash again
        reported += run_and_kill(log_dir, snap_dir, kill_after_syncs)
        with DiskStorage(log_dir, snap_dir) as s:
            state = s.load()
        assert reported and max(reported) <= state.last_zxid
        if state.snapshot is not None:
            assert state.snapshot == b"state@%d" % state.snapshot_zxid
        # No holes: the snapshot covers 1..S and the txns continue from S + 1.
        zxids = [z for z, _ in state.txns]
        assert zxids == list(range(state.snapshot_zxid + 1, state.last_zxid + 1))
        assert all(data == payload(z) for z, data in state.txns)
