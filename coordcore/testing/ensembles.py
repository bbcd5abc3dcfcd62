"""Ensembles for tests: several server processes behind one interface, with fault injection.

:class:`EnsembleHandle` runs ``voters + observers`` members (sids 1..n, voters first), each in a process
of its own session, behind a :class:`~coordcore.testing.linkproxy.LinkProxy`:

* every directed pair ``a -> b`` of members has a proxy port for ``b``'s quorum port and one for its
  election port, and *every member gets its own zoo.cfg*: ``server.a=`` in ``a``'s config names the
  real ports ``a`` binds, ``server.b=`` names the proxy ports of ``a -> b``.  So all peer traffic goes
  through the proxy, which knows which member is on each end of every connection;
* every member has a client proxy port; :attr:`~EnsembleHandle.connect_string` and
  :meth:`~EnsembleHandle.member_connect_string` name those, so a single client can be cut off from a
  single member.  :meth:`~EnsembleHandle.four_letter` (and :meth:`~EnsembleHandle.mode`,
  :meth:`~EnsembleHandle.wait_serving`, ...) talk to the real client port: the harness's own control
  channel is never subject to faults.

Faults (see :mod:`coordcore.testing.linkproxy` for the exact semantics): :meth:`partition`,
:meth:`cut`, :meth:`delay`, :meth:`cut_client`, :meth:`heal`; process faults: :meth:`kill` (SIGKILL),
:meth:`stop` (SIGTERM, then SIGKILL past a deadline), :meth:`pause` / :meth:`resume` (SIGSTOP /
SIGCONT of the member's process group), :meth:`start_member`, :meth:`restart`; and
:meth:`expire_session`, which has the *servers* expire a client's session.

Backends
    The backend-specific part is small: :meth:`EnsembleHandle.member_command` (abstract: the argv that
    runs member ``sid`` from its files), :meth:`~EnsembleHandle.member_config` (the zoo.cfg keys of
    member ``sid``; the base class renders the full per-member config), :meth:`~EnsembleHandle.
    write_member_files` (zoo.cfg and ``dataDir/myid``, plus anything else the backend needs),
    :meth:`~EnsembleHandle.member_environment` and :meth:`~EnsembleHandle.first_message_hook` (rewrite
    a peer handshake that advertises the sender's own address).  :class:`ZooKeeperEnsemble` runs
    Apache ZooKeeper's ``QuorumPeerMain``.  A coordcore backend renders the same zoo.cfg and runs
    ``python -m coordcore serve --config zoo.cfg``, reading its id from ``dataDir/myid``::

        class CoordcoreEnsemble(EnsembleHandle):
            backend = "coordcore"
            def member_command(self, sid):
                return [sys.executable, "-m", "coordcore", "serve", "--config", str(self.member(sid).config_path)]
            def member_environment(self, sid):
                return {**os.environ, "PYTHONUNBUFFERED": "1"}

Config
    ``config`` is a dict of zoo.cfg keys merged over :data:`DEFAULT_ENSEMBLE_CONFIG` (a key given as
    None is left out).  dataDir, clientPort, clientPortAddress, peerType and the ``server.N`` lines are
    the ensemble's own.  For ZooKeeper, keys it only reads as system properties become ``-D`` flags
    (:data:`~coordcore.testing.servers.ZK_SYSTEM_PROPERTY_KEYS`).

Files
    ``work_dir/member-<sid>/`` holds the member's zoo.cfg, ``server.log`` and ``data/`` (with
    ``myid``).  ``kill``/``stop`` keep them, so ``start_member`` comes back with the same data.
    ``close()`` (also ``with``) stops everything and removes the work dir, unless the caller gave
    ``work_dir`` or ``keep_work_dir=True``.

Log events (structlog): ``testing.ensemble.started`` / ``closed``, ``testing.ensemble.member_started`` /
``member_stopped`` / ``member_killed`` / ``member_paused`` / ``member_resumed``,
``testing.ensemble.session_expired``, plus the proxy's ``testing.link.*`` events.
"""
from __future__ import annotations

import abc
import dataclasses
import os
import pathlib
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from typing import Any, Callable, Iterable, Mapping, Sequence

import structlog

from coordcore.testing.linkproxy import FirstMessageHook, Link, LinkProxy
from coordcore.testing.servers import (
    _LOG4J_PROPERTIES,
    DEFAULT_TEST_CONFIG,
    ZK_SYSTEM_PROPERTY_KEYS,
    ServerStartError,
    _keep_server_logs_off_stdout,
    _tail,
    find_java,
    find_zookeeper_classpath,
    four_letter_word,
    free_port,
    render_zoo_cfg,
)

