"""Server configuration: the ServerConfig value and the zoo.cfg parser.

Only stdlib.  The parser accepts ZooKeeper's zoo.cfg syntax (key=value lines,
'#' comments).  Unknown keys are reported back as warnings (the caller logs
them); invalid values raise ConfigError with a message naming the key.

Ensemble keys (server.N, initLimit, syncLimit, electionAlg, peerType, standaloneEnabled, ...) follow
ZooKeeper 3.8's QuorumPeerConfig: one server line with standaloneEnabled=true still runs standalone,
initLimit/syncLimit must be set in an ensemble, electionAlg must be 3, and the member's own server line
wins over peerType.  ``load_config`` reads dataDir/myid for an ensemble member; ``parse_zoo_cfg`` never
reads files (pass ``myid=``).  ``apply_jvm_flags`` layers zkServer.sh's SERVER_JVMFLAGS (-Dkey=value)
over a parsed config.
"""
from __future__ import annotations

import os as _os
import re as _re
import shlex as _shlex
from dataclasses import dataclass, replace

# As ZooKeeper (3.5.3 on): without 4lw.commands.whitelist only srvr is answered; the others can reveal
# clients, sessions and the environment, or cost the server a walk over every watch.
DEFAULT_4LW = frozenset({"srvr"})


class ConfigError(ValueError):
    """A configuration value is missing or invalid; the message names the key."""


@dataclass(frozen=True, slots=True)
class PeerSpec:
    """One zoo.cfg server line:
    ``server.N=host:quorumPort:electionPort[:participant|:observer][;[clientHost:]clientPort]``."""
    sid: int
    host: str
    quorum_port: int
    election_port: int
    observer: bool = False          # ":observer" in the server line
    client_host: str | None = None  # from ";[clientHost:]clientPort" if given
    client_port: int | None = None


@dataclass(frozen=True, slots=True)
class ServerConfig:
    tick_ms: int = 2000                       # tickTime
    data_dir: str = "./data"                  # dataDir
    data_log_dir: str | None = None           # dataLogDir (defaults to data_dir)
    client_port: int = 2181                   # clientPort (0 = pick a free port)
    client_port_address: str = "127.0.0.1"    # clientPortAddress
    max_client_cnxns: int = 60                # maxClientCnxns (per client address, 0 = unlimited)
    session_timeout_ms_min: int | None = None  # minSessionTimeout (default 2 x tick)
    session_timeout_ms_max: int | None = None  # maxSessionTimeout (default 20 x tick)
    snap_count: int = 100000                  # snapCount
    four_letter_whitelist: frozenset = DEFAULT_4LW  # 4lw.commands.whitelist ("*" = all)
    extended_types_enabled: bool = False      # extendedTypesEnabled (TTL nodes)
    jute_maxbuffer: int = 0xFFFFF             # jute.maxbuffer
    super_digest: str | None = None           # DigestAuthenticationProvider.superDigest (user:base64sha1)
    container_check_interval_ms: int = 60000  # znode.container.checkIntervalMs
    server_id: int = 0                        # myid (standalone: 0)
    force_sync: bool = True                   # forceSync (fsync the txn log before acknowledging)
    enforce_quota: bool = False               # enforceQuota (a write past a hard quota limit fails)
    reconfig_enabled: bool = False            # reconfigEnabled (standalone: reconfig is UNIMPLEMENTED)
    # ensemble (ZooKeeper 3.8 QuorumPeerConfig; defaults as ZooKeeper's)
    servers: tuple[PeerSpec, ...] = ()        # server.N lines, sorted by sid; () = standalone
    init_limit: int = 10                      # initLimit (ticks)
    sync_limit: int = 5                       # syncLimit (ticks)
    election_alg: int = 3                     # electionAlg: only 3 accepted
    peer_type: str = "participant"            # peerType: participant | observer
    election_port_bind_retry: int = 3         # electionPortBindRetry (0 = retry forever, as ZooKeeper)
    quorum_listen_on_all_ips: bool = False    # quorumListenOnAllIPs
    read_only: bool = False                   # readonlymode.enabled (also zookeeper.readonlymode.enabled)
    standalone_enabled: bool = True           # standaloneEnabled

    @property
    def ensemble(self) -> bool:
        """True when this config runs as an ensemble member: ZooKeeper's QuorumPeerConfig.isDistributed()
        (server lines, and more than one voter or standaloneEnabled=false)."""
        if not self.servers:
            return False
        return not self.standalone_enabled or sum(1 for p in self.servers if not p.observer) > 1

    @property
    def me(self) -> PeerSpec | None:
        """The server line whose sid is ``server_id`` (None when there is none)."""
        for p in self.servers:
            if p.sid == self.server_id:
                return p
        return None

    @property
    def min_session_timeout_ms(self) -> int:
        return self.session_timeout_ms_min if self.session_timeout_ms_min is not None else 2 * self.tick_ms

    @property
    def max_session_timeout_ms(self) -> int:
        return self.session_timeout_ms_max if self.session_timeout_ms_max is not None else 20 * self.tick_ms

    @property
    def log_dir(self) -> str:
        return self.data_log_dir or self.data_dir


