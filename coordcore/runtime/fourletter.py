"""Four-letter words ("4lw"): ZooKeeper 3.8's admin commands, rendered as text.

Pure rendering: the runtime fills a :class:`ServerInfo` snapshot and calls :func:`render`; this module
opens no sockets and keeps no state.  The formats follow Apache ZooKeeper 3.8 line for line (names,
order, separators, number formatting) so that existing tools -- kazoo's ``server_version()``, which
parses ``envi``, monitoring scripts that parse ``mntr`` or ``srvr`` -- work unchanged.

What the runtime has to do around :func:`render`:

* read exactly 4 bytes; if they are not in :data:`FOUR_LETTER_WORDS` treat them as the length prefix
  of a normal connect request;
* ``stmk`` is followed by an 8-byte big-endian trace mask that the runtime reads and stores in
  ``ServerInfo.trace_mask`` before rendering;
* :func:`side_effect` names the stats reset ``srst``/``crst`` ask for (when whitelisted);
* write the whole reply at once, then close the connection (kazoo reads it with a single ``recv``).

Ensemble members: ``ServerInfo.peer_state`` is set (None on a standalone server), and with it mntr
prints what ZooKeeper 3.8's QuorumZooKeeperServer adds -- ``zk_peer_state`` ("leading - broadcast",
"following - broadcast", "observing - broadcast"; "<state> - <zab phase>[ - <sync mode>]" in general)
and ``zk_quorum_size`` (the number of voters); an observer adds ``zk_observer_master_id``; a leader
(``ServerInfo.leader_stats``) adds ``zk_learners`` (every connected learner, observers included),
``zk_synced_followers`` (voters past the start of their sync), ``zk_synced_non_voting_followers``,
``zk_synced_observers``, ``zk_pending_syncs`` and its proposal sizes -- each at the place ZooKeeper's
metrics map puts it.  ``conf`` then ends with QuorumZooKeeperServer's quorum section (initLimit ...
``membership:``, one ``server.N=`` line per member, ``version=0``, without a final newline).

Watches: like ZooKeeper, ``wchs``/``wchc``/``wchp`` describe its *data* watch table (getData/exists,
and the persistent and persistent-recursive watches it files there too), while ``mntr``'s
``zk_watch_count`` counts its data and child tables together (``ServerInfo.watch_count``).
"""
from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass, field

from coordcore import ZK_COMPAT_VERSION, __version__
from coordcore.config import DEFAULT_4LW, KNOWN_4LW, ServerConfig

#: Every four-letter word ZooKeeper 3.8 knows; ``4lw.commands.whitelist=*`` enables all of them.
FOUR_LETTER_WORDS = KNOWN_4LW

#: The 4lw that coordcore's default whitelist enables (ZooKeeper's own default is only ``srvr``).
DEFAULT_WHITELIST = DEFAULT_4LW

NOT_SERVING = "This ZooKeeper instance is not currently serving requests\n"

#: ZooKeeper's default trace mask, as ``gtmk`` prints it.
DEFAULT_TRACE_MASK = 306

#: The "lop" (last operation) abbreviations ZooKeeper's cons shows, by opcode.
LAST_OP_NAMES = {
    -11: "CLOS", -10: "SESS", 1: "CREA", 2: "DELE", 3: "EXIS", 4: "GETD", 5: "SETD", 6: "GETA", 7: "SETA",
    8: "GETC", 9: "SYNC", 11: "PING", 12: "GETC", 13: "CHEC", 14: "MULT", 15: "CREA", 16: "RECO",
    17: "CHKW", 18: "REMW", 19: "CREA", 20: "DELE", 21: "CREA", 22: "MLTR", 101: "SETW", 103: "GETE",
    104: "GETACN", 105: "SETW", 106: "ADDW", 107: "HOMI",
}

# Commands that answer even when the server is not serving (ZooKeeper's commands that do not check).
_ALWAYS_ANSWER = frozenset({"ruok", "envi", "gtmk", "stmk", "isro", "hash"})


