"""Create modes kazoo 2.11 has no call for: container nodes and TTL nodes.

They are ordinary ZooKeeper requests (``createContainer`` = opcode 19, ``createTTL`` = opcode 21), sent
through kazoo's own connection so errors map to kazoo's exceptions (e.g. ``UnimplementedError`` when the
server has TTL nodes disabled).  Both return ``(path, ZnodeStat)`` like ``create(include_data=True)``.
"""
from __future__ import annotations

from collections import namedtuple

from kazoo.protocol.serialization import Create2, long_struct

PERSISTENT_WITH_TTL = 5
PERSISTENT_SEQUENTIAL_WITH_TTL = 6
CONTAINER = 4


class CreateContainer(Create2):
    type = 19


class CreateTTL(namedtuple("CreateTTL", "path data acl flags ttl")):
    type = 21

    def serialize(self):
        b = Create2(self.path, self.data, self.acl, self.flags).serialize()
        b.extend(long_struct.pack(self.ttl))
        return b

    deserialize = Create2.deserialize


def _send(client, request, timeout: float | None):
    async_result = client.handler.async_result()
    client._call(request, async_result)
    path, stat = async_result.get(timeout=timeout)
    return client.unchroot(path), stat


def _acl(client, acl):
    if acl is not None:
        return acl
    from kazoo.security import OPEN_ACL_UNSAFE

    return client.default_acl or OPEN_ACL_UNSAFE


def create_container(client, path: str, value: bytes = b"", acl=None, timeout: float | None = 10):
    """Create a container node (removed by the server once its last child is gone)."""
    request = CreateContainer(client.chroot + path if client.chroot else path, value, _acl(client, acl),
                              CONTAINER)
    return _send(client, request, timeout)


def create_ttl(client, path: str, value: bytes = b"", ttl_ms: int = 1000, sequence: bool = False, acl=None,
               timeout: float | None = 10):
    """Create a persistent node with a TTL (removed once empty and unmodified for ``ttl_ms``).

    Needs ``extendedTypesEnabled=true`` on the server, else raises ``kazoo.exceptions.UnimplementedError``.
    """
    flags = PERSISTENT_SEQUENTIAL_WITH_TTL if sequence else PERSISTENT_WITH_TTL
    request = CreateTTL(client.chroot + path if client.chroot else path, value, _acl(client, acl), flags,
                        ttl_ms)
    return _send(client, request, timeout)


__all__ = ["create_container", "create_ttl", "CreateContainer", "CreateTTL"]
