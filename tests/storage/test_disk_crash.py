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


# ---------------------------------------------------------------- kill -9 inside truncate and install
#
# The child loads the store, arranges to SIGKILL itself at one file-system step of the operation
# (the n-th call of os.unlink / os.replace / os.ftruncate whose path arguments match a pattern,
# just before or just after it runs), and runs the operation.  A real process death at an exact
# step: no close(), no finally blocks, no flush.  (It models a process crash; the power-loss
# ordering -- which fsync comes before which step -- is argued in disk.py and txnlog.py.)

STEP_CHILD = textwrap.dedent("""
    import os, re, signal, sys
    from coordcore.storage.disk import DiskStorage

    log_dir, snap_dir, op, arg, fn, pattern, nth, when = sys.argv[1:9]
    nth, arg = int(nth), int(arg)
    s = DiskStorage(log_dir, snap_dir)
    s.load()
    real, calls = getattr(os, fn), [0]

    def die_at_step(*args):
        paths = " ".join(os.path.basename(a) for a in args if isinstance(a, str))
        hit = re.search(pattern, paths) is not None
        if hit:
            calls[0] += 1
        if hit and calls[0] == nth and when == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        result = real(*args)
        if hit and calls[0] == nth and when == "after":
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    setattr(os, fn, die_at_step)
    if op == "truncate":
        s.truncate(arg)
    else:
        s.install_snapshot(arg, b"leader@%d" % arg)
    print("DONE", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
""")


def kill_during(dirs, op: str, arg: int, step: tuple[str, str, int, str] | None) -> bool:
    """Run ``op(arg)`` in a child killed at ``step`` (or right after the op returns); True if it returned."""
    fn, pattern, nth, when = step or ("unlink", "^$", 1, "before")
    proc = subprocess.run([sys.executable, "-c", STEP_CHILD, *dirs, op, str(arg), fn, pattern, str(nth), when],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode(errors="replace")
    return b"DONE" in proc.stdout


def old_history(dirs, sessions, snapshot_at):
    """Write each session's zxids in its own server run (so in its own log segment)."""
    for zxids in sessions:
        with DiskStorage(*dirs) as s:
            s.load()
            for z in zxids:
                s.append(z, payload(z))
                s.sync()
                if z in snapshot_at:
                    s.save_snapshot(z, b"state@%d" % z)


def loaded(dirs):
    with DiskStorage(*dirs) as s:
        state = s.load()
    assert state.truncated_bytes == 0
    zxids = [z for z, _ in state.txns]
    assert zxids == list(range(state.snapshot_zxid + 1, state.snapshot_zxid + 1 + len(zxids))), "a hole"
    return state


TRUNCATE_STEPS = {
    "before the first snapshot is dropped": ("unlink", r"^snapshot\.", 1, "before"),
    "after one snapshot is dropped": ("unlink", r"^snapshot\.", 1, "after"),
    "before the first segment is deleted": ("unlink", r"^log\.", 1, "before"),
    "after one segment is deleted": ("unlink", r"^log\.", 1, "after"),
    "before the kept segment is cut": ("ftruncate", "", 1, "before"),
    "after the kept segment is cut": ("ftruncate", "", 1, "after"),
}


@pytest.mark.parametrize("step", [*TRUNCATE_STEPS, "after truncate returned"])
def test_kill_9_during_truncate_leaves_a_prefix_no_shorter_than_the_cut(tmp_path, step):
    dirs = str(tmp_path / "log"), str(tmp_path / "snap")
    old_history(dirs, [range(1, 8), range(8, 15), range(15, 21)], snapshot_at=(10, 14, 18))
    returned = kill_during(dirs, "truncate", 12, TRUNCATE_STEPS.get(step))
    assert returned == (step == "after truncate returned")
    state = loaded(dirs)
    assert 12 <= state.last_zxid <= 20
    assert state.snapshot == b"state@%d" % state.snapshot_zxid
    assert all(data == payload(z) for z, data in state.txns)
    if returned:
        assert (state.snapshot_zxid, state.last_zxid) == (10, 12)


INSTALL_STEPS = {
    "before the install file is renamed into place": ("replace", r"^install\.5\.tmp install\.5$", 1, "before"),
    "after the install file is committed": ("replace", r"^install\.5\.tmp install\.5$", 1, "after"),
    "after one segment is deleted": ("unlink", r"^log\.", 1, "after"),
    "after one old snapshot is deleted": ("unlink", r"^snapshot\.", 1, "after"),
    "before the final rename": ("replace", r"^install\.5 snapshot\.5$", 1, "before"),
}


@pytest.mark.parametrize("step", [*INSTALL_STEPS, "after install returned"])
def test_kill_9_during_install_leaves_the_old_history_or_the_new_one(tmp_path, step):
    """The follower's history runs to 9 with snapshots at 3 and 6; the leader's snapshot is at 5."""
    dirs = str(tmp_path / "log"), str(tmp_path / "snap")
    old_history(dirs, [range(1, 5), range(5, 10)], snapshot_at=(3, 6))
    returned = kill_during(dirs, "install", 5, INSTALL_STEPS.get(step))
    assert returned == (step == "after install returned")
    state = loaded(dirs)
    if step == "before the install file is renamed into place":
        assert (state.snapshot_zxid, state.snapshot, [z for z, _ in state.txns]) == (6, b"state@6", [7, 8, 9])
    else:
        assert (state.snapshot_zxid, state.snapshot, state.txns) == (5, b"leader@5", [])
    assert not [n for n in os.listdir(os.path.join(dirs[1], "coordcore-v1")) if n.startswith("install.")]
