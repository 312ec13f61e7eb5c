"""Client and server machines talking to each other in memory (no event loop): every cipher
suite, group and signature scheme, client certificates, ALPN, SNI, HelloRetryRequest,
resumption, KeyUpdate and closure."""

from __future__ import annotations

import os

import pytest
from tls_helpers import (
    NOW,
    client_config,
    events,
    handshake,
    make_pair,
    pki,
    pump,
    server_config,
)

from netstack.tls import (
    AlertReceived,
    CertificateRequired,
    CipherSuite,
    CloseNotifyReceived,
    ConnectionFailed,
    DataReceived,
    Group,
    HandshakeCompleted,
    KeyUpdated,
    NoApplicationProtocol,
    SessionTicketReceived,
    SignatureScheme,
    TLSConfig,
    TLSConnection,
    TLSError,
    TLSState,
)
from netstack.tls.certs import issue

KEY_TYPE_FOR_SCHEME = {
    SignatureScheme.ecdsa_secp256r1_sha256: "ec",
    SignatureScheme.rsa_pss_rsae_sha256: "rsa",
    SignatureScheme.ed25519: "ed25519",
}


def completed(found: list[object]) -> HandshakeCompleted:
    done = [e for e in found if isinstance(e, HandshakeCompleted)]
    assert len(done) == 1, found
    return done[0]


@pytest.mark.parametrize("scheme", list(KEY_TYPE_FOR_SCHEME))
@pytest.mark.parametrize("group", [Group.x25519, Group.secp256r1])
@pytest.mark.parametrize("suite", list(CipherSuite))
def test_every_suite_group_and_scheme(
    suite: CipherSuite, group: Group, scheme: SignatureScheme
) -> None:
    client, server, ce, se = handshake(
        client_config(cipher_suites=[suite], groups=[group], signature_algorithms=[scheme]),
        server_config(KEY_TYPE_FOR_SCHEME[scheme]),
    )
    done = completed(ce)
    assert done.cipher[0] == suite.name and done.cipher[1] == "TLSv1.3"
    assert completed(se).cipher == done.cipher
    assert client.state is TLSState.CONNECTED and server.state is TLSState.CONNECTED
    assert client.peer_certificate == pki().server[KEY_TYPE_FOR_SCHEME[scheme]][0]
    assert server.peer_certificate is None
    assert client.getpeercert()["subject"] == ((("commonName", "server.test"),),)  # type: ignore[index]
    assert client.getpeercert(binary_form=True)[:1] == b"\x30"  # type: ignore[index]
    client.send_data(b"ping")
    server.send_data(b"pong" * 10000)
    ce, se = pump(client, server)
    assert b"".join(e.data for e in ce if isinstance(e, DataReceived)) == b"pong" * 10000
    assert se == [DataReceived(b"ping")]


def test_secret_bits_per_suite() -> None:
    bits = {}
    for suite in CipherSuite:
        client, _, ce, _ = handshake(client_config(cipher_suites=[suite]), server_config())
        bits[suite] = completed(ce).cipher[2]
    assert bits == {
        CipherSuite.TLS_AES_128_GCM_SHA256: 128,
        CipherSuite.TLS_AES_256_GCM_SHA384: 256,
        CipherSuite.TLS_CHACHA20_POLY1305_SHA256: 256,
    }


def test_server_preference_decides_the_suite() -> None:
    client, _, ce, _ = handshake(
        client_config(),
        server_config(cipher_suites=["TLS_CHACHA20_POLY1305_SHA256", "TLS_AES_128_GCM_SHA256"]),
    )
    assert client.cipher is not None and client.cipher[0] == "TLS_CHACHA20_POLY1305_SHA256"


def test_connecting_by_ip_address_checks_the_ip_san() -> None:
    client, _, ce, _ = handshake(client_config(), server_config(), server_hostname="198.18.0.2")
    completed(ce)
    client, _, ce, _ = handshake(client_config(), server_config(), server_hostname="198.18.0.3")
    assert isinstance(ce[-1], ConnectionFailed)


# -- client certificates ---------------------------------------------------------------------


