"""The TLS 1.3 key schedule (RFC 8446, section 7).

HKDF-Extract and HKDF-Expand (RFC 5869) on :mod:`hmac`, ``HKDF-Expand-Label`` and
``Derive-Secret`` (7.1), the secrets of one handshake (:class:`KeySchedule`), traffic keys
and IVs (7.3), Finished keys (4.4.4), the next application traffic secret of a KeyUpdate
(7.2), resumption PSKs (4.6.1) and PSK binder keys (4.2.11.2).

Secrets are plain ``bytes``; nothing here logs them, and :class:`KeySchedule`'s ``repr``
shows none of them.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from .wire import CipherSuite

__all__ = [
    "CipherSuiteParams",
    "KeySchedule",
    "SUITES",
    "Transcript",
    "derive_secret",
    "finished_verify_data",
    "hkdf_expand",
    "hkdf_expand_label",
    "hkdf_extract",
    "next_traffic_secret",
    "resumption_psk",
    "traffic_key_iv",
]


@dataclass(frozen=True, slots=True)
class CipherSuiteParams:
    """What a cipher suite fixes: the hash, the AEAD and its key length (RFC 8446, B.4)."""

    suite: CipherSuite
    hash_name: str
    hash_len: int
    aead: str  # "aesgcm" or "chacha20poly1305"
    key_len: int
    iv_len: int = 12
    tag_len: int = 16

    @property
    def secret_bits(self) -> int:
        """The symmetric strength, as ``ssl.SSLObject.cipher()`` reports it."""
        return self.key_len * 8


SUITES: dict[CipherSuite, CipherSuiteParams] = {
    CipherSuite.TLS_AES_128_GCM_SHA256: CipherSuiteParams(
        CipherSuite.TLS_AES_128_GCM_SHA256, "sha256", 32, "aesgcm", 16
    ),
    CipherSuite.TLS_AES_256_GCM_SHA384: CipherSuiteParams(
        CipherSuite.TLS_AES_256_GCM_SHA384, "sha384", 48, "aesgcm", 32
    ),
    CipherSuite.TLS_CHACHA20_POLY1305_SHA256: CipherSuiteParams(
        CipherSuite.TLS_CHACHA20_POLY1305_SHA256, "sha256", 32, "chacha20poly1305", 32
    ),
}


def hkdf_extract(hash_name: str, salt: bytes, ikm: bytes) -> bytes:
    """HKDF-Extract (RFC 5869, 2.2); an empty salt is HashLen zeros."""
    if not salt:
        salt = bytes(hashlib.new(hash_name).digest_size)
    return hmac.new(salt, ikm, hash_name).digest()


def hkdf_expand(hash_name: str, prk: bytes, info: bytes, length: int) -> bytes:
    """HKDF-Expand (RFC 5869, 2.3)."""
    output = b""
    block = b""
    counter = 1
    while len(output) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hash_name).digest()
        output += block
        counter += 1
    return output[:length]


def hkdf_expand_label(
    hash_name: str, secret: bytes, label: bytes, context: bytes, length: int
) -> bytes:
    """HKDF-Expand-Label (RFC 8446, 7.1): the label gets the prefix ``"tls13 "``."""
    full_label = b"tls13 " + label
    info = (
        length.to_bytes(2, "big")
        + bytes([len(full_label)])
        + full_label
        + bytes([len(context)])
        + context
    )
    return hkdf_expand(hash_name, secret, info, length)


def derive_secret(hash_name: str, secret: bytes, label: bytes, transcript_hash: bytes) -> bytes:
    """Derive-Secret (RFC 8446, 7.1), given the transcript hash already computed."""
    return hkdf_expand_label(hash_name, secret, label, transcript_hash, len(transcript_hash))


def empty_hash(hash_name: str) -> bytes:
    return hashlib.new(hash_name).digest()


def traffic_key_iv(params: CipherSuiteParams, secret: bytes) -> tuple[bytes, bytes]:
    """The write key and IV for a traffic secret (RFC 8446, 7.3)."""
    key = hkdf_expand_label(params.hash_name, secret, b"key", b"", params.key_len)
    iv = hkdf_expand_label(params.hash_name, secret, b"iv", b"", params.iv_len)
    return key, iv


def finished_verify_data(hash_name: str, base_key: bytes, transcript_hash: bytes) -> bytes:
    """Finished.verify_data (RFC 8446, 4.4.4): HMAC(finished_key, Transcript-Hash)."""
    size = len(transcript_hash)
    finished_key = hkdf_expand_label(hash_name, base_key, b"finished", b"", size)
    return hmac.new(finished_key, transcript_hash, hash_name).digest()


def next_traffic_secret(hash_name: str, secret: bytes) -> bytes:
    """application_traffic_secret_N+1 (RFC 8446, 7.2)."""
    size = hashlib.new(hash_name).digest_size
    return hkdf_expand_label(hash_name, secret, b"traffic upd", b"", size)


def resumption_psk(hash_name: str, resumption_master_secret: bytes, nonce: bytes) -> bytes:
    """The PSK of a ticket (RFC 8446, 4.6.1)."""
    size = hashlib.new(hash_name).digest_size
    return hkdf_expand_label(hash_name, resumption_master_secret, b"resumption", nonce, size)


class Transcript:
    """The handshake messages so far, hashed on demand (RFC 8446, 4.4.1).

    The hash is only known once the cipher suite is, so the bytes are kept; a
    HelloRetryRequest replaces ClientHello1 with a ``message_hash`` message.
    """

    __slots__ = ("_data",)

    def __init__(self) -> None:
        self._data = bytearray()

    def __repr__(self) -> str:
        return f"<Transcript {len(self._data)} bytes>"

    def add(self, message: bytes) -> None:
        self._data += message

    def digest(self, hash_name: str) -> bytes:
        return hashlib.new(hash_name, self._data).digest()

    def digest_with(self, hash_name: str, extra: bytes) -> bytes:
        """The hash of the transcript followed by ``extra`` (not added)."""
        h = hashlib.new(hash_name, self._data)
        h.update(extra)
        return h.digest()

    def replace_with_message_hash(self, hash_name: str) -> None:
        """ClientHello1 becomes ``message_hash`` (RFC 8446, 4.4.1)."""
        digest = hashlib.new(hash_name, self._data).digest()
        self._data = bytearray(bytes([254, 0, 0, len(digest)]) + digest)


class KeySchedule:
    """The secrets of one connection (RFC 8446, 7.1).

    Args:
        params: the negotiated cipher suite.
        psk: the pre-shared key, or None for a full handshake (then zeros are used).
    """

    def __init__(self, params: CipherSuiteParams, psk: bytes | None = None) -> None:
        self.params = params
        hash_name = params.hash_name
        self._hash = hash_name
        zeros = bytes(params.hash_len)
        self.early_secret = hkdf_extract(hash_name, zeros, psk if psk is not None else zeros)
        self.handshake_secret = b""
        self.master_secret = b""

    def __repr__(self) -> str:
        return f"<KeySchedule {self.params.suite.name}>"

    def binder_key(self, *, external: bool = False) -> bytes:
        """binder_key (RFC 8446, 7.1): ``res binder`` for resumption PSKs."""
        label = b"ext binder" if external else b"res binder"
        return derive_secret(self._hash, self.early_secret, label, empty_hash(self._hash))

    def binder(self, truncated_transcript_hash: bytes, *, external: bool = False) -> bytes:
        """A PSK binder: a Finished computed over the truncated ClientHello (4.2.11.2)."""
        return finished_verify_data(
            self._hash, self.binder_key(external=external), truncated_transcript_hash
        )

    def extract_handshake(self, shared_secret: bytes) -> None:
        """Handshake Secret = HKDF-Extract(Derive-Secret(early, "derived", ""), (EC)DHE)."""
        derived = derive_secret(self._hash, self.early_secret, b"derived", empty_hash(self._hash))
        self.handshake_secret = hkdf_extract(self._hash, derived, shared_secret)

    def extract_master(self) -> None:
        """Master Secret = HKDF-Extract(Derive-Secret(handshake, "derived", ""), 0)."""
        derived = derive_secret(
            self._hash, self.handshake_secret, b"derived", empty_hash(self._hash)
        )
        self.master_secret = hkdf_extract(self._hash, derived, bytes(self.params.hash_len))

    def handshake_traffic_secrets(self, transcript_hash: bytes) -> tuple[bytes, bytes]:
        """(client, server) handshake traffic secrets, over ClientHello..ServerHello."""
        client = derive_secret(self._hash, self.handshake_secret, b"c hs traffic", transcript_hash)
        server = derive_secret(self._hash, self.handshake_secret, b"s hs traffic", transcript_hash)
        return client, server

    def application_traffic_secrets(self, transcript_hash: bytes) -> tuple[bytes, bytes]:
        """(client, server) application traffic secrets, over ClientHello..server Finished."""
        client = derive_secret(self._hash, self.master_secret, b"c ap traffic", transcript_hash)
        server = derive_secret(self._hash, self.master_secret, b"s ap traffic", transcript_hash)
        return client, server

    def exporter_master_secret(self, transcript_hash: bytes) -> bytes:
        return derive_secret(self._hash, self.master_secret, b"exp master", transcript_hash)

    def resumption_master_secret(self, transcript_hash: bytes) -> bytes:
        """Over ClientHello..client Finished."""
        return derive_secret(self._hash, self.master_secret, b"res master", transcript_hash)
