"""Ensembles under network faults, dead clients, bad peer traffic -- on coordcore and Apache ZooKeeper 3.8.

* a minority partition (the leader alone, or a follower alone) never acknowledges a write; the majority
  elects if it must and serves; after the heal every member holds the same tree (data and stat);
* the leader stops counting a learner it has not heard from for syncLimit ticks (ZooKeeper's
  LearnerHandler read timeout), so a member whose traffic to the leader is lost leaves the ensemble
  (its clients' writes end in ConnectionLoss instead of hanging), and what that connection held when
  the cut heals is discarded -- a held revalidation must not move a session away from its member;
* a dead client's (SIGKILLed process) ephemeral node vanishes on every member (voters and an observer)
  exactly once: a persistent recursive watch on each member sees one NodeDeleted and nothing else
  before a later barrier write; a client's watches keep firing after it fails over because its member
  was killed;
* malformed peer traffic and connections from unknown servers, sent straight to a member's real
  quorum and election ports: coordcore refuses them with ``peer.refused`` / ``peer.bad_message``,
  stays up and the ensemble keeps taking writes; ZooKeeper, sent garbage on its election (and the
  leader's quorum) port, keeps serving with the same leader;
* the unmodified zkCli.sh with a multi-host connect string (``-server h:p1,h:p2,h:p3``) works against
  a coordcore ensemble as against a ZooKeeper one, also with a member down.

Timing: every wait has a deadline; nothing asserts a duration.  One test pauses for a fixed
3 * syncLimit * tickTime (see its docstring): the time the leader is given to notice a silent learner.
"""
from __future__ import annotations

import os
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import textwrap
import time

import pytest
from kazoo.exceptions import KazooException

from coordcore.testing.ensembles import make_ensemble

try:
    from tests.integration import rawzk
    from tests.integration.ensemble_util import (BACKENDS, WRITE_ERRORS, children_on, clients, connected_member,
                                                 create_surely, leader_learners, log_count, log_size, member_client,
                                                 member_tree, run_zkcli, wait_synced, wait_until)
except ImportError:
    import rawzk
    from ensemble_util import (BACKENDS, WRITE_ERRORS, children_on, clients, connected_member,  # noqa: F401
                               create_surely, leader_learners, log_count, log_size, member_client, member_tree,
                               run_zkcli, wait_synced, wait_until)

pytestmark = pytest.mark.timeout(150)

__all__ = ["clients"]  # the fixture, imported

NODE_CREATED, NODE_DELETED, NODE_DATA_CHANGED, NODE_CHILDREN_CHANGED = 1, 2, 3, 4
PERSISTENT_RECURSIVE = 1


# -- 4. a minority partition --------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("minority", ["leader", "follower"])
def test_minority_never_acknowledges_majority_serves_heal_converges(backend, minority, clients):
    with make_ensemble(backend, voters=3) as ens:
        leader = ens.leader()
        alone = leader if minority == "leader" else next(s for s in ens.sids if s != leader)
        rest = [s for s in ens.sids if s != alone]
        majority = member_client(ens, clients, rest[0], timeout=10)
        majority.create("/part")
        for i in range(5):
            majority.create(f"/part/before-{i}", b"b")
        isolated = member_client(ens, clients, alone, timeout=10)
        assert children_on(isolated, "/part") == {f"before-{i}" for i in range(5)}
        ens.partition([[alone], rest])
        # writes sent to the minority side at once, while it still thinks it is in the ensemble
        sent = [isolated.create_async(f"/part/minority-{i}", b"m") for i in range(5)]
        modes = ens.wait_serving(45, sids=rest)
        new = next(s for s, m in modes.items() if m == "leader")
        assert new != alone
        if minority == "follower":
            assert new == leader  # a follower's loss costs no election
        wait_until(lambda: ens.mode(alone) is None, 30, message=f"isolated member {alone} stops serving")
        for r in sent:  # none of them is ever acknowledged
            with pytest.raises((KazooException, isolated.handler.timeout_exception)):
                r.get(timeout=15)
        # while cut off, the minority member serves nobody: a new session there is not set up
        with pytest.raises(majority.handler.timeout_exception):
            clients(ens.member_connect_string(alone), start_timeout=2)
        isolated.stop()  # nothing of it may be sent after the heal
        # the majority serves writes
        create_surely(majority, "/part/majority-0", b"M")
        for i in range(1, 10):
            majority.create(f"/part/majority-{i}", b"M")
        log_mark = log_size(ens, alone)
        ens.heal()
        modes = ens.wait_serving(45)
        assert modes[alone] == "follower" and ens.leader() == new
        trees = {sid: member_tree(member_client(ens, clients, sid, timeout=10), "/") for sid in ens.sids}
        assert trees[rest[0]] == trees[rest[1]] == trees[alone], "members differ after the heal"
        names = {p.rsplit("/", 1)[1] for p in trees[alone] if p.startswith("/part/")}
        assert {f"before-{i}" for i in range(5)} | {f"majority-{i}" for i in range(10)} <= names
        if minority == "leader":
            # the isolated leader's proposals reached no quorum: gone everywhere
            assert not any(n.startswith("minority-") for n in names), sorted(names)
            # it rejoined without a restart, holding them as an uncommitted tail of the old epoch; the new
            # leader has proposals of its own epoch, so ZooKeeper will not TRUNC across the boundary and
            # SNAPs (see test_ensemble_sync.py); coordcore TRUNCs
            events = wait_synced(ens, alone, since=log_mark)
            assert events[0][0] == ("trunc" if backend == "coordcore" else "snap"), events
        # (a write the isolated FOLLOWER forwarded is not acknowledged either, but the client cannot know
        # whether it happened: coordcore applies it when the heal delivers it, ZooKeeper's leader has
        # closed that learner's connection by then -- both are allowed)


