"""Test support: server launchers (coordcore and Apache ZooKeeper) and a pytest plugin.

See :mod:`coordcore.testing.servers` for the launchers and :mod:`coordcore.testing.pytest_plugin` for
the fixtures (``zk_server``, ``zk_client``, ``zk_root``, ``zk_client_factory``, ``zk_server_factory``,
``zk_ensemble``, ``zk_ensemble_factory``); :mod:`coordcore.testing.ensembles` for ensembles of server
processes with fault injection.
"""
from coordcore.testing.ensembles import CoordcoreEnsemble, EnsembleHandle, ZooKeeperEnsemble, make_ensemble
from coordcore.testing.servers import (
    BACKENDS,
    DEFAULT_TEST_CONFIG,
    CoordcoreProcess,
    EmbeddedCoordcore,
    ServerHandle,
    ServerStartError,
    ZooKeeperNotFound,
    ZooKeeperProcess,
    find_zkcli,
    four_letter_word,
    free_port,
    make_server,
    zookeeper_available,
)

__all__ = [
    "BACKENDS", "DEFAULT_TEST_CONFIG", "CoordcoreProcess", "EmbeddedCoordcore", "ServerHandle",
    "ServerStartError", "ZooKeeperNotFound", "ZooKeeperProcess", "find_zkcli", "four_letter_word",
    "free_port", "make_server", "zookeeper_available",
    "CoordcoreEnsemble", "EnsembleHandle", "ZooKeeperEnsemble", "make_ensemble",
]
