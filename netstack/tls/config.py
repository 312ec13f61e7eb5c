"""TLS 1.3 configuration: what a client or server offers, trusts and presents.

This module is configuration, not a machine: it reads files (certificates, keys, the
system's CA bundle), draws the server's ticket key and holds the wall clock that the
machines are given through it.

A :class:`TLSConfig` is immutable and shared by every connection made with it (a server's
session-ticket key lives here, so that a ticket from one connection resumes another).
``ssl=`` of ``Stack.open_connection``/``start_server`` takes one; build it with
:meth:`TLSConfig.server` or :meth:`TLSConfig.client`::

    server = TLSConfig.server("cert.pem", "key.pem", alpn_protocols=["h2", "http/1.1"])
    client = TLSConfig.client(cafile="ca.pem")

Certificates and keys may be paths, PEM/DER bytes, or :mod:`cryptography` objects.
"""

from __future__ import annotations

import secrets
import ssl
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from .certs import (
    CertSource,
    KeySource,
    PrivateKey,
    check_signing_key,
    load_certificates,
    load_private_key,
)
from .wire import CipherSuite, Group, SignatureScheme

__all__ = ["DEFAULT_CIPHER_SUITES", "DEFAULT_GROUPS", "DEFAULT_SIGNATURE_ALGORITHMS", "TLSConfig"]

#: RFC 8446 (9.1) order: AES-128-GCM (mandatory), AES-256-GCM, ChaCha20-Poly1305.
DEFAULT_CIPHER_SUITES = (
    CipherSuite.TLS_AES_128_GCM_SHA256,
    CipherSuite.TLS_AES_256_GCM_SHA384,
    CipherSuite.TLS_CHACHA20_POLY1305_SHA256,
)
DEFAULT_GROUPS = (Group.x25519, Group.secp256r1)
#: OpenSSL's TLS 1.3 list, in its order, less the schemes of keys not loaded here (Ed448,
#: RSA-PSS keys): every certificate key accepted by the config can sign with one of them.
DEFAULT_SIGNATURE_ALGORITHMS = (
    SignatureScheme.ecdsa_secp256r1_sha256,
    SignatureScheme.ecdsa_secp384r1_sha384,
    SignatureScheme.ecdsa_secp521r1_sha512,
    SignatureScheme.ed25519,
    SignatureScheme.rsa_pss_rsae_sha256,
    SignatureScheme.rsa_pss_rsae_sha384,
    SignatureScheme.rsa_pss_rsae_sha512,
)
SUPPORTED_GROUPS = frozenset({Group.x25519, Group.secp256r1, Group.secp384r1})

Chain = tuple[x509.Certificate, ...]

_SYSTEM_CA_FILES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt")


def system_trust_store() -> tuple[x509.Certificate, ...]:
    """The operating system's CA bundle (as OpenSSL finds it), or () if there is none."""
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile, *_SYSTEM_CA_FILES):
        if candidate and Path(candidate).is_file():
            try:
                with warnings.catch_warnings():
                    # Old roots in some bundles have serial numbers RFC 5280 disallows.
                    warnings.simplefilter("ignore")
                    return tuple(x509.load_pem_x509_certificates(Path(candidate).read_bytes()))
            except ValueError:
                continue
    return ()


def _chain_and_key(
    certfile: CertSource, keyfile: KeySource | None, password: bytes | None = None
) -> tuple[Chain, PrivateKey]:
    chain = tuple(load_certificates(certfile))
    if keyfile is None:
        if not isinstance(certfile, (str, Path, bytes)):
            raise ValueError("keyfile is needed when certfile is not a PEM file with a key")
        keyfile = certfile
    key = load_private_key(keyfile, password)
    _check_key_matches(chain, key)
    return chain, key


def _check_key_matches(
    chain: Chain, key: PrivateKey, schemes: Iterable[SignatureScheme] | None = None
) -> None:
    if not chain:
        raise ValueError("empty certificate chain")
    encoding, spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if chain[0].public_key().public_bytes(encoding, spki) != key.public_key().public_bytes(
        encoding, spki
    ):
        raise ValueError("the private key does not match the certificate")
    try:
        check_signing_key(key, tuple(DEFAULT_SIGNATURE_ALGORITHMS if schemes is None else schemes))
    except ValueError as error:
        subject = chain[0].subject.rfc4514_string()
        raise ValueError(f"certificate {subject!r}: {error}") from None


E = TypeVar("E", CipherSuite, Group, SignatureScheme)


def _coerce(kind: type[E], value: E | int | str) -> E:
    """An enum member from itself, its number or its name ("x25519", "TLS_AES_128_GCM_SHA256")."""
    if isinstance(value, str):
        try:
            return kind[value]
        except KeyError:
            raise ValueError(f"unknown {kind.__name__} {value!r}") from None
    return kind(value)


