"""The test-server launchers: each backend starts on a free port, serves kazoo, keeps its data across
stop/kill/restart, and honours the config keys we map for it."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError, NoNodeError, UnimplementedError
from kazoo.security import make_acl, make_digest_acl_credential

from coordcore.testing import (
    ServerStartError,
    ZooKeeperNotFound,
    ZooKeeperProcess,
    free_port,
    make_server,
)
from coordcore.testing.kazoo_ext import create_container, create_ttl


def _client(server, **kw):
    c = KazooClient(hosts=server.connect_string, timeout=10, **kw)
    c.start(timeout=15)
    return c


def _close(c):
    c.stop()
    c.close()


def _wait_until(predicate, timeout=20.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def test_free_port_is_bindable():
    import socket

    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_starts_on_free_port_and_serves(zk_server_factory, zk_backend):
    server = zk_server_factory()
    assert server.backend == zk_backend
    assert server.host == "127.0.0.1" and server.port > 0
    assert server.connect_string == f"127.0.0.1:{server.port}"
    assert server.pid is not None and server.pid != os.getpid()
    assert server.four_letter("ruok") == "imok"
    assert "Mode: standalone" in server.four_letter("srvr")
    c = _client(server)
    try:
        c.create("/hello", b"world")
        assert c.get("/hello")[0] == b"world"
    finally:
        _close(c)


def test_kill_restart_keeps_acknowledged_data(zk_server_factory):
    server = zk_server_factory()
    port, data_dir, old_pid = server.port, server.data_dir, server.pid
    c = _client(server)
    try:
        c.create("/persistent", b"v0")
        c.set("/persistent", b"v1")
        c.create("/persistent/child", b"c")
    finally:
        _close(c)
    server.kill()
    assert server.pid is None
    server.restart()
    assert (server.port, server.data_dir) == (port, data_dir)
    assert server.pid not in (None, old_pid)
    c = _client(server)
    try:
        data, stat = c.get("/persistent")
        assert data == b"v1" and stat.version == 1
        assert c.get_children("/persistent") == ["child"]
        # the zxid counter continues past the pre-crash writes
        _, new_stat = c.create("/after-restart", include_data=True)
        assert new_stat.czxid > stat.mzxid
    finally:
        _close(c)


def test_stop_restart_keeps_data_and_close_removes_temp_dirs(zk_server_factory):
    server = zk_server_factory()
    c = _client(server)
    try:
        c.create("/kept", b"yes")
    finally:
        _close(c)
    server.stop()
    assert server.pid is None
    with pytest.raises(OSError):
        server.four_letter("ruok", timeout=2)
    server.restart()
    c = _client(server)
    try:
        assert c.get("/kept")[0] == b"yes"
    finally:
        _close(c)
    work_dir = server.work_dir
    assert server.data_dir.is_relative_to(work_dir)
    server.close()
    assert not work_dir.exists()


def test_given_data_dir_is_reused_and_kept(zk_backend, tmp_path):
    data_dir = tmp_path / "data"
    with make_server(zk_backend, data_dir=data_dir) as first:
        c = _client(first)
        try:
            c.create("/shared", b"1")
        finally:
            _close(c)
    assert data_dir.is_dir() and any(data_dir.iterdir())
    with make_server(zk_backend, data_dir=data_dir) as second:
        c = _client(second)
        try:
            assert c.get("/shared")[0] == b"1"
        finally:
            _close(c)
    assert data_dir.is_dir()


def test_launcher_owned_keys_are_rejected(zk_backend):
    with pytest.raises(ValueError, match="clientPort"):
        make_server(zk_backend, config={"clientPort": 2181})


def test_start_failure_reports_log_tail(zk_server_factory):
    server = zk_server_factory({"tickTime": "not-a-number"}, start=False)
    with pytest.raises(ServerStartError) as info:
        server.start(timeout=60)
    message = str(info.value)
    assert str(server.log_path) in message
    assert "tickTime" in message or "not-a-number" in message
    assert server.pid is None


# -- config keys mapped for each backend ------------------------------------------------------

def test_ttl_nodes_need_extended_types(zk_server_factory):
    plain = zk_server_factory()
    c = _client(plain)
    try:
        with pytest.raises(UnimplementedError):
            create_ttl(c, "/ttl", b"x", ttl_ms=1000)
    finally:
        _close(c)
    extended = zk_server_factory({"extendedTypesEnabled": True, "znode.container.checkIntervalMs": 100})
    c = _client(extended)
    try:
        path, stat = create_ttl(c, "/ttl", b"x", ttl_ms=300)
        assert path == "/ttl" and stat.ephemeralOwner == 0
        # an empty TTL node that is not modified for its TTL is removed by the reaper
        assert _wait_until(lambda: c.exists("/ttl") is None), "TTL node was never reaped"
    finally:
        _close(c)


def test_container_check_interval_is_applied(zk_server_factory):
    server = zk_server_factory({"znode.container.checkIntervalMs": 100})
    c = _client(server)
    try:
        path, _ = create_container(c, "/box")
        assert path == "/box"
        c.create("/box/item")
        c.delete("/box/item")
        # with the default 60 s interval this would not happen within the wait
        assert _wait_until(lambda: c.exists("/box") is None), "container was never reaped"
    finally:
        _close(c)


def test_super_digest_is_applied(zk_server_factory):
    digest = make_digest_acl_credential("super", "secret")
    server = zk_server_factory({"DigestAuthenticationProvider.superDigest": digest})
    owner = _client(server, auth_data=[("digest", "alice:pw")])
    other = _client(server)
    root = _client(server, auth_data=[("digest", "super:secret")])
    try:
        owner.create("/private", b"secret-data", acl=[make_acl("digest", make_digest_acl_credential("alice", "pw"),
                                                               all=True)])
        with pytest.raises(NoAuthError):
            other.get("/private")
        assert root.get("/private")[0] == b"secret-data"
    finally:
        for c in (owner, other, root):
            _close(c)


def test_jute_maxbuffer_is_applied(zk_server_factory):
    server = zk_server_factory({"jute.maxbuffer": 4096})
    c = _client(server)
    try:
        c.create("/small", b"x" * 1000)
        assert c.get("/small")[0] == b"x" * 1000
        # a frame over the limit is refused (an error or the connection dropped); either way no write
        with pytest.raises(Exception):
            c.set("/small", b"y" * 20000)
    finally:
        _close(c)
    c = _client(server)
    try:
        assert c.get("/small")[0] == b"x" * 1000
    finally:
        _close(c)


# -- Apache ZooKeeper specifics -----------------------------------------------------------------

def test_zookeeper_missing_raises_with_install_hint(monkeypatch, tmp_path):
    monkeypatch.setenv("ZOOKEEPER_CLASSPATH", str(tmp_path / "no-such.jar"))
    with pytest.raises(ZooKeeperNotFound, match="apt-get install zookeeper"):
        ZooKeeperProcess()


@pytest.mark.zk_backends("zookeeper")
def test_zookeeper_does_not_bind_admin_port_and_logs_to_file(zk_server_factory):
    server = zk_server_factory()
    assert server.zoo_cfg()["admin.enableServer"] == "false"
    log_text = server.log_path.read_text()
    # the server logs to our file (not the console), and no AdminServer (port 8080) was started
    assert f"binding to port /127.0.0.1:{server.port}" in log_text
    assert "AdminServer" not in log_text.replace("admin.enableServer", "")


# -- the pytest plugin ------------------------------------------------------------------------

_PLUGIN_TEST = textwrap.dedent('''
    def test_uses_client(zk_client, zk_root, zk_backend):
        zk_client.create(zk_root + "/n", zk_backend.encode())
        assert zk_client.get(zk_root + "/n")[0] == zk_backend.encode()

    def test_plain():
        pass
''')


def _run_pytest(tmp_path, *args, env_extra=None):
    (tmp_path / "test_user.py").write_text(_PLUGIN_TEST)
    env = dict(os.environ)
    env.pop("COORDCORE_TEST_BACKEND", None)
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--rootdir",
                           str(tmp_path), str(tmp_path / "test_user.py"), *args],
                          capture_output=True, text=True, timeout=100, cwd=str(tmp_path), env=env)


def test_plugin_parametrizes_over_selected_backends(tmp_path):
    out = _run_pytest(tmp_path, "--collect-only")
    assert "test_uses_client[coordcore]" in out.stdout and "test_uses_client[zookeeper]" in out.stdout
    assert "test_plain[" not in out.stdout
    out = _run_pytest(tmp_path, "--collect-only", env_extra={"COORDCORE_TEST_BACKEND": "zookeeper"})
    assert "test_uses_client[zookeeper]" in out.stdout and "[coordcore]" not in out.stdout


def test_plugin_fails_not_skips_when_zookeeper_is_missing(tmp_path):
    out = _run_pytest(tmp_path, "--zk-backend=zookeeper",
                      env_extra={"ZOOKEEPER_CLASSPATH": str(tmp_path / "no-such.jar")})
    assert out.returncode != 0, out.stdout
    assert "apt-get install zookeeper" in out.stdout
    assert "skipped" not in out.stdout.splitlines()[-1]


def test_plugin_runs_a_users_test(tmp_path, zk_backend):
    out = _run_pytest(tmp_path, f"--zk-backend={zk_backend}")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "2 passed" in out.stdout


@pytest.mark.zk_backends("coordcore")
def test_plugin_shared_coordcore_server_as_a_process(tmp_path, zk_backend):
    out = _run_pytest(tmp_path, "--zk-backend=coordcore", "--zk-coordcore-mode=process")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "2 passed" in out.stdout


# -- coordcore in-process -----------------------------------------------------------------------

@pytest.mark.zk_backends("coordcore")
def test_embedded_coordcore_serves_and_keeps_data_across_restart(zk_server_factory):
    server = zk_server_factory({"snapCount": 1000}, embedded=True)
    assert server.pid is None  # it runs inside this process
    assert server.four_letter("ruok") == "imok"
    c = _client(server)
    try:
        c.create("/embedded", b"1")
    finally:
        _close(c)
    port = server.port
    server.kill()  # for the embedded server this is a stop: a thread cannot be crashed
    server.restart()
    assert server.port == port
    c = _client(server)
    try:
        assert c.get("/embedded")[0] == b"1"
    finally:
        _close(c)
