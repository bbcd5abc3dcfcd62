"""Client and session scenarios C1-C7 and B10 (reference section 15) as scripted schedules over real
Replicas (node, tree, sessions) over real QuorumPeers over MemoryStorage.

Every test names its scenario, the window it puts the ensemble in and the rule a user relies on.  The
schedule is the test's: Script(mode="replica") has no random faults, a 1 ms link delay and fsync at
once, and the clients (script_clients.ScriptClient) act only when told.  Every event still goes
through the simulator's checker -- equal trees and session tables at equal zxid (TREE), replies only
once a quorum holds the txn (ACKQ), client zxids never going back (CZXID), replies in order (ORDER),
no acknowledged write lost -- so a scenario fails on the first broken invariant, not only on its own
asserts.
"""
from __future__ import annotations

import pytest

from coordcore.errors import Err
from coordcore.node.replica import Connect
from coordcore.testing.sim.replica_clients import OPEN
from coordcore.testing.sim.script import Script, before_send
from coordcore.testing.sim.script_clients import ScriptClient
from coordcore.tree import txn as T
from coordcore.wire import proto as P
from coordcore.zab import messages as m

TICK = 200                  # Script's tick_ms
MIN = 2 * TICK              # the shortest the replicas grant (ReplicaHost's MIN_SESSION_TIMEOUT_TICKS)
SHORT = 10 * TICK           # a session timeout the scenarios let run out
LONG = 20 * TICK            # the longest the replicas grant (ReplicaHost's MAX_SESSION_TIMEOUT_TICKS)
EPHEMERAL = 1


# ---------------------------------------------------------------- helpers

def ensemble(voters: int = 3) -> Script:
    s = Script(voters=voters, mode="replica")
    s.elect()
    return s


def session(s: Script, name: str, sid: int, timeout_ms: int = LONG) -> ScriptClient:
    """A client with a new session on server `sid`."""
    c = ScriptClient(s, name, timeout_ms)
    assert c.connect(sid) is Connect.PENDING
    s.run_until(lambda: c.ready, 1_000, f"{name}'s session on {sid}")
    return c


def resume(s: Script, c: ScriptClient, sid: int) -> None:
    """`c` moves its session to server `sid` (and the session must still be valid there)."""
    decision = c.connect(sid)
    assert decision in (Connect.PENDING, Connect.ESTABLISHED), f"{c.name} on {sid}: {decision.name}"
    s.run_until(lambda: c.ready or c.conn is None, 1_000, f"{c.name} resumes on {sid}")
    assert c.ready, f"{c.name}'s session was refused on {sid}: {c.seen[-1]}"


def answer(s: Script, c: ScriptClient, xid: int, max_ms: int = 1_000):
    s.run_until(lambda: xid in c.replies, max_ms, f"{c.name}'s reply to xid {xid}")
    return c.replies[xid]


def ok(s: Script, c: ScriptClient, xid: int):
    r = answer(s, c, xid)
    assert r.err == 0, f"{c.name} xid {xid}: error {r.err}"
    return r


