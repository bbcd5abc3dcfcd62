"""Pure contender logic: parse node names, order them wrap-aware, decide holder and predecessor.

No I/O, no clock: everything here is a function of the child names passed in, so it is tested with
tables (``tests/recipes/test_contenders.py``).

Node names follow the classic recipe and kazoo's :class:`kazoo.recipe.lock.Lock`::

    <32 hex digits unique to the attempt><marker><sequence>
    e.g. 1f0c...9a__lock__0000000042        (fair lock, marker "__lock__" as kazoo uses)
         1f0c...9a_0000000007               (election, marker "_": "guid_" + sequence)

The unique prefix lets a client recognise its own node after a create whose reply was lost.

ZooKeeper formats the sequence with Java's ``%010d`` of a *signed* 32-bit counter (the parent's
cversion), so after 2147483647 the next suffix is ``-2147483648``. Comparing suffixes as strings (or as
plain integers) puts the post-wrap nodes *first*. We compare them as points on a 2**32 circle instead:
the oldest contender is the one right after the largest gap between neighbours. As long as the live
contenders span less than half the circle (2**31 sequence numbers -- always true in practice), this is
the creation order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, NamedTuple, Optional, Sequence

LOCK_MARKER = "__lock__"
ELECTION_MARKER = "_"

_MOD = 1 << 32
_HALF = 1 << 31
_INT32_MIN = -(1 << 31)
_INT32_MAX = (1 << 31) - 1

_regex_cache: dict[tuple[str, ...], "re.Pattern[str]"] = {}
# child name -> position on the 2**32 circle (None: not a contender), per marker set; bounded
_key_cache: dict[tuple[str, ...], dict[str, Optional[int]]] = {}
_KEY_CACHE_MAX = 4096
_UNSEEN = object()


@dataclass(frozen=True)
class Contender:
    """One parsed child node: its full name, the part before the sequence, and the signed sequence."""

    name: str
    prefix: str
    sequence: int


class Decision(NamedTuple):
    """Where our node stands in the queue (a named tuple: it is made on every wake-up of a waiter,
    right on the hand-over's path, where a frozen dataclass's ``__init__`` cost several times more).

    ``present`` is False when our node is not among the children (its session ended, or it was never
    created). ``holder`` is True when we are among the first ``max_holders`` contenders; otherwise
    ``predecessor`` is the name of the node we must watch (the next-lower one, never the holder by
    default -- that is what keeps a release to a single notification).
    """

    present: bool
    holder: bool
    predecessor: Optional[str]
    position: int


def _pattern(markers: Sequence[str]) -> "re.Pattern[str]":
    key = tuple(markers)
    pat = _regex_cache.get(key)
    if pat is None:
        alts = "|".join(re.escape(m) for m in sorted(set(markers), key=len, reverse=True))
        pat = re.compile(r"^(?P<prefix>.*(?:%s))(?P<seq>-?\d{1,10})$" % alts)
        _regex_cache[key] = pat
    return pat


def parse(name: str, markers: Sequence[str] = (LOCK_MARKER,)) -> Optional[Contender]:
    """Parse a child name into a :class:`Contender`, or None if it is not a contender node."""
    m = _pattern(markers).match(name)
    if m is None:
        return None
    seq = int(m.group("seq"))
    if not _INT32_MIN <= seq <= _INT32_MAX:
        return None
    return Contender(name=name, prefix=m.group("prefix"), sequence=seq)


def seq_before(a: int, b: int) -> bool:
    """True if signed 32-bit sequence ``a`` was issued before ``b`` (serial-number arithmetic)."""
    d = (b - a) % _MOD
    return 0 < d < _HALF


def order(contenders: Iterable[Contender]) -> list[Contender]:
    """Contenders in queue order (oldest first), wrap-aware.

    Each sequence is placed on the 2**32 circle; the oldest is the first point after the widest gap.
    Ties (equal sequences, only possible with hand-made names) are broken by name so the order is total
    and identical for every client.
    """
    items = sorted(contenders, key=lambda c: (c.sequence % _MOD, c.name))
    return _from_widest_gap([(c.sequence % _MOD, c) for c in items])


def _from_widest_gap(keyed: list) -> list:
    """``keyed``: (position on the circle, item) sorted by position; the items, oldest first."""
    n = len(keyed)
    if n <= 1:
        return [item for _, item in keyed]
    best_gap, start, prev = -1, 0, keyed[-1][0]
    for i in range(n):
        cur = keyed[i][0]
        gap = (cur - prev) % _MOD
        if gap > best_gap:
            best_gap, start = gap, i
        prev = cur
    return [item for _, item in keyed[start:]] + [item for _, item in keyed[:start]]


def ordered_names(children: Iterable[str], markers: Sequence[str] = (LOCK_MARKER,)) -> list[str]:
    """The contender names among ``children`` in queue order; other children are ignored.

    The same rules as ``parse`` + ``order``, without a Contender per child: this runs on every
    wake-up of every waiter, and building a frozen dataclass per child cost several times the rest.
    """
    markers = tuple(markers)
    cache = _key_cache.get(markers)
    if cache is None or len(cache) > _KEY_CACHE_MAX:
        cache = _key_cache[markers] = {}
    match = _pattern(markers).match
    # ZooKeeper's names end in exactly 10 digits right after the marker (a non-negative sequence).
    # Then the regex would find the same split, unless a marker itself ends in a digit, so such names
    # skip it (with many contenders every wake-up sees mostly new names: the regex dominated).
    quick = all(m and not m[-1].isdecimal() for m in markers)
    keyed = []
    for name in children:
        key = cache.get(name, _UNSEEN)
        if key is _UNSEEN:
            # a waiter re-lists the same names on every wake-up: parse each one once
            tail = name[-10:]
            if quick and len(name) > 10 and tail.isdecimal() and name.endswith(markers, 0, -10):
                key = int(tail)
                if key > _INT32_MAX:
                    key = None
            else:
                m = match(name)
                seq = int(m.group("seq")) if m is not None else None
                key = seq % _MOD if seq is not None and _INT32_MIN <= seq <= _INT32_MAX else None
            cache[name] = key
        if key is not None:
            keyed.append((key, name))
    keyed.sort()
    return _from_widest_gap(keyed)


def decide(
    children: Iterable[str],
    our_name: str,
    markers: Sequence[str] = (LOCK_MARKER,),
    max_holders: int = 1,
) -> Decision:
    """Decide from a child list whether ``our_name`` holds, and which node it must watch otherwise."""
    if max_holders < 1:
        raise ValueError("max_holders must be >= 1")
    return decision(queue_ahead(children, our_name, markers), max_holders)


def queue_ahead(
    children: Iterable[str], our_name: str, markers: Sequence[str] = (LOCK_MARKER,)
) -> Optional[list[str]]:
    """The contenders queued before ``our_name``, oldest first; None when our node is not there."""
    names = ordered_names(children, markers)
    if our_name not in names:
        return None
    return names[: names.index(our_name)]


def still_ahead(ahead: Sequence[str], children: Iterable[str], our_name: str) -> Optional[list[str]]:
    """``queue_ahead`` on a newer listing, from the answer on an older one (``ahead``).

    Sequence numbers only grow, so a node that was not ahead of ours then never is later: only the
    ones in ``ahead`` that still exist can be. This is what a waiter re-checks on every wake-up, and it
    costs a set lookup per node instead of parsing and ordering every name again.
    """
    alive = set(children)
    if our_name not in alive:
        return None
    return [name for name in ahead if name in alive]


def decision(ahead: Optional[Sequence[str]], max_holders: int = 1) -> Decision:
    """The :class:`Decision` for a node with ``ahead`` queued before it (None: the node is gone)."""
    if ahead is None:
        return Decision(present=False, holder=False, predecessor=None, position=-1)
    pos = len(ahead)
    if pos < max_holders:
        return Decision(present=True, holder=True, predecessor=None, position=pos)
    return Decision(present=True, holder=False, predecessor=ahead[-1], position=pos)


def find_by_prefix(children: Iterable[str], prefix: str) -> Optional[str]:
    """The child created with our unique ``prefix`` (recovering a create whose reply was lost)."""
    for child in children:
        if child.startswith(prefix) and child[len(prefix):].lstrip("-").isdigit():
            return child
    return None
