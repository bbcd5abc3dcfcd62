"""The asyncio shell of one server: listener, group fsync, timers, snapshots, four-letter words.

It decides nothing about the protocol: the Replica (coordcore/node/replica.py) does.  The shell feeds
it inputs (client writes, handshakes, ticks) and carries out each Ready it returns:

  ready.writes  -> storage.append, then one fsync for everything appended (group commit: on the loop
                   thread while the disk is fast, on the storage thread when it is slow, so reads keep
                   being served) -> replica.persisted(last zxid) -> the next Ready
  ready.deliver -> watch notifications, replies, new sessions and closes, to the connections, in order.
Nothing is acknowledged before its txn is fsynced: the replica only delivers what persisted() covers.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import os
import signal
import sys
import threading
import time
import warnings

import structlog

from coordcore.config import ServerConfig
from coordcore import zxid as Z
from coordcore.node.node import zookeeper_watch_tables
from coordcore.node.replica import CLOSE, EVENT, INVALID, REPLY, SESSION, Connect, Replica
from coordcore.runtime import fourletter
from coordcore.runtime.clients import ClientConnection
from coordcore.storage.api import CorruptLogError
from coordcore.storage.disk import DiskStorage, StorageError
from coordcore.wire import proto as P
from coordcore.zab import messages as zab_messages
from coordcore.zab.election import PeerState
from coordcore.zab.ready import Append, InstallSnapshot, PeerDurable, SetAcceptedEpoch, SetCurrentEpoch, Truncate

log = structlog.get_logger("coordcore")

# fsync on the loop thread while it averages under this; on the storage thread above it
SYNC_INLINE_MAX_S = 0.002
# at most this many extra loop turns to let a batch grow before its fsync
BATCH_TURNS_MAX = 4
# nodes a snapshot encodes per loop turn (about 3 ms)
SNAPSHOT_STEP_NODES = 3000
# how often the loop checks whether a forked snapshot writer has finished
SNAPSHOT_CHILD_POLL_S = 0.02


_last_ms = [0]


def _now_ms() -> int:
    # Requests in the same millisecond get the same int object: every znode keeps its ctime/mtime,
    # and sharing saves 32 bytes a node when thousands are created per second.
    t = int(time.time() * 1000)
    last = _last_ms[0]
    if t == last:
        return last
    _last_ms[0] = t
    return t


def _dir_size(path: str) -> int:
    total = 0
    try:
        for entry in os.scandir(path):
            if entry.is_file():
                total += entry.stat().st_size
    except OSError:
        pass
    return total


class Server:
    def __init__(self, config: ServerConfig):
        self.config = config
        self.loop: asyncio.AbstractEventLoop | None = None
        self.storage: DiskStorage | None = None
        self.replica: Replica | None = None
        self.node = None  # the replica's Node: the applied tree, watches and sessions (for reads and 4lw)
        self.listener = None
        self.port = None
        self.conns: set[ClientConnection] = set()
        self.conns_by_ip: dict[str, int] = {}
        self.syncing = False
        self.sync_scheduled = False
        self.unsynced_last: int | None = None  # the last zxid appended to storage and not yet synced
        self.unsynced_count = 0
        self.batch_seen = 0
        self.batch_turns = 0
        self.sync_ewma_s = 0.0
        self.syncs = 0
        self.io = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="coordcore-io")
        self.txns_since_snapshot = 0
        self.snapshotting = False
        # Snapshot in a forked child (set by run() on Linux): see _snapshot_forked.
        self.fork_snapshots = False
        self.snapshot_child: int | None = None
        self.packets_received = 0
        self.packets_sent = 0
        self.lat_min = self.lat_max = self.lat_total = self.lat_count = 0
        self.started_ms = _now_ms()
        self.timers: list[asyncio.Handle] = []
        self.failed: BaseException | None = None
        self.trace_mask = fourletter.DEFAULT_TRACE_MASK
        # an ensemble member: its QuorumPeer and the links to the other members
        self.peer = None
        self.network = None
        self._peer_state = None
        self._peer_timer: asyncio.TimerHandle | None = None
        self._peer_timer_at: float | None = None
        self._kick_scheduled = False
        self._looking_since: float | None = None
        self.sync_counts = {"diff": 0, "trunc": 0, "snap": 0}  # how this member was synced as a learner

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        cfg = self.config
        t0 = time.perf_counter()
        self.storage = DiskStorage(cfg.log_dir, cfg.data_dir, fsync=cfg.force_sync)
        state = self.storage.load()
        if state.truncated_bytes:
            log.warning("storage.torn_tail_truncated", bytes=state.truncated_bytes)
        now = _now_ms()
        if cfg.ensemble:
            from coordcore.runtime.peers import PeerNetwork
            from coordcore.zab.peer import QuorumPeer
            from coordcore.zab.quorum import QuorumConfig

            quorum = QuorumConfig(voters=[s.sid for s in cfg.servers if not s.observer],
                                  observers=[s.sid for s in cfg.servers if s.observer])
            durable = PeerDurable(state.accepted_epoch, state.current_epoch, state.snapshot_zxid, tuple(state.txns))
            # the Replica installs itself as the snapshot source (a SNAP sends its applied tree)
            self.peer = QuorumPeer(cfg.server_id, quorum, tick_ms=cfg.tick_ms, init_limit=cfg.init_limit,
                                   sync_limit=cfg.sync_limit, durable=durable, now_ms=now,
                                   snapshot_provider=lambda: (0, b""))
            self.network = PeerNetwork(self.loop, cfg.server_id, cfg.servers, on_message=self._peer_message,
                                       on_link_lost=self._peer_link_lost, bind_retry=cfg.election_port_bind_retry,
                                       listen_all=cfg.quorum_listen_on_all_ips)
        self.replica = Replica(state=state, now_ms=now, tick_ms=cfg.tick_ms, server_id=cfg.server_id,
                               min_session_timeout_ms=cfg.min_session_timeout_ms,
                               max_session_timeout_ms=cfg.max_session_timeout_ms,
                               reap_interval_ms=cfg.container_check_interval_ms,
                               extended_types=cfg.extended_types_enabled, super_digest=cfg.super_digest,
                               enforce_quota=cfg.enforce_quota, reconfig_enabled=cfg.reconfig_enabled,
                               peer=self.peer, read_only_enabled=cfg.read_only)
        self.node = self.replica.node
        if self.network is not None:
            await self.network.start()
            self._peer_state = self.peer.state
            self._looking_since = time.perf_counter()
            log.info("election.started", sid=cfg.server_id, zxid=Z.fmt(self.peer.last_zxid),
                     epoch=self.peer.current_epoch)
            # The peer's first Ready holds its first notifications: take it now, not at the first tick.
            # (A member rejoining a running ensemble hears nothing until it speaks: it waited a whole
            # tickTime, 2 s by default, before its election even began.)
            self._kick()
        self.listener = await self.loop.create_server(lambda: ClientConnection(self), cfg.client_port_address,
                                                      cfg.client_port, reuse_address=True, backlog=1024)
        self.port = self.listener.sockets[0].getsockname()[1]
        self._every(min(cfg.tick_ms, cfg.container_check_interval_ms), self._on_tick)
        log.info("server.started", address=cfg.client_port_address, port=self.port, data_dir=cfg.data_dir,
                 loop=type(self.loop).__module__.split(".")[0],
                 zxid=Z.fmt(self.replica.last_applied), sessions=len(self.node.sessions.sessions),
                 recovered_txns=self.node.recovered_txns, snapshot_zxid=Z.fmt(state.snapshot_zxid),
                 load_ms=round((time.perf_counter() - t0) * 1000, 1))

    async def stop(self) -> None:
        log.info("server.stopping", port=self.port)
        for h in self.timers:
            h.cancel()
        if self._peer_timer is not None:
            self._peer_timer.cancel()
        if self.network is not None:
            self.network.close()
        if self.listener is not None:
            self.listener.close()
        for c in list(self.conns):
            c.close()
        while self.syncing or self._unsynced() or self.sync_scheduled:
            await asyncio.sleep(0.005)
        self._abandon_snapshot_child()
        if self.storage is not None:
            await self.loop.run_in_executor(self.io, self.storage.close)
        self.io.shutdown(wait=True)

    def _every(self, interval_ms: int, fn) -> None:
        def run():
            try:
                fn()
            finally:
                self.timers.append(self.loop.call_later(interval_ms / 1000, run))
        self.timers.append(self.loop.call_later(interval_ms / 1000, run))

    # ------------------------------------------------------------------ connections
    def register_connection(self, conn: ClientConnection) -> bool:
        ip = conn.peer[0]
        limit = self.config.max_client_cnxns
        if limit and self.conns_by_ip.get(ip, 0) >= limit:
            return False
        self.conns_by_ip[ip] = self.conns_by_ip.get(ip, 0) + 1
        self.conns.add(conn)
        return True

    def unregister_connection(self, conn: ClientConnection) -> None:
        if conn in self.conns:
            self.conns.discard(conn)
            ip = conn.peer[0]
            self.conns_by_ip[ip] -= 1
            if not self.conns_by_ip[ip]:
                del self.conns_by_ip[ip]
        self.replica.connection_closed(conn)

    def touch(self, conn: ClientConnection) -> None:
        self.replica.touch(conn.session_id, _now_ms())

    def handle_connect(self, conn: ClientConnection, req: P.ConnectRequest) -> None:
        replica = self.replica
        decision, timeout = replica.connect(conn, req, os.urandom(16), _now_ms())
        self._take_ready()  # a connection the session had before is dropped first
        if decision is Connect.REFUSED:
            if not replica.serving:  # electing or syncing: the client tries another member
                log.info("client.refused_not_serving", peer="%s:%s" % conn.peer)
            else:
                log.warning("client.zxid_ahead", peer="%s:%s" % conn.peer, client_zxid=Z.fmt(req.last_zxid_seen),
                            server_zxid=Z.fmt(replica.last_applied))
            conn.close()
        elif decision is Connect.PENDING:
            conn.await_session()  # read nothing more until the session is set up
            self._schedule_sync()  # its createSession txn is in the next group commit
        elif decision is Connect.INVALID:
            log.info("client.session_invalid", peer="%s:%s" % conn.peer, session=Z.fmt(req.session_id))
            conn.session_invalid()
        elif decision is Connect.READ_ONLY:
            sid, passwd = replica.read_only_session
            log.info("client.read_only_session", peer="%s:%s" % conn.peer, session=Z.fmt(sid))
            conn.session_established(sid, timeout, passwd, read_only=True)
        else:
            conn.session_established(req.session_id, timeout, req.passwd)

    def deliver_now(self) -> None:
        """Deliver what a read made the replica fire (resumed watches), before that read's reply."""
        self._take_ready()

    # ------------------------------------------------------------------ write pipeline
    def submit_request(self, conn: ClientConnection, p) -> None:
        self.replica.submit(conn, p, _now_ms())
        if self.peer is not None:
            self._kick()  # a learner forwards the write: a message, not an append
        if not self.sync_scheduled and not self.syncing:
            self._schedule_sync()

    def _schedule_sync(self) -> None:
        # Sync after the loop has read everything that is waiting: every request read in the
        # meantime shares one fsync (group commit).
        if self.sync_scheduled:
            return
        self.sync_scheduled = True
        self.batch_seen = 0
        self.loop.call_soon(self._start_sync)

    def _unsynced(self) -> int:
        """Txns decided and not yet durable: still in the replica, or appended and awaiting the fsync."""
        return self.replica.unlogged + self.unsynced_count

    def _start_sync(self) -> None:
        unsynced = self._unsynced()
        if unsynced > self.batch_seen and self.batch_turns < BATCH_TURNS_MAX:
            # requests arrived during the last turn: give the sockets one more turn to add theirs
            self.batch_seen = unsynced
            self.batch_turns += 1
            self.loop.call_soon(self._start_sync)
            return
        self.sync_scheduled = False
        self.batch_turns = 0
        if self.syncing or not unsynced:
            return
        if self.sync_ewma_s < SYNC_INLINE_MAX_S or self.peer is not None:
            # (a member always syncs inline: its epoch, truncate and snapshot writes must not race an
            # fsync on the storage thread)
            # A fast disk: fsync on the loop thread.  Handing it to a worker thread costs two thread
            # switches per batch, more than the fsync itself; requests arriving meanwhile wait in the
            # socket buffers and form the next batch.
            last = self._take_unsynced()
            try:
                t0 = time.perf_counter()
                self.storage.sync()
                self._note_sync(time.perf_counter() - t0)
            except BaseException as e:
                self._sync_failed(e)
                raise
            self._persisted(last)
        else:
            # A slow disk: fsync on the storage thread so reads keep being served meanwhile.
            self.syncing = True
            self.loop.create_task(self._sync_loop())

    async def _sync_loop(self) -> None:
        try:
            while self._unsynced():
                last = self._take_unsynced()
                t0 = time.perf_counter()
                await self.loop.run_in_executor(self.io, self.storage.sync)
                self._note_sync(time.perf_counter() - t0)
                self._persisted(last)
                if self.sync_ewma_s < SYNC_INLINE_MAX_S / 2:
                    break  # the disk is fast again: back to inline syncs
        except BaseException as e:
            self._sync_failed(e)
            raise
        finally:
            self.syncing = False
        if self._unsynced() and not self.sync_scheduled:
            self._schedule_sync()

    def _take_unsynced(self) -> int | None:
        """Append what the replica has decided; returns the last zxid the coming fsync will cover."""
        self._take_ready()
        last, self.unsynced_last, self.unsynced_count = self.unsynced_last, None, 0
        return last

    def _take_ready(self) -> None:
        """Carry out the replica's Ready (zab/ready.py's HOST RULES): its writes in order, then its
        messages, then its deliveries in order; a reset rebuilds the replica from storage."""
        ready = self.replica.ready()
        if ready.writes:
            if self.peer is None:
                # standalone: only Appends (a Solo core writes no epochs and never truncates)
                append = self.storage.append
                for w in ready.writes:
                    append(w.zxid, w.txn)
                self.unsynced_last = ready.writes[-1].zxid
                self.unsynced_count += len(ready.writes)
                self.txns_since_snapshot += len(ready.writes)
            else:
                self._member_writes(ready.writes)
        if ready.messages:
            send = self.network.send
            for to_sid, msg in ready.messages:
                send(to_sid, msg)
            self.network.flush()
        for kind, conn, a, b in ready.deliver:
            if kind is REPLY:
                conn.on_committed(a, b)
            elif kind is EVENT:
                conn.notify(a, b)
            elif kind is SESSION:
                conn.session_established(a, b[0], b[1])
            elif kind is INVALID:
                conn.session_invalid()
            elif kind is CLOSE:  # the connection's queued replies go out first
                conn.close_when_flushed()
            else:  # DROP
                conn.close()
        for sid in ready.expired:
            log.info("session.expired", session=Z.fmt(sid))
        for path in ready.reaped:
            log.info("container.reaped", path=path)
        if self.peer is not None:
            self._member_after(ready)

    # ------------------------------------------------------------------ ensemble member
    def _member_writes(self, writes) -> None:
        """HOST RULE 1: Appends are buffered; any other write syncs them first and is itself durable."""
        storage = self.storage
        for w in writes:
            if type(w) is Append:
                storage.append(w.zxid, w.txn)
                self.unsynced_last = w.zxid
                self.unsynced_count += 1
                self.txns_since_snapshot += 1
                continue
            if self.unsynced_count:
                storage.sync()
                self._synced_early = self.unsynced_last
                self.unsynced_last, self.unsynced_count = None, 0
            if type(w) is SetAcceptedEpoch:
                storage.set_accepted_epoch(w.epoch)
            elif type(w) is SetCurrentEpoch:
                storage.set_current_epoch(w.epoch)
            elif type(w) is Truncate:
                storage.truncate(w.zxid)
                self._synced_early = None
            elif type(w) is InstallSnapshot:
                log.info("sync.snap_installed", zxid=Z.fmt(w.zxid), bytes=len(w.data))
                storage.install_snapshot(w.zxid, w.data)
                self._synced_early = None
                self.txns_since_snapshot = 0
            else:  # pragma: no cover - zab.ready names every write
                raise TypeError(f"unknown storage write {w!r}")

    _synced_early: int | None = None

    def _member_after(self, ready) -> None:
        """After a member's Ready: persisted() for what an epoch write synced, a reset, role changes, timers."""
        if ready.reset:
            t0 = time.perf_counter()
            in_place = self.replica.reset_in_place(ready.applied_zxid, _now_ms())
            if not in_place:  # host rule 5 by the letter: load, replay through the applied point
                state = self.storage.load()
                self.replica.rebuild(state, ready.applied_zxid, _now_ms())
            self.node = self.replica.node
            log.info("replica.rebuilt", zxid=Z.fmt(self.replica.last_applied), from_storage=not in_place,
                     ms=round((time.perf_counter() - t0) * 1000, 1))
        peer = self.peer
        if peer.state is not self._peer_state:
            self._role_changed(self._peer_state, peer.state)
            self._peer_state = peer.state
        early, self._synced_early = self._synced_early, None
        if early is not None:
            self.replica.persisted(early)
            self._kick()
        if self.unsynced_count and not self.sync_scheduled and not self.syncing:
            self._schedule_sync()
        self._arm_peer_timer()

    def _role_changed(self, old, new) -> None:
        peer = self.peer
        if old is not PeerState.LOOKING and old is not None:
            self.network.drop_quorum_links()  # the role's links end with it, as ZooKeeper's sockets do
        if new is PeerState.LOOKING:
            self._looking_since = time.perf_counter()
            log.info("election.started", sid=peer.sid, zxid=Z.fmt(peer.last_zxid), epoch=peer.current_epoch)
            if old is PeerState.LEADING:
                log.warning("leader.abdicated", sid=peer.sid, epoch=peer.epoch)
        else:
            took = None if self._looking_since is None else round((time.perf_counter() - self._looking_since) * 1000)
            log.info("election.decided", sid=peer.sid, state=new.name.lower(), leader=peer.leader_sid,
                     took_ms=took)

    def _peer_message(self, from_sid: int, msg) -> None:
        kind = _SYNC_KINDS.get(type(msg))
        if kind is not None:  # how the leader syncs this learner (the writes it causes log their sizes)
            self.sync_counts[kind] += 1
            log.info(f"sync.{kind}", leader=from_sid, zxid=Z.fmt(msg.zxid), last_zxid=Z.fmt(self.peer.last_zxid))
        self.replica.receive(from_sid, msg, _now_ms())
        self._kick()

    def _peer_link_lost(self, sid: int) -> None:
        self.replica.link_lost(sid, _now_ms())
        self._kick()

    def _kick(self) -> None:
        """Take the replica's Ready soon: once per loop turn however many inputs arrive in it."""
        if not self._kick_scheduled:
            self._kick_scheduled = True
            self.loop.call_soon(self._kicked)

    def _kicked(self) -> None:
        self._kick_scheduled = False
        if self.replica.unlogged:
            self._schedule_sync()
        self._take_ready()

    def _arm_peer_timer(self) -> None:
        t = self.peer.next_deadline_ms()
        if t is None:
            return
        at = self.loop.time() + max(0, t - _now_ms()) / 1000
        if self._peer_timer is not None:
            if self._peer_timer_at is not None and self._peer_timer_at <= at:
                return  # an earlier wake-up is armed; it re-arms for later deadlines
            self._peer_timer.cancel()
        self._peer_timer_at = at
        self._peer_timer = self.loop.call_at(at, self._peer_deadline)

    def _peer_deadline(self) -> None:
        self._peer_timer = self._peer_timer_at = None
        self.replica.tick(_now_ms())
        self._kicked()

    def kick(self) -> None:
        """A client input that may produce peer messages (sync, a forwarded request) was given."""
        if self.peer is not None:
            self._kick()

    def _persisted(self, last: int | None) -> None:
        """The appends through `last` are durable: the replica commits and applies them; deliver."""
        if last is not None:
            self.replica.persisted(last)
        self._take_ready()
        if self._unsynced() and not self.sync_scheduled and not self.syncing:
            self._schedule_sync()
        if self.txns_since_snapshot >= self.config.snap_count and not self.snapshotting:
            self._snapshot()

    def _note_sync(self, seconds: float) -> None:
        self.sync_ewma_s = 0.8 * self.sync_ewma_s + 0.2 * seconds
        self.syncs += 1

    def _sync_failed(self, e: BaseException) -> None:
        # a failed fsync must never be acknowledged: stop serving
        self.failed = e
        log.error("storage.sync_failed", error=repr(e))
        self.loop.stop()

    def _snapshot(self) -> None:
        """Snapshot the committed tree at its current zxid without pausing the server.

        With fork_snapshots a forked child encodes and writes the tree it inherited (copy-on-write:
        exact at the fork's zxid, and on the other core).  Otherwise the encoder takes
        SNAPSHOT_STEP_NODES nodes per loop turn while requests keep being served, and the tree
        preserves what each node looked like at the start until the encoder is done.
        """
        self.txns_since_snapshot = 0
        self.snapshotting = True
        if self.fork_snapshots and self._snapshot_forked():
            return
        self._snapshot_step(self.node.snapshot_encoder(), time.perf_counter())

    def _snapshot_forked(self) -> bool:
        """Start a child that writes the snapshot; False if fork failed (then snapshot in steps)."""
        zxid, nodes = self.node.committed.last_zxid, self.node.committed.node_count()
        t0 = time.perf_counter()
        try:
            with warnings.catch_warnings():
                # Python 3.12+ warns about forking a process with threads; the child below only
                # encodes and writes a file, touching no lock another thread could hold.
                warnings.simplefilter("ignore", DeprecationWarning)
                pid = os.fork()
        except OSError as e:
            log.warning("snapshot.fork_failed", error=str(e))
            return False
        if pid == 0:  # the child: only encode, write, exit -- no loop, no logging, no locks
            code = 1
            try:
                _quiet_signals_in_child()
                # Drop every inherited descriptor: the listening socket (a child outliving a killed
                # parent must not keep the port from a restarted server), the clients' sockets, the
                # directory locks and the txn log.  The writer opens what it needs itself.
                os.closerange(3, _max_fd())
                # No collections here: one would write to every tracked object's header, turning the
                # pages this child shares with the server into copies of its own.
                gc.disable()
                self.storage.write_snapshot_stream(zxid, *self.node.snapshot_stream())
                code = 0
            finally:
                os._exit(code)
        self.snapshot_child = pid
        log.info("snapshot.forked", zxid=Z.fmt(zxid), nodes=nodes, child=pid,
                 fork_ms=round((time.perf_counter() - t0) * 1000, 2))
        self.loop.call_later(SNAPSHOT_CHILD_POLL_S, self._poll_snapshot_child, pid, zxid, t0)
        return True

    def _poll_snapshot_child(self, pid: int, zxid: int, t0: float) -> None:
        if self.snapshot_child != pid:
            return  # abandoned at stop
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done, status = pid, -1
        if done == 0:
            self.loop.call_later(SNAPSHOT_CHILD_POLL_S, self._poll_snapshot_child, pid, zxid, t0)
            return
        self.snapshot_child = None
        self.snapshotting = False
        ms = round((time.perf_counter() - t0) * 1000, 1)
        code = os.waitstatus_to_exitcode(status) if status != -1 else -1
        if code != 0:
            log.error("snapshot.failed", zxid=Z.fmt(zxid), child_exit=code)
            return
        try:
            self.storage.snapshot_written(zxid)
        except Exception as e:  # a failed purge leaves extra files, never lost data
            log.error("snapshot.failed", zxid=Z.fmt(zxid), error=repr(e))
            return
        log.info("snapshot.saved", zxid=Z.fmt(zxid), forked=True, total_ms=ms)

    def _abandon_snapshot_child(self) -> None:
        """At stop: kill an unfinished snapshot writer (its .tmp file is removed on the next start)."""
        pid, self.snapshot_child = self.snapshot_child, None
        if pid is None:
            return
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        self.snapshotting = False

    def _snapshot_step(self, enc, t0: float) -> None:
        # A method rescheduling itself, not a closure: a self-referencing closure is a cycle that kept
        # the encoder -- every node of the snapshot and its encoded bytes -- alive until a full GC.
        if not enc.step(SNAPSHOT_STEP_NODES):
            self.loop.call_soon(self._snapshot_step, enc, t0)
            return
        zxid, nodes, data = enc.zxid, len(enc), enc.result()
        encode_ms = round((time.perf_counter() - t0) * 1000, 1)

        def done(fut):
            self.snapshotting = False
            if fut.exception() is not None:
                log.error("snapshot.failed", zxid=Z.fmt(zxid), error=repr(fut.exception()))
            else:
                log.info("snapshot.saved", zxid=Z.fmt(zxid), bytes=len(data), nodes=nodes,
                         encode_ms=encode_ms)

        self.loop.run_in_executor(self.io, self.storage.save_snapshot, zxid, data).add_done_callback(done)

    # ------------------------------------------------------------------ timers
    def _on_tick(self) -> None:
        self.replica.tick(_now_ms())
        if self.replica.unlogged:
            self._schedule_sync()
        self._take_ready()  # logs what expired or was reaped; the txns wait for the group commit

    # ------------------------------------------------------------------ stats and 4lw
    def record_latency(self, lat_ms: int) -> None:
        self.lat_total += lat_ms
        self.lat_count += 1
        if lat_ms > self.lat_max:
            self.lat_max = lat_ms
        if self.lat_count == 1 or lat_ms < self.lat_min:
            self.lat_min = lat_ms

    def four_letter(self, conn: ClientConnection, cmd: str, arg: bytes = b"") -> None:
        whitelisted = cmd in self.config.four_letter_whitelist
        conn.is_four_letter = True
        if whitelisted:
            # ZooKeeper counts an executed word as a packet each way, on the server and on the
            # asking connection (which it lists among the connections while it answers)
            conn.recved += 1
            self.packets_received += 1
            self.packets_sent += 1
        effect = fourletter.side_effect(cmd) if whitelisted else None
        if effect == "set_trace_mask" and len(arg) == 8:
            self.trace_mask = int.from_bytes(arg, "big", signed=True)
        info = self.server_info()
        text = fourletter.render(cmd, info, self.config.four_letter_whitelist)
        if effect == "reset_server_stats":
            self.lat_min = self.lat_max = self.lat_total = self.lat_count = 0
            self.packets_received = self.packets_sent = 0
        elif effect == "reset_connection_stats":
            for c in self.conns:  # ZooKeeper's ServerCnxn.resetStats
                c.lat_min = c.lat_max = c.lat_total = c.lat_count = c.lat_last = 0
                c.recved = c.sent = 0
                c.last_op, c.last_cxid, c.last_zxid, c.last_response_ms = "NA", -1, -1, 0
        conn.answer_and_close(text.encode("utf-8"))

    def server_info(self) -> fourletter.ServerInfo:
        node = self.node
        tree = node.committed
        conns = []
        for c in self.conns:
            if c.is_closed:
                continue
            conns.append(fourletter.ConnInfo(
                remote_ip=c.peer[0], remote_port=c.peer[1], queued=len(c.pending), recved=c.recved, sent=c.sent,
                session_id=c.session_id, last_op=c.last_op, established_ms=c.established_ms,
                timeout_ms=c.timeout_ms, last_cxid=c.last_cxid, last_zxid=c.last_zxid,
                last_response_ms=c.last_response_ms, last_latency_ms=c.lat_last, min_latency_ms=c.lat_min,
                avg_latency_ms=(c.lat_total // c.lat_count) if c.lat_count else 0, max_latency_ms=c.lat_max))
        data_watches, watch_count = zookeeper_watch_tables(node.watches.tables)
        sessions = [fourletter.SessionInfo(session_id=s.session_id, timeout_ms=s.timeout_ms,
                                           expires_at_ms=s.expires_ms,
                                           ephemerals=tuple(sorted(tree.ephemerals.get(s.session_id, ()))))
                    for s in node.sessions.sessions.values()]
        mode, serving, member, read_only = "standalone", True, {}, False
        if self.peer is not None:
            mode = _MODES.get(self.peer.state, "looking")
            serving = self.replica.serving
            member = self._member_info()
            if self.replica.read_only_mode(_now_ms()):  # out of broadcast, serving read-only clients
                mode, serving, read_only = "read-only", True, True
        last_zxid = max(tree.last_zxid, member.pop("epoch_zxid", 0))
        return fourletter.ServerInfo(
            **member, mode=mode, serving=serving, read_only=read_only, server_id=self.config.server_id,
            config=self.config, client_port=self.port, last_zxid=last_zxid,
            node_count=len(tree.nodes) + 1,  # ZooKeeper counts its root twice (stored as "" and "/")
            latency_min_ms=self.lat_min, latency_avg_ms=(self.lat_total / self.lat_count) if self.lat_count else 0.0,
            latency_max_ms=self.lat_max, packets_received=self.packets_received, packets_sent=self.packets_sent,
            outstanding=sum(len(c.pending) for c in self.conns), connections=conns, data_watches=data_watches,
            watch_count=watch_count, sessions=sessions,
            ephemerals_count=sum(len(v) for v in tree.ephemerals.values()),
            approximate_data_size=tree.data_size, uptime_ms=_now_ms() - self.started_ms, now_ms=_now_ms(),
            snap_dir=self.storage.snap_dir, log_dir=self.storage.log_dir,
            data_dir_size=_dir_size(self.storage.snap_dir), data_log_size=_dir_size(self.storage.log_dir),
            trace_mask=self.trace_mask)

    def _member_info(self) -> dict:
        """An ensemble member's part of the 4lw snapshot, read from its QuorumPeer (ServerInfo fields).

        zk_peer_state is ZooKeeper's "<state> - <zab phase>": discovery until the epoch is agreed,
        synchronization until the role broadcasts.  A leader counts its learners as ZooKeeper's Leader
        does: every handshake it holds (learners), and the voters / observers past the start of their
        sync (ZooKeeper's forwarding followers / observing learners); pending syncs are the distinct
        zxids learners' syncs wait on.  Proposal sizes are the txns this leader proposed that are still
        in its in-memory window (the last commitLogCount applied and all newer ones): last exact, min and
        max over that window; -1 each before the first proposal, as ZooKeeper prints them.  A leader's
        srvr zxid is at least (its epoch, 0) ("epoch_zxid"): ZooKeeper's leader sets its last processed
        zxid so when it starts, before it proposes anything."""
        from coordcore.zab import leader as zab_leader, learner as zab_learner

        peer = self.peer
        role = peer.role
        state = {PeerState.LEADING: "leading", PeerState.FOLLOWING: "following",
                 PeerState.OBSERVING: "observing"}.get(peer.state, "looking")
        phase = None
        if isinstance(role, zab_leader.Leader):
            phase = ("discovery" if role.phase < zab_leader.Phase.SYNC else
                     "synchronization" if role.phase < zab_leader.Phase.BROADCAST else "broadcast")
        elif isinstance(role, zab_learner.Learner):
            phase = ("discovery" if role.phase < zab_learner.Phase.SYNC else
                     "synchronization" if role.phase < zab_learner.Phase.BROADCAST else "broadcast")
        info: dict = {"peer_state": state if phase is None else f"{state} - {phase}",
                      "quorum_size": len(peer.quorum.voters)}
        if peer.state is PeerState.OBSERVING and peer.leader_sid is not None:
            info["observer_master_id"] = peer.leader_sid
        if isinstance(role, zab_leader.Leader):
            handles = list(role.handles.values())
            synced = [h for h in handles if h.stage >= zab_leader.Stage.SYNCING]
            info["leader_stats"] = fourletter.LeaderStats(
                learners=len(handles), synced_followers=sum(1 for h in synced if h.is_voter),
                synced_observers=sum(1 for h in synced if not h.is_voter),
                pending_syncs=len({z for z, _, _ in role.pending_syncs}),
                uptime_ms=(None if self.replica.leading_since_ms is None
                           else _now_ms() - self.replica.leading_since_ms))
            sizes = ([len(txn) for _, txn in peer.history.after(Z.make(role.epoch, 0))]
                     if role.epoch is not None else [])
            info["proposal_sizes"] = (sizes[-1], min(sizes), max(sizes)) if sizes else (-1, -1, -1)
            if role.serving:
                info["epoch_zxid"] = Z.make(role.epoch, 0)
        return info


_SYNC_KINDS = {zab_messages.Diff: "diff", zab_messages.Trunc: "trunc", zab_messages.Snap: "snap"}
_MODES = {PeerState.LEADING: "leader", PeerState.FOLLOWING: "follower", PeerState.OBSERVING: "observer"}


class ServerThread:
    """An in-process server on its own thread and event loop (for tests and embedding)."""

    def __init__(self, config: ServerConfig):
        self.config = config
        self.server: Server | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._crashed = False

    @property
    def port(self) -> int:
        return self.server.port

    def start(self, timeout: float = 10) -> "ServerThread":
        self.thread = threading.Thread(target=self._run, name="coordcore-server", daemon=True)
        self.thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("coordcore server did not start within %.1fs" % timeout)
        if self._error is not None:
            raise self._error
        return self

    def _run(self) -> None:
        self.loop = new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.server = Server(self.config)
        try:
            self.loop.run_until_complete(self.server.start())
        except BaseException as e:
            self._error = e
            self._ready.set()
            self.loop.close()
            return
        self._ready.set()
        try:
            self.loop.run_forever()
        finally:
            if self._crashed:
                self.server.storage.close()  # release the data dir lock; nothing is flushed or synced
                self.server.io.shutdown(wait=False)
            else:
                self.loop.run_until_complete(self.server.stop())
            self.loop.close()

    def stop(self, timeout: float = 10) -> None:
        if self.loop is not None and self.thread is not None and self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout)

    def crash(self, timeout: float = 10) -> None:
        """Stop as abruptly as a thread can: drop every connection unflushed, wait for nothing.

        Only what storage.sync() already made durable survives a restart on the same data dir
        (in-flight txns were never acknowledged).  A real kill -9 needs a process server.
        """
        if self.loop is None or self.thread is None or not self.thread.is_alive():
            return
        self._crashed = True

        def abort():
            self.server.listener.close()
            for c in list(self.server.conns):
                if c.transport is not None:
                    c.transport.abort()
            self.loop.stop()

        self.loop.call_soon_threadsafe(abort)
        self.thread.join(timeout)


def _max_fd() -> int:
    try:
        return os.sysconf("SC_OPEN_MAX")
    except (ValueError, OSError):
        return 65536


def _quiet_signals_in_child() -> None:
    """A forked snapshot writer dies on SIGINT/SIGTERM and never wakes the parent's event loop."""
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_DFL)
        signal.set_wakeup_fd(-1)  # the fd is shared with the parent's loop
    except ValueError:
        pass  # forked from a thread other than the main one: no handlers or wakeup fd were ours


def _fixed_mmap_threshold() -> None:
    """Give large buffers (snapshots, big batches) back to the OS when they are freed.

    glibc raises its mmap threshold each time a large block is freed, so later large blocks come
    from the heap and their pages stay resident: after a few snapshots the server kept ~2x the
    memory its tree needs.  A fixed threshold (glibc's default, 128 KiB) keeps them mmapped.
    """
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass  # not glibc: nothing to tune


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop where it is installed (a dependency on CPython/Linux and macOS), else asyncio's own.

    Measured with `coordcore bench` on 2 cores: about 10% more writes/s and reads/s than the default
    selector loop, which is what brings writes level with Apache ZooKeeper.
    """
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def run(config: ServerConfig) -> int:
    """Serve until SIGTERM/SIGINT.  Returns the process exit code."""
    loop = new_event_loop()
    asyncio.set_event_loop(loop)
    server = Server(config)
    gc.disable()  # loading a large snapshot allocates millions of objects that all survive
    try:
        loop.run_until_complete(server.start())
    except (CorruptLogError, StorageError, OSError, ValueError) as e:
        # a corrupt log, an unreadable snapshot, a locked or unwritable data dir, a port in use: say so
        # and stop; never serve from state that may have lost acknowledged writes
        log.error("server.start_failed", error=str(e), kind=type(e).__name__)
        print("coordcore: error: %s" % e, file=sys.stderr)
        loop.close()
        return 1
    _fixed_mmap_threshold()
    server.fork_snapshots = sys.platform == "linux" and hasattr(os, "fork")
    # The tree is millions of small long-lived objects without cycles: keep the cyclic collector
    # from rescanning them on every few thousand allocations (its pauses showed up as p99 spikes).
    gc.freeze()
    gc.set_threshold(50_000, 50, 1000)
    gc.enable()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, loop.stop)
    try:
        loop.run_forever()
    finally:
        if server.failed is None:
            loop.run_until_complete(server.stop())
        loop.close()
    return 1 if server.failed is not None else 0
