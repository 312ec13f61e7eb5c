"""Bad input: every error the peer causes becomes the alert RFC 8446 names, a queued alert
record and a ConnectionFailed event, never an exception out of receive_data."""

from __future__ import annotations

import datetime
import os
import struct
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tls_helpers import (
    NOW,
    client_config,
    events,
    expired_window,
    handshake,
    make_pair,
    pki,
    pump,
    server_config,
)

from netstack.tls import (
    AlertDescription,
    AlertReceived,
    ConnectionFailed,
    DataReceived,
    HandshakeCompleted,
    TLSAlert,
    TLSConfig,
    TLSConnection,
    TLSState,
    alert_error,
    errors,
    wire,
)
from netstack.tls.certs import issue, make_ca
from netstack.tls.record import ContentType
from netstack.tls.wire import ExtensionType, HandshakeType


def record(content_type: int, payload: bytes, version: int = 0x0303) -> bytes:
    return struct.pack("!BHH", content_type, version, len(payload)) + payload


def failure(conn: TLSConnection) -> TLSAlert:
    found = events(conn)
    assert found and isinstance(found[-1], ConnectionFailed), found
    assert conn.state is TLSState.CLOSED
    return found[-1].error


def sent_alert(data: bytes) -> int:
    """The description of the plaintext alert record at the end of ``data``."""
    assert data[-7:-4] == b"\x15\x03\x03" and data[-4:-2] == b"\x00\x02" and data[-2] == 2
    return data[-1]


def started_client(**options: object) -> TLSConnection:
    client = TLSConnection(
        client_config(**options),
        server_side=False,
        server_hostname="server.test",
        random=os.urandom,
    )
    client.start(NOW)
    client.data_to_send()
    return client


def server_hello(
    *,
    random: bytes | None = None,
    extensions: list[tuple[int, bytes]] | None = None,
    suite: int = 0x1301,
    version: int = 0x0303,
) -> bytes:
    hello = wire.ServerHello(
        random=random if random is not None else os.urandom(32),
        legacy_session_id_echo=b"",
        cipher_suite=suite,
        extensions=extensions if extensions is not None else [],
        legacy_version=version,
    )
    return record(
        22, wire.encode_message(HandshakeType.server_hello, wire.push_server_hello, hello)
    )


# -- versions and downgrades -----------------------------------------------------------------


def test_tls12_server_hello_is_protocol_version() -> None:
    client = started_client()
    client.receive_data(server_hello(), NOW)
    error = failure(client)
    assert error.description is AlertDescription.protocol_version
    assert isinstance(error, errors.ProtocolVersion)
    assert sent_alert(client.data_to_send()) == AlertDescription.protocol_version


@pytest.mark.parametrize("sentinel", [wire.DOWNGRADE_TLS12, wire.DOWNGRADE_TLS11])
def test_downgrade_sentinel_is_illegal_parameter(sentinel: bytes) -> None:
    client = started_client()
    client.receive_data(server_hello(random=os.urandom(24) + sentinel), NOW)
    assert failure(client).description is AlertDescription.illegal_parameter


def test_server_hello_choosing_tls12_in_supported_versions_is_illegal_parameter() -> None:
    client = started_client()
    versions = [(ExtensionType.supported_versions, wire.push_uint16_body(0x0303))]
    client.receive_data(server_hello(extensions=versions), NOW)
    assert failure(client).description is AlertDescription.illegal_parameter


def test_server_hello_with_a_suite_not_offered_is_illegal_parameter() -> None:
    client = started_client(cipher_suites=["TLS_AES_128_GCM_SHA256"])
    versions = [(ExtensionType.supported_versions, wire.push_uint16_body(0x0304))]
    client.receive_data(server_hello(extensions=versions, suite=0x1302), NOW)
    assert failure(client).description is AlertDescription.illegal_parameter


def test_server_hello_without_key_share_is_missing_extension() -> None:
    client = started_client()
    versions = [(ExtensionType.supported_versions, wire.push_uint16_body(0x0304))]
    client.receive_data(server_hello(extensions=versions), NOW)
    assert failure(client).description is AlertDescription.missing_extension


