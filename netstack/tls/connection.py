"""The TLS 1.3 connection machine, client and server (RFC 8446).

Sans-IO: bytes from TCP go in through :meth:`TLSConnection.receive_data`, bytes for TCP come
out of :meth:`TLSConnection.data_to_send`, and what happened comes out of
:meth:`TLSConnection.next_event`. Time is an argument, randomness a callable and the wall
clock (for certificate and ticket dates) a callable of the config, all given by the driver;
nothing here reads a clock, a socket or the OS's entropy.

What is implemented, by section of RFC 8446:

- 4.1 key exchange: (EC)DHE over x25519, secp256r1 (and secp384r1), with HelloRetryRequest
  (4.1.4) when the client's key_share lacks the server's preferred group; version
  negotiation by supported_versions (4.2.1) with ``protocol_version`` for older peers and
  the downgrade sentinel check (4.1.3);
- 4.2 extensions: server_name (RFC 6066) choosing among the server's certificates, ALPN
  (RFC 7301) with ``no_application_protocol``, signature_algorithms(_cert), key_share,
  cookie, psk_key_exchange_modes (psk_dhe_ke only), pre_shared_key with binders (4.2.11);
- 4.3/4.4 authentication: EncryptedExtensions, CertificateRequest, Certificate with chain
  validation (certs.py), CertificateVerify (4.4.3), Finished (4.4.4) compared in constant
  time; client certificates requested, optional or required (``certificate_required``);
- 4.6 post-handshake: NewSessionTicket (issued by the server, kept by the client, used to
  resume with psk_dhe_ke) and KeyUpdate in both directions;
- 4.2.10 early data: a server declines 0-RTT and skips the client's early data records
  (up to ``TLSConfig.max_early_data_size``, also after a HelloRetryRequest); a client never
  sends early data;
- 5 records (record.py), including the compatibility change_cipher_spec of D.4, which is
  accepted and dropped, and sent by the server when the client asks for compatibility
  mode (a non-empty legacy_session_id, echoed);
- 6 alerts: close_notify, user_canceled, and a fatal alert for every error, each an
  exception class of errors.py.

Errors caused by the peer never raise out of :meth:`~TLSConnection.receive_data`: they
become a fatal alert in :meth:`~TLSConnection.data_to_send` and a :class:`ConnectionFailed`
event. An alert from the peer is an :class:`AlertReceived` event.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import struct
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..errors import ParseError
from . import wire
from .certs import (
    PrivateKey,
    certificate_key,
    parse_chain,
    peercert_dict,
    schemes_for_key,
    sign,
    verify_chain,
    verify_signature,
)
from .config import TLSConfig
from .errors import (
    AlertDescription,
    CertificateRequired,
    CloseNotify,
    DecodeError,
    DecryptError,
    HandshakeFailure,
    IllegalParameter,
    InternalError,
    MissingExtension,
    NoApplicationProtocol,
    ProtocolVersion,
    TLSAlert,
    TLSError,
    UnexpectedMessage,
    UnrecognizedName,
    UnsupportedExtension,
    alert_error,
)
from .key_schedule import (
    SUITES,
    CipherSuiteParams,
    KeySchedule,
    Transcript,
    finished_verify_data,
    next_traffic_secret,
    resumption_psk,
)
from .record import ContentType, Record, RecordLayer
from .wire import (
    HELLO_RETRY_REQUEST_RANDOM,
    TLS_1_2,
    TLS_1_3,
    CipherSuite,
    ExtensionType,
    Group,
    HandshakeType,
    PskKeyExchangeMode,
    SignatureScheme,
)

__all__ = [
    "AlertReceived",
    "CloseNotifyReceived",
    "ConnectionFailed",
    "DataReceived",
    "HandshakeCompleted",
    "KeyUpdated",
    "SessionTicketReceived",
    "TLSConnection",
    "TLSEvent",
    "TLSSession",
    "TLSState",
    "TlsConnection",
    "TlsEvent",
    "TlsSession",
    "TlsState",
]

logger = logging.getLogger("netstack.tls")

#: The largest handshake message accepted (a certificate chain, typically).
MAX_HANDSHAKE_MESSAGE = 1 << 17
#: RFC 8446 (4.6.1): tickets live at most seven days.
MAX_TICKET_LIFETIME = 604800
#: Records sent under one key before a KeyUpdate (RFC 8446, 5.5: at most 2^24.5 full-size
#: records per AES-GCM key; the same margin is kept for every suite).
KEY_UPDATE_AFTER_RECORDS = 1 << 23

_SERVER_CV_CONTEXT = b" " * 64 + b"TLS 1.3, server CertificateVerify\x00"
_CLIENT_CV_CONTEXT = b" " * 64 + b"TLS 1.3, client CertificateVerify\x00"
_TICKET_AAD = b"netstack tls13 ticket v1"
_TICKET_STATE = struct.Struct("!BHQII")

# -- states ----------------------------------------------------------------------------------


class TLSState(Enum):
    """Handshake states by the names of RFC 8446, appendix A (A.1 client, A.2 server)."""

    START = "START"
    WAIT_SH = "WAIT_SH"
    WAIT_EE = "WAIT_EE"
    WAIT_CERT_CR = "WAIT_CERT_CR"
    RECVD_CH = "RECVD_CH"
    NEGOTIATED = "NEGOTIATED"
    WAIT_EOED = "WAIT_EOED"
    WAIT_FLIGHT2 = "WAIT_FLIGHT2"
    WAIT_CERT = "WAIT_CERT"
    WAIT_CV = "WAIT_CV"
    WAIT_FINISHED = "WAIT_FINISHED"
    CONNECTED = "CONNECTED"
    CLOSED = "CLOSED"


S = TLSState
_CLIENT_TRANSITIONS: dict[TLSState, frozenset[TLSState]] = {
    S.START: frozenset({S.WAIT_SH}),
    S.WAIT_SH: frozenset({S.WAIT_SH, S.WAIT_EE}),
    S.WAIT_EE: frozenset({S.WAIT_CERT_CR, S.WAIT_FINISHED}),
    S.WAIT_CERT_CR: frozenset({S.WAIT_CERT, S.WAIT_CV}),
    S.WAIT_CERT: frozenset({S.WAIT_CV}),
    S.WAIT_CV: frozenset({S.WAIT_FINISHED}),
    S.WAIT_FINISHED: frozenset({S.CONNECTED}),
    S.CONNECTED: frozenset(),
    S.CLOSED: frozenset(),
}
_SERVER_TRANSITIONS: dict[TLSState, frozenset[TLSState]] = {
    S.START: frozenset({S.RECVD_CH}),
    S.RECVD_CH: frozenset({S.NEGOTIATED}),
    S.NEGOTIATED: frozenset({S.WAIT_FLIGHT2}),
    S.WAIT_FLIGHT2: frozenset({S.WAIT_CERT, S.WAIT_FINISHED}),
    S.WAIT_CERT: frozenset({S.WAIT_CV, S.WAIT_FINISHED}),
    S.WAIT_CV: frozenset({S.WAIT_FINISHED}),
    S.WAIT_FINISHED: frozenset({S.CONNECTED}),
    S.CONNECTED: frozenset(),
    S.CLOSED: frozenset(),
}

# -- events ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HandshakeCompleted:
    """The handshake finished; application data may flow."""

    cipher: tuple[str, str, int]
    alpn_protocol: str | None
    session_resumed: bool


@dataclass(frozen=True, slots=True)
class DataReceived:
    """Application data from the peer."""

    data: bytes


@dataclass(frozen=True, slots=True)
class CloseNotifyReceived:
    """The peer closed its sending side (close_notify). Our side stays open until
    :meth:`TLSConnection.close`."""


@dataclass(frozen=True, slots=True)
class KeyUpdated:
    """The peer updated its traffic keys (``peer=True``) by a KeyUpdate."""

    peer: bool


@dataclass(frozen=True, slots=True)
class SessionTicketReceived:
    """A client got a ticket: ``session`` resumes a later connection to the same server."""

    session: TLSSession


@dataclass(frozen=True, slots=True)
class AlertReceived:
    """The peer sent a fatal alert; the connection is closed."""

    error: TLSAlert


@dataclass(frozen=True, slots=True)
class ConnectionFailed:
    """We sent a fatal alert (in :meth:`TLSConnection.data_to_send`) because of ``error``;
    the connection is closed."""

    error: TLSAlert


TLSEvent = (
    HandshakeCompleted
    | DataReceived
    | CloseNotifyReceived
    | KeyUpdated
    | SessionTicketReceived
    | AlertReceived
    | ConnectionFailed
)


@dataclass(frozen=True)
class TLSSession:
    """What a client keeps from a NewSessionTicket to resume (RFC 8446, 4.6.1, 2.2).

    Attributes:
        server_name: the server_hostname of the connection that got it; a session only
            resumes with the same name.
        cipher_suite: the suite of that connection (a resumption must use the same hash).
        received_at: when the ticket arrived (the ``now`` of that moment).
        lifetime: seconds the server keeps the ticket valid.
        alpn_protocol: the ALPN protocol of that connection.
    """

    server_name: str | None
    cipher_suite: CipherSuite
    received_at: float
    lifetime: int
    alpn_protocol: str | None
    ticket: bytes = field(repr=False)
    psk: bytes = field(repr=False)
    ticket_age_add: int = field(repr=False)
    peer_certificate: x509.Certificate | None = field(default=None, repr=False)

    def is_valid(self, now: float) -> bool:
        """True while the ticket may be offered; ``now`` is wall-clock time (UNIX epoch)."""
        return 0 <= now - self.received_at < self.lifetime


# -- key exchange ----------------------------------------------------------------------------

_CURVES: dict[Group, tuple[ec.EllipticCurve, int, int]] = {
    # group: (curve, order, bytes of randomness used for the scalar)
    Group.secp256r1: (
        ec.SECP256R1(),
        0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
        40,
    ),
    Group.secp384r1: (
        ec.SECP384R1(),
        0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973,
        56,
    ),
}

KeyExchangeKey = x25519.X25519PrivateKey | ec.EllipticCurvePrivateKey


def _generate_key_share(
    group: Group, random: Callable[[int], bytes]
) -> tuple[KeyExchangeKey, bytes]:
    """A private key from injected randomness and its encoded public key (4.2.8.2)."""
    if group == Group.x25519:
        private = x25519.X25519PrivateKey.from_private_bytes(random(32))
        public = private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return private, public
    curve, order, size = _CURVES[group]
    scalar = int.from_bytes(random(size), "big") % (order - 1) + 1
    ec_private = ec.derive_private_key(scalar, curve)
    point = ec_private.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return ec_private, point


def _shared_secret(group: Group, private: KeyExchangeKey, peer: bytes) -> bytes:
    """The (EC)DHE shared secret; a malformed or degenerate peer share is an
    ``illegal_parameter``."""
    if isinstance(private, x25519.X25519PrivateKey):
        if len(peer) != 32:
            raise IllegalParameter("x25519 key share is not 32 bytes")
        try:
            secret = private.exchange(x25519.X25519PublicKey.from_public_bytes(peer))
        except ValueError:
            raise IllegalParameter("x25519 shared secret is all zeros") from None
        # RFC 8446 (7.4.2): an all-zero X25519 result must be refused.
        if not any(secret):
            raise IllegalParameter("x25519 shared secret is all zeros")
        return secret
    curve = _CURVES[group][0]
    # RFC 8446 (4.2.8.2): only the uncompressed point form is used.
    if not peer or peer[0] != 4:
        raise IllegalParameter("key share is not an uncompressed point")
    try:
        public = ec.EllipticCurvePublicKey.from_encoded_point(curve, peer)
        return private.exchange(ec.ECDH(), public)
    except ValueError:
        raise IllegalParameter("key share is not a point on the curve") from None


# -- session tickets (stateless: the state travels encrypted in the ticket) -------------------


@dataclass(frozen=True)
class _TicketState:
    suite: CipherSuite
    psk: bytes = field(repr=False)
    created_ms: int
    lifetime: int
    age_add: int = field(repr=False)
    alpn: str | None
    server_name: str | None
    client_certificate: bytes | None


def _seal_ticket(key: bytes, nonce: bytes, state: _TicketState) -> bytes:
    buf = wire.Buffer()
    buf.push_bytes(
        _TICKET_STATE.pack(1, state.suite, state.created_ms, state.lifetime, state.age_add)
    )
    buf.push_opaque(1, state.psk)
    buf.push_opaque(1, (state.alpn or "").encode())
    buf.push_opaque(2, (state.server_name or "").encode())
    buf.push_opaque(3, state.client_certificate or b"")
    return nonce + AESGCM(key).encrypt(nonce, buf.data, _TICKET_AAD)


def _open_ticket(key: bytes, ticket: bytes) -> _TicketState | None:
    """The state in a ticket of ours, or None for anything else."""
    if len(ticket) < 12 + 16 + _TICKET_STATE.size:
        return None
    try:
        plain = AESGCM(key).decrypt(ticket[:12], ticket[12:], _TICKET_AAD)
        buf = wire.Buffer(plain)
        version, suite, created, lifetime, age_add = _TICKET_STATE.unpack(
            buf.pull_bytes(_TICKET_STATE.size)
        )
        psk = buf.pull_opaque(1)
        alpn = buf.pull_opaque(1).decode()
        name = buf.pull_opaque(2).decode()
        cert = buf.pull_opaque(3)
        if version != 1 or not buf.eof():
            return None
        return _TicketState(
            CipherSuite(suite),
            psk,
            created,
            lifetime,
            age_add,
            alpn or None,
            name or None,
            cert or None,
        )
    except (InvalidTag, ParseError, ValueError):
        return None


# -- the connection --------------------------------------------------------------------------


def _is_ip_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return True


_SERVER_HELLO_EXTENSIONS = frozenset(
    {ExtensionType.key_share, ExtensionType.pre_shared_key, ExtensionType.supported_versions}
)
_HRR_EXTENSIONS = frozenset(
    {ExtensionType.key_share, ExtensionType.cookie, ExtensionType.supported_versions}
)
# RFC 8446 (4.2): the extensions that may appear in EncryptedExtensions.
_EE_EXTENSIONS = frozenset(
    {
        ExtensionType.server_name,
        ExtensionType.max_fragment_length,
        ExtensionType.supported_groups,
        ExtensionType.use_srtp,
        ExtensionType.heartbeat,
        ExtensionType.application_layer_protocol_negotiation,
        ExtensionType.client_certificate_type,
        ExtensionType.server_certificate_type,
        ExtensionType.record_size_limit,
        ExtensionType.early_data,
    }
)


class TLSConnection:
    """One TLS 1.3 connection, client or server, without I/O.

    Args:
        config: what to offer, present and trust.
        server_side: True for a server.
        server_hostname: a client's name for the server: sent as server_name (unless an IP
            address) and checked against the certificate. Required when the config verifies.
        random: ``random(n)`` returns ``n`` random bytes (``os.urandom`` in production).
        session: a client's :class:`TLSSession` from an earlier connection, to resume.

    The ``now`` given to :meth:`start` and :meth:`receive_data` is the driver's clock (the
    event loop's ``loop.time()``); TLS 1.3 has no timers, so the machine needs it for
    nothing yet. Dates (certificate validity, ticket issue and age) come from
    ``config.wall_clock``, seconds since the UNIX epoch, injected like ``random``.

    Raises:
        ValueError: a server config without a certificate, or a verifying client without
            ``server_hostname``.
    """

    def __init__(
        self,
        config: TLSConfig,
        *,
        server_side: bool,
        server_hostname: str | None = None,
        random: Callable[[int], bytes],
        session: TLSSession | None = None,
    ) -> None:
        if server_side and config.private_key is None and not config.sni_certificates:
            raise ValueError("a TLS server needs a certificate and private key")
        if not server_side and config.verify and not server_hostname:
            raise ValueError("server_hostname is required to verify the server's certificate")
        self._config = config
        self._server_side = server_side
        self.server_hostname = server_hostname if not server_side else None
        self._random = random
        self._offered_session = session if not server_side else None

        self.state = TLSState.START
        self.cipher: tuple[str, str, int] | None = None
        self.alpn_protocol: str | None = None
        self.peer_certificate: x509.Certificate | None = None
        self.peer_certificate_chain: list[x509.Certificate] = []
        self.session: TLSSession | None = None
        self.session_resumed = False

        self._record = RecordLayer()
        self._events: deque[TLSEvent] = deque()
        self._now = 0.0
        self._hs_buffer = bytearray()
        self._transcript = Transcript()
        self._params: CipherSuiteParams | None = None
        self._schedule: KeySchedule | None = None
        self._client_hs_secret = b""
        self._server_hs_secret = b""
        self._read_app_secret = b""
        self._write_app_secret = b""
        self._resumption_master = b""
        self._read_key_changed = False

        self._started = False
        self._hello_seen = False
        self._peer_finished = False
        self._handshake_complete = False
        self._failed = False
        self._peer_closed = False
        self._write_closed = False
        self._peer_verified = False

        # client
        self._client_random = b""
        self._session_id = b""
        self._key_shares: dict[Group, KeyExchangeKey] = {}
        self._offered_suites: list[CipherSuite] = []
        self._offered_alpn: list[bytes] = []
        self._sent_extensions: set[int] = set()
        self._psk_offered: TLSSession | None = None
        self._hrr_suite: CipherSuite | None = None
        self._cookie: bytes | None = None
        self._certificate_request: wire.CertificateRequest | None = None
        self._cr_schemes: list[int] = []

        # server
        self._hrr_group: Group | None = None
        self._first_hello: wire.ClientHello | None = None
        self._ccs_sent = False
        self._client_psk_modes: list[int] = []
        self._sni: str | None = None
        self._requested_client_cert = False
        self._tickets_sent = 0

    def __repr__(self) -> str:
        side = "server" if self._server_side else "client"
        return f"<TLSConnection {side} {self.state.name}>"

    # -- public API ------------------------------------------------------------------------

    def start(self, now: float) -> None:
        """Begin the handshake: a client queues its ClientHello; a server waits for one.

        Raises:
            TLSError: called twice.
        """
        if self._started:
            raise TLSError("the handshake has already been started")
        self._started = True
        self._now = now
        if self._server_side:
            return
        try:
            self._client_start()
        except TLSAlert as error:  # e.g. an unusable session: never from peer input here
            self._fail(error)

    def receive_data(self, data: bytes, now: float) -> None:
        """Bytes from the transport. Never raises because of what the peer sent: an error
        becomes a fatal alert to send and a :class:`ConnectionFailed` event."""
        self._now = now
        if self._failed or self._peer_closed or not data:
            return
        if not self._started:
            self.start(now)
        self._record.receive_data(data)
        try:
            while not (self._failed or self._peer_closed):
                record = self._record.next_record()
                if record is None:
                    break
                self._handle_record(record)
        except TLSAlert as error:
            self._fail(error)
        except ParseError as error:
            self._fail(DecodeError(str(error)))
        except Exception as error:  # a bug here must not escape as if the peer caused it
            logger.exception("TLS internal error")
            self._fail(InternalError(f"{type(error).__name__}: {error}"))

    def data_to_send(self) -> bytes:
        """Bytes to write to the transport (empties the buffer)."""
        return self._record.data_to_send()

    def next_event(self) -> TLSEvent | None:
        """The oldest event not yet taken, or None."""
        return self._events.popleft() if self._events else None

    def send_data(self, data: bytes) -> None:
        """Queue application data.

        Raises:
            TLSError: the handshake has not completed, or the connection is closed.
        """
        if self._failed:
            raise TLSError("the TLS connection has failed")
        if self._write_closed:
            raise TLSError("the TLS connection is closed for sending")
        if not self._handshake_complete:
            raise TLSError("the TLS handshake has not completed")
        if data:
            # RFC 8446 (5.5): change keys well before the AEAD's usage limit.
            if self._record.write_sequence >= KEY_UPDATE_AFTER_RECORDS:
                self._send_key_update(False)
            self._record.send(ContentType.application_data, bytes(data))

    def close(self) -> None:
        """Queue a close_notify (RFC 8446, 6.1); data can still be received until the peer's
        close_notify. Calling it again does nothing."""
        if self._failed or self._write_closed:
            return
        self._write_closed = True
        if self._started:
            self._send_alert(AlertDescription.close_notify)
        self._set_state(TLSState.CLOSED)

    def key_update(self, *, request_peer: bool = True) -> None:
        """Send a KeyUpdate and switch to the next sending keys (RFC 8446, 4.6.3).

        Args:
            request_peer: ask the peer to update its sending keys too.

        Raises:
            TLSError: the handshake has not completed, or the connection is closed.
        """
        if self._failed or self._write_closed or not self._handshake_complete:
            raise TLSError("key_update needs an established, open TLS connection")
        self._send_key_update(request_peer)

    def getpeercert(self, binary_form: bool = False) -> dict[str, Any] | bytes | None:
        """The peer's certificate, like ``ssl.SSLObject.getpeercert()``: None without one;
        DER with ``binary_form``; otherwise a dict (empty if it was not validated)."""
        cert = self.peer_certificate
        if cert is None:
            return None
        if binary_form:
            return cert.public_bytes(serialization.Encoding.DER)
        return peercert_dict(cert) if self._peer_verified else {}

    @property
    def server_side(self) -> bool:
        return self._server_side

    @property
    def handshake_complete(self) -> bool:
        return self._handshake_complete

    @property
    def requested_server_name(self) -> str | None:
        """A server's view of the ClientHello's server_name (SNI), if any."""
        return self._sni

    # -- plumbing --------------------------------------------------------------------------

    def _set_state(self, new: TLSState) -> None:
        old = self.state
        if new is old and new is not TLSState.WAIT_SH:
            return
        if new is not TLSState.CLOSED:
            table = _SERVER_TRANSITIONS if self._server_side else _CLIENT_TRANSITIONS
            if new not in table[old]:
                raise RuntimeError(f"illegal TLS state transition {old.name} -> {new.name}")
        logger.debug(
            "tls %s: %s -> %s", "server" if self._server_side else "client", old.name, new.name
        )
        self.state = new

    def _send_alert(self, description: AlertDescription) -> None:
        # RFC 8446 (6): close_notify and user_canceled are warnings, the rest fatal.
        level = 1 if description in (0, 90) else 2
        self._record.send(ContentType.alert, bytes([level, description]))

    def _fail(self, error: TLSAlert) -> None:
        if self._failed:
            return
        logger.debug("tls: sending alert %s: %s", error.description.name, error.message)
        self._failed = True
        self._send_alert(error.description)
        self._hs_buffer.clear()
        self._set_state(TLSState.CLOSED)
        self._events.append(ConnectionFailed(error))

    def _send_handshake(self, message: bytes, *, legacy_version: int = TLS_1_2) -> None:
        self._transcript.add(message)
        self._record.send(ContentType.handshake, message, legacy_version=legacy_version)

    def _set_read_secret(self, secret: bytes) -> None:
        assert self._params is not None
        self._record.set_read_secret(self._params, secret)
        self._read_key_changed = True

    def _set_write_secret(self, secret: bytes) -> None:
        assert self._params is not None
        self._record.set_write_secret(self._params, secret)

    @property
    def _hash(self) -> str:
        assert self._params is not None
        return self._params.hash_name

    def _handle_record(self, record: Record) -> None:
        content_type = record.content_type
        if content_type == ContentType.change_cipher_spec:
            # RFC 8446 (5): an unprotected change_cipher_spec of one byte 0x01 between the
            # first ClientHello and the peer's Finished is dropped; anything else is an
            # unexpected_message.
            if (
                record.protected
                or record.data != b"\x01"
                or not self._hello_seen
                or self._peer_finished
                or self._hs_buffer
            ):
                raise UnexpectedMessage("change_cipher_spec out of place")
            return
        if self._hs_buffer and content_type != ContentType.handshake:
            # RFC 8446 (5.1): handshake messages are not interleaved with other records.
            raise UnexpectedMessage("record interleaved with a fragmented handshake message")
        if self._record.read_protected and not record.protected:
            # An alert in the clear from a peer that failed before it had our keys.
            if not (content_type == ContentType.alert and not self._handshake_complete):
                raise UnexpectedMessage(f"unprotected {content_type.name} record")
        if content_type == ContentType.alert:
            self._handle_alert(record.data)
        elif content_type == ContentType.handshake:
            if not record.data:
                raise UnexpectedMessage("empty handshake record")
            self._hs_buffer += record.data
            self._process_handshake_buffer()
        elif content_type == ContentType.application_data:
            if not record.protected or not self._handshake_complete:
                raise UnexpectedMessage("application data before the handshake completed")
            if record.data:
                self._events.append(DataReceived(record.data))
        else:
            raise UnexpectedMessage(f"unexpected {content_type.name} record")

    def _handle_alert(self, data: bytes) -> None:
        if len(data) != 2:
            raise DecodeError("alert is not two bytes")
        description = data[1]
        if description == AlertDescription.user_canceled:
            return  # RFC 8446 (6.1): a close_notify should follow
        if description == AlertDescription.close_notify and self._handshake_complete:
            self._peer_closed = True
            self._hs_buffer.clear()
            self._events.append(CloseNotifyReceived())
            return
        error = (
            CloseNotify("closed during the handshake", received=True)
            if description == AlertDescription.close_notify
            else alert_error(description, received=True)
        )
        logger.debug("tls: received alert %s", description)
        self._failed = True
        self._hs_buffer.clear()
        self._set_state(TLSState.CLOSED)
        self._events.append(AlertReceived(error))

    def _process_handshake_buffer(self) -> None:
        buffer = self._hs_buffer
        while not self._failed:
            header = wire.pull_handshake_header(buffer)
            if header is None:
                return
            msg_type, length = header
            if length > MAX_HANDSHAKE_MESSAGE:
                raise DecodeError(f"handshake message of {length} bytes")
            if len(buffer) < 4 + length:
                return
            message = bytes(buffer[: 4 + length])
            del buffer[: 4 + length]
            self._read_key_changed = False
            self._handle_handshake(msg_type, message)
            # RFC 8446 (5.1): a key change must fall on a record boundary.
            if self._read_key_changed and buffer:
                raise UnexpectedMessage("handshake data spans a key change")

    def _handle_handshake(self, msg_type: int, message: bytes) -> None:
        body = message[4:]
        state = self.state
        if state is TLSState.CLOSED:
            if not self._handshake_complete:
                return  # closed by us during the handshake: nothing more to do
            state = TLSState.CONNECTED
        handler = self._handlers().get((state, msg_type))
        if handler is None:
            try:
                name = HandshakeType(msg_type).name
            except ValueError:
                name = f"type {msg_type}"
            raise UnexpectedMessage(f"{name} in state {self.state.name}")
        handler(message, body)

    def _handlers(self) -> dict[tuple[TLSState, int], Callable[[bytes, bytes], None]]:
        H = HandshakeType
        if self._server_side:
            return {
                (S.START, H.client_hello): self._server_client_hello,
                (S.WAIT_CERT, H.certificate): self._server_certificate,
                (S.WAIT_CV, H.certificate_verify): self._server_certificate_verify,
                (S.WAIT_FINISHED, H.finished): self._server_finished,
                (S.CONNECTED, H.key_update): self._handle_key_update,
            }
        return {
            (S.WAIT_SH, H.server_hello): self._client_server_hello,
            (S.WAIT_EE, H.encrypted_extensions): self._client_encrypted_extensions,
            (S.WAIT_CERT_CR, H.certificate_request): self._client_certificate_request,
            (S.WAIT_CERT_CR, H.certificate): self._client_certificate,
            (S.WAIT_CERT, H.certificate): self._client_certificate,
            (S.WAIT_CV, H.certificate_verify): self._client_certificate_verify,
            (S.WAIT_FINISHED, H.finished): self._client_finished,
            (S.CONNECTED, H.new_session_ticket): self._client_new_session_ticket,
            (S.CONNECTED, H.key_update): self._handle_key_update,
        }

    def _complete_handshake(self) -> None:
        assert self._params is not None
        self._handshake_complete = True
        self._client_hs_secret = self._server_hs_secret = b""
        suite = self._params.suite
        self.cipher = (suite.name, "TLSv1.3", self._params.secret_bits)
        self._set_state(TLSState.CONNECTED)
        self._events.append(
            HandshakeCompleted(self.cipher, self.alpn_protocol, self.session_resumed)
        )

    # -- post-handshake, both sides --------------------------------------------------------

    def _handle_key_update(self, message: bytes, body: bytes) -> None:
        update = wire.parse_message(wire.pull_key_update, body)
        if update.request_update not in (0, 1):
            raise IllegalParameter("KeyUpdate request_update is not 0 or 1")
        self._read_app_secret = next_traffic_secret(self._hash, self._read_app_secret)
        self._set_read_secret(self._read_app_secret)
        self._events.append(KeyUpdated(peer=True))
        # RFC 8446 (4.6.3): answer update_requested with our own KeyUpdate.
        if update.request_update == 1 and not self._write_closed:
            self._send_key_update(False)

    def _send_key_update(self, request_peer: bool) -> None:
        message = wire.encode_message(
            HandshakeType.key_update, wire.push_key_update, wire.KeyUpdate(int(request_peer))
        )
        self._record.send(ContentType.handshake, message)
        self._write_app_secret = next_traffic_secret(self._hash, self._write_app_secret)
        self._set_write_secret(self._write_app_secret)

    # -- client ----------------------------------------------------------------------------

    def _client_start(self) -> None:
        config = self._config
        self._client_random = self._random(32)
        for group in config.groups[: config.key_share_count]:
            self._key_shares[group] = _generate_key_share(group, self._random)[0]
        self._offered_suites = list(config.cipher_suites)
        self._offered_alpn = [p.encode() for p in config.alpn_protocols or ()]
        session = self._offered_session
        if session is not None and self._session_usable(session):
            self._psk_offered = session
        self._hello_seen = True
        self._send_client_hello(legacy_version=0x0301)
        self._set_state(TLSState.WAIT_SH)

    def _session_usable(self, session: TLSSession) -> bool:
        return (
            session.is_valid(self._config.wall_clock())
            and session.cipher_suite in self._offered_suites
            and (session.server_name or "").lower() == (self.server_hostname or "").lower()
        )

    def _public_share(self, group: Group, private: KeyExchangeKey) -> bytes:
        if isinstance(private, x25519.X25519PrivateKey):
            return private.public_key().public_bytes(
                serialization.Encoding.Raw, serialization.PublicFormat.Raw
            )
        return private.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )

    def _send_client_hello(self, *, legacy_version: int) -> None:
        config = self._config
        E = ExtensionType
        extensions: wire.Extensions = []
        name = self.server_hostname
        if name and not _is_ip_address(name):
            # RFC 6066 (3): a DNS host name without the trailing dot.
            extensions.append((E.server_name, wire.push_server_name_list(name.rstrip("."))))
        extensions += [
            (E.supported_versions, wire.push_client_supported_versions([TLS_1_3])),
            (E.supported_groups, wire.push_uint16_list(config.groups)),
            (E.signature_algorithms, wire.push_uint16_list(config.signature_algorithms)),
            (E.signature_algorithms_cert, wire.push_uint16_list(self._cert_schemes())),
            (
                E.key_share,
                wire.push_client_key_shares(
                    [(g, self._public_share(g, k)) for g, k in self._key_shares.items()]
                ),
            ),
        ]
        if self._offered_alpn:
            extensions.append(
                (E.application_layer_protocol_negotiation, wire.push_alpn(self._offered_alpn))
            )
        extensions.append((E.psk_key_exchange_modes, wire.push_psk_modes([1])))
        if self._cookie is not None:
            extensions.append((E.cookie, wire.push_cookie(self._cookie)))
        session = self._psk_offered
        binder_len = 0
        if session is not None:
            binder_len = SUITES[session.cipher_suite].hash_len
            age_ms = int((self._config.wall_clock() - session.received_at) * 1000)
            obfuscated = (age_ms + session.ticket_age_add) % (1 << 32)
            offered = wire.OfferedPsks([(session.ticket, obfuscated)], [bytes(binder_len)])
            # RFC 8446 (4.2.11): pre_shared_key is the last extension.
            extensions.append((E.pre_shared_key, wire.push_offered_psks(offered)))
        self._sent_extensions = {t for t, _ in extensions}
        hello = wire.ClientHello(
            random=self._client_random,
            legacy_session_id=self._session_id,
            cipher_suites=list(self._offered_suites),
            extensions=extensions,
        )
        message = wire.encode_message(HandshakeType.client_hello, wire.push_client_hello, hello)
        if session is not None:
            # RFC 8446 (4.2.11.2): the binder covers the ClientHello up to the binders list.
            params = SUITES[session.cipher_suite]
            truncated = message[: -wire.binders_length([bytes(binder_len)])]
            binder = KeySchedule(params, session.psk).binder(
                self._transcript.digest_with(params.hash_name, truncated)
            )
            message = message[:-binder_len] + binder
        self._send_handshake(message, legacy_version=legacy_version)

    def _cert_schemes(self) -> list[int]:
        # What chain validation accepts on certificates, beyond the CertificateVerify list.
        extra = [
            SignatureScheme.ecdsa_secp384r1_sha384,
            SignatureScheme.rsa_pss_rsae_sha384,
            SignatureScheme.rsa_pss_rsae_sha512,
            SignatureScheme.rsa_pkcs1_sha256,
            SignatureScheme.rsa_pkcs1_sha384,
            SignatureScheme.rsa_pkcs1_sha512,
        ]
        schemes: list[int] = list(self._config.signature_algorithms)
        return schemes + [s for s in extra if s not in schemes]

    def _check_server_hello_common(self, hello: wire.ServerHello) -> None:
        versions = wire.find_extension(hello.extensions, ExtensionType.supported_versions)
        if versions is None:
            # RFC 8446 (4.1.3): a TLS 1.3 client seeing the downgrade sentinel in a TLS 1.2
            # or older ServerHello aborts with illegal_parameter.
            if hello.random[-8:] in (wire.DOWNGRADE_TLS12, wire.DOWNGRADE_TLS11):
                raise IllegalParameter("downgrade sentinel in ServerHello.random")
            raise ProtocolVersion(f"server chose version {hello.legacy_version:#06x}")
        # RFC 8446 (4.2.1): a version not offered is an illegal_parameter.
        if wire.pull_uint16_body(versions) != TLS_1_3:
            raise IllegalParameter("server chose a version that was not offered")
        if hello.legacy_version != TLS_1_2:
            raise ProtocolVersion("ServerHello.legacy_version is not 0x0303")
        if hello.legacy_session_id_echo != self._session_id:
            raise IllegalParameter("legacy_session_id_echo does not match")
        if hello.cipher_suite not in self._offered_suites:
            raise IllegalParameter("server chose a cipher suite that was not offered")
        if hello.legacy_compression_method != 0:
            raise IllegalParameter("compression method is not null")

    def _check_response_extensions(
        self, extensions: wire.Extensions, allowed: frozenset[int]
    ) -> None:
        for ext_type, _ in extensions:
            # RFC 8446 (4.2): a response to an extension not sent is unsupported_extension;
            # the cookie of a HelloRetryRequest is the exception.
            if ext_type not in self._sent_extensions and ext_type != ExtensionType.cookie:
                raise UnsupportedExtension(f"extension {ext_type} was not offered")
            if ext_type not in allowed:
                raise IllegalParameter(f"extension {ext_type} not allowed in this message")

    def _client_server_hello(self, message: bytes, body: bytes) -> None:
        hello = wire.parse_message(wire.pull_server_hello, body)
        if hello.random == HELLO_RETRY_REQUEST_RANDOM:
            self._client_hello_retry_request(message, hello)
            return
        self._check_server_hello_common(hello)
        suite = CipherSuite(hello.cipher_suite)
        if self._hrr_suite is not None and suite != self._hrr_suite:
            raise IllegalParameter("ServerHello cipher suite differs from the HelloRetryRequest")
        self._check_response_extensions(hello.extensions, _SERVER_HELLO_EXTENSIONS)
        params = SUITES[suite]
        psk: bytes | None = None
        psk_body = wire.find_extension(hello.extensions, ExtensionType.pre_shared_key)
        if psk_body is not None:
            session = self._psk_offered
            assert session is not None  # otherwise unsupported_extension above
            if wire.pull_uint16_body(psk_body) != 0:
                raise IllegalParameter("server selected a PSK identity that was not offered")
            if SUITES[session.cipher_suite].hash_name != params.hash_name:
                raise IllegalParameter("resumed cipher suite has another hash")
            psk = session.psk
        share_body = wire.find_extension(hello.extensions, ExtensionType.key_share)
        if share_body is None:
            # psk_dhe_ke is the only mode offered, so a key share is required.
            raise MissingExtension("ServerHello has no key_share")
        group_value, peer_share = wire.pull_server_key_share(share_body)
        try:
            group = Group(group_value)
        except ValueError:
            raise IllegalParameter("server key share for a group not offered") from None
        private = self._key_shares.get(group)
        if private is None:
            raise IllegalParameter("server key share for a group not offered")
        shared = _shared_secret(group, private, peer_share)
        self._transcript.add(message)
        self._params = params
        self._schedule = KeySchedule(params, psk)
        self._schedule.extract_handshake(shared)
        self._key_shares.clear()
        client_secret, server_secret = self._schedule.handshake_traffic_secrets(
            self._transcript.digest(params.hash_name)
        )
        self._client_hs_secret, self._server_hs_secret = client_secret, server_secret
        self._set_read_secret(server_secret)
        self._set_write_secret(client_secret)
        if psk is not None:
            assert self._psk_offered is not None
            self.session_resumed = True
            self.peer_certificate = self._psk_offered.peer_certificate
            self._peer_verified = self.peer_certificate is not None and self._config.verify
        self._set_state(TLSState.WAIT_EE)

    def _client_hello_retry_request(self, message: bytes, hello: wire.ServerHello) -> None:
        # RFC 8446 (4.1.4).
        if self._hrr_suite is not None:
            raise UnexpectedMessage("second HelloRetryRequest")
        self._check_server_hello_common(hello)
        self._check_response_extensions(hello.extensions, _HRR_EXTENSIONS)
        suite = CipherSuite(hello.cipher_suite)
        share_body = wire.find_extension(hello.extensions, ExtensionType.key_share)
        cookie_body = wire.find_extension(hello.extensions, ExtensionType.cookie)
        if share_body is None and cookie_body is None:
            raise IllegalParameter("HelloRetryRequest would not change the ClientHello")
        if share_body is not None:
            group_value = wire.pull_uint16_body(share_body)
            if group_value not in self._config.groups or group_value in self._key_shares:
                raise IllegalParameter("HelloRetryRequest selected an unusable group")
            group = Group(group_value)
            self._key_shares = {group: _generate_key_share(group, self._random)[0]}
        if cookie_body is not None:
            self._cookie = wire.pull_cookie(cookie_body)
        self._hrr_suite = suite
        params = SUITES[suite]
        self._transcript.replace_with_message_hash(params.hash_name)
        self._transcript.add(message)
        session = self._psk_offered
        if session is not None and SUITES[session.cipher_suite].hash_name != params.hash_name:
            self._psk_offered = None
        self._send_client_hello(legacy_version=TLS_1_2)
        self._set_state(TLSState.WAIT_SH)

    def _client_encrypted_extensions(self, message: bytes, body: bytes) -> None:
        ee = wire.parse_message(wire.pull_encrypted_extensions, body)
        self._check_response_extensions(ee.extensions, _EE_EXTENSIONS)
        E = ExtensionType
        alpn_body = wire.find_extension(ee.extensions, E.application_layer_protocol_negotiation)
        if alpn_body is not None:
            names = wire.pull_alpn(alpn_body)
            # RFC 7301 (3.1): exactly one protocol, one the client offered.
            if len(names) != 1 or names[0] not in self._offered_alpn:
                raise IllegalParameter("server selected an ALPN protocol that was not offered")
            self.alpn_protocol = names[0].decode("ascii", "replace")
        sni_body = wire.find_extension(ee.extensions, E.server_name)
        if sni_body is not None and sni_body:
            raise DecodeError("server_name in EncryptedExtensions is not empty")
        if wire.find_extension(ee.extensions, E.early_data) is not None:
            raise UnsupportedExtension("early_data was not offered")  # unreachable: not sent
        self._transcript.add(message)
        self._set_state(TLSState.WAIT_FINISHED if self.session_resumed else TLSState.WAIT_CERT_CR)

    def _client_certificate_request(self, message: bytes, body: bytes) -> None:
        request = wire.parse_message(wire.pull_certificate_request, body)
        if request.context:
            raise IllegalParameter("certificate_request_context is not empty in the handshake")
        schemes_body = wire.find_extension(request.extensions, ExtensionType.signature_algorithms)
        if schemes_body is None:
            raise MissingExtension("CertificateRequest without signature_algorithms")
        self._cr_schemes = wire.pull_uint16_list(schemes_body)
        self._certificate_request = request
        self._transcript.add(message)
        self._set_state(TLSState.WAIT_CERT)

    def _client_certificate(self, message: bytes, body: bytes) -> None:
        certificate = wire.parse_message(wire.pull_certificate, body)
        if certificate.context:
            raise IllegalParameter("server Certificate has a request context")
        # RFC 8446 (4.4.2.4): an empty server Certificate is a decode_error.
        if not certificate.entries:
            raise DecodeError("server sent no certificate")
        chain = parse_chain(entry.cert_data for entry in certificate.entries)
        if self._config.verify:
            verify_chain(
                chain,
                self._config.trusted_certificates,
                now=self._config.wall_clock(),
                server_name=self.server_hostname,
                strict=self._config.strict,
            )
            self._peer_verified = True
        self.peer_certificate_chain = chain
        self.peer_certificate = chain[0]
        self._transcript.add(message)
        self._set_state(TLSState.WAIT_CV)

    def _verify_certificate_verify(self, body: bytes, context: bytes, offered: list[int]) -> None:
        verify = wire.parse_message(wire.pull_certificate_verify, body)
        if verify.algorithm not in offered:
            raise IllegalParameter("CertificateVerify with a scheme that was not offered")
        assert self.peer_certificate is not None
        key = certificate_key(self.peer_certificate)
        scheme = SignatureScheme(verify.algorithm)
        # RFC 8446 (4.4.3, 4.2.3): the scheme must be one the certificate's key makes; one
        # that is not (an RSA scheme with an EC key) is an illegal_parameter, not a signature
        # that fails.
        if scheme not in schemes_for_key(key):
            raise IllegalParameter(f"CertificateVerify scheme {scheme.name} does not fit the key")
        content = context + self._transcript.digest(self._hash)
        if not verify_signature(key, scheme, verify.signature, content):
            raise DecryptError("CertificateVerify signature does not verify")

    @staticmethod
    def _check_finished(expected: bytes, verify_data: bytes, side: str) -> None:
        # RFC 8446 (4.4.4): verify_data is Hash.length bytes; a Finished of another length
        # does not parse (decode_error), a wrong one of the right length is a decrypt_error.
        if len(verify_data) != len(expected):
            raise DecodeError(f"{side} Finished of {len(verify_data)} bytes")
        if not hmac.compare_digest(expected, verify_data):
            raise DecryptError(f"{side} Finished does not verify")

    def _client_certificate_verify(self, message: bytes, body: bytes) -> None:
        self._verify_certificate_verify(
            body, _SERVER_CV_CONTEXT, [int(s) for s in self._config.signature_algorithms]
        )
        self._transcript.add(message)
        self._set_state(TLSState.WAIT_FINISHED)

    def _client_finished(self, message: bytes, body: bytes) -> None:
        assert self._schedule is not None and self._params is not None
        expected = finished_verify_data(
            self._hash, self._server_hs_secret, self._transcript.digest(self._hash)
        )
        self._check_finished(expected, body, "server")
        self._peer_finished = True
        self._transcript.add(message)
        self._schedule.extract_master()
        client_app, server_app = self._schedule.application_traffic_secrets(
            self._transcript.digest(self._hash)
        )
        self._read_app_secret, self._write_app_secret = server_app, client_app
        self._set_read_secret(server_app)
        if self._certificate_request is not None:
            self._send_client_certificate(self._certificate_request)
        verify_data = finished_verify_data(
            self._hash, self._client_hs_secret, self._transcript.digest(self._hash)
        )
        self._send_handshake(
            wire.encode_message(
                HandshakeType.finished, wire.push_finished, wire.Finished(verify_data)
            )
        )
        self._set_write_secret(client_app)
        self._resumption_master = self._schedule.resumption_master_secret(
            self._transcript.digest(self._hash)
        )
        self._complete_handshake()

    def _send_client_certificate(self, request: wire.CertificateRequest) -> None:
        config = self._config
        key = config.private_key
        scheme: SignatureScheme | None = None
        if key is not None:
            for candidate in schemes_for_key(key):
                if candidate in self._cr_schemes and candidate in config.signature_algorithms:
                    scheme = candidate
                    break
        chain = config.certificate_chain if scheme is not None else ()
        entries = [wire.CertificateEntry(c.public_bytes(serialization.Encoding.DER)) for c in chain]
        self._send_handshake(
            wire.encode_message(
                HandshakeType.certificate,
                wire.push_certificate,
                wire.CertificateMessage(request.context, entries),
            )
        )
        if scheme is not None and key is not None:
            self._send_certificate_verify(key, scheme, _CLIENT_CV_CONTEXT)

    def _send_certificate_verify(
        self, key: PrivateKey, scheme: SignatureScheme, context: bytes
    ) -> None:
        signature = sign(key, scheme, context + self._transcript.digest(self._hash))
        self._send_handshake(
            wire.encode_message(
                HandshakeType.certificate_verify,
                wire.push_certificate_verify,
                wire.CertificateVerify(scheme, signature),
            )
        )

    def _client_new_session_ticket(self, message: bytes, body: bytes) -> None:
        ticket = wire.parse_message(wire.pull_new_session_ticket, body)
        if not self._config.session_tickets or ticket.ticket_lifetime == 0:
            return
        assert self._params is not None
        psk = resumption_psk(self._hash, self._resumption_master, ticket.ticket_nonce)
        session = TLSSession(
            server_name=self.server_hostname,
            cipher_suite=self._params.suite,
            received_at=self._config.wall_clock(),
            # RFC 8446 (4.6.1): never kept longer than seven days.
            lifetime=min(ticket.ticket_lifetime, MAX_TICKET_LIFETIME),
            alpn_protocol=self.alpn_protocol,
            ticket=ticket.ticket,
            psk=psk,
            ticket_age_add=ticket.ticket_age_add,
            peer_certificate=self.peer_certificate,
        )
        self.session = session
        self._events.append(SessionTicketReceived(session))

    # -- server ----------------------------------------------------------------------------

    def _server_client_hello(self, message: bytes, body: bytes) -> None:
        self._hello_seen = True
        hello = wire.parse_message(wire.pull_client_hello, body)
        E = ExtensionType
        exts = dict(hello.extensions)
        # RFC 8446 (4.2.1, D.2): without supported_versions listing TLS 1.3, the client
        # only speaks older versions.
        versions_body = exts.get(E.supported_versions)
        if versions_body is None:
            raise ProtocolVersion("client does not offer TLS 1.3")
        if TLS_1_3 not in wire.pull_client_supported_versions(versions_body):
            raise ProtocolVersion("client does not offer TLS 1.3")
        # RFC 8446 (4.1.2): TLS 1.3 ClientHellos carry only the null compression method.
        if hello.legacy_compression_methods != b"\x00":
            raise IllegalParameter("compression methods other than null")
        # RFC 8446 (4.2.11): pre_shared_key must be the last extension.
        if E.pre_shared_key in exts and hello.extensions[-1][0] != E.pre_shared_key:
            raise IllegalParameter("pre_shared_key is not the last extension")
        retry = self._hrr_group is not None
        # RFC 8446 (4.2.10): 0-RTT is always declined here; the client's early data is
        # skipped (record.py), never read.
        early_data = E.early_data in exts
        if retry:
            first = self._first_hello
            assert first is not None
            if hello.random != first.random or hello.legacy_session_id != first.legacy_session_id:
                raise IllegalParameter("second ClientHello differs from the first")
            # The early data of the first ClientHello ends with the second (4.2.10), which
            # must not offer early data again (4.1.2).
            self._record.stop_skipping()
            if early_data:
                raise IllegalParameter("early_data in the ClientHello after a HelloRetryRequest")
        config = self._config

        # cipher suite: the server's preference
        suite = next((s for s in config.cipher_suites if s in hello.cipher_suites), None)
        if suite is None:
            raise HandshakeFailure("no cipher suite in common")
        if retry and suite != self._hrr_suite:
            raise IllegalParameter("second ClientHello changed the cipher suites")
        params = SUITES[suite]

        # key exchange: RFC 8446 (9.2) supported_groups and key_share go together
        groups_body = exts.get(E.supported_groups)
        shares_body = exts.get(E.key_share)
        if groups_body is None or shares_body is None:
            raise MissingExtension("supported_groups and key_share are both required")
        client_groups = wire.pull_uint16_list(groups_body)
        shares = wire.pull_client_key_shares(shares_body)
        share_groups = [g for g, _ in shares]
        if len(set(share_groups)) != len(share_groups):
            raise IllegalParameter("two key shares for one group")
        if any(g not in client_groups for g in share_groups):
            raise IllegalParameter("key share for a group not in supported_groups")
        group = next((g for g in config.groups if g in client_groups), None)
        if group is None:
            raise HandshakeFailure("no key exchange group in common")
        if retry:
            # RFC 8446 (4.1.2): the retried ClientHello has exactly the requested share.
            if share_groups != [self._hrr_group]:
                raise IllegalParameter("second ClientHello lacks the requested key share")
        peer_share = next((k for g, k in shares if g == group), None)

        # signature_algorithms, server_name, ALPN, PSK modes
        schemes_body = exts.get(E.signature_algorithms)
        client_schemes = wire.pull_uint16_list(schemes_body) if schemes_body is not None else []
        name_body = exts.get(E.server_name)
        self._sni = wire.pull_server_name_list(name_body) if name_body is not None else None
        modes_body = exts.get(E.psk_key_exchange_modes)
        self._client_psk_modes = wire.pull_psk_modes(modes_body) if modes_body is not None else []
        alpn_body = exts.get(E.application_layer_protocol_negotiation)
        self.alpn_protocol = None
        if alpn_body is not None:
            offered = wire.pull_alpn(alpn_body)
            if config.alpn_protocols:
                wanted = [p.encode() for p in config.alpn_protocols]
                chosen = next((p for p in wanted if p in offered), None)
                # RFC 7301 (3.2): no protocol in common is no_application_protocol.
                if chosen is None:
                    raise NoApplicationProtocol("no ALPN protocol in common")
                self.alpn_protocol = chosen.decode()

        if peer_share is None:
            self._send_hello_retry_request(hello, message, suite, group)
            if early_data:
                # RFC 8446 (4.2.10): after a HelloRetryRequest, skip every application_data
                # record up to max_early_data_size.
                self._record.skip_early_data(config.max_early_data_size)
            return

        # resumption
        psk: bytes | None = None
        selected_identity = 0
        psk_body = exts.get(E.pre_shared_key)
        ticket_state: _TicketState | None = None
        if psk_body is not None:
            if modes_body is None:
                # RFC 8446 (4.2.9): a PSK offer needs psk_key_exchange_modes.
                raise MissingExtension("pre_shared_key without psk_key_exchange_modes")
            offered_psks = wire.pull_offered_psks(psk_body)
            if len(offered_psks.identities) != len(offered_psks.binders):
                raise IllegalParameter("PSK identities and binders differ in number")
            if PskKeyExchangeMode.psk_dhe_ke in self._client_psk_modes and config.session_tickets:
                found = self._select_ticket(message, offered_psks, params)
                if found is not None:
                    selected_identity, ticket_state = found
                    psk = ticket_state.psk

        chosen_cert: tuple[tuple[x509.Certificate, ...], PrivateKey] | None = None
        scheme: SignatureScheme | None = None
        if psk is None:
            if schemes_body is None:
                raise MissingExtension("ClientHello without signature_algorithms")
            chosen_cert = config.certificate_for(self._sni)
            if chosen_cert is None:
                raise UnrecognizedName(f"no certificate for {self._sni!r}")
            key_schemes = schemes_for_key(chosen_cert[1])
            scheme = next(
                (
                    s
                    for s in config.signature_algorithms
                    if s in client_schemes and s in key_schemes
                ),
                None,
            )
            if scheme is None:
                raise HandshakeFailure("no signature scheme in common for the certificate")

        self._transcript.add(message)
        self._set_state(TLSState.RECVD_CH)
        private, public = _generate_key_share(group, self._random)
        shared = _shared_secret(group, private, peer_share)
        server_random = self._random(32)
        self._set_state(TLSState.NEGOTIATED)

        sh_extensions: wire.Extensions = [
            (E.key_share, wire.push_server_key_share(group, public)),
            (E.supported_versions, wire.push_uint16_body(TLS_1_3)),
        ]
        if psk is not None:
            sh_extensions.append((E.pre_shared_key, wire.push_uint16_body(selected_identity)))
        server_hello = wire.ServerHello(
            random=server_random,
            legacy_session_id_echo=hello.legacy_session_id,
            cipher_suite=suite,
            extensions=sh_extensions,
        )
        self._send_handshake(
            wire.encode_message(HandshakeType.server_hello, wire.push_server_hello, server_hello)
        )
        self._send_compatibility_ccs(hello)

        self._params = params
        self._schedule = KeySchedule(params, psk)
        self._schedule.extract_handshake(shared)
        client_secret, server_secret = self._schedule.handshake_traffic_secrets(
            self._transcript.digest(self._hash)
        )
        self._client_hs_secret, self._server_hs_secret = client_secret, server_secret
        self._set_write_secret(server_secret)

        ee_extensions: wire.Extensions = []
        if self.alpn_protocol is not None:
            ee_extensions.append(
                (
                    E.application_layer_protocol_negotiation,
                    wire.push_alpn([self.alpn_protocol.encode()]),
                )
            )
        self._send_handshake(
            wire.encode_message(
                HandshakeType.encrypted_extensions,
                wire.push_encrypted_extensions,
                wire.EncryptedExtensions(ee_extensions),
            )
        )
        if ticket_state is not None:
            self.session_resumed = True
            if ticket_state.client_certificate:
                self.peer_certificate = x509.load_der_x509_certificate(
                    ticket_state.client_certificate
                )
                self._peer_verified = True
        else:
            assert chosen_cert is not None and scheme is not None
            if config.verify_client:
                self._requested_client_cert = True
                request = wire.CertificateRequest(
                    b"",
                    [
                        (
                            E.signature_algorithms,
                            wire.push_uint16_list(config.signature_algorithms),
                        )
                    ],
                )
                self._send_handshake(
                    wire.encode_message(
                        HandshakeType.certificate_request, wire.push_certificate_request, request
                    )
                )
            chain, key = chosen_cert
            entries = [
                wire.CertificateEntry(c.public_bytes(serialization.Encoding.DER)) for c in chain
            ]
            self._send_handshake(
                wire.encode_message(
                    HandshakeType.certificate,
                    wire.push_certificate,
                    wire.CertificateMessage(b"", entries),
                )
            )
            self._send_certificate_verify(key, scheme, _SERVER_CV_CONTEXT)
        verify_data = finished_verify_data(
            self._hash, server_secret, self._transcript.digest(self._hash)
        )
        self._send_handshake(
            wire.encode_message(
                HandshakeType.finished, wire.push_finished, wire.Finished(verify_data)
            )
        )
        self._schedule.extract_master()
        client_app, server_app = self._schedule.application_traffic_secrets(
            self._transcript.digest(self._hash)
        )
        self._read_app_secret, self._write_app_secret = client_app, server_app
        self._set_write_secret(server_app)
        self._set_read_secret(client_secret)
        if early_data:
            # RFC 8446 (4.2.10): declined (no early_data in EncryptedExtensions), so records
            # that do not decrypt with the handshake key are the client's 0-RTT data: skipped
            # up to max_early_data_size, until the first record that decrypts.
            self._record.skip_early_data(config.max_early_data_size)
        self._set_state(TLSState.WAIT_FLIGHT2)
        self._set_state(
            TLSState.WAIT_CERT if self._requested_client_cert else TLSState.WAIT_FINISHED
        )

    def _send_compatibility_ccs(self, hello: wire.ClientHello) -> None:
        # RFC 8446 (D.4): with a client in compatibility mode (non-empty session id) the
        # server sends one change_cipher_spec after its first handshake message.
        if hello.legacy_session_id and not self._ccs_sent:
            self._ccs_sent = True
            self._record.send_unprotected(ContentType.change_cipher_spec, b"\x01")

    def _send_hello_retry_request(
        self, hello: wire.ClientHello, message: bytes, suite: CipherSuite, group: Group
    ) -> None:
        # RFC 8446 (4.1.4): a second ClientHello that still lacks the share is refused
        # (checked above); here the first one is answered.
        if self._hrr_group is not None:
            raise IllegalParameter("second ClientHello lacks the requested key share")
        E = ExtensionType
        self._hrr_group = group
        self._hrr_suite = suite
        self._first_hello = hello
        params = SUITES[suite]
        self._transcript.add(message)
        self._transcript.replace_with_message_hash(params.hash_name)
        retry = wire.ServerHello(
            random=HELLO_RETRY_REQUEST_RANDOM,
            legacy_session_id_echo=hello.legacy_session_id,
            cipher_suite=suite,
            extensions=[
                (E.supported_versions, wire.push_uint16_body(TLS_1_3)),
                (E.key_share, wire.push_uint16_body(group)),
            ],
        )
        self._send_handshake(
            wire.encode_message(HandshakeType.server_hello, wire.push_server_hello, retry)
        )
        self._send_compatibility_ccs(hello)
        # RFC 8446 (A.2): the server goes back to START for the second ClientHello.

    def _select_ticket(
        self, message: bytes, offered: wire.OfferedPsks, params: CipherSuiteParams
    ) -> tuple[int, _TicketState] | None:
        """The first offered ticket of ours that may resume this connection, with its index,
        after its binder is checked; None for a full handshake."""
        now_ms = int(self._config.wall_clock() * 1000)
        for index, (identity, _obfuscated_age) in enumerate(offered.identities):
            state = _open_ticket(self._config.ticket_key, identity)
            if state is None:
                continue
            # RFC 8446 (4.2.11): the PSK's hash must be the negotiated suite's.
            if SUITES[state.suite].hash_name != params.hash_name:
                continue
            if not 0 <= now_ms - state.created_ms < state.lifetime * 1000:
                continue
            # RFC 8446 (4.6.1, 4.2.11): resume only for the server name of the session.
            if state.server_name != (self._sni.lower() if self._sni else None):
                continue
            truncated = message[: -wire.binders_length(offered.binders)]
            expected = KeySchedule(params, state.psk).binder(
                self._transcript.digest_with(params.hash_name, truncated)
            )
            # RFC 8446 (4.2.11): a binder that does not verify is a decrypt_error.
            if not hmac.compare_digest(expected, offered.binders[index]):
                raise DecryptError("PSK binder does not verify")
            return index, state
        return None

    def _server_certificate(self, message: bytes, body: bytes) -> None:
        certificate = wire.parse_message(wire.pull_certificate, body)
        if certificate.context:
            raise IllegalParameter("certificate_request_context does not match")
        self._transcript.add(message)
        if not certificate.entries:
            # RFC 8446 (4.4.2.4, 6.2): no certificate when one is required.
            if self._config.verify_client is True:
                raise CertificateRequired("client sent no certificate")
            self._set_state(TLSState.WAIT_FINISHED)
            return
        chain = parse_chain(entry.cert_data for entry in certificate.entries)
        verify_chain(
            chain,
            self._config.trusted_certificates,
            now=self._config.wall_clock(),
            client=True,
            strict=self._config.strict,
        )
        self._peer_verified = True
        self.peer_certificate_chain = chain
        self.peer_certificate = chain[0]
        self._set_state(TLSState.WAIT_CV)

    def _server_certificate_verify(self, message: bytes, body: bytes) -> None:
        self._verify_certificate_verify(
            body, _CLIENT_CV_CONTEXT, [int(s) for s in self._config.signature_algorithms]
        )
        self._transcript.add(message)
        self._set_state(TLSState.WAIT_FINISHED)

    def _server_finished(self, message: bytes, body: bytes) -> None:
        assert self._schedule is not None
        expected = finished_verify_data(
            self._hash, self._client_hs_secret, self._transcript.digest(self._hash)
        )
        self._check_finished(expected, body, "client")
        self._peer_finished = True
        self._transcript.add(message)
        self._set_read_secret(self._read_app_secret)
        self._resumption_master = self._schedule.resumption_master_secret(
            self._transcript.digest(self._hash)
        )
        self._complete_handshake()
        if (
            self._config.session_tickets
            and PskKeyExchangeMode.psk_dhe_ke in self._client_psk_modes
            and not self._write_closed
        ):
            self._send_new_session_ticket()

    def _send_new_session_ticket(self) -> None:
        assert self._params is not None
        config = self._config
        nonce = self._tickets_sent.to_bytes(8, "big")
        self._tickets_sent += 1
        age_add = int.from_bytes(self._random(4), "big")
        state = _TicketState(
            suite=self._params.suite,
            psk=resumption_psk(self._hash, self._resumption_master, nonce),
            created_ms=int(self._config.wall_clock() * 1000),
            lifetime=config.ticket_lifetime,
            age_add=age_add,
            alpn=self.alpn_protocol,
            server_name=self._sni.lower() if self._sni else None,
            client_certificate=(
                self.peer_certificate.public_bytes(serialization.Encoding.DER)
                if self.peer_certificate is not None
                else None
            ),
        )
        ticket = wire.NewSessionTicket(
            ticket_lifetime=config.ticket_lifetime,
            ticket_age_add=age_add,
            ticket_nonce=nonce,
            ticket=_seal_ticket(config.ticket_key, self._random(12), state),
        )
        message = wire.encode_message(
            HandshakeType.new_session_ticket, wire.push_new_session_ticket, ticket
        )
        self._record.send(ContentType.handshake, message)


# The names these had before netstack.tls settled on one casing (TLSConfig's).
TlsConnection = TLSConnection
TlsEvent = TLSEvent
TlsSession = TLSSession
TlsState = TLSState
