"""Certificates, configuration and the exception tree."""

from __future__ import annotations

import datetime
import pickle
import ssl
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from tls_helpers import NOW, expired_window, pki

from netstack.errors import NetstackError
from netstack.tls import (
    AlertDescription,
    BadCertificate,
    CertificateExpired,
    CipherSuite,
    Group,
    SignatureScheme,
    TLSAlert,
    TLSConfig,
    TLSError,
    UnknownCA,
    UnsupportedCertificate,
    alert_error,
    errors,
)
from netstack.tls.certs import (
    issue,
    load_certificates,
    load_private_key,
    make_ca,
    peercert_dict,
    schemes_for_key,
    sign,
    verify_chain,
    verify_signature,
    write_pem,
)

# -- validation ------------------------------------------------------------------------------


def test_valid_chain_by_name_and_ip() -> None:
    p = pki()
    cert = p.server["ec"][0]
    verify_chain([cert], [p.ca], now=NOW, server_name="server.test")
    verify_chain([cert], [p.ca], now=NOW, server_name="SERVER.test.")
    verify_chain([cert], [p.ca], now=NOW, server_name="198.18.0.2")


@pytest.mark.parametrize(
    ("name", "error"),
    [("other.test", BadCertificate), ("198.18.0.9", BadCertificate), ("::1", BadCertificate)],
)
def test_wrong_names(name: str, error: type[TLSAlert]) -> None:
    p = pki()
    with pytest.raises(error):
        verify_chain([p.server["ec"][0]], [p.ca], now=NOW, server_name=name)


def test_expired_and_future() -> None:
    p = pki()
    start, end = expired_window()
    cert, _ = issue(p.ca, p.ca_key, "server.test", not_before=start, not_after=end)
    with pytest.raises(CertificateExpired):
        verify_chain([cert], [p.ca], now=NOW, server_name="server.test")
    # valid at a time inside its window (the CA too must be valid then: it is not)
    with pytest.raises(CertificateExpired):
        verify_chain(
            [p.server["ec"][0]], [p.ca], now=NOW + 3 * 365 * 86400, server_name="server.test"
        )


def test_expired_ca() -> None:
    start, end = expired_window()
    ca, ca_key = make_ca("old CA", not_before=start, not_after=end)
    cert, _ = issue(ca, ca_key, "server.test")
    with pytest.raises(CertificateExpired):
        verify_chain([cert], [ca], now=NOW, server_name="server.test")


def test_unknown_ca_and_no_anchors() -> None:
    other, _ = make_ca("other")
    with pytest.raises(UnknownCA):
        verify_chain([pki().server["ec"][0]], [other], now=NOW, server_name="server.test")
    with pytest.raises(UnknownCA):
        verify_chain([pki().server["ec"][0]], [], now=NOW, server_name="server.test")


def test_ed25519_ca_is_refused_by_the_web_pki_policy() -> None:
    ca, ca_key = make_ca("ed CA", key_type="ed25519")
    cert, _ = issue(ca, ca_key, "server.test")
    with pytest.raises(UnsupportedCertificate):
        verify_chain([cert], [ca], now=NOW, server_name="server.test", strict=True)


def test_ed25519_ca_of_make_ca_is_accepted_by_default() -> None:
    # issue 10: the CAs netstack's own make_ca(key_type="ed25519") makes are usable.
    ca, ca_key = make_ca("ed CA", key_type="ed25519")
    cert, _ = issue(ca, ca_key, "server.test")
    verify_chain([cert], [ca], now=NOW, server_name="server.test")
    client, _ = issue(ca, ca_key, "client", client=True, key_type="ed25519")
    verify_chain([client], [ca], now=NOW, client=True)


def test_client_chain() -> None:
    p = pki()
    verify_chain([p.client["rsa"][0]], [p.ca], now=NOW, client=True)
    with pytest.raises(BadCertificate):
        verify_chain([p.server["rsa"][0]], [p.ca], now=NOW, client=True)