log = structlog.get_logger("coordcore.testing")

#: Defaults for test ensembles: the single-server test defaults (session timeouts, no per-address
#: connection limit, every four-letter word) with a short tick, so that elections and failure
#: detection take a second or two: a follower that hears nothing from its leader for syncLimit *
#: tickTime = 1 s gives up on it.
DEFAULT_ENSEMBLE_CONFIG: dict[str, Any] = {
    **DEFAULT_TEST_CONFIG,
    "tickTime": 200,
    "initLimit": 10,
    "syncLimit": 5,
}

#: Modes in which a member serves clients.
SERVING_MODES = ("leader", "follower", "observer")

_ENSEMBLE_KEYS = ("dataDir", "clientPort", "clientPortAddress", "peerType")


def _rmtree_quiet(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)


def _kill_groups(pids: set[int]) -> None:
    """Finalizer: SIGKILL the process groups of members a forgotten handle left running."""
    for pid in list(pids):
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    pids.clear()


@dataclasses.dataclass
class Member:
    """One member of an ensemble: its sid, role, files, real ports and process."""

    sid: int
    role: str                      # "voter" | "observer"
    dir: pathlib.Path
    client_port: int               # the real ports, bound by the member itself
    quorum_port: int
    election_port: int
    proc: subprocess.Popen | None = None
    paused: bool = False

    @property
    def data_dir(self) -> pathlib.Path:
        return self.dir / "data"

    @property
    def config_path(self) -> pathlib.Path:
        return self.dir / "zoo.cfg"

    @property
    def log_path(self) -> pathlib.Path:
        return self.dir / "server.log"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class EnsembleHandle(abc.ABC):
    """Several members of one backend behind link proxies; see the module docstring."""

    backend: str = ""
    #: seconds ``stop()`` waits after SIGTERM before SIGKILL
    stop_timeout: float = 15.0

    def __init__(self, voters: int = 3, observers: int = 0, config: Mapping[str, Any] | None = None,
                 work_dir: str | os.PathLike | None = None, host: str = "127.0.0.1", *,
                 keep_work_dir: bool = False, proxied: bool = True):
        """Pick the members' real ports (asked of the OS) and open the proxy ports; start nothing.

        ``voters`` / ``observers``: member counts (sids 1..voters are voters, the rest observers).
        ``config``: zoo.cfg keys over :data:`DEFAULT_ENSEMBLE_CONFIG` (None drops a key).
        ``work_dir``: where the members' dirs go (kept by ``close()``); default a new temp dir,
        removed by ``close()`` unless ``keep_work_dir``.  ``host``: the address everything binds.
        ``proxied=False``: no link proxies -- members and clients talk directly (``coordcore
        ensemble`` runs this way); the link faults then raise RuntimeError.
        """
        if voters < 1 or observers < 0 or voters + observers < 2:
            raise ValueError("an ensemble needs at least one voter and two members")
        config = dict(config or {})
        for key in config:
            if key in _ENSEMBLE_KEYS or key.startswith("server."):
                raise ValueError(f"{key} is set by the ensemble")
        merged = {**DEFAULT_ENSEMBLE_CONFIG, **config}
        self.config: dict[str, Any] = {k: v for k, v in merged.items() if v is not None}
        self.host = host
        self.voters = voters
        self.observers = observers
        self.sids: list[int] = list(range(1, voters + observers + 1))
        if work_dir is None:
            self.work_dir = pathlib.Path(tempfile.mkdtemp(prefix=f"{self.backend}-ensemble-"))
            self.keep_work_dir = keep_work_dir
        else:
            self.work_dir = pathlib.Path(work_dir)
            self.work_dir.mkdir(parents=True, exist_ok=True)
            self.keep_work_dir = True
        self._pids: set[int] = set()
        self._finalizers = [weakref.finalize(self, _kill_groups, self._pids)]
        if not self.keep_work_dir:
            self._finalizers.append(weakref.finalize(self, _rmtree_quiet, str(self.work_dir)))
        ports = self._distinct_ports(3 * len(self.sids))
        self.members: dict[int, Member] = {}
        for i, sid in enumerate(self.sids):
            d = self.work_dir / f"member-{sid}"
            (d / "data").mkdir(parents=True, exist_ok=True)
            self.members[sid] = Member(sid=sid, role="voter" if sid <= voters else "observer", dir=d,
                                       client_port=ports[3 * i], quorum_port=ports[3 * i + 1],
                                       election_port=ports[3 * i + 2])
        self.proxied = proxied
        self._links: dict[tuple[Any, int, str], Link] = {}
        self.proxy: LinkProxy | None = None
        if proxied:
            self.proxy = LinkProxy(host)
            try:
                self._make_links(set(ports))
            except BaseException:
                self.proxy.close()
                raise
            self._finalizers.insert(0, weakref.finalize(self, self.proxy.close))
        self._closed = False

    def _distinct_ports(self, n: int) -> list[int]:
        ports: list[int] = []
        deadline = time.monotonic() + 10
        while len(ports) < n:
            if time.monotonic() > deadline:
                raise RuntimeError("could not find free ports")
            p = free_port(self.host)
            if p not in ports:
                ports.append(p)
        return ports

    def _make_links(self, avoid: set[int]) -> None:
        for b, mb in self.members.items():
            self._links[("client", b, "client")] = self.proxy.add_client_link(
                b, (self.host, mb.client_port), avoid_ports=avoid)
            for a in self.sids:
                if a == b:
                    continue
                for kind, port in (("quorum", mb.quorum_port), ("election", mb.election_port)):
                    self._links[(a, b, kind)] = self.proxy.add_link(
                        a, b, (self.host, port), kind=kind, first_message=self.first_message_hook(a, b, kind),
                        avoid_ports=avoid)

    # -- addresses -----------------------------------------------------------------------------

    def member(self, sid: int) -> Member:
        try:
            return self.members[sid]
        except KeyError:
            raise ValueError(f"no member {sid!r}; members are {self.sids}") from None

    def link(self, initiator: Any, acceptor: int, kind: str) -> Link:
        """The proxy link ``initiator -> acceptor`` of ``kind`` ("quorum", "election"; or initiator
        ``"client"`` and kind ``"client"``)."""
        if not self.proxied:
            raise RuntimeError("this ensemble runs without link proxies (proxied=False)")
        return self._links[(initiator, acceptor, kind)]

    @property
    def connect_string(self) -> str:
        """Every member's client proxy address, comma-separated."""
        return ",".join(self.member_connect_string(s) for s in self.sids)

    def member_connect_string(self, sid: int) -> str:
        """Member ``sid``'s client proxy address (subject to :meth:`cut_client`)."""
        if not self.proxied:
            return self.direct_connect_string(sid)
        return self.link("client", sid, "client").address

    def direct_connect_string(self, sid: int) -> str:
        """Member ``sid``'s real client address, bypassing the proxy (and every fault)."""
        return f"{self.host}:{self.member(sid).client_port}"

    def sid_of_address(self, address: tuple[str, int] | str) -> int | None:
        """The member whose client proxy (or real client port) is ``address`` (``(host, port)`` or
        ``"host:port"``), e.g. the peer of a client's socket."""
        if isinstance(address, str):
            host, _, port = address.rpartition(":")
            address = (host, int(port))
        port = int(address[1])
        for sid in self.sids:
            proxy_port = self.link("client", sid, "client").port if self.proxied else None
            if port in (proxy_port, self.members[sid].client_port):
                return sid
        return None

    # -- backend hooks -------------------------------------------------------------------------

    def member_config(self, sid: int) -> dict[str, Any]:
        """The zoo.cfg keys member ``sid`` runs with: the ensemble config, its own dataDir and client
        port, its own ``server.<sid>`` line with its real ports and the other members' lines with the
        proxy ports of ``sid -> other``; observers get ``peerType=observer`` and ``:observer``."""
        m = self.member(sid)
        cfg: dict[str, Any] = {**self.config, "dataDir": str(m.data_dir), "clientPort": m.client_port,
                               "clientPortAddress": self.host}
        if m.role == "observer":
            cfg["peerType"] = "observer"
        for other in self.sids:
            o = self.members[other]
            if other == sid or not self.proxied:
                quorum, election = (self.host, o.quorum_port), (self.host, o.election_port)
            else:
                q, e = self.link(sid, other, "quorum"), self.link(sid, other, "election")
                quorum, election = (q.host, q.port), (e.host, e.port)
            line = f"{quorum[0]}:{quorum[1]}:{election[1]}"
            if o.role == "observer":
                line += ":observer"
            cfg[f"server.{other}"] = line
        return cfg

    def write_member_files(self, sid: int) -> None:
        """Write what member ``sid`` starts from: its zoo.cfg and ``dataDir/myid``."""
        m = self.member(sid)
        m.data_dir.mkdir(parents=True, exist_ok=True)
        m.config_path.write_text(render_zoo_cfg(self.member_config(sid)))
        (m.data_dir / "myid").write_text(f"{sid}\n")

    @abc.abstractmethod
    def member_command(self, sid: int) -> list[str]:
        """The argv that runs member ``sid`` (cwd: its dir; its files are written already)."""

    def member_environment(self, sid: int) -> dict[str, str]:
        return dict(os.environ)

    def first_message_hook(self, initiator: int, acceptor: int, kind: str) -> FirstMessageHook | None:
        """A rewrite of the first bytes ``initiator`` sends on a ``kind`` link to ``acceptor``, or None."""
        return None

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self, timeout: float = 60) -> "EnsembleHandle":
        """Launch every member and wait until the ensemble serves (see :meth:`wait_serving`)."""
        _keep_server_logs_off_stdout()
        t0 = time.monotonic()
        try:
            for sid in self.sids:
                if not self.members[sid].running:
                    self._launch(sid)
            modes = self.wait_serving(timeout)
        except BaseException:
            for sid in self.sids:
                self._terminate(sid, graceful=False)
            raise
        log.info("testing.ensemble.started", backend=self.backend, members=len(self.sids),
                 leader=next((s for s, m in modes.items() if m == "leader"), None),
                 seconds=round(time.monotonic() - t0, 3))
        return self

    def close(self) -> None:
        """Stop every member, close the proxy, remove the work dir unless kept."""
        if self._closed:
            return
        self._closed = True
        try:
            self._stop_all()
        finally:
            try:
                if self.proxy is not None:
                    self.proxy.close()
            finally:
                for fin in self._finalizers:
                    fin()
        log.info("testing.ensemble.closed", backend=self.backend, kept=str(self.work_dir) if self.keep_work_dir
                 else None)

    def _stop_all(self) -> None:
        """SIGTERM everyone at once (SIGCONT first if paused), then SIGKILL whoever is left at the deadline."""
        live = [m for m in self.members.values() if m.running]
        for m in live:
            self._signal(m, signal.SIGCONT)
            m.paused = False
            self._signal(m, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        for m in live:
            try:
                m.proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for m in self.members.values():
            self._terminate(m.sid, graceful=False)

    def __enter__(self) -> "EnsembleHandle":
        try:
            return self.start()
        except BaseException:
            self.close()  # the with statement will not: the error carries the members' log tails
            raise

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        state = ", ".join(f"{s}:{'paused' if m.paused else 'up' if m.running else 'down'}"
                          for s, m in self.members.items())
        return f"<{type(self).__name__} {state} work={self.work_dir}>"

    # -- processes -----------------------------------------------------------------------------

    def _launch(self, sid: int) -> None:
        m = self.member(sid)
        self.write_member_files(sid)
        argv = self.member_command(sid)
        with open(m.log_path, "ab") as logf:
            logf.write(f"\n==== start {time.strftime('%Y-%m-%d %H:%M:%S')}: {' '.join(argv)}\n".encode())
            logf.flush()
            m.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                                      cwd=str(m.dir), env=self.member_environment(sid), start_new_session=True)
        m.paused = False
        self._pids.add(m.proc.pid)

    @staticmethod
    def _signal(m: Member, sig: int) -> None:
        if m.proc is None or m.proc.poll() is not None:
            return
        try:  # the whole session: a member's helper children get the signal too
            os.killpg(m.proc.pid, sig)
        except ProcessLookupError:
            pass
        except PermissionError:
            m.proc.send_signal(sig)

    def _terminate(self, sid: int, graceful: bool) -> None:
        m = self.member(sid)
        proc = m.proc
        if proc is None:
            return
        if proc.poll() is None:
            if graceful:
                self._signal(m, signal.SIGCONT)
                self._signal(m, signal.SIGTERM)
                try:
                    proc.wait(self.stop_timeout)
                except subprocess.TimeoutExpired:
                    log.warning("testing.ensemble.stop_timeout", backend=self.backend, sid=sid, pid=proc.pid)
            if proc.poll() is None:
                self._signal(m, signal.SIGKILL)
                proc.wait(30)
        self._pids.discard(proc.pid)
        m.proc = None
        m.paused = False

    def pid(self, sid: int) -> int | None:
        m = self.member(sid)
        return m.proc.pid if m.running else None

    def running(self, sid: int) -> bool:
        """True if member ``sid``'s process is alive (paused or not)."""
        return self.member(sid).running

    def kill(self, sid: int) -> None:
        """SIGKILL member ``sid``'s process group, as a crash would.  Its data is kept."""
        if self.member(sid).running:
            self._terminate(sid, graceful=False)
            log.info("testing.ensemble.member_killed", backend=self.backend, sid=sid)

    def stop(self, sid: int) -> None:
        """Stop member ``sid`` gracefully: SIGTERM, then SIGKILL past :attr:`stop_timeout`."""
        if self.member(sid).running:
            self._terminate(sid, graceful=True)
            log.info("testing.ensemble.member_stopped", backend=self.backend, sid=sid)

    def start_member(self, sid: int, wait: bool = True, timeout: float = 30) -> None:
        """Start member ``sid`` again on its data; with ``wait``, return once it serves (as leader,
        follower or observer).  A member already running is left alone."""
        m = self.member(sid)
        if not m.running:
            if m.proc is not None:  # it died by itself: reap it
                self._terminate(sid, graceful=False)
            self._launch(sid)
            log.info("testing.ensemble.member_started", backend=self.backend, sid=sid, pid=m.proc.pid)
        if wait:
            self.wait_member_serving(sid, timeout)

    def restart(self, sid: int, wait: bool = True, timeout: float = 30) -> None:
        """:meth:`stop` then :meth:`start_member`."""
        self.stop(sid)
        self.start_member(sid, wait=wait, timeout=timeout)

    def pause(self, sid: int) -> None:
        """SIGSTOP member ``sid``'s process group (its sockets stay open; it just stops answering)."""
        m = self.member(sid)
        if not m.running:
            raise RuntimeError(f"member {sid} is not running")
        self._signal(m, signal.SIGSTOP)
        m.paused = True
        log.info("testing.ensemble.member_paused", backend=self.backend, sid=sid)

    def resume(self, sid: int) -> None:
        """SIGCONT member ``sid``'s process group."""
        m = self.member(sid)
        self._signal(m, signal.SIGCONT)
        m.paused = False
        log.info("testing.ensemble.member_resumed", backend=self.backend, sid=sid)

    def log_tail(self, sid: int, max_lines: int = 40) -> str:
        return _tail(self.member(sid).log_path, max_lines)

    def _check_alive(self, sids: Iterable[int]) -> None:
        for sid in sids:
            m = self.members[sid]
            if m.proc is not None and m.proc.poll() is not None:
                code = m.proc.returncode
                self._terminate(sid, graceful=False)
                raise ServerStartError(f"{self.backend} member {sid} exited with code {code}; "
                                       f"log {m.log_path}:\n{self.log_tail(sid)}")

    # -- state ---------------------------------------------------------------------------------

    def four_letter(self, sid: int, cmd: str, timeout: float = 5) -> str:
        """A four-letter word sent to member ``sid``'s real client port (never subject to faults)."""
        return four_letter_word(self.host, self.member(sid).client_port, cmd, timeout)

    def srvr(self, sid: int, timeout: float = 2) -> dict[str, str]:
        """Member ``sid``'s ``srvr`` answer as a dict ("Mode", "Zxid", ...); {} if it does not serve."""
        m = self.member(sid)
        if not m.running or m.paused:
            return {}
        try:
            answer = self.four_letter(sid, "srvr", timeout)
        except OSError:
            return {}
        return dict(re.findall(r"^([A-Za-z ]+): (.*)$", answer, re.M))

    def mode(self, sid: int, timeout: float = 2) -> str | None:
        """"leader", "follower" or "observer" (what ``srvr`` says), or None if the member does not
        serve (down, paused, looking for a leader, not answering within ``timeout``)."""
        return self.srvr(sid, timeout).get("Mode") or None

    def modes(self, timeout: float = 2) -> dict[int, str | None]:
        return {sid: self.mode(sid, timeout) for sid in self.sids}

    def leader(self) -> int | None:
        """The sid whose ``srvr`` says ``Mode: leader``.  If several do (an isolated old leader that has
        not noticed yet), the one with the newest epoch (upper half of its zxid)."""
        best: tuple[int, int] | None = None
        for sid in self.sids:
            info = self.srvr(sid)
            if info.get("Mode") == "leader":
                epoch = int(info.get("Zxid", "0x0"), 16) >> 32
                if best is None or epoch > best[0]:
                    best = (epoch, sid)
        return best[1] if best else None

    def wait_serving(self, timeout: float = 30, sids: Sequence[int] | None = None) -> dict[int, str]:
        """Wait until every running, unpaused member (or just ``sids``, e.g. the majority side of a
        partition: they must include the leader) serves as leader, follower or observer, exactly one
        of them as leader.  Returns their modes; raises ServerStartError past the deadline or if a
        member process has exited."""
        deadline = time.monotonic() + timeout
        last: dict[int, str | None] = {}
        while True:
            targets = list(sids) if sids is not None else [
                s for s in self.sids if self.members[s].running and not self.members[s].paused]
            self._check_alive(targets)
            last = {s: self.mode(s, timeout=max(0.1, min(2.0, deadline - time.monotonic()))) for s in targets}
            leaders = [s for s, mode in last.items() if mode == "leader"]
            if targets and all(mode in SERVING_MODES for mode in last.values()) and len(leaders) == 1:
                return last  # type: ignore[return-value]
            if time.monotonic() >= deadline:
                tails = "\n".join(f"--- member {s} ({self.members[s].log_path}):\n{self.log_tail(s, 15)}"
                                  for s, mode in last.items() if mode not in SERVING_MODES)
                raise ServerStartError(f"{self.backend} ensemble did not serve within {timeout}s: modes {last}"
                                       + (f"\n{tails}" if tails else ""))
            time.sleep(0.1)

    def wait_member_serving(self, sid: int, timeout: float = 30) -> str:
        """Wait until member ``sid`` serves (leader, follower or observer); returns its mode."""
        deadline = time.monotonic() + timeout
        while True:
            self._check_alive([sid])
            mode = self.mode(sid, timeout=max(0.1, min(2.0, deadline - time.monotonic())))
            if mode in SERVING_MODES:
                return mode
            if time.monotonic() >= deadline:
                raise ServerStartError(f"{self.backend} member {sid} did not serve within {timeout}s "
                                       f"(mode {mode}); log:\n{self.log_tail(sid, 20)}")
            time.sleep(0.1)

    # -- faults --------------------------------------------------------------------------------

    def _check_sids(self, *sids: int) -> None:
        for sid in sids:
            self.member(sid)

    def _faults(self) -> LinkProxy:
        if self.proxy is None:
            raise RuntimeError("link faults need the link proxies: this ensemble runs with proxied=False")
        return self.proxy

    def partition(self, groups: Sequence[Iterable[int]]) -> None:
        """Cut, both ways, every link between members of different groups (``[[1, 2], [3]]``).
        Replaces earlier cuts between members; members in no group keep all their links.  Client
        links are not affected (see :meth:`cut_client`)."""
        groups = [list(g) for g in groups]
        self._check_sids(*(s for g in groups for s in g))
        self._faults().partition(groups)

    def cut(self, a: int, b: int, both: bool = False) -> None:
        """Hold ``a``'s traffic to ``b`` (and ``b``'s to ``a`` if ``both``) until :meth:`heal`."""
        self._check_sids(a, b)
        self._faults().cut(a, b, both=both)

    def delay(self, a: int, b: int, ms: float) -> None:
        """Deliver ``a``'s traffic to ``b`` ``ms`` milliseconds late (one direction; 0 removes it)."""
        self._check_sids(a, b)
        self._faults().delay(a, b, ms)

    def heal(self) -> None:
        """Remove every link fault (cuts, partitions, delays, client cuts); held bytes are delivered."""
        self._faults().heal()

    @staticmethod
    def _client_identity(client) -> tuple[tuple[str, int] | None, int | None]:
        """A kazoo client's local socket address (None between connections) and session id."""
        sock = getattr(getattr(client, "_connection", None), "_socket", None)
        address = None
        if sock is not None:
            try:
                address = tuple(sock.getsockname()[:2])
            except OSError:
                pass
        return address, getattr(client, "_session_id", None) or None

    def cut_client(self, client, sid: int) -> int:
        """Cut kazoo ``client`` off from member ``sid``: its connection there (if any) goes silent both
        ways, and its reconnects to ``sid`` are refused, until :meth:`heal_client` or :meth:`heal`.
        The client notices by its own ping timeout (2/3 of its session timeout) and fails over to
        another member of its connect string, keeping its session.  Returns connections cut (0/1)."""
        self._check_sids(sid)
        address, session_id = self._client_identity(client)
        if address is None and session_id is None:
            raise ValueError("the client has neither a connection nor a session")
        return self._faults().cut_client(sid, address=address, session_id=session_id)

    def heal_client(self, client, sid: int) -> None:
        """Undo :meth:`cut_client`; held bytes of the client's connection there are delivered."""
        self._check_sids(sid)
        address, session_id = self._client_identity(client)
        self._faults().heal_client(sid, address=address, session_id=session_id)

    def session_known(self, session_id: int) -> bool:
        """True if some running member still lists ``session_id`` in ``dump`` (the leader lists every
        live session; every member lists sessions owning ephemeral nodes) or ``cons``."""
        token = f"0x{session_id:x}"
        for sid in self.sids:
            m = self.members[sid]
            if not m.running or m.paused:
                continue
            for cmd in ("dump", "cons"):
                try:
                    if re.search(rf"{token}\b", self.four_letter(sid, cmd)):
                        return True
                except OSError:
                    pass
        return False

    def expire_session(self, client, timeout: float = 30) -> int:
        """Have the servers expire kazoo ``client``'s session; returns the expired session id.

        How: the client is cut off from every member (its connection held silent both ways, every
        reconnect refused), so no server hears from it; the leader expires the session after its
        timeout, and the close is committed to every member, which drops its ephemeral nodes.  Once no
        running member lists the session any more in ``dump`` / ``cons`` (see :meth:`session_known`),
        the cut is healed, the client reconnects, the server answers that the session is expired and
        kazoo reports ``KazooState.LOST`` (then starts a new session by itself).  Returns once the client
        has seen the expiry.  The client's own retry back-off decides how soon after the heal it
        reconnects (kazoo's default connection retry doubles its delay after each failed round).
        """
        from kazoo.client import KazooState

        address, session_id = self._client_identity(client)
        if not session_id:
            raise ValueError("the client has no session to expire")
        lost = threading.Event()

        def listener(state):
            if state == KazooState.LOST:
                lost.set()

        client.add_listener(listener)
        deadline = time.monotonic() + timeout
        try:
            for sid in self.sids:
                self._faults().cut_client(sid, address=address, session_id=session_id)
            try:
                while self.session_known(session_id):
                    if time.monotonic() >= deadline:
                        raise TimeoutError(f"session 0x{session_id:x} was not expired within {timeout}s")
                    time.sleep(0.1)
            finally:
                for sid in self.sids:
                    self._faults().heal_client(sid, address=address, session_id=session_id)
            while not lost.is_set() and getattr(client, "_session_id", None) == session_id:
                if time.monotonic() >= deadline:
                    raise TimeoutError(f"session 0x{session_id:x} expired on the servers but the client "
                                       f"did not notice within {timeout}s")
                lost.wait(0.1)
        finally:
            client.remove_listener(listener)
        log.info("testing.ensemble.session_expired", backend=self.backend, session_id=f"0x{session_id:x}")
        return session_id