@pytest.mark.parametrize("key_type", ["ec", "rsa", "ed25519"])
def test_client_certificate_required_and_given(key_type: str) -> None:
    client, server, ce, se = handshake(
        client_config(client_key_type=key_type), server_config(verify_client=True)
    )
    completed(ce)
    completed(se)
    assert server.peer_certificate == pki().client[key_type][0]
    assert server.getpeercert()["subject"] == (((("commonName", f"client-{key_type}"),),))  # type: ignore[index]


def test_client_certificate_required_and_missing() -> None:
    client, server, ce, se = handshake(client_config(), server_config(verify_client=True))
    failed = se[-1]
    assert isinstance(failed, ConnectionFailed)
    assert isinstance(failed.error, CertificateRequired)
    received = ce[-1]
    assert isinstance(received, AlertReceived)
    assert isinstance(received.error, CertificateRequired) and received.error.received
    assert server.state is TLSState.CLOSED


def test_client_certificate_optional() -> None:
    _, server, ce, se = handshake(client_config(), server_config(verify_client="optional"))
    completed(se)
    assert server.peer_certificate is None and server.getpeercert() is None
    _, server, ce, se = handshake(
        client_config(client_key_type="ec"), server_config(verify_client="optional")
    )
    completed(se)
    assert server.peer_certificate is not None


def test_client_certificate_from_an_unknown_ca() -> None:
    from netstack.tls.certs import make_ca

    other_ca, other_key = make_ca("other CA")
    cert, key = issue(other_ca, other_key, "intruder", client=True)
    cfg = TLSConfig.client(cafile=[pki().ca], certfile=[cert], keyfile=key)
    _, server, ce, se = handshake(cfg, server_config(verify_client=True))
    assert isinstance(se[-1], ConnectionFailed)
    assert se[-1].error.description.name == "unknown_ca"
    assert isinstance(ce[-1], AlertReceived)


def test_client_certificate_without_client_auth_usage_is_refused() -> None:
    cert, key = pki().server["ec"]
    cfg = TLSConfig.client(cafile=[pki().ca], certfile=[cert], keyfile=key)
    _, _, _, se = handshake(cfg, server_config(verify_client=True))
    assert isinstance(se[-1], ConnectionFailed)
    assert se[-1].error.description.name == "bad_certificate"


def test_client_with_a_certificate_and_a_server_that_does_not_ask() -> None:
    _, server, ce, se = handshake(client_config(client_key_type="rsa"), server_config())
    completed(se)
    assert server.peer_certificate is None


# -- ALPN and SNI ----------------------------------------------------------------------------


def test_alpn_server_preference() -> None:
    client, server, ce, se = handshake(
        client_config(alpn_protocols=["http/1.1", "h2"]),
        server_config(alpn_protocols=["h2", "http/1.1"]),
    )
    assert completed(ce).alpn_protocol == "h2" == client.alpn_protocol == server.alpn_protocol


def test_alpn_only_one_side() -> None:
    client, server, ce, _ = handshake(client_config(alpn_protocols=["h2"]), server_config())
    assert completed(ce).alpn_protocol is None
    client, server, ce, _ = handshake(client_config(), server_config(alpn_protocols=["h2"]))
    assert completed(ce).alpn_protocol is None


def test_alpn_without_overlap_is_no_application_protocol() -> None:
    _, _, ce, se = handshake(
        client_config(alpn_protocols=["h2"]), server_config(alpn_protocols=["http/1.1"])
    )
    assert isinstance(se[-1], ConnectionFailed)
    assert isinstance(se[-1].error, NoApplicationProtocol)
    assert isinstance(ce[-1], AlertReceived)
    assert isinstance(ce[-1].error, NoApplicationProtocol)


