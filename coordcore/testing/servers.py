"""Launchers for test servers: coordcore (process or in-process) and Apache ZooKeeper.

Every launcher has the same interface (:class:`ServerHandle`): it picks a free port once (asked of the
OS) and keeps it across restarts, writes a zoo.cfg from a dict of ZooKeeper config keys, starts the
server and returns only once it serves (``srvr`` answers and a real client handshake works),
and can stop it gracefully, kill it (SIGKILL, data kept) and restart it on the same data dir.

Data and temp files
    Each handle owns a temp "work dir" holding the generated zoo.cfg, the server log and, unless a
    ``data_dir`` was given, the data dir.  ``stop()`` and ``kill()`` keep everything, so ``restart()``
    comes back with the same data; ``close()`` (also called by ``with``) stops the server and removes
    the dirs the handle created.  A given ``data_dir`` is never removed.

Config
    ``config`` is a dict of zoo.cfg keys, the same for both backends (tickTime, minSessionTimeout,
    maxSessionTimeout, snapCount, maxClientCnxns, extendedTypesEnabled, znode.container.checkIntervalMs,
    DigestAuthenticationProvider.superDigest, jute.maxbuffer, 4lw.commands.whitelist, ...), merged over
    :data:`DEFAULT_TEST_CONFIG` (a key given as None is left out, so the server's own default
    applies: ``{"4lw.commands.whitelist": None}``).  dataDir, clientPort and clientPortAddress are filled in by the
    launcher.  For Apache ZooKeeper, keys that it only reads as Java system properties are passed as
    ``-D`` flags (see :data:`ZK_SYSTEM_PROPERTY_KEYS`).

Logs
    A process server logs to ``log_path`` in the work dir.  The launchers' own events
    (``testing.server.started`` / ``stopped`` / ``killed``) and an in-process server's events go
    through structlog; if structlog is not configured, starting a server points its output at stderr
    (instead of structlog's default stdout) so it never mixes with what a test reads from stdout.
"""
from __future__ import annotations

import abc
import os
import pathlib
import shutil
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import weakref
from typing import Any, Mapping

import structlog

log = structlog.get_logger("coordcore.testing")

BACKENDS = ("coordcore", "zookeeper")

#: Defaults for test servers: a short tick so that session expiry tests are quick, while the maximum
#: session timeout still admits kazoo's default 10 s; no per-address connection limit (tests open
#: many clients from 127.0.0.1); every four-letter word allowed.
DEFAULT_TEST_CONFIG: dict[str, Any] = {
    "tickTime": 500,
    "minSessionTimeout": 1000,
    "maxSessionTimeout": 30000,
    "maxClientCnxns": 0,
    "4lw.commands.whitelist": "*",
}

#: zoo.cfg keys that Apache ZooKeeper reads only as Java system properties -> the property name.
ZK_SYSTEM_PROPERTY_KEYS = {
    "extendedTypesEnabled": "zookeeper.extendedTypesEnabled",
    "znode.container.checkIntervalMs": "znode.container.checkIntervalMs",
    "znode.container.maxPerMinute": "znode.container.maxPerMinute",
    "DigestAuthenticationProvider.superDigest": "zookeeper.DigestAuthenticationProvider.superDigest",
    "jute.maxbuffer": "jute.maxbuffer",
    "forceSync": "zookeeper.forceSync",
    "enforceQuota": "zookeeper.enforceQuota",
    "readonlymode.enabled": "readonlymode.enabled",  # ZooKeeper reads it only as a JVM flag
}

#: Keys the launchers own; a value given for them in ``config`` is an error.
_LAUNCHER_KEYS = ("dataDir", "clientPort", "clientPortAddress")


class ServerStartError(RuntimeError):
    """A server did not come up; the message includes the tail of its log."""


class ZooKeeperNotFound(RuntimeError):
    """Apache ZooKeeper (Java and the zookeeper jars) is not installed on this machine."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now on ``host``, chosen by the OS."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def four_letter_word(host: str, port: int, cmd: str, timeout: float = 5) -> str:
    """Send a four-letter word and return the whole answer (the server closes after answering)."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.settimeout(timeout)
        s.sendall(cmd.encode("ascii"))
        chunks = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", "replace")


