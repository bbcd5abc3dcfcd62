"""Jute codec and the handshake records: what a real client puts on the wire and expects back."""
from __future__ import annotations

import pytest

from coordcore.errors import ProtocolError
from coordcore.wire import proto
from coordcore.wire.jute import Reader, Writer


@pytest.mark.parametrize("kind, value, encoded", [
    ("int", 0, "00000000"),
    ("int", -1, "ffffffff"),
    ("int", 2**31 - 1, "7fffffff"),
    ("int", -2**31, "80000000"),
    ("long", 0x123456789, "0000000123456789"),
    ("long", -2, "fffffffffffffffe"),
    ("long", 2**63 - 1, "7fffffffffffffff"),
    ("bool", True, "01"),
    ("bool", False, "00"),
    ("buffer", None, "ffffffff"),
    ("buffer", b"", "00000000"),
    ("buffer", b"\x00ab", "00000003" "006162"),
    ("ustring", None, "ffffffff"),
    ("ustring", "", "00000000"),
    ("ustring", "/é", "00000003" "2fc3a9"),
    ("strings", ["a", "bc"], "00000002" "00000001" "61" "00000002" "6263"),
    ("strings", [], "00000000"),
    ("acls", ((31, "world", "anyone"),), "00000001" "0000001f" "00000005" "776f726c64" "00000006" "616e796f6e65"),
    ("acls", (), "00000000"),
])
def test_round_trip_with_golden_bytes(kind, value, encoded):
    data = getattr(Writer(), kind)(value).getvalue()
    assert data.hex() == encoded
    r = Reader(data)
    assert getattr(r, kind)() == value
    assert r.at_end()


def test_null_and_empty_buffers_stay_distinct():
    data = Writer().buffer(None).buffer(b"").getvalue()
    r = Reader(data)
    assert r.buffer() is None
    assert r.buffer() == b""


def test_any_nonzero_byte_reads_as_true():
    assert Reader(b"\x02").bool() is True


def test_null_vector_reads_as_empty():
    assert Reader(bytes.fromhex("ffffffff")).strings() == []
    assert Reader(bytes.fromhex("ffffffff")).acls() == ()


def test_null_strings_inside_vectors_read_as_empty_string():
    # kazoo writes "" as -1; an ACL id ("auth", "") arrives with a null id
    data = bytes.fromhex("00000001" "0000001f" "00000004" "61757468" "ffffffff")
    assert Reader(data).acls() == ((31, "auth", ""),)


@pytest.mark.parametrize("kind, data", [
    ("int", "000000"),
    ("long", "00000000000000"),
    ("bool", ""),
    ("buffer", "000000"),
    ("buffer", "00000004" "616263"),
    ("ustring", "00000002" "61"),
    ("strings", "00000002" "00000001" "61"),
    ("acls", "00000001" "0000001f"),
])
def test_truncated_input_is_a_protocol_error(kind, data):
    with pytest.raises(ProtocolError):
        getattr(Reader(bytes.fromhex(data)), kind)()


@pytest.mark.parametrize("kind", ["buffer", "ustring", "strings", "acls"])
@pytest.mark.parametrize("length", [-2, -2**31, 101])
def test_negative_or_oversized_length_is_a_protocol_error(kind, length):
    data = length.to_bytes(4, "big", signed=True) + b"\x00" * 200
    with pytest.raises(ProtocolError):
        getattr(Reader(data, max_len=100), kind)()


def test_length_at_the_limit_is_accepted():
    data = Writer().buffer(b"x" * 100).getvalue()
    assert Reader(data, max_len=100).buffer() == b"x" * 100


def test_invalid_utf8_string_is_a_protocol_error():
    with pytest.raises(ProtocolError):
        Reader(bytes.fromhex("00000002" "c328")).ustring()


def test_reader_honours_start_offset():
    data = b"\xaa\xbb" + Writer().int(7).getvalue()
    assert Reader(data, 2).int() == 7


# ---- handshake ---------------------------------------------------------------------------------

# kazoo's new-session ConnectRequest body (reference section 3.1): 45 bytes
KAZOO_CONNECT = bytes.fromhex(
    "00000000"                          # protocolVersion
    "0000000000000000"                  # lastZxidSeen
    "00002710"                          # timeOut 10000
    "0000000000000000"                  # sessionId 0 = new
    "00000010" + "00" * 16 +            # passwd: 16 zero bytes
    "00"                                # readOnly false
)