def test_server_chain_needs_a_name() -> None:
    p = pki()
    with pytest.raises(ValueError):
        verify_chain([p.server["ec"][0]], [p.ca], now=NOW)


def test_validation_errors_are_ssl_verification_errors() -> None:
    error = BadCertificate("wrong name")
    assert isinstance(error, ssl.SSLCertVerificationError)
    assert error.verify_code == 42 and error.verify_message == "wrong name"


# -- signatures ------------------------------------------------------------------------------


@pytest.mark.parametrize("key_type", ["ec", "rsa", "ed25519"])
def test_sign_and_verify(key_type: str) -> None:
    cert, key = pki().server[key_type]
    public = cert.public_key()
    for scheme in schemes_for_key(key):
        signature = sign(key, scheme, b"content")
        assert verify_signature(public, scheme, signature, b"content")  # type: ignore[arg-type]
        assert not verify_signature(public, scheme, signature, b"other")  # type: ignore[arg-type]
    wrong = next(s for s in SignatureScheme if s not in schemes_for_key(key))
    with pytest.raises(ValueError):
        sign(key, wrong, b"content")
    assert not verify_signature(public, wrong, b"x" * 64, b"content")  # type: ignore[arg-type]


def test_schemes_for_keys() -> None:
    assert schemes_for_key(pki().server["ec"][1]) == [SignatureScheme.ecdsa_secp256r1_sha256]
    assert schemes_for_key(pki().server["ed25519"][1]) == [SignatureScheme.ed25519]
    assert SignatureScheme.rsa_pss_rsae_sha256 in schemes_for_key(pki().server["rsa"][1])
    assert schemes_for_key(ec.generate_private_key(ec.SECP384R1())) == [
        SignatureScheme.ecdsa_secp384r1_sha384
    ]


# -- loading and getpeercert ---------------------------------------------------------------------


def test_write_and_load_pem(tmp_path: Path) -> None:
    p = pki()
    cert, key = p.server["rsa"]
    path = tmp_path / "server.pem"
    write_pem(path, [cert, p.ca], key)
    assert load_certificates(path) == [cert, p.ca]
    assert load_certificates(str(path)) == [cert, p.ca]
    assert load_certificates(path.read_bytes()) == [cert, p.ca]
    assert load_private_key(path).private_numbers() == key.private_numbers()  # type: ignore[union-attr]
    from cryptography.hazmat.primitives.serialization import Encoding

    assert load_certificates(cert.public_bytes(Encoding.DER)) == [cert]
    assert load_certificates(cert) == [cert]
    with pytest.raises(TypeError):
        load_certificates(["not a certificate"])  # type: ignore[list-item]
    with pytest.raises(ValueError):
        load_private_key(b"-----BEGIN PRIVATE KEY-----\nnonsense\n-----END PRIVATE KEY-----\n")


def test_peercert_dict_shape() -> None:
    cert = pki().server["ec"][0]
    found = peercert_dict(cert)
    assert found["subject"] == ((("commonName", "server.test"),),)
    assert found["issuer"] == ((("commonName", "netstack test CA"),),)
    assert found["version"] == 3
    assert found["subjectAltName"] == (("DNS", "server.test"), ("IP Address", "198.18.0.2"))
    assert len(found["serialNumber"]) % 2 == 0
    assert ssl.cert_time_to_seconds(found["notAfter"]) == int(cert.not_valid_after_utc.timestamp())
    assert ssl.cert_time_to_seconds(found["notBefore"]) == int(
        cert.not_valid_before_utc.timestamp()
    )


def test_peercert_dict_matches_openssl(tmp_path: Path) -> None:
    # ssl._ssl._test_decode_cert is what ssl.SSLObject.getpeercert() uses.
    decode = getattr(ssl._ssl, "_test_decode_cert", None)  # type: ignore[attr-defined]
    if decode is None:
        pytest.skip("no _test_decode_cert in this Python")
    cert = pki().server["rsa"][0]
    write_pem(tmp_path / "c.pem", cert)
    expected = decode(str(tmp_path / "c.pem"))
    found = peercert_dict(cert)
    for key in (
        "subject",
        "issuer",
        "version",
        "serialNumber",
        "notBefore",
        "notAfter",
        "subjectAltName",
    ):
        assert found[key] == expected[key], key


