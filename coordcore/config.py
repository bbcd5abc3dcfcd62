"""Server configuration: the ServerConfig value and the zoo.cfg parser.

Only stdlib.  The parser accepts ZooKeeper's zoo.cfg syntax (key=value lines,
'#' comments).  Unknown keys are reported back as warnings (the caller logs
them); invalid values raise ConfigError with a message naming the key.
"""
from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_4LW = frozenset("ruok srvr stat mntr conf cons wchs dump envi isro".split())


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

    @property
    def min_session_timeout_ms(self) -> int:
        return self.session_timeout_ms_min if self.session_timeout_ms_min is not None else 2 * self.tick_ms

    @property
    def max_session_timeout_ms(self) -> int:
        return self.session_timeout_ms_max if self.session_timeout_ms_max is not None else 20 * self.tick_ms

    @property
    def log_dir(self) -> str:
        return self.data_log_dir or self.data_dir
