"""The ``coordcore`` command line: serve, status, bench, sim, version.

Start-up speed matters (``coordcore serve`` must be serving within a fraction of a second), so this
module imports only argparse and coordcore.config at load time; everything else (structlog, the
runtime, sockets, the benchmark) is imported inside the subcommand that needs it.  Nothing on the
serve path imports kazoo.

Exit codes: 0 success; 1 runtime failure (server unreachable, server failed); 2 usage or
configuration error (argparse's convention), with ``coordcore: error: <message>`` on stderr.
"""
from __future__ import annotations

import argparse
import os
import sys

from coordcore import ZK_COMPAT_VERSION, __version__
from coordcore.config import ConfigError, ServerConfig, apply_jvm_flags, load_config, parse_zoo_cfg

#: Where ``coordcore serve`` keeps its data when neither --data-dir nor the config's dataDir says:
#: a directory under the current directory (not /tmp, which is cleared on reboot, and not a system
#: path that needs root).
DEFAULT_DATA_DIR = "coordcore-data"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 2181

PROG = "coordcore"


class _CliError(Exception):
    """A failure reported as ``coordcore: error: <message>`` with exit status ``code``."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


def _fail(message: str, code: int) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return code


# -- serve -----------------------------------------------------------------------------------------

def build_serve_config(args) -> tuple[ServerConfig, list[str]]:
    """The ServerConfig for ``coordcore serve``: defaults, then the config file, then the flags."""
    base = ServerConfig(data_dir=os.path.abspath(DEFAULT_DATA_DIR), client_port=DEFAULT_PORT,
                        client_port_address=DEFAULT_HOST)
    if args.config:
        cfg, warnings = load_config(args.config, base)
    else:
        cfg, warnings = base, []
    # Flags go through the same parser as the file, so they are validated by the same rules (and the
    # session-timeout bounds are rechecked against an overridden tickTime).
    overrides = [("--port", "clientPort", args.port), ("--host", "clientPortAddress", args.host),
                 ("--data-dir", "dataDir", args.data_dir), ("--tick-time", "tickTime", args.tick_time)]
    for flag, key, value in overrides:
        if value is None:
            continue
        if "\n" in value or "\r" in value:
            raise ConfigError(f"{flag}: invalid value {value!r} (contains a line break)")
        try:
            cfg, more = parse_zoo_cfg(f"{key}={value}", cfg)
        except ConfigError as e:
            raise ConfigError(f"{flag} {value}: {e}") from None
        warnings += more
    # zkServer.sh deployments set some switches as JVM flags (-Dreadonlymode.enabled=true ...)
    flags = os.environ.get("SERVER_JVMFLAGS", "")
    if flags.strip():
        cfg, more = apply_jvm_flags(cfg, flags)
        warnings += more
    return cfg, warnings


def cmd_serve(args) -> int:
    from coordcore.logs import configure_logging

    try:
        cfg, warnings = build_serve_config(args)
    except ConfigError as e:
        return _fail(str(e), 2)
    configure_logging(args.log_level, args.log_format, cache_loggers=True)
    import structlog

    log = structlog.get_logger("coordcore")
    for w in warnings:
        log.warning("config.warning", warning=w, config=args.config)
    try:
        from coordcore.runtime import serve
    except ImportError as e:
        return _fail(f"the server runtime is not available: {e}", 1)
    result = serve.run(cfg)
    return result if isinstance(result, int) else 0


# -- status ----------------------------------------------------------------------------------------

def parse_hostport(text: str, default_port: int = DEFAULT_PORT) -> tuple[str, int]:
    """``host:port``, ``host`` (port 2181), ``[v6addr]:port`` -> (host, port); ValueError if bad."""
    text = text.strip()
    if not text:
        raise ValueError("empty address")
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep:
            raise ValueError(f"bad address {text!r}: missing ']'")
        port_s = rest[1:] if rest.startswith(":") else (rest or None)
        if rest and not rest.startswith(":"):
            raise ValueError(f"bad address {text!r}")
    elif text.count(":") == 1:
        host, port_s = text.split(":")
    elif text.count(":") > 1:  # bare IPv6 address
        host, port_s = text, None
    else:
        host, port_s = text, None
    if not host:
        raise ValueError(f"bad address {text!r}: no host")
    if port_s is None or port_s == "":
        return host, default_port
    if not port_s.isdigit() or not 0 < int(port_s) <= 65535:
        raise ValueError(f"bad port {port_s!r} in {text!r}")
    return host, int(port_s)


def four_letter(host: str, port: int, cmd: str, timeout: float = 5.0) -> str:
    """Send a four-letter word and read the reply until the server closes the connection."""
    import socket

    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(cmd.encode("ascii"))
        chunks = []
        while True:
            data = s.recv(65536)
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks).decode("utf-8", "replace")


def _not_whitelisted(reply: str) -> bool:
    return "is not executed because it is not in the whitelist" in reply


def parse_srvr(text: str) -> dict:
    """Parse a ``srvr``/``stat`` reply into a dict (version, mode, zxid, counts, latencies)."""
    out: dict = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key, value = key.strip(), value.strip()
        if key == "Zookeeper version":
            out["version"] = value
        elif key == "Latency min/avg/max":
            lo, avg, hi = value.split("/")
            out["latency_min_ms"], out["latency_avg_ms"], out["latency_max_ms"] = int(lo), float(avg), int(hi)
        elif key in ("Received", "Sent", "Connections", "Outstanding", "Node count"):
            out[key.lower().replace(" ", "_")] = int(value)
        elif key == "Zxid":
            out["zxid"] = int(value, 16)
        elif key == "Mode":
            out["mode"] = value
        elif key == "Proposal sizes last/min/max":
            out["proposal_sizes"] = [int(x) for x in value.split("/")]
    if "READ-ONLY mode" in text:
        out["read_only"] = True
    return out


def parse_mntr(text: str) -> dict:
    """Parse a ``mntr`` reply (``zk_key<TAB>value`` lines) into a dict of ints/floats/strings."""
    out: dict = {}
    for line in text.splitlines():
        key, sep, value = line.partition("\t")
        if not sep:
            continue
        for conv in (int, float):
            try:
                out[key] = conv(value)
                break
            except ValueError:
                continue
        else:
            out[key] = value
    return out


def gather_status(host: str, port: int, timeout: float = 5.0) -> dict:
    """srvr (+ mntr when whitelisted) of a ZooKeeper-protocol server, as one dict.

    Raises _CliError for an unreachable server or a reply that is not a ZooKeeper srvr.
    """
    import socket

    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        srvr = four_letter(host, port, "srvr", timeout)
    except (socket.timeout, TimeoutError):
        raise _CliError(f"cannot reach {where}: timed out after {timeout:g} s") from None
    except OSError as e:
        raise _CliError(f"cannot reach {where}: {e.strerror or e}") from None
    if not srvr:
        raise _CliError(f"{where} closed the connection without answering 'srvr'")
    if "not currently serving requests" in srvr:
        raise _CliError(f"{where} is up but not serving requests (starting, or no quorum)")
    if _not_whitelisted(srvr):
        raise _CliError(f"{where} does not allow 'srvr' (add it to 4lw.commands.whitelist)")
    try:
        status = parse_srvr(srvr)
    except ValueError:  # a line named like srvr's with a value that is not
        status = {}
    if "mode" not in status or "zxid" not in status:
        shown = srvr.strip()[:200] or "(empty reply)"
        raise _CliError(f"{where} did not answer 'srvr' like a ZooKeeper server: {shown}")
    status["server"] = where
    z = status["zxid"]
    status["zxid_hex"] = f"0x{z:x}"
    status["zxid_epoch"], status["zxid_counter"] = z >> 32, z & 0xFFFFFFFF
    try:
        mntr = four_letter(host, port, "mntr", timeout)
    except OSError:
        mntr = ""
    status["mntr"] = None if (not mntr or _not_whitelisted(mntr)) else parse_mntr(mntr)
    return status


def _fmt_ms(v: float) -> str:
    return f"{v:g} ms" if isinstance(v, int) or v == int(v) else f"{v:.2f} ms"


def _fmt_bytes(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)  # pragma: no cover


def _fmt_uptime(ms: int) -> str:
    s = ms // 1000
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    parts = [f"{d}d"] if d else []
    if d or h:
        parts.append(f"{h}h")
    if d or h or m:
        parts.append(f"{m}m")
    parts.append(f"{s}s")
    return " ".join(parts)


def format_status(st) -> str:
    """The text ``coordcore status`` prints: for one server (a dict from gather_status) a block of
    ``name  value`` rows; for several (a list, as cmd_status builds it) one line per server --
    address, mode, zxid, lag behind the leader, connections -- or the address and why it did not
    answer."""
    if isinstance(st, list):
        answered = [[m["server"], m["mode"] + (" (read-only)" if m.get("read_only") else ""),
                     f"zxid {m['zxid_hex']}", f"lag {'-' if m.get('lag') is None else m['lag']}",
                     f"connections {m.get('connections', '?')}"] for m in st if "error" not in m]
        width = [max((len(r[i]) for r in answered), default=0) for i in range(5)]
        width[0] = max(len(m["server"]) for m in st)
        lines, ok = [], iter(answered)
        for m in st:
            cells = [m["server"], f"error: {m['error']}"] if "error" in m else next(ok)
            lines.append("  ".join(c.ljust(w) for c, w in zip(cells, width)).rstrip() + "\n")
        return "".join(lines)
    rows = [
        ("server", st["server"]),
        ("version", st.get("version", "?")),
        ("mode", st["mode"] + (" (read-only)" if st.get("read_only") else "")),
        ("zxid", f"{st['zxid_hex']} (epoch {st['zxid_epoch']}, counter {st['zxid_counter']})"),
        ("connections", st.get("connections", "?")),
        ("outstanding", st.get("outstanding", "?")),
        ("znodes", st.get("node_count", "?")),
        ("latency", f"min {_fmt_ms(st.get('latency_min_ms', 0))}, avg {_fmt_ms(st.get('latency_avg_ms', 0))}, "
                    f"max {_fmt_ms(st.get('latency_max_ms', 0))}"),
        ("packets", f"received {st.get('received', '?')}, sent {st.get('sent', '?')}"),
    ]
    if "proposal_sizes" in st:
        rows.append(("proposals", "last/min/max %d/%d/%d bytes" % tuple(st["proposal_sizes"])))
    m = st.get("mntr")
    if m:
        if "zk_watch_count" in m:
            rows.append(("watches", m["zk_watch_count"]))
        if "zk_global_sessions" in m:
            rows.append(("sessions", m["zk_global_sessions"]))
        if "zk_ephemerals_count" in m:
            rows.append(("ephemerals", m["zk_ephemerals_count"]))
        if "zk_approximate_data_size" in m:
            rows.append(("data size", _fmt_bytes(int(m["zk_approximate_data_size"]))))
        if "zk_open_file_descriptor_count" in m:
            fds = str(m["zk_open_file_descriptor_count"])
            if "zk_max_file_descriptor_count" in m:
                fds += f" of {m['zk_max_file_descriptor_count']}"
            rows.append(("open fds", fds))
        if "zk_uptime" in m:
            rows.append(("uptime", _fmt_uptime(int(m["zk_uptime"]))))
        if "zk_peer_state" in m:
            rows.append(("peer state", m["zk_peer_state"]))
        if "zk_quorum_size" in m:
            rows.append(("voters", m["zk_quorum_size"]))
        if "zk_observer_master_id" in m:
            rows.append(("learns from", f"server {m['zk_observer_master_id']}"))
        if "zk_learners" in m:
            rows.append(("learners", f"{m['zk_learners']} connected; synced: "
                                     f"{m.get('zk_synced_followers', '?')} followers, "
                                     f"{m.get('zk_synced_observers', '?')} observers"))
        if "zk_pending_syncs" in m:
            rows.append(("pending syncs", m["zk_pending_syncs"]))
    else:
        rows.append(("(mntr)", "not allowed by the server's 4lw.commands.whitelist; fewer figures shown"))
    width = max(len(k) for k, _ in rows)
    return "".join(f"{k:<{width}}  {v}\n" for k, v in rows)


def cmd_status(args) -> int:
    text = args.address.strip()
    # a connect string may end with a chroot ("h1:2181,h2:2181/app"): it names no server
    text = text.split("/", 1)[0]
    entries = text.split(",")
    several = len(entries) > 1
    expected = "HOST:PORT[,HOST:PORT...]" if several else "HOST:PORT"
    addresses: list[tuple[str, int]] = []
    for entry in entries:
        try:
            addr = parse_hostport(entry)
        except ValueError as e:
            where = f" in {args.address.strip()!r}" if several else ""
            return _fail(f"{e}{where} (expected {expected})", 2)
        if addr in addresses:
            return _fail(f"{entry.strip()!r} is listed twice in {args.address.strip()!r}", 2)
        addresses.append(addr)
    if args.timeout <= 0:
        return _fail(f"--timeout must be positive, not {args.timeout:g}", 2)
    if not several:
        try:
            st = gather_status(*addresses[0], args.timeout)
        except _CliError as e:
            return _fail(str(e), e.code)
        if args.json:
            import json

            print(json.dumps(st, indent=2, sort_keys=True))
        else:
            sys.stdout.write(format_status(st))
        return 0

    # Several servers (an ensemble): ask them all at once, so one that hangs costs one timeout.
    from concurrent.futures import ThreadPoolExecutor

    def ask(addr: tuple[str, int]) -> dict:
        host, port = addr
        try:
            return gather_status(host, port, args.timeout)
        except _CliError as e:
            return {"server": f"[{host}]:{port}" if ":" in host else f"{host}:{port}", "error": str(e)}

    with ThreadPoolExecutor(max_workers=min(16, len(addresses))) as pool:
        results = list(pool.map(ask, addresses))
    # Lag: how many txns a member is behind the leader (the leader's zxid counter minus its own),
    # comparable only within the leader's epoch.  The servers are asked a moment apart, so a member
    # that looks ahead of the leader is shown as 0 behind.  With several leaders (one cut off and not
    # aware yet) the one of the newest epoch counts.
    leaders = [r for r in results if r.get("mode") == "leader"]
    leader = max(leaders, key=lambda r: r["zxid"], default=None)
    for r in results:
        if "error" in r:
            continue
        if leader is not None and r["zxid_epoch"] == leader["zxid_epoch"]:
            r["lag"] = max(0, leader["zxid_counter"] - r["zxid_counter"])
        else:
            r["lag"] = None
    if args.json:
        import json

        print(json.dumps(results, indent=2, sort_keys=True))
    else:
        sys.stdout.write(format_status(results))
    down = sum(1 for r in results if "error" in r)
    if down:
        print(f"{PROG}: error: {down} of {len(results)} servers did not answer", file=sys.stderr)
        return 1
    return 0


# -- version, bench --------------------------------------------------------------------------------

def cmd_version(args) -> int:
    print(f"coordcore {__version__} (ZooKeeper client protocol {ZK_COMPAT_VERSION}; "
          f"Python {sys.version.split()[0]})")
    return 0


def cmd_ensemble(args) -> int:
    if args.voters < 1 or args.observers < 0 or args.voters + args.observers < 2:
        return _fail("an ensemble needs at least one voter and two members (--voters 3 is the usual)", 2)
    if args.tick_time <= 0:
        return _fail(f"--tick-time must be positive, not {args.tick_time}", 2)
    if args.voters % 2 == 0 or args.voters < 3:
        print(f"{PROG}: warning: {args.voters} voters tolerate {(args.voters - 1) // 2} failed member(s); "
              f"3, 5 or 7 are the usual sizes", file=sys.stderr)
    from coordcore import launch

    return launch.run(args.voters, args.observers, args.data, args.tick_time, {})


def run_sim(argv: list[str]) -> int:
    from coordcore.testing.sim import runner

    return runner.main(argv)


def run_bench(argv: list[str]) -> int:
    try:
        from coordcore import bench
    except ImportError as e:
        return _fail(f"the benchmark is not available: {e}", 1)
    result = bench.main(argv)
    return result if isinstance(result, int) else 0


# -- parser ----------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="coordcore: a compact coordination server that speaks the Apache ZooKeeper client "
                    "protocol (kazoo, zkCli.sh and other ZooKeeper clients connect to it unchanged).",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    s = sub.add_parser(
        "serve", help="run a standalone server until SIGTERM/SIGINT",
        description="Run a standalone coordcore server until SIGTERM or SIGINT (Ctrl-C). Settings come "
                    "from the defaults, then the zoo.cfg given with --config, then the flags (flags win). "
                    f"Defaults: {DEFAULT_HOST}:{DEFAULT_PORT}, data in ./{DEFAULT_DATA_DIR} (relative to "
                    "the current directory), tickTime 2000 ms. Logs go to stderr.",
        epilog="zoo.cfg keys: tickTime, dataDir, dataLogDir, clientPort, clientPortAddress, maxClientCnxns, "
               "minSessionTimeout, maxSessionTimeout, snapCount, 4lw.commands.whitelist, extendedTypesEnabled, "
               "jute.maxbuffer, DigestAuthenticationProvider.superDigest, znode.container.checkIntervalMs, "
               "forceSync. Other ZooKeeper keys are accepted with a warning.")
    s.add_argument("--config", "-c", metavar="ZOO_CFG", help="a ZooKeeper-style zoo.cfg file")
    s.add_argument("--port", "-p", metavar="N", help=f"client port (default {DEFAULT_PORT}; 0 picks a free port)")
    s.add_argument("--host", metavar="ADDR", help=f"address to listen on (default {DEFAULT_HOST})")
    s.add_argument("--data-dir", metavar="DIR", help=f"data directory (default ./{DEFAULT_DATA_DIR})")
    s.add_argument("--tick-time", metavar="MS", help="tickTime in milliseconds (default 2000)")
    s.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                   help="log level (default info)")
    s.add_argument("--log-format", default="console", choices=["console", "json"],
                   help="console lines or JSON lines on stderr (default console)")
    s.set_defaults(func=cmd_serve)

    st = sub.add_parser(
        "status", help="show a server's or an ensemble's mode, zxid, connections, latency",
        description="Ask coordcore or Apache ZooKeeper servers for their status with the 'srvr' and 'mntr' "
                    "four-letter words and print it readably. With one address: a block of figures for "
                    "that server. With several (a connect string, HOST:PORT,HOST:PORT,...): one line per "
                    "server with its address, mode (leader, follower, observer, standalone), zxid, lag "
                    "(how many txns it is behind the leader: the leader's zxid counter minus its own; "
                    "'-' when there is no leader among them or it is in another epoch) and client "
                    "connections; a server that does not answer gets a line saying why.",
        epilog="Exit status: 0 when every server answered; 1 when one did not (unreachable, timed out, "
               "not serving, or not a ZooKeeper server), after printing the others; 2 for a bad address. "
               "A chroot at the end of a connect string (/app) is ignored. Example: coordcore status "
               "zk1:2181,zk2:2181,zk3:2181")
    st.add_argument("address", metavar="HOST:PORT[,HOST:PORT...]",
                    help=f"server address, or several separated by commas (port defaults to {DEFAULT_PORT})")
    st.add_argument("--json", action="store_true",
                    help="print the figures as JSON: an object for one address, a list of objects for several "
                         "(each with 'lag', or 'server' and 'error' for one that did not answer)")
    st.add_argument("--timeout", type=float, default=5.0, metavar="SECONDS",
                    help="connect/read timeout per server (default 5)")
    st.set_defaults(func=cmd_status)

    sub.add_parser(
        "bench", add_help=False, help="load-test a ZooKeeper-protocol server (coordcore bench --help)",
        description="Benchmark; see coordcore bench --help.")

    sub.add_parser(
        "sim", add_help=False,
        help="deterministic simulation of an ensemble under faults, seeded and replayable (coordcore sim --help)",
        description="Simulator; see coordcore sim --help.")

    e = sub.add_parser(
        "ensemble", help="run a local ensemble of coordcore server processes until Ctrl-C",
        description="Start VOTERS (+ OBSERVERS) `coordcore serve` processes on free ports of 127.0.0.1, wait "
                    "until they elect a leader, print the connect string and each member's pid and role, "
                    "then report role changes until Ctrl-C, which stops them all.")
    e.add_argument("--voters", type=int, default=3, help="voting members (default 3; 3, 5 or 7 tolerate 1, 2, 3 "
                                                          "failures)")
    e.add_argument("--observers", type=int, default=0, help="observers: serve reads, never vote (default 0)")
    e.add_argument("--data", metavar="DIR", default=None,
                   help="keep each member's zoo.cfg, log and data under DIR/member-N (reused on the next run); "
                        "default: a temporary directory removed at the end")
    e.add_argument("--tick-time", type=int, default=2000, metavar="MS",
                   help="tickTime of every member (default 2000, ZooKeeper's; smaller fails over faster)")
    e.set_defaults(func=cmd_ensemble)

    v = sub.add_parser("version", help="print coordcore's version",
                       description="Print coordcore's version and the ZooKeeper protocol level it speaks.")
    v.set_defaults(func=cmd_version)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # bench owns its own argument parsing (and --help): hand it everything after the word.
    if argv and argv[0] == "bench":
        return run_bench(argv[1:])
    # sim, too, parses its own flags (coordcore.testing.sim.runner), so its imports stay off start-up.
    if argv and argv[0] == "sim":
        return run_sim(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # stdout closed early (coordcore status | head): not an error worth a traceback.
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:  # pragma: no cover
            pass
        return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