def test_server_hello_with_an_unrequested_extension_is_unsupported_extension() -> None:
    client = started_client()
    exts = [
        (ExtensionType.supported_versions, wire.push_uint16_body(0x0304)),
        (ExtensionType.early_data, b""),
    ]
    client.receive_data(server_hello(extensions=exts), NOW)
    assert failure(client).description is AlertDescription.unsupported_extension


def test_server_hello_with_a_bad_x25519_share_is_illegal_parameter() -> None:
    client = started_client()
    exts = [
        (ExtensionType.key_share, wire.push_server_key_share(0x1D, bytes(32))),
        (ExtensionType.supported_versions, wire.push_uint16_body(0x0304)),
    ]
    client.receive_data(server_hello(extensions=exts), NOW)
    assert failure(client).description is AlertDescription.illegal_parameter


def test_second_hello_retry_request_is_unexpected_message() -> None:
    client = started_client(groups=["x25519", "secp256r1"])
    hrr = server_hello(
        random=wire.HELLO_RETRY_REQUEST_RANDOM,
        extensions=[
            (ExtensionType.supported_versions, wire.push_uint16_body(0x0304)),
            (ExtensionType.key_share, wire.push_uint16_body(0x17)),
        ],
    )
    client.receive_data(hrr, NOW)
    assert events(client) == []
    client.data_to_send()
    client.receive_data(hrr, NOW)
    assert failure(client).description is AlertDescription.unexpected_message


def test_hello_retry_request_for_a_group_already_shared_is_illegal_parameter() -> None:
    client = started_client()
    hrr = server_hello(
        random=wire.HELLO_RETRY_REQUEST_RANDOM,
        extensions=[
            (ExtensionType.supported_versions, wire.push_uint16_body(0x0304)),
            (ExtensionType.key_share, wire.push_uint16_body(0x1D)),
        ],
    )
    client.receive_data(hrr, NOW)
    assert failure(client).description is AlertDescription.illegal_parameter


def client_hello(extensions: list[tuple[int, bytes]], compression: bytes = b"\x00") -> bytes:
    hello = wire.ClientHello(os.urandom(32), b"", [0x1301], extensions, compression)
    return record(
        22, wire.encode_message(HandshakeType.client_hello, wire.push_client_hello, hello), 0x0301
    )


def fresh_server(**options: object) -> TLSConnection:
    return TLSConnection(server_config(**options), server_side=True, random=os.urandom)


def test_tls12_client_hello_is_protocol_version() -> None:
    server = fresh_server()
    server.receive_data(client_hello([(ExtensionType.supported_groups, b"\x00\x02\x00\x1d")]), NOW)
    assert failure(server).description is AlertDescription.protocol_version
    assert sent_alert(server.data_to_send()) == AlertDescription.protocol_version


def test_client_hello_offering_only_tls12_in_supported_versions_is_protocol_version() -> None:
    server = fresh_server()
    versions = wire.push_client_supported_versions([0x0303, 0x0302])
    server.receive_data(client_hello([(ExtensionType.supported_versions, versions)]), NOW)
    assert failure(server).description is AlertDescription.protocol_version


def test_client_hello_with_compression_is_illegal_parameter() -> None:
    server = fresh_server()
    versions = wire.push_client_supported_versions([0x0304])
    server.receive_data(
        client_hello([(ExtensionType.supported_versions, versions)], compression=b"\x01\x00"), NOW
    )
    assert failure(server).description is AlertDescription.illegal_parameter


def test_client_hello_without_key_share_is_missing_extension() -> None:
    server = fresh_server()
    versions = wire.push_client_supported_versions([0x0304])
    server.receive_data(client_hello([(ExtensionType.supported_versions, versions)]), NOW)
    assert failure(server).description is AlertDescription.missing_extension


def test_client_hello_with_psk_not_last_is_illegal_parameter() -> None:
    server = fresh_server()
    offered = wire.push_offered_psks(wire.OfferedPsks([(b"ticket", 0)], [bytes(32)]))
    exts = [
        (ExtensionType.supported_versions, wire.push_client_supported_versions([0x0304])),
        (ExtensionType.pre_shared_key, offered),
        (ExtensionType.supported_groups, wire.push_uint16_list([0x1D])),
    ]
    server.receive_data(client_hello(exts), NOW)
    assert failure(server).description is AlertDescription.illegal_parameter


