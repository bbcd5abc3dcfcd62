"""The ``coordcore`` command line: help, exit codes and messages, serve's config layering, status
against live servers (Apache ZooKeeper and coordcore) and a closed port, bench delegation."""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import types

import pytest

from coordcore import __version__, cli
from coordcore.config import ServerConfig
from coordcore.testing.servers import free_port


@pytest.fixture(autouse=True)
def _restore_logging():
    """Tests here configure logging onto captured streams; put the defaults back afterwards."""
    import logging

    import structlog

    saved = structlog.get_config()
    yield
    structlog.configure(**saved)
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_coordcore", False):
            root.removeHandler(h)


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    try:
        code = cli.main(list(argv))
    except SystemExit as e:  # argparse: --help (0) and usage errors (2)
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def run_process(*argv, timeout=60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "coordcore", *argv], capture_output=True, text=True,
                          timeout=timeout)


# -- help and usage ----------------------------------------------------------------------------------

def test_top_level_help_lists_the_subcommands(capsys):
    code, out, _ = run_cli(capsys, "--help")
    assert code == 0
    for word in ("serve", "status", "bench", "version"):
        assert re.search(rf"^\s+{word}\s", out, re.M), word


@pytest.mark.parametrize("sub, flags", [
    ("serve", ["--config", "--port", "--host", "--data-dir", "--tick-time", "--log-level", "--log-format"]),
    ("status", ["HOST:PORT", "--json", "--timeout"]),
    ("version", []),
])
def test_subcommand_help(capsys, sub, flags):
    code, out, _ = run_cli(capsys, sub, "--help")
    assert code == 0
    assert out.startswith(f"usage: coordcore {sub}")
    for flag in flags:
        assert flag in out


def test_no_subcommand_is_a_usage_error(capsys):
    code, _, err = run_cli(capsys)
    assert code == 2
    assert "coordcore: error:" in err


def test_unknown_subcommand_is_a_usage_error(capsys):
    code, _, err = run_cli(capsys, "frobnicate")
    assert code == 2
    assert "invalid choice" in err


def test_version(capsys):
    code, out, _ = run_cli(capsys, "version")
    assert code == 0
    assert out.startswith(f"coordcore {__version__} ")


def test_console_entry_point_runs_as_a_module():
    proc = run_process("version")
    assert proc.returncode == 0, proc.stderr
    assert __version__ in proc.stdout


