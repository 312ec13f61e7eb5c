"""Certificates: loading, chain validation, signatures, and helpers to make test PKIs.

- Loading: certificate chains and private keys from PEM (or DER) files, bytes, or
  :mod:`cryptography` objects.
- Validation: a peer's chain against a trust store by RFC 5280 (6.1) as OpenSSL checks it
  in a TLS handshake (the private-PKI shapes it accepts are accepted: CAs without keyUsage,
  basicConstraints not critical, v1 and Ed25519 certificates, self-signed or AKI-less
  anchors, a server named by its commonName when it has no DNS subjectAltName, as OpenSSL's
  X509_check_host and curl match it); or, with ``strict``, by the CA/Browser Forum profile
  (cryptography's ``x509.verification``). Server names are checked as DNS names or IP
  addresses (RFC 6125); failures name the certificate and the reason, as the TLS alert
  RFC 8446 (6.2) names: ``certificate_expired``, ``unknown_ca``, ``bad_certificate``,
  ``unsupported_certificate``.
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
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID
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
    strict: bool = False,
) -> None:
    """Validate a peer's chain (leaf first) against trust anchors.

    By default the path is checked by RFC 5280 as OpenSSL checks it in a TLS handshake
    (security level 2, see :func:`_verify_rfc5280`); ``strict`` applies the CA/Browser
    Forum's profile instead (cryptography's web PKI verifier), which refuses the shapes
    private PKIs commonly have (CAs without keyUsage, Ed25519 CAs, v1 certificates, server
    certificates without subjectAltName, ...).

    Args:
        chain: the peer's certificates, leaf first; the rest may be intermediates.
        trust: the trust anchors.
        now: the validation time, seconds since the UNIX epoch.
        server_name: for a server's chain, the name (DNS name or IP address) it must carry.
        client: True to validate a client's chain (extended key usage clientAuth, no name).
        strict: the CA/Browser Forum profile instead of RFC 5280.

    Raises:
        CertificateExpired: a certificate of the chain is not valid at ``now``.
        BadCertificate: the leaf does not carry ``server_name``, a certificate is not meant
            for this use (extended key usage, key usage), a key is too weak, a signature does
            not verify, or the chain is malformed.
        UnknownCA: no path to a trust anchor, or an issuer that may not issue.
        UnsupportedCertificate: an unknown critical extension, or an unsupported algorithm.
    """
    if not chain:
        raise BadCertificate("empty certificate chain")
    if not client and server_name is None:
        raise ValueError("server_name is needed to validate a server's certificate")
    leaf, intermediates = chain[0], list(chain[1:])
    when = _utc(now)
    # RFC 8446 (6.2): a certificate outside its validity is certificate_expired; checked
    # here first because it is the clearest diagnosis.
    _check_validity(leaf, 0, when)
    if not trust:
        raise UnknownCA("no trust anchors configured")
    if not strict:
        _verify_rfc5280(leaf, intermediates, trust, when, server_name, client)
        return
    for depth, cert in enumerate(chain):
        _check_key_strength(cert, depth)  # RSA-1024 is refused by either policy
    builder = PolicyBuilder().store(Store(list(trust))).time(when)
    try:
        if client:
            builder.build_client_verifier().verify(leaf, intermediates)
        else:
            assert server_name is not None
            builder.build_server_verifier(_subject(server_name)).verify(leaf, intermediates)
    except VerificationError as error:
        raise _alert_for(error) from None


# -- RFC 5280 path validation, as OpenSSL does it by default -------------------------------

#: Certificates in a path at most (OpenSSL's default verify depth is 100; real chains are
#: short, and each extra level costs signature checks).
MAX_PATH_LENGTH = 10
#: Signature checks one validation may make while it looks for a path.
_MAX_SIGNATURE_CHECKS = 32
#: Extensions understood here: any other marked critical makes a certificate unusable
#: (RFC 5280 4.2).
_HANDLED_EXTENSIONS = frozenset(
    {
        x509.BasicConstraints.oid,
        x509.KeyUsage.oid,
        x509.ExtendedKeyUsage.oid,
        x509.SubjectAlternativeName.oid,
        x509.IssuerAlternativeName.oid,
        x509.NameConstraints.oid,
        x509.SubjectKeyIdentifier.oid,
        x509.AuthorityKeyIdentifier.oid,
        x509.CertificatePolicies.oid,
        x509.PolicyConstraints.oid,
        x509.InhibitAnyPolicy.oid,
        ExtensionOID.POLICY_MAPPINGS,
    }
)


def _label(cert: x509.Certificate, depth: int) -> str:
    role = "leaf" if depth == 0 else f"issuer at depth {depth}"
    return f"certificate {cert.subject.rfc4514_string() or '(empty subject)'!r} ({role})"


def _check_validity(cert: x509.Certificate, depth: int, when: datetime.datetime) -> None:
    if cert.not_valid_after_utc < when or cert.not_valid_before_utc > when:
        raise CertificateExpired(
            f"{_label(cert, depth)} is valid from {cert.not_valid_before_utc:%Y-%m-%d %H:%M} "
            f"to {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"
        )


def _extension(cert: x509.Certificate, kind: type[Any], depth: int) -> Any:
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None
    except ValueError as error:  # duplicate or malformed extensions
        raise BadCertificate(f"{_label(cert, depth)}: {error}") from None


def _is_self_issued(cert: x509.Certificate) -> bool:
    return cert.issuer == cert.subject


def _key_id(cert: x509.Certificate, kind: type[Any], attribute: str) -> bytes | None:
    try:
        value = cert.extensions.get_extension_for_class(kind).value
    except (x509.ExtensionNotFound, ValueError):
        return None
    found: bytes | None = getattr(value, attribute)
    return found


def _build_path(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    trust: Sequence[x509.Certificate],
) -> list[x509.Certificate]:
    """A path from the leaf to a certificate of ``trust``: each certificate's issuer by name,
    those whose subjectKeyIdentifier matches the authorityKeyIdentifier tried first, each
    link's signature checked (RFC 5280 6.1.3 (a)(1), 6.1.1 (d)). Every certificate of the
    trust store is an anchor, the leaf too."""
    pool = list(trust) + [c for c in intermediates if c not in trust]
    checks = 0
    bad_signature: str | None = None

    def issuers_of(cert: x509.Certificate) -> list[x509.Certificate]:
        wanted = _key_id(cert, x509.AuthorityKeyIdentifier, "key_identifier")
        found = [c for c in pool if c.subject == cert.issuer]
        if wanted is not None:
            found.sort(key=lambda c: _key_id(c, x509.SubjectKeyIdentifier, "digest") != wanted)
        return found

    def extend(path: list[x509.Certificate]) -> list[x509.Certificate] | None:
        nonlocal checks, bad_signature
        cert = path[-1]
        if cert in trust:
            return path
        if len(path) >= MAX_PATH_LENGTH:
            return None
        _check_signature_hash(cert, len(path) - 1)  # the clearer error, before a check fails
        for issuer in issuers_of(cert):
            if issuer in path or checks >= _MAX_SIGNATURE_CHECKS:
                continue
            checks += 1
            try:
                cert.verify_directly_issued_by(issuer)
            except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm) as error:
                bad_signature = (
                    f"{_label(cert, len(path) - 1)}: the signature does not verify with the "
                    f"key of {issuer.subject.rfc4514_string()!r} ({error or 'bad signature'})"
                )
                continue
            found = extend(path + [issuer])
            if found is not None:
                return found
        return None

    path = extend([leaf])
    if path is not None:
        return path
    if bad_signature is not None:
        raise BadCertificate(bad_signature)
    top = leaf
    for cert in intermediates:  # how far the chain sent goes, for the message
        if cert.subject == top.issuer and cert is not top:
            top = cert
    depth = 0 if top is leaf else 1 + list(intermediates).index(top)
    if _is_self_issued(top):
        raise UnknownCA(f"{_label(top, depth)} is self-signed and not a trust anchor")
    raise UnknownCA(
        f"{_label(top, depth)}: its issuer {top.issuer.rfc4514_string()!r} is neither a "
        "trust anchor nor in the chain sent"
    )


def _check_key_strength(cert: x509.Certificate, depth: int) -> None:
    try:
        key = cert.public_key()
    except (ValueError, UnsupportedAlgorithm):
        raise UnsupportedCertificate(f"{_label(cert, depth)}: public key does not decode") from None
    # OpenSSL's security level 2 (Debian's default): at least 112-bit security, so RSA keys
    # of 2048 bits; "EE key too weak" / "CA key too weak".
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        which = "EE" if depth == 0 else "CA"
        raise BadCertificate(
            f"{_label(cert, depth)}: {which} key too weak (RSA-{key.key_size}, at least "
            f"{MIN_RSA_BITS} bits)"
        )
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.key_size < 224:
        raise BadCertificate(f"{_label(cert, depth)}: key too weak ({key.curve.name})")


_WEAK_HASHES = ("md5", "sha1")


def _check_signature_hash(cert: x509.Certificate, depth: int) -> None:
    try:
        algorithm = cert.signature_hash_algorithm
    except UnsupportedAlgorithm:
        raise UnsupportedCertificate(
            f"{_label(cert, depth)}: unsupported signature algorithm"
        ) from None
    if algorithm is not None and algorithm.name in _WEAK_HASHES:
        raise BadCertificate(
            f"{_label(cert, depth)}: signature digest algorithm too weak ({algorithm.name})"
        )


def _check_critical_extensions(cert: x509.Certificate, depth: int) -> None:
    try:
        extensions = list(cert.extensions)
    except ValueError as error:
        raise BadCertificate(f"{_label(cert, depth)}: {error}") from None
    for extension in extensions:
        if extension.critical and extension.oid not in _HANDLED_EXTENSIONS:
            raise UnsupportedCertificate(
                f"{_label(cert, depth)}: unhandled critical extension {extension.oid.dotted_string}"
            )


def _check_issuer(cert: x509.Certificate, depth: int, anchor: bool, below: int) -> None:
    """RFC 5280 (6.1.4 (k), (l), (m), (n)) with OpenSSL's allowances for trust anchors: a
    v1 self-signed root, or one with keyUsage keyCertSign and no basicConstraints."""
    label = _label(cert, depth)
    usage = _extension(cert, x509.KeyUsage, depth)
    if usage is not None and not usage.key_cert_sign:
        raise UnknownCA(f"{label}: keyUsage does not allow signing certificates")
    constraints = _extension(cert, x509.BasicConstraints, depth)
    if constraints is None:
        v1_root = cert.version is x509.Version.v1 and _is_self_issued(cert)
        if not (anchor and (v1_root or usage is not None)):
            raise UnknownCA(f"{label} is not a CA (no basicConstraints)")
        return
    if not constraints.ca:
        raise UnknownCA(f"{label} is not a CA (basicConstraints cA is FALSE)")
    if constraints.path_length is not None and below > constraints.path_length:
        raise UnknownCA(
            f"{label}: pathLenConstraint {constraints.path_length} exceeded ({below} "
            "intermediate CAs below it)"
        )


def _check_purpose(cert: x509.Certificate, depth: int, client: bool) -> None:
    purpose = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
    usages = _extension(cert, x509.ExtendedKeyUsage, depth)
    # RFC 5280 (4.2.1.12); OpenSSL requires the purpose on every certificate that lists
    # extended key usages, CAs included (anyExtendedKeyUsage does not stand for it).
    if usages is not None and purpose not in usages:
        name = "clientAuth" if client else "serverAuth"
        raise BadCertificate(f"{_label(cert, depth)}: extendedKeyUsage does not include {name}")
    if depth == 0:
        usage = _extension(cert, x509.KeyUsage, depth)
        # RFC 8446 (4.4.2.2): the digitalSignature bit must be set if keyUsage is present.
        if usage is not None and not usage.digital_signature:
            raise BadCertificate(
                f"{_label(cert, depth)}: keyUsage does not include digitalSignature"
            )


def _dns_names(cert: x509.Certificate, depth: int) -> list[str]:
    alt = _extension(cert, x509.SubjectAlternativeName, depth)
    return list(alt.get_values_for_type(x509.DNSName)) if alt is not None else []


def _common_names(cert: x509.Certificate) -> list[str]:
    return [str(attr.value) for attr in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]


def _dns_within(name: str, constraint: str) -> bool:
    name, constraint = name.rstrip(".").lower(), constraint.rstrip(".").lower()
    if constraint.startswith("."):
        return name.endswith(constraint)
    # RFC 5280 (4.2.1.10): "example.com" covers the host and every subdomain.
    return not constraint or name == constraint or name.endswith("." + constraint)


def _check_name_constraints(path: Sequence[x509.Certificate]) -> None:
    """RFC 5280 (4.2.1.10, 6.1.4 (g)) for DNS names and IP addresses; constraints of other
    name types are refused when a certificate they govern has such names."""
    for depth in range(1, len(path)):
        constraints = _extension(path[depth], x509.NameConstraints, depth)
        if constraints is None:
            continue
        permitted = list(constraints.permitted_subtrees or [])
        excluded = list(constraints.excluded_subtrees or [])
        for below in range(depth):
            cert = path[below]
            if below > 0 and _is_self_issued(cert):
                continue
            alt = _extension(cert, x509.SubjectAlternativeName, below)
            names: list[x509.GeneralName] = list(alt) if alt is not None else []
            if alt is None or not alt.get_values_for_type(x509.DNSName):
                # OpenSSL also holds a hostname-like CN to DNS constraints.
                names += [x509.DNSName(cn) for cn in _common_names(cert) if "." in cn]
            for general in names:
                _check_one_name(general, permitted, excluded, path[depth], depth, cert, below)


def _check_one_name(
    general: x509.GeneralName,
    permitted: list[x509.GeneralName],
    excluded: list[x509.GeneralName],
    issuer: x509.Certificate,
    depth: int,
    cert: x509.Certificate,
    below: int,
) -> None:
    def within(constraint: x509.GeneralName) -> bool:
        if isinstance(general, x509.DNSName) and isinstance(constraint, x509.DNSName):
            return _dns_within(general.value, constraint.value)
        if isinstance(general, x509.IPAddress) and isinstance(constraint, x509.IPAddress):
            network = constraint.value
            return isinstance(network, (ipaddress.IPv4Network, ipaddress.IPv6Network)) and (
                general.value in network
            )
        return False

    kind = type(general)
    same_kind = [c for c in permitted + excluded if isinstance(c, kind)]
    if not same_kind:
        return
    if kind not in (x509.DNSName, x509.IPAddress):
        raise UnsupportedCertificate(
            f"{_label(issuer, depth)}: name constraints on {kind.__name__} are not supported"
        )
    value = general.value
    if any(within(c) for c in excluded):
        raise BadCertificate(
            f"{_label(cert, below)}: {value} is excluded by {_label(issuer, depth)}"
        )
    allowed = [c for c in permitted if isinstance(c, kind)]
    if allowed and not any(within(c) for c in allowed):
        raise BadCertificate(
            f"{_label(cert, below)}: {value} is outside the names permitted by "
            f"{_label(issuer, depth)}"
        )


def _host_matches(pattern: str, host: str) -> bool:
    """RFC 6125 (6.4.3) as OpenSSL applies it: a whole leftmost label ``*`` matches one
    label, and only with at least two labels after it."""
    pattern, host = pattern.rstrip(".").lower(), host.rstrip(".").lower()
    if pattern == host:
        return True
    if not pattern.startswith("*."):
        return False
    rest = pattern[2:]
    if rest.count(".") < 1 or "*" in rest:
        return False
    first, _, tail = host.partition(".")
    return bool(first) and tail == rest


def _check_server_name(leaf: x509.Certificate, server_name: str) -> None:
    label = _label(leaf, 0)
    subject = _subject(server_name)
    alt = _extension(leaf, x509.SubjectAlternativeName, 0)
    if isinstance(subject, x509.IPAddress):
        # An IP address is matched against iPAddress names only (RFC 6125 6.2.1).
        ips = list(alt.get_values_for_type(x509.IPAddress)) if alt is not None else []
        if subject.value not in ips:
            raise BadCertificate(
                f"{label} is not for IP address {server_name} (it has {ips or 'none'})"
            )
        return
    host = subject.value
    names = _dns_names(leaf, 0)
    source = "subjectAltName"
    if not names:
        # Without DNS names in subjectAltName, OpenSSL (X509_check_host) and curl match the
        # subject's commonName, as RFC 6125 (6.4.4) allows.
        names, source = _common_names(leaf), "commonName"
    if not any(_host_matches(pattern, host) for pattern in names):
        raise BadCertificate(f"{label} is not for {host!r} ({source}: {names or 'none'})")


def _verify_rfc5280(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    trust: Sequence[x509.Certificate],
    when: datetime.datetime,
    server_name: str | None,
    client: bool,
) -> None:
    """RFC 5280 (6.1) path validation as OpenSSL makes it in a TLS handshake: a path to any
    certificate of the trust store (which may be the leaf itself), every certificate within
    its validity, of at least 112-bit strength (RSA 2048) and without unknown critical
    extensions, each signature checked (SHA-1 and MD5 refused below the anchor), every
    issuer a CA (basicConstraints cA, keyUsage keyCertSign when present, pathLenConstraint;
    a trust anchor may instead be a v1 self-signed root, or have keyUsage keyCertSign and no
    basicConstraints), extendedKeyUsage serverAuth/clientAuth wherever extended key usages
    are listed, name constraints on DNS names and IP addresses, and the server's name in the
    leaf's subjectAltName, or its commonName when it has no DNS names."""
    path = _build_path(leaf, intermediates, trust)
    anchor_depth = len(path) - 1
    below = 0  # intermediate CAs under the certificate being checked (6.1.4 (m))
    for depth, cert in enumerate(path):
        _check_validity(cert, depth, when)
        _check_key_strength(cert, depth)
        _check_critical_extensions(cert, depth)
        if depth < anchor_depth:
            _check_signature_hash(cert, depth)
        if depth > 0:
            _check_issuer(cert, depth, depth == anchor_depth, below)
            if not _is_self_issued(cert):
                below += 1
        _check_purpose(cert, depth, client)
    _check_name_constraints(path)
    if not client:
        assert server_name is not None
        _check_server_name(leaf, server_name)


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