def test_duplicate_extensions_are_decode_error() -> None:
    server = fresh_server()
    versions = wire.push_client_supported_versions([0x0304])
    server.receive_data(
        client_hello(
            [
                (ExtensionType.supported_versions, versions),
                (ExtensionType.supported_versions, versions),
            ]
        ),
        NOW,
    )
    assert failure(server).description is AlertDescription.decode_error


# -- authentication --------------------------------------------------------------------------


def test_wrong_client_finished_is_decrypt_error() -> None:
    client, server = make_pair(client_config(), server_config())
    client.start(NOW)
    server.receive_data(client.data_to_send(), NOW)
    flight = server.data_to_send()
    client.receive_data(flight[: 5 + int.from_bytes(flight[3:5], "big")], NOW)  # ServerHello
    client._client_hs_secret = bytes(32)  # the client now computes a wrong Finished
    client.receive_data(flight[5 + int.from_bytes(flight[3:5], "big") :], NOW)
    server.receive_data(client.data_to_send(), NOW)
    assert failure(server).description is AlertDescription.decrypt_error
    client.receive_data(server.data_to_send(), NOW)
    received = [e for e in events(client) if isinstance(e, AlertReceived)]
    assert received and received[0].error.description is AlertDescription.decrypt_error


def test_wrong_server_finished_is_decrypt_error() -> None:
    client, server = make_pair(client_config(), server_config())
    client.start(NOW)
    server.receive_data(client.data_to_send(), NOW)
    flight = server.data_to_send()
    split = 5 + int.from_bytes(flight[3:5], "big")
    client.receive_data(flight[:split], NOW)
    client._server_hs_secret = bytes(32)
    client.receive_data(flight[split:], NOW)
    assert failure(client).description is AlertDescription.decrypt_error


def test_bad_certificate_verify_signature_is_decrypt_error() -> None:
    cfg = server_config("ec")
    from cryptography.hazmat.primitives.asymmetric import ec

    object.__setattr__(cfg, "private_key", ec.generate_private_key(ec.SECP256R1()))
    _, _, ce, _ = handshake(client_config(), cfg)
    assert isinstance(ce[-1], ConnectionFailed)
    assert ce[-1].error.description is AlertDescription.decrypt_error


def test_expired_certificate_is_certificate_expired() -> None:
    p = pki()
    start, end = expired_window()
    cert, key = issue(p.ca, p.ca_key, "server.test", not_before=start, not_after=end)
    _, _, ce, se = handshake(client_config(), TLSConfig.server([cert], key))
    assert isinstance(ce[-1], ConnectionFailed)
    error = ce[-1].error
    assert isinstance(error, errors.CertificateExpired)
    import ssl

    assert isinstance(error, ssl.SSLCertVerificationError)
    assert isinstance(se[-1], AlertReceived)
    assert se[-1].error.description is AlertDescription.certificate_expired


def test_not_yet_valid_certificate_is_certificate_expired() -> None:
    p = pki()
    start = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=10)
    cert, key = issue(p.ca, p.ca_key, "server.test", not_before=start)
    _, _, ce, _ = handshake(client_config(), TLSConfig.server([cert], key))
    assert ce[-1].error.description is AlertDescription.certificate_expired  # type: ignore[union-attr]


def test_wrong_hostname_is_bad_certificate() -> None:
    _, _, ce, se = handshake(client_config(), server_config(), server_hostname="other.test")
    assert isinstance(ce[-1], ConnectionFailed)
    assert isinstance(ce[-1].error, errors.BadCertificate)
    assert isinstance(se[-1], AlertReceived)


def test_unknown_ca_is_unknown_ca() -> None:
    other, _ = make_ca("someone else")
    _, _, ce, _ = handshake(client_config(cafile=[other]), server_config())
    assert isinstance(ce[-1], ConnectionFailed)
    assert isinstance(ce[-1].error, errors.UnknownCA)


def test_intermediate_ca_chain_validates() -> None:
    p = pki()
    inter, inter_key = issue(p.ca, p.ca_key, "intermediate", ca=True)
    leaf, leaf_key = issue(inter, inter_key, "server.test")
    _, _, ce, _ = handshake(client_config(), TLSConfig.server([leaf, inter], leaf_key))
    assert isinstance(ce[0], HandshakeCompleted)
    _, _, ce, _ = handshake(client_config(), TLSConfig.server([leaf], leaf_key))
    assert isinstance(ce[-1], ConnectionFailed)
    assert isinstance(ce[-1].error, errors.UnknownCA)