def test_sni_chooses_the_certificate() -> None:
    p = pki()
    alpha = issue(p.ca, p.ca_key, "alpha.test")
    beta = issue(p.ca, p.ca_key, "beta.test", key_type="rsa")
    wild = issue(p.ca, p.ca_key, "any.wild.test", dns_names=["*.wild.test"])
    default_cert, default_key = p.server["ec"]
    server_cfg = TLSConfig.server(
        [default_cert],
        default_key,
        sni_certificates={
            "alpha.test": ([alpha[0]], alpha[1]),
            "Beta.Test": ([beta[0]], beta[1]),
            "*.wild.test": ([wild[0]], wild[1]),
        },
    )
    for name, expected in [
        ("alpha.test", alpha[0]),
        ("beta.test", beta[0]),
        ("x.wild.test", wild[0]),
        ("server.test", default_cert),
    ]:
        client, server, ce, _ = handshake(client_config(), server_cfg, server_hostname=name)
        completed(ce)
        assert client.peer_certificate == expected
        assert server.requested_server_name == name


def test_sni_without_a_match_and_no_default_is_unrecognized_name() -> None:
    p = pki()
    alpha = issue(p.ca, p.ca_key, "alpha.test")
    server_cfg = TLSConfig(sni_certificates={"alpha.test": ((alpha[0],), alpha[1])})
    _, _, ce, se = handshake(client_config(), server_cfg, server_hostname="server.test")
    assert isinstance(se[-1], ConnectionFailed)
    assert se[-1].error.description.name == "unrecognized_name"


def test_no_sni_is_sent_for_an_ip_address() -> None:
    client, server, ce, _ = handshake(
        client_config(), server_config(), server_hostname="198.18.0.2"
    )
    completed(ce)
    assert server.requested_server_name is None


# -- HelloRetryRequest -----------------------------------------------------------------------


def test_hello_retry_request_when_the_share_is_not_the_servers_group() -> None:
    client, server, ce, se = handshake(
        client_config(groups=["x25519", "secp256r1"]),
        server_config(groups=["secp256r1", "x25519"]),
    )
    completed(ce)
    completed(se)
    assert server._hrr_group == Group.secp256r1
    assert client._hrr_suite is not None


def test_no_retry_when_the_share_fits() -> None:
    _, server, ce, _ = handshake(client_config(), server_config())
    completed(ce)
    assert server._hrr_group is None


def test_hello_retry_request_with_compatibility_mode_client() -> None:
    # A client in middlebox compatibility mode (a session id) gets it echoed and a
    # change_cipher_spec after the HelloRetryRequest.
    client, server = make_pair(
        client_config(groups=["x25519", "secp256r1"]), server_config(groups=["secp256r1"])
    )
    client._session_id = os.urandom(32)
    ce, se = pump(client, server)
    completed(ce)
    assert server._ccs_sent


def test_hello_retry_request_then_resumption() -> None:
    scfg = server_config(groups=["secp256r1", "x25519"])
    client, _, ce, _ = handshake(client_config(), scfg)
    session = client.session
    assert session is not None
    client, server, ce, se = handshake(client_config(), scfg, session=session)
    assert completed(ce).session_resumed and completed(se).session_resumed
    assert server._hrr_group == Group.secp256r1


@pytest.mark.parametrize("suite", list(CipherSuite))
def test_hello_retry_request_for_every_suite(suite: CipherSuite) -> None:
    client, server, ce, se = handshake(
        client_config(cipher_suites=[suite]), server_config(groups=["secp256r1", "x25519"])
    )
    assert completed(ce).cipher[0] == suite.name
    assert server._hrr_group is not None


def test_two_key_shares_avoid_the_retry() -> None:
    _, server, ce, _ = handshake(
        client_config(groups=["x25519", "secp256r1"], key_share_count=2),
        server_config(groups=["secp256r1", "x25519"]),
    )
    completed(ce)
    assert server._hrr_group is None


def test_no_common_group_is_handshake_failure() -> None:
    _, _, ce, se = handshake(client_config(groups=["x25519"]), server_config(groups=["secp256r1"]))
    assert isinstance(se[-1], ConnectionFailed)
    assert se[-1].error.description.name == "handshake_failure"


def test_no_common_suite_is_handshake_failure() -> None:
    _, _, ce, se = handshake(
        client_config(cipher_suites=["TLS_AES_128_GCM_SHA256"]),
        server_config(cipher_suites=["TLS_AES_256_GCM_SHA384"]),
    )
    assert isinstance(se[-1], ConnectionFailed)
    assert se[-1].error.description.name == "handshake_failure"