# -- Apache ZooKeeper ----------------------------------------------------------------------------

_ZK_PROTOCOL_VERSIONS = (-65536, -65535)  # QuorumCnxManager's InitialMessage, single / multi address
_ZK_YES_NO_KEYS = ("forceSync",)  # system properties ZooKeeper reads as yes/no, not true/false


def zookeeper_election_rewriter(advertise: Callable[[], str]) -> FirstMessageHook:
    """A first-message hook for ZooKeeper election links that replaces the address the initiator
    advertises in its handshake (QuorumCnxManager's InitialMessage: long protocol version, long sid,
    int length, "host:port[|host:port...]") with ``advertise()``.

    Why: when a member with the smaller sid connects, the larger one closes that connection and
    connects back to the address advertised in it (ZooKeeper 3.8 ``handleConnection`` ->
    ``connectOne(sid, electionAddr)``), i.e. to the sender's real election port, past every proxy.
    Advertising the reverse proxy link sends that connection through the proxy too.
    """

    def rewrite(buf: bytes) -> bytes | None:
        if len(buf) < 8:
            return None
        (version,) = struct.unpack(">q", buf[:8])
        if version not in _ZK_PROTOCOL_VERSIONS:
            return buf  # protocol 0 (just the sid) advertises nothing
        if len(buf) < 20:
            return None
        (length,) = struct.unpack(">i", buf[16:20])
        if not 0 < length <= 4096:
            return buf
        if len(buf) < 20 + length:
            return None
        addr = advertise().encode("ascii")
        return buf[:16] + struct.pack(">i", len(addr)) + addr + buf[20 + length:]

    return rewrite


