"""TLS 1.3 wire formats: the buffer, handshake messages and extensions (RFC 8446).

Every structure is a ``pull_x``/``push_x`` pair over a :class:`Buffer`. Variable-length
vectors are read inside :meth:`Buffer.pull_block`, which checks that the vector lies inside
its parent and that its contents were consumed exactly, and written inside
:meth:`Buffer.push_block`, which fills in the length prefix. Anything malformed raises
:class:`~netstack.errors.ParseError` (the machine answers it with a ``decode_error`` alert).

Handshake message (RFC 8446, section 4)::

    struct {
        HandshakeType msg_type;    /* handshake type */
        uint24 length;             /* remaining bytes in message */
        select (Handshake.msg_type) { ... };
    } Handshake;

Messages keep their extensions as an ordered list of ``(type, body)`` pairs, so a message
re-encodes byte for byte; the typed extension bodies (section 4.2) have their own pull/push
pairs.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import TypeVar

from ..errors import ParseError

__all__ = [
    "HELLO_RETRY_REQUEST_RANDOM",
    "Buffer",
    "CertificateEntry",
    "CertificateMessage",
    "CertificateRequest",
    "CertificateVerify",
    "CipherSuite",
    "ClientHello",
    "EncryptedExtensions",
    "ExtensionType",
    "Finished",
    "Group",
    "HandshakeType",
    "KeyUpdate",
    "NewSessionTicket",
    "OfferedPsks",
    "PskKeyExchangeMode",
    "ServerHello",
    "SignatureScheme",
]

T = TypeVar("T")

Extensions = list[tuple[int, bytes]]

#: ServerHello.random of a HelloRetryRequest: SHA-256("HelloRetryRequest") (RFC 8446, 4.1.3).
HELLO_RETRY_REQUEST_RANDOM = bytes.fromhex(
    "cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c"
)
#: The last 8 bytes of ServerHello.random from a TLS 1.3 server negotiating TLS 1.2 or
#: below (RFC 8446, 4.1.3).
DOWNGRADE_TLS12 = b"DOWNGRD\x01"
DOWNGRADE_TLS11 = b"DOWNGRD\x00"

TLS_1_2 = 0x0303
TLS_1_3 = 0x0304


class HandshakeType(IntEnum):
    """RFC 8446, section 4."""

    client_hello = 1
    server_hello = 2
    new_session_ticket = 4
    end_of_early_data = 5
    encrypted_extensions = 8
    certificate = 11
    certificate_request = 13
    certificate_verify = 15
    finished = 20
    key_update = 24
    message_hash = 254


class ExtensionType(IntEnum):
    """RFC 8446, section 4.2 (and RFC 7301 for ALPN)."""

    server_name = 0
    max_fragment_length = 1
    status_request = 5
    supported_groups = 10
    signature_algorithms = 13
    use_srtp = 14
    heartbeat = 15
    application_layer_protocol_negotiation = 16
    signed_certificate_timestamp = 18
    client_certificate_type = 19
    server_certificate_type = 20
    padding = 21
    record_size_limit = 28
    pre_shared_key = 41
    early_data = 42
    supported_versions = 43
    cookie = 44
    psk_key_exchange_modes = 45
    certificate_authorities = 47
    oid_filters = 48
    post_handshake_auth = 49
    signature_algorithms_cert = 50
    key_share = 51


class CipherSuite(IntEnum):
    """RFC 8446, appendix B.4."""

    TLS_AES_128_GCM_SHA256 = 0x1301
    TLS_AES_256_GCM_SHA384 = 0x1302
    TLS_CHACHA20_POLY1305_SHA256 = 0x1303


class Group(IntEnum):
    """Key exchange groups (RFC 8446, 4.2.7)."""

    secp256r1 = 0x0017
    secp384r1 = 0x0018
    secp521r1 = 0x0019
    x25519 = 0x001D
    x448 = 0x001E


class SignatureScheme(IntEnum):
    """RFC 8446, 4.2.3."""

    rsa_pkcs1_sha256 = 0x0401
    rsa_pkcs1_sha384 = 0x0501
    rsa_pkcs1_sha512 = 0x0601
    ecdsa_secp256r1_sha256 = 0x0403
    ecdsa_secp384r1_sha384 = 0x0503
    ecdsa_secp521r1_sha512 = 0x0603
    rsa_pss_rsae_sha256 = 0x0804
    rsa_pss_rsae_sha384 = 0x0805
    rsa_pss_rsae_sha512 = 0x0806
    ed25519 = 0x0807
    ed448 = 0x0808
    rsa_pss_pss_sha256 = 0x0809
    rsa_pss_pss_sha384 = 0x080A
    rsa_pss_pss_sha512 = 0x080B


class PskKeyExchangeMode(IntEnum):
    """RFC 8446, 4.2.9."""

    psk_ke = 0
    psk_dhe_ke = 1


class KeyUpdateRequest(IntEnum):
    """RFC 8446, 4.6.3."""

    update_not_requested = 0
    update_requested = 1


_UINT16 = struct.Struct("!H")
_UINT32 = struct.Struct("!I")
_UINT64 = struct.Struct("!Q")


class Buffer:
    """A cursor over bytes being read (``pull_*``) and a growing bytearray being written
    (``push_*``).

    Args:
        data: the bytes to read; empty for a buffer that is only written.
    """

    __slots__ = ("_data", "_end", "_out", "_pos")

    def __init__(self, data: bytes | bytearray | memoryview = b"") -> None:
        self._data = bytes(data)
        self._pos = 0
        self._end = len(self._data)
        self._out = bytearray()

    # -- reading ---------------------------------------------------------------------------

    @property
    def position(self) -> int:
        """How many bytes have been read."""
        return self._pos

    def eof(self) -> bool:
        """True when everything up to the current limit has been read."""
        return self._pos >= self._end

    def remaining(self) -> int:
        return self._end - self._pos

    def pull_bytes(self, length: int) -> bytes:
        end = self._pos + length
        if length < 0 or end > self._end:
            raise ParseError("truncated", f"wanted {length} bytes, {self.remaining()} left")
        value = self._data[self._pos : end]
        self._pos = end
        return value

    def pull_uint8(self) -> int:
        if self._pos >= self._end:
            raise ParseError("truncated", "wanted 1 byte")
        value = self._data[self._pos]
        self._pos += 1
        return value

    def pull_uint16(self) -> int:
        return int(_UINT16.unpack(self.pull_bytes(2))[0])

    def pull_uint24(self) -> int:
        return int.from_bytes(self.pull_bytes(3), "big")

    def pull_uint32(self) -> int:
        return int(_UINT32.unpack(self.pull_bytes(4))[0])

    def pull_uint64(self) -> int:
        return int(_UINT64.unpack(self.pull_bytes(8))[0])

    def pull_uint(self, size: int) -> int:
        return int.from_bytes(self.pull_bytes(size), "big")

    def pull_rest(self) -> bytes:
        return self.pull_bytes(self.remaining())

    def pull_block(self, size: int) -> _PullBlock:
        """Read a vector whose length is a ``size``-byte prefix; use as ``with
        buf.pull_block(2) as length:``, and the body must read exactly that many bytes.

        Raises:
            ParseError: the vector runs past its parent, or its body was not consumed exactly.
        """
        length = self.pull_uint(size)
        end = self._pos + length
        if end > self._end:
            raise ParseError("truncated", f"vector of {length} bytes, {self.remaining()} left")
        block = _PullBlock(self, self._end, length)
        self._end = end
        return block

    def pull_opaque(self, size: int, *, minimum: int = 0) -> bytes:
        """A length-prefixed byte string."""
        length = self.pull_uint(size)
        if length < minimum:
            raise ParseError("too_short", f"vector of {length} bytes, minimum {minimum}")
        return self.pull_bytes(length)

    def pull_list(
        self, size: int, pull_item: Callable[[Buffer], T], *, minimum: int = 0
    ) -> list[T]:
        """A length-prefixed vector of items, each read by ``pull_item``."""
        items: list[T] = []
        with self.pull_block(size) as length:
            if length < minimum:
                raise ParseError("too_short", f"vector of {length} bytes, minimum {minimum}")
            while not self.eof():
                items.append(pull_item(self))
        return items

    # -- writing ---------------------------------------------------------------------------

    @property
    def data(self) -> bytes:
        """Everything written so far."""
        return bytes(self._out)

    def push_bytes(self, value: bytes | bytearray | memoryview) -> None:
        self._out += value

    def push_uint8(self, value: int) -> None:
        self._out.append(value)

    def push_uint16(self, value: int) -> None:
        self._out += _UINT16.pack(value)

    def push_uint24(self, value: int) -> None:
        self._out += value.to_bytes(3, "big")

    def push_uint32(self, value: int) -> None:
        self._out += _UINT32.pack(value)

    def push_uint64(self, value: int) -> None:
        self._out += _UINT64.pack(value)

    def push_uint(self, size: int, value: int) -> None:
        self._out += value.to_bytes(size, "big")

    def push_block(self, size: int) -> _PushBlock:
        """Write a vector with a ``size``-byte length prefix, filled in when the ``with``
        block ends.

        Raises:
            ValueError: the body is too long for its prefix.
        """
        start = len(self._out)
        self._out += bytes(size)
        return _PushBlock(self._out, start, size)

    def push_opaque(self, size: int, value: bytes) -> None:
        with self.push_block(size):
            self._out += value

    def push_list(
        self, size: int, push_item: Callable[[Buffer, T], None], items: Sequence[T]
    ) -> None:
        with self.push_block(size):
            for item in items:
                push_item(self, item)


class _PullBlock:
    __slots__ = ("_buf", "_length", "_outer")

    def __init__(self, buf: Buffer, outer: int, length: int) -> None:
        self._buf = buf
        self._outer = outer
        self._length = length

    def __enter__(self) -> int:
        return self._length

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: object,
    ) -> None:
        if exc_type is not None:
            return
        buf = self._buf
        if buf._pos != buf._end:
            raise ParseError("bad_length", "vector not consumed exactly")
        buf._end = self._outer


class _PushBlock:
    __slots__ = ("_out", "_size", "_start")

    def __init__(self, out: bytearray, start: int, size: int) -> None:
        self._out = out
        self._start = start
        self._size = size

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: object,
    ) -> None:
        if exc_type is not None:
            return
        length = len(self._out) - self._start - self._size
        if length >= 1 << (8 * self._size):
            raise ValueError(f"vector of {length} bytes does not fit a {self._size}-byte length")
        self._out[self._start : self._start + self._size] = length.to_bytes(self._size, "big")


def _pull_u8(buf: Buffer) -> int:
    return buf.pull_uint8()


def _pull_u16(buf: Buffer) -> int:
    return buf.pull_uint16()


def _push_u8(buf: Buffer, value: int) -> None:
    buf.push_uint8(value)


def _push_u16(buf: Buffer, value: int) -> None:
    buf.push_uint16(value)


# -- handshake framing -----------------------------------------------------------------------


def pull_handshake_header(data: bytes | bytearray, offset: int = 0) -> tuple[int, int] | None:
    """``(msg_type, length)`` of the handshake message at ``offset``, or None if fewer than
    four bytes are there."""
    if len(data) - offset < 4:
        return None
    return data[offset], int.from_bytes(data[offset + 1 : offset + 4], "big")


def push_handshake(msg_type: HandshakeType, body: bytes) -> bytes:
    """A whole handshake message: type, uint24 length, body."""
    if len(body) >= 1 << 24:
        raise ValueError("handshake message too long")
    return bytes([msg_type]) + len(body).to_bytes(3, "big") + body


# -- extensions ------------------------------------------------------------------------------


def _pull_extension(buf: Buffer) -> tuple[int, bytes]:
    ext_type = buf.pull_uint16()
    return ext_type, buf.pull_opaque(2)


def pull_extensions(buf: Buffer) -> Extensions:
    """An extension block; two extensions of one type are a ParseError (RFC 8446, 4.2)."""
    extensions = buf.pull_list(2, _pull_extension)
    seen = {ext_type for ext_type, _ in extensions}
    if len(seen) != len(extensions):
        raise ParseError("duplicate_extension")
    return extensions


def push_extensions(buf: Buffer, extensions: Extensions) -> None:
    with buf.push_block(2):
        for ext_type, body in extensions:
            buf.push_uint16(ext_type)
            buf.push_opaque(2, body)


def find_extension(extensions: Extensions, ext_type: int) -> bytes | None:
    for found_type, body in extensions:
        if found_type == ext_type:
            return body
    return None


def _parse_whole(body: bytes, pull: Callable[[Buffer], T]) -> T:
    buf = Buffer(body)
    value = pull(buf)
    if not buf.eof():
        raise ParseError("trailing_bytes")
    return value


def pull_server_name_list(body: bytes) -> str | None:
    """The host_name in a ClientHello server_name extension (RFC 6066, 3); None if it
    names no host."""

    def pull(buf: Buffer) -> str | None:
        host: str | None = None
        with buf.pull_block(2) as length:
            if length == 0:
                raise ParseError("empty_server_name_list")
            while not buf.eof():
                name_type = buf.pull_uint8()
                name = buf.pull_opaque(2, minimum=1)
                if name_type == 0:
                    if host is not None:
                        raise ParseError("duplicate_server_name")
                    try:
                        host = name.decode("ascii")
                    except UnicodeDecodeError as exc:
                        raise ParseError("bad_server_name") from exc
        return host

    return _parse_whole(body, pull)


def push_server_name_list(host: str) -> bytes:
    buf = Buffer()
    with buf.push_block(2):
        buf.push_uint8(0)
        buf.push_opaque(2, host.encode("ascii"))
    return buf.data


def pull_uint16_list(body: bytes, *, minimum: int = 2) -> list[int]:
    """supported_groups, signature_algorithms, signature_algorithms_cert."""
    return _parse_whole(body, lambda b: b.pull_list(2, _pull_u16, minimum=minimum))


def push_uint16_list(values: Sequence[int]) -> bytes:
    buf = Buffer()
    buf.push_list(2, _push_u16, values)
    return buf.data


def pull_client_supported_versions(body: bytes) -> list[int]:
    return _parse_whole(body, lambda b: b.pull_list(1, _pull_u16, minimum=2))


def push_client_supported_versions(versions: Sequence[int]) -> bytes:
    buf = Buffer()
    buf.push_list(1, _push_u16, versions)
    return buf.data


def pull_uint16_body(body: bytes) -> int:
    """A body that is one uint16: supported_versions and key_share in a HelloRetryRequest,
    pre_shared_key in a ServerHello."""
    return _parse_whole(body, lambda b: b.pull_uint16())


def push_uint16_body(value: int) -> bytes:
    return _UINT16.pack(value)


def _pull_key_share_entry(buf: Buffer) -> tuple[int, bytes]:
    group = buf.pull_uint16()
    return group, buf.pull_opaque(2, minimum=1)


def _push_key_share_entry(buf: Buffer, entry: tuple[int, bytes]) -> None:
    buf.push_uint16(entry[0])
    buf.push_opaque(2, entry[1])


def pull_client_key_shares(body: bytes) -> list[tuple[int, bytes]]:
    return _parse_whole(body, lambda b: b.pull_list(2, _pull_key_share_entry))


def push_client_key_shares(entries: Sequence[tuple[int, bytes]]) -> bytes:
    buf = Buffer()
    buf.push_list(2, _push_key_share_entry, entries)
    return buf.data


def pull_server_key_share(body: bytes) -> tuple[int, bytes]:
    return _parse_whole(body, _pull_key_share_entry)


def push_server_key_share(group: int, key_exchange: bytes) -> bytes:
    buf = Buffer()
    _push_key_share_entry(buf, (group, key_exchange))
    return buf.data


def _pull_protocol_name(buf: Buffer) -> bytes:
    return buf.pull_opaque(1, minimum=1)


def _push_protocol_name(buf: Buffer, name: bytes) -> None:
    buf.push_opaque(1, name)


def pull_alpn(body: bytes) -> list[bytes]:
    """ProtocolNameList (RFC 7301, 3.1)."""
    return _parse_whole(body, lambda b: b.pull_list(2, _pull_protocol_name, minimum=2))


def push_alpn(names: Sequence[bytes]) -> bytes:
    buf = Buffer()
    buf.push_list(2, _push_protocol_name, names)
    return buf.data


def pull_psk_modes(body: bytes) -> list[int]:
    return _parse_whole(body, lambda b: b.pull_list(1, _pull_u8, minimum=1))


def push_psk_modes(modes: Sequence[int]) -> bytes:
    buf = Buffer()
    buf.push_list(1, _push_u8, modes)
    return buf.data


def pull_cookie(body: bytes) -> bytes:
    return _parse_whole(body, lambda b: b.pull_opaque(2, minimum=1))


def push_cookie(cookie: bytes) -> bytes:
    buf = Buffer()
    buf.push_opaque(2, cookie)
    return buf.data


@dataclass(slots=True)
class OfferedPsks:
    """The ClientHello pre_shared_key extension (RFC 8446, 4.2.11)."""

    identities: list[tuple[bytes, int]]  # (identity, obfuscated_ticket_age)
    binders: list[bytes]


def _pull_psk_identity(buf: Buffer) -> tuple[bytes, int]:
    identity = buf.pull_opaque(2, minimum=1)
    return identity, buf.pull_uint32()


def _push_psk_identity(buf: Buffer, item: tuple[bytes, int]) -> None:
    buf.push_opaque(2, item[0])
    buf.push_uint32(item[1])


def _pull_binder(buf: Buffer) -> bytes:
    return buf.pull_opaque(1, minimum=32)


def _push_binder(buf: Buffer, binder: bytes) -> None:
    buf.push_opaque(1, binder)


def pull_offered_psks(body: bytes) -> OfferedPsks:
    def pull(buf: Buffer) -> OfferedPsks:
        identities = buf.pull_list(2, _pull_psk_identity, minimum=7)
        binders = buf.pull_list(2, _pull_binder, minimum=33)
        return OfferedPsks(identities, binders)

    return _parse_whole(body, pull)


def push_offered_psks(psks: OfferedPsks) -> bytes:
    buf = Buffer()
    buf.push_list(2, _push_psk_identity, psks.identities)
    buf.push_list(2, _push_binder, psks.binders)
    return buf.data


def binders_length(binders: Sequence[bytes]) -> int:
    """The encoded size of a PskBinderEntry list, length prefix included: what a ClientHello
    is truncated by for the binder hash (RFC 8446, 4.2.11.2)."""
    return 2 + sum(1 + len(b) for b in binders)


# -- handshake messages ----------------------------------------------------------------------


@dataclass(slots=True)
class ClientHello:
    """RFC 8446, 4.1.2."""

    random: bytes
    legacy_session_id: bytes
    cipher_suites: list[int]
    extensions: Extensions
    legacy_compression_methods: bytes = b"\x00"
    legacy_version: int = TLS_1_2


def pull_client_hello(buf: Buffer) -> ClientHello:
    """The body of a ClientHello (after the four-byte handshake header)."""
    legacy_version = buf.pull_uint16()
    random = buf.pull_bytes(32)
    session_id = buf.pull_opaque(1)
    if len(session_id) > 32:
        raise ParseError("session_id_too_long")
    cipher_suites = buf.pull_list(2, _pull_u16, minimum=2)
    compression = buf.pull_opaque(1, minimum=1)
    # RFC 8446 (4.1.2): a ClientHello from an older client may stop before its extensions.
    extensions = [] if buf.eof() else pull_extensions(buf)
    return ClientHello(random, session_id, cipher_suites, extensions, compression, legacy_version)


def push_client_hello(buf: Buffer, hello: ClientHello) -> None:
    buf.push_uint16(hello.legacy_version)
    buf.push_bytes(hello.random)
    buf.push_opaque(1, hello.legacy_session_id)
    buf.push_list(2, _push_u16, hello.cipher_suites)
    buf.push_opaque(1, hello.legacy_compression_methods)
    push_extensions(buf, hello.extensions)


@dataclass(slots=True)
class ServerHello:
    """RFC 8446, 4.1.3; also a HelloRetryRequest (``random`` is
    :data:`HELLO_RETRY_REQUEST_RANDOM`)."""

    random: bytes
    legacy_session_id_echo: bytes
    cipher_suite: int
    extensions: Extensions
    legacy_compression_method: int = 0
    legacy_version: int = TLS_1_2

    @property
    def is_hello_retry_request(self) -> bool:
        return self.random == HELLO_RETRY_REQUEST_RANDOM


def pull_server_hello(buf: Buffer) -> ServerHello:
    legacy_version = buf.pull_uint16()
    random = buf.pull_bytes(32)
    session_id = buf.pull_opaque(1)
    if len(session_id) > 32:
        raise ParseError("session_id_too_long")
    cipher_suite = buf.pull_uint16()
    compression = buf.pull_uint8()
    extensions = [] if buf.eof() else pull_extensions(buf)
    return ServerHello(random, session_id, cipher_suite, extensions, compression, legacy_version)


def push_server_hello(buf: Buffer, hello: ServerHello) -> None:
    buf.push_uint16(hello.legacy_version)
    buf.push_bytes(hello.random)
    buf.push_opaque(1, hello.legacy_session_id_echo)
    buf.push_uint16(hello.cipher_suite)
    buf.push_uint8(hello.legacy_compression_method)
    push_extensions(buf, hello.extensions)


@dataclass(slots=True)
class EncryptedExtensions:
    """RFC 8446, 4.3.1."""

    extensions: Extensions = field(default_factory=list)


def pull_encrypted_extensions(buf: Buffer) -> EncryptedExtensions:
    return EncryptedExtensions(pull_extensions(buf))


def push_encrypted_extensions(buf: Buffer, message: EncryptedExtensions) -> None:
    push_extensions(buf, message.extensions)


@dataclass(slots=True)
class CertificateRequest:
    """RFC 8446, 4.3.2."""

    context: bytes
    extensions: Extensions


def pull_certificate_request(buf: Buffer) -> CertificateRequest:
    context = buf.pull_opaque(1)
    return CertificateRequest(context, pull_extensions(buf))


def push_certificate_request(buf: Buffer, message: CertificateRequest) -> None:
    buf.push_opaque(1, message.context)
    push_extensions(buf, message.extensions)


@dataclass(slots=True)
class CertificateEntry:
    """One certificate of a chain, DER (RFC 8446, 4.4.2)."""

    cert_data: bytes
    extensions: Extensions = field(default_factory=list)


def _pull_certificate_entry(buf: Buffer) -> CertificateEntry:
    data = buf.pull_opaque(3, minimum=1)
    return CertificateEntry(data, pull_extensions(buf))


def _push_certificate_entry(buf: Buffer, entry: CertificateEntry) -> None:
    buf.push_opaque(3, entry.cert_data)
    push_extensions(buf, entry.extensions)


@dataclass(slots=True)
class CertificateMessage:
    """RFC 8446, 4.4.2."""

    context: bytes
    entries: list[CertificateEntry]


def pull_certificate(buf: Buffer) -> CertificateMessage:
    context = buf.pull_opaque(1)
    return CertificateMessage(context, buf.pull_list(3, _pull_certificate_entry))


def push_certificate(buf: Buffer, message: CertificateMessage) -> None:
    buf.push_opaque(1, message.context)
    buf.push_list(3, _push_certificate_entry, message.entries)


@dataclass(slots=True)
class CertificateVerify:
    """RFC 8446, 4.4.3."""

    algorithm: int
    signature: bytes


def pull_certificate_verify(buf: Buffer) -> CertificateVerify:
    algorithm = buf.pull_uint16()
    # RFC 8446 (4.4.3): signature<0..2^16-1>: an empty one parses (and fails to verify).
    return CertificateVerify(algorithm, buf.pull_opaque(2))


def push_certificate_verify(buf: Buffer, message: CertificateVerify) -> None:
    buf.push_uint16(message.algorithm)
    buf.push_opaque(2, message.signature)


@dataclass(slots=True)
class Finished:
    """RFC 8446, 4.4.4. The body is verify_data, whose length is the hash's."""

    verify_data: bytes