def render_zoo_cfg(config: Mapping[str, Any]) -> str:
    lines = []
    for key, value in config.items():
        if isinstance(value, bool):
            value = "true" if value else "false"
        lines.append(f"{key}={value}")
    return "\n".join(lines) + "\n"


def _tail(path: pathlib.Path, max_lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    lines = text.splitlines()[-max_lines:]
    return "\n".join(lines) if lines else "(log is empty)"


def _rmtree_quiet(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)


class ServerHandle(abc.ABC):
    """One test server on 127.0.0.1 and a port that stays the same across restarts."""

    backend: str = ""

    def __init__(self, config: Mapping[str, Any] | None = None, data_dir: str | os.PathLike | None = None,
                 port: int | None = None, host: str = "127.0.0.1"):
        config = dict(config or {})
        for key in _LAUNCHER_KEYS:
            if key in config:
                raise ValueError(f"{key} is set by the launcher; pass data_dir=/port= instead")
        # a key given as None is left out, so the server's own default applies
        merged = {**DEFAULT_TEST_CONFIG, **config}
        self.config: dict[str, Any] = {k: v for k, v in merged.items() if v is not None}
        self.host = host
        self.port = port if port is not None else free_port(host)
        self.work_dir = pathlib.Path(tempfile.mkdtemp(prefix=f"{self.backend}-test-"))
        self._finalizers = [weakref.finalize(self, _rmtree_quiet, str(self.work_dir))]
        if data_dir is None:
            self.data_dir = self.work_dir / "data"
            self.data_dir.mkdir()
            self.owns_data_dir = True
        else:
            self.data_dir = pathlib.Path(data_dir)
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self.owns_data_dir = False
        self.log_path = self.work_dir / "server.log"
        self.config_path = self.work_dir / "zoo.cfg"
        self.running = False

    # -- interface ---------------------------------------------------------------------------

    @property
    def connect_string(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return None

    def zoo_cfg(self) -> dict[str, Any]:
        """The full zoo.cfg this server runs with."""
        return {**self.config, "dataDir": str(self.data_dir), "clientPort": self.port,
                "clientPortAddress": self.host}

    def start(self, timeout: float = 30) -> "ServerHandle":
        """Start the server; return once it answers srvr and accepts a client session."""
        if self.running:
            return self
        _keep_server_logs_off_stdout()
        t0 = time.monotonic()
        self._launch()
        self.running = True
        try:
            self._wait_serving(timeout)
        except BaseException:
            self._abort()
            raise
        log.info("testing.server.started", backend=self.backend, port=self.port, pid=self.pid,
                 seconds=round(time.monotonic() - t0, 3))
        return self

    def stop(self) -> None:
        """Stop gracefully (SIGTERM, then SIGKILL at a deadline). Data and logs are kept."""
        if self.running:
            self._terminate(graceful=True)
            self.running = False
            log.info("testing.server.stopped", backend=self.backend, port=self.port)

    def kill(self) -> None:
        """Stop abruptly, as a crash would (SIGKILL for processes). Data and logs are kept."""
        if self.running:
            self._terminate(graceful=False)
            self.running = False
            log.info("testing.server.killed", backend=self.backend, port=self.port)

    def restart(self, timeout: float = 30) -> "ServerHandle":
        """Start again on the same port and data dir (stopping gracefully first if running)."""
        self.stop()
        return self.start(timeout)

    def close(self) -> None:
        """Stop, then remove the temp dirs this handle created (a given data_dir is kept)."""
        self.stop()
        for fin in self._finalizers:
            fin()

    def four_letter(self, cmd: str, timeout: float = 5) -> str:
        return four_letter_word(self.host, self.port, cmd, timeout)

    def log_tail(self, max_lines: int = 40) -> str:
        return _tail(self.log_path, max_lines)

    def __enter__(self) -> "ServerHandle":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<{type(self).__name__} {self.connect_string} {state} data={self.data_dir}>"

    # -- implementation hooks -----------------------------------------------------------------

    @abc.abstractmethod
    def _launch(self) -> None: ...

    @abc.abstractmethod
    def _terminate(self, graceful: bool) -> None: ...

    def _abort(self) -> None:
        try:
            self._terminate(graceful=False)
        finally:
            self.running = False

    def _check_alive(self) -> None:
        """Raise ServerStartError if the server is known to have died."""

    def _wait_serving(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last_error: str = "no answer"
        while True:
            self._check_alive()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ServerStartError(
                    f"{self.backend} server on {self.connect_string} did not serve within {timeout}s "
                    f"({last_error}); log {self.log_path}:\n{self.log_tail()}")
            try:
                # srvr: the one word both servers answer whatever the whitelist says
                answer = self.four_letter("srvr", timeout=min(2.0, remaining))
                if answer.startswith("Zookeeper version:"):
                    self._client_handshake(min(10.0, max(remaining, 1.0)))
                    self._wait_probe_gone(deadline)
                    return
                last_error = f"srvr answered {answer[:200]!r}"
            except Exception as e:  # connection refused while starting, handshake timeout, ...
                last_error = f"{type(e).__name__}: {e}"
            time.sleep(0.05)

    def _wait_probe_gone(self, deadline: float) -> None:
        """Wait until the server has dropped the probe's connection, so a test starts with none.

        ZooKeeper removes a closed connection from its counts asynchronously, after the close reply;
        a test asking for ``srvr``/``cons`` at once would otherwise see the probe still counted. Best
        effort within the start deadline: a server that keeps counting it is the test's to report.
        """
        while time.monotonic() < deadline:
            try:
                answer = self.four_letter("srvr", timeout=min(2.0, max(deadline - time.monotonic(), 0.1)))
            except OSError:
                return
            if re.search(r"^Connections: 1$", answer, re.M):  # only the connection asking
                return
            time.sleep(0.02)

    def _client_handshake(self, timeout: float) -> None:
        from kazoo.client import KazooClient

        client = KazooClient(hosts=self.connect_string, timeout=10, connection_retry=None, logger=_probe_logger())
        try:
            client.start(timeout=timeout)
            client.exists("/")
        finally:
            try:
                client.stop()
            finally:
                client.close()


def _probe_logger():
    """A silent logger for the readiness probe's kazoo client (its expected disconnects are not news)."""
    import logging

    logger = logging.getLogger("coordcore.testing.probe")
    if not logger.handlers:
        logger.addHandler(logging.NullHandler())
        logger.propagate = False
    return logger


class _ProcessServer(ServerHandle):
    """A server in a child process of its own (own session, so signals reach only it)."""

    stop_timeout = 15.0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.proc: subprocess.Popen | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    @abc.abstractmethod
    def command(self) -> list[str]: ...

    def environment(self) -> dict[str, str]:
        return dict(os.environ)

    def _launch(self) -> None:
        argv = self.command()
        with open(self.log_path, "ab") as logf:
            logf.write(f"\n==== start {time.strftime('%Y-%m-%d %H:%M:%S')}: {' '.join(argv)}\n".encode())
            logf.flush()
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                                         cwd=str(self.work_dir), env=self.environment(),
                                         start_new_session=True)

    def _check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise ServerStartError(
                f"{self.backend} server exited with code {self.proc.returncode} while starting on "
                f"{self.connect_string}; log {self.log_path}:\n{self.log_tail()}")

    def _terminate(self, graceful: bool) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            if graceful:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(self.stop_timeout)
                except subprocess.TimeoutExpired:
                    log.warning("testing.server.stop_timeout", backend=self.backend, pid=proc.pid)
            if proc.poll() is None:
                try:  # the whole session: a server's helper children (a snapshot writer) die with it
                    os.killpg(proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    proc.kill()
                proc.wait(30)
        self.proc = None


class CoordcoreProcess(_ProcessServer):
    """``python -m coordcore serve --config zoo.cfg`` in a child process."""

    backend = "coordcore"

    def command(self) -> list[str]:
        self.config_path.write_text(render_zoo_cfg(self.zoo_cfg()))
        return [sys.executable, "-m", "coordcore", "serve", "--config", str(self.config_path)]

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONUNBUFFERED"] = "1"
        return env


# -- Apache ZooKeeper ------------------------------------------------------------------------

_ZK_JAR_DIRS = ("/usr/share/java",)
_ZK_INSTALL_HINT = ("Apache ZooKeeper is not installed: install Debian's package with "
                    "`apt-get install zookeeper` (or run `bash .ci/setup`), or select only the coordcore "
                    "backend with --zk-backend=coordcore")


def _dpkg_files(package: str) -> list[str]:
    try:
        out = subprocess.run(["dpkg", "-L", package], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return out.stdout.splitlines() if out.returncode == 0 else []


def find_zookeeper_classpath() -> list[str]:
    """The jars to run Apache ZooKeeper's server: zookeeper.jar (its manifest names its own deps) plus a
    log4j binding for slf4j if present, so the server logs to our file instead of nowhere.

    ``$ZOOKEEPER_CLASSPATH`` (':'-separated) overrides the search.  Raises ZooKeeperNotFound.
    """
    override = os.environ.get("ZOOKEEPER_CLASSPATH")
    if override:
        cp = [p for p in override.split(os.pathsep) if p]
        missing = [p for p in cp if not os.path.exists(p)]
        if missing:
            raise ZooKeeperNotFound(_ZK_INSTALL_HINT + f" ($ZOOKEEPER_CLASSPATH names missing {missing})")
        return cp
    candidates = [pathlib.Path(d) / "zookeeper.jar" for d in _ZK_JAR_DIRS]
    for pkg in ("libzookeeper-java", "zookeeper"):
        candidates += [pathlib.Path(f) for f in _dpkg_files(pkg)
                       if f.endswith(".jar") and pathlib.Path(f).name.startswith("zookeeper")
                       and "jute" not in f and "contrib" not in f and "recipes" not in f and "-it" not in f]
    jar = next((c for c in candidates if c.is_file()), None)
    if jar is None:
        raise ZooKeeperNotFound(_ZK_INSTALL_HINT + " (no zookeeper.jar found)")
    cp = [str(jar)]
    for name in ("slf4j-log4j12.jar", "log4j-1.2.jar"):
        p = jar.parent / name
        if p.is_file():
            cp.append(str(p))
    return cp


def find_java() -> str:
    java = shutil.which("java") or ("/usr/bin/java" if os.path.exists("/usr/bin/java") else None)
    if java is None:
        raise ZooKeeperNotFound(_ZK_INSTALL_HINT + " (no java found)")
    return java


def zookeeper_available() -> bool:
    try:
        find_java()
        find_zookeeper_classpath()
        return True
    except ZooKeeperNotFound:
        return False


def find_zkcli() -> str:
    """Path of ZooKeeper's zkCli.sh; raises ZooKeeperNotFound."""
    for p in ["/usr/share/zookeeper/bin/zkCli.sh"] + [f for f in _dpkg_files("zookeeper")
                                                      if f.endswith("/zkCli.sh")]:
        if os.path.isfile(p):
            return p
    found = shutil.which("zkCli.sh")
    if found:
        return found
    raise ZooKeeperNotFound(_ZK_INSTALL_HINT + " (no zkCli.sh found)")


_LOG4J_PROPERTIES = """\
log4j.rootLogger=INFO, FILE
log4j.appender.FILE=org.apache.log4j.FileAppender
log4j.appender.FILE.File={log}
log4j.appender.FILE.Append=true
log4j.appender.FILE.layout=org.apache.log4j.PatternLayout
log4j.appender.FILE.layout.ConversionPattern=%d{{ISO8601}} - %-5p [%t:%C{{1}}@%L] - %m%n
"""


class ZooKeeperProcess(_ProcessServer):
    """Apache ZooKeeper standalone (Debian's package), run directly with java.

    Checks for Java and the jars at construction time: raises :class:`ZooKeeperNotFound` with an
    install hint when they are missing.
    """

    backend = "zookeeper"
    jvm_heap = "256m"

    def __init__(self, *args, **kwargs):
        self.java = find_java()
        self.classpath = find_zookeeper_classpath()
        super().__init__(*args, **kwargs)

    def zoo_cfg(self) -> dict[str, Any]:
        cfg = {k: v for k, v in super().zoo_cfg().items() if k not in ZK_SYSTEM_PROPERTY_KEYS}
        cfg.setdefault("admin.enableServer", "false")  # else it binds port 8080
        return cfg

    def system_properties(self) -> dict[str, str]:
        props = {"zookeeper.admin.enableServer": "false", "java.net.preferIPv4Stack": "true",
                 "log4j.configuration": (self.work_dir / "log4j.properties").as_uri(),
                 "zookeeper.log.dir": str(self.work_dir)}
        for key, prop in ZK_SYSTEM_PROPERTY_KEYS.items():
            if key in self.config:
                value = self.config[key]
                props[prop] = ("true" if value else "false") if isinstance(value, bool) else str(value)
        return props

    def command(self) -> list[str]:
        self.config_path.write_text(render_zoo_cfg(self.zoo_cfg()))
        (self.work_dir / "log4j.properties").write_text(_LOG4J_PROPERTIES.format(log=self.log_path))
        flags = [f"-D{k}={v}" for k, v in self.system_properties().items()]
        cp = os.pathsep.join([str(self.work_dir)] + self.classpath)
        return [self.java, f"-Xmx{self.jvm_heap}", "-XX:+UseSerialGC", *flags, "-cp", cp,
                "org.apache.zookeeper.server.ZooKeeperServerMain", str(self.config_path)]


# -- coordcore in-process --------------------------------------------------------------------

def server_config_from_zoo_cfg(cfg: Mapping[str, Any]):
    """Build a coordcore ServerConfig from a dict of zoo.cfg keys, with coordcore's own parser."""
    from coordcore import config as cc_config

    text = render_zoo_cfg(cfg)
    parse = getattr(cc_config, "parse_zoo_cfg", None) or getattr(cc_config, "parse_config", None)
    if parse is None:
        raise ServerStartError("coordcore.config has no zoo.cfg parser (parse_zoo_cfg)")
    result = parse(text)
    # the parser may return (config, warnings)
    if isinstance(result, tuple):
        result = result[0]
    return result


class _CurrentStderr:
    """Writes to whatever sys.stderr is at the time (pytest swaps it per test to capture output)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def _keep_server_logs_off_stdout() -> None:
    """An in-process server logs through this process's structlog; unconfigured, structlog prints to
    stdout, where the lines would mix with what a test reads from stdout (capsys).  Send them to
    stderr instead, changing nothing else, and only if nobody configured structlog."""
    if not structlog.is_configured():
        structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=_CurrentStderr()))


class EmbeddedCoordcore(ServerHandle):
    """coordcore in this process, on its own thread (``coordcore.runtime.serve.ServerThread``).

    Fast to start; shares the interpreter with the test.  ``kill()`` is ``ServerThread.crash()``:
    connections are dropped unflushed and nothing waits, but the OS page cache survives, so use
    :class:`CoordcoreProcess` for kill -9 tests.
    """

    backend = "coordcore"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._thread = None
        self._log_handler = None

    def _launch(self) -> None:
        from coordcore.runtime.serve import ServerThread

        server_config = server_config_from_zoo_cfg(self.zoo_cfg())
        self._thread = ServerThread(server_config)
        try:
            self._thread.start(timeout=30)
        except Exception as e:
            self._thread = None
            raise ServerStartError(f"embedded coordcore failed to start on {self.connect_string}: {e!r}") from e

    def _terminate(self, graceful: bool) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            if graceful:
                thread.stop()
            else:
                thread.crash()


_FACTORIES = {"coordcore": CoordcoreProcess, "zookeeper": ZooKeeperProcess}


def make_server(backend: str, *, embedded: bool = False, **kwargs) -> ServerHandle:
    """A (not yet started) server handle for ``backend`` ("coordcore" or "zookeeper").

    ``embedded=True`` gives the in-process coordcore server; Apache ZooKeeper is always a process.
    Other keyword arguments (config, data_dir, port) go to the launcher.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    if embedded and backend == "coordcore":
        return EmbeddedCoordcore(**kwargs)
    return _FACTORIES[backend](**kwargs)