def test_no_signature_scheme_for_the_certificate_is_handshake_failure() -> None:
    _, _, ce, se = handshake(client_config(signature_algorithms=["ed25519"]), server_config("rsa"))
    assert isinstance(se[-1], ConnectionFailed)
    assert se[-1].error.description.name == "handshake_failure"


# -- resumption ------------------------------------------------------------------------------


def test_resumption_with_a_ticket() -> None:
    scfg = server_config(alpn_protocols=["h2"])
    client, _, ce, _ = handshake(client_config(alpn_protocols=["h2"]), scfg)
    tickets = [e for e in ce if isinstance(e, SessionTicketReceived)]
    assert len(tickets) == 1 and client.session is tickets[0].session
    assert "psk" not in repr(client.session) and client.session.psk.hex() not in repr(
        client.session
    )
    resumed, server, ce, se = handshake(
        client_config(alpn_protocols=["h2"]), scfg, session=client.session
    )
    assert completed(ce).session_resumed and completed(se).session_resumed
    assert resumed.session_resumed and server.session_resumed
    assert resumed.peer_certificate == client.peer_certificate
    assert completed(ce).alpn_protocol == "h2"
    resumed.send_data(b"after resumption")
    _, se = pump(resumed, server)
    assert se == [DataReceived(b"after resumption")]


def test_resumption_keeps_the_client_certificate() -> None:
    scfg = server_config(verify_client=True)
    client, _, _, _ = handshake(client_config(client_key_type="ec"), scfg)
    _, server, _, se = handshake(client_config(), scfg, session=client.session)
    assert completed(se).session_resumed
    assert server.peer_certificate == pki().client["ec"][0]


def test_ticket_from_another_server_gives_a_full_handshake() -> None:
    client, _, _, _ = handshake(client_config(), server_config())
    _, _, ce, _ = handshake(client_config(), server_config(), session=client.session)
    assert not completed(ce).session_resumed


def test_expired_session_is_not_offered() -> None:
    scfg = server_config(ticket_lifetime=10)
    # The ticket's receipt is stamped with NOW too, so its age is 20 s however long after
    # NOW (the import of the helpers) this test happens to run.
    client, _, _, _ = handshake(client_config(wall_clock=lambda: NOW), scfg)
    assert client.session is not None
    later = client_config(wall_clock=lambda: NOW + 20)
    resumed, server = make_pair(later, scfg, session=client.session)
    ce, _ = pump(resumed, server)
    assert not completed(ce).session_resumed


def test_ticket_expired_at_the_server_gives_a_full_handshake() -> None:
    scfg = server_config(ticket_lifetime=10)
    client, _, _, _ = handshake(client_config(), scfg)
    # The client still thinks the ticket is fresh; the server's clock says it is not.
    late_server = server_config(
        ticket_lifetime=10, ticket_key=scfg.ticket_key, wall_clock=lambda: NOW + 20
    )
    _, _, ce, _ = handshake(client_config(), late_server, session=client.session)
    assert not completed(ce).session_resumed


def test_monotonic_now_does_not_affect_certificate_dates() -> None:
    # Drivers pass loop.time() (seconds since boot, say); dates come from the wall clock.
    client, server = make_pair(client_config(), server_config())
    ce, se = pump(client, server, now=1234.5)
    completed(ce)
    completed(se)


def test_certificate_checked_against_the_configured_wall_clock() -> None:
    far_future = client_config(wall_clock=lambda: NOW + 10 * 365 * 86400)
    _, _, ce, _ = handshake(far_future, server_config())
    assert isinstance(ce[-1], ConnectionFailed)
    assert ce[-1].error.description.name == "certificate_expired"


def test_configs_hash_by_identity() -> None:
    config = server_config()
    assert {config: 1}[config] == 1
    assert config != server_config()