# -- wrong lengths and schemes in Finished and CertificateVerify ----------------------------


def tamper(conn: TLSConnection, msg_type: int, change: Any) -> None:
    """Make ``conn`` send the handshake messages of ``msg_type`` with ``change(body)`` as
    their body (the transcript keeps what is sent, as a faulty peer's would)."""
    send = conn._send_handshake

    def sending(message: bytes, **options: Any) -> None:
        if message[0] == msg_type:
            message = wire.push_handshake(HandshakeType(msg_type), change(message[4:]))
        send(message, **options)

    conn._send_handshake = sending  # type: ignore[method-assign]


def alert_for_tampered(sender: str, msg_type: int, change: Any, **server: Any) -> int:
    """The alert the other side sends when ``sender`` ("client" or "server") sends its
    ``msg_type`` messages with ``change(body)`` as body; the client has an EC certificate
    for servers that ask (``verify_client=True``)."""
    client, server_conn = make_pair(
        client_config(client_key_type="ec"), server_config(server.pop("key_type", "ec"), **server)
    )
    tamper(client if sender == "client" else server_conn, msg_type, change)
    ce, se = pump(client, server_conn)
    found = se if sender == "client" else ce
    assert isinstance(found[-1], ConnectionFailed), found
    return found[-1].error.description


@pytest.mark.parametrize("cut", [1, 31, -1])
def test_server_finished_of_the_wrong_length_is_decode_error(cut: int) -> None:
    # RFC 8446 (4.4.4): verify_data is Hash.length bytes; another length does not parse.
    def change(body: bytes) -> bytes:
        return body[:cut] if cut > 0 else body + b"!"

    found = alert_for_tampered("server", HandshakeType.finished, change)
    assert found is AlertDescription.decode_error


def test_client_finished_of_the_wrong_length_is_decode_error() -> None:
    found = alert_for_tampered("client", HandshakeType.finished, lambda body: body[:-1])
    assert found is AlertDescription.decode_error


def empty_signature(body: bytes) -> bytes:
    return body[:2] + b"\x00\x00"


@pytest.mark.parametrize("sender", ["server", "client"])
def test_empty_certificate_verify_signature_is_decrypt_error(sender: str) -> None:
    # RFC 8446 (4.4.3): signature<0..2^16-1> may be empty; it then fails to verify.
    found = alert_for_tampered(
        sender, HandshakeType.certificate_verify, empty_signature, verify_client=True
    )
    assert found is AlertDescription.decrypt_error


def other_scheme(scheme: int) -> Any:
    return lambda body: scheme.to_bytes(2, "big") + body[2:]


@pytest.mark.parametrize(
    ("sender", "key_type", "scheme"),
    [
        ("server", "ec", wire.SignatureScheme.rsa_pss_rsae_sha256),
        ("server", "ec", wire.SignatureScheme.ed25519),
        ("server", "ec", wire.SignatureScheme.ecdsa_secp384r1_sha384),
        ("server", "rsa", wire.SignatureScheme.ecdsa_secp256r1_sha256),
        ("server", "ed25519", wire.SignatureScheme.rsa_pss_rsae_sha256),
        ("client", "ec", wire.SignatureScheme.rsa_pss_rsae_sha256),
    ],
)
def test_certificate_verify_scheme_not_matching_the_key_is_illegal_parameter(
    sender: str, key_type: str, scheme: int
) -> None:
    # RFC 8446 (4.4.3, 4.2.3): the scheme must be one the certificate's key can make.
    found = alert_for_tampered(
        sender,
        HandshakeType.certificate_verify,
        other_scheme(scheme),
        key_type=key_type,
        verify_client=sender == "client",
    )
    assert found is AlertDescription.illegal_parameter


# -- records ---------------------------------------------------------------------------------


def test_oversized_plaintext_record_is_record_overflow() -> None:
    server = fresh_server()
    server.receive_data(struct.pack("!BHH", 22, 0x0301, (1 << 14) + 1), NOW)
    assert failure(server).description is AlertDescription.record_overflow