# -- zoo.cfg parser ---------------------------------------------------------------------------


#: Every four-letter word Apache ZooKeeper 3.8 knows (``4lw.commands.whitelist=*`` enables these).
KNOWN_4LW = frozenset(
    "ruok stat srvr conf cons crst dump envi gtmk stmk srst wchs wchc wchp mntr isro dirs hash".split())

#: Keys ZooKeeper accepts that mean nothing to a standalone coordcore: accepted with an "ignored" warning.
_IGNORED_KEYS = frozenset("""
    electionPort syncEnabled
    dynamicConfigFile sslQuorum portUnification secureClientPort
    secureClientPortAddress observerMasterPort clientPortListenBacklog maxCnxns localSessionsEnabled
    localSessionsUpgradingEnabled multiAddress.enabled multiAddress.reachabilityCheckTimeoutMs
    multiAddress.reachabilityCheckEnabled oraclePath connectToLearnerMasterLimit
    autopurge.snapRetainCount autopurge.purgeInterval preAllocSize globalOutstandingLimit commitLogCount
    snapSizeLimitInKb txnLogSizeLimitInKb skipACL serverCnxnFactory fsync.warningthresholdms
    audit.enable digest.enabled znode.container.maxPerMinute sslQuorumReloadCertFiles
    client.portUnification learner.closeSocketAsync leader.closeSocketAsync
    maxResponseCacheSize maxGetChildrenResponseCacheSize flushDelay maxWriteQueuePollTime maxBatchSize
    requestThrottleLimit requestThrottleStallTime requestThrottleDropStale
    """.split())
#: Prefixes of ignored key families (admin.serverPort=..., ssl.keyStore.location=...).
_IGNORED_PREFIXES = ("admin.", "ssl.", "quorum.", "metricsProvider.",
                     "authProvider.", "kerberos.", "jute.maxbuffer.extrasize", "netty.", "learner.",
                     "zookeeper.ssl", "sslQuorum.", "audit.", "snapshot.", "zookeeper.admin.")

#: Hierarchical quorums (group.N=1:2:3, weight.N=2): coordcore counts plain majorities only.
_HIERARCHICAL_PREFIXES = ("group.", "weight.")

_INT_RE = _re.compile(r"[+-]?\d+")
_JAVA_INT_MAX = 2**31 - 1
_JAVA_LONG_MAX = 2**63 - 1      # ZooKeeper's server ids are Java longs


def _parse_int(key: str, value: str, *, minimum: int | None = None, hex_ok: bool = False) -> int:
    v = value.strip()
    if hex_ok and _re.fullmatch(r"0[xX][0-9a-fA-F]+", v):
        n = int(v, 16)
    elif _INT_RE.fullmatch(v):
        n = int(v)
    else:
        raise ConfigError(f"{key}={value!r}: not an integer")
    if n > _JAVA_INT_MAX:
        raise ConfigError(f"{key}={value!r}: too large (at most {_JAVA_INT_MAX})")
    if minimum is not None and n < minimum:
        raise ConfigError(f"{key}={value!r}: must be at least {minimum}")
    return n


def _parse_bool(key: str, value: str, true=("true", "yes"), false=("false", "no")) -> bool:
    v = value.strip().lower()
    if v in true:
        return True
    if v in false:
        return False
    raise ConfigError(f"{key}={value!r}: expected one of {', '.join(true + false)}")


def _parse_whitelist(key: str, value: str, warnings: list[str]) -> frozenset:
    words = [w for w in _re.split(r"[,\s]+", value.strip()) if w]
    if "*" in words:
        return KNOWN_4LW
    chosen = set()
    for w in words:
        if w in KNOWN_4LW:
            chosen.add(w)
        else:
            warnings.append(f"{key}: unknown four-letter word {w!r} ignored")
    # Apache ZooKeeper always enables srvr, whatever the whitelist says.
    chosen.add("srvr")
    return frozenset(chosen)