# -- the leader's view of a learner it no longer hears from -----------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_leader_stops_counting_a_learner_it_no_longer_hears_from(backend, clients):
    """ZooKeeper's LearnerHandler reads a synced learner's socket with a syncLimit * tickTime timeout: a
    learner silent that long (partitioned, paused, its packets lost) is dropped and its connection
    closed, and ``mntr`` stops counting it.  Checked for an observer, then for a follower (no writes
    meanwhile, so no proposal waits for its ACK)."""
    with make_ensemble(backend, voters=3, observers=1) as ens:
        leader = ens.leader()
        assert leader_learners(ens, leader) == {"learners": 3, "synced_followers": 2, "synced_observers": 1}
        follower = next(s for s in (1, 2, 3) if s != leader)
        for learner, expected in ((4, {"learners": 2, "synced_followers": 2, "synced_observers": 0}),
                                  (follower, {"learners": 2, "synced_followers": 1, "synced_observers": 1})):
            ens.partition([[learner], [s for s in ens.sids if s != learner]])
            wait_until(lambda: ens.mode(learner) is None, 15, message=f"isolated member {learner} stops serving")
            wait_until(lambda: leader_learners(ens, leader) == expected, 10,
                       message=f"leader {leader} stops counting member {learner}, silent for syncLimit "
                               f"(it counts {leader_learners(ens, leader)}, expected {expected})")
            assert ens.leader() == leader
            ens.heal()
            ens.wait_serving(45)
            wait_until(lambda: leader_learners(ens, leader).get("learners") == 3, 15,
                       message=f"member {learner} is counted again after the heal")


