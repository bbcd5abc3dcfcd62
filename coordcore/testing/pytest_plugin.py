"""pytest fixtures for tests that need a ZooKeeper server: coordcore and/or Apache ZooKeeper.

Loaded automatically once coordcore is installed (``pytest11`` entry point ``coordcore``).

Choosing backends
    ``--zk-backend=coordcore|zookeeper|both`` (default ``both``; or env ``COORDCORE_TEST_BACKEND``).
    Every test that uses one of the fixtures below is parametrized over the selected backends, with ids
    ``[coordcore]`` and ``[zookeeper]``.  When Apache ZooKeeper is selected but not installed, its tests
    FAIL with an install hint (they are never skipped); ``--zk-backend=coordcore`` runs without Java.
    ``@pytest.mark.zk_backends("zookeeper")`` limits one test to some backends.

Fixtures
    ``zk_backend``         the backend name of the current test ("coordcore" or "zookeeper").
    ``zk_server``          a session-wide running server of that backend, shared by all tests: use
                           unique paths (``zk_root``).  Never stop or kill it.  For coordcore it is the
                           in-process server (``EmbeddedCoordcore``) unless ``--zk-coordcore-mode=process``
                           (env ``COORDCORE_TEST_COORDCORE_MODE``).
    ``zk_root``            a unique znode path (``/test-<hex>``) created for this test on ``zk_server``
                           and deleted (recursively) afterwards.
    ``zk_client``          a started ``KazooClient`` connected to ``zk_server``; stopped and closed after.
    ``zk_client_factory``  ``factory(**kwargs) -> started KazooClient``; kwargs go to ``KazooClient``
                           (``hosts`` defaults to ``zk_server``; pass ``server=handle`` to connect to
                           another server).  All clients are stopped and closed after the test.
    ``zk_server_factory``  ``factory(config=None, *, embedded=False, start=True, **kw) -> ServerHandle``:
                           a dedicated fresh server of the test's backend, with a custom config if given,
                           that the test may stop, kill and restart.  For coordcore it is a separate
                           process by default, so ``kill()`` is a real SIGKILL; ``embedded=True`` gives a
                           faster in-process server (whose ``kill()`` is only a stop).  Apache ZooKeeper is
                           always a process.  All are closed (stopped, temp dirs removed) after the test.
    ``zk_ensemble``        a fresh running ensemble of the test's backend (3 voters; see
                           :mod:`coordcore.testing.ensembles`): ``connect_string``, ``leader()``,
                           ``kill(sid)``, ``partition(groups)``, ``expire_session(client)``, ...  Closed
                           (every member stopped, temp dirs removed) after the test.
    ``zk_ensemble_factory`` ``factory(voters=3, observers=0, config=None, start=True, **kw) -> EnsembleHandle``
                           for other shapes; all are closed after the test.
"""
from __future__ import annotations

import os
import uuid

import pytest

from coordcore.testing.servers import (
    BACKENDS,
    ServerHandle,
    ZooKeeperNotFound,
    make_server,
    zookeeper_available,
)

_FIXTURES = {"zk_backend", "zk_server", "zk_root", "zk_client", "zk_client_factory", "zk_server_factory",
             "zk_ensemble", "zk_ensemble_factory"}
_CLIENT_TIMEOUT = 10.0


def pytest_addoption(parser):
    group = parser.getgroup("coordcore", "ZooKeeper test servers (coordcore.testing)")
    group.addoption("--zk-backend", action="store", dest="zk_backend",
                    default=os.environ.get("COORDCORE_TEST_BACKEND", "both"),
                    choices=("coordcore", "zookeeper", "both"),
                    help="server backend(s) for tests using the zk_* fixtures: coordcore, zookeeper or both "
                         "(default: both, or $COORDCORE_TEST_BACKEND)")
    group.addoption("--zk-coordcore-mode", action="store", dest="zk_coordcore_mode",
                    default=os.environ.get("COORDCORE_TEST_COORDCORE_MODE", "embedded"),
                    choices=("embedded", "process"),
                    help="how the shared coordcore zk_server runs: in this process (default) or as a "
                         "child process")


def pytest_configure(config):
    choice = config.getoption("zk_backend", "both")
    if choice not in ("coordcore", "zookeeper", "both"):
        raise pytest.UsageError(f"--zk-backend / COORDCORE_TEST_BACKEND={choice!r}: "
                                "expected coordcore, zookeeper or both")
    config.addinivalue_line("markers", "zk_backends(*names): run this test only on these backends "
                                       "(among those selected with --zk-backend)")


def selected_backends(config) -> list[str]:
    choice = config.getoption("zk_backend", "both") or "both"
    return list(BACKENDS) if choice == "both" else [choice]


def pytest_report_header(config):
    backends = selected_backends(config)
    line = f"coordcore.testing: zk backends = {', '.join(backends)}"
    if "zookeeper" in backends and not zookeeper_available():
        line += " (Apache ZooKeeper NOT installed: its tests will fail; apt-get install zookeeper)"
    return line


