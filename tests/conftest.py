"""Test-suite configuration.

The zk_* fixtures (zk_server, zk_client, zk_root, zk_client_factory, zk_server_factory) come from
coordcore's pytest plugin, normally loaded through its ``pytest11`` entry point; when entry-point
plugins are disabled (PYTEST_DISABLE_PLUGIN_AUTOLOAD), load it here so the suite still runs.
Select backends with ``--zk-backend=coordcore|zookeeper|both``.

``--rewrite`` makes the data-driven scripts (tests/datadriven.py, e.g. tests/zab/testdata/*.txt) record
their actual output instead of comparing it; the `rewrite` fixture carries the flag.
"""
import os

import pytest

if os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
    pytest_plugins = ["coordcore.testing.pytest_plugin"]


def pytest_addoption(parser):
    parser.addoption("--rewrite", action="store_true", default=False,
                     help="data-driven scripts (tests/datadriven.py): write the actual output into the "
                          "script instead of comparing; review the diff before committing")


@pytest.fixture
def rewrite(request) -> bool:
    """True when pytest runs with --rewrite: data-driven scripts record their output instead of comparing."""
    return bool(request.config.getoption("--rewrite"))
