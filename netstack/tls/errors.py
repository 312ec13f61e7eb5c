"""TLS errors: one exception class per alert (RFC 8446, section 6).

Every TLS error is a :class:`TLSError`, which subclasses both netstack's
:class:`~netstack.errors.NetstackError` and :class:`ssl.SSLError`, so that code written for
asyncio's OpenSSL streams (``except ssl.SSLError:``) works unchanged when it runs over
netstack's own TLS. The alerts that report a failed certificate check (``bad_certificate``,
``unsupported_certificate``, ``certificate_revoked``, ``certificate_expired``,
``certificate_unknown``, ``unknown_ca``) also subclass :class:`ssl.SSLCertVerificationError`.

A :class:`TLSAlert` says whether the alert was received from the peer (``received=True``) or
sent by us because of what the peer did (``received=False``).
"""

from __future__ import annotations

import ssl
from enum import IntEnum

from ..errors import NetstackError

__all__ = [
    "AccessDenied",
    "AlertDescription",
    "BadCertificate",
    "BadCertificateStatusResponse",
    "BadRecordMac",
    "CertificateExpired",
    "CertificateRequired",
    "CertificateRevoked",
    "CertificateUnknown",
    "CloseNotify",
    "DecodeError",
    "DecryptError",
    "HandshakeFailure",
    "IllegalParameter",
    "InappropriateFallback",
    "InsufficientSecurity",
    "InternalError",
    "MissingExtension",
    "NoApplicationProtocol",
    "ProtocolVersion",
    "RecordOverflow",
    "TLSAlert",
    "TLSError",
    "UnexpectedMessage",
    "UnknownAlert",
    "UnknownCA",
    "UnknownPskIdentity",
    "UnrecognizedName",
    "UnsupportedCertificate",
    "UnsupportedExtension",
    "UserCanceled",
    "alert_error",
]


class AlertDescription(IntEnum):
    """Alert descriptions (RFC 8446, section 6)."""

    close_notify = 0
    unexpected_message = 10
    bad_record_mac = 20
    record_overflow = 22
    handshake_failure = 40
    bad_certificate = 42
    unsupported_certificate = 43
    certificate_revoked = 44
    certificate_expired = 45
    certificate_unknown = 46
    illegal_parameter = 47
    unknown_ca = 48
    access_denied = 49
    decode_error = 50
    decrypt_error = 51
    protocol_version = 70
    insufficient_security = 71
    internal_error = 80
    inappropriate_fallback = 86
    user_canceled = 90
    missing_extension = 109
    unsupported_extension = 110
    unrecognized_name = 112
    bad_certificate_status_response = 113
    unknown_psk_identity = 115
    certificate_required = 116
    no_application_protocol = 120


class TLSError(NetstackError, ssl.SSLError):
    """Base class of netstack's TLS errors; also an :class:`ssl.SSLError`.

    Misuse of the API (sending before the handshake completed, after close) raises a plain
    ``TLSError``; anything the peer did, or told us, is a :class:`TLSAlert`.
    """

    library = "netstack.tls"


class TLSAlert(TLSError):
    """A TLS alert, sent or received.

    Attributes:
        description: the :class:`AlertDescription`.
        received: True if the peer sent the alert, False if we sent it.
        message: what went wrong, in words (only for alerts we sent).
    """

    description: AlertDescription = AlertDescription.internal_error
    unknown_value: int | None = None

    def __init__(self, message: str = "", *, received: bool = False) -> None:
        name = self.description.name
        if received:
            text = f"peer sent alert {name}"
        else:
            text = f"{name}: {message}" if message else name
        super().__init__(text)
        self.received = received
        self.message = message
        self.reason = ("TLSV1_ALERT_" if received else "") + name.upper()

    def __reduce__(self) -> tuple[object, ...]:  # keep pickling sane for OSError subclasses
        return (_rebuild, (self.unknown_value or self.description, self.received, self.message))

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else self.description.name


class _CertificateAlert(TLSAlert, ssl.SSLCertVerificationError):
    """An alert about a certificate: also an :class:`ssl.SSLCertVerificationError`."""

    def __init__(self, message: str = "", *, received: bool = False) -> None:
        super().__init__(message, received=received)
        self.verify_code = int(self.description)
        self.verify_message = message or self.description.name


