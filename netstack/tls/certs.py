"""Certificates: loading, chain validation, signatures, and helpers to make test PKIs.

- Loading: certificate chains and private keys from PEM (or DER) files, bytes, or
  :mod:`cryptography` objects.
- Validation: a peer's chain against a trust store with cryptography's X.509 path
  validation (``cryptography.x509.verification``: RFC 5280 and the CA/Browser Forum profile),
  server names checked as DNS names or IP addresses (RFC 6125), and failures mapped to the
  TLS alert RFC 8446 (6.2) names: ``certificate_expired``, ``unknown_ca``,
  ``bad_certificate``, ``unsupported_certificate``.
- Signatures: the CertificateVerify schemes of RFC 8446 (4.2.3) for a key, signing and
  verifying.
- Test PKIs: :func:`make_ca`, :func:`issue` and :func:`write_pem` build certificates that
  pass that validation, for tests and demos.

Validation takes the time as an argument; this module reads no clock (except the defaults
of :func:`make_ca` and :func:`issue`, which are test helpers).
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import (
    PolicyBuilder,
    Store,
    VerificationError,
)

from .errors import (
    BadCertificate,
    CertificateExpired,
    TLSAlert,
    UnknownCA,
    UnsupportedCertificate,
)
from .wire import SignatureScheme

__all__ = [
    "CertificateKey",
    "PrivateKey",
    "load_certificates",
    "load_private_key",
    "check_signing_key",
    "describe_key",
    "issue",
    "make_ca",
    "peercert_dict",
    "schemes_for_key",
    "sign",
    "verify_chain",
    "verify_signature",
    "write_pem",
]

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
CertificateKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey
CertSource = str | Path | bytes | x509.Certificate | Sequence[x509.Certificate]
KeySource = str | Path | bytes | PrivateKey

# -- loading ---------------------------------------------------------------------------------


def _read(source: str | Path | bytes) -> bytes:
    if isinstance(source, bytes):
        return source
    return Path(source).read_bytes()


def load_certificates(source: CertSource) -> list[x509.Certificate]:
    """A certificate chain, leaf first.

    Args:
        source: a path to a PEM file (one or more certificates) or DER file, PEM/DER bytes,
            a certificate, or a sequence of certificates.

    Raises:
        ValueError: the data holds no certificate.
    """
    if isinstance(source, x509.Certificate):
        return [source]
    if isinstance(source, (str, Path, bytes)):
        data = _read(source)
        if b"-----BEGIN" in data:
            certs = x509.load_pem_x509_certificates(data)
        else:
            certs = [x509.load_der_x509_certificate(data)]
        if not certs:
            raise ValueError("no certificate found")
        return list(certs)
    certs = list(source)
    for cert in certs:
        if not isinstance(cert, x509.Certificate):
            raise TypeError(f"not a certificate: {cert!r}")
    return certs


def load_private_key(source: KeySource, password: bytes | None = None) -> PrivateKey:
    """A private key of a type TLS 1.3 can sign with here (EC, RSA, Ed25519).

    Args:
        source: a path to a PEM or DER file, PEM/DER bytes, or a key object.
        password: the key's password, if it is encrypted.

    Raises:
        ValueError: the data holds no key, or a key of another type.
    """
    if isinstance(source, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)):
        return source
    if isinstance(source, ed25519.Ed25519PrivateKey):
        return source
    if not isinstance(source, (str, Path, bytes)):
        raise TypeError(f"not a private key: {source!r}")
    data = _read(source)
    if b"-----BEGIN" in data:
        key: Any = serialization.load_pem_private_key(data, password)
    else:
        key = serialization.load_der_private_key(data, password)
    if not isinstance(
        key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey, ed25519.Ed25519PrivateKey)
    ):
        raise ValueError(f"unsupported private key type {type(key).__name__}")
    return key


def load_trust_store(source: CertSource) -> list[x509.Certificate]:
    """Trust anchors: like :func:`load_certificates` (a CA bundle file, for example)."""
    return load_certificates(source)


# -- signatures (RFC 8446, 4.2.3 and 4.4.3) ----------------------------------------------------

_EC_SCHEMES: dict[str, tuple[SignatureScheme, hashes.HashAlgorithm]] = {
    "secp256r1": (SignatureScheme.ecdsa_secp256r1_sha256, hashes.SHA256()),
    "secp384r1": (SignatureScheme.ecdsa_secp384r1_sha384, hashes.SHA384()),
    "secp521r1": (SignatureScheme.ecdsa_secp521r1_sha512, hashes.SHA512()),
}
_RSA_PSS: dict[SignatureScheme, hashes.HashAlgorithm] = {
    SignatureScheme.rsa_pss_rsae_sha256: hashes.SHA256(),
    SignatureScheme.rsa_pss_rsae_sha384: hashes.SHA384(),
    SignatureScheme.rsa_pss_rsae_sha512: hashes.SHA512(),
}


def schemes_for_key(key: PrivateKey | CertificateKey) -> list[SignatureScheme]:
    """The CertificateVerify schemes a key can make or check, best first."""
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        found = _EC_SCHEMES.get(key.curve.name)
        return [found[0]] if found else []
    if isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        # RFC 8446 (4.2.3): RSA signatures in TLS 1.3 are RSASSA-PSS; rsae for RSA keys.
        return list(_RSA_PSS)
    if isinstance(key, (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey)):
        return [SignatureScheme.ed25519]
    return []


#: RFC 8446 (4.2.3) leaves RSA key sizes to policy; OpenSSL's default security level (2)
#: refuses RSA keys below 2048 bits in certificates ("EE key too weak"), so peers would.
MIN_RSA_BITS = 2048


def describe_key(key: PrivateKey | CertificateKey) -> str:
    """A key's type and size, for messages: ``"EC secp384r1"``, ``"RSA-2048"``."""
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        return f"EC {key.curve.name}"
    if isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        return f"RSA-{key.key_size}"
    if isinstance(key, (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey)):
        return "Ed25519"
    return type(key).__name__