def test_oversized_protected_record_is_record_overflow() -> None:
    client, server, _, _ = handshake(client_config(), server_config())
    server.receive_data(struct.pack("!BHH", 23, 0x0303, (1 << 14) + 257), NOW)
    assert failure(server).description is AlertDescription.record_overflow
    # The alert is protected: the client reads it.
    client.receive_data(server.data_to_send(), NOW)
    received = events(client)
    assert isinstance(received[-1], AlertReceived)
    assert received[-1].error.description is AlertDescription.record_overflow


def test_largest_protected_record_is_accepted() -> None:
    client, server, _, _ = handshake(client_config(), server_config())
    client.send_data(bytes(1 << 14))
    data = client.data_to_send()
    assert int.from_bytes(data[3:5], "big") == (1 << 14) + 1 + 16
    server.receive_data(data, NOW)
    assert events(server) == [DataReceived(bytes(1 << 14))]


def test_padded_records_are_accepted() -> None:
    client, server, _, _ = handshake(client_config(), server_config())
    client._record._padding = 200
    client.send_data(bytes(1 << 14))
    data = client.data_to_send()
    assert len(data) > 2 * (5 + 200)
    server.receive_data(data, NOW)
    assert b"".join(e.data for e in events(server)) == bytes(1 << 14)  # type: ignore[union-attr]


def test_overlong_inner_plaintext_is_record_overflow() -> None:
    client, server, _, _ = handshake(client_config(), server_config())
    protection = client._record._write
    assert protection is not None
    server.receive_data(protection.seal(ContentType.application_data, bytes(1 << 14), 1), NOW)
    assert failure(server).description is AlertDescription.record_overflow


def test_truncated_records_wait_for_more() -> None:
    client, server = make_pair(client_config(), server_config())
    client.start(NOW)
    hello = client.data_to_send()
    for i in range(len(hello)):
        server.receive_data(hello[i : i + 1], NOW)
    assert server.state is TLSState.WAIT_FINISHED
    assert events(server) == []


def test_handshake_fragmented_over_records() -> None:
    client, server = make_pair(client_config(), server_config())
    client.start(NOW)
    hello = client.data_to_send()[5:]
    for i in range(0, len(hello), 7):
        server.receive_data(record(22, hello[i : i + 7]), NOW)
    client.receive_data(server.data_to_send(), NOW)
    ce, se = pump(client, server)
    assert isinstance(ce[0], HandshakeCompleted) and isinstance(se[0], HandshakeCompleted)


def test_flipped_ciphertext_is_bad_record_mac() -> None:
    client, server, _, _ = handshake(client_config(), server_config())
    client.send_data(b"hello")
    data = bytearray(client.data_to_send())
    data[-1] ^= 0x80
    server.receive_data(bytes(data), NOW)
    assert failure(server).description is AlertDescription.bad_record_mac


def test_unknown_record_type_is_unexpected_message() -> None:
    server = fresh_server()
    server.receive_data(record(99, b"hi"), NOW)
    assert failure(server).description is AlertDescription.unexpected_message


def test_application_data_before_the_handshake_is_unexpected_message() -> None:
    server = fresh_server()
    server.receive_data(record(23, b"early"), NOW)
    assert failure(server).description is AlertDescription.unexpected_message


def test_plaintext_handshake_after_keys_is_unexpected_message() -> None:
    client, server, _, _ = handshake(client_config(), server_config())
    server.receive_data(record(22, b"\x18\x00\x00\x01\x00"), NOW)
    assert failure(server).description is AlertDescription.unexpected_message


def test_empty_handshake_record_is_unexpected_message() -> None:
    server = fresh_server()
    server.receive_data(record(22, b""), NOW)
    assert failure(server).description is AlertDescription.unexpected_message


def test_handshake_message_spanning_a_key_change_is_unexpected_message() -> None:
    client, server = make_pair(client_config(), server_config())
    client.start(NOW)
    hello = client.data_to_send()
    # The ClientHello and the start of another message in one record.
    server.receive_data(record(22, hello[5:] + b"\x14\x00"), NOW)
    assert failure(server).description is AlertDescription.unexpected_message