def version_string() -> str:
    """The version coordcore reports (``Zookeeper version:``, ``zk_version``, ``zookeeper.version``).

    It starts with the ZooKeeper protocol level we implement, so kazoo's ``server_version()`` (which
    takes the leading dotted digits of ``zookeeper.version``) reads e.g. (3, 8, 0); our own name and
    version follow, then ZooKeeper's ``, built on <date>`` tail (the package's install date).
    """
    try:
        built = time.gmtime(os.stat(__file__).st_mtime)
    except OSError:  # pragma: no cover
        built = time.gmtime(0)
    return f"{ZK_COMPAT_VERSION}-coordcore-{__version__}, built on {time.strftime('%Y-%m-%d %H:%M UTC', built)}"


@dataclass
class ConnInfo:
    """One client connection, as cons/stat/dump show it."""
    remote_ip: str
    remote_port: int
    interest_ops: int = 1            # ZooKeeper prints [1] for a reading connection, [0] for one that is not
    queued: int = 0                  # requests received and not yet answered
    recved: int = 0                  # packets received on this connection
    sent: int = 0                    # packets sent on this connection
    session_id: int = 0              # 0 = no session established yet (cons then stops after sent=)
    last_op: str = "NA"              # see LAST_OP_NAMES
    established_ms: int = 0          # wall clock (ms since the epoch) when the session was established
    timeout_ms: int = 0              # negotiated session timeout
    last_cxid: int = -1              # omitted when < 0, as ZooKeeper does
    last_zxid: int = -1              # printed as 64-bit hex (-1 -> 0xffffffffffffffff, as ZooKeeper)
    last_response_ms: int = 0        # ZooKeeper prints its monotonic ms clock here
    last_latency_ms: int = 0
    min_latency_ms: int = 0
    avg_latency_ms: int = 0
    max_latency_ms: int = 0
    expires_at_ms: int | None = None  # wall clock ms when the connection times out (dump); None = unknown


@dataclass
class SessionInfo:
    """One session, for dump's SessionTracker and ephemeral sections."""
    session_id: int
    timeout_ms: int = 0
    expires_at_ms: int = 0           # wall clock ms of the session's expiry deadline
    ephemerals: tuple[str, ...] = ()


@dataclass
class LeaderStats:
    """What a leader's mntr adds (ZooKeeper 3.8's LeaderZooKeeperServer gauges)."""
    learners: int = 0                     # zk_learners: learners connected (followers and observers)
    synced_followers: int = 0             # zk_synced_followers: voters being synced or in sync
    synced_non_voting_followers: int = 0  # zk_synced_non_voting_followers (only with reconfig: 0)
    synced_observers: int = 0             # zk_synced_observers
    pending_syncs: int = 0                # zk_pending_syncs: learners' syncs waiting for a commit
    uptime_ms: int | None = None          # zk_leader_uptime (since broadcast began); None: not printed


@dataclass
class ServerInfo:
    """A snapshot of everything the four-letter words print; the runtime fills it."""
    config: ServerConfig = field(default_factory=ServerConfig)
    version: str = field(default_factory=version_string)
    mode: str = "standalone"         # standalone | leader | follower | observer | read-only
    serving: bool = True             # False during startup/election: most commands then print NOT_SERVING
    read_only: bool = False
    server_id: int = 0
    client_port: int | None = None   # actual listening port (None: config.client_port)
    last_zxid: int = 0
    node_count: int = 0
    latency_min_ms: int = 0
    latency_avg_ms: float = 0.0
    latency_max_ms: int = 0
    packets_received: int = 0
    packets_sent: int = 0
    outstanding: int = 0
    connections: list[ConnInfo] = field(default_factory=list)
    # data watches (getData/exists): path -> watching session ids, in registration order
    data_watches: dict[str, list[int]] = field(default_factory=dict)
    watch_count: int | None = None   # all watches (data + child) for mntr; None = count data_watches
    sessions: list[SessionInfo] = field(default_factory=list)
    ephemerals_count: int | None = None  # None = count sessions' ephemerals
    approximate_data_size: int = 0   # sum of path lengths + data lengths, as ZooKeeper counts it
    open_fds: int | None = None
    max_fds: int | None = None
    uptime_ms: int = 0
    now_ms: int = 0                  # wall clock for dump's dates (0 = time.time())
    snap_dir: str | None = None      # where snapshots live (None: config.data_dir)
    log_dir: str | None = None       # where the txn log lives (None: config.log_dir)
    data_dir_size: int = 0
    data_log_size: int = 0
    proposal_sizes: tuple[int, int, int] | None = None  # leader only: last/min/max (-1 each: none yet)
    # ensemble members only (None on a standalone server; see the module docstring)
    peer_state: str | None = None    # mntr's zk_peer_state, e.g. "following - broadcast"
    quorum_size: int | None = None   # mntr's zk_quorum_size: the number of voters
    observer_master_id: int | None = None  # observers: the sid they learn from
    leader_stats: LeaderStats | None = None  # leaders only
    trace_mask: int = DEFAULT_TRACE_MASK
    environment: list[tuple[str, str]] | None = None  # None: collect_environment()
    extra_metrics: dict[str, int | float | str] = field(default_factory=dict)  # appended to mntr