def check_signing_key(key: PrivateKey, allowed: Sequence[SignatureScheme]) -> None:
    """Refuse a certificate key of ours that could not sign a handshake.

    Args:
        key: the private key of a certificate we present.
        allowed: the configured signature schemes (``TLSConfig.signature_algorithms``).

    Raises:
        ValueError: no TLS 1.3 scheme fits the key, none of those that fit is allowed, or
            an RSA key below :data:`MIN_RSA_BITS`.
    """
    fitting = schemes_for_key(key)
    if not fitting:
        raise ValueError(f"a {describe_key(key)} key cannot sign in TLS 1.3 (RFC 8446 4.2.3)")
    if isinstance(key, rsa.RSAPrivateKey) and key.key_size < MIN_RSA_BITS:
        raise ValueError(
            f"a {describe_key(key)} key is too weak: peers refuse RSA keys below "
            f"{MIN_RSA_BITS} bits"
        )
    if not any(scheme in allowed for scheme in fitting):
        names = ", ".join(scheme.name for scheme in fitting)
        raise ValueError(
            f"a {describe_key(key)} key signs only with {names}, which signature_algorithms "
            "does not include"
        )


def sign(key: PrivateKey, scheme: SignatureScheme, data: bytes) -> bytes:
    """Sign ``data`` with ``scheme``.

    Raises:
        ValueError: the scheme does not fit the key.
    """
    if scheme not in schemes_for_key(key):
        raise ValueError(f"{scheme.name} does not fit a {type(key).__name__}")
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(data, ec.ECDSA(_EC_SCHEMES[key.curve.name][1]))
    if isinstance(key, rsa.RSAPrivateKey):
        algorithm = _RSA_PSS[scheme]
        pss = padding.PSS(padding.MGF1(algorithm), algorithm.digest_size)
        return key.sign(data, pss, algorithm)
    return key.sign(data)


def verify_signature(
    key: CertificateKey, scheme: SignatureScheme, signature: bytes, data: bytes
) -> bool:
    """True if ``signature`` is a valid ``scheme`` signature of ``data`` by ``key``; False
    for a bad signature or a scheme that does not fit the key."""
    if scheme not in schemes_for_key(key):
        return False
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, data, ec.ECDSA(_EC_SCHEMES[key.curve.name][1]))
        elif isinstance(key, rsa.RSAPublicKey):
            algorithm = _RSA_PSS[scheme]
            # RFC 8446 (4.2.3): the PSS salt length equals the digest length.
            pss = padding.PSS(padding.MGF1(algorithm), algorithm.digest_size)
            key.verify(signature, data, pss, algorithm)
        else:
            key.verify(signature, data)
    except (InvalidSignature, ValueError, UnsupportedAlgorithm):
        return False
    return True


# -- validation ------------------------------------------------------------------------------


