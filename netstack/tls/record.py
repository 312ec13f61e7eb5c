"""The TLS 1.3 record layer (RFC 8446, section 5).

Framing of TLSPlaintext records, AEAD protection of TLSCiphertext records with a per-record
nonce (5.3), content-type recovery and padding removal (5.4), the size limits (5.1, 5.2),
one sequence number per direction reset at every key change, and fragmentation of
outgoing data into records of at most 2^14 bytes.

Record header (5.1)::

    struct {
        ContentType type;
        ProtocolVersion legacy_record_version;
        uint16 length;
        opaque fragment[TLSPlaintext.length];
    } TLSPlaintext;

Decoding errors are raised as the :class:`~netstack.tls.errors.TLSAlert` the RFC asks for
(``record_overflow``, ``bad_record_mac``, ``unexpected_message``); the connection sends it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from .errors import BadRecordMac, RecordOverflow, UnexpectedMessage
from .key_schedule import CipherSuiteParams, traffic_key_iv

__all__ = [
    "MAX_CIPHERTEXT",
    "MAX_PLAINTEXT",
    "ContentType",
    "Record",
    "RecordLayer",
]

#: The largest TLSPlaintext.fragment (RFC 8446, 5.1).
MAX_PLAINTEXT = 1 << 14
#: The largest TLSCiphertext.encrypted_record (RFC 8446, 5.2).
MAX_CIPHERTEXT = (1 << 14) + 256
#: The largest TLSInnerPlaintext: content, type byte and padding (RFC 8446, 5.4).
MAX_INNER_PLAINTEXT = (1 << 14) + 1

_HEADER = struct.Struct("!BHH")
HEADER_LEN = _HEADER.size


class ContentType(IntEnum):
    """RFC 8446, 5.1."""

    invalid = 0
    change_cipher_spec = 20
    alert = 21
    handshake = 22
    application_data = 23


_KNOWN_TYPES = frozenset(int(t) for t in ContentType if t != ContentType.invalid)


@dataclass(slots=True)
class Record:
    """One record received, decrypted when it was protected."""

    content_type: ContentType
    data: bytes
    protected: bool


class _Protection:
    """The AEAD state of one direction under one traffic secret."""

    __slots__ = ("_aead", "_iv", "params", "sequence")

    def __init__(self, params: CipherSuiteParams, secret: bytes) -> None:
        key, iv = traffic_key_iv(params, secret)
        self.params = params
        self._aead: AESGCM | ChaCha20Poly1305 = (
            AESGCM(key) if params.aead == "aesgcm" else ChaCha20Poly1305(key)
        )
        self._iv = int.from_bytes(iv, "big")
        self.sequence = 0

    def __repr__(self) -> str:
        return f"<Protection {self.params.suite.name} seq={self.sequence}>"

    def _nonce(self) -> bytes:
        # RFC 8446 (5.3): the 64-bit sequence number, left-padded to iv_length, XORed
        # with the static IV.
        if self.sequence >= 1 << 64:
            raise OverflowError("record sequence number exhausted")
        nonce = (self._iv ^ self.sequence).to_bytes(self.params.iv_len, "big")
        self.sequence += 1
        return nonce

    def seal(self, content_type: int, data: bytes, padding: int) -> bytes:
        inner = data + bytes([content_type]) + bytes(padding)
        length = len(inner) + self.params.tag_len
        header = _HEADER.pack(ContentType.application_data, 0x0303, length)
        return header + self._aead.encrypt(self._nonce(), inner, header)

    def open(self, header: bytes, payload: bytes) -> tuple[int, bytes]:
        if self.sequence >= 1 << 64:
            raise OverflowError("record sequence number exhausted")
        nonce = (self._iv ^ self.sequence).to_bytes(self.params.iv_len, "big")
        try:
            inner = self._aead.decrypt(nonce, payload, header)
        except InvalidTag:
            # The sequence number stays: a record skipped as declined early data (RFC 8446
            # 4.2.10) was never part of this direction's protected stream.
            raise BadRecordMac("record authentication failed") from None
        self.sequence += 1
        if len(inner) > MAX_INNER_PLAINTEXT:
            raise RecordOverflow("decrypted record longer than 2^14 + 1 bytes")
        # RFC 8446 (5.4): the content type is the last non-zero byte; all zeros is an error.
        stripped = inner.rstrip(b"\x00")
        if not stripped:
            raise UnexpectedMessage("protected record without a content type")
        return stripped[-1], stripped[:-1]


class RecordLayer:
    """Records in both directions; bytes in through :meth:`receive_data`, records out
    through :meth:`next_record`; records written with :meth:`send` and taken by
    :meth:`data_to_send`.

    Args:
        padding: bytes of zero padding added to every protected record (RFC 8446, 5.4).
    """

    def __init__(self, *, padding: int = 0) -> None:
        if not 0 <= padding < MAX_PLAINTEXT:
            raise ValueError("padding must be 0 to 2^14 - 1 bytes")
        self._in = bytearray()
        self._out = bytearray()
        self._read: _Protection | None = None
        self._write: _Protection | None = None
        self._padding = padding
        self._early_budget: int | None = None

    def __repr__(self) -> str:
        return f"<RecordLayer read={self._read!r} write={self._write!r}>"

    @property
    def read_protected(self) -> bool:
        return self._read is not None

    @property
    def write_protected(self) -> bool:
        return self._write is not None

    @property
    def read_sequence(self) -> int:
        return self._read.sequence if self._read else 0

    @property
    def write_sequence(self) -> int:
        return self._write.sequence if self._write else 0

    def set_read_secret(self, params: CipherSuiteParams, secret: bytes) -> None:
        """Decrypt from the next record on with the keys of ``secret`` (sequence 0)."""
        self._read = _Protection(params, secret)

    def set_write_secret(self, params: CipherSuiteParams, secret: bytes) -> None:
        """Encrypt from the next record on with the keys of ``secret`` (sequence 0)."""
        self._write = _Protection(params, secret)

    # -- receiving -------------------------------------------------------------------------

    def skip_early_data(self, limit: int) -> None:
        """Drop a client's declined 0-RTT records, up to ``limit`` bytes of early data
        (RFC 8446 4.2.10): with read keys set, the protected records that do not decrypt
        with them, until the first that does; without (after a HelloRetryRequest), every
        application_data record, until :meth:`stop_skipping`. More than ``limit`` is an
        unexpected_message."""
        self._early_budget = limit

    def stop_skipping(self) -> None:
        """Records that do not decrypt are bad_record_mac again."""
        self._early_budget = None

    @property
    def skipping_early_data(self) -> bool:
        return self._early_budget is not None

    def _drop_early_data(self, length: int, tag_len: int) -> None:
        assert self._early_budget is not None
        # The content of a record is at most its length less the tag and the type byte
        # (exactly that without padding), and at most 2^14 bytes (5.2).
        self._early_budget -= min(max(0, length - tag_len - 1), MAX_PLAINTEXT)
        if self._early_budget < 0:
            raise UnexpectedMessage("more early data than max_early_data_size (RFC 8446 4.2.10)")

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        self._in += data

    def buffered(self) -> int:
        """Bytes received and not yet returned as records."""
        return len(self._in)

    def next_record(self) -> Record | None:
        """The next whole record, or None until more bytes arrive.

        Raises:
            UnexpectedMessage: an unknown content type, or more early data skipped than
                allowed.
            RecordOverflow: a record longer than RFC 8446 (5.1, 5.2) allows.
            BadRecordMac: a protected record that does not authenticate.
        """
        while len(self._in) >= HEADER_LEN:
            content_type, _version, length = _HEADER.unpack_from(self._in)
            # RFC 8446 (5): an unexpected record type is an unexpected_message.
            if content_type not in _KNOWN_TYPES:
                raise UnexpectedMessage(f"unknown record content type {content_type}")
            encrypted = content_type == ContentType.application_data and (
                self._read is not None or self._early_budget is not None
            )
            # RFC 8446 (5.1, 5.2): overlong records are a record_overflow, detected at the
            # header so that no more than one record's worth is ever buffered.
            if length > (MAX_CIPHERTEXT if encrypted else MAX_PLAINTEXT):
                raise RecordOverflow(f"record of {length} bytes")
            if len(self._in) < HEADER_LEN + length:
                return None
            header = bytes(self._in[:HEADER_LEN])
            payload = bytes(self._in[HEADER_LEN : HEADER_LEN + length])
            del self._in[: HEADER_LEN + length]
            if not encrypted:
                return Record(ContentType(content_type), payload, False)
            if self._read is None:
                self._drop_early_data(length, 16)  # every TLS 1.3 AEAD has a 16-byte tag
                continue
            try:
                inner_type, data = self._read.open(header, payload)
            except BadRecordMac:
                if self._early_budget is None:
                    raise
                self._drop_early_data(length, self._read.params.tag_len)
                continue
            # RFC 8446 (4.2.10): the first record that decrypts starts the client's second
            # flight; no early data follows it.
            self._early_budget = None
            if inner_type not in _KNOWN_TYPES:
                raise UnexpectedMessage(f"unknown inner content type {inner_type}")
            return Record(ContentType(inner_type), data, True)
        return None

    # -- sending ---------------------------------------------------------------------------

    def send(self, content_type: ContentType, data: bytes, *, legacy_version: int = 0x0303) -> None:
        """Queue ``data`` as one or more records of ``content_type``, protected if a write
        secret is set. Empty data makes one empty record (only sensible for application
        data)."""
        view = memoryview(data)
        offset = 0
        # RFC 8446 (5.4): content, type byte and padding fit in 2^14 + 1 bytes.
        size = MAX_PLAINTEXT - self._padding if self._write is not None else MAX_PLAINTEXT
        while True:
            chunk = bytes(view[offset : offset + size])
            offset += len(chunk)
            if self._write is not None:
                self._out += self._write.seal(content_type, chunk, self._padding)
            else:
                self._out += _HEADER.pack(content_type, legacy_version, len(chunk)) + chunk
            if offset >= len(data):
                break

    def send_unprotected(self, content_type: ContentType, data: bytes) -> None:
        """A plaintext record whatever the write keys (the compatibility
        change_cipher_spec of RFC 8446, D.4)."""
        self._out += _HEADER.pack(content_type, 0x0303, len(data)) + data

    def data_to_send(self) -> bytes:
        data = bytes(self._out)
        self._out.clear()
        return data