def test_session_for_another_name_is_not_offered() -> None:
    scfg = server_config()
    client, _, _, _ = handshake(client_config(), scfg)
    _, _, ce, _ = handshake(
        client_config(), scfg, session=client.session, server_hostname="198.18.0.2"
    )
    assert not completed(ce).session_resumed


def test_session_tickets_off() -> None:
    client, _, ce, _ = handshake(client_config(), server_config(session_tickets=False))
    assert client.session is None
    assert not [e for e in ce if isinstance(e, SessionTicketReceived)]


def test_resumption_with_a_suite_of_the_same_hash() -> None:
    scfg = server_config()
    client, _, _, _ = handshake(client_config(cipher_suites=["TLS_AES_128_GCM_SHA256"]), scfg)
    _, _, ce, _ = handshake(
        client_config(cipher_suites=["TLS_AES_128_GCM_SHA256", "TLS_CHACHA20_POLY1305_SHA256"]),
        server_config(cipher_suites=["TLS_CHACHA20_POLY1305_SHA256"], ticket_key=scfg.ticket_key),
        session=client.session,
    )
    done = completed(ce)
    assert done.session_resumed and done.cipher[0] == "TLS_CHACHA20_POLY1305_SHA256"


def test_tampered_binder_is_decrypt_error() -> None:
    scfg = server_config()
    client, _, _, _ = handshake(client_config(), scfg)
    resumed, server = make_pair(client_config(), scfg, session=client.session)
    resumed.start(NOW)
    hello = bytearray(resumed.data_to_send())
    hello[-1] ^= 1  # the last byte of the binder
    server.receive_data(bytes(hello), NOW)
    failed = events(server)[-1]
    assert isinstance(failed, ConnectionFailed)
    assert failed.error.description.name == "decrypt_error"


# -- KeyUpdate and closure -------------------------------------------------------------------


@pytest.mark.parametrize("suite", list(CipherSuite))
def test_key_update_both_ways(suite: CipherSuite) -> None:
    client, server, _, _ = handshake(client_config(cipher_suites=[suite]), server_config())
    for _ in range(3):
        client.key_update(request_peer=True)
        client.send_data(b"after client update")
        ce, se = pump(client, server)
        assert se == [KeyUpdated(peer=True), DataReceived(b"after client update")]
        assert ce == [KeyUpdated(peer=True)]  # the server answered with its own update
        server.key_update(request_peer=False)
        server.send_data(b"after server update")
        ce, se = pump(client, server)
        assert ce == [KeyUpdated(peer=True), DataReceived(b"after server update")]
        assert se == []
    assert client._record.read_sequence == server._record.write_sequence


def test_key_update_before_the_handshake_is_an_error() -> None:
    client, server = make_pair(client_config(), server_config())
    with pytest.raises(TLSError):
        client.key_update()
    with pytest.raises(TLSError):
        client.send_data(b"too early")


def test_close_notify_both_ways() -> None:
    client, server, _, _ = handshake(client_config(), server_config())
    client.send_data(b"last words")
    client.close()
    ce, se = pump(client, server)
    assert se == [DataReceived(b"last words"), CloseNotifyReceived()]
    assert client.state is TLSState.CLOSED
    with pytest.raises(TLSError):
        client.send_data(b"after close")
    # Half-closed: the server can still send.
    server.send_data(b"reply")
    server.close()
    ce, se = pump(client, server)
    assert ce == [DataReceived(b"reply"), CloseNotifyReceived()]
    assert server.state is TLSState.CLOSED
    client.close()  # again: nothing happens
    assert client.data_to_send() == b""


def test_data_after_close_notify_is_ignored() -> None:
    client, server, _, _ = handshake(client_config(), server_config())
    client.close()
    closing = client._record.data_to_send()
    # Forge more data after the alert: the server must ignore it.
    client._write_closed = False
    client.send_data(b"ignored")
    server.receive_data(closing + client.data_to_send(), NOW)
    assert events(server) == [CloseNotifyReceived()]


def test_close_before_the_handshake() -> None:
    client, server = make_pair(client_config(), server_config())
    client.close()
    assert client.state is TLSState.CLOSED
    assert client.data_to_send() == b""


