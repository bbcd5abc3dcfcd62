"""Helpers for the per-role tests: a QuorumPeer put straight into a role, and views of its Ready."""
from __future__ import annotations

from coordcore import zxid as zx
from coordcore.zab.election import Notification, PeerState, Vote
from coordcore.zab.peer import QuorumPeer
from coordcore.zab.quorum import QuorumConfig
from coordcore.zab.ready import Append, PeerDurable

Z = zx.make
TICK_MS, INIT_LIMIT, SYNC_LIMIT = 100, 10, 5


def txns(epoch, a, b):
    return [(Z(epoch, c), b"t%d.%d" % (epoch, c)) for c in range(a, b + 1)]


def make_peer(sid, voters=(1, 2, 3), observers=(), *, accepted=0, current=0, snapshot_zxid=0, log=(),
              snapshot=None, commit_log_count=500) -> QuorumPeer:
    durable = PeerDurable(accepted, current, snapshot_zxid, tuple(log))
    snap = snapshot or (snapshot_zxid, b"snapshot@%x" % snapshot_zxid)
    p = QuorumPeer(sid, QuorumConfig(frozenset(voters), frozenset(observers)), tick_ms=TICK_MS,
                   init_limit=INIT_LIMIT, sync_limit=SYNC_LIMIT, durable=durable, now_ms=0,
                   snapshot_provider=lambda: snap, commit_log_count=commit_log_count)
    p.ready()  # the first election round's notifications
    return p


def enter(p: QuorumPeer, state: PeerState, leader: int, now_ms: int = 0):
    """What an FLE decision does, without running the election."""
    p.fle.take_messages()
    p._start_role(state, Vote(leader, p.last_zxid, p.current_epoch), now_ms)
    p._after_step(now_ms)
    return p.ready()


def zab(r) -> list:
    """The ZAB messages of a Ready as (to, msg), election notifications left out."""
    return [(to, msg) for to, msg in r.messages if not isinstance(msg, Notification)]


def notifications(r) -> list:
    return [(to, msg) for to, msg in r.messages if isinstance(msg, Notification)]


def non_appends(r) -> list:
    return [w for w in r.writes if not isinstance(w, Append)]


def appended(r) -> list:
    return [w.zxid for w in r.writes if isinstance(w, Append)]
