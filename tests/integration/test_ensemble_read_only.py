"""Read-only mode (readonlymode.enabled) on a 3-member ensemble of each backend, with kazoo's read_only=True.

A member cut off from its quorum keeps serving reads to clients that asked for a read-only session,
answers isro with "ro", and refuses their writes (NOTREADONLY); a client that did not ask for
read-only is not served there; the majority goes on writing; after the heal the member serves
read-write again and has caught up.
"""
from __future__ import annotations

import time

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NotReadOnlyCallError
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.protocol.states import KeeperState

from coordcore.testing.ensembles import make_ensemble

pytestmark = pytest.mark.timeout(150)
RETRY = dict(max_tries=-1, delay=0.1, backoff=2, max_delay=0.5)


def wait_for(cond, timeout=40.0, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.mark.parametrize("backend", ["zookeeper", "coordcore"])
def test_a_member_cut_off_serves_read_only_clients_and_refuses_their_writes(backend):
    made = []

    def client(hosts, **kw):
        c = KazooClient(hosts=hosts, timeout=10, connection_retry=RETRY, **kw)
        made.append(c)
        return c

    # ZooKeeper 3.5+ refuses a new read-only session unless local sessions are on (kazoo's own test
    # harness sets both keys for its read-only test); coordcore's read-only sessions are local anyway
    config = {"readonlymode.enabled": True, "localSessionsEnabled": True, "localSessionsUpgradingEnabled": True}
    with make_ensemble(backend, voters=3, config=config) as ens:
        try:
            leader = ens.leader()
            lonely = next(s for s in ens.sids if s != leader)
            rest = [s for s in ens.sids if s != lonely]
            writer = client(",".join(ens.member_connect_string(s) for s in rest))
            writer.start(timeout=20)
            writer.create("/ro-data", b"before")
            wait_for(lambda: ens.mode(lonely) == "follower", what="the member following")
            client_on_lonely = client(ens.member_connect_string(lonely))
            client_on_lonely.start(timeout=20)
            client_on_lonely.sync("/ro-data")
            assert client_on_lonely.get("/ro-data")[0] == b"before"
            client_on_lonely.stop()

            ens.partition([[lonely], rest])
            wait_for(lambda: ens.four_letter(lonely, "isro") == "ro", what="the cut-off member in read-only mode")
            assert ens.srvr(lonely).get("Mode") == "read-only"

            ro = client(ens.member_connect_string(lonely), read_only=True)
            ro.start(timeout=20)
            assert ro.client_state == KeeperState.CONNECTED_RO
            assert ro.get("/ro-data")[0] == b"before"       # reads from what the member has
            assert "ro-data" in ro.get_children("/")
            with pytest.raises(NotReadOnlyCallError):
                ro.create("/ro-write", b"")
            with pytest.raises(NotReadOnlyCallError):
                ro.set("/ro-data", b"changed")
            rw = client(ens.member_connect_string(lonely))   # not read-only: not served there
            with pytest.raises(KazooTimeoutError):
                rw.start(timeout=4)
            rw.stop()

            writer.create("/during", b"majority")            # the majority side goes on writing
            ens.heal()
            wait_for(lambda: ens.four_letter(lonely, "isro") == "rw", what="the member back in read-write mode")
            back = client(ens.member_connect_string(lonely))
            back.start(timeout=20)
            back.sync("/during")
            assert back.get("/during")[0] == b"majority"
            assert back.exists("/ro-write") is None and back.get("/ro-data")[0] == b"before"
            back.create("/after", b"rw again")
        finally:
            for c in made:
                try:
                    c.stop()
                    c.close()
                except Exception:
                    pass