def one_way_cut_observer(ens):
    """(leader, observer): the observer's traffic to the leader is held from now on; the leader's (its
    pings, commits) still reaches the observer."""
    leader = ens.leader()
    ens.cut(4, leader)
    return leader, 4


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_member_whose_traffic_to_the_leader_is_lost_does_not_hang_its_clients(backend, clients):
    """The observer hears the leader but the leader no longer hears it.  ZooKeeper's leader drops it after
    syncLimit ticks, so it leaves the ensemble and its clients fail over: a write sent through it ends
    in an error (ConnectionLoss), it does not wait for the cut to heal."""
    with make_ensemble(backend, voters=3, observers=1) as ens:
        client = member_client(ens, clients, 4, timeout=20)
        client.create("/oneway")
        leader, observer = one_way_cut_observer(ens)
        pending = client.create_async("/oneway/through-the-observer", b"x")
        try:
            pending.get(timeout=10)
        except KazooException:
            pass  # the connection was lost: the client may retry elsewhere
        except client.handler.timeout_exception:
            pytest.fail(f"a write through member {observer}, whose traffic to leader {leader} is lost, got no "
                        f"answer within 10 s (modes {ens.modes()}, leader counts {leader_learners(ens, leader)})")
        else:
            pytest.fail("a write whose forwarding to the leader was held was acknowledged")
        ens.heal()
        ens.wait_serving(45)
        create_surely(client, "/oneway/after-the-heal")
        assert "after-the-heal" in children_on(member_client(ens, clients, observer), "/oneway")


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_revalidation_held_by_a_cut_does_not_move_a_session_after_the_heal(backend, clients):
    """A client's session lives on member ``home``.  Someone presents that session to the observer while
    the observer's traffic to the leader is held: the observer asks the leader to revalidate it, and
    the question waits in the cut.  Long after (several syncLimits: ZooKeeper's leader has dropped the
    silent observer and closed its connection, discarding what was held), the cut heals.  The session
    must still belong to ``home``: the client's writes there succeed.  (ZooKeeper moves a session to the
    member that revalidated it last; writes from its old member then fail with SESSIONMOVED.)

    The heal waits until the leader says (mntr zk_learners) it dropped the silent observer."""
    with make_ensemble(backend, voters=3, observers=1) as ens:
        leader = ens.leader()
        home = next(s for s in (1, 2, 3) if s != leader)
        client = member_client(ens, clients, home, timeout=20)
        client.create("/moved", b"0")
        session_id, passwd = client.client_id
        leader, observer = one_way_cut_observer(ens)
        raw = rawzk.RawClient(ens.member_connect_string(observer), io_timeout=2)
        try:
            resp = raw.handshake(20000, session_id, passwd, 0)
        except OSError:
            resp = None  # no answer in time: the revalidation is held
        finally:
            raw.close()
        assert resp is None or resp.timeout <= 0, f"the observer took the session without the leader: {resp}"
        # the leader has dropped the silent observer (its mntr counts the two followers only)
        deadline = time.monotonic() + 30
        while "zk_learners\t2\n" not in ens.four_letter(leader, "mntr"):
            assert time.monotonic() < deadline, "the leader never dropped the observer it no longer hears"
            time.sleep(0.1)
        ens.heal()
        ens.wait_serving(45)
        for i in range(3):
            try:
                client.set_async("/moved", str(i + 1).encode()).get(timeout=10)
            except KazooException as e:
                pytest.fail(f"write {i} through member {home}, where the session lives, failed with "
                            f"{type(e).__name__}: the held revalidation from member {observer} moved the session")
        assert connected_member(ens, client) == home
        assert client.get("/moved")[0] == b"3"


# -- 5. ephemerals of a dead client, watches across a fail-over -----------------------------------

DEAD_CLIENT = textwrap.dedent("""
    import sys, time
    from kazoo.client import KazooClient
    hosts, timeout, path = sys.argv[1], float(sys.argv[2]), sys.argv[3]
    c = KazooClient(hosts=hosts, timeout=timeout)
    c.start(timeout=15)
    c.create(path, b"owned", ephemeral=True)
    print("0x%x" % c.client_id[0], flush=True)
    time.sleep(600)
""")


def read_line(proc: subprocess.Popen, timeout: float) -> str:
    """The first line ``proc`` prints, waiting at most ``timeout`` seconds."""
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        raise AssertionError(f"the client process printed nothing within {timeout}s")
    return proc.stdout.readline().strip()


