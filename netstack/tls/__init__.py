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

The engine is built on ``cryptography``, an extra (``pip install 'netstack[tls]'``): this
package imports it only when a name that needs it is first used (PEP 562), and says which
extra is missing if it is not installed. Its errors and wire formats need nothing more, and
neither does TLS with OpenSSL (an ``ssl.SSLContext`` for ``ssl=``, through ``stream.py``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from . import certs as certs
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

#: What ``pip`` must add when ``cryptography`` is missing.
EXTRA_HINT = "pip install 'netstack[tls]'"

#: The names that need ``cryptography``, and where they are defined.
_LAZY = {
    "issue": ".certs",
    "make_ca": ".certs",
    "write_pem": ".certs",
    "TLSConfig": ".config",
    "AlertReceived": ".connection",
    "CloseNotifyReceived": ".connection",
    "ConnectionFailed": ".connection",
    "DataReceived": ".connection",
    "HandshakeCompleted": ".connection",
    "KeyUpdated": ".connection",
    "SessionTicketReceived": ".connection",
    "TLSConnection": ".connection",
    "TlsConnection": ".connection",
    "TLSEvent": ".connection",
    "TlsEvent": ".connection",
    "TLSSession": ".connection",
    "TlsSession": ".connection",
    "TLSState": ".connection",
    "TlsState": ".connection",
}
_SUBMODULES = frozenset(
    {"certs", "config", "connection", "driver", "key_schedule", "record", "stream"}
)


def __getattr__(name: str) -> Any:
    where = _LAZY.get(name) or (f".{name}" if name in _SUBMODULES else None)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        module = importlib.import_module(where, __name__)
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] != "cryptography":
            raise
        raise ModuleNotFoundError(
            f"netstack.tls.{name} (netstack's own TLS 1.3 and certificate helpers) needs the "
            f"cryptography package, which the 'tls' extra installs: {EXTRA_HINT}. "
            "TLS with OpenSSL (an ssl.SSLContext) needs no extra.",
            name="cryptography",
        ) from exc
    value = module if name in _SUBMODULES else getattr(module, name)
    globals()[name] = value
    return value


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
