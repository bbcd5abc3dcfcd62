"""Test-suite configuration.

The zk_* fixtures (zk_server, zk_client, zk_root, zk_client_factory, zk_server_factory) come from
coordcore's pytest plugin, normally loaded through its ``pytest11`` entry point; when entry-point
plugins are disabled (PYTEST_DISABLE_PLUGIN_AUTOLOAD), load it here so the suite still runs.
Select backends with ``--zk-backend=coordcore|zookeeper|both``.
"""
import os

if os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
    pytest_plugins = ["coordcore.testing.pytest_plugin"]