def events_until(raw: rawzk.RawClient, done, timeout: float, what: str) -> list[rawzk.Event]:
    """Notifications arriving on ``raw`` until ``done(events)``; pings meanwhile keep its session."""
    deadline = time.monotonic() + timeout
    seen: list[rawzk.Event] = []
    while True:
        while raw.events:
            seen.append(raw.events.pop(0))
        if done(seen):
            return seen
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} not seen within {timeout}s on {raw.address}: {seen}")
        ev = raw.read_event(timeout=0.3)
        if ev is not None:
            seen.append(ev)
        else:
            raw.ping()


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_dead_clients_ephemeral_vanishes_once_on_every_member(backend, clients, tmp_path):
    with make_ensemble(backend, voters=3, observers=1) as ens:
        leader = ens.leader()
        follower = next(s for s in ens.sids if s not in (leader, 4))
        admin = member_client(ens, clients, leader)
        admin.create("/eph")
        path = "/eph/owner"
        script = tmp_path / "dead_client.py"
        script.write_text(DEAD_CLIENT)
        proc = subprocess.Popen([sys.executable, str(script), ens.member_connect_string(follower), "2.0", path],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                start_new_session=True)
        watchers: dict[int, rawzk.RawClient] = {}
        try:
            session = int(read_line(proc, 30) or "0", 16)
            assert session, "the client process did not create its node"
            for sid in ens.sids:
                raw = rawzk.connected(ens.member_connect_string(sid), timeout_ms=30000)
                watchers[sid] = raw
                assert raw.sync("/eph").err == rawzk.OK
                assert raw.add_watch("/eph", PERSISTENT_RECURSIVE).err == rawzk.OK
                reply = raw.exists(path)
                assert reply.err == rawzk.OK, f"member {sid} does not have {path}"
                assert reply.reader().stat().ephemeralOwner == session
            os.killpg(proc.pid, signal.SIGKILL)  # dead: no closeSession, the servers expire it
            proc.wait(10)
            deleted = {sid: events_until(raw, lambda evs: any(e.type == NODE_DELETED for e in evs), 30,
                                         f"NodeDeleted {path} (member {sid})")
                       for sid, raw in watchers.items()}
            # a barrier: a later write; everything about the ephemeral came before it on every member
            admin.create("/eph/barrier")
            for sid, raw in watchers.items():
                deleted[sid] += events_until(raw, lambda evs: any(e.path == "/eph/barrier" for e in evs), 30,
                                             f"NodeCreated /eph/barrier (member {sid})")
            for sid, evs in deleted.items():
                assert [(e.type, e.path) for e in evs] == [(NODE_DELETED, path), (NODE_CREATED, "/eph/barrier")], \
                    f"member {sid} ({ens.mode(sid)}) saw {evs}"
                assert watchers[sid].exists(path).err == rawzk.NONODE
            assert not ens.session_known(session)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
            for raw in watchers.values():
                raw.close()


def raw_failover(ens, sids, session: rawzk.ConnectResponse, last_zxid: int, timeout: float = 45) -> rawzk.RawClient:
    """Reconnect ``session`` to the first of ``sids`` that takes it (as a client's fail-over does)."""
    deadline = time.monotonic() + timeout
    while True:
        for sid in sids:
            try:
                raw = rawzk.RawClient(ens.member_connect_string(sid), io_timeout=5)
            except OSError:
                continue
            try:
                resp = raw.handshake(session.timeout, session.session_id, session.passwd, last_zxid)
            except (OSError, ConnectionError):
                resp = None
            if resp is not None and resp.timeout > 0:
                assert resp.session_id == session.session_id
                return raw
            raw.close()
        if time.monotonic() >= deadline:
            raise AssertionError(f"no member of {sids} took session 0x{session.session_id:x} within {timeout}s")
        time.sleep(0.2)