def _properties(text: str) -> list[tuple[int, str, str]]:
    """Java-properties-style lines -> (line number, key, value). Supports '=', ':' or whitespace as the
    separator, '#'/'!' comments and backslash line continuations, as java.util.Properties (which
    ZooKeeper uses) does for the cases zoo.cfg files contain."""
    out = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        lineno = i + 1
        line = lines[i].lstrip()
        i += 1
        if not line or line[0] in "#!":
            continue
        while line.endswith("\\") and not line.endswith("\\\\") and i < len(lines):
            line = line[:-1] + lines[i].lstrip()
            i += 1
        m = _re.match(r"([^=:\s]+)\s*[=:]?\s*(.*)$", line)
        if m is None:  # pragma: no cover - the pattern matches any non-empty line
            continue
        out.append((lineno, m.group(1), m.group(2).strip()))
    return out


def parse_zoo_cfg(text: str, base: ServerConfig | None = None, *,
                  myid: int | None = None) -> tuple[ServerConfig, list[str]]:
    """Parse zoo.cfg text into a ServerConfig (over ``base``, default ServerConfig()) and warnings.

    Warnings: unknown keys, keys ZooKeeper has that a standalone coordcore ignores, repeated keys,
    corrected values.  Invalid values raise ConfigError naming the key and the value.  Relative
    dataDir/dataLogDir are taken relative to the current directory and made absolute, as ZooKeeper
    does.  ``myid`` lives in dataDir/myid, not in zoo.cfg; a ``myid`` key is ignored here.

    Ensemble: server.N lines in ``text`` replace base's servers (no server lines keep them).  A single
    server line with standaloneEnabled=true runs standalone, as ZooKeeper does: the line is dropped with
    a warning.  This function reads no file: for an ensemble, pass this member's id as ``myid`` (it
    becomes ``server_id``, must name a server line, and decides peerType and the client port); without
    it ``server_id`` stays base's.  ``myid`` is not used by a standalone config.
    """
    cfg = base if base is not None else ServerConfig()
    if myid is not None and (isinstance(myid, bool) or not isinstance(myid, int) or myid < 0):
        raise ConfigError(f"myid={myid!r}: must be a non-negative integer")
    # Some warnings are only known once every line is read (is this an ensemble? which server is this
    # one?); each line leaves a (lineno,) marker in ``warnings`` so that those land in line order.
    warnings: list = []
    values: dict[str, object] = {}
    seen: dict[str, int] = {}
    lines: dict[str, tuple[int, str]] = {}      # key as normalised -> (line, key as written)
    peers: dict[int, tuple[int, str, PeerSpec]] = {}   # sid -> (line, key as written, spec)
    for lineno, raw_key, value in _properties(text):
        key = raw_key
        # ZooKeeper turns unknown zoo.cfg keys into "zookeeper."-prefixed system properties, so the same
        # setting may be written either way (zookeeper.extendedTypesEnabled, zookeeper.forceSync, ...).
        if key.startswith("zookeeper.") and key[len("zookeeper."):] in _PREFIXABLE:
            key = key[len("zookeeper."):]
        if key in seen:
            warnings.append(f"line {lineno}: {raw_key} repeated (line {seen[key]}); the last value wins")
        seen[key] = lineno
        lines[key] = (lineno, raw_key)
        setter = _SETTERS.get(key) or _ENSEMBLE_SETTERS.get(key)
        if setter is not None:
            field_name, parse = setter
            values[field_name] = parse(raw_key, value, warnings)
        elif key.startswith("server."):
            spec = _parse_server_line(raw_key, value)
            other = peers.get(spec.sid)
            if other is not None and other[1] != raw_key:
                raise ConfigError(f"{raw_key} and {other[1]} (line {other[0]}) both name server {spec.sid}")
            peers[spec.sid] = (lineno, raw_key, spec)   # same key twice: warned above, the last one wins
        elif key == "myid":
            warnings.append(f"line {lineno}: myid is read from dataDir/myid, not zoo.cfg; ignored")
        elif key.startswith(_HIERARCHICAL_PREFIXES):
            warnings.append(f"line {lineno}: {raw_key}: hierarchical quorums (group.N/weight.N) are not "
                            f"supported by coordcore (it counts a plain majority of voters); ignored")
        elif key in _IGNORED_KEYS or key.startswith(_IGNORED_PREFIXES):
            warnings.append(f"line {lineno}: {raw_key} is not used by a standalone coordcore server; ignored")
        else:
            warnings.append(f"line {lineno}: unknown key {raw_key!r}; ignored")
        warnings.append((lineno,))
    cfg = replace(cfg, **values)
    _check_session_timeouts(cfg)

    if peers:
        _check_distinct_endpoints([(raw_key, spec) for _, raw_key, spec in peers.values()])
        specs = sorted((spec for _, _, spec in peers.values()), key=lambda p: p.sid)
        cfg = replace(cfg, servers=tuple(specs))
    late: list[tuple[int | None, str]] = []     # (line it is about, warning)
    if peers or "standaloneEnabled" in seen:
        cfg = _check_topology(cfg, late, peers, lines)
    if peers and cfg.ensemble:
        first = min(lineno for lineno, _, _ in peers.values())
        for key in ("initLimit", "syncLimit"):
            if key not in seen:
                raise ConfigError(f"{key} is not set: an ensemble member needs it (in ticks of tickTime; "
                                  f"ZooKeeper's sample zoo.cfg has initLimit=10, syncLimit=5)")
        voters = sum(1 for p in cfg.servers if not p.observer)
        if voters < 3:
            either = "it" if voters == 1 else "either"
            plural = "s" if voters > 1 else ""
            late.append((first, f"line {first}: the ensemble has only {voters} voter{plural}: "
                                f"losing {either} stops writes (3 voters tolerate one failure)"))
        elif voters % 2 == 0:
            late.append((first, f"line {first}: the ensemble has an even number of voters ({voters}): it "
                                f"tolerates no more failures than {voters - 1} would ({(voters - 1) // 2}); "
                                f"consider an odd number"))
    if cfg.ensemble:
        if myid is not None:
            if myid not in {p.sid for p in cfg.servers}:
                ids = ", ".join(str(p.sid) for p in cfg.servers)
                raise ConfigError(f"myid {myid} (dataDir/myid) names no server: there is no server.{myid} "
                                  f"line (the server lines name {ids})")
            cfg = replace(cfg, server_id=myid)
        if myid is not None or not peers:   # this member is known: from myid, or from base's membership
            cfg = _reconcile_member(cfg, late, lines)
    else:
        for key, (lineno, raw_key) in lines.items():
            if key in _ENSEMBLE_SETTERS:
                late.append((lineno, f"line {lineno}: {raw_key} only matters to an ensemble member and this "
                                     f"configuration runs standalone; ignored"))

    by_line: dict[int | None, list[str]] = {}
    for lineno, w in late:
        by_line.setdefault(lineno, []).append(w)
    out = []
    for w in warnings:
        if isinstance(w, tuple):
            out += by_line.pop(w[0], [])
        else:
            out.append(w)
    for rest in by_line.values():   # about no line of this text (a setting inherited from base)
        out += rest
    return cfg, out