def render(cmd: str, info: ServerInfo, whitelist: frozenset) -> str:
    """The reply text for four-letter word ``cmd`` (the runtime encodes it as UTF-8 and closes).

    Raises ValueError for a word that is not a four-letter word (the runtime must not call us then).
    """
    if cmd not in FOUR_LETTER_WORDS:
        raise ValueError(f"not a four-letter word: {cmd!r}")
    if cmd not in whitelist:
        return f"{cmd} is not executed because it is not in the whitelist.\n"
    if not info.serving and cmd not in _ALWAYS_ANSWER:
        return NOT_SERVING
    return _RENDERERS[cmd](info)


def side_effect(cmd: str) -> str | None:
    """What a whitelisted command asks the runtime to do besides replying: ``"reset_server_stats"``
    (srst: latency min/avg/max and packet counters), ``"reset_connection_stats"`` (crst: every
    connection's counters and latencies), ``"set_trace_mask"`` (stmk), or None."""
    return {"srst": "reset_server_stats", "crst": "reset_connection_stats", "stmk": "set_trace_mask"}.get(cmd)


# -- helpers -------------------------------------------------------------------------------------

def java_double(x: float) -> str:
    """Format a float as Java's Double.toString does for the values ZooKeeper prints (``0.0``,
    ``1.9231``, ``1.0E7``)."""
    x = float(x)
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    if x == 0:
        return "0.0"
    if 1e-3 <= abs(x) < 1e7:
        s = repr(x)
        if "e" in s or "E" in s:  # pragma: no cover - repr never uses exponents in this range
            s = f"{x:.17f}".rstrip("0")
        return s if "." in s else s + ".0"
    mantissa, exp = f"{x:.17e}".split("e")
    m = repr(float(mantissa))
    return f"{m}E{int(exp)}"


def _avg(x: float) -> str:
    # ZooKeeper rounds averages to 4 decimals before printing them as doubles.
    return java_double(round(float(x), 4))


def _hex(v: int) -> str:
    """Java's Long.toHexString: two's complement for negative values."""
    return format(v & 0xFFFFFFFFFFFFFFFF, "x")


def _num(v) -> str:
    return java_double(v) if isinstance(v, float) else str(v)


def _java_date(ms: int) -> str:
    return time.strftime("%a %b %d %H:%M:%S UTC %Y", time.gmtime(ms / 1000.0))


def _addr(c: ConnInfo) -> str:
    return f"/{c.remote_ip}:{c.remote_port}"


def _conn_line(c: ConnInfo, brief: bool) -> str:
    ops = "0" if c.interest_ops == 0 else format(c.interest_ops, "x")
    s = f" {_addr(c)}[{ops}](queued={c.queued},recved={c.recved},sent={c.sent}"
    if not brief and c.session_id != 0:
        s += (f",sid=0x{_hex(c.session_id)},lop={c.last_op},est={c.established_ms},to={c.timeout_ms}")
        if c.last_cxid >= 0:
            s += f",lcxid=0x{_hex(c.last_cxid)}"
        s += (f",lzxid=0x{_hex(c.last_zxid)},lresp={c.last_response_ms},llat={c.last_latency_ms}"
              f",minlat={c.min_latency_ms},avglat={c.avg_latency_ms},maxlat={c.max_latency_ms}")
    return s + ")\n"


