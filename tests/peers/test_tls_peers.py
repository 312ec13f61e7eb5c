"""TLS over netstack's TCP against OpenSSL's command line tools and curl in a network
namespace (PEERS.md): ``openssl s_client`` (with and without a client certificate) against a
netstack server, netstack's client against ``openssl s_server`` (``-Verify`` for client
authentication, ``-alpn``), and ``curl --cacert`` over HTTPS; on both engines (an
``ssl.SSLContext`` and netstack's own TLS 1.3) where netstack's TLS is available."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from peerkit import in_netns, peer

from netstack import Stack
from netstack.testing import TapSandbox, require_program
from netstack.tls import certs

pytestmark = pytest.mark.peers

KERNEL = "198.18.0.1"
NETSTACK = "198.18.0.2"


class Pki(NamedTuple):
    ca: Path
    server: Path
    server_key: Path
    client: Path
    client_key: Path
    kernel: Path
    kernel_key: Path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("tls-peers")
    ca, ca_key = certs.make_ca("netstack peer-test CA")
    certs.write_pem(d / "ca.pem", ca)
    files = []
    for name, kw in (
        ("server", {"ips": [NETSTACK], "dns_names": ["netstack.test"]}),
        ("client", {"client": True}),
        ("kernel", {"ips": [KERNEL], "dns_names": ["kernel.test"]}),
    ):
        cert, key = certs.issue(ca, ca_key, f"{name}.test", **kw)
        certs.write_pem(d / f"{name}.pem", cert)
        certs.write_pem(d / f"{name}.key", None, key)
        files += [d / f"{name}.pem", d / f"{name}.key"]
    return Pki(d / "ca.pem", *files)


def openssl_server_context(pki: Pki, *, require_client: bool = False) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki.server, pki.server_key)
    ctx.set_alpn_protocols(["http/1.1"])
    if require_client:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(pki.ca)
    return ctx


def server_configs(pki: Pki, *, require_client: bool = False) -> Iterator[tuple[str, Any]]:
    yield "openssl", openssl_server_context(pki, require_client=require_client)
    try:
        from netstack.tls import TLSConfig
    except ImportError:
        return
    yield "netstack", TLSConfig.server(
        pki.server, pki.server_key, cafile=pki.ca if require_client else None,
        verify_client=require_client, alpn_protocols=["http/1.1"],
    )  # fmt: skip


def client_configs(pki: Pki, *, with_cert: bool = False) -> Iterator[tuple[str, Any]]:
    ctx = ssl.create_default_context(cafile=str(pki.ca))
    ctx.set_alpn_protocols(["http/1.1"])
    if with_cert:
        ctx.load_cert_chain(pki.client, pki.client_key)
    yield "openssl", ctx
    try:
        from netstack.tls import TLSConfig
    except ImportError:
        return
    yield "netstack", TLSConfig.client(
        cafile=pki.ca, certfile=pki.client if with_cert else None,
        keyfile=pki.client_key if with_cert else None, alpn_protocols=["http/1.1"],
    )  # fmt: skip


async def s_client(sandbox: TapSandbox, pki: Pki, *extra: str, data: bytes = b"") -> str:
    openssl = require_program("openssl")
    proc = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", sandbox.name, openssl, "s_client", "-connect", f"{NETSTACK}:4433",
        "-CAfile", str(pki.ca), "-verify_return_error", "-servername", "netstack.test",
        "-alpn", "http/1.1", *extra,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(data), 30)
    return out.decode(errors="replace")


async def test_openssl_s_client_against_netstack_servers(
    tap_stack: Stack, tap_netns: TapSandbox, pki: Pki
) -> None:
    for engine, config in server_configs(pki):

        async def hello(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            line = await reader.readline()
            writer.write(b"netstack says: " + line)
            await writer.drain()
            writer.close()

        server = await tap_stack.start_server(hello, port=4433, ssl=config)
        try:
            out = await s_client(tap_netns, pki, "-quiet", data=b"hi over tls\n")
            assert "netstack says: hi over tls" in out, (engine, out)
            out = await s_client(tap_netns, pki, "-brief", data=b"x\n")
            assert "Protocol version: TLSv1.3" in out, (engine, out)
            assert "Verification: OK" in out, (engine, out)
            out = await s_client(tap_netns, pki, data=b"x\n")
            assert "ALPN protocol: http/1.1" in out, (engine, out)
            assert "Verify return code: 0 (ok)" in out, (engine, out)
        finally:
            server.close()


def _whoami(who: list[str]) -> Any:
    """A handler that greets the client by its certificate's name (and notes it)."""

    async def whoami(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer_cert = writer.get_extra_info("peercert")
        subject = dict(x for rdn in peer_cert["subject"] for x in rdn)
        who.append(subject["commonName"])
        writer.write(f"hello {subject['commonName']}\n".encode())
        await writer.drain()
        writer.close()

    return whoami


async def test_openssl_starttls_smtp_against_netstack_servers(
    tap_stack: Stack, tap_netns: TapSandbox, pki: Pki
) -> None:
    """``openssl s_client -starttls smtp`` against a netstack server that upgrades with
    asyncio's own ``writer.start_tls()`` (on uvloop too, and with netstack's engine)."""
    for engine, config in server_configs(pki):
        lines: list[bytes] = []
        server = await tap_stack.start_server(_smtp_with_starttls(config, lines), port=4433)
        try:
            out = await s_client(
                tap_netns, pki, "-starttls", "smtp", "-quiet", data=b"NOOP over tls\n"
            )
        finally:
            server.close()
        assert "250 netstack read: NOOP over tls" in out, (engine, out)
        assert lines == [b"NOOP over tls\n"], engine


def _smtp_with_starttls(config: Any, lines: list[bytes]) -> Any:
    """An SMTP-like server that offers STARTTLS, upgrades with ``writer.start_tls``, and
    answers the first line read over TLS (noted in ``lines``)."""

    async def smtp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 netstack.test ESMTP\r\n")
        assert (await reader.readline()).upper().startswith(b"EHLO")
        writer.write(b"250-netstack.test\r\n250 STARTTLS\r\n")
        assert (await reader.readline()).upper().startswith(b"STARTTLS")
        writer.write(b"220 2.0.0 ready to start TLS\r\n")
        await writer.drain()
        await writer.start_tls(config)
        lines.append(await reader.readline())
        writer.write(b"250 netstack read: " + lines[-1])
        await writer.drain()
        writer.close()

    return smtp


async def test_client_certificates_with_s_client(
    tap_stack: Stack, tap_netns: TapSandbox, pki: Pki
) -> None:
    for engine, config in server_configs(pki, require_client=True):
        who: list[str] = []
        server = await tap_stack.start_server(_whoami(who), port=4433, ssl=config)
        try:
            out = await s_client(
                tap_netns, pki, "-quiet", "-cert", str(pki.client), "-key", str(pki.client_key)
            )
            assert "hello client.test" in out, (engine, out)
            out = await s_client(tap_netns, pki, "-quiet")
            assert "certificate required" in out.lower(), (engine, out)
            assert who == ["client.test"], engine
        finally:
            server.close()


async def connect_when_listening(
    stack: Stack, config: Any
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A TLS connection to s_server at kernel.test:4434, retried until it listens (bound
    by the caller's timeout)."""
    while True:
        try:
            return await stack.open_connection(
                KERNEL, 4434, ssl=config, server_hostname="kernel.test"
            )
        except ConnectionRefusedError:
            await asyncio.sleep(0.1)


async def test_netstack_clients_against_openssl_s_server(
    tap_stack: Stack, tap_netns: TapSandbox, pki: Pki
) -> None:
    openssl = require_program("openssl")
    for verify in (False, True):
        argv = [
            openssl, "s_server", "-accept", "4434", "-cert", str(pki.kernel), "-key",
            str(pki.kernel_key), "-alpn", "http/1.1", "-rev",
        ]  # fmt: skip
        if verify:
            argv += ["-Verify", "1", "-CAfile", str(pki.ca)]
        async with peer(tap_netns, *argv):
            await asyncio.sleep(0.5)
            for engine, config in client_configs(pki, with_cert=verify):
                async with asyncio.timeout(20):
                    reader, writer = await connect_when_listening(tap_stack, config)
                    assert writer.get_extra_info("alpn_protocol") == "http/1.1", engine
                    assert writer.get_extra_info("cipher")[1] == "TLSv1.3", engine
                    writer.write(b"netstack\n")  # s_server -rev answers it reversed
                    line = await reader.readline()
                    assert line.strip() == b"kcatsten", (engine, line)
                    writer.close()


async def test_curl_https_to_netstack(
    tap_stack: Stack, tap_netns: TapSandbox, pki: Pki, tmp_path: Path
) -> None:
    curl = require_program("curl")
    body = bytes(range(256)) * 4096  # 1 MiB

    async def https(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Length: " + str(len(body)).encode()
            + b"\r\nConnection: close\r\n\r\n" + body
        )  # fmt: skip
        await writer.drain()
        writer.close()

    for engine, config in server_configs(pki):
        server = await tap_stack.start_server(https, port=443, ssl=config)
        try:
            out = tmp_path / f"download-{engine}"
            text = await in_netns(
                tap_netns, curl, "-sS", "--max-time", "20", "--cacert", str(pki.ca),
                "--resolve", f"netstack.test:443:{NETSTACK}", "-o", str(out),
                "-w", "%{http_code} %{size_download}", "https://netstack.test/",
            )  # fmt: skip
            assert text == f"200 {len(body)}", (engine, text)
            assert out.read_bytes() == body, engine
        finally:
            server.close()


@pytest.fixture(scope="module")
def sigalg_pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Certificates of the keys whose schemes OpenSSL offers by default: RSA (PSS with
    SHA-256/384/512), P-384 and P-521, and a P-384 client certificate."""
    d = tmp_path_factory.mktemp("tls-sigalgs")
    ca, ca_key = certs.make_ca("netstack sigalg CA")
    certs.write_pem(d / "ca.pem", ca)
    files = {"ca": d / "ca.pem"}
    for name, key_type, kw in (
        ("rsa", "rsa", {"ips": [NETSTACK], "dns_names": ["netstack.test"]}),
        ("p384", "ec-p384", {"ips": [NETSTACK], "dns_names": ["netstack.test"]}),
        ("p521", "ec-p521", {"ips": [NETSTACK], "dns_names": ["netstack.test"]}),
        ("kernel-p384", "ec-p384", {"ips": [KERNEL], "dns_names": ["kernel.test"]}),
        ("client-p384", "ec-p384", {"client": True}),
    ):
        cert, key = certs.issue(ca, ca_key, name, key_type=key_type, **kw)  # type: ignore[arg-type]
        certs.write_pem(d / f"{name}.pem", cert, key)
        files[name] = d / f"{name}.pem"
    return files


async def test_signature_schemes_with_openssl_tools(
    tap_stack: Stack, tap_netns: TapSandbox, sigalg_pki: dict[str, Path]
) -> None:
    # issue 10: RSA servers sign RSA-PSS with SHA-384/512, P-384/P-521 server and client
    # certificates work both ways with OpenSSL, the default client reaches a P-384 server.
    from netstack.tls import TLSConfig

    openssl = require_program("openssl")
    files = sigalg_pki
    for name, sigalgs, digests in (
        ("rsa", ["rsa_pss_rsae_sha256", "rsa_pss_rsae_sha384", "rsa_pss_rsae_sha512"],
         ["SHA256", "SHA384", "SHA512"]),
        ("p384", ["ecdsa_secp384r1_sha384"], ["SHA384"]),
        ("p521", ["ecdsa_secp521r1_sha512"], ["SHA512"]),
    ):  # fmt: skip
        config = TLSConfig.server(files[name], cafile=files["ca"], verify_client="optional")
        who: list[str] = []
        server = await tap_stack.start_server(_whoami(who), port=4433, ssl=config)
        try:
            for sigalg, digest in zip(sigalgs, digests, strict=True):
                proc = await asyncio.create_subprocess_exec(
                    "ip", "netns", "exec", tap_netns.name, openssl, "s_client", "-connect",
                    f"{NETSTACK}:4433", "-CAfile", str(files["ca"]), "-verify_return_error",
                    "-servername", "netstack.test", "-brief", "-ign_eof", "-sigalgs",
                    # ... and the client's own key's scheme
                    ":".join(dict.fromkeys([sigalg, "ecdsa_secp384r1_sha384"])),
                    "-cert", str(files["client-p384"]),
                    stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.STDOUT,
                )  # fmt: skip
                raw, _ = await asyncio.wait_for(proc.communicate(b""), 30)
                out = raw.decode(errors="replace")
                assert "Verification: OK" in out, (name, sigalg, out)
                assert f"Hash used: {digest}" in out, (name, sigalg, out)
                assert "hello client-p384" in out, (name, sigalg, out)
        finally:
            server.close()
        assert who == ["client-p384"] * len(sigalgs)
    # netstack's default client (with a P-384 certificate) against s_server with a P-384
    # certificate that asks for a P-384 client signature only.
    argv = [
        openssl, "s_server", "-accept", "4434", "-cert", str(files["kernel-p384"]),
        "-Verify", "1", "-CAfile", str(files["ca"]), "-client_sigalgs", "ecdsa_secp384r1_sha384",
        "-rev",
    ]  # fmt: skip
    async with peer(tap_netns, *argv):
        client = TLSConfig.client(cafile=files["ca"], certfile=files["client-p384"])
        async with asyncio.timeout(20):
            reader, writer = await connect_when_listening(tap_stack, client)
            writer.write(b"p384\n")
            assert (await reader.readline()).strip() == b"483p"
            writer.close()


@pytest.mark.parametrize("retry", [False, True], ids=["1-rtt", "after-hello-retry"])
async def test_openssl_early_data_to_netstack_is_declined_and_skipped(
    tap_stack: Stack, tap_netns: TapSandbox, pki: Pki, tmp_path: Path, retry: bool
) -> None:
    # issue 10, RFC 8446 4.2.10: s_client with a ticket from a server that allows 0-RTT
    # (s_server -early_data) sends early data to netstack's server, which declines it, skips
    # it and completes; with retry, the server wants another group first (HelloRetryRequest).
    from netstack.tls import TLSConfig

    openssl = require_program("openssl")
    session, early = tmp_path / "session.pem", tmp_path / "early.txt"
    early.write_bytes(b"early data line\n" * 64)
    # s_server ends at the end of its standard input: a pipe keeps it open.
    s_server = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", tap_netns.name, openssl, "s_server", "-accept", "4435",
        "-cert", str(pki.kernel), "-key", str(pki.kernel_key), "-early_data", "-naccept", "1",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        async with asyncio.timeout(20):
            while True:  # until s_server listens; then keep its session ticket
                try:
                    text = await in_netns(
                        tap_netns, "sh", "-c",
                        f"sleep 1 | {openssl} s_client -connect {KERNEL}:4435 -servername "
                        f"netstack.test -sess_out {session} 2>&1",
                    )  # fmt: skip
                except AssertionError:  # not listening yet
                    text = ""
                if session.exists():
                    break
                await asyncio.sleep(0.2)
    finally:
        if s_server.returncode is None:
            s_server.kill()
        await s_server.wait()
    assert "Max Early Data: 16384" in text, text
    groups = ["secp256r1", "x25519"] if retry else ["x25519", "secp256r1"]
    config = TLSConfig.server(pki.server, pki.server_key, groups=groups)
    lines: list[bytes] = []

    async def echo_line(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line = await reader.readline()
        lines.append(line)
        writer.write(b"netstack read: " + line)
        await writer.drain()
        writer.close()

    server = await tap_stack.start_server(echo_line, port=4433, ssl=config)
    try:
        proc = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", tap_netns.name, openssl, "s_client", "-connect",
            f"{NETSTACK}:4433", "-CAfile", str(pki.ca), "-verify_return_error",
            "-servername", "netstack.test", "-sess_in", str(session),
            "-early_data", str(early), "-ign_eof",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        raw, _ = await asyncio.wait_for(proc.communicate(b"after the handshake\n"), 30)
        out = raw.decode(errors="replace")
    finally:
        server.close()
    assert "Early data was rejected" in out, out
    assert "Verify return code: 0 (ok)" in out, out
    assert "netstack read: after the handshake" in out, out
    assert lines == [b"after the handshake\n"]  # the declined early data was never read