def test_help_does_not_import_kazoo_or_the_runtime():
    # the serve path must start fast: nothing heavy at import time
    code = ("import sys; from coordcore import cli; "
            "bad = [m for m in sys.modules if m.startswith(('kazoo', 'coordcore.runtime', 'structlog'))]; "
            "print(','.join(bad))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""


# -- serve ---------------------------------------------------------------------------------------------

def serve_args(*argv):
    parser = cli.build_parser()
    return parser.parse_args(["serve", *argv])


def test_serve_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg, warnings = cli.build_serve_config(serve_args())
    assert (cfg.client_port_address, cfg.client_port) == ("127.0.0.1", 2181)
    assert cfg.data_dir == str(tmp_path / "coordcore-data")
    assert warnings == []


def test_serve_flags_override_the_config_file(tmp_path):
    zoo = tmp_path / "zoo.cfg"
    zoo.write_text(f"tickTime=1000\nclientPort=3000\ndataDir={tmp_path}/from-file\nsnapCount=77\nbogus=1\n")
    cfg, warnings = cli.build_serve_config(serve_args("--config", str(zoo), "--port", "0", "--host", "::1",
                                                      "--data-dir", str(tmp_path / "from-flag"),
                                                      "--tick-time", "200"))
    assert (cfg.client_port, cfg.client_port_address, cfg.tick_ms) == (0, "::1", 200)
    assert cfg.data_dir == str(tmp_path / "from-flag")
    assert cfg.snap_count == 77  # from the file, no flag for it
    assert len(warnings) == 1 and "bogus" in warnings[0]


@pytest.mark.parametrize("argv, message", [
    (["--port", "99999"], "--port 99999"),
    (["--port", "x"], "not an integer"),
    (["--tick-time", "-1"], "--tick-time -1"),
    (["--data-dir", ""], "dataDir"),
])
def test_serve_bad_flags_exit_2_with_a_message(capsys, argv, message):
    code, _, err = run_cli(capsys, "serve", *argv)
    assert code == 2
    assert err.startswith("coordcore: error: ")
    assert message in err


def test_serve_bad_config_file_exits_2(capsys, tmp_path):
    zoo = tmp_path / "zoo.cfg"
    zoo.write_text("minSessionTimeout=50000\nmaxSessionTimeout=4000\n")
    code, _, err = run_cli(capsys, "serve", "--config", str(zoo))
    assert code == 2
    assert "coordcore: error: minSessionTimeout must not be larger than maxSessionTimeout" in err
    code, _, err = run_cli(capsys, "serve", "--config", str(tmp_path / "missing.cfg"))
    assert code == 2
    assert "cannot read config file" in err and "missing.cfg" in err


def test_tick_time_flag_is_checked_against_the_files_session_bounds(capsys, tmp_path):
    zoo = tmp_path / "zoo.cfg"
    zoo.write_text("maxSessionTimeout=4000\n")
    code, _, err = run_cli(capsys, "serve", "--config", str(zoo), "--tick-time", "3000")  # min = 6000 > 4000
    assert code == 2
    assert "--tick-time 3000" in err and "minSessionTimeout must not be larger" in err


def test_serve_logs_config_warnings_then_runs_the_server(capsys, tmp_path, monkeypatch):
    seen: list[ServerConfig] = []
    fake = types.ModuleType("coordcore.runtime.serve")
    fake.run = lambda config: seen.append(config)
    import coordcore.runtime

    monkeypatch.setitem(sys.modules, "coordcore.runtime.serve", fake)
    monkeypatch.setattr(coordcore.runtime, "serve", fake, raising=False)
    zoo = tmp_path / "zoo.cfg"
    zoo.write_text(f"dataDir={tmp_path}/d\nfrobnicate=1\n")
    code, _, err = run_cli(capsys, "serve", "--config", str(zoo), "--port", "0", "--log-format", "json")
    assert code == 0
    assert len(seen) == 1 and seen[0].client_port == 0 and seen[0].data_dir == str(tmp_path / "d")
    events = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    warning = next(e for e in events if e["event"] == "config.warning")
    assert warning["level"] == "warning" and "frobnicate" in warning["warning"] and "timestamp" in warning


def test_serve_end_to_end_json_logs_and_sigterm(tmp_path):
    import signal

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "coordcore", "serve", "--port", str(port),
                             "--data-dir", str(tmp_path / "data"), "--log-format", "json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        reply = ""
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                reply = cli.four_letter("127.0.0.1", port, "srvr", timeout=2)
                if reply.startswith("Zookeeper version:"):
                    break
            except OSError:
                time.sleep(0.05)
        assert reply.startswith("Zookeeper version:"), f"server did not come up; exit={proc.poll()}"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    events = [json.loads(line)["event"] for line in err.splitlines() if line.startswith("{")]
    assert "server.started" in events and "server.stopping" in events


def test_console_logs_name_the_event_and_filter_by_level():
    import io

    import structlog

    from coordcore.logs import configure_logging

    out = io.StringIO()
    configure_logging("info", "console", stream=out)
    log = structlog.get_logger("coordcore")
    log.info("server.started", host="127.0.0.1", port=2181)
    log.debug("client.connected", remote="127.0.0.1:5")
    text = out.getvalue()
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z \[info\s*\] server\.started ", text)
    assert "port=2181" in text and "client.connected" not in text
    out = io.StringIO()
    configure_logging("debug", "json", stream=out)
    structlog.get_logger("coordcore").debug("client.connected", remote="127.0.0.1:5")
    event = json.loads(out.getvalue())
    assert list(event)[:4] == ["timestamp", "level", "event", "logger"]
    assert (event["event"], event["level"], event["logger"]) == ("client.connected", "debug", "coordcore")
    with pytest.raises(ValueError):
        configure_logging("loud")
    with pytest.raises(ValueError):
        configure_logging("info", "xml")


# -- status --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("127.0.0.1:2182", ("127.0.0.1", 2182)),
    ("localhost", ("localhost", 2181)),
    ("[::1]:3000", ("::1", 3000)),
    ("[::1]", ("::1", 2181)),
    ("::1", ("::1", 2181)),
])
def test_parse_hostport(text, expected):
    assert cli.parse_hostport(text) == expected


