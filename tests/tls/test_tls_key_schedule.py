"""Key schedule pieces beyond the RFC 8448 trace: SHA-384, KeyUpdate, binders, HKDF."""

from __future__ import annotations

import hashlib
import hmac

from netstack.tls import CipherSuite
from netstack.tls.key_schedule import (
    SUITES,
    KeySchedule,
    Transcript,
    hkdf_expand,
    hkdf_expand_label,
    next_traffic_secret,
    traffic_key_iv,
)


def test_hkdf_rfc5869_case_1() -> None:
    # RFC 5869, appendix A.1.
    ikm = bytes.fromhex("0b" * 22)
    salt = bytes.fromhex("000102030405060708090a0b0c")
    info = bytes.fromhex("f0f1f2f3f4f5f6f7f8f9")
    prk = hmac.new(salt, ikm, "sha256").digest()
    assert prk.hex() == "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5"
    okm = hkdf_expand("sha256", prk, info, 42)
    assert okm.hex() == (
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
    )


def test_hkdf_expand_label_encoding() -> None:
    # HkdfLabel: uint16 length, opaque label<7..255> = "tls13 " + label, opaque context<0..255>.
    secret = bytes(32)
    expected = hkdf_expand("sha256", secret, b"\x00\x10\x09tls13 key\x00", 16)
    assert hkdf_expand_label("sha256", secret, b"key", b"", 16) == expected


def test_suite_parameters() -> None:
    assert SUITES[CipherSuite.TLS_AES_256_GCM_SHA384].hash_len == 48
    assert SUITES[CipherSuite.TLS_AES_256_GCM_SHA384].key_len == 32
    assert SUITES[CipherSuite.TLS_CHACHA20_POLY1305_SHA256].key_len == 32
    key, iv = traffic_key_iv(SUITES[CipherSuite.TLS_AES_256_GCM_SHA384], bytes(48))
    assert len(key) == 32 and len(iv) == 12


def test_sha384_schedule_sizes() -> None:
    schedule = KeySchedule(SUITES[CipherSuite.TLS_AES_256_GCM_SHA384])
    schedule.extract_handshake(bytes(32))
    client, server = schedule.handshake_traffic_secrets(hashlib.sha384(b"").digest())
    assert len(client) == len(server) == 48 and client != server
    schedule.extract_master()
    assert len(schedule.master_secret) == 48
    assert "secret" not in repr(schedule).lower()


def test_next_traffic_secret_chain() -> None:
    first = bytes(range(32))
    second = next_traffic_secret("sha256", first)
    assert second == hkdf_expand_label("sha256", first, b"traffic upd", b"", 32)
    assert next_traffic_secret("sha256", second) != second


def test_binder_depends_on_psk_and_transcript() -> None:
    params = SUITES[CipherSuite.TLS_AES_128_GCM_SHA256]
    a = KeySchedule(params, b"a" * 32).binder(hashlib.sha256(b"hello").digest())
    b = KeySchedule(params, b"b" * 32).binder(hashlib.sha256(b"hello").digest())
    c = KeySchedule(params, b"a" * 32).binder(hashlib.sha256(b"other").digest())
    assert len({a, b, c}) == 3 and len(a) == 32
    assert KeySchedule(params, b"a" * 32).binder_key() != KeySchedule(params, b"a" * 32).binder_key(
        external=True
    )


def test_transcript_message_hash() -> None:
    transcript = Transcript()
    transcript.add(b"\x01\x00\x00\x02hi")
    digest = hashlib.sha256(b"\x01\x00\x00\x02hi").digest()
    transcript.replace_with_message_hash("sha256")
    # RFC 8446 (4.4.1): message_hash, uint24 length, Hash(ClientHello1).
    assert transcript.digest("sha256") == hashlib.sha256(b"\xfe\x00\x00\x20" + digest).digest()
    assert (
        transcript.digest_with("sha256", b"x")
        == hashlib.sha256(b"\xfe\x00\x00\x20" + digest + b"x").digest()
    )
