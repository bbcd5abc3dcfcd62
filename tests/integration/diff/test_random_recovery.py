"""Random histories survive kill -9: the whole tree after a restart equals the tree before it.

A seeded random history (the generator of ``test_random_traces``: every create mode, multis, ACL
changes, sequential counters, TTL nodes, sessions closing and resuming) runs against a coordcore
process that snapshots every 25 txns, so recovery replays a snapshot written mid-history plus the log
after it. Then every node is read -- data, all Stat fields, ACL -- the server is SIGKILLed and
restarted on its data dir, and every node must read back identically: a replay that got one cversion,
pzxid, aversion, sequence counter or ephemeral owner wrong shows here. The sessions the history left
open are still within their timeout, so their ephemerals must come back too.
"""
from __future__ import annotations

import base64
import glob
import hashlib
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import rawzk  # noqa: E402
import test_random_traces as rt  # noqa: E402
import test_trace_compare as tc  # noqa: E402
from coordcore.testing.servers import CoordcoreProcess  # noqa: E402

pytestmark = pytest.mark.timeout(120)


# the history sets ACLs that lock ordinary clients out: the dump reads as the super user
SUPER = "super:" + base64.b64encode(hashlib.sha1(b"super:pw").digest()).decode()


def dump(connect_string: str) -> dict:
    """path -> (data, Stat fields, ACL) for every node, read through the protocol as the super user."""
    out = {}
    with rawzk.connected(connect_string) as c:
        assert c.auth("digest", b"super:pw").err == 0
        todo = ["/"]
        while todo:
            path = todo.pop()
            got = c.get_data(path)
            assert got.err == 0, (path, got.err)
            r = got.reader()
            data, stat = r.buffer(), r.stat()
            acl = c.call(rawzk.GET_ACL, rawzk.Writer().string(path).bytes()).reader().acls()
            out[path] = (data, vars(stat), acl)
            kids = c.get_children(path)
            assert kids.err == 0
            todo.extend((path.rstrip("/") + "/" + k) for k in kids.reader().strings())
    return out


@pytest.mark.parametrize("seed", range(3), ids=lambda s: f"seed_{s}")
def test_tree_after_kill9_restart_equals_tree_before(seed):
    # every path created first (parents before children), so the history has a tree to work on
    preamble = [("a", tc.C, tc.cr(p, b"seed"), f"create {p}") for p in sorted(rt.PATHS, key=len)]
    steps = preamble + rt.random_steps(500 + seed, 150, sticky=0.5)
    grouped = rt.batches(steps, seed)
    config = {"snapCount": 25, "DigestAuthenticationProvider.superDigest": SUPER, **rt.server_config(seed)}
    with CoordcoreProcess(config=config) as server:
        server.start()
        tc.run_batches(server, grouped)
        before = dump(server.connect_string)
        server.kill()
        snaps = glob.glob(os.path.join(str(server.data_dir), "coordcore-v1", "snapshot.*"))
        assert snaps, "the history is long enough to have written a snapshot"
        server.restart()
        after = dump(server.connect_string)
    assert len(before) > 8, "the history left nodes to compare"
    missing = sorted(set(before) - set(after))
    extra = sorted(set(after) - set(before))
    changed = sorted(p for p in set(before) & set(after) if before[p] != after[p])
    assert not (missing or extra or changed), (
        f"seed {seed}: missing {missing}, extra {extra}, changed "
        + "; ".join(f"{p}: {before[p]} -> {after[p]}" for p in changed[:5]))
