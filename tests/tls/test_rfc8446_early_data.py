"""RFC 8446 (4.2.10): a server that declines 0-RTT skips the client's early data.

Cases written from the RFC: real early data (protected with the client_early_traffic_secret
of a resumed session) and garbage records, with and without a HelloRetryRequest, at and over
max_early_data_size, early_data offered again after the retry, and records that fail to
decrypt once the skipping has ended. The client is netstack's own, with the early_data
extension added to its ClientHello and early records written after it, as a 0-RTT client's
would be."""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Iterator

import pytest
from tls_helpers import NOW, client_config, events, make_pair, pump, server_config

from netstack.tls import (
    ConnectionFailed,
    DataReceived,
    HandshakeCompleted,
    SessionTicketReceived,
    TLSConnection,
    TLSSession,
    wire,
)
from netstack.tls.errors import AlertDescription
from netstack.tls.key_schedule import SUITES, KeySchedule, derive_secret
from netstack.tls.record import ContentType, _Protection
from netstack.tls.wire import ExtensionType

MAX_RECORD = (1 << 14) + 256


@pytest.fixture
def offer_early_data(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Our client's ClientHellos carry early_data (before pre_shared_key, which stays last)
    while the list given holds a count above zero (decremented per ClientHello)."""
    push = wire.push_client_hello
    remaining = [1]

    def push_with_early_data(buf: wire.Buffer, hello: wire.ClientHello) -> None:
        if remaining[0] > 0:
            remaining[0] -= 1
            extensions = list(hello.extensions)
            at = len(extensions)
            if extensions and extensions[-1][0] == ExtensionType.pre_shared_key:
                at -= 1
            extensions.insert(at, (ExtensionType.early_data, b""))
            hello = wire.ClientHello(
                hello.random,
                hello.legacy_session_id,
                hello.cipher_suites,
                extensions,
                hello.legacy_compression_methods,
            )
        push(buf, hello)

    monkeypatch.setattr(wire, "push_client_hello", push_with_early_data)
    yield remaining


def app_record(payload: bytes) -> bytes:
    return struct.pack("!BHH", ContentType.application_data, 0x0303, len(payload)) + payload


def garbage(*sizes: int) -> bytes:
    """Records that look protected and decrypt under no key: each of ``size`` bytes."""
    return b"".join(app_record(os.urandom(size)) for size in sizes)


def early_records(session: TLSSession, client_hello_record: bytes, *chunks: bytes) -> bytes:
    """0-RTT records as a client makes them: under client_early_traffic_secret (RFC 8446
    7.1), derived from the resumption PSK and the ClientHello."""
    params = SUITES[session.cipher_suite]
    schedule = KeySchedule(params, session.psk)
    hello_hash = hashlib.new(params.hash_name, client_hello_record[5:]).digest()
    secret = derive_secret(params.hash_name, schedule.early_secret, b"c e traffic", hello_hash)
    protection = _Protection(params, secret)
    return b"".join(protection.seal(ContentType.application_data, c, 0) for c in chunks)


def first_flight(client: TLSConnection) -> bytes:
    client.start(NOW)
    return client.data_to_send()


def finish(client: TLSConnection, server: TLSConnection, to_server: bytes) -> tuple[list, list]:  # type: ignore[type-arg]
    """Deliver the client's first flight (with what follows it), then run the handshake."""
    server.receive_data(to_server, NOW)
    client.receive_data(server.data_to_send(), NOW)
    ce, se = pump(client, server)
    return events(client) + ce, events(server) + se


def assert_completed_and_talking(
    client: TLSConnection,
    server: TLSConnection,
    ce: list,
    se: list,  # type: ignore[type-arg]
) -> None:
    assert any(isinstance(e, HandshakeCompleted) for e in ce), ce
    assert any(isinstance(e, HandshakeCompleted) for e in se), se
    client.send_data(b"1-RTT data")
    server.receive_data(client.data_to_send(), NOW)
    assert events(server) == [DataReceived(b"1-RTT data")]
    server.send_data(b"answer")
    client.receive_data(server.data_to_send(), NOW)
    assert DataReceived(b"answer") in events(client)


def failed_with(found: list, description: AlertDescription) -> None:  # type: ignore[type-arg]
    assert found and isinstance(found[-1], ConnectionFailed), found
    assert found[-1].error.description is description, found[-1].error


def session_of(server_cfg: object) -> TLSSession:
    client, server = make_pair(client_config(), server_cfg)  # type: ignore[arg-type]
    ce, _ = pump(client, server)
    tickets = [e.session for e in ce if isinstance(e, SessionTicketReceived)]
    assert tickets
    return tickets[0]


# -- declined 0-RTT, 1-RTT handshake ---------------------------------------------------------


def test_declined_early_data_of_a_resumed_session_is_skipped(offer_early_data: list[int]) -> None:
    config = server_config()
    session = session_of(config)
    offer_early_data[0] = 1
    client, server = make_pair(client_config(), config, session=session)
    hello = first_flight(client)
    early = early_records(session, hello, b"GET / HTTP/1.1\r\n", b"x" * 1000, b"end")
    ce, se = finish(client, server, hello + early)
    assert_completed_and_talking(client, server, ce, se)
    assert server.session_resumed and client.session_resumed
    # The early data was not delivered: it is the client's to send again (RFC 8446 4.2.10).
    assert not any(isinstance(e, DataReceived) for e in se)


def test_garbage_early_data_in_a_full_handshake_is_skipped(offer_early_data: list[int]) -> None:
    # Content counted: 0, 0 and 2^14 (a full-size record has at least 239 bytes of padding).
    client, server = make_pair(client_config(), server_config())
    ce, se = finish(client, server, first_flight(client) + garbage(1, 17, MAX_RECORD))
    assert_completed_and_talking(client, server, ce, se)


def test_early_data_in_pieces_across_reads_is_skipped(offer_early_data: list[int]) -> None:
    client, server = make_pair(client_config(), server_config())
    data = first_flight(client) + garbage(300, 5000)
    for i in range(0, len(data), 97):
        server.receive_data(data[i : i + 97], NOW)
    client.receive_data(server.data_to_send(), NOW)
    ce, se = pump(client, server)
    assert_completed_and_talking(client, server, ce, se)


def test_early_data_with_change_cipher_spec_is_skipped(offer_early_data: list[int]) -> None:
    # A client in middlebox compatibility mode sends change_cipher_spec before its early data.
    client, server = make_pair(client_config(), server_config())
    ccs = struct.pack("!BHHB", ContentType.change_cipher_spec, 0x0303, 1, 1)
    ce, se = finish(client, server, first_flight(client) + ccs + garbage(200))
    assert_completed_and_talking(client, server, ce, se)


def test_early_data_up_to_max_early_data_size_is_skipped(offer_early_data: list[int]) -> None:
    # Two records of 400 and 600 bytes of content (plus tag and type byte each).
    client, server = make_pair(client_config(), server_config(max_early_data_size=1000))
    ce, se = finish(client, server, first_flight(client) + garbage(417, 617))
    assert_completed_and_talking(client, server, ce, se)


def test_early_data_over_max_early_data_size_is_unexpected_message(
    offer_early_data: list[int],
) -> None:
    client, server = make_pair(client_config(), server_config(max_early_data_size=1000))
    server.receive_data(first_flight(client) + garbage(417, 618), NOW)
    failed_with(events(server), AlertDescription.unexpected_message)


def test_default_limit_is_16384_bytes(offer_early_data: list[int]) -> None:
    client, server = make_pair(client_config(), server_config())
    server.receive_data(first_flight(client) + garbage(8192 + 17, 8192 + 17, 18), NOW)
    failed_with(events(server), AlertDescription.unexpected_message)


def test_oversized_early_data_record_is_record_overflow(offer_early_data: list[int]) -> None:
    client, server = make_pair(client_config(), server_config())
    server.receive_data(first_flight(client) + garbage(MAX_RECORD + 1), NOW)
    failed_with(events(server), AlertDescription.record_overflow)


def test_bad_record_after_the_client_flight_began_is_bad_record_mac(
    offer_early_data: list[int],
) -> None:
    # Skipping ends at the first record that decrypts (RFC 8446 4.2.10).
    client, server = make_pair(client_config(), server_config())
    server.receive_data(first_flight(client) + garbage(50), NOW)
    client.receive_data(server.data_to_send(), NOW)
    flight = client.data_to_send()  # Finished, under the handshake key
    server.receive_data(flight + garbage(50), NOW)
    failed_with(events(server), AlertDescription.bad_record_mac)


def test_undecryptable_records_without_early_data_offered_are_bad_record_mac() -> None:
    client, server = make_pair(client_config(), server_config())
    server.receive_data(first_flight(client) + garbage(50), NOW)
    failed_with(events(server), AlertDescription.bad_record_mac)


# -- after a HelloRetryRequest ---------------------------------------------------------------


def retry_pair() -> tuple[TLSConnection, TLSConnection]:
    # The client's only key share is x25519; the server wants secp256r1: a retry.
    return make_pair(
        client_config(groups=["x25519", "secp256r1"]),
        server_config(groups=["secp256r1", "x25519"], max_early_data_size=2000),
    )


def test_early_data_after_hello_retry_request_is_skipped(offer_early_data: list[int]) -> None:
    client, server = retry_pair()
    ce, se = finish(client, server, first_flight(client) + garbage(1017, 1017))
    assert server._hrr_group is not None
    assert_completed_and_talking(client, server, ce, se)


def test_too_much_early_data_after_hello_retry_request_is_unexpected_message(
    offer_early_data: list[int],
) -> None:
    client, server = retry_pair()
    server.receive_data(first_flight(client) + garbage(1017, 1018), NOW)
    failed_with(events(server), AlertDescription.unexpected_message)


def test_early_data_offered_again_after_hello_retry_request_is_illegal_parameter(
    offer_early_data: list[int],
) -> None:
    offer_early_data[0] = 2  # in both ClientHellos
    client, server = retry_pair()
    _, se = finish(client, server, first_flight(client) + garbage(100))
    failed_with(se, AlertDescription.illegal_parameter)


def test_garbage_after_the_second_client_hello_is_bad_record_mac(
    offer_early_data: list[int],
) -> None:
    client, server = retry_pair()
    server.receive_data(first_flight(client) + garbage(100), NOW)
    client.receive_data(server.data_to_send(), NOW)
    server.receive_data(client.data_to_send(), NOW)  # the second ClientHello
    server.receive_data(garbage(100), NOW)
    failed_with(events(server), AlertDescription.bad_record_mac)
