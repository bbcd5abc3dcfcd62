"""Server configuration: the ServerConfig value and the zoo.cfg parser.

Only stdlib.  The parser accepts ZooKeeper's zoo.cfg syntax (key=value lines,
'#' comments).  Unknown keys are reported back as warnings (the caller logs
them); invalid values raise ConfigError with a message naming the key.
"""
from __future__ import annotations

import os as _os
import re as _re
from dataclasses import dataclass, replace

# As ZooKeeper (3.5.3 on): without 4lw.commands.whitelist only srvr is answered; the others can reveal
# clients, sessions and the environment, or cost the server a walk over every watch.
DEFAULT_4LW = frozenset({"srvr"})


class ConfigError(ValueError):
    """A configuration value is missing or invalid; the message names the key."""


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
    initLimit syncLimit electionAlg electionPort quorumListenOnAllIPs peerType syncEnabled
    dynamicConfigFile standaloneEnabled sslQuorum portUnification secureClientPort
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
#: Prefixes of ignored key families (server.1=..., admin.serverPort=..., ssl.keyStore.location=...).
_IGNORED_PREFIXES = ("server.", "group.", "weight.", "admin.", "ssl.", "quorum.", "metricsProvider.",
                     "authProvider.", "kerberos.", "jute.maxbuffer.extrasize", "netty.", "learner.",
                     "zookeeper.ssl", "sslQuorum.", "audit.", "snapshot.", "zookeeper.admin.")

_INT_RE = _re.compile(r"[+-]?\d+")
_JAVA_INT_MAX = 2**31 - 1


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


def parse_zoo_cfg(text: str, base: ServerConfig | None = None) -> tuple[ServerConfig, list[str]]:
    """Parse zoo.cfg text into a ServerConfig (over ``base``, default ServerConfig()) and warnings.

    Warnings: unknown keys, keys ZooKeeper has that a standalone coordcore ignores, repeated keys,
    corrected values.  Invalid values raise ConfigError naming the key and the value.  Relative
    dataDir/dataLogDir are taken relative to the current directory and made absolute, as ZooKeeper
    does.  ``myid`` lives in dataDir/myid, not in zoo.cfg, and is ignored here.
    """
    cfg = base if base is not None else ServerConfig()
    warnings: list[str] = []
    values: dict[str, object] = {}
    seen: dict[str, int] = {}
    for lineno, raw_key, value in _properties(text):
        key = raw_key
        # ZooKeeper turns unknown zoo.cfg keys into "zookeeper."-prefixed system properties, so the same
        # setting may be written either way (zookeeper.extendedTypesEnabled, zookeeper.forceSync, ...).
        if key.startswith("zookeeper.") and key[len("zookeeper."):] in _SETTERS:
            key = key[len("zookeeper."):]
        if key in seen:
            warnings.append(f"line {lineno}: {raw_key} repeated (line {seen[key]}); the last value wins")
        seen[key] = lineno
        setter = _SETTERS.get(key)
        if setter is not None:
            field_name, parse = setter
            values[field_name] = parse(raw_key, value, warnings)
        elif key == "myid":
            warnings.append(f"line {lineno}: myid is read from dataDir/myid, not zoo.cfg; ignored")
        elif key in _IGNORED_KEYS or key.startswith(_IGNORED_PREFIXES):
            warnings.append(f"line {lineno}: {raw_key} is not used by a standalone coordcore server; ignored")
        else:
            warnings.append(f"line {lineno}: unknown key {raw_key!r}; ignored")
    cfg = replace(cfg, **values)
    tick = cfg.tick_ms
    lo, hi = cfg.min_session_timeout_ms, cfg.max_session_timeout_ms
    if lo > hi:
        # ZooKeeper checks the effective values (defaults 2x and 20x tickTime), with this wording.
        raise ConfigError(f"minSessionTimeout must not be larger than maxSessionTimeout "
                          f"(minSessionTimeout={lo}, maxSessionTimeout={hi}, tickTime={tick})")
    return cfg, warnings


def load_config(path, base: ServerConfig | None = None) -> tuple[ServerConfig, list[str]]:
    """Read and parse a zoo.cfg file; an unreadable file is a ConfigError."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror or e}") from e
    except UnicodeDecodeError as e:
        raise ConfigError(f"cannot read config file {path}: not UTF-8 text ({e.reason})") from e
    return parse_zoo_cfg(text, base)


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