def pytest_generate_tests(metafunc):
    if not _FIXTURES.intersection(metafunc.fixturenames):
        return
    for mark in metafunc.definition.iter_markers("parametrize"):
        names = mark.args[0] if mark.args else mark.kwargs.get("argnames", ())
        if isinstance(names, str):
            names = [n.strip() for n in names.split(",")]
        if "zk_backend" in names:
            return  # the test chose its backends itself
    backends = selected_backends(metafunc.config)
    marker = metafunc.definition.get_closest_marker("zk_backends")
    if marker is not None:
        wanted = set(marker.args)
        unknown = wanted - set(BACKENDS)
        if unknown:
            raise pytest.UsageError(f"zk_backends marker: unknown backend(s) {sorted(unknown)}")
        backends = [b for b in backends if b in wanted]
    if not backends:
        # selected backends exclude this test: keep it visible as a skip with the reason
        metafunc.parametrize("zk_backend", [pytest.param(
            None, marks=pytest.mark.skip(reason="backend not selected by --zk-backend"))],
            indirect=True, ids=["no-backend"], scope="session")
        return
    metafunc.parametrize("zk_backend", backends, indirect=True, ids=backends, scope="session")


@pytest.fixture(scope="session")
def zk_backend(request) -> str:
    backend = getattr(request, "param", None)
    if backend is None:
        backends = selected_backends(request.config)
        backend = backends[0]
    return backend


class _SessionServers:
    """Session servers per backend, started on first use, with a cached start failure."""

    def __init__(self, config):
        self.config = config
        self.servers: dict[str, ServerHandle] = {}
        self.errors: dict[str, BaseException] = {}

    def get(self, backend: str) -> ServerHandle:
        if backend in self.errors:
            raise self.errors[backend]
        if backend not in self.servers:
            missing = None
            try:
                embedded = (backend == "coordcore"
                            and self.config.getoption("zk_coordcore_mode", "embedded") == "embedded")
                server = make_server(backend, embedded=embedded)
                server.start()
            except ZooKeeperNotFound as e:
                missing = str(e)
            except BaseException as e:
                self.errors[backend] = e
                raise
            if missing is not None:
                try:
                    pytest.fail(missing, pytrace=False)  # a clear failure, never a skip
                except BaseException as failure:
                    self.errors[backend] = failure
                    raise
            self.servers[backend] = server
        return self.servers[backend]

    def close(self):
        for server in self.servers.values():
            server.close()
        self.servers.clear()


@pytest.fixture(scope="session")
def _zk_session_servers(request):
    servers = _SessionServers(request.config)
    yield servers
    servers.close()


@pytest.fixture(scope="session")
def zk_server(zk_backend, _zk_session_servers) -> ServerHandle:
    return _zk_session_servers.get(zk_backend)


def _start_client(hosts: str, **kwargs):
    from kazoo.client import KazooClient

    kwargs.setdefault("timeout", _CLIENT_TIMEOUT)
    client = KazooClient(hosts=hosts, **kwargs)
    try:
        client.start(timeout=_CLIENT_TIMEOUT)
    except BaseException:
        client.close()
        raise
    return client


def _close_client(client) -> None:
    try:
        client.stop()
    finally:
        client.close()


@pytest.fixture
def zk_client_factory(zk_server):
    clients = []

    def factory(server: ServerHandle | None = None, **kwargs):
        hosts = kwargs.pop("hosts", None) or (server or zk_server).connect_string
        client = _start_client(hosts, **kwargs)
        clients.append(client)
        return client

    yield factory
    for client in reversed(clients):
        try:
            _close_client(client)
        except Exception:
            pass


@pytest.fixture
def zk_client(zk_client_factory):
    return zk_client_factory()


@pytest.fixture
def zk_root(zk_server):
    path = f"/test-{uuid.uuid4().hex[:12]}"
    admin = _start_client(zk_server.connect_string)
    try:
        admin.create(path)
        yield path
        try:
            admin.delete(path, recursive=True)
        except Exception:
            pass  # a test may have removed it, or made it undeletable for this client
    finally:
        _close_client(admin)


@pytest.fixture
def zk_server_factory(zk_backend):
    servers: list[ServerHandle] = []

    def factory(config: dict | None = None, *, embedded: bool = False, start: bool = True,
                **kwargs) -> ServerHandle:
        server = make_server(zk_backend, embedded=embedded, config=config, **kwargs)
        servers.append(server)
        if start:
            server.start()
        return server

    yield factory
    for server in reversed(servers):
        try:
            server.close()
        except Exception:
            pass


@pytest.fixture
def zk_ensemble_factory(zk_backend):
    from coordcore.testing.ensembles import make_ensemble

    ensembles = []

    def factory(voters: int = 3, observers: int = 0, config: dict | None = None, *, start: bool = True,
                **kwargs):
        ens = make_ensemble(zk_backend, voters=voters, observers=observers, config=config, **kwargs)
        ensembles.append(ens)
        if start:
            try:
                ens.start()
            except BaseException:
                ens.close()
                raise
        return ens

    yield factory
    for ens in reversed(ensembles):
        try:
            ens.close()
        except Exception:
            pass


@pytest.fixture
def zk_ensemble(zk_ensemble_factory):
    return zk_ensemble_factory()