def _check_session_timeouts(cfg: ServerConfig) -> None:
    tick = cfg.tick_ms
    lo, hi = cfg.min_session_timeout_ms, cfg.max_session_timeout_ms
    if lo > hi:
        # ZooKeeper checks the effective values (defaults 2x and 20x tickTime), with this wording.
        raise ConfigError(f"minSessionTimeout must not be larger than maxSessionTimeout "
                          f"(minSessionTimeout={lo}, maxSessionTimeout={hi}, tickTime={tick})")


def _check_distinct_endpoints(specs: list[tuple[str, PeerSpec]]) -> None:
    """No two server lines (and no line with itself) may share a host:port for quorum or election."""
    owners: dict[tuple[str, int], tuple[str, str]] = {}
    for raw_key, spec in sorted(specs, key=lambda t: t[1].sid):
        for role, port in (("quorum", spec.quorum_port), ("election", spec.election_port)):
            where = (spec.host.lower(), port)
            if where in owners:
                other_key, other_role = owners[where]
                if other_key == raw_key:
                    raise ConfigError(f"{raw_key}: the quorum and election ports must differ "
                                      f"({spec.host}:{port} is both)")
                raise ConfigError(f"{raw_key} and {other_key} both use {spec.host}:{port} ({role} port of "
                                  f"{raw_key}, {other_role} port of {other_key})")
            owners[where] = (raw_key, role)


def _line(lines: dict, key: str) -> str:
    return f"line {lines[key][0]}: " if key in lines else ""


