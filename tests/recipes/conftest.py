"""Where a recipe failure test runs: the shared standalone server, or a 3-member ensemble.

The ``deployment`` fixture runs a test twice per backend: on the session's standalone server (ids
``[server-...]``) and on a 3-voter ensemble of real processes of the same backend (``[ensemble-...]``),
one per module and backend, shared by its tests as the standalone server is (each test works under
its own root).  Both give the test the same verbs, so one test body states what a user relies on in
either deployment:

``connect_string``      every member (an ensemble's client proxies): clients fail over between them
``root``                a fresh znode for this test
``client(timeout=...)`` a started KazooClient on ``connect_string``, closed after the test
``expire(client)``      the server(s) expire ``client``'s session: on the standalone server a second
                        connection attaches to the session and closes it; on the ensemble the client
                        is cut off from every member until the leader expires it
``cut_off(client)`` / ``reconnect(client)``
                        the servers become unreachable for this client and come back: the standalone
                        server is stopped and started again (every session goes through a restart);
                        on the ensemble the client alone is cut off from every member, a partition,
                        and then healed
"""
from __future__ import annotations

import uuid

import pytest

from coordcore.testing.ensembles import make_ensemble
from recipe_helpers import expire_session


class Deployment:
    def __init__(self, kind: str, connect_string: str, client_factory, root: str) -> None:
        self.kind = kind
        self.connect_string = connect_string
        self._client_factory = client_factory
        self.root = root

    def client(self, **kwargs):
        return self._client_factory(hosts=self.connect_string, **kwargs)


class ServerDeployment(Deployment):
    def __init__(self, server, client_factory, root: str) -> None:
        super().__init__("server", server.connect_string, client_factory, root)
        self.server = server

    def expire(self, client) -> None:
        expire_session(client, self.connect_string)

    def cut_off(self, client) -> None:
        self.server.stop()

    def reconnect(self, client) -> None:
        self.server.start()


class EnsembleDeployment(Deployment):
    def __init__(self, ensemble, client_factory, root: str) -> None:
        super().__init__("ensemble", ensemble.connect_string, client_factory, root)
        self.ensemble = ensemble

    def expire(self, client) -> None:
        self.ensemble.expire_session(client)

    def cut_off(self, client) -> None:
        for sid in self.ensemble.sids:
            self.ensemble.cut_client(client, sid)

    def reconnect(self, client) -> None:
        for sid in self.ensemble.sids:
            self.ensemble.heal_client(client, sid)


@pytest.fixture(scope="module")
def _module_ensemble(zk_backend):
    """One 3-voter ensemble per module and backend; a test that left a member down gets it back."""
    ens = make_ensemble(zk_backend, voters=3)
    try:
        ens.start()
        yield ens
    finally:
        ens.close()


def _fresh_root(client) -> str:
    path = f"/test-{uuid.uuid4().hex[:12]}"
    client.create(path)
    return path


def _remove_quietly(client, path: str) -> None:
    try:
        client.delete(path, recursive=True)
    except Exception:  # noqa: BLE001 - best effort: the server may be gone, the test may have removed it
        pass


@pytest.fixture(params=["server", "ensemble"])
def deployment(request, zk_backend, zk_server_factory, zk_client_factory):
    """A deployment of the test's backend: see the module docstring.  Tests that stop the standalone
    server get a dedicated one (``cut_off`` stops it); the others share the session's."""
    if request.param == "server":
        if request.node.get_closest_marker("stops_server"):
            server = zk_server_factory()
        else:
            server = request.getfixturevalue("zk_server")
        admin = zk_client_factory(hosts=server.connect_string)
        root = _fresh_root(admin)
        yield ServerDeployment(server, zk_client_factory, root)
        _remove_quietly(admin, root)
        return
    ens = request.getfixturevalue("_module_ensemble")
    ens.heal()
    for sid in ens.sids:
        if not ens.running(sid):
            ens.start_member(sid)
    ens.wait_serving(60)
    admin = zk_client_factory(hosts=ens.connect_string)
    root = _fresh_root(admin)
    yield EnsembleDeployment(ens, zk_client_factory, root)
    ens.heal()
    _remove_quietly(admin, root)


def pytest_configure(config):
    config.addinivalue_line("markers", "stops_server: the test stops its standalone server "
                                       "(deployment gives it a dedicated one)")