def test_start_twice_is_an_error() -> None:
    client, _ = make_pair(client_config(), server_config())
    client.start(NOW)
    with pytest.raises(TLSError):
        client.start(NOW)


def test_events_and_state_without_traffic() -> None:
    client, server = make_pair(client_config(), server_config())
    assert client.state is TLSState.START and server.state is TLSState.START
    assert client.next_event() is None
    assert client.cipher is None and client.alpn_protocol is None
    assert client.getpeercert() is None
    client.start(NOW)
    assert client.state is TLSState.WAIT_SH
    server.receive_data(client.data_to_send(), NOW)
    assert server.state is TLSState.WAIT_FINISHED
    assert "secret" not in repr(client) and "CONNECTED" not in repr(client)


def test_unverified_client_gets_an_empty_peercert_dict() -> None:
    client, _, ce, _ = handshake(TLSConfig.client(verify=False), server_config())
    completed(ce)
    assert client.getpeercert() == {}
    assert client.peer_certificate is not None


def test_verifying_client_needs_a_server_hostname() -> None:
    with pytest.raises(ValueError):
        TLSConnection(client_config(), server_side=False, random=os.urandom)


def test_server_needs_a_certificate() -> None:
    with pytest.raises(ValueError):
        TLSConnection(TLSConfig.client(verify=False), server_side=True, random=os.urandom)


def test_keys_change_before_the_aead_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    from netstack.tls import connection

    monkeypatch.setattr(connection, "KEY_UPDATE_AFTER_RECORDS", 3)
    client, server, _, _ = handshake(client_config(), server_config())
    for i in range(7):
        client.send_data(b"%d" % i)
    _, se = pump(client, server)
    data = [e for e in se if isinstance(e, DataReceived)]
    assert [e.data for e in data] == [b"%d" % i for i in range(7)]
    assert se.count(KeyUpdated(peer=True)) == 2


# -- signature schemes: what is accepted is supported -------------------------------------


@pytest.mark.parametrize(
    ("key_type", "scheme"),
    [
        ("ec-p384", SignatureScheme.ecdsa_secp384r1_sha384),
        ("ec-p521", SignatureScheme.ecdsa_secp521r1_sha512),
    ],
)
def test_default_client_reaches_p384_and_p521_servers(key_type: str, scheme: int) -> None:
    assert scheme in client_config().signature_algorithms
    _, _, ce, se = handshake(client_config(), server_config(key_type))
    completed(ce), completed(se)


@pytest.mark.parametrize("key_type", ["ec-p384", "ec-p521"])
def test_p384_and_p521_client_certificates_are_sent(key_type: str) -> None:
    _, server, ce, se = handshake(
        client_config(client_key_type=key_type), server_config(verify_client=True)
    )
    completed(ce), completed(se)
    assert server.getpeercert()["subject"] == ((("commonName", f"client-{key_type}"),),)  # type: ignore[index]


@pytest.mark.parametrize(
    "scheme",
    [
        SignatureScheme.rsa_pss_rsae_sha256,
        SignatureScheme.rsa_pss_rsae_sha384,
        SignatureScheme.rsa_pss_rsae_sha512,
    ],
)
def test_rsa_server_signs_with_each_pss_hash(scheme: SignatureScheme) -> None:
    # A client that accepts only one of RSA-PSS-SHA256/384/512 still reaches an RSA server.
    client, server = make_pair(client_config(signature_algorithms=[scheme]), server_config("rsa"))
    ce, se = pump(client, server)
    completed(ce), completed(se)


def test_client_certificate_without_a_scheme_the_server_takes_is_not_sent() -> None:
    # The client's P-384 key, a server that asks only for P-256 signatures: no certificate
    # (RFC 8446 4.4.2.3), and the server requiring one says certificate_required.
    _, _, ce, se = handshake(
        client_config(client_key_type="ec-p384"),
        server_config(verify_client=True, signature_algorithms=["ecdsa_secp256r1_sha256"]),
    )
    assert isinstance(se[-1], ConnectionFailed)
    assert isinstance(se[-1].error, CertificateRequired)
