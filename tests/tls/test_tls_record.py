"""The record layer (RFC 8446, section 5): framing, protection, padding, limits,
sequence numbers and key changes."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netstack.tls import BadRecordMac, CipherSuite, RecordOverflow, UnexpectedMessage
from netstack.tls.key_schedule import SUITES
from netstack.tls.record import MAX_CIPHERTEXT, MAX_PLAINTEXT, ContentType, RecordLayer

SECRET = bytes(range(48))


def pair(suite: CipherSuite, secret: bytes = SECRET) -> tuple[RecordLayer, RecordLayer]:
    sender, receiver = RecordLayer(), RecordLayer()
    sender.set_write_secret(SUITES[suite], secret[: SUITES[suite].hash_len])
    receiver.set_read_secret(SUITES[suite], secret[: SUITES[suite].hash_len])
    return sender, receiver


def test_plaintext_framing() -> None:
    layer = RecordLayer()
    layer.send(ContentType.handshake, b"hello", legacy_version=0x0301)
    assert layer.data_to_send() == b"\x16\x03\x01\x00\x05hello"
    assert layer.data_to_send() == b""
    layer.receive_data(b"\x16\x03\x03\x00\x05hel")
    assert layer.next_record() is None
    layer.receive_data(b"lo\x15")
    record = layer.next_record()
    assert record is not None and record.data == b"hello" and not record.protected
    assert layer.next_record() is None and layer.buffered() == 1


def test_fragmentation_into_records_of_2_14() -> None:
    layer = RecordLayer()
    layer.send(ContentType.handshake, bytes(MAX_PLAINTEXT * 2 + 10))
    data = layer.data_to_send()
    lengths = []
    while data:
        length = int.from_bytes(data[3:5], "big")
        lengths.append(length)
        data = data[5 + length :]
    assert lengths == [MAX_PLAINTEXT, MAX_PLAINTEXT, 10]


@pytest.mark.parametrize("suite", list(CipherSuite))
def test_protected_round_trip_and_sequence_numbers(suite: CipherSuite) -> None:
    sender, receiver = pair(suite)
    for i in range(5):
        sender.send(ContentType.application_data, b"record %d" % i)
    data = sender.data_to_send()
    assert data[:3] == b"\x17\x03\x03"  # the outer type hides the content type
    receiver.receive_data(data)
    for i in range(5):
        record = receiver.next_record()
        assert record is not None and record.protected
        assert record.content_type == ContentType.application_data
        assert record.data == b"record %d" % i
    assert sender.write_sequence == receiver.read_sequence == 5


@pytest.mark.parametrize("suite", list(CipherSuite))
def test_replayed_or_reordered_records_fail(suite: CipherSuite) -> None:
    sender, receiver = pair(suite)
    sender.send(ContentType.application_data, b"one")
    first = sender.data_to_send()
    sender.send(ContentType.application_data, b"two")
    second = sender.data_to_send()
    receiver.receive_data(second + first)
    with pytest.raises(BadRecordMac):
        receiver.next_record()


def test_wrong_key_is_bad_record_mac() -> None:
    sender, _ = pair(CipherSuite.TLS_AES_128_GCM_SHA256)
    _, receiver = pair(CipherSuite.TLS_AES_128_GCM_SHA256, bytes(48))
    sender.send(ContentType.application_data, b"secret")
    receiver.receive_data(sender.data_to_send())
    with pytest.raises(BadRecordMac):
        receiver.next_record()


def test_padding_is_removed() -> None:
    sender, receiver = pair(CipherSuite.TLS_CHACHA20_POLY1305_SHA256)
    sender._padding = 100
    sender.send(ContentType.handshake, b"padded")
    data = sender.data_to_send()
    assert int.from_bytes(data[3:5], "big") == 6 + 1 + 100 + 16
    receiver.receive_data(data)
    record = receiver.next_record()
    assert record is not None and record.data == b"padded"
    assert record.content_type == ContentType.handshake


def test_all_zero_inner_plaintext_is_unexpected_message() -> None:
    sender, receiver = pair(CipherSuite.TLS_AES_128_GCM_SHA256)
    protection = sender._write
    assert protection is not None
    receiver.receive_data(protection.seal(0, b"", 5))
    with pytest.raises(UnexpectedMessage):
        receiver.next_record()


def test_limits() -> None:
    layer = RecordLayer()
    layer.receive_data(struct.pack("!BHH", 22, 0x0303, MAX_PLAINTEXT + 1))
    with pytest.raises(RecordOverflow):
        layer.next_record()
    _, receiver = pair(CipherSuite.TLS_AES_128_GCM_SHA256)
    receiver.receive_data(struct.pack("!BHH", 23, 0x0303, MAX_CIPHERTEXT))
    assert receiver.next_record() is None  # allowed: waits for the body
    _, receiver = pair(CipherSuite.TLS_AES_128_GCM_SHA256)
    receiver.receive_data(struct.pack("!BHH", 23, 0x0303, MAX_CIPHERTEXT + 1))
    with pytest.raises(RecordOverflow):
        receiver.next_record()


def test_unknown_content_type() -> None:
    layer = RecordLayer()
    layer.receive_data(b"\x18\x03\x03\x00\x00")
    with pytest.raises(UnexpectedMessage):
        layer.next_record()


def test_key_change_resets_the_sequence_number() -> None:
    sender, receiver = pair(CipherSuite.TLS_AES_256_GCM_SHA384)
    sender.send(ContentType.application_data, b"a")
    receiver.receive_data(sender.data_to_send())
    assert receiver.next_record() is not None
    params = SUITES[CipherSuite.TLS_AES_256_GCM_SHA384]
    sender.set_write_secret(params, bytes(48))
    receiver.set_read_secret(params, bytes(48))
    assert sender.write_sequence == 0
    sender.send(ContentType.application_data, b"b")
    receiver.receive_data(sender.data_to_send())
    record = receiver.next_record()
    assert record is not None and record.data == b"b"


def test_unprotected_records_pass_through_a_protected_reader() -> None:
    _, receiver = pair(CipherSuite.TLS_AES_128_GCM_SHA256)
    receiver.receive_data(b"\x14\x03\x03\x00\x01\x01")
    record = receiver.next_record()
    assert record is not None and not record.protected
    assert record.content_type == ContentType.change_cipher_spec


def test_reprs_show_no_keys() -> None:
    sender, _ = pair(CipherSuite.TLS_AES_128_GCM_SHA256)
    text = repr(sender) + repr(sender._write)
    assert SECRET[:32].hex() not in text and "seq=0" in text


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(list(CipherSuite)), st.binary(max_size=40000), st.integers(0, 300))
def test_round_trip_any_size(suite: CipherSuite, data: bytes, padding: int) -> None:
    sender, receiver = pair(suite)
    sender._padding = padding
    sender.send(ContentType.application_data, data)
    receiver.receive_data(sender.data_to_send())
    out = b""
    while (record := receiver.next_record()) is not None:
        out += record.data
    assert out == data
