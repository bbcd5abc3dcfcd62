"""The links between ensemble members (coordcore/runtime/peers.py) over real loopback sockets.

What a member relies on: messages from a configured member arrive in order on the right port;
connections from anything else are refused and change nothing; a malformed frame drops only that
link (reported as lost on the quorum port) and the member keeps talking to everyone else.
"""
import asyncio
import socket
import struct

import pytest

from coordcore.config import PeerSpec
from coordcore.runtime import peers
from coordcore.testing.servers import free_port
from coordcore.zab import messages as m
from coordcore.zab.election import Notification, PeerState

DEADLINE_S = 10


def _specs(n):
    return [PeerSpec(sid=i, host="127.0.0.1", quorum_port=free_port(), election_port=free_port())
            for i in range(1, n + 1)]


class Member:
    def __init__(self, loop, sid, specs):
        self.got: list = []
        self.lost: list = []
        self.net = peers.PeerNetwork(loop, sid, specs, on_message=lambda s, msg: self.got.append((s, msg)),
                                     on_link_lost=self.lost.append)


async def _until(cond, what):
    deadline = asyncio.get_running_loop().time() + DEADLINE_S
    while not cond():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def _run(coro):
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(asyncio.wait_for(coro, 30))
    finally:
        loop.close()


def _note(sender=1):
    return Notification(leader=sender, zxid=0x100000002, election_epoch=3, state=PeerState.LOOKING,
                        sender=sender, peer_epoch=1)


def test_messages_arrive_in_order_on_their_ports_and_a_member_hears_its_own_vote():
    async def main():
        loop = asyncio.get_running_loop()
        specs = _specs(2)
        a, b = Member(loop, 1, specs), Member(loop, 2, specs)
        await a.net.start()
        await b.net.start()
        a.net.send(2, _note())
        a.net.send(2, m.Ack(1))
        a.net.flush()                   # a batch of two
        for z in range(2, 51):
            a.net.send(2, m.Ack(z))
        a.net.send(1, _note())
        a.net.flush()                   # one write per link, decoded frame by frame, in order
        await _until(lambda: len(b.got) == 51 and a.got, "the messages")
        assert b.got[0] == (1, _note())
        assert [msg.zxid for _, msg in b.got[1:]] == list(range(1, 51))
        assert a.got == [(1, _note())]
        assert not a.lost and not b.lost
        a.net.close()
        b.net.close()
    _run(main())