@dataclass(frozen=True, eq=False)
class TLSConfig:
    """Settings shared by the connections of one client or server.

    Attributes:
        certificate_chain: our certificates, leaf first (a server's, or a client's for
            client authentication).
        private_key: the key of the leaf.
        sni_certificates: a server's other ``(chain, key)`` pairs by server name; a name
            may be a wildcard ``*.example.com`` (one label). The ClientHello's server_name
            chooses, falling back to ``certificate_chain``.
        trusted_certificates: trust anchors for the peer's chain.
        verify: a client checks the server's chain and name (``False`` accepts anything:
            for tests only).
        strict: check the peer's chain by the CA/Browser Forum's profile (cryptography's
            web PKI verifier) instead of RFC 5280 as OpenSSL checks it (the default, which
            accepts the usual private-PKI shapes: CAs without keyUsage, basicConstraints not
            critical, v1 and Ed25519 certificates, a server named only by its commonName,
            client certificates without subjectAltName). Either way RSA keys below 2048 bits
            are refused.
        verify_client: a server asks for a client certificate: ``False`` never,
            ``"optional"`` asks and checks one if sent, ``True`` requires one
            (``certificate_required`` otherwise, RFC 8446 6.2).
        alpn_protocols: protocols offered (client) or accepted, in preference order (server).
        cipher_suites: in preference order.
        groups: key exchange groups in preference order; a client sends a key share for
            the first ``key_share_count`` of them.
        key_share_count: how many key shares a client sends in its first ClientHello.
        signature_algorithms: CertificateVerify schemes accepted and offered.
        session_tickets: a server issues NewSessionTicket after the handshake, and a
            client keeps them (``TLSConnection.session``).
        ticket_lifetime: seconds a ticket stays valid (at most 7 days, RFC 8446 4.6.1).
        ticket_key: the server's key protecting its tickets (random per config).
        wall_clock: seconds since the UNIX epoch, for certificate validity and ticket dates
            (the machines' ``now`` is the event loop's monotonic clock, which cannot date a
            certificate). Tests fix it to check expiry.
        max_pending_handshakes: a server's cap on handshakes in progress at once with this
            config (connections accepted whose handshake has not finished). When one more
            arrives, the oldest unfinished one is closed (a TCP FIN, no TLS alert), so
            connections that hold a handshake open without finishing it (slow-loris) cannot
            keep real clients out for the handshake timeout (60 s). ``None``: no cap.
        max_early_data_size: a server declines 0-RTT (its tickets do not offer it, and a
            client that sends early data anyway, with a ticket from another server, gets a
            1-RTT handshake): it skips up to this many bytes of the client's early data
            (RFC 8446 4.2.10), and aborts with unexpected_message beyond. OpenSSL's default,
            16384.

    Configs compare and hash by identity, so a driver may key caches (sessions) on them.
    """

    certificate_chain: Chain = ()
    private_key: PrivateKey | None = field(default=None, repr=False)
    sni_certificates: Mapping[str, tuple[Chain, PrivateKey]] = field(
        default_factory=dict, repr=False
    )
    trusted_certificates: tuple[x509.Certificate, ...] = field(default=(), repr=False)
    verify: bool = True
    strict: bool = False
    verify_client: bool | Literal["optional"] = False
    alpn_protocols: tuple[str, ...] | None = None
    cipher_suites: tuple[CipherSuite, ...] = DEFAULT_CIPHER_SUITES
    groups: tuple[Group, ...] = DEFAULT_GROUPS
    key_share_count: int = 1
    signature_algorithms: tuple[SignatureScheme, ...] = DEFAULT_SIGNATURE_ALGORITHMS
    session_tickets: bool = True
    ticket_lifetime: int = 7200
    ticket_key: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)
    wall_clock: Callable[[], float] = field(default=time.time, repr=False)
    max_pending_handshakes: int | None = 256
    max_early_data_size: int = 16384

    def __post_init__(self) -> None:
        if self.verify_client not in (True, False, "optional"):
            raise ValueError("verify_client must be True, False or 'optional'")
        if (self.private_key is None) != (not self.certificate_chain):
            raise ValueError("certificate_chain and private_key go together")
        if not self.cipher_suites or not self.groups or not self.signature_algorithms:
            raise ValueError("cipher_suites, groups and signature_algorithms must not be empty")
        object.__setattr__(
            self, "cipher_suites", tuple(_coerce(CipherSuite, s) for s in self.cipher_suites)
        )
        object.__setattr__(self, "groups", tuple(_coerce(Group, g) for g in self.groups))
        object.__setattr__(
            self,
            "signature_algorithms",
            tuple(_coerce(SignatureScheme, s) for s in self.signature_algorithms),
        )
        # Every key we may present must be able to sign with a configured scheme: a key
        # that cannot would fail every handshake (or, a client's, never be sent).
        schemes = self.signature_algorithms
        if self.private_key is not None:
            _check_key_matches(tuple(self.certificate_chain), self.private_key, schemes)
        named: dict[str, tuple[Chain, PrivateKey]] = {}
        for name, (chain, key) in self.sni_certificates.items():
            if not name:
                raise ValueError("empty server name in sni_certificates")
            _check_key_matches(tuple(chain), key, schemes)
            named[name.rstrip(".").lower()] = (tuple(chain), key)
        object.__setattr__(self, "sni_certificates", named)
        object.__setattr__(self, "certificate_chain", tuple(self.certificate_chain))
        object.__setattr__(self, "trusted_certificates", tuple(self.trusted_certificates))
        for group in self.groups:
            if group not in SUPPORTED_GROUPS:
                raise ValueError(f"unsupported group {group.name}")
        if not 1 <= self.key_share_count <= len(self.groups):
            raise ValueError("key_share_count must be between 1 and len(groups)")
        if self.alpn_protocols is not None:
            protocols = tuple(self.alpn_protocols)
            if not protocols or any(not 0 < len(p.encode()) < 256 for p in protocols):
                raise ValueError("ALPN protocol names must be 1 to 255 bytes, at least one")
            object.__setattr__(self, "alpn_protocols", protocols)
        if not 0 < self.ticket_lifetime <= 604800:
            raise ValueError("ticket_lifetime must be 1 to 604800 seconds")
        if len(self.ticket_key) != 32:
            raise ValueError("ticket_key must be 32 bytes")
        if not 0 <= self.max_early_data_size < 1 << 32:
            raise ValueError("max_early_data_size must be 0 to 2^32 - 1 bytes")
        if self.max_pending_handshakes is not None and self.max_pending_handshakes < 1:
            raise ValueError("max_pending_handshakes must be at least 1 (or None)")

    @classmethod
    def server(
        cls,
        certfile: CertSource,
        keyfile: KeySource | None = None,
        *,
        cafile: CertSource | None = None,
        verify_client: bool | Literal["optional"] = False,
        alpn_protocols: Iterable[str] | None = None,
        sni_certificates: Mapping[str, tuple[CertSource, KeySource]] | None = None,
        password: bytes | None = None,
        **options: Any,
    ) -> TLSConfig:
        """A server's configuration.

        Args:
            certfile: the certificate chain (path, PEM bytes, certificate or list).
            keyfile: its private key (path, PEM bytes or key); None if ``certfile`` is a
                PEM file that also holds the key.
            cafile: trust anchors for client certificates.
            verify_client: ``False``, ``"optional"`` or ``True`` (see the class).
            alpn_protocols: protocols accepted, in preference order.
            sni_certificates: other ``(certfile, keyfile)`` pairs by server name.
            password: the private key's password, if it is encrypted.
            **options: any other :class:`TLSConfig` field.

        Raises:
            ValueError: a key that does not match its certificate, or a client check
                without trust anchors.
        """
        chain, key = _chain_and_key(certfile, keyfile, password)
        trusted = tuple(load_certificates(cafile)) if cafile is not None else ()
        if verify_client and not trusted:
            raise ValueError("verify_client needs cafile (the CAs that issue client certs)")
        named = {
            name.lower(): _chain_and_key(c, k, password)
            for name, (c, k) in (sni_certificates or {}).items()
        }
        return cls(
            certificate_chain=chain,
            private_key=key,
            sni_certificates=named,
            trusted_certificates=trusted,
            verify_client=verify_client,
            alpn_protocols=tuple(alpn_protocols) if alpn_protocols is not None else None,
            **options,
        )

    @classmethod
    def client(
        cls,
        *,
        cafile: CertSource | None = None,
        certfile: CertSource | None = None,
        keyfile: KeySource | None = None,
        alpn_protocols: Iterable[str] | None = None,
        verify: bool = True,
        password: bytes | None = None,
        **options: Any,
    ) -> TLSConfig:
        """A client's configuration.

        Args:
            cafile: trust anchors for the server's chain; None uses the system's CA bundle.
            certfile, keyfile: a client certificate chain and key, for servers that ask.
            alpn_protocols: protocols offered, in preference order.
            verify: check the server's chain and name (turn off only in tests).
            password: the private key's password, if it is encrypted.
            **options: any other :class:`TLSConfig` field.
        """
        if cafile is not None:
            trusted: tuple[x509.Certificate, ...] = tuple(load_certificates(cafile))
        else:
            trusted = system_trust_store() if verify else ()
        chain: Chain = ()
        key: PrivateKey | None = None
        if certfile is not None:
            chain, key = _chain_and_key(certfile, keyfile, password)
        return cls(
            certificate_chain=chain,
            private_key=key,
            trusted_certificates=trusted,
            verify=verify,
            alpn_protocols=tuple(alpn_protocols) if alpn_protocols is not None else None,
            **options,
        )

    def certificate_for(self, server_name: str | None) -> tuple[Chain, PrivateKey] | None:
        """The chain and key a server presents for a ClientHello's server_name."""
        if server_name and self.sni_certificates:
            name = server_name.rstrip(".").lower()
            found = self.sni_certificates.get(name)
            if found is None and "." in name:
                found = self.sni_certificates.get("*." + name.split(".", 1)[1])
            if found is not None:
                return found
        if self.private_key is None:
            return None
        return self.certificate_chain, self.private_key