class ZooKeeperEnsemble(EnsembleHandle):
    """Apache ZooKeeper (Debian's package) members, each ``java ... QuorumPeerMain zoo.cfg``.

    Checks for Java and the jars at construction time: raises
    :class:`~coordcore.testing.servers.ZooKeeperNotFound` with an install hint when they are missing.
    """

    backend = "zookeeper"
    jvm_heap = "128m"
    jvm_flags: tuple[str, ...] = ("-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-XX:-UsePerfData")
    #: FastLeaderElection's longest wait between notification rounds (ZooKeeper's default, 60 s, would
    #: leave a member that was isolated for a while looking for a leader long after a heal)
    max_notification_interval_ms = 1000

    def __init__(self, *args, **kwargs):
        self.java = find_java()
        self.classpath = find_zookeeper_classpath()
        super().__init__(*args, **kwargs)

    def member_config(self, sid: int) -> dict[str, Any]:
        cfg = {k: v for k, v in super().member_config(sid).items() if k not in ZK_SYSTEM_PROPERTY_KEYS}
        cfg.setdefault("admin.enableServer", "false")  # else every member binds port 8080
        return cfg

    def system_properties(self, sid: int) -> dict[str, str]:
        m = self.member(sid)
        props = {"zookeeper.admin.enableServer": "false", "java.net.preferIPv4Stack": "true",
                 "log4j.configuration": (m.dir / "log4j.properties").as_uri(),
                 "zookeeper.log.dir": str(m.dir),
                 "zookeeper.fastleader.maxNotificationInterval": str(self.max_notification_interval_ms)}
        for key, prop in ZK_SYSTEM_PROPERTY_KEYS.items():
            if key in self.config:
                value = self.config[key]
                if isinstance(value, bool):  # ZooKeeper turns forceSync off only for "no"
                    value = ("yes" if value else "no") if key in _ZK_YES_NO_KEYS else str(value).lower()
                props[prop] = str(value)
        return props

    def write_member_files(self, sid: int) -> None:
        super().write_member_files(sid)
        m = self.member(sid)
        (m.dir / "log4j.properties").write_text(_LOG4J_PROPERTIES.format(log=m.log_path))

    def member_command(self, sid: int) -> list[str]:
        m = self.member(sid)
        flags = [f"-D{k}={v}" for k, v in self.system_properties(sid).items()]
        cp = os.pathsep.join([str(m.dir)] + self.classpath)
        return [self.java, f"-Xmx{self.jvm_heap}", *self.jvm_flags, *flags, "-cp", cp,
                "org.apache.zookeeper.server.quorum.QuorumPeerMain", str(m.config_path)]

    def first_message_hook(self, initiator: int, acceptor: int, kind: str) -> FirstMessageHook | None:
        if kind != "election":
            return None
        return zookeeper_election_rewriter(lambda: self.link(acceptor, initiator, "election").address)