def _server_stats(info: ServerInfo) -> str:
    # ZooKeeper's ServerStats.toString(), minus the version line.
    s = (f"Latency min/avg/max: {info.latency_min_ms}/{_avg(info.latency_avg_ms)}/{info.latency_max_ms}\n"
         f"Received: {info.packets_received}\n"
         f"Sent: {info.packets_sent}\n"
         f"Connections: {len(info.connections)}\n"
         f"Outstanding: {info.outstanding}\n"
         f"Zxid: 0x{_hex(info.last_zxid)}\n"
         f"Mode: {info.mode}\n"
         f"Node count: {info.node_count}\n")
    if info.proposal_sizes is not None:
        last, lo, hi = info.proposal_sizes
        s += f"Proposal sizes last/min/max: {last}/{lo}/{hi}\n"
    return s


def _version_lines(info: ServerInfo) -> str:
    s = f"Zookeeper version: {info.version}\n"
    if info.read_only:
        s += "READ-ONLY mode; serving only read-only clients\n"
    return s


def _ephemerals_count(info: ServerInfo) -> int:
    if info.ephemerals_count is not None:
        return info.ephemerals_count
    return sum(len(s.ephemerals) for s in info.sessions)


def _watch_total(info: ServerInfo) -> int:
    return sum(len(v) for v in info.data_watches.values())


# -- the commands --------------------------------------------------------------------------------

def _ruok(info):
    return "imok"


def _isro(info):
    if not info.serving:
        return "null"
    return "ro" if info.read_only else "rw"


def _srvr(info):
    return _version_lines(info) + _server_stats(info)


def _stat(info):
    clients = "".join(_conn_line(c, brief=True) for c in info.connections)
    return _version_lines(info) + "Clients:\n" + clients + "\n" + _server_stats(info)


def _cons(info):
    return "".join(_conn_line(c, brief=False) for c in info.connections) + "\n"


def _conf(info):
    cfg = info.config
    port = info.client_port if info.client_port is not None else cfg.client_port
    return (f"clientPort={port}\n"
            f"secureClientPort=-1\n"
            f"dataDir={info.snap_dir or cfg.data_dir}\n"
            f"dataDirSize={info.data_dir_size}\n"
            f"dataLogDir={info.log_dir or cfg.log_dir}\n"
            f"dataLogSize={info.data_log_size}\n"
            f"tickTime={cfg.tick_ms}\n"
            f"maxClientCnxns={cfg.max_client_cnxns}\n"
            f"minSessionTimeout={cfg.min_session_timeout_ms}\n"
            f"maxSessionTimeout={cfg.max_session_timeout_ms}\n"
            f"clientPortListenBacklog=-1\n"
            f"serverId={info.server_id}\n") + (_quorum_conf(info) if info.peer_state is not None else "")


def _quorum_conf(info) -> str:
    # QuorumZooKeeperServer.dumpConf: the quorum keys, then QuorumMaj.toString() (static config:
    # version 0, and no newline after it).
    cfg = info.config
    me = cfg.me
    lines = [f"initLimit={cfg.init_limit}", f"syncLimit={cfg.sync_limit}", f"electionAlg={cfg.election_alg}",
             f"electionPort={me.election_port if me else -1}", f"quorumPort={me.quorum_port if me else -1}",
             f"peerType={1 if cfg.peer_type == 'observer' else 0}", "membership: "]
    by_sid = {p.sid: p for p in cfg.servers}
    for sid in java_hashmap_order(by_sid):
        lines.append(f"server.{sid}={server_line(by_sid[sid])}")
    return "\n".join(lines) + "\nversion=0"


def server_line(p) -> str:
    """A member as ZooKeeper's QuorumServer.toString() prints it:
    ``host:quorumPort:electionPort:participant|observer[;clientHost:clientPort]`` (the client part only
    when the server line has one; a bare client port is printed with host 0.0.0.0)."""
    text = f"{_delimited(p.host)}:{p.quorum_port}:{p.election_port}:{'observer' if p.observer else 'participant'}"
    if p.client_port is not None:
        text += f";{_delimited(p.client_host or '0.0.0.0')}:{p.client_port}"
    return text