def _raw(port, payload: bytes) -> bytes:
    """Connect to a member's port, send bytes, and return what it answers before it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(payload)
        s.settimeout(5)
        chunks = []
        while True:
            try:
                c = s.recv(4096)
            except (ConnectionResetError, socket.timeout):
                break
            if not c:
                break
            chunks.append(c)
        return b"".join(chunks)


@pytest.mark.parametrize("hello, why", [
    (struct.pack(">6sBBq", b"CCPEER", 1, peers.QUORUM, 7), "sid 7 is not another server"),
    (struct.pack(">6sBBq", b"CCPEER", 1, peers.QUORUM, 1), "sid 1 is not another server"),  # itself
    (struct.pack(">6sBBq", b"CCPEER", 1, peers.ELECTION, 2), "election traffic on the quorum port"),
    (b"GET / HTTP/1.0\r\n\r\n", "not a coordcore peer handshake"),
], ids=["unknown-sid", "own-sid", "wrong-port", "not-a-peer"])
def test_a_connection_from_an_unknown_server_is_refused_and_changes_nothing(hello, why):
    async def main():
        loop = asyncio.get_running_loop()
        specs = _specs(2)
        a, b = Member(loop, 1, specs), Member(loop, 2, specs)
        await a.net.start()
        await b.net.start()
        answer = await loop.run_in_executor(None, _raw, specs[0].quorum_port, hello + b"\0\0\0\1\3")
        assert answer == b""
        assert a.net.refused == 1 and a.got == [] and a.lost == []
        assert why in a.net.last_trouble
        b.net.send(1, m.Ack(9))  # the member still hears its real peers
        b.net.flush()
        await _until(lambda: a.got, "the real peer's message")
        assert a.got == [(2, m.Ack(9))]
        a.net.close()
        b.net.close()
    _run(main())


@pytest.mark.parametrize("frame, why", [
    (struct.pack(">I", 3) + b"\xfe\0\0", "unknown peer message tag"),
    (struct.pack(">I", 2) + bytes((3, 0)), "truncated"),
    (struct.pack(">I", 0xFFFFFFF0), "frame of"),
    (struct.pack(">I", len(m.encode(_note()))) + m.encode(_note()), "a notification on the quorum port"),
], ids=["unknown-tag", "truncated", "over-long", "wrong-channel"])
def test_a_malformed_frame_drops_that_link_only_and_the_member_goes_on(frame, why):
    async def main():
        loop = asyncio.get_running_loop()
        specs = _specs(3)
        a, c = Member(loop, 1, specs), Member(loop, 3, specs)
        await a.net.start()
        await c.net.start()
        c.net.send(1, m.Ack(1))
        c.net.flush()
        await _until(lambda: a.got, "c's first message")
        # member 2 is down; something speaking as 2 (a bug, or bit rot) sends garbage after a good hello
        hello = struct.pack(">6sBBq", b"CCPEER", 1, peers.QUORUM, 2)
        good = m.encode(m.Ack(5))
        payload = hello + struct.pack(">I", len(good)) + good + frame
        await loop.run_in_executor(None, _raw, specs[0].quorum_port, payload)
        await _until(lambda: a.lost, "the bad link reported")
        assert a.got[1] == (2, m.Ack(5))      # what came before the bad frame was delivered, in order
        assert a.lost == [2] and a.net.bad_messages == 1 and why in a.net.last_trouble
        c.net.send(1, m.Ack(2))  # the link from 3 is untouched
        c.net.flush()
        await _until(lambda: len(a.got) == 3, "c's second message")
        assert a.got[2] == (3, m.Ack(2)) and a.lost == [2]
        a.net.close()
        c.net.close()
    _run(main())


def test_a_dead_peer_is_a_lost_quorum_link_and_a_new_connection_replaces_the_old():
    async def main():
        loop = asyncio.get_running_loop()
        specs = _specs(2)
        a, b = Member(loop, 1, specs), Member(loop, 2, specs)
        await a.net.start()
        await b.net.start()
        a.net.send(2, m.Ack(1))
        a.net.flush()
        await _until(lambda: b.got, "the first message")
        b.net.close()  # member 2 goes away
        await _until(lambda: a.lost == [2], "a hearing that its link to 2 broke")
        b2 = Member(loop, 2, specs)  # and comes back on the same ports
        await b2.net.start()
        a.net.send(2, m.Ack(2))
        a.net.flush()
        await _until(lambda: b2.got, "the message on the new connection")
        assert b2.got == [(1, m.Ack(2))]
        a.net.send(2, _note())  # election traffic reconnects on its own, and a lost election link is no news
        a.net.flush()
        await _until(lambda: len(b2.got) == 2, "the notification")
        assert a.lost == [2]
        a.net.close()
        b2.net.close()
    _run(main())


def test_a_vote_that_found_its_server_down_is_sent_once_that_server_dials_in():
    """At a cold start the members come up one by one: a notification to a member not listening yet is
    dropped, and with everyone LOOKING in the same round no one would answer it.  When that member
    comes up and dials us, it gets what we could not deliver (ZooKeeper resends its last message on a
    new connection) -- a vote from before the last delivered one is never resent."""
    async def main():
        loop = asyncio.get_running_loop()
        specs = _specs(2)
        a, b = Member(loop, 1, specs), Member(loop, 2, specs)
        await a.net.start()
        a.net.send(2, _note(1))                 # 2 is not up: the connection is refused
        a.net.flush()
        await _until(lambda: 2 in a.net._undelivered_votes, "the refused connection")
        await b.net.start()
        b.net.send(1, _note(2))                 # 2 comes up and speaks first
        b.net.flush()
        await _until(lambda: a.got and b.got, "both votes")
        assert a.got == [(2, _note(2))] and b.got == [(1, _note(1))]
        a.net.close()
        b.net.close()
    _run(main())


def test_a_snapshot_larger_than_64_mib_crosses_a_link():
    """A SNAP is one frame; a follower far behind on a tree of some 300k znodes needs one of this size
    (the buffer limit inside a frame once refused it, so that follower could never catch up)."""
    async def main():
        loop = asyncio.get_running_loop()
        specs = _specs(2)
        a, b = Member(loop, 1, specs), Member(loop, 2, specs)
        await a.net.start()
        await b.net.start()
        data = b"z" * (70 << 20)
        a.net.send(2, m.Snap(0x500000001, data))
        a.net.flush()
        await _until(lambda: b.got or b.lost, "the snapshot")
        assert not b.net.bad_messages and b.got[0][1].zxid == 0x500000001 and len(b.got[0][1].data) == len(data)
        a.net.close()
        b.net.close()
    _run(main())