class CoordcoreEnsemble(EnsembleHandle):
    """coordcore members, each ``python -m coordcore serve --config zoo.cfg`` (id from ``dataDir/myid``).

    coordcore's peer links are one-way (each member dials the other's port for its own traffic), so
    the proxy needs no handshake rewrite: the ``server.N`` lines of each member's zoo.cfg are enough.
    """

    backend = "coordcore"

    def member_command(self, sid: int) -> list[str]:
        return [sys.executable, "-m", "coordcore", "serve", "--config", str(self.member(sid).config_path)]

    def member_environment(self, sid: int) -> dict[str, str]:
        return {**os.environ, "PYTHONUNBUFFERED": "1"}


_FACTORIES: dict[str, type[EnsembleHandle]] = {"zookeeper": ZooKeeperEnsemble, "coordcore": CoordcoreEnsemble}


def make_ensemble(backend: str, **kwargs) -> EnsembleHandle:
    """A (not yet started) ensemble of ``backend``; keyword arguments go to the constructor
    (voters, observers, config, work_dir, host, keep_work_dir)."""
    try:
        factory = _FACTORIES[backend]
    except KeyError:
        raise ValueError(f"unknown backend {backend!r}; expected coordcore or zookeeper") from None
    return factory(**kwargs)


__all__ = ["DEFAULT_ENSEMBLE_CONFIG", "SERVING_MODES", "CoordcoreEnsemble", "EnsembleHandle", "Member", "ZooKeeperEnsemble",
           "make_ensemble", "zookeeper_election_rewriter"]