def _delimited(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def java_hashmap_order(sids) -> list[int]:
    """The order a java.util.HashMap<Long, _> holding ``sids`` iterates them in (ZooKeeper lists the
    members from one): by bucket, i.e. ascending for sids below the table size (16 for up to 12
    members).  Sids sharing a bucket (only sids >= the table size can) are put in ascending order,
    where Java keeps the order it read them from the config in."""
    sids = sorted(sids)
    capacity = 16
    while len(sids) > capacity * 3 // 4:
        capacity *= 2

    def bucket(sid: int) -> int:
        h = (sid ^ (sid >> 32)) & 0xFFFFFFFF  # Long.hashCode
        h ^= h >> 16                          # HashMap.hash
        return h & (capacity - 1)

    return sorted(sids, key=bucket)


def _mntr(info):
    fds = (info.open_fds, info.max_fds)
    if fds == (None, None):
        fds = fd_counts()
    watch_count = info.watch_count if info.watch_count is not None else _watch_total(info)
    lead = info.leader_stats
    sizes = info.proposal_sizes if info.proposal_sizes is not None else (-1, -1, -1)
    # Key order as ZooKeeper 3.8 prints them (its metrics map order); tools read them by key.
    rows: list[tuple[str, object]] = [
        ("zk_version", info.version),
        ("zk_server_state", info.mode),
    ]
    if info.peer_state is not None:
        rows.append(("zk_peer_state", info.peer_state))
    if info.observer_master_id is not None:
        rows.append(("zk_observer_master_id", info.observer_master_id))
    rows += [
        ("zk_ephemerals_count", _ephemerals_count(info)),
        ("zk_num_alive_connections", len(info.connections)),
        ("zk_avg_latency", round(float(info.latency_avg_ms), 4)),
    ]
    if lead is not None:
        rows.append(("zk_min_proposal_size", sizes[1]))
    rows += [
        ("zk_outstanding_requests", info.outstanding),
        ("zk_znode_count", info.node_count),
        ("zk_global_sessions", len(info.sessions)),
        ("zk_packets_sent", info.packets_sent),
        ("zk_packets_received", info.packets_received),
    ]
    if lead is not None:
        rows += [("zk_max_proposal_size", sizes[2]), ("zk_synced_followers", lead.synced_followers)]
    rows.append(("zk_watch_count", watch_count))
    if lead is not None:
        rows += [("zk_synced_non_voting_followers", lead.synced_non_voting_followers),
                 ("zk_synced_observers", lead.synced_observers)]
    rows.append(("zk_min_latency", info.latency_min_ms))
    if fds[1] is not None:
        rows.append(("zk_max_file_descriptor_count", fds[1]))
    rows.append(("zk_approximate_data_size", info.approximate_data_size))
    if fds[0] is not None:
        rows.append(("zk_open_file_descriptor_count", fds[0]))
    if lead is not None:
        rows += [("zk_last_proposal_size", sizes[0]), ("zk_pending_syncs", lead.pending_syncs)]
        if lead.uptime_ms is not None:
            rows.append(("zk_leader_uptime", lead.uptime_ms))
    rows += [
        ("zk_local_sessions", 0),
        ("zk_uptime", info.uptime_ms),
        ("zk_max_latency", info.latency_max_ms),
    ]
    if lead is not None:
        rows.append(("zk_learners", lead.learners))
    if info.quorum_size is not None:
        rows.append(("zk_quorum_size", info.quorum_size))
    rows += list(info.extra_metrics.items())
    return "".join(f"{k}\t{_num(v)}\n" for k, v in rows)


def _wchs(info):
    sessions = {sid for sids in info.data_watches.values() for sid in sids}
    return (f"{len(sessions)} connections watching {len(info.data_watches)} paths\n"
            f"Total watches:{_watch_total(info)}\n")


def _wchc(info):
    by_session: dict[int, list[str]] = {}
    for path, sids in info.data_watches.items():
        for sid in sids:
            by_session.setdefault(sid, []).append(path)
    out = []
    for sid, paths in by_session.items():
        out.append(f"0x{_hex(sid)}\n")
        out.extend(f"\t{p}\n" for p in paths)
    return "".join(out) + "\n"


def _wchp(info):
    out = []
    for path, sids in info.data_watches.items():
        out.append(f"{path}\n")
        out.extend(f"\t0x{_hex(sid)}\n" for sid in sids)
    return "".join(out) + "\n"


def _expiry_dump(label: str, items: list[tuple[int, str]]) -> str:
    # ZooKeeper's ExpiryQueue.dump: buckets by expiry time, oldest first.
    buckets: dict[int, list[str]] = {}
    for when, text in items:
        buckets.setdefault(when, []).append(text)
    out = [f"{label} Sets ({len(buckets)})/({len(items)}):\n"]
    for when in sorted(buckets):
        out.append(f"{len(buckets[when])} expire at {_java_date(when)}:\n")
        out.extend(f"\t{t}\n" for t in buckets[when])
    return "".join(out)


def _dump(info):
    now = info.now_ms or int(time.time() * 1000)
    out = ["SessionTracker dump:\n",
           _expiry_dump("Session", [(s.expires_at_ms, f"0x{_hex(s.session_id)}") for s in info.sessions])]
    with_eph = [s for s in info.sessions if s.ephemerals]
    out.append("ephemeral nodes dump:\n")
    out.append(f"Sessions with Ephemerals ({len(with_eph)}):\n")
    for s in with_eph:
        out.append(f"0x{_hex(s.session_id)}:\n")
        out.extend(f"\t{p}\n" for p in s.ephemerals)
    out.append("Connections dump:\n")
    out.append(_expiry_dump("Connections", [
        (c.expires_at_ms if c.expires_at_ms is not None else now,
         f"ip: {_addr(c)} sessionId: 0x{_hex(c.session_id)}") for c in info.connections]))
    return "".join(out)


def _envi(info):
    env = info.environment if info.environment is not None else collect_environment()
    lines = [("zookeeper.version", info.version)] + [kv for kv in env if kv[0] != "zookeeper.version"]
    return "Environment:\n" + "".join(f"{k}={v}\n" for k, v in lines)


def _dirs(info):
    return f"datadir_size: {info.data_dir_size}\nlogdir_size: {info.data_log_size}\n"


def _srst(info):
    return "Server stats reset.\n"


def _crst(info):
    return "Connection stats reset.\n"


def _gtmk(info):
    return str(info.trace_mask)


def _hash(info):
    # ZooKeeper prints its recent tree digests; coordcore keeps no digests, which ZooKeeper answers
    # with an empty reply (digest disabled / no history).
    return ""


_RENDERERS = {
    "ruok": _ruok, "isro": _isro, "srvr": _srvr, "stat": _stat, "cons": _cons, "conf": _conf,
    "mntr": _mntr, "wchs": _wchs, "wchc": _wchc, "wchp": _wchp, "dump": _dump, "envi": _envi,
    "dirs": _dirs, "srst": _srst, "crst": _crst, "gtmk": _gtmk, "stmk": _gtmk, "hash": _hash,
}
assert set(_RENDERERS) == set(FOUR_LETTER_WORDS)


# -- facts about this process (cheap; called when a 4lw needs them) -------------------------------

def fd_counts() -> tuple[int | None, int | None]:
    """(open, max) file descriptors of this process; None where the platform does not tell."""
    try:
        open_fds = len(os.listdir("/proc/self/fd"))
    except OSError:
        open_fds = None
    try:
        import resource
        max_fds = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if max_fds == resource.RLIM_INFINITY:
            max_fds = None
    except (ImportError, OSError, ValueError):
        max_fds = None
    return open_fds, max_fds


def collect_environment() -> list[tuple[str, str]]:
    """envi's key=value lines after zookeeper.version: ZooKeeper's keys where they mean the same for a
    Python server (host, OS, user), python.* in place of java.*."""
    import getpass
    import platform
    import tempfile

    try:
        user = getpass.getuser()
    except Exception:  # no user name for this uid
        user = "?"
    env = [
        ("coordcore.version", __version__),
        ("host.name", platform.node() or "localhost"),
        ("python.version", platform.python_version()),
        ("python.implementation", platform.python_implementation()),
        ("python.executable", sys.executable),
        ("os.tmpdir", tempfile.gettempdir()),
        ("os.name", platform.system()),
        ("os.arch", platform.machine()),
        ("os.version", platform.release()),
        ("user.name", user),
        ("user.home", os.path.expanduser("~")),
        ("user.dir", os.getcwd()),
        ("process.pid", str(os.getpid())),
    ]
    rss = _rss_mb()
    if rss is not None:
        env.append(("process.memory.rss", f"{rss}MB"))
    return env


def _rss_mb() -> int | None:
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") // (1024 * 1024)
    except (OSError, ValueError, IndexError):
        return None