# -- configuration ---------------------------------------------------------------------------


def test_server_config_from_files(tmp_path: Path) -> None:
    p = pki()
    cert, key = p.server["ec"]
    write_pem(tmp_path / "cert.pem", cert)
    write_pem(tmp_path / "key.pem", cert, key)
    write_pem(tmp_path / "ca.pem", p.ca)
    config = TLSConfig.server(
        str(tmp_path / "cert.pem"),
        tmp_path / "key.pem",
        cafile=tmp_path / "ca.pem",
        verify_client="optional",
        alpn_protocols=["h2"],
    )
    assert config.certificate_chain == (cert,)
    assert config.trusted_certificates == (p.ca,)
    assert config.verify_client == "optional" and config.alpn_protocols == ("h2",)
    # certfile holding the key too
    assert TLSConfig.server(tmp_path / "key.pem").private_key is not None


def test_config_defaults() -> None:
    config = TLSConfig.client(verify=False)
    assert config.cipher_suites == (
        CipherSuite.TLS_AES_128_GCM_SHA256,
        CipherSuite.TLS_AES_256_GCM_SHA384,
        CipherSuite.TLS_CHACHA20_POLY1305_SHA256,
    )
    assert config.groups == (Group.x25519, Group.secp256r1)
    # OpenSSL's order; every key the config accepts signs with one of them (issue 10).
    assert config.signature_algorithms == (
        SignatureScheme.ecdsa_secp256r1_sha256,
        SignatureScheme.ecdsa_secp384r1_sha384,
        SignatureScheme.ecdsa_secp521r1_sha512,
        SignatureScheme.ed25519,
        SignatureScheme.rsa_pss_rsae_sha256,
        SignatureScheme.rsa_pss_rsae_sha384,
        SignatureScheme.rsa_pss_rsae_sha512,
    )
    assert config.session_tickets and config.ticket_lifetime == 7200
    assert "ticket_key" not in repr(config) and "private_key" not in repr(config)


def test_client_config_uses_the_system_store_by_default() -> None:
    from netstack.tls.config import system_trust_store

    assert TLSConfig.client().trusted_certificates == system_trust_store()


def test_config_accepts_names_and_numbers() -> None:
    config = TLSConfig.client(
        verify=False,
        cipher_suites=["TLS_AES_256_GCM_SHA384", 0x1301],
        groups=[0x17],
        signature_algorithms=["ed25519"],
    )
    assert config.cipher_suites == (
        CipherSuite.TLS_AES_256_GCM_SHA384,
        CipherSuite.TLS_AES_128_GCM_SHA256,
    )
    assert config.groups == (Group.secp256r1,)


