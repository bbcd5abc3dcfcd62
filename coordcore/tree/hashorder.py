"""The orders in which ZooKeeper walks its hash sets: a session's ephemerals, a connection's ids.

ZooKeeper keeps each session's ephemerals in a ``java.util.HashSet<String>`` and, on closeSession
(or expiry) and getEphemerals, walks a copy of it. So the NodeDeleted events of a closing session
reach a watcher in hash-set order, and getEphemerals lists paths in that order. Nothing promises it,
but clients see it, and it is deterministic -- so coordcore reproduces it rather than inventing a
second order:

* ``String.hashCode``: ``h = 31*h + c`` over the UTF-16 code units, as a 32-bit int;
* ``HashMap.hash``: ``h ^ (h >>> 16)``; the bucket is that value masked by (capacity - 1);
* the copy (``HashSet.clone``) is sized for its element count ``n``: capacity
  ``tableSizeFor(int(n / 0.75 + 1))``, and is filled in the original's iteration order, so inside one
  bucket of the copy the entries follow the original's buckets (capacity 16, doubled whenever the
  count passes 3/4 of it), and inside one of those, insertion (creation) order.

The original's capacity is derived from the current count; it is larger in ZooKeeper when the
session once held more ephemerals than now (the table never shrinks), which can reorder entries that
share a bucket of the copy. For a session that never held more than 12 at once the order is exact.
Pure: no I/O, no clock.
"""
from __future__ import annotations

import struct


def java_string_hash(s: str) -> int:
    """``String.hashCode()`` of ``s`` as an unsigned 32-bit value."""
    units = s.encode("utf-16-be", "surrogatepass")
    h = 0
    for unit in struct.unpack(">%dH" % (len(units) // 2), units):
        h = (31 * h + unit) & 0xFFFFFFFF
    return h


def _spread(h: int) -> int:
    return h ^ (h >> 16)


def _table_size_for(c: int) -> int:
    n = 1
    while n < c:
        n <<= 1
    return n


def hash_set_order(committed: list[tuple[str, int]], added: list[tuple[str, int]] = ()) -> list[str]:
    """Paths in the order ZooKeeper walks a copy of a session's ephemerals set.

    ``committed`` are the ``(path, czxid)`` in the tree (the czxid gives the insertion order into the
    original set); ``added`` are ephemerals whose creation is still in flight, which ZooKeeper adds
    to the copy afterwards, in zxid order (paths in flight to deletion are simply left out).
    """
    n0 = len(committed)
    size = n0 + len(added)
    if size == 0:
        return []
    copy_cap = _table_size_for(int(n0 / 0.75 + 1.0)) if n0 else 16
    while size > copy_cap * 3 // 4:  # the copy grows as the in-flight ones are added
        copy_cap <<= 1
    orig_cap = 16
    while n0 > orig_cap * 3 // 4:
        orig_cap <<= 1
    keyed = []
    for path, czxid in committed:
        h = _spread(java_string_hash(path))
        keyed.append((h & (copy_cap - 1), 0, h & (orig_cap - 1), czxid, path))
    for path, czxid in added:
        h = _spread(java_string_hash(path))
        keyed.append((h & (copy_cap - 1), 1, 0, czxid, path))
    keyed.sort()
    return [k[4] for k in keyed]


def _int32(x: int) -> int:
    x &= 0xFFFFFFFF
    return x - (1 << 32) if x >= 1 << 31 else x


def java_id_hash(scheme: str, ident: str) -> int:
    """``hashCode()`` of a jute ``Id(scheme, id)`` record, as an unsigned 32-bit value."""
    result = _int32(37 * 17 + _int32(java_string_hash(scheme)))
    return _int32(37 * result + _int32(java_string_hash(ident))) & 0xFFFFFFFF


def id_set_order(ids: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """A connection's authenticated ids in the order ZooKeeper lists them (whoAmI, the ``auth`` ACL
    scheme): it keeps them in a hash set (a ConcurrentHashMap's key set, table of 16), so the order is
    by bucket, and by the order they were added inside one. ``ids`` are in the order added -- the ip id
    first, at connect. Exact below 12 ids (beyond that the table grows and its re-bucketing is not
    modelled)."""
    cap = 16
    while len(ids) >= cap - (cap >> 2):
        cap <<= 1
    keyed = sorted((_spread(java_id_hash(s, i)) & (cap - 1), n) for n, (s, i) in enumerate(ids))
    return [ids[n] for _, n in keyed]