def set_surely(client, path: str, data: bytes, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.set_async(path, data).get(timeout=5)
            return
        except WRITE_ERRORS + (client.handler.timeout_exception,):
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.1)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("victim", ["follower", "leader"])
def test_watches_keep_firing_after_the_clients_member_is_killed(backend, victim, clients):
    """Two clients watch through member ``victim``, which is then killed.

    * A raw client does what the Java client does on a reconnect: it presents its session and last zxid
      to another member and re-registers its watches with SetWatches.  The watch whose node changed
      while it was away fires at once; the others fire on the next change; each exactly once.
    * kazoo (2.11 drops its one-shot watches on a connection loss, with an EventType.NONE event) keeps
      its DataWatch / ChildrenWatch recipes firing by re-reading after the reconnect.
    """
    with make_ensemble(backend, voters=3, config={"maxSessionTimeout": 60000}) as ens:
        leader = ens.leader()
        target = leader if victim == "leader" else next(s for s in ens.sids if s != leader)
        others = [s for s in ens.sids if s != target]
        writer = member_client(ens, clients, others[0], timeout=30)
        writer.create("/w")
        writer.create("/w/a", b"0")
        # the raw client: a session on the victim, three watches
        raw = rawzk.RawClient(ens.member_connect_string(target))
        session = raw.handshake(timeout_ms=60000)
        assert session is not None and session.timeout > 0
        try:
            assert raw.sync("/w").err == rawzk.OK
            assert raw.get_data("/w/a", watch=True).err == rawzk.OK
            assert raw.get_children("/w", watch=True).err == rawzk.OK
            assert raw.exists("/w/b", watch=True).err == rawzk.NONODE
            last_zxid = raw.last_zxid
            assert last_zxid > 0
            # kazoo, through the same member first
            hosts = ",".join(ens.member_connect_string(s) for s in [target] + others)
            kz = clients(hosts, timeout=30, randomize_hosts=False)
            assert wait_until(lambda: connected_member(ens, kz), message="kazoo connected") == target
            kz_session = kz.client_id[0]
            datas, kids = [], []
            kz.DataWatch("/w/a", lambda data, stat, event=None: datas.append(data))
            kz.ChildrenWatch("/w", lambda children: kids.append(sorted(children)))
            wait_until(lambda: datas == [b"0"] and kids == [["a"]], message="the recipes' first calls")

            ens.kill(target)
            raw.close()
            ens.wait_serving(45)
            set_surely(writer, "/w/a", b"1")  # while both watchers are away from any member
            raw = raw_failover(ens, others, session, last_zxid)
            assert raw.set_watches(last_zxid, data=["/w/a"], exist=["/w/b"], child=["/w"]).err == rawzk.OK
            events = events_until(raw, lambda evs: len(evs) >= 1, 30, "the watch missed while away")
            assert [(e.type, e.path) for e in events] == [(NODE_DATA_CHANGED, "/w/a")]
            writer.create("/w/b", b"new")
            events += events_until(raw, lambda evs: len(evs) >= 2, 30, "the watches of the next change")
            # a barrier: a later change everything before it was delivered ahead of
            assert raw.exists("/w/barrier", watch=True).err == rawzk.NONODE
            writer.create("/w/barrier")
            events += events_until(raw, lambda evs: any(e.path == "/w/barrier" for e in evs), 30, "the barrier")
            assert sorted((e.type, e.path) for e in events) == sorted([
                (NODE_DATA_CHANGED, "/w/a"), (NODE_CREATED, "/w/b"), (NODE_CHILDREN_CHANGED, "/w"),
                (NODE_CREATED, "/w/barrier")]), events
            assert events[-1].path == "/w/barrier"
            # kazoo's recipes caught up on the new member, in the same session
            moved = wait_until(lambda: (m := connected_member(ens, kz)) not in (None, target) and m, 30,
                               message="kazoo fails over")
            assert moved in others and kz.client_id[0] == kz_session
            wait_until(lambda: datas[-1:] == [b"1"] and kids[-1:] == [["a", "b", "barrier"]], 30,
                       message=f"the recipes see the changes (data {datas}, children {kids})")
            writer.set("/w/a", b"2")
            wait_until(lambda: datas[-1:] == [b"2"], 30, message=f"DataWatch sees a later change ({datas})")
        finally:
            raw.close()


# -- 6. malformed peer traffic ------------------------------------------------------------------

HELLO = struct.Struct(">6sBBq")   # coordcore/runtime/peers.py
ELECTION, QUORUM = 0, 1
FRAME_LEN = struct.Struct(">I")


def hello(channel: int, sid: int) -> bytes:
    return HELLO.pack(b"CCPEER", 1, channel, sid)


def frame(body: bytes) -> bytes:
    return FRAME_LEN.pack(len(body)) + body