class CloseNotify(TLSAlert):
    description = AlertDescription.close_notify


class UnexpectedMessage(TLSAlert):
    description = AlertDescription.unexpected_message


class BadRecordMac(TLSAlert):
    description = AlertDescription.bad_record_mac


class RecordOverflow(TLSAlert):
    description = AlertDescription.record_overflow


class HandshakeFailure(TLSAlert):
    description = AlertDescription.handshake_failure


class BadCertificate(_CertificateAlert):
    description = AlertDescription.bad_certificate


class UnsupportedCertificate(_CertificateAlert):
    description = AlertDescription.unsupported_certificate


class CertificateRevoked(_CertificateAlert):
    description = AlertDescription.certificate_revoked


class CertificateExpired(_CertificateAlert):
    description = AlertDescription.certificate_expired


class CertificateUnknown(_CertificateAlert):
    description = AlertDescription.certificate_unknown


class IllegalParameter(TLSAlert):
    description = AlertDescription.illegal_parameter


class UnknownCA(_CertificateAlert):
    description = AlertDescription.unknown_ca


class AccessDenied(TLSAlert):
    description = AlertDescription.access_denied


class DecodeError(TLSAlert):
    description = AlertDescription.decode_error


class DecryptError(TLSAlert):
    description = AlertDescription.decrypt_error


class ProtocolVersion(TLSAlert):
    description = AlertDescription.protocol_version


class InsufficientSecurity(TLSAlert):
    description = AlertDescription.insufficient_security


class InternalError(TLSAlert):
    description = AlertDescription.internal_error


class InappropriateFallback(TLSAlert):
    description = AlertDescription.inappropriate_fallback


class UserCanceled(TLSAlert):
    description = AlertDescription.user_canceled


class MissingExtension(TLSAlert):
    description = AlertDescription.missing_extension


class UnsupportedExtension(TLSAlert):
    description = AlertDescription.unsupported_extension


class UnrecognizedName(TLSAlert):
    description = AlertDescription.unrecognized_name


class BadCertificateStatusResponse(TLSAlert):
    description = AlertDescription.bad_certificate_status_response


class UnknownPskIdentity(TLSAlert):
    description = AlertDescription.unknown_psk_identity


class CertificateRequired(TLSAlert):
    description = AlertDescription.certificate_required


class NoApplicationProtocol(TLSAlert):
    description = AlertDescription.no_application_protocol


class UnknownAlert(TLSAlert):
    """An alert whose description this implementation does not know (RFC 8446, section 6:
    unknown alert types are treated as errors). ``unknown_value`` holds the number."""

    description = AlertDescription.internal_error


_CLASSES: dict[AlertDescription, type[TLSAlert]] = {
    cls.description: cls
    for cls in (
        CloseNotify,
        UnexpectedMessage,
        BadRecordMac,
        RecordOverflow,
        HandshakeFailure,
        BadCertificate,
        UnsupportedCertificate,
        CertificateRevoked,
        CertificateExpired,
        CertificateUnknown,
        IllegalParameter,
        UnknownCA,
        AccessDenied,
        DecodeError,
        DecryptError,
        ProtocolVersion,
        InsufficientSecurity,
        InternalError,
        InappropriateFallback,
        UserCanceled,
        MissingExtension,
        UnsupportedExtension,
        UnrecognizedName,
        BadCertificateStatusResponse,
        UnknownPskIdentity,
        CertificateRequired,
        NoApplicationProtocol,
    )
}


def alert_error(
    description: AlertDescription | int, *, received: bool, message: str = ""
) -> TLSAlert:
    """The exception for an alert.

    Args:
        description: the alert description; a number no :class:`AlertDescription` names
            gives an :class:`UnknownAlert` with ``unknown_value`` set.
        received: True if the peer sent the alert.
        message: what went wrong (for alerts we send).

    Returns:
        An instance of the class for ``description``.
    """
    try:
        known = AlertDescription(description)
    except ValueError:
        error: TLSAlert = UnknownAlert(message, received=received)
        error.unknown_value = int(description)
        error.args = (f"{'peer sent' if received else 'sent'} unknown alert {int(description)}",)
        return error
    return _CLASSES[known](message, received=received)


def _rebuild(description: int, received: bool, message: str) -> TLSAlert:
    return alert_error(description, received=received, message=message)
