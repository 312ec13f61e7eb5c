"""TLS with OpenSSL contexts (``ssl.SSLContext``) over netstack's TCP on in-memory links:
``open_connection``/``start_server``/``create_connection`` with ``ssl=``, certificate and
hostname checks, client certificates, ALPN, ``get_extra_info``, and STARTTLS upgrades of a
plain connection on either event loop."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
from pathlib import Path
from typing import NamedTuple

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from netstack import Stack


class Pki(NamedTuple):
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _issue(
    subject: str, issuer_key: ec.EllipticCurvePrivateKey, issuer: str, *, ca: bool = False,
    sans: list[x509.GeneralName] | None = None, client: bool = False,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1()) if not ca else issuer_key
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        ).add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    else:
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(issuer_key, hashes.SHA256()), key


def _write(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey | None) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if key is not None:
        path.with_suffix(".key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca, _ = _issue("netstack test CA", ca_key, "netstack test CA", ca=True)
    server, server_key = _issue(
        "server.test", ca_key, "netstack test CA",
        sans=[x509.DNSName("server.test"), x509.IPAddress(ipaddress.ip_address("198.18.0.2"))],
    )  # fmt: skip
    client, client_key = _issue("client one", ca_key, "netstack test CA", client=True)
    _write(d / "ca.pem", ca, None)
    _write(d / "server.pem", server, server_key)
    _write(d / "client.pem", client, client_key)
    return Pki(d / "ca.pem", d / "server.pem", d / "server.key", d / "client.pem", d / "client.key")


def server_context(pki: Pki, *, require_client: bool = False) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki.server_cert, pki.server_key)
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    if require_client:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(pki.ca)
    return ctx


def client_context(pki: Pki, *, with_cert: bool = False) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki.ca))
    ctx.set_alpn_protocols(["http/1.1"])
    if with_cert:
        ctx.load_cert_chain(pki.client_cert, pki.client_key)
    return ctx


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


async def test_tls_echo_and_extra_info(stack_pair: tuple[Stack, Stack], pki: Pki) -> None:
    a, b = stack_pair
    server = await b.start_server(echo, port=443, ssl=server_context(pki))
    for host, name in (("198.18.0.2", None), ("198.18.0.2", "server.test")):
        reader, writer = await a.open_connection(
            host, 443, ssl=client_context(pki), server_hostname=name
        )
        assert writer.get_extra_info("alpn_protocol") == "http/1.1"
        cipher = writer.get_extra_info("cipher")
        assert cipher[1] == "TLSv1.3"
        peercert = writer.get_extra_info("peercert")
        assert ("commonName", "server.test") in [x for rdn in peercert["subject"] for x in rdn]
        assert isinstance(writer.get_extra_info("ssl_object"), ssl.SSLObject)
        assert writer.get_extra_info("peername") == ("198.18.0.2", 443)
        blob = bytes(range(256)) * 2048  # 512 KiB
        writer.write(blob)
        await writer.drain()
        back = await asyncio.wait_for(reader.readexactly(len(blob)), 10)
        assert back == blob
        writer.close()
        await writer.wait_closed()
    server.close()


async def test_certificate_checks(stack_pair: tuple[Stack, Stack], pki: Pki) -> None:
    a, b = stack_pair
    server = await b.start_server(echo, port=443, ssl=server_context(pki))
    with pytest.raises(ssl.SSLCertVerificationError):
        await a.open_connection("198.18.0.2", 443, ssl=client_context(pki),
                                server_hostname="other.test")  # fmt: skip
    with pytest.raises(ssl.SSLCertVerificationError):
        await a.open_connection("198.18.0.2", 443, ssl=True)  # the system's CAs: unknown CA
    with pytest.raises(ValueError):
        await a.open_connection("198.18.0.2", 443, server_hostname="x")  # without ssl
    with pytest.raises(TypeError):
        await a.open_connection("198.18.0.2", 443, ssl="yes")
    # The server carries on after failed handshakes.
    reader, writer = await a.open_connection("198.18.0.2", 443, ssl=client_context(pki))
    writer.write(b"still here\n")
    assert await asyncio.wait_for(reader.readline(), 5) == b"still here\n"
    writer.close()
    server.close()


async def test_client_certificates(stack_pair: tuple[Stack, Stack], pki: Pki) -> None:
    a, b = stack_pair
    seen: list[object] = []

    async def whoami(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peercert")
        seen.append(peer)
        writer.write(
            b"hello "
            + str(dict(x for rdn in peer["subject"] for x in rdn)["commonName"]).encode()
            + b"\n"
        )
        await writer.drain()
        writer.close()

    server = await b.start_server(whoami, port=8443, ssl=server_context(pki, require_client=True))
    reader, writer = await a.open_connection(
        "198.18.0.2", 8443, ssl=client_context(pki, with_cert=True)
    )
    assert await asyncio.wait_for(reader.readline(), 5) == b"hello client one\n"
    writer.close()
    # Without a certificate: TLS 1.3 finishes the client's handshake first; the server's
    # certificate_required alert ends the connection at the first read.
    with pytest.raises((ssl.SSLError, ConnectionError)):
        reader, writer = await a.open_connection("198.18.0.2", 8443, ssl=client_context(pki))
        await asyncio.wait_for(reader.read(100), 5)
        if reader.at_eof():
            raise ConnectionError("closed")
    assert len(seen) == 1
    server.close()


async def test_starttls_upgrade(stack_pair: tuple[Stack, Stack], pki: Pki) -> None:
    """A plain connection that agrees to switch to TLS (as SMTP's STARTTLS does)."""
    a, b = stack_pair
    done = asyncio.get_running_loop().create_future()
    server_ctx = server_context(pki)

    async def smtp_like(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert await reader.readline() == b"STARTTLS\n"
        writer.write(b"220 go ahead\n")
        await writer.drain()
        from netstack.tls.stream import writer_start_tls

        await writer_start_tls(writer, server_ctx)
        line = await reader.readline()
        writer.write(b"secret: " + line)
        await writer.drain()
        done.set_result(writer.get_extra_info("cipher"))
        writer.close()

    server = await b.start_server(smtp_like, port=25)
    reader, writer = await a.open_connection("198.18.0.2", 25)
    writer.write(b"STARTTLS\n")
    assert await reader.readline() == b"220 go ahead\n"
    await writer.start_tls(client_context(pki), server_hostname="server.test")
    assert writer.get_extra_info("cipher")[1] == "TLSv1.3"
    writer.write(b"over tls\n")
    assert await asyncio.wait_for(reader.readline(), 5) == b"secret: over tls\n"
    assert (await asyncio.wait_for(done, 5))[1] == "TLSv1.3"
    writer.close()
    server.close()
