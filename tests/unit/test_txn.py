"""Txn codec: every txn type survives encode/decode exactly (the log is replayed from these bytes)."""
from __future__ import annotations

import pytest

from coordcore.errors import ProtocolError
from coordcore.tree import txn as T

OPEN = [(31, "world", "anyone")]

BODIES = [
    (T.T_CREATE, ("/a", b"data", OPEN, T.K_PERSISTENT, 0, -1, 1)),
    (T.T_CREATE, ("/a/e0000000007", None, [(1, "digest", "u:x"), (31, "ip", "10.0.0.0/8")],
                  T.K_EPHEMERAL, 0x1234_5678_9ABC, -1, 8)),
    (T.T_CREATE, ("/c", b"", OPEN, T.K_CONTAINER, 0, -1, -2**31)),
    (T.T_CREATE, ("/t", b"x", OPEN, T.K_TTL, 0, 0xFFFFFFFFFF, 3)),
    (T.T_DELETE, ("/a",)),
    (T.T_SET_DATA, ("/a", b"new", 2)),
    (T.T_SET_DATA, ("/a", None, -2**31)),
    (T.T_SET_ACL, ("/a", [(1, "world", "anyone")], 5)),
    (T.T_CHECK, ("/a", -1)),
    (T.T_ERROR, (-101,)),
    (T.T_CREATE_SESSION, (30000, b"\x01" * 16)),
    (T.T_CLOSE_SESSION, (["/a/e1", "/b/e2"],)),
    (T.T_CLOSE_SESSION, ([],)),
    (T.T_MULTI, ([(T.T_CREATE, ("/m", b"", OPEN, T.K_PERSISTENT, 0, -1, 4)),
                  (T.T_SET_DATA, ("/m", b"v", 1)),
                  (T.T_CHECK, ("/m", 1)),
                  (T.T_DELETE, ("/m",))],)),
    (T.T_MULTI, ([(T.T_ERROR, (0,)), (T.T_ERROR, (-103,)), (T.T_ERROR, (-2,))],)),
    (T.T_MULTI, ([],)),
    (T.T_MULTI, ([(T.T_MULTI, ([(T.T_DELETE, ("/n",))],)), (T.T_CHECK, ("/n", 0))],)),  # nested
]


def _norm(t, b):
    """Tuples and lists are interchangeable in bodies; compare structure and values."""
    if t == T.T_MULTI:
        return (t, tuple(_norm(st, sb) for st, sb in b[0]))
    return (t, tuple(tuple(tuple(e) for e in f) if isinstance(f, list) else f for f in b))


@pytest.mark.parametrize("t, body", BODIES, ids=lambda v: str(v) if isinstance(v, int) else None)
def test_round_trip(t, body):
    txn = T.Txn(0x5_0000_0003, 1_700_000_000_123, 0x0100_0000_0000_0001, 17, t, body)
    data = T.encode(txn)
    back = T.decode(data)
    assert (back.zxid, back.time, back.session_id, back.cxid, back.type) == (
        0x5_0000_0003, 1_700_000_000_123, 0x0100_0000_0000_0001, 17, t)
    assert _norm(back.type, back.body) == _norm(t, body)
    assert T.encode(back) == data


def test_null_data_stays_null_and_empty_stays_empty():
    for data in (None, b""):
        txn = T.Txn(1, 0, 0, 0, T.T_CREATE, ("/a", data, OPEN, 0, 0, -1, 1))
        assert T.decode(T.encode(txn)).body[1] == data


def test_truncated_txn_is_rejected():
    data = T.encode(T.Txn(1, 0, 0, 0, T.T_SET_DATA, ("/a", b"12345", 1)))
    with pytest.raises(ProtocolError):
        T.decode(data[:-3])


def test_unknown_txn_type_is_rejected():
    with pytest.raises(ValueError):
        T.encode(T.Txn(1, 0, 0, 0, 99, ()))