def test_kazoo_connect_request_golden_bytes():
    assert len(KAZOO_CONNECT) == 45
    req = proto.decode_connect(KAZOO_CONNECT, 0xFFFFF)
    assert (req.protocol_version, req.last_zxid_seen, req.timeout_ms, req.session_id) == (0, 0, 10000, 0)
    assert req.passwd == b"\x00" * 16
    assert req.has_read_only is True
    assert req.read_only is False


def test_connect_request_without_read_only_byte():
    req = proto.decode_connect(KAZOO_CONNECT[:-1], 0xFFFFF)
    assert req.has_read_only is False
    assert req.read_only is False
    assert req.timeout_ms == 10000


def test_connect_request_resume_with_read_only_flag():
    body = (Writer().int(0).long(0x1_0000_0005).int(30000).long(0x0123456789ABCDEF)
            .buffer(bytes(range(16))).bool(True).getvalue())
    req = proto.decode_connect(body, 0xFFFFF)
    assert req.last_zxid_seen == 0x1_0000_0005
    assert req.timeout_ms == 30000
    assert req.session_id == 0x0123456789ABCDEF
    assert req.passwd == bytes(range(16))
    assert (req.has_read_only, req.read_only) == (True, True)


@pytest.mark.parametrize("cut", [0, 3, 11, 15, 23, 27, 30])
def test_truncated_connect_request_is_a_protocol_error(cut):
    with pytest.raises(ProtocolError):
        proto.decode_connect(KAZOO_CONNECT[:cut], 0xFFFFF)


def test_connect_response_with_read_only_flag_is_37_bytes():
    frame = proto.encode_connect_response(10000, 0x0123456789ABCDEF, b"\x01" * 16, False)
    length, body = int.from_bytes(frame[:4], "big"), frame[4:]
    assert length == len(body) == 37
    assert body.hex() == ("00000000" "00002710" "0123456789abcdef" "00000010" + "01" * 16 + "00")


def test_connect_response_without_read_only_flag_is_36_bytes():
    frame = proto.encode_connect_response(0, 0, b"\x00" * 16, None)
    length, body = int.from_bytes(frame[:4], "big"), frame[4:]
    assert length == len(body) == 36
    assert body == b"\x00" * 16 + bytes.fromhex("00000010") + b"\x00" * 16


def test_connect_response_read_only_server():
    frame = proto.encode_connect_response(4000, 1, b"\x00" * 16, True)
    assert frame[-1:] == b"\x01"


# ---- request records -----------------------------------------------------------------------------

def _multi_header(op, done=False, err=-1):
    return Writer().int(op).bool(done).int(err)


def test_decode_create_and_multi():
    create = Writer().ustring("/a").buffer(None).acls([(31, "world", "anyone")]).int(3).getvalue()
    req = proto.DECODERS[proto.CREATE](Reader(create))
    assert (req.path, req.data, req.acl, req.flags, req.ttl) == ("/a", None, ((31, "world", "anyone"),), 3, -1)

    w = _multi_header(proto.CREATE).raw(create)
    w.raw(_multi_header(proto.CHECK).ustring("/a").int(4).getvalue())
    w.raw(_multi_header(-1, True).getvalue())
    multi = proto.DECODERS[proto.MULTI](Reader(w.getvalue()))
    assert [op for op, _ in multi.ops] == [proto.CREATE, proto.CHECK]
    assert multi.ops[1][1] == proto.PathVersion("/a", 4)


def test_multi_mixing_reads_and_writes_is_rejected():
    w = _multi_header(proto.GET_DATA).ustring("/a").bool(False)
    w.raw(_multi_header(-1, True).getvalue())
    with pytest.raises(proto.MultiTypeError):
        proto.DECODERS[proto.MULTI](Reader(w.getvalue()))


def test_create_ttl_carries_the_ttl():
    data = Writer().ustring("/t").buffer(b"").acls([(31, "world", "anyone")]).int(5).long(1000).getvalue()
    req = proto.DECODERS[proto.CREATE_TTL](Reader(data))
    assert (req.flags, req.ttl) == (5, 1000)