@pytest.mark.parametrize(
    "options",
    [
        {"groups": ["x448"]},
        {"groups": ["nonsense"]},
        {"cipher_suites": []},
        {"alpn_protocols": [""]},
        {"alpn_protocols": ["x" * 256]},
        {"ticket_lifetime": 0},
        {"ticket_lifetime": 604801},
        {"key_share_count": 3},
        {"verify_client": "sometimes"},
    ],
)
def test_config_rejects(options: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        TLSConfig.client(verify=False, **options)


def test_mismatched_key_is_refused() -> None:
    p = pki()
    with pytest.raises(ValueError):
        TLSConfig.server([p.server["ec"][0]], p.server["rsa"][1])
    with pytest.raises(ValueError):
        TLSConfig.server([p.server["ec"][0]], p.server["ec"][1], verify_client=True)


def test_certificate_for_names() -> None:
    p = pki()
    alpha = issue(p.ca, p.ca_key, "alpha.test")
    config = TLSConfig.server(
        [p.server["ec"][0]],
        p.server["ec"][1],
        sni_certificates={"*.alpha.test": ([alpha[0]], alpha[1])},
    )
    assert config.certificate_for("www.alpha.test") == ((alpha[0],), alpha[1])
    assert config.certificate_for("a.b.alpha.test")[0] == (p.server["ec"][0],)  # type: ignore[index]
    assert config.certificate_for(None)[0] == (p.server["ec"][0],)  # type: ignore[index]


# -- the exception tree ----------------------------------------------------------------------


def test_exception_tree() -> None:
    for description in AlertDescription:
        error = alert_error(description, received=False, message="why")
        assert isinstance(error, TLSAlert) and isinstance(error, TLSError)
        assert isinstance(error, ssl.SSLError) and isinstance(error, NetstackError)
        assert error.description is description
        assert "why" in str(error)
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error) and copy.description is description
    received = alert_error(AlertDescription.handshake_failure, received=True)
    assert isinstance(received, errors.HandshakeFailure) and received.received
    assert "handshake_failure" in str(received)
    unknown = alert_error(222, received=True)
    assert isinstance(unknown, errors.UnknownAlert) and unknown.unknown_value == 222
    assert "222" in str(unknown)
    assert pickle.loads(pickle.dumps(unknown)).unknown_value == 222


def test_certificate_alerts_are_verification_errors() -> None:
    for cls in (
        errors.BadCertificate,
        errors.UnsupportedCertificate,
        errors.CertificateRevoked,
        errors.CertificateExpired,
        errors.CertificateUnknown,
        errors.UnknownCA,
    ):
        assert issubclass(cls, ssl.SSLCertVerificationError)
    assert not issubclass(errors.HandshakeFailure, ssl.SSLCertVerificationError)


def test_make_ca_and_issue_windows() -> None:
    start = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)
    ca, ca_key = make_ca("future", not_before=start)
    assert ca.not_valid_before_utc == start
    cert, _ = issue(ca, ca_key, "x.test", ips=["::1"], dns_names=["x.test"], client=True)
    names = peercert_dict(cert)["subjectAltName"]
    assert ("DNS", "x.test") in names and ("IP Address", "0:0:0:0:0:0:0:1") in names


# -- keys checked against the signature schemes at configuration time ----------------------


def test_key_without_a_configured_scheme_is_refused_clearly() -> None:
    p = pki()
    cert, key = p.server["ec-p384"]
    with pytest.raises(ValueError, match="ecdsa_secp384r1_sha384.*signature_algorithms"):
        TLSConfig.server([cert], key, signature_algorithms=["ecdsa_secp256r1_sha256"])
    cert, key = p.client["ec-p521"]
    with pytest.raises(ValueError, match="ecdsa_secp521r1_sha512"):
        TLSConfig.client(certfile=[cert], keyfile=key, signature_algorithms=["ed25519"])


def certificate_for_key(key: Any) -> Any:
    """A certificate of the test CA for ``key``, whatever its type or size."""
    p = pki()
    template = p.server["ec"][0]
    return (
        x509.CertificateBuilder()
        .subject_name(template.subject)
        .issuer_name(template.issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(template.not_valid_before_utc)
        .not_valid_after(template.not_valid_after_utc)
        .sign(p.ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )


def test_key_of_a_curve_tls13_cannot_sign_with_is_refused() -> None:
    key = ec.generate_private_key(ec.BrainpoolP256R1())
    with pytest.raises(ValueError, match="brainpoolP256r1"):
        TLSConfig.server([certificate_for_key(key)], key)


def test_weak_rsa_key_of_our_own_is_refused() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(ValueError, match="1024"):
        TLSConfig.server([certificate_for_key(key)], key)


def test_issue_makes_p384_and_p521_keys() -> None:
    p = pki()
    assert p.server["ec-p384"][1].curve.name == "secp384r1"  # type: ignore[union-attr]
    assert p.server["ec-p521"][1].curve.name == "secp521r1"  # type: ignore[union-attr]