def test_unexpected_handshake_message_is_unexpected_message() -> None:
    server = fresh_server()
    finished = wire.encode_message(
        HandshakeType.finished, wire.push_finished, wire.Finished(bytes(32))
    )
    server.receive_data(record(22, finished), NOW)
    assert failure(server).description is AlertDescription.unexpected_message


def test_unknown_handshake_type_is_unexpected_message() -> None:
    server = fresh_server()
    server.receive_data(record(22, b"\x63\x00\x00\x00"), NOW)
    assert failure(server).description is AlertDescription.unexpected_message


def test_malformed_client_hello_is_decode_error() -> None:
    server = fresh_server()
    server.receive_data(record(22, b"\x01\x00\x00\x05\x03\x03\x00\x00\x00"), NOW)
    assert failure(server).description is AlertDescription.decode_error


def test_bad_key_update_value_is_illegal_parameter() -> None:
    client, server, _, _ = handshake(client_config(), server_config())
    client._record.send(ContentType.handshake, b"\x18\x00\x00\x01\x05")
    server.receive_data(client.data_to_send(), NOW)
    assert failure(server).description is AlertDescription.illegal_parameter


def test_new_session_ticket_to_a_server_is_unexpected_message() -> None:
    client, server, _, _ = handshake(client_config(), server_config())
    ticket = wire.encode_message(
        HandshakeType.new_session_ticket,
        wire.push_new_session_ticket,
        wire.NewSessionTicket(60, 0, b"", b"x"),
    )
    client._record.send(ContentType.handshake, ticket)
    server.receive_data(client.data_to_send(), NOW)
    assert failure(server).description is AlertDescription.unexpected_message


# -- change_cipher_spec (RFC 8446, 5 and D.4) ----------------------------------------------------


def test_change_cipher_spec_is_dropped_during_the_handshake() -> None:
    client, server = make_pair(client_config(), server_config())
    client.start(NOW)
    server.receive_data(client.data_to_send() + record(20, b"\x01"), NOW)
    client.receive_data(record(20, b"\x01") + server.data_to_send(), NOW)
    ce, se = pump(client, server)
    assert isinstance(ce[0], HandshakeCompleted) and isinstance(se[0], HandshakeCompleted)


def test_change_cipher_spec_before_the_client_hello_is_unexpected_message() -> None:
    server = fresh_server()
    server.receive_data(record(20, b"\x01"), NOW)
    assert failure(server).description is AlertDescription.unexpected_message


def test_change_cipher_spec_with_another_value_is_unexpected_message() -> None:
    client, server = make_pair(client_config(), server_config())
    client.start(NOW)
    server.receive_data(client.data_to_send() + record(20, b"\x02"), NOW)
    assert failure(server).description is AlertDescription.unexpected_message


def test_change_cipher_spec_after_the_handshake_is_unexpected_message() -> None:
    client, server, _, _ = handshake(client_config(), server_config())
    server.receive_data(record(20, b"\x01"), NOW)
    assert failure(server).description is AlertDescription.unexpected_message


def test_protected_change_cipher_spec_is_unexpected_message() -> None:
    client, server, _, _ = handshake(client_config(), server_config())
    client._record.send(ContentType.change_cipher_spec, b"\x01")
    server.receive_data(client.data_to_send(), NOW)
    assert failure(server).description is AlertDescription.unexpected_message


# -- alerts ----------------------------------------------------------------------------------


@pytest.mark.parametrize("description", [d for d in AlertDescription if d not in (0, 90)])
def test_every_received_alert_maps_to_its_exception(description: AlertDescription) -> None:
    client, server, _, _ = handshake(client_config(), server_config())
    client._record.send(ContentType.alert, bytes([2, description]))
    server.receive_data(client.data_to_send(), NOW)
    found = events(server)
    assert len(found) == 1 and isinstance(found[0], AlertReceived)
    error = found[0].error
    assert error.description is description and error.received
    assert type(error) is type(alert_error(description, received=True))
    assert type(error).__name__.lower() == description.name.replace("_", "")
    assert server.state is TLSState.CLOSED
    with pytest.raises(errors.TLSError):
        server.send_data(b"after a fatal alert")


def test_unknown_alert_is_fatal() -> None:
    client, server, _, _ = handshake(client_config(), server_config())
    client._record.send(ContentType.alert, b"\x02\xc8")
    server.receive_data(client.data_to_send(), NOW)
    found = events(server)
    assert isinstance(found[0], AlertReceived)
    assert isinstance(found[0].error, errors.UnknownAlert)
    assert found[0].error.unknown_value == 200


