"""TLS wire codecs: fixed bytes decoded and encoded, round trips, and garbage in ->
ParseError (never another exception)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netstack.errors import ParseError
from netstack.tls import wire
from netstack.tls.wire import Buffer, ExtensionType, HandshakeType


def test_buffer_integers_round_trip() -> None:
    buf = Buffer()
    buf.push_uint8(0xAB)
    buf.push_uint16(0xABCD)
    buf.push_uint24(0xABCDEF)
    buf.push_uint32(0xDEADBEEF)
    buf.push_uint64(1 << 63)
    data = buf.data
    assert data == bytes.fromhex("ab abcd abcdef deadbeef 8000000000000000")
    reader = Buffer(data)
    assert reader.pull_uint8() == 0xAB
    assert reader.pull_uint16() == 0xABCD
    assert reader.pull_uint24() == 0xABCDEF
    assert reader.pull_uint32() == 0xDEADBEEF
    assert reader.pull_uint64() == 1 << 63
    assert reader.eof()
    with pytest.raises(ParseError):
        reader.pull_uint8()


def test_blocks_check_their_lengths() -> None:
    buf = Buffer()
    with buf.push_block(2):
        buf.push_bytes(b"abc")
    assert buf.data == b"\x00\x03abc"
    reader = Buffer(b"\x00\x03abc")
    with reader.pull_block(2) as length:
        assert length == 3
        assert reader.pull_bytes(3) == b"abc"
    # a block longer than what is left
    with pytest.raises(ParseError):
        with Buffer(b"\x00\x05abc").pull_block(2):
            pass
    # a block not consumed exactly
    with pytest.raises(ParseError):
        reader = Buffer(b"\x00\x03abc")
        with reader.pull_block(2):
            reader.pull_bytes(2)
    # reading past the end of a block
    with pytest.raises(ParseError):
        reader = Buffer(b"\x00\x01abc")
        with reader.pull_block(2):
            reader.pull_bytes(2)


def test_push_block_overflow() -> None:
    buf = Buffer()
    with pytest.raises(ValueError):
        with buf.push_block(1):
            buf.push_bytes(bytes(256))


def test_extensions_duplicate_is_parse_error() -> None:
    buf = Buffer()
    wire.push_extensions(buf, [(1, b""), (1, b"")])
    with pytest.raises(ParseError):
        wire.pull_extensions(Buffer(buf.data))


def test_server_name_round_trip() -> None:
    body = wire.push_server_name_list("example.com")
    assert body == b"\x00\x0e\x00\x00\x0bexample.com"
    assert wire.pull_server_name_list(body) == "example.com"
    assert wire.pull_server_name_list(b"\x00\x05\x01\x00\x02ab") is None  # another name type
    for bad in (b"", b"\x00\x00", b"\x00\x04\x00\x00\x01", b"\x00\x05\x00\x00\x02\xff\xfe"):
        with pytest.raises(ParseError):
            wire.pull_server_name_list(bad)


def test_key_shares_round_trip() -> None:
    entries = [(0x1D, b"a" * 32), (0x17, b"\x04" + b"b" * 64)]
    body = wire.push_client_key_shares(entries)
    assert wire.pull_client_key_shares(body) == entries
    assert wire.pull_server_key_share(wire.push_server_key_share(0x1D, b"k" * 32)) == (
        0x1D,
        b"k" * 32,
    )
    with pytest.raises(ParseError):
        wire.pull_client_key_shares(body[:-1])
    with pytest.raises(ParseError):
        wire.pull_server_key_share(wire.push_server_key_share(0x1D, b"k") + b"x")


def test_alpn_round_trip_and_empty_names() -> None:
    body = wire.push_alpn([b"h2", b"http/1.1"])
    assert body == b"\x00\x0c\x02h2\x08http/1.1"
    assert wire.pull_alpn(body) == [b"h2", b"http/1.1"]
    with pytest.raises(ParseError):
        wire.pull_alpn(b"\x00\x01\x00")
    with pytest.raises(ParseError):
        wire.pull_alpn(b"\x00\x00")


def test_offered_psks_round_trip() -> None:
    offered = wire.OfferedPsks([(b"ticket-1", 1234), (b"ticket-2", 5)], [b"b" * 32, b"c" * 48])
    body = wire.push_offered_psks(offered)
    assert wire.pull_offered_psks(body) == offered
    assert wire.binders_length(offered.binders) == 2 + 33 + 49
    assert body.endswith(b"\x00\x52" + b"\x20" + b"b" * 32 + b"\x30" + b"c" * 48)


def test_versions_groups_modes_cookie() -> None:
    assert wire.pull_client_supported_versions(b"\x04\x03\x04\x03\x03") == [0x0304, 0x0303]
    assert wire.push_client_supported_versions([0x0304]) == b"\x02\x03\x04"
    assert wire.pull_uint16_list(wire.push_uint16_list([0x1D, 0x17])) == [0x1D, 0x17]
    assert wire.pull_psk_modes(b"\x01\x01") == [1]
    assert wire.pull_cookie(wire.push_cookie(b"biscuit")) == b"biscuit"
    assert wire.pull_uint16_body(b"\x03\x04") == 0x0304
    for bad in (b"", b"\x03", b"\x03\x04\x00"):
        with pytest.raises(ParseError):
            wire.pull_uint16_body(bad)
    with pytest.raises(ParseError):
        wire.pull_client_supported_versions(b"\x00")


def test_hello_retry_request_random() -> None:
    import hashlib

    # RFC 8446 (4.1.3): SHA-256 of "HelloRetryRequest".
    assert wire.HELLO_RETRY_REQUEST_RANDOM == hashlib.sha256(b"HelloRetryRequest").digest()
    hello = wire.ServerHello(wire.HELLO_RETRY_REQUEST_RANDOM, b"", 0x1301, [])
    assert hello.is_hello_retry_request


def test_client_hello_without_extensions() -> None:
    # RFC 8446 (4.1.2): an old ClientHello may end after the compression methods.
    body = b"\x03\x03" + bytes(32) + b"\x00" + b"\x00\x02\x00\x2f" + b"\x01\x00"
    hello = wire.parse_message(wire.pull_client_hello, body)
    assert hello.extensions == [] and hello.cipher_suites == [0x2F]


def test_messages_round_trip() -> None:
    messages = [
        (
            HandshakeType.certificate_request,
            wire.pull_certificate_request,
            wire.push_certificate_request,
            wire.CertificateRequest(
                b"", [(ExtensionType.signature_algorithms, b"\x00\x02\x04\x03")]
            ),
        ),
        (
            HandshakeType.certificate,
            wire.pull_certificate,
            wire.push_certificate,
            wire.CertificateMessage(
                b"", [wire.CertificateEntry(b"\x30\x00"), wire.CertificateEntry(b"x", [(5, b"")])]
            ),
        ),
        (
            HandshakeType.key_update,
            wire.pull_key_update,
            wire.push_key_update,
            wire.KeyUpdate(1),
        ),
        (
            HandshakeType.new_session_ticket,
            wire.pull_new_session_ticket,
            wire.push_new_session_ticket,
            wire.NewSessionTicket(
                7200, 0xDEADBEEF, b"\x00" * 8, b"ticket", [(42, b"\x00\x00\x04\x00")]
            ),
        ),
    ]
    for msg_type, pull, push, message in messages:
        encoded = wire.encode_message(msg_type, push, message)  # type: ignore[arg-type]
        assert encoded[0] == msg_type
        assert int.from_bytes(encoded[1:4], "big") == len(encoded) - 4
        assert wire.parse_message(pull, encoded[4:]) == message  # type: ignore[arg-type]


def test_handshake_header() -> None:
    assert wire.pull_handshake_header(b"\x01\x00\x01") is None
    assert wire.pull_handshake_header(b"\x01\x00\x01\x02") == (1, 258)


PULLS = [
    wire.pull_client_hello,
    wire.pull_server_hello,
    wire.pull_encrypted_extensions,
    wire.pull_certificate_request,
    wire.pull_certificate,
    wire.pull_certificate_verify,
    wire.pull_new_session_ticket,
    wire.pull_key_update,
]
BODY_PULLS = [
    wire.pull_server_name_list,
    wire.pull_uint16_list,
    wire.pull_client_supported_versions,
    wire.pull_client_key_shares,
    wire.pull_server_key_share,
    wire.pull_alpn,
    wire.pull_psk_modes,
    wire.pull_cookie,
    wire.pull_offered_psks,
]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.sampled_from(PULLS))
def test_garbage_messages_raise_only_parse_error(data: bytes, pull: object) -> None:
    try:
        wire.parse_message(pull, data)  # type: ignore[call-overload]
    except ParseError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=120), st.sampled_from(BODY_PULLS))
def test_garbage_extension_bodies_raise_only_parse_error(data: bytes, pull: object) -> None:
    try:
        pull(data)  # type: ignore[operator]
    except ParseError:
        pass


@settings(max_examples=200, deadline=None)
@given(
    random=st.binary(min_size=32, max_size=32),
    session_id=st.binary(max_size=32),
    suites=st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=20),
    extensions=st.dictionaries(st.integers(0, 0xFFFF), st.binary(max_size=40), max_size=8),
)
def test_client_hello_round_trip(
    random: bytes, session_id: bytes, suites: list[int], extensions: dict[int, bytes]
) -> None:
    hello = wire.ClientHello(random, session_id, suites, list(extensions.items()))
    encoded = wire.encode_message(HandshakeType.client_hello, wire.push_client_hello, hello)
    assert wire.parse_message(wire.pull_client_hello, encoded[4:]) == hello


@settings(max_examples=100, deadline=None)
@given(
    random=st.binary(min_size=32, max_size=32),
    suite=st.integers(0, 0xFFFF),
    extensions=st.dictionaries(st.integers(0, 0xFFFF), st.binary(max_size=40), max_size=5),
)
def test_server_hello_round_trip(random: bytes, suite: int, extensions: dict[int, bytes]) -> None:
    hello = wire.ServerHello(random, b"", suite, list(extensions.items()))
    encoded = wire.encode_message(HandshakeType.server_hello, wire.push_server_hello, hello)
    assert wire.parse_message(wire.pull_server_hello, encoded[4:]) == hello