def pull_finished(buf: Buffer) -> Finished:
    return Finished(buf.pull_rest())


def push_finished(buf: Buffer, message: Finished) -> None:
    buf.push_bytes(message.verify_data)


@dataclass(slots=True)
class NewSessionTicket:
    """RFC 8446, 4.6.1."""

    ticket_lifetime: int
    ticket_age_add: int
    ticket_nonce: bytes
    ticket: bytes
    extensions: Extensions = field(default_factory=list)


def pull_new_session_ticket(buf: Buffer) -> NewSessionTicket:
    lifetime = buf.pull_uint32()
    age_add = buf.pull_uint32()
    nonce = buf.pull_opaque(1)
    ticket = buf.pull_opaque(2, minimum=1)
    return NewSessionTicket(lifetime, age_add, nonce, ticket, pull_extensions(buf))


def push_new_session_ticket(buf: Buffer, message: NewSessionTicket) -> None:
    buf.push_uint32(message.ticket_lifetime)
    buf.push_uint32(message.ticket_age_add)
    buf.push_opaque(1, message.ticket_nonce)
    buf.push_opaque(2, message.ticket)
    push_extensions(buf, message.extensions)


@dataclass(slots=True)
class KeyUpdate:
    """RFC 8446, 4.6.3."""

    request_update: int


def pull_key_update(buf: Buffer) -> KeyUpdate:
    return KeyUpdate(buf.pull_uint8())


def push_key_update(buf: Buffer, message: KeyUpdate) -> None:
    buf.push_uint8(message.request_update)


def parse_message(pull: Callable[[Buffer], T], body: bytes) -> T:
    """Decode a whole handshake message body; bytes left over are a ParseError."""
    return _parse_whole(body, pull)


def encode_message(msg_type: HandshakeType, push: Callable[[Buffer, T], None], message: T) -> bytes:
    """A handshake message with its four-byte header."""
    buf = Buffer()
    push(buf, message)
    return push_handshake(msg_type, buf.data)