def _check_topology(cfg: ServerConfig, late: list, peers: dict, lines: dict) -> ServerConfig:
    """ZooKeeper's QuorumPeerConfig.parseDynamicConfig rules on how many participants there are."""
    voters = [p for p in cfg.servers if not p.observer]
    observers = len(cfg.servers) - len(voters)
    if not voters:
        if not cfg.standalone_enabled:
            raise ConfigError("standaloneEnabled=false needs at least one participant server.N line "
                              "(ZooKeeper: standaloneEnabled = false then number of participants "
                              "should be >0)")
        if observers:
            raise ConfigError("the server.N lines name only observers: an ensemble needs participants "
                              "(ZooKeeper: observers w/o participants is an invalid configuration)")
        return cfg
    if len(voters) == 1 and cfg.standalone_enabled:
        if observers:
            raise ConfigError("the server.N lines name one participant and observers: with "
                              "standaloneEnabled=true that is not an ensemble (ZooKeeper: observers w/o "
                              "quorum is an invalid configuration); add participants or set "
                              "standaloneEnabled=false")
        only = voters[0]
        if only.sid in peers:
            lineno = peers[only.sid][0]
            where = f"line {lineno}: {peers[only.sid][1]}"
        else:
            lineno = lines.get("standaloneEnabled", (None,))[0]
            where = f"{_line(lines, 'standaloneEnabled')}server.{only.sid}"
        late.append((lineno, f"{where} is the only server line and standaloneEnabled is true, so this "
                             f"server runs standalone (as ZooKeeper does); the server line is ignored"))
        return replace(cfg, servers=())
    return cfg


def _is_wildcard(host: str) -> bool:
    return host in ("0.0.0.0", "::", "0:0:0:0:0:0:0:0", "")


def _reconcile_member(cfg: ServerConfig, late: list, lines: dict, *, how: str = "{key}",
                      client_port_set: bool | None = None,
                      client_address_set: bool | None = None) -> ServerConfig:
    """Apply this member's own server line: its type wins over peerType, its client address over
    clientPort/clientPortAddress (which must agree with it when they are set too).  Warnings go to
    ``late`` as (line number or None, text)."""
    me = cfg.me
    if me is None:
        return cfg
    line_type = "observer" if me.observer else "participant"
    if cfg.peer_type != line_type:
        if "peerType" in lines:
            late.append((lines["peerType"][0],
                         f"{_line(lines, 'peerType')}peerType={cfg.peer_type} but server.{me.sid} (this "
                         f"server) is {'an' if me.observer else 'a'} {line_type} in its server line; the "
                         f"server line wins, as in ZooKeeper"))
        cfg = replace(cfg, peer_type=line_type)
    if me.client_port is not None:
        port_key, addr_key = how.format(key="clientPort"), how.format(key="clientPortAddress")
        port_set = "clientPort" in lines if client_port_set is None else client_port_set
        addr_set = "clientPortAddress" in lines if client_address_set is None else client_address_set
        if port_set and cfg.client_port != me.client_port:
            raise ConfigError(f"{port_key}={cfg.client_port} is different from the client port "
                              f"{me.client_port} in server.{me.sid}'s line (this server, id = {me.sid}): "
                              f"set one of them, or the same port in both")
        if (addr_set and me.client_host is not None and not _is_wildcard(cfg.client_port_address)
                and cfg.client_port_address.lower() != me.client_host.lower()):
            raise ConfigError(f"{addr_key}={cfg.client_port_address} is different from the client host "
                              f"{me.client_host} in server.{me.sid}'s line (this server, id = {me.sid})")
        cfg = replace(cfg, client_port=me.client_port)
        if me.client_host is not None:
            cfg = replace(cfg, client_port_address=me.client_host)
    return cfg


def read_myid(data_dir: str) -> int:
    """This ensemble member's id: the integer in ``<data_dir>/myid`` (surrounding whitespace ignored)."""
    path = _os.path.join(data_dir, "myid")
    if not _os.path.isfile(path):
        raise ConfigError(f"dataDir/myid is missing: an ensemble member needs it to know which server.N "
                          f"line is its own (write this server's N into {path})")
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror or e}") from e
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: dataDir/myid must hold this server's id (an integer), "
                          f"and it is not text") from None
    v = text.strip()
    if not _re.fullmatch(r"\d+", v) or int(v) > _JAVA_LONG_MAX:
        raise ConfigError(f"{path}: dataDir/myid must hold this server's id (a non-negative integer), "
                          f"not {v[:40]!r}")
    return int(v)