def _utc(now: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(now, tz=datetime.UTC)


def _subject(server_name: str) -> x509.verification.Subject:
    try:
        return x509.IPAddress(ipaddress.ip_address(server_name.strip("[]")))
    except ValueError:
        return x509.DNSName(server_name.rstrip(".").lower())


def _alert_for(error: VerificationError) -> TLSAlert:
    text = str(error)
    lowered = text.lower()
    if "not valid at validation time" in lowered:
        return CertificateExpired(text)
    if "subjectaltname" in lowered:
        return BadCertificate(text)
    if "forbidden" in lowered or "unsupported" in lowered:
        return UnsupportedCertificate(text)
    if "no interior errors" in lowered or "issuer" in lowered:
        return UnknownCA(text)
    return BadCertificate(text)


def verify_chain(
    chain: Sequence[x509.Certificate],
    trust: Sequence[x509.Certificate],
    *,
    now: float,
    server_name: str | None = None,
    client: bool = False,
) -> None:
    """Validate a peer's chain (leaf first) against trust anchors.

    Args:
        chain: the peer's certificates, leaf first; the rest may be intermediates.
        trust: the trust anchors.
        now: the validation time, seconds since the UNIX epoch.
        server_name: for a server's chain, the name (DNS name or IP address) it must carry.
        client: True to validate a client's chain (extended key usage clientAuth, no name).

    Raises:
        CertificateExpired: a certificate of the chain is not valid at ``now``.
        BadCertificate: the leaf does not carry ``server_name``, or the chain is malformed.
        UnknownCA: no path to a trust anchor.
        UnsupportedCertificate: the chain uses algorithms or keys the policy refuses.
    """
    if not chain:
        raise BadCertificate("empty certificate chain")
    leaf, intermediates = chain[0], list(chain[1:])
    when = _utc(now)
    # RFC 8446 (6.2): a certificate outside its validity is certificate_expired; checked
    # here first because it is the clearest diagnosis.
    if leaf.not_valid_after_utc < when or leaf.not_valid_before_utc > when:
        raise CertificateExpired(
            f"certificate {leaf.subject.rfc4514_string()} valid "
            f"{leaf.not_valid_before_utc:%Y-%m-%d} to {leaf.not_valid_after_utc:%Y-%m-%d}"
        )
    if not trust:
        raise UnknownCA("no trust anchors configured")
    builder = PolicyBuilder().store(Store(list(trust))).time(when)
    try:
        if client:
            builder.build_client_verifier().verify(leaf, intermediates)
        else:
            if server_name is None:
                raise ValueError("server_name is needed to validate a server's certificate")
            builder.build_server_verifier(_subject(server_name)).verify(leaf, intermediates)
    except VerificationError as error:
        raise _alert_for(error) from None


def parse_chain(blobs: Iterable[bytes]) -> list[x509.Certificate]:
    """DER certificates from a Certificate message.

    Raises:
        BadCertificate: one does not decode.
    """
    chain: list[x509.Certificate] = []
    for blob in blobs:
        try:
            chain.append(x509.load_der_x509_certificate(blob))
        except ValueError:
            raise BadCertificate("certificate does not decode") from None
    return chain


def certificate_key(cert: x509.Certificate) -> CertificateKey:
    """The leaf's public key.

    Raises:
        UnsupportedCertificate: a key type TLS 1.3 signatures here do not use.
    """
    try:
        key = cert.public_key()
    except (ValueError, UnsupportedAlgorithm):
        raise UnsupportedCertificate("public key does not decode") from None
    if not isinstance(key, (ec.EllipticCurvePublicKey, rsa.RSAPublicKey, ed25519.Ed25519PublicKey)):
        raise UnsupportedCertificate(f"unsupported public key {type(key).__name__}")
    return key


# -- the dict of ssl.SSLObject.getpeercert() ----------------------------------------------------

_NAME_KEYS = {
    NameOID.COMMON_NAME: "commonName",
    NameOID.COUNTRY_NAME: "countryName",
    NameOID.LOCALITY_NAME: "localityName",
    NameOID.STATE_OR_PROVINCE_NAME: "stateOrProvinceName",
    NameOID.ORGANIZATION_NAME: "organizationName",
    NameOID.ORGANIZATIONAL_UNIT_NAME: "organizationalUnitName",
    NameOID.EMAIL_ADDRESS: "emailAddress",
    NameOID.SERIAL_NUMBER: "serialNumber",
    NameOID.DOMAIN_COMPONENT: "domainComponent",
}


def _name_tuple(name: x509.Name) -> tuple[tuple[tuple[str, str], ...], ...]:
    return tuple(
        tuple((_NAME_KEYS.get(attr.oid, attr.oid.dotted_string), str(attr.value)) for attr in rdn)
        for rdn in name.rdns
    )


def _openssl_ip(address: object) -> str:
    # OpenSSL writes IPv6 addresses as eight uncompressed upper-case groups.
    if isinstance(address, ipaddress.IPv6Address):
        return ":".join(f"{int(group, 16):X}" for group in address.exploded.split(":"))
    return str(address)


def _asn1_time(when: datetime.datetime) -> str:
    # The format of OpenSSL's ASN1_TIME_print, as ssl.SSLObject.getpeercert() gives it.
    return f"{when:%b} {when.day:2d} {when:%H:%M:%S %Y} GMT"


def peercert_dict(cert: x509.Certificate) -> dict[str, Any]:
    """The certificate as ``ssl.SSLObject.getpeercert()`` describes it."""
    result: dict[str, Any] = {
        "subject": _name_tuple(cert.subject),
        "issuer": _name_tuple(cert.issuer),
        "version": cert.version.value + 1,
        "serialNumber": _even_hex(cert.serial_number),
        "notBefore": _asn1_time(cert.not_valid_before_utc),
        "notAfter": _asn1_time(cert.not_valid_after_utc),
    }
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return result
    names: list[tuple[str, str]] = []
    for general in san:
        if isinstance(general, x509.DNSName):
            names.append(("DNS", general.value))
        elif isinstance(general, x509.IPAddress):
            names.append(("IP Address", _openssl_ip(general.value)))
        elif isinstance(general, x509.RFC822Name):
            names.append(("email", general.value))
        elif isinstance(general, x509.UniformResourceIdentifier):
            names.append(("URI", general.value))
    result["subjectAltName"] = tuple(names)
    return result


# -- test PKIs -------------------------------------------------------------------------------

KeyType = Literal["ec", "rsa", "ed25519", "ec-p384", "ec-p521"]


def _new_key(key_type: KeyType) -> PrivateKey:
    if key_type == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "ec-p384":
        return ec.generate_private_key(ec.SECP384R1())
    if key_type == "ec-p521":
        return ec.generate_private_key(ec.SECP521R1())
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if key_type == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"unknown key type {key_type!r}")