def closed_by_peer(sock: socket.socket, timeout: float = 10) -> bool:
    """True once the other side closes (EOF or reset) within ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            if sock.recv(4096) == b"":
                return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False
    return False


def send_to(host: str, port: int, payload: bytes, close: bool = False) -> socket.socket:
    s = socket.create_connection((host, port), timeout=5)
    s.sendall(payload)
    if close:
        s.close()
    return s


def coordcore_bad_traffic(ens, target: int, other: int) -> list[tuple[str, str, bytes, str, str]]:
    """(name, port kind, payload, event, reason fragment) sent to member ``target``; ``other`` is the sid
    of another member (a handshake the member accepts, followed by a bad frame)."""
    from coordcore.zab import messages as m
    from coordcore.zab.election import Notification, PeerState

    notification = m.encode(Notification(leader=other, zxid=0, election_epoch=1, state=PeerState.LOOKING,
                                         sender=other, peer_epoch=0))
    http = b"GET / HTTP/1.1\r\nHost: coordcore\r\n\r\n"
    cases = []
    for kind, channel in (("quorum", QUORUM), ("election", ELECTION)):
        wrong = ELECTION if channel == QUORUM else QUORUM
        cases += [
            (f"garbage on the {kind} port", kind, http, "peer.refused", "not a coordcore peer handshake"),
            (f"random bytes on the {kind} port", kind, bytes(range(256)) * 2, "peer.refused",
             "not a coordcore peer handshake"),
            (f"unknown sid 99 on the {kind} port", kind, hello(channel, 99) + frame(notification), "peer.refused",
             "sid 99 is not another server"),
            (f"its own sid on the {kind} port", kind, hello(channel, target), "peer.refused",
             f"sid {target} is not another server"),
            (f"the wrong channel on the {kind} port", kind, hello(wrong, other), "peer.refused",
             f"traffic on the {kind} port"),
            (f"a protocol version from the future on the {kind} port", kind,
             HELLO.pack(b"CCPEER", 99, channel, other), "peer.refused", "not a coordcore peer handshake"),
            (f"a truncated frame on the {kind} port", kind, hello(channel, other) + frame(notification[:7]),
             "peer.bad_message", "truncated"),
            (f"an unknown message tag on the {kind} port", kind, hello(channel, other) + frame(b"\xee" + b"\0" * 8),
             "peer.bad_message", "unknown peer message tag 238"),
            (f"an over-long frame on the {kind} port", kind, hello(channel, other) + FRAME_LEN.pack(0xFFFFFFF0),
             "peer.bad_message", "frame of 4294967280 bytes"),
            (f"trailing bytes in a frame on the {kind} port", kind, hello(channel, other)
             + frame(m.encode(m.Commit(1)) + b"\0"), "peer.bad_message", "trailing bytes"),
        ]
    cases += [
        ("a ZAB packet on the election port", "election", hello(ELECTION, other) + frame(m.encode(m.Ack(1))),
         "peer.bad_message", "Ack on the election port"),
        ("a notification on the quorum port", "quorum", hello(QUORUM, other) + frame(notification),
         "peer.bad_message", "a notification on the quorum port"),
    ]
    return cases


def test_coordcore_refuses_malformed_peer_traffic_and_keeps_serving(clients):
    with make_ensemble("coordcore", voters=3) as ens:
        client = clients(ens.connect_string, timeout=10)
        client.create("/peer")
        leader = ens.leader()
        follower = next(s for s in ens.sids if s != leader)
        n = 0
        for target in (follower, leader):
            m = ens.member(target)
            other = next(s for s in ens.sids if s not in (target, leader)) if target != leader else follower
            ports = {"quorum": m.quorum_port, "election": m.election_port}
            silent = send_to(ens.host, m.quorum_port, b"")  # never says hello: refused after a timeout
            for name, kind, payload, event, reason in coordcore_bad_traffic(ens, target, other):
                pattern = rf"\] {re.escape(event)}\s.*{re.escape(reason)}"
                before = log_count(ens, target, pattern)
                s = send_to(ens.host, ports[kind], payload)
                try:
                    assert closed_by_peer(s), f"member {target} kept the connection open: {name}"
                finally:
                    s.close()
                wait_until(lambda: log_count(ens, target, pattern) > before, 10,
                           message=f"member {target} logs {event} ({reason!r}) for {name}")
                assert ens.running(target), f"member {target} died of {name}"
                ens.wait_serving(30)  # (a fake link from a real sid replaced the real one: it reconnects)
                n += 1
                create_surely(client, f"/peer/after-{n:02d}", name.encode())
            # a frame cut off by the connection's close: the member just drops that connection
            cut = send_to(ens.host, m.quorum_port, hello(QUORUM, other) + FRAME_LEN.pack(100) + b"x" * 10,
                          close=True)
            cut.close()
            assert closed_by_peer(silent, timeout=20), "a connection that never says hello is closed"
            silent.close()
            wait_until(lambda: log_count(ens, target, r"\] peer\.refused\s.*no handshake in time") >= 1, 10,
                       message=f"member {target} refuses the silent connection")
            assert ens.running(target)
            ens.wait_serving(30)
            n += 1
            create_surely(client, f"/peer/after-{n:02d}", b"cut")
        # every member took every write and is still up
        for sid in ens.sids:
            assert ens.running(sid)
            assert len(children_on(member_client(ens, clients, sid), "/peer")) == n
        # the peer links carry on: a kill of the leader still fails over
        old = ens.leader()
        ens.kill(old)
        ens.wait_serving(45)
        create_surely(client, "/peer/after-failover")
        ens.start_member(old)
        assert len(children_on(member_client(ens, clients, old), "/peer")) == n + 1


ZK_ELECTION_GARBAGE = [
    ("http", b"GET / HTTP/1.1\r\nHost: zookeeper\r\n\r\n"),
    ("random bytes", bytes(range(256)) * 4),
    # QuorumCnxManager's InitialMessage (protocol -65536, sid, length, "host:port") with a silly length
    ("an unreasonable initial message", struct.pack(">qqi", -65536, 7, 1 << 30)),
    # a well-formed initial message from an unknown sid, then a garbage frame
    ("an unknown sid, then a garbage frame", struct.pack(">qqi", -65536, 99, 14) + b"127.0.0.1:9999"
     + struct.pack(">i", 1 << 30) + b"\xff" * 16),
    # the old protocol (just a positive sid) for an unknown sid, then a negative length
    ("an old-protocol unknown sid", struct.pack(">qi", 99, -5) + b"\0" * 8),
]


def test_zookeeper_keeps_serving_through_garbage_on_its_peer_ports(clients):
    with make_ensemble("zookeeper", voters=3) as ens:
        client = clients(ens.connect_string, timeout=10)
        client.create("/peer")
        leader = ens.leader()
        n = 0
        for target in ens.sids:
            m = ens.member(target)
            targets = [("election", m.election_port)]
            if target == leader:  # only the leader listens on its quorum port
                targets.append(("quorum", m.quorum_port))
            for kind, port in targets:
                for name, payload in ZK_ELECTION_GARBAGE:
                    s = send_to(ens.host, port, payload)
                    closed_by_peer(s, timeout=3)  # ZooKeeper closes most of these; it need not
                    s.close()
                    n += 1
                    client.create(f"/peer/after-{n:02d}", f"{name} on {target}'s {kind} port".encode())
                    assert ens.running(target)
        modes = ens.wait_serving(30)
        assert ens.leader() == leader and sorted(modes.values()) == ["follower", "follower", "leader"]
        for sid in ens.sids:
            assert len(children_on(member_client(ens, clients, sid), "/peer")) == n


# -- 7. zkCli.sh with a multi-host connect string -------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_zkcli_with_a_multi_host_connect_string(backend, clients):
    with make_ensemble(backend, voters=3) as ens:
        hosts = ens.connect_string
        assert hosts.count(",") == 2
        out = run_zkcli(hosts, [
            "create /cli hello",           # 0
            "create /cli/a one",           # 1
            "create -s /cli/seq- x",       # 2
            "get /cli",                    # 3
            "ls /cli",                     # 4
            "set /cli/a two",              # 5
            "get /cli/a",                  # 6
            "create /cli hello",           # 7
        ])
        assert out[0] == ["Created /cli"]
        assert out[1] == ["Created /cli/a"]
        assert out[2] == ["Created /cli/seq-0000000001"]
        assert out[3] == ["hello"]
        assert out[4] == ["[a, seq-0000000001]"]
        assert out[5] == []
        assert out[6] == ["two"]
        assert out[7] == ["Node already exists: /cli"]
        # every member has what zkCli wrote through whichever member it picked
        for sid in ens.sids:
            assert children_on(member_client(ens, clients, sid), "/cli") == {"a", "seq-0000000001"}
        # one member down: zkCli still finds a live one in the same connect string
        leader = ens.leader()
        down = next(s for s in ens.sids if s != leader)
        ens.kill(down)
        out = run_zkcli(hosts, ["get /cli/a", "ls /cli", "create /cli/b three", "get /cli/b"])
        assert out == [["two"], ["[a, seq-0000000001]"], ["Created /cli/b"], ["three"]]
        ens.start_member(down)
        assert children_on(member_client(ens, clients, down), "/cli") == {"a", "b", "seq-0000000001"}
