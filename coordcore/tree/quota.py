"""Quotas as ZooKeeper 3.8 keeps them: znodes under ``/zookeeper/quota``, counted by the server.

A client (zkCli's ``setquota``) marks a subtree ``/a/b`` by creating ``/zookeeper/quota/a/b/zookeeper_limits``
(its data the limits, e.g. ``count=10,bytes=-1``) and ``.../zookeeper_stats``. The server then keeps
the stats node's data equal to the subtree's node count (``/a/b`` itself included) and data bytes,
rewriting it in place -- no txn, no version change, no watch -- on every create, delete and setData
below the deepest quota path that covers the changed node. With ``enforceQuota`` a create or setData
that would pass a *hard* limit (``countHardLimit``, ``byteHardLimit``) fails with QUOTAEXCEEDED; a soft
limit (``count``, ``bytes``) is only reported.

The data format is ZooKeeper's StatsTrack: ``key=value`` pairs split on runs of ``,`` or ``;``,
written back as ``count=N,bytes=M`` followed, when other keys are present, by ``=`` and ``;key=value``
for each in sorted order (a form older parsers skip over). Pure: no I/O.
"""
from __future__ import annotations

import re

QUOTA_ROOT = "/zookeeper/quota"
LIMIT_NODE = "zookeeper_limits"
STAT_NODE = "zookeeper_stats"

_SEPARATORS = re.compile(r"[,;]+")
_LONG = re.compile(r"[+-]?[0-9]+")
_LONG_MIN, _LONG_MAX = -(1 << 63), (1 << 63) - 1


def quota_prefix_of(parent: str) -> str | None:
    """The quota path a limit/stat node under ``parent`` belongs to (``/zookeeper/quota/a/b`` -> ``/a/b``)."""
    if parent.startswith(QUOTA_ROOT + "/"):
        return parent[len(QUOTA_ROOT):]
    return None


def limit_path(prefix: str) -> str:
    return QUOTA_ROOT + prefix + "/" + LIMIT_NODE


def stat_path(prefix: str) -> str:
    return QUOTA_ROOT + prefix + "/" + STAT_NODE


def parse(data: bytes | None) -> dict[str, int] | None:
    """StatsTrack's parse; None where ZooKeeper's parser would throw (the caller then leaves things be)."""
    if data is None:
        return None
    text = data.decode("utf-8", "replace")
    out: dict[str, int] = {}
    if not text:
        return out
    pairs = _SEPARATORS.split(text)
    while pairs and pairs[-1] == "":  # Java's split drops trailing empty strings
        pairs.pop()
    for pair in pairs:
        kv = pair.split("=")
        while len(kv) > 1 and kv[-1] == "":
            kv.pop()
        if len(kv) < 2:
            return None
        value = kv[1] or "-1"
        if not _LONG.fullmatch(value):
            return None
        n = int(value)
        if not _LONG_MIN <= n <= _LONG_MAX:
            return None
        out[kv[0]] = n
    return out


def render(stats: dict[str, int]) -> bytes:
    """StatsTrack's toString: count and bytes first, other keys after ``=`` separated by ``;``."""
    text = "count=%d,bytes=%d" % (stats.get("count", -1), stats.get("bytes", -1))
    extra = sorted(k for k in stats if k not in ("count", "bytes"))
    if extra:
        text += "=" + "".join(";%s=%d" % (k, stats[k]) for k in extra)
    return text.encode("utf-8")


def checks_something(limits: dict[str, int], bytes_diff: int, count_diff: int) -> bool:
    """Whether checkQuota goes on to read the stats: some limit is set on a quantity that changes."""
    return bool((count_diff and (limits.get("count", -1) > -1 or limits.get("countHardLimit", -1) > -1))
                or (bytes_diff and (limits.get("bytes", -1) > -1 or limits.get("byteHardLimit", -1) > -1)))


def exceeds_hard_limit(limits: dict[str, int], current: dict[str, int], bytes_diff: int, count_diff: int) -> bool:
    """Whether a change of ``count_diff`` nodes and ``bytes_diff`` bytes passes a hard limit
    (ZooKeeperServer.checkQuota: a soft limit is only ever reported)."""
    hard = limits.get("countHardLimit", -1)
    if count_diff and hard > -1 and current.get("count", -1) + count_diff > hard:
        return True
    hard = limits.get("byteHardLimit", -1)
    return bool(bytes_diff and hard > -1 and current.get("bytes", -1) + bytes_diff > hard)
