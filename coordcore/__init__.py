"""coordcore: a compact coordination server speaking the Apache ZooKeeper client protocol."""

__version__ = "0.1.0"

# The version string reported to clients (srvr, envi, mntr).  kazoo's
# server_version() parses the leading dotted digits, so we report the
# ZooKeeper protocol level we implement and our own name after it.
ZK_COMPAT_VERSION = "3.8.0"
