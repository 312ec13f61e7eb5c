"""netstack's own TLS 1.3 (RFC 8446), sans-IO, on ``cryptography``.

- :class:`TLSConfig` (config.py): what a client or server offers, presents and trusts;
  ``ssl=`` of ``Stack.open_connection``/``start_server`` takes one.
- :class:`TLSConnection` (connection.py): the machine, client or server: bytes in, bytes
  and events out, time and randomness passed in.
- Names are cased as :class:`TLSConfig` is (``TLSConnection``, ``TLSSession``, ``TLSState``,
  ``TLSEvent``; ``netstack.tls.driver.TLSProtocol``); the ``Tls...`` spellings they had
  before are aliases, kept so that code written against them runs unchanged.
- errors.py: :class:`TLSError` (an :class:`ssl.SSLError`) and one :class:`TLSAlert`
  subclass per alert of RFC 8446 (6).
- wire.py, record.py, key_schedule.py: messages, records and secrets.
- certs.py: loading and validating certificates, and :func:`make_ca`/:func:`issue` for
  test PKIs.
"""

from __future__ import annotations

from .certs import issue, make_ca, write_pem
from .config import TLSConfig
from .connection import (
    AlertReceived,
    CloseNotifyReceived,
    ConnectionFailed,
    DataReceived,
    HandshakeCompleted,
    KeyUpdated,
    SessionTicketReceived,
    TLSConnection,
    TlsConnection,
    TLSEvent,
    TlsEvent,
    TLSSession,
    TlsSession,
    TLSState,
    TlsState,
)
from .errors import (
    AccessDenied,
    AlertDescription,
    BadCertificate,
    BadCertificateStatusResponse,
    BadRecordMac,
    CertificateExpired,
    CertificateRequired,
    CertificateRevoked,
    CertificateUnknown,
    CloseNotify,
    DecodeError,
    DecryptError,
    HandshakeFailure,
    IllegalParameter,
    InappropriateFallback,
    InsufficientSecurity,
    InternalError,
    MissingExtension,
    NoApplicationProtocol,
    ProtocolVersion,
    RecordOverflow,
    TLSAlert,
    TLSError,
    UnexpectedMessage,
    UnknownAlert,
    UnknownCA,
    UnknownPskIdentity,
    UnrecognizedName,
    UnsupportedCertificate,
    UnsupportedExtension,
    UserCanceled,
    alert_error,
)
from .wire import CipherSuite, Group, SignatureScheme

__all__ = [
    "AccessDenied",
    "AlertDescription",
    "AlertReceived",
    "BadCertificate",
    "BadCertificateStatusResponse",
    "BadRecordMac",
    "CertificateExpired",
    "CertificateRequired",
    "CertificateRevoked",
    "CertificateUnknown",
    "CipherSuite",
    "CloseNotify",
    "CloseNotifyReceived",
    "ConnectionFailed",
    "DataReceived",
    "DecodeError",
    "DecryptError",
    "Group",
    "HandshakeCompleted",
    "HandshakeFailure",
    "IllegalParameter",
    "InappropriateFallback",
    "InsufficientSecurity",
    "InternalError",
    "KeyUpdated",
    "MissingExtension",
    "NoApplicationProtocol",
    "ProtocolVersion",
    "RecordOverflow",
    "SessionTicketReceived",
    "SignatureScheme",
    "TLSAlert",
    "TLSConfig",
    "TLSError",
    "TLSConnection",
    "TLSEvent",
    "TLSSession",
    "TLSState",
    "TlsConnection",
    "TlsEvent",
    "TlsSession",
    "TlsState",
    "UnexpectedMessage",
    "UnknownAlert",
    "UnknownCA",
    "UnknownPskIdentity",
    "UnrecognizedName",
    "UnsupportedCertificate",
    "UnsupportedExtension",
    "UserCanceled",
    "alert_error",
    "issue",
    "make_ca",
    "write_pem",
]
