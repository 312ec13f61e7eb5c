"""netstack's TLS 1.3 against OpenSSL (an ``ssl.SSLContext``) through whole stacks on an
in-memory link, both ways: every cipher suite, key exchange group and certificate key type
(so every signature scheme), client certificates, ALPN, SNI, resumption and KeyUpdate."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from netstack import Stack
from netstack.tls import TLSConfig, certs
from netstack.tls.wire import CipherSuite

SUITES = [s.name for s in CipherSuite]
GROUPS = ["x25519", "secp256r1"]
KEY_TYPES = ["ec", "rsa", "ed25519"]


@pytest.fixture(scope="module")
def pki() -> Iterator[dict[str, Any]]:
    ca, ca_key = certs.make_ca("engines CA")
    out: dict[str, Any] = {"ca": ca}
    for key_type in KEY_TYPES:
        out[key_type] = certs.issue(ca, ca_key, "server.test", dns_names=["server.test"],
                                    key_type=key_type)  # fmt: skip
    out["other"] = certs.issue(ca, ca_key, "other.test", dns_names=["other.test"])
    out["client"] = certs.issue(ca, ca_key, "client one", client=True)
    yield out


def _pem(cert: Any) -> str:
    return str(cert.public_bytes(serialization.Encoding.PEM).decode())


def openssl_server(pki: dict[str, Any], key_type: str, tmp: Any, **kw: Any) -> ssl.SSLContext:
    cert, key = pki[key_type]
    path = tmp / f"server-{key_type}.pem"
    certs.write_pem(path, cert, key)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(path)
    if kw.get("alpn"):
        ctx.set_alpn_protocols(kw["alpn"])
    if kw.get("require_client"):
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cadata=_pem(pki["ca"]))
    return ctx


def openssl_client(pki: dict[str, Any], tmp: Any, *, with_cert: bool = False) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cadata=_pem(pki["ca"]))
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    if with_cert:
        cert, key = pki["client"]
        path = tmp / "client.pem"
        certs.write_pem(path, cert, key)
        ctx.load_cert_chain(path)
    return ctx


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


async def exchange(a: Stack, port: int, config: Any, name: str = "server.test") -> Any:
    reader, writer = await a.open_connection("198.18.0.2", port, ssl=config, server_hostname=name)
    blob = bytes(range(256)) * 300
    writer.write(blob)
    assert await asyncio.wait_for(reader.readexactly(len(blob)), 5) == blob
    return writer.get_extra_info("cipher"), writer.get_extra_info("alpn_protocol"), writer, reader


@pytest.mark.parametrize("key_type", KEY_TYPES)
@pytest.mark.parametrize("group", GROUPS)
@pytest.mark.parametrize("suite", SUITES)
async def test_netstack_client_openssl_server(
    stack_pair: tuple[Stack, Stack], pki: dict[str, Any], tmp_path: Any, suite: str,
    group: str, key_type: str,
) -> None:  # fmt: skip
    a, b = stack_pair
    server = await b.start_server(echo, port=443, ssl=openssl_server(pki, key_type, tmp_path))
    client = TLSConfig.client(cafile=[pki["ca"]], cipher_suites=[suite], groups=[group])
    cipher, _, writer, _ = await exchange(a, 443, client)
    assert cipher[0] == suite and cipher[1] == "TLSv1.3"
    writer.close()
    server.close()


@pytest.mark.parametrize("key_type", KEY_TYPES)
@pytest.mark.parametrize("suite", SUITES)
async def test_openssl_client_netstack_server(
    stack_pair: tuple[Stack, Stack], pki: dict[str, Any], tmp_path: Any, suite: str,
    key_type: str,
) -> None:  # fmt: skip
    a, b = stack_pair
    cert, key = pki[key_type]
    config = TLSConfig.server([cert], key, cipher_suites=[suite], alpn_protocols=["http/1.1"])
    server = await b.start_server(echo, port=443, ssl=config)
    cipher, alpn, writer, _ = await exchange(a, 443, openssl_client(pki, tmp_path))
    assert cipher[0] == suite and alpn == "http/1.1"
    writer.close()
    server.close()


@pytest.mark.parametrize("direction", ["netstack-client", "netstack-server"])
async def test_client_certificates_across_engines(
    stack_pair: tuple[Stack, Stack], pki: dict[str, Any], tmp_path: Any, direction: str
) -> None:
    a, b = stack_pair
    names: list[str] = []

    async def whoami(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        subject = dict(x for rdn in writer.get_extra_info("peercert")["subject"] for x in rdn)
        names.append(subject["commonName"])
        writer.write(b"ok\n")
        await writer.drain()
        writer.close()

    cert, key = pki["client"]
    if direction == "netstack-client":
        server_ssl: Any = openssl_server(pki, "ec", tmp_path, require_client=True)
        with_cert: Any = TLSConfig.client(cafile=[pki["ca"]], certfile=[cert], keyfile=key)
        without: Any = TLSConfig.client(cafile=[pki["ca"]])
    else:
        server_cert, server_key = pki["ec"]
        server_ssl = TLSConfig.server([server_cert], server_key, cafile=[pki["ca"]],
                                      verify_client=True)  # fmt: skip
        with_cert = openssl_client(pki, tmp_path, with_cert=True)
        without = openssl_client(pki, tmp_path)
    server = await b.start_server(whoami, port=8443, ssl=server_ssl)
    reader, writer = await a.open_connection("198.18.0.2", 8443, ssl=with_cert,
                                             server_hostname="server.test")  # fmt: skip
    assert await asyncio.wait_for(reader.readline(), 5) == b"ok\n"
    writer.close()
    with pytest.raises((ssl.SSLError, ConnectionError)):
        reader, writer = await a.open_connection("198.18.0.2", 8443, ssl=without,
                                                 server_hostname="server.test")  # fmt: skip
        if not await asyncio.wait_for(reader.read(10), 5):
            raise ConnectionError("closed without an answer")
    assert names == ["client one"]
    server.close()


async def test_sni_picks_the_certificate(
    stack_pair: tuple[Stack, Stack], pki: dict[str, Any], tmp_path: Any
) -> None:
    a, b = stack_pair
    cert, key = pki["ec"]
    other_cert, other_key = pki["other"]
    config = TLSConfig.server(
        [cert], key, sni_certificates={"other.test": ([other_cert], other_key)}
    )
    server = await b.start_server(echo, port=443, ssl=config)
    for name in ("server.test", "other.test"):
        _, _, writer, _ = await exchange(a, 443, openssl_client(pki, tmp_path), name=name)
        subject = dict(x for rdn in writer.get_extra_info("peercert")["subject"] for x in rdn)
        assert subject["commonName"] == name
        writer.close()
    server.close()


async def test_resumption_and_key_update(
    stack_pair: tuple[Stack, Stack], pki: dict[str, Any]
) -> None:
    a, b = stack_pair
    cert, key = pki["ec"]
    server = await b.start_server(echo, port=443, ssl=TLSConfig.server([cert], key))
    client = TLSConfig.client(cafile=[pki["ca"]])
    _, _, first, first_reader = await exchange(a, 443, client)
    await asyncio.sleep(0.05)  # the session ticket arrives after the handshake
    assert first.get_extra_info("tls_session_resumed") is False
    first.transport.key_update()  # and ask the server to update its keys too
    first.write(b"after a key update\n")
    assert await asyncio.wait_for(first_reader.readline(), 5) == b"after a key update\n"
    first.close()
    _, _, second, _ = await exchange(a, 443, client)
    assert second.get_extra_info("tls_session_resumed") is True
    second.close()
    server.close()


async def test_unfinished_handshakes_are_capped(stack_pair: tuple[Stack, Stack], pki: Any) -> None:
    # Slow-loris: connections that never send a ClientHello. Past max_pending_handshakes the
    # oldest unfinished one is closed (a FIN, not a reset), so a real client still gets in.
    a, b = stack_pair
    cert, key = pki["ec"]
    config = TLSConfig.server([cert], key, max_pending_handshakes=3)

    async def hello(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"hello")
        await writer.drain()
        writer.close()

    server = await b.start_server(hello, port=443, ssl=config)
    idle = [await a.open_connection("198.18.0.2", 443) for _ in range(5)]
    # The two oldest were closed when the fourth and fifth arrived.
    for reader, _ in idle[:2]:
        assert await asyncio.wait_for(reader.read(), 5) == b""
    client = TLSConfig.client(cafile=[pki["ca"]])
    reader, writer = await a.open_connection("198.18.0.2", 443, ssl=client,
                                             server_hostname="server.test")  # fmt: skip
    assert await asyncio.wait_for(reader.read(), 5) == b"hello"
    writer.close()
    # ... which closed the third; the last two still wait (within the handshake timeout).
    assert await asyncio.wait_for(idle[2][0].read(), 5) == b""
    assert not idle[3][0].at_eof() and not idle[4][0].at_eof()
    for _, w in idle:
        w.close()
    server.close()


def test_max_pending_handshakes_is_checked() -> None:
    with pytest.raises(ValueError, match="max_pending_handshakes"):
        TLSConfig(max_pending_handshakes=0)
    assert TLSConfig().max_pending_handshakes == 256
    assert TLSConfig(max_pending_handshakes=None).max_pending_handshakes is None