def _hash_for(key: PrivateKey) -> hashes.SHA256 | hashes.SHA384 | hashes.SHA512 | None:
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return None
    if isinstance(key, ec.EllipticCurvePrivateKey):
        # the curve's own hash, as CAs sign
        if key.curve.name == "secp384r1":
            return hashes.SHA384()
        if key.curve.name == "secp521r1":
            return hashes.SHA512()
    return hashes.SHA256()


def _default_window(
    not_before: datetime.datetime | None, not_after: datetime.datetime | None
) -> tuple[datetime.datetime, datetime.datetime]:
    start = not_before or (
        datetime.datetime.now(datetime.UTC).replace(microsecond=0) - datetime.timedelta(days=1)
    )
    end = not_after or start + datetime.timedelta(days=366)
    return start, end


def make_ca(
    name: str,
    *,
    key_type: KeyType = "ec",
    not_before: datetime.datetime | None = None,
    not_after: datetime.datetime | None = None,
) -> tuple[x509.Certificate, PrivateKey]:
    """A self-signed root CA for tests and demos.

    Returns:
        ``(certificate, private_key)``.
    """
    key = _new_key(key_type)
    start, end = _default_window(not_before, not_after)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), False)
        .sign(key, _hash_for(key))
    )
    return cert, key


def issue(
    ca_cert: x509.Certificate,
    ca_key: PrivateKey,
    name: str,
    *,
    ips: Iterable[str] = (),
    dns_names: Iterable[str] = (),
    client: bool = False,
    key_type: KeyType = "ec",
    not_before: datetime.datetime | None = None,
    not_after: datetime.datetime | None = None,
    ca: bool = False,
) -> tuple[x509.Certificate, PrivateKey]:
    """A certificate signed by ``ca_cert``/``ca_key``, for tests and demos.

    Args:
        name: the subject's common name; also its DNS name when neither ``ips`` nor
            ``dns_names`` is given.
        ips: IP addresses for the subjectAltName.
        dns_names: DNS names for the subjectAltName.
        client: a client certificate (extended key usage clientAuth) instead of a server one.
        key_type: ``"ec"`` (P-256), ``"ec-p384"``, ``"ec-p521"``, ``"rsa"`` (2048 bits) or
            ``"ed25519"``.
        not_before, not_after: the validity window (default: from a day ago, for a year).
        ca: an intermediate CA instead of a leaf.

    Returns:
        ``(certificate, private_key)``.
    """
    key = _new_key(key_type)
    start, end = _default_window(not_before, not_after)
    alt: list[x509.GeneralName] = [x509.DNSName(d) for d in dns_names]
    alt += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    if not alt:
        alt = [x509.DNSName(name)]
    issuer_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(issuer_ski), False
        )
    )
    if not ca:
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
    cert = builder.sign(ca_key, _hash_for(ca_key))
    return cert, key


def write_pem(
    path: str | Path,
    cert: x509.Certificate | Sequence[x509.Certificate] | None,
    key: PrivateKey | None = None,
) -> None:
    """Write certificates (and optionally an unencrypted PKCS#8 key after them) as PEM.

    Args:
        path: the file to write.
        cert: a certificate or a chain, leaf first; None to write only the key.
        key: a private key to append, or None.
    """
    if cert is None:
        certs: list[x509.Certificate] = []
    else:
        certs = [cert] if isinstance(cert, x509.Certificate) else list(cert)
    data = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)
    if key is not None:
        data += key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    Path(path).write_bytes(data)


def _even_hex(number: int) -> str:
    text = f"{number:X}"
    return text.rjust(len(text) + len(text) % 2, "0")