def load_config(path, base: ServerConfig | None = None) -> tuple[ServerConfig, list[str]]:
    """Read and parse a zoo.cfg file; an unreadable file is a ConfigError.  For an ensemble member,
    dataDir/myid is read too (missing, garbage or naming no server line: ConfigError)."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror or e}") from e
    except UnicodeDecodeError as e:
        raise ConfigError(f"cannot read config file {path}: not UTF-8 text ({e.reason})") from e
    cfg, warnings = parse_zoo_cfg(text, base)
    if cfg.ensemble:
        # dataDir is only known once parsed; parse again with the member's id so that the checks that
        # depend on it (its server line exists, its type, its client port) run.
        cfg, warnings = parse_zoo_cfg(text, base, myid=read_myid(cfg.data_dir))
    return cfg, warnings


# -- zkServer.sh's SERVER_JVMFLAGS --------------------------------------------------------------

#: System properties ZooKeeper reads without a "zookeeper." prefix -> the zoo.cfg key coordcore uses.
_JVM_PLAIN_KEYS = {"readonlymode.enabled": "readonlymode.enabled", "jute.maxbuffer": "jute.maxbuffer",
                   "znode.container.checkIntervalMs": "znode.container.checkIntervalMs"}


def _jvm_settings(flags: str) -> list[tuple[str, str, str]]:
    """(property as written, zoo.cfg key, value) for each -Dkey=value coordcore understands, in order."""
    try:
        tokens = _shlex.split(flags or "")
    except ValueError as e:
        raise ConfigError(f"SERVER_JVMFLAGS: cannot split {flags!r} into words: {e}") from None
    out = []
    for tok in tokens:
        if not tok.startswith("-D"):
            continue
        name, _, value = tok[2:].partition("=")
        if name in _JVM_PLAIN_KEYS:
            key = _JVM_PLAIN_KEYS[name]
        elif name.startswith("zookeeper.") and name[len("zookeeper."):] in _PREFIXABLE:
            key = name[len("zookeeper."):]
        else:
            continue   # a JVM gets many -D flags; only the ones above mean something here
        out.append((name, key, value))
    return out


def jvm_flag_overrides(flags: str) -> dict[str, str]:
    """The zoo.cfg-equivalent settings in a zkServer.sh-style flags string (SERVER_JVMFLAGS), keyed by
    their zoo.cfg name: ``-Dreadonlymode.enabled``, ``-Djute.maxbuffer``,
    ``-Dznode.container.checkIntervalMs`` (system properties ZooKeeper reads unprefixed) and
    ``-Dzookeeper.<key>`` for the keys zoo.cfg also accepts with that prefix (forceSync, snapCount,
    4lw.commands.whitelist, electionPortBindRetry, readonlymode.enabled, ...).  So
    ``-Dreadonlymode.enabled=true`` -> ``{"readonlymode.enabled": "true"}`` and
    ``-Dzookeeper.forceSync=no`` -> ``{"forceSync": "no"}``.  A repeated flag: the last wins, as in
    the JVM.  Other -D flags and other words are ignored."""
    return {key: value for _, key, value in _jvm_settings(flags)}


def apply_jvm_flags(cfg: ServerConfig, flags: str) -> tuple[ServerConfig, list[str]]:
    """``cfg`` with the settings of ``jvm_flag_overrides(flags)`` applied over it, and warnings.

    Invalid values raise ConfigError naming the -D flag.  The flags win over ``cfg`` (so
    ``-Dreadonlymode.enabled=true`` turns read-only mode on; real ZooKeeper only reads read-only mode
    from that system property).  Note that for the keys ZooKeeper also accepts in zoo.cfg (forceSync,
    snapCount, ...) ZooKeeper itself lets zoo.cfg win, since it sets the system property after startup.
    """
    settings = _jvm_settings(flags)
    warnings: list[str] = []
    values: dict[str, object] = {}
    for name, key, value in settings:
        field_name, parse = _SETTERS.get(key) or _ENSEMBLE_SETTERS[key]
        more: list = []
        values[field_name] = parse(f"-D{name}", value, more)
        warnings += [f"SERVER_JVMFLAGS: {w}" for w in more]
    new = replace(cfg, **values)
    _check_session_timeouts(new)
    if new.ensemble:
        late: list[tuple[int | None, str]] = []
        new = _reconcile_member(new, late, {}, how="SERVER_JVMFLAGS -Dzookeeper.{key}",
                                client_port_set="client_port" in values,
                                client_address_set="client_port_address" in values)
        warnings += [f"SERVER_JVMFLAGS: {w}" for _, w in late]
    else:
        for name, key, _ in settings:
            if key in _ENSEMBLE_SETTERS:
                warnings.append(f"SERVER_JVMFLAGS: -D{name} only matters to an ensemble member and this "
                                f"configuration runs standalone; ignored")
    return new, warnings


# value parsers: (key as written, value, warnings list) -> field value

def _p_tick(k, v, w):
    n = _parse_int(k, v)
    if n <= 0:
        raise ConfigError(f"{k}={v!r}: must be a positive number of milliseconds")
    return n


def _p_dir(k, v, w):
    if not v:
        raise ConfigError(f"{k} is empty")
    return _os.path.abspath(_os.path.expanduser(v))


def _p_port(k, v, w):
    n = _parse_int(k, v)
    if not 0 <= n <= 65535:
        raise ConfigError(f"{k}={v!r}: port out of range (0-65535; 0 picks a free port)")
    return n


def _p_address(k, v, w):
    if not v:
        raise ConfigError(f"{k} is empty")
    return v


def _p_nonneg(k, v, w):
    return _parse_int(k, v, minimum=0)


def _p_snapcount(k, v, w):
    n = _parse_int(k, v)
    if n < 2:
        # ZooKeeper's own rule: it resets snapCount to 2 with a warning.
        w.append(f"{k}={v}: snapCount must be 2 or more; using 2")
        n = 2
    return n


def _p_positive(k, v, w):
    n = _parse_int(k, v, hex_ok=True)
    if n <= 0:
        raise ConfigError(f"{k}={v!r}: must be positive")
    return n


def _p_digest(k, v, w):
    user, sep, digest = v.partition(":")
    if not sep or not user or not digest:
        raise ConfigError(f"{k}={v!r}: expected user:base64(sha1(user:password))")
    return v


_SETTERS = {
    "tickTime": ("tick_ms", _p_tick),
    "dataDir": ("data_dir", _p_dir),
    "dataLogDir": ("data_log_dir", _p_dir),
    "clientPort": ("client_port", _p_port),
    "clientPortAddress": ("client_port_address", _p_address),
    "maxClientCnxns": ("max_client_cnxns", _p_nonneg),
    "minSessionTimeout": ("session_timeout_ms_min", _p_nonneg),
    "maxSessionTimeout": ("session_timeout_ms_max", _p_nonneg),
    "snapCount": ("snap_count", _p_snapcount),
    "4lw.commands.whitelist": ("four_letter_whitelist", _parse_whitelist),
    "extendedTypesEnabled": ("extended_types_enabled", lambda k, v, w: _parse_bool(k, v)),
    "jute.maxbuffer": ("jute_maxbuffer", _p_positive),
    "DigestAuthenticationProvider.superDigest": ("super_digest", _p_digest),
    "znode.container.checkIntervalMs": ("container_check_interval_ms", _p_positive),
    "forceSync": ("force_sync", lambda k, v, w: _parse_bool(k, v, ("yes", "true"), ("no", "false"))),
    "enforceQuota": ("enforce_quota", lambda k, v, w: _parse_bool(k, v, ("true",), ("false",))),
    "reconfigEnabled": ("reconfig_enabled", lambda k, v, w: _parse_bool(k, v, ("true",), ("false",))),
}


# -- ensemble keys --------------------------------------------------------------------------------

_SERVER_FORM = "host:quorumPort:electionPort[:participant|:observer][;[clientHost:]clientPort]"


def _p_ticks(k, v, w):
    n = _parse_int(k, v)
    if n <= 0:
        raise ConfigError(f"{k}={v!r}: must be a positive number of ticks")
    return n


def _p_election_alg(k, v, w):
    n = _parse_int(k, v)
    if n != 3:
        raise ConfigError(f"{k}={v!r}: only electionAlg=3 (fast leader election) is supported; "
                          f"ZooKeeper 3.8 removed 0, 1 and 2")
    return n


def _p_peer_type(k, v, w):
    t = v.strip().lower()
    if t not in ("participant", "observer"):
        raise ConfigError(f"{k}={v!r}: expected participant or observer")
    return t


def _p_bind_retry(k, v, w):
    n = _parse_int(k, v)
    if n < 0:
        # ZooKeeper's QuorumCnxManager: a negative value is logged and the default 3 used.
        w.append(f"{k}={v}: must be 0 (retry forever) or more; using the default 3")
        n = 3
    return n


def _p_strict_bool(k, v, w):
    return _parse_bool(k, v, ("true",), ("false",))


def _host_and_ports(key: str, value: str, part: str) -> list[str]:
    """ZooKeeper's ConfigUtils.getHostAndPort: "host:a:b" or "[v6 address]:a:b" -> [host, "a", "b"]."""
    part = part.strip()
    if part.startswith("["):
        end = part.find("]")
        if end < 0:
            raise ConfigError(f"{key}={value!r}: unterminated '[' in {part!r}")
        host, rest = part[1:end], part[end + 1:]
        if rest and not rest.startswith(":"):
            raise ConfigError(f"{key}={value!r}: expected ':' after ']' in {part!r}")
        return [host] + (rest[1:].split(":") if rest else [])
    return part.split(":")


