"""The peer codec: every message survives encode/decode, and bad bytes raise ProtocolError, never crash."""
from __future__ import annotations

import pytest

from coordcore.errors import ProtocolError
from coordcore.zab import messages as m
from coordcore.zab.election import Notification, PeerState

SAMPLES = [
    Notification(leader=3, zxid=0x5_0000_0007, election_epoch=9, state=PeerState.FOLLOWING, sender=2, peer_epoch=5),
    Notification(leader=-1, zxid=-1, election_epoch=1, state=PeerState.OBSERVING, sender=4, peer_epoch=-1),
    m.FollowerInfo(sid=2, accepted_epoch=4),
    m.ObserverInfo(sid=9, accepted_epoch=0),
    m.LeaderInfo(epoch=5),
    m.AckEpoch(last_zxid=0x4_0000_0010, current_epoch=4),
    m.AckEpoch(last_zxid=0, current_epoch=-1),
    m.Diff(0x4_0000_0010),
    m.Trunc(0x4_0000_000E),
    m.Snap(0x3_0000_0001, b"\x00tree bytes\xff"),
    m.Snap(0, b""),
    m.NewLeader(0x5_0000_0000, 0x4_0000_0010),
    m.UpToDate(0x5_0000_0000),
    m.Proposal(((0x5_0000_0001, b"a"), (0x5_0000_0002, b""), (0x5_0000_0003, b"c" * 1000)), 0x4_0000_0010),
    m.Proposal((), 0),
    m.Ack(0x5_0000_0003),
    m.Commit(0x5_0000_0003),
    m.Inform(((0x5_0000_0001, b"x"),), 0x5_0000_0000),
    m.Ping(0x5_0000_0003),
    m.Ping(0x5_0000_0003, ((0x0200_0000_0000_0001, 30_000), (7, 4000))),
    m.Request(b"forwarded write"),
    m.Revalidate(0x0100_0000_0000_0005, 10_000),
    m.RevalidateReply(0x0100_0000_0000_0005, True),
    m.RevalidateReply(1, False),
    m.Sync(42),
    m.SyncReply(42, 0x5_0000_0009),
]


@pytest.mark.parametrize("msg", SAMPLES, ids=lambda x: type(x).__name__)
def test_round_trip(msg):
    data = m.encode(msg)
    assert m.decode(data) == msg
    assert type(m.decode(data)) is type(msg)


def test_every_packet_type_has_a_sample():
    assert {type(s) for s in SAMPLES} == set(m._LAYOUT)


def test_tags_are_unique():
    tags = [tag for tag, _ in m._LAYOUT.values()]
    assert len(tags) == len(set(tags))


@pytest.mark.parametrize("msg", SAMPLES, ids=lambda x: type(x).__name__)
def test_every_truncation_is_a_protocol_error(msg):
    data = m.encode(msg)
    for cut in range(len(data)):
        with pytest.raises(ProtocolError):
            m.decode(data[:cut])


@pytest.mark.parametrize("data, why", [
    (b"", "empty"),
    (b"\xee", "unknown tag"),
    (m.encode(m.Ack(5)) + b"\x00", "trailing byte"),
    (bytes([3]) + b"\x00" * 7, "short long"),
    (bytes([2]) + b"\xff\xff\xff\xfe", "negative batch length"),
    (bytes([2]) + b"\x7f\xff\xff\xff", "absurd batch length"),
    (bytes([2]) + b"\x00\x00\x00\x01" + b"\x00" * 8 + b"\xff\xff\xff\xff", "null txn"),
    (bytes([20]) + b"\xff\xff\xff\xff", "null payload"),
    (bytes([7]) + b"\x00" * 8 + b"\x02", "bad boolean"),
    (bytes([1]) + b"\x00" * 24 + b"\x00\x00\x00\x07" + b"\x00" * 16, "bad peer state"),
])
def test_garbage_is_a_protocol_error(data, why):
    with pytest.raises(ProtocolError):
        m.decode(data)


def test_encode_refuses_non_messages():
    with pytest.raises(TypeError):
        m.encode(("not", "a", "message"))