def test_user_canceled_is_ignored() -> None:
    client, server, _, _ = handshake(client_config(), server_config())
    client._record.send(ContentType.alert, b"\x01\x5a")
    client.send_data(b"still here")
    server.receive_data(client.data_to_send(), NOW)
    assert events(server) == [DataReceived(b"still here")]


def test_malformed_alert_is_decode_error() -> None:
    client, server, _, _ = handshake(client_config(), server_config())
    client._record.send(ContentType.alert, b"\x02\x28\x00")
    server.receive_data(client.data_to_send(), NOW)
    assert failure(server).description is AlertDescription.decode_error


def test_close_notify_during_the_handshake_fails_it() -> None:
    server = fresh_server()
    server.receive_data(record(21, b"\x01\x00"), NOW)
    found = events(server)
    assert isinstance(found[0], AlertReceived)
    assert found[0].error.description is AlertDescription.close_notify


def test_nothing_is_processed_after_failure() -> None:
    server = fresh_server()
    server.receive_data(record(99, b""), NOW)
    failure(server)
    server.data_to_send()
    server.receive_data(record(99, b"") * 3, NOW)
    assert events(server) == [] and server.data_to_send() == b""


# -- fuzzing: never an exception, only alerts ------------------------------------------------

ALLOWED = (ConnectionFailed, AlertReceived)


def only_failures(conn: TLSConnection) -> None:
    for event in events(conn):
        assert isinstance(event, ALLOWED), event
        # internal_error would mean an exception in the machine, not a diagnosis.
        assert not isinstance(event.error, errors.InternalError), event


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600))
def test_random_bytes_into_a_server(data: bytes) -> None:
    server = fresh_server()
    server.receive_data(data, NOW)
    only_failures(server)
    server.data_to_send()


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes_into_a_client(data: bytes) -> None:
    client = started_client()
    client.receive_data(data, NOW)
    only_failures(client)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([20, 21, 22, 23]), st.binary(max_size=300)), max_size=5))
def test_random_records_into_both_sides(records: list[tuple[int, bytes]]) -> None:
    data = b"".join(record(t, p) for t, p in records)
    server = fresh_server()
    server.receive_data(data, NOW)
    only_failures(server)
    client = started_client()
    client.receive_data(data, NOW)
    only_failures(client)


_HANDSHAKE_BYTES: dict[str, bytes] = {}


def _flights() -> dict[str, bytes]:
    if not _HANDSHAKE_BYTES:
        client, server = make_pair(
            client_config(client_key_type="ec"), server_config(verify_client=True)
        )
        client.start(NOW)
        _HANDSHAKE_BYTES["client_hello"] = client.data_to_send()
        server.receive_data(_HANDSHAKE_BYTES["client_hello"], NOW)
        _HANDSHAKE_BYTES["server_flight"] = server.data_to_send()
    return _HANDSHAKE_BYTES


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_client_hello_into_a_server(data: st.DataObject) -> None:
    hello = bytearray(_flights()["client_hello"])
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(hello) - 1))
        hello[position] ^= data.draw(st.integers(1, 255))
    server = fresh_server(verify_client=True)
    server.receive_data(bytes(hello), NOW)
    only_failures(server)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_truncated_or_mutated_server_flight_into_a_client(data: st.DataObject) -> None:
    flight = bytearray(_flights()["server_flight"])
    cut = data.draw(st.integers(0, len(flight)))
    flight = flight[:cut]
    if flight and data.draw(st.booleans()):
        position = data.draw(st.integers(0, len(flight) - 1))
        flight[position] ^= data.draw(st.integers(1, 255))
    client = TLSConnection(
        client_config(client_key_type="ec"),
        server_side=False,
        server_hostname="server.test",
        random=os.urandom,
    )
    client.start(NOW)
    client.receive_data(bytes(flight), NOW)
    only_failures(client)


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=1, max_size=400))
def test_random_bytes_into_a_connected_endpoint(data: bytes) -> None:
    client, server, _, _ = handshake(client_config(), server_config())
    server.receive_data(data, NOW)
    only_failures(server)