def _peer_port(key: str, value: str, what: str, text: str) -> int:
    t = text.strip()
    if not _re.fullmatch(r"\d+", t):
        raise ConfigError(f"{key}={value!r}: the {what} {text!r} is not a port number")
    n = int(t)
    if not 1 <= n <= 65535:
        raise ConfigError(f"{key}={value!r}: the {what} {n} is out of range (1-65535)")
    return n


def _parse_server_line(key: str, value: str) -> PeerSpec:
    """``server.N=host:quorumPort:electionPort[:participant|:observer][;[clientHost:]clientPort]``, as
    ZooKeeper 3.8's QuorumPeer.QuorumServer reads it (no multiAddress: one address per server)."""
    n = key[len("server."):]
    if not _re.fullmatch(r"\d+", n) or int(n) > _JAVA_LONG_MAX:
        raise ConfigError(f"{key}: the server id after 'server.' must be a non-negative integer, not {n!r}")
    sid = int(n)
    parts = value.split(";")
    while len(parts) > 1 and not parts[-1].strip():   # Java's split drops trailing empty strings
        parts.pop()
    if len(parts) > 2:
        raise ConfigError(f"{key}={value!r}: expected {_SERVER_FORM}")
    if "|" in parts[0]:
        raise ConfigError(f"{key}={value!r}: several addresses for one server (multiAddress) are not "
                          f"supported by coordcore")
    fields = _host_and_ports(key, value, parts[0])
    host = fields[0].strip()
    if not host:
        raise ConfigError(f"{key}={value!r}: the host is empty (expected {_SERVER_FORM})")
    if len(fields) == 2:
        raise ConfigError(f"{key}={value!r}: the election port is missing (expected {_SERVER_FORM}; "
                          f"electionAlg=3 needs it)")
    if len(fields) not in (3, 4):
        raise ConfigError(f"{key}={value!r}: expected {_SERVER_FORM}")
    quorum_port = _peer_port(key, value, "quorum port", fields[1])
    election_port = _peer_port(key, value, "election port", fields[2])
    observer = False
    if len(fields) == 4:
        kind = fields[3].strip().lower()
        if kind not in ("participant", "observer"):
            raise ConfigError(f"{key}={value!r}: unknown server type {fields[3]!r} "
                              f"(expected participant or observer)")
        observer = kind == "observer"
    client_host = client_port = None
    if len(parts) == 2:
        client = _host_and_ports(key, value, parts[1])
        if len(client) > 2:
            raise ConfigError(f"{key}={value!r}: the client part {parts[1].strip()!r} must be "
                              f"[clientHost:]clientPort")
        if len(client) == 2:
            client_host = client[0].strip()
            if not client_host:
                raise ConfigError(f"{key}={value!r}: the client host is empty")
        client_port = _peer_port(key, value, "client port", client[-1])
    return PeerSpec(sid, host, quorum_port, election_port, observer, client_host, client_port)


#: Keys that only mean something to an ensemble member (a standalone config warns they are ignored).
_ENSEMBLE_SETTERS = {
    "initLimit": ("init_limit", _p_ticks),
    "syncLimit": ("sync_limit", _p_ticks),
    "electionAlg": ("election_alg", _p_election_alg),
    "peerType": ("peer_type", _p_peer_type),
    "electionPortBindRetry": ("election_port_bind_retry", _p_bind_retry),
    "quorumListenOnAllIPs": ("quorum_listen_on_all_ips", _p_strict_bool),
    # Real ZooKeeper 3.8 only reads the readonlymode.enabled *system property* (-D); in zoo.cfg the key
    # becomes zookeeper.readonlymode.enabled, which it never reads.  coordcore honours both.
    "readonlymode.enabled": ("read_only", _p_strict_bool),
    "standaloneEnabled": ("standalone_enabled", _p_strict_bool),
}

#: Keys that may also be written with a "zookeeper." prefix (in zoo.cfg, or as a -D system property).
#: zookeeper.electionPortBindRetry is the system property ZooKeeper actually reads.
_PREFIXABLE = frozenset(_SETTERS) | {"readonlymode.enabled", "electionPortBindRetry"}