def live(s: Script, ms: int, clients) -> None:
    """Let `ms` pass, every ready client pinging twice a tick (a real client pings at a third of its timeout)."""
    end = s.now + ms
    while s.now < end:
        for c in clients:
            c.ping()
        s.settle(min(TICK // 2, end - s.now))


def node(s: Script, sid: int, path: str):
    return s.host(sid).replica.node.committed.nodes.get(path)


def on_all(s: Script, path: str, sids=None) -> dict[int, bool]:
    return {sid: node(s, sid, path) is not None for sid in (sids or s.up())}


def committed_txns(s: Script) -> list[T.Txn]:
    return [T.decode(t) for _, t in s.committed()]


def same_history_and_tree_everywhere(s: Script) -> None:
    """converge() checks equal applied histories and tree digests; say so explicitly too."""
    s.converge()
    histories = {sid: s.applied(sid) for sid in s.sim.sids}
    assert len({tuple(h) for h in histories.values()}) == 1
    assert len({s.host(sid).digest() for sid in s.sim.sids}) == 1


def txn_of(s: Script, c: ScriptClient, xid: int) -> tuple[int, T.Txn]:
    """The committed txn that answered client c's request xid."""
    found = [(z, t) for z, t in ((z, T.decode(b)) for z, b in s.committed())
             if t.session_id == c.session_id and t.cxid == xid]
    assert len(found) == 1, f"{c.name} xid {xid}: {found}"
    return found[0]


def closes_of(s: Script, session_id: int) -> list[T.Txn]:
    return [t for t in committed_txns(s) if t.type == T.T_CLOSE_SESSION and t.session_id == session_id]


def is_proposal_of(txn_type: int):
    def match(msg) -> bool:
        return isinstance(msg, m.Proposal) and any(T.decode(t).type == txn_type for _, t in msg.txns)
    return match


# ---------------------------------------------------------------- C1

def test_c1_session_expiry_straddling_a_leader_change_gets_a_full_timeout_and_one_removal():
    """C1, window: a silent session's deadline falls while its leader is dead and a new one is elected.
    Rule: only the leader expires sessions and a new leader gives every session a full fresh timeout
    (so the session outlives its old deadline), then expires it once: one closeSession, the ephemeral
    removed once, and a watch on it fires exactly once on the clients of every member, the restarted
    old leader's included."""
    s = ensemble(3)
    old_lead = s.leader()
    f1, f2 = s.followers()
    owner = session(s, "owner", f1, SHORT)
    ok(s, owner, owner.create("/e", b"mine", EPHEMERAL))
    owner.close_conn()                                    # the owner's process is gone: no more pings
    deadline = s.host(old_lead).replica.node.sessions.get(owner.session_id).expires_ms
    watchers = [session(s, f"w{sid}", sid) for sid in (f1, f2)]
    for w in watchers:
        assert ok(s, w, w.exists("/e", watch=True))
    live(s, deadline - TICK // 2 - s.now, watchers)
    assert on_all(s, "/e") == {1: True, 2: True, 3: True}

    s.crash(old_lead)                                     # half a tick before the session's deadline
    new_lead = s.elect([f1, f2])
    elected = s.now
    assert elected > deadline, "the window: the old deadline fell while no leader served"
    for w, sid in zip(watchers, (f1, f2)):
        assert w.conn is None, "a member that stops serving drops its clients"
        resume(s, w, sid)
        ok(s, w, w.exists("/e", watch=True))              # a client re-registers its watch on reconnect
    s.restart(old_lead)
    s.elect()
    w3 = session(s, "w-old-leader", old_lead)
    ok(s, w3, w3.exists("/e", watch=True))
    watchers.append(w3)

    live(s, max(deadline + TICK, elected + SHORT - TICK) - s.now, watchers)
    assert s.now > deadline + TICK, "the old deadline passed"
    assert on_all(s, "/e") == {1: True, 2: True, 3: True}, "the new leader gave the session a full timeout"
    assert closes_of(s, owner.session_id) == []

    s.run_until(lambda: not any(on_all(s, "/e").values()), SHORT, "the ephemeral's removal")
    assert s.now <= elected + SHORT + 2 * TICK, "the new leader expired the session on time"
    live(s, 3 * TICK, watchers)
    assert len(closes_of(s, owner.session_id)) == 1, "one closeSession"
    deletes = [t for t in committed_txns(s) if t.type == T.T_DELETE and t.body[0] == "/e"]
    assert deletes == [], "the ephemeral goes with the closeSession, not as a delete of its own"
    for w in watchers:
        assert w.events == [(P.EV_DELETED, "/e", w.conn.sid)], f"{w.name}: {w.events}"
    for sid in s.sim.sids:
        assert s.host(sid).replica.node.sessions.get(owner.session_id) is None
    assert owner.connect(new_lead) is Connect.INVALID, "the expired session cannot be resumed"
    same_history_and_tree_everywhere(s)


# ---------------------------------------------------------------- C2

def _c2_owner_with_ephemeral(s: Script, f1: int) -> ScriptClient:
    owner = session(s, "owner", f1)
    ok(s, owner, owner.create("/e", b"mine", EPHEMERAL))
    return owner


def _c2_after_the_crash(s: Script, lead: int, owner: ScriptClient, survives: bool) -> int:
    """Elect a new leader, restart the old one; check agreement.  Returns the new leader."""
    f1, f2 = [sid for sid in s.sim.sids if sid != lead]
    new_lead = s.elect([f1, f2])
    s.restart(lead)
    s.elect()
    s.settle(5 * TICK)  # less than the session's timeout: no expiry decides the question meanwhile
    views = on_all(s, "/e")
    assert set(views.values()) == {not survives}, f"members disagree on the ephemeral: {views}"
    alive = {sid: s.host(sid).replica.node.sessions.get(owner.session_id) is not None for sid in s.sim.sids}
    assert set(alive.values()) == {not survives}, f"session tables disagree: {alive}"
    assert len(closes_of(s, owner.session_id)) == (1 if survives else 0)
    same_history_and_tree_everywhere(s)
    return new_lead


def test_c2_leader_crash_before_its_close_session_proposal_leaves_keeps_the_ephemeral_everywhere():
    """C2 (ZOOKEEPER-2355 / -5010 style), window: the leader decided a closeSession (forwarded by a
    follower) and dies before its PROPOSAL leaves.  Rule: no member has the txn, so the ephemeral and
    the session stay on every member, the restarted old leader included, and the client (whose close
    was never answered) can resume its session and still sees its ephemeral."""
    s = ensemble(3)
    lead = s.leader()
    f1, _ = s.followers()
    owner = _c2_owner_with_ephemeral(s, f1)
    session_id = owner.session_id
    trap = s.crash_at(lead, before_send(is_proposal_of(T.T_CLOSE_SESSION)), label="closeSession decided")
    xid = owner.close_session()
    s.run_until_fired(trap, 1_000)
    assert xid not in owner.replies
    _c2_after_the_crash(s, lead, owner, survives=False)
    resume(s, owner, f1)
    assert owner.session_id == session_id
    assert ok(s, owner, owner.get_data("/e")).data() == b"mine"


def test_c2_leader_crash_after_one_follower_logged_its_close_session_removes_the_ephemeral_everywhere():
    """C2 (ZOOKEEPER-2355 / -5010 style), window: the leader's closeSession PROPOSAL reached one
    follower, which logged and ACKed it; the leader's own fsync and the other follower's copy never
    happened, so it is not committed when the leader dies.  Rule: the new leader (the follower with the
    longer history) commits it, so the ephemeral and the session are gone on every member, the
    restarted old leader (which never made it durable) included -- one closeSession, never half."""
    s = ensemble(3)
    lead = s.leader()
    f1, f2 = s.followers()
    owner = _c2_owner_with_ephemeral(s, f1)
    s.hold_disk(lead)
    s.hold(lambda msg: True, src=lead, dst=f2)
    owner.close_session()
    s.run_until(lambda: any(t.type == T.T_CLOSE_SESSION for _, t in
                            ((z, T.decode(b)) for z, b in s.disk(f1).history())),
                1_000, "f1 logged the closeSession")
    s.settle(5)                                            # its ACK reaches the leader: still no quorum
    assert node(s, lead, "/e") is not None, "not committed when the leader dies"
    s.crash(lead)
    s.drop_held()
    s.fsync(lead)
    assert _c2_after_the_crash(s, lead, owner, survives=True) == f1, "the longer history leads"
    assert owner.connect(f1) is Connect.INVALID, "the closed session cannot be resumed"


# ---------------------------------------------------------------- C3

def test_c3_a_client_moving_to_a_lagging_follower_is_refused_until_it_caught_up():
    """C3, window: a client saw a write on an up-to-date server, then moves to a follower the write has
    not reached yet (everything from the leader to it is held back).  Rule: the handshake is refused
    while the follower's tree is behind the client's last seen zxid (a client must never see its view
    go back), the session stays valid, and once the follower caught up the same move is accepted and
    reads there show the write."""
    s = ensemble(3)
    lead = s.leader()
    f1, f2 = s.followers()
    c = session(s, "mover", f1)
    s.hold(lambda msg: True, src=lead, dst=f2)
    written = ok(s, c, c.create("/c3", b"new"))
    assert c.last_zxid == written.zxid > s.host(f2).replica.last_applied
    c.close_conn()
    assert c.connect(f2) is Connect.REFUSED
    s.settle(2 * TICK)                                      # still behind (well inside syncLimit)
    assert c.connect(f2) is Connect.REFUSED
    assert node(s, f2, "/c3") is None
    s.release()
    s.run_until(lambda: s.host(f2).replica.last_applied >= written.zxid, 1_000, "f2 caught up")
    resume(s, c, f2)
    assert ok(s, c, c.get_data("/c3")).data() == b"new"
    same_history_and_tree_everywhere(s)


# ---------------------------------------------------------------- C4

def _second_handle(s: Script, c: ScriptClient, name: str) -> ScriptClient:
    """Another connection for c's session (the same client after a reconnect, its old socket still open)."""
    other = ScriptClient(s, name, c.timeout_ms)
    other.session_id, other.passwd, other.last_zxid = c.session_id, c.passwd, c.last_zxid
    return other


@pytest.mark.parametrize("where", ["leader", "follower"])
def test_c4_a_session_resumed_on_the_same_member_drops_its_old_connection(where):
    """C4 (the part that is implemented), window: a session's connection is still open on a member
    when the client reconnects to that same member.  Rule: the member drops the old connection at once
    (ZooKeeper's processConnectRequest closes the session's other connection on that server), so it
    can send nothing more under the session; the new one serves reads and writes."""
    s = ensemble(3)
    sid = s.leader() if where == "leader" else s.followers()[0]
    old = session(s, "old", sid)
    ok(s, old, old.create("/c4", b"1"))
    new = _second_handle(s, old, "new")
    resume(s, new, sid)
    assert old.conn is None and old.seen[-1] == ("lost", "dropped")
    assert ok(s, new, new.set_data("/c4", b"2"))
    assert ok(s, new, new.get_data("/c4")).data() == b"2"
    same_history_and_tree_everywhere(s)


def test_c4_a_session_resumed_on_another_member_is_one_session_and_its_close_reaches_the_old_member():
    """C4 (the part that is implemented), window: a client moves its session from follower f1 to
    follower f2 while its old connection on f1 is still open (f1 is never told).  Rule: it is still one
    session -- the move keeps its id and ephemerals, what it creates on f2 is owned by it -- and when it
    closes, the closeSession applied on f1 closes the old connection there too, and every ephemeral of
    the session goes on every member."""
    s = ensemble(3)
    f1, f2 = s.followers()
    old = session(s, "old", f1)
    ok(s, old, old.create("/c4-a", b"", EPHEMERAL))
    new = _second_handle(s, old, "new")
    resume(s, new, f2)
    assert new.session_id == old.session_id
    assert old.ready, "f1 is not told about the move: only a request from it is refused (SESSIONMOVED, below)"
    ok(s, new, new.create("/c4-b", b"", EPHEMERAL))
    s.settle(10)                                          # the COMMIT reaches every member
    for sid in s.sim.sids:
        assert s.host(sid).replica.node.committed.ephemerals[old.session_id] == {"/c4-a", "/c4-b"}
    ok(s, new, new.close_session())
    s.settle(10)
    assert old.conn is None and old.seen[-1] == ("lost", "closed")
    assert on_all(s, "/c4-a") == on_all(s, "/c4-b") == {1: False, 2: False, 3: False}
    same_history_and_tree_everywhere(s)


def test_c4_resuming_on_the_leader_with_another_timeout_keeps_every_members_session_table_equal():
    """C4 (found by this scenario), window: a session created through a follower resumes on the leader
    asking for a longer timeout.  Rule: the session table is replicated state (snapshots carry it, a
    new leader expires by it), so a resume must not change it on one member only: every member keeps
    the timeout its createSession txn carried (the checker's TREE rule compares the members' tables)."""
    s = ensemble(3)
    lead = s.leader()
    f1, _ = s.followers()
    c = session(s, "mover", f1, SHORT)
    c.timeout_ms = LONG
    resume(s, c, lead)
    ok(s, c, c.create("/c4-t"))
    s.settle(10)                         # every member applied it: their digests were compared (TREE)
    tables = {sid: s.host(sid).replica.node.sessions.get(c.session_id).timeout_ms for sid in s.sim.sids}
    assert tables == {1: SHORT, 2: SHORT, 3: SHORT}
    same_history_and_tree_everywhere(s)


@pytest.mark.parametrize("where", ["leader", "follower"])
def test_c4_a_resumed_session_is_told_the_timeout_it_is_expired_by(where):
    """C4 (found by this scenario), window: a session created with the shortest timeout resumes on
    another member asking for the longest.  Rule: the handshake answer is the timeout the session is
    expired by -- the one its createSession txn replicated, since a resume does not renegotiate it in
    an ensemble -- so a client that pings at a third of what it was told keeps its session."""
    s = ensemble(3)
    f1, f2 = s.followers()
    c = session(s, "mover", f1, MIN)
    c.timeout_ms = LONG
    resume(s, c, s.leader() if where == "leader" else f2)
    told = c.negotiated_ms
    end = s.now + 3 * told
    while s.now < end:
        c.ping()
        s.settle(told // 3)
    assert ok(s, c, c.exists("/")), "the session outlived what it was told"
    assert told == MIN
    same_history_and_tree_everywhere(s)


def test_c4_a_delayed_write_from_the_old_connection_gets_session_moved():
    """C4 as the reference states it, window: the session moved from f1 to f2; a write still arrives on
    its old connection to f1.  Rule (ZooKeeper): the leader tracks the session's owner, answers that
    write SESSIONMOVED and the old connection is closed."""
    s = ensemble(3)
    f1, f2 = s.followers()
    old = session(s, "old", f1)
    new = _second_handle(s, old, "new")
    resume(s, new, f2)
    r = answer(s, old, old.create("/late"))
    assert r.err == Err.SESSIONMOVED
    s.settle(10)
    assert old.conn is None and old.seen[-1] == ("lost", "closed")  # told, then closed
    assert on_all(s, "/late") == {1: False, 2: False, 3: False}      # the late write changed nothing
    ok(s, new, new.create("/still-mine", b"", EPHEMERAL))            # the session lives on where it moved
    same_history_and_tree_everywhere(s)


# ---------------------------------------------------------------- C5

def _poll_until_seen(s: Script, clients, path: str, value: bytes, max_ms: int = 1_000) -> dict:
    """Every client reads `path` once a millisecond until a reply shows `value`; returns, per client,
    the position in its `seen` of the first such reply."""
    first: dict[ScriptClient, int] = {}
    end = s.now + max_ms
    while len(first) < len(clients):
        assert s.now < end, f"not every client saw {value!r} at {path}: {s.describe()}"
        for c in clients:
            if c in first or c.outstanding:
                continue
            xid = c.get_data(path)
            r = c.replies.get(xid)
            if r is not None and r.err == 0 and r.data() == value:
                first[c] = len(c.seen) - 1
        s.settle(1)
    return first


def _events_since(c: ScriptClient, mark: int, path: str) -> list[int]:
    return [i for i in range(mark, len(c.seen)) if c.seen[i][:1] == ("event",) and c.seen[i][2] == path]


@pytest.mark.parametrize("voters", [3, 5])
def test_c5_a_watch_event_reaches_the_client_before_any_read_reply_showing_the_change(voters):
    """C5, window: a change propagates (PROPOSAL, COMMIT) while the clients of every member, leader and
    followers, read the node once a millisecond; then the leader dies, the clients reconnect, set their
    watches again and a second change goes through the new leader.  Rule: on every member the watch
    event comes before the first read reply that shows the change (and before the reply to the write
    that made it, for the writer's own watch), exactly one event per change, before and after the
    failover."""
    s = ensemble(voters)
    lead = s.leader()
    homes = {f"w{sid}": sid for sid in s.sim.sids}
    watchers = [session(s, name, sid) for name, sid in homes.items()]
    writer = next(w for w in watchers if w.conn.sid == s.followers()[0])
    ok(s, writer, writer.create("/w", b"0"))
    s.settle(10)
    for value in (b"1", b"2"):
        marks = {}
        for w in watchers:
            assert ok(s, w, w.get_data("/w", watch=True)).data() != value
            marks[w] = len(w.seen)
        xid = writer.set_data("/w", value)
        first = _poll_until_seen(s, watchers, "/w", value)
        assert writer.replies[xid].err == 0
        for w in watchers:
            events = _events_since(w, marks[w], "/w")
            assert len(events) == 1, f"{w.name} (on {homes[w.name]}): {w.seen[marks[w]:]}"
            assert w.seen[events[0]] == ("event", P.EV_DATA_CHANGED, "/w")
            assert events[0] < first[w], f"{w.name} (on {homes[w.name]}) read {value!r} before its event"
        own = _events_since(writer, marks[writer], "/w")[0]
        assert own < writer.seen.index(("reply", xid, 0)), "the writer's event before its write reply"
        if value == b"1":                                 # the failover between the two changes
            s.crash(lead)
            s.elect([sid for sid in s.sim.sids if sid != lead])
            s.restart(lead)
            s.elect()
            for w in watchers:
                assert w.conn is None, "every member dropped its clients when it stopped serving"
                resume(s, w, homes[w.name])
    assert s.leader() != lead
    same_history_and_tree_everywhere(s)


# ---------------------------------------------------------------- C6

def test_c6_sync_then_read_on_a_lagging_follower_returns_what_was_committed_before_the_sync():
    """C6, window: a write is committed (by the leader and one follower) while everything from the
    leader to follower f2 is held back; a client of f2 sends sync and, without waiting, a read.
    Rule: the read behind a sync is answered only once f2 applied everything the leader had committed
    when the sync reached it, so it returns the write; the sync's own reply comes first.  (A plain read
    on f2 meanwhile may return the old value: sync is what makes the difference.)"""
    s = ensemble(3)
    lead = s.leader()
    f1, f2 = s.followers()
    writer = session(s, "writer", f1)
    reader = session(s, "reader", f2)
    ok(s, writer, writer.create("/s", b"old"))
    s.settle(10)
    s.hold(lambda msg: True, src=lead, dst=f2)
    committed = ok(s, writer, writer.set_data("/s", b"new"))
    assert ok(s, reader, reader.get_data("/s")).data() == b"old", "f2 lags (else the scenario proves nothing)"
    sync = reader.sync("/s")
    read = reader.get_data("/s")
    s.settle(3 * TICK)
    assert sync not in reader.replies and read not in reader.replies, "no answer while f2 is behind"
    s.release()
    r = answer(s, reader, read)
    assert r.data() == b"new"
    assert reader.replies[sync].err == 0 and reader.replies[sync].zxid >= committed.zxid
    assert reader.seen.index(("reply", sync, 0)) < reader.seen.index(("reply", read, 0))
    same_history_and_tree_everywhere(s)


def test_c6_sync_on_a_follower_is_answered_after_every_write_committed_before_it():
    """C6 on 5 voters, window: several writes from another member's client are committed, the last one
    just before a follower's client syncs (that follower has not seen the COMMITs yet).  Rule: the reply
    to the sync and a read behind it show every one of them."""
    s = ensemble(5)
    lead = s.leader()
    f1, *_, f4 = s.followers()
    writer = session(s, "writer", f1)
    reader = session(s, "reader", f4)
    s.hold(lambda msg: isinstance(msg, m.Commit), src=lead, dst=f4)
    last = None
    for i in range(5):
        last = ok(s, writer, writer.create(f"/n{i}", b"%d" % i))
    assert node(s, f4, "/n4") is None
    sync = reader.sync("/")
    read = reader.get_data("/n4")
    s.release()
    assert answer(s, reader, read).data() == b"4"
    assert reader.replies[sync].zxid >= last.zxid
    same_history_and_tree_everywhere(s)


# ---------------------------------------------------------------- C7

def test_c7_a_read_after_a_write_on_a_follower_waits_for_that_write_and_no_later_one():
    """C7, window: a client of a follower pipelines write v2, read, write v3, read while the leader's
    answers to that follower are held back.  Rule (per-session FIFO): each read waits for the write
    before it and sees exactly that write -- v2, then v3 -- and replies come in the order sent; a read
    of another session on the same follower is not held up and still sees v1."""
    s = ensemble(3)
    lead = s.leader()
    f1, _ = s.followers()
    c = session(s, "fifo", f1)
    other = session(s, "other", f1)
    ok(s, c, c.create("/f", b"v1"))
    s.hold(lambda msg: True, src=lead, dst=f1)
    xids = [c.set_data("/f", b"v2"), c.get_data("/f"), c.set_data("/f", b"v3"), c.get_data("/f")]
    s.settle(5)
    assert not any(x in c.replies for x in xids), "the read waits behind the write in flight"
    assert ok(s, other, other.get_data("/f")).data() == b"v1", "another session's read is not held up"
    s.release()
    answer(s, c, xids[-1])
    assert [c.replies[x].err for x in xids] == [0, 0, 0, 0]
    assert c.replies[xids[1]].data() == b"v2" and c.replies[xids[3]].data() == b"v3"
    assert [e[1] for e in c.seen if e[0] == "reply"][-4:] == xids
    same_history_and_tree_everywhere(s)


# ---------------------------------------------------------------- B10

def test_b10_failed_writes_and_failed_multis_consume_zxids_and_replicate_identically():
    """B10, window: clients of the leader and of a follower send writes that fail -- create of an
    existing node (NODEEXISTS), setData and delete with a stale version (BADVERSION), delete of a
    missing node (NONODE), a multi whose second op fails -- between writes that succeed; then a
    follower crashes, misses some, restarts and catches up.  Rule: every one of them is a txn of its
    own (ZooKeeper logs an error txn, so each consumes a zxid and answers in order with the zxid it
    got), a failed multi changes nothing (not even its ops that would have succeeded), and every
    member ends with the same history and the same tree."""
    s = ensemble(3)
    lead = s.leader()
    f1, f2 = s.followers()
    on_leader, on_follower = session(s, "l", lead), session(s, "f", f1)
    ok(s, on_leader, on_leader.create("/b", b"x"))
    failing = [
        (on_follower, on_follower.create("/b", b"again"), Err.NODEEXISTS),
        (on_leader, on_leader.set_data("/b", b"y", version=7), Err.BADVERSION),
        (on_follower, on_follower.delete("/b", version=3), Err.BADVERSION),
        (on_leader, on_leader.delete("/missing"), Err.NONODE),
    ]
    for c, xid, err in failing:
        assert answer(s, c, xid).err == err, f"{c.name} xid {xid}"
    multi = on_follower.request(P.MULTI, P.Multi([(P.CREATE, P.Create("/m", b"", OPEN, 0, -1)),
                                                  (P.CREATE, P.Create("/b", b"", OPEN, 0, -1))]))
    answer(s, on_follower, multi)
    txns = [txn_of(s, c, x) for c, x, _ in failing] + [txn_of(s, on_follower, multi)]
    zxids = sorted(z for z, _ in txns)   # (the leader's own requests get theirs before the forwarded ones)
    assert zxids == list(range(zxids[0], zxids[0] + 5)), "each failed write took a zxid of its own"
    assert [t.type for _, t in txns] == [T.T_ERROR] * 4 + [T.T_MULTI]
    assert [t.body[0] for _, t in txns[:4]] == [err for _, _, err in failing]
    assert on_all(s, "/m") == {1: False, 2: False, 3: False}, "a failed multi changes nothing"
    s.crash(f2)
    assert answer(s, on_leader, on_leader.create("/b", b"")).err == Err.NODEEXISTS   # while f2 is down
    s.restart(f2)
    s.elect()
    ok(s, on_follower, on_follower.set_data("/b", b"z", version=0))
    same_history_and_tree_everywhere(s)
    errors = [t for t in committed_txns(s) if t.type == T.T_ERROR]
    assert len(errors) == 5, [(t.cxid, t.body) for t in errors]
    assert node(s, f2, "/b").data == b"z"