@pytest.mark.parametrize("text", ["", "host:", "host:abc", "host:70000", ":2181", "[::1"])
def test_parse_hostport_rejects(text):
    if text == "host:":
        assert cli.parse_hostport(text) == ("host", 2181)  # empty port means the default
        return
    with pytest.raises(ValueError):
        cli.parse_hostport(text)


# The status tests on live servers run the real command in a child process: an in-process server's
# log lines (structlog prints to stdout by default) must not mix into the output under test.

def test_status_of_a_live_server(zk_server, zk_client, zk_root):
    zk_client.create(f"{zk_root}/n", b"x")
    proc = run_process("status", zk_server.connect_string)
    code, out, err = proc.returncode, proc.stdout, proc.stderr
    assert code == 0, err
    fields = dict(re.split(r"\s{2,}", line.strip(), maxsplit=1) for line in out.splitlines())
    assert fields["server"] == zk_server.connect_string
    assert fields["mode"] == "standalone"
    assert re.fullmatch(r"0x[0-9a-f]+ \(epoch \d+, counter \d+\)", fields["zxid"])
    assert int(fields["connections"]) >= 1
    assert int(fields["znodes"]) >= 3
    assert re.fullmatch(r"min \S+ ms, avg \S+ ms, max \S+ ms", fields["latency"])
    assert "watches" in fields and "uptime" in fields  # from mntr


def test_status_json(zk_server, zk_client):
    proc = run_process("status", zk_server.connect_string, "--json")
    code, out, err = proc.returncode, proc.stdout, proc.stderr
    assert code == 0, err
    st = json.loads(out)
    assert st["mode"] == "standalone"
    assert st["zxid_hex"] == hex(st["zxid"])
    assert (st["zxid_epoch"] << 32) | st["zxid_counter"] == st["zxid"]
    assert st["connections"] >= 1 and st["node_count"] >= 2
    assert st["version"].startswith("3.8.")
    assert st["mntr"]["zk_server_state"] == "standalone"


def test_status_without_mntr_in_the_whitelist(zk_server_factory):
    server = zk_server_factory({"4lw.commands.whitelist": "ruok"})
    proc = run_process("status", server.connect_string)
    code, out, err = proc.returncode, proc.stdout, proc.stderr
    assert code == 0, err
    assert "mode" in out and "standalone" in out
    assert "not allowed" in out


def test_status_of_a_closed_port(capsys):
    port = free_port()
    code, out, err = run_cli(capsys, "status", f"127.0.0.1:{port}")
    assert code == 1
    assert out == ""
    assert err.startswith(f"coordcore: error: cannot reach 127.0.0.1:{port}: ")


def test_status_of_something_that_is_not_zookeeper(capsys):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    srv.settimeout(10)

    def answer():
        try:
            conn, _ = srv.accept()
            conn.recv(4)
            conn.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\n")
            conn.close()
        except OSError:
            pass

    t = threading.Thread(target=answer, daemon=True)
    t.start()
    try:
        code, _, err = run_cli(capsys, "status", f"127.0.0.1:{srv.getsockname()[1]}", "--timeout", "5")
    finally:
        t.join(10)
        srv.close()
    assert code == 1
    assert "did not answer 'srvr' like a ZooKeeper server" in err


def test_status_bad_address_is_a_usage_error(capsys):
    code, _, err = run_cli(capsys, "status", "host:notaport")
    assert code == 2
    assert "coordcore: error: bad port" in err


def test_status_process_exit_code_for_a_closed_port():
    port = free_port()
    proc = run_process("status", f"127.0.0.1:{port}")
    assert proc.returncode == 1
    assert f"cannot reach 127.0.0.1:{port}" in proc.stderr


# -- bench ---------------------------------------------------------------------------------------------

def test_bench_is_delegated_with_its_arguments(capsys, monkeypatch):
    calls = []
    fake = types.ModuleType("coordcore.bench")
    fake.main = lambda argv: calls.append(argv) or 0
    import coordcore

    monkeypatch.setitem(sys.modules, "coordcore.bench", fake)
    monkeypatch.setattr(coordcore, "bench", fake, raising=False)
    code, _, _ = run_cli(capsys, "bench", "--help", "--ops", "get")
    assert code == 0
    assert calls == [["--help", "--ops", "get"]]
