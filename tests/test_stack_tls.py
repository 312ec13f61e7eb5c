"""TLS with OpenSSL contexts (``ssl.SSLContext``) over netstack's TCP on in-memory links:
``open_connection``/``start_server``/``create_connection`` with ``ssl=``, certificate and
hostname checks, client certificates, ALPN, ``get_extra_info``, and STARTTLS upgrades of a
plain connection on either event loop; the same on HostStack (the operating system's TCP), and
closing there after the peer closed."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket
import ssl
import threading
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from netstack import Stack
from netstack.tls import TLSConfig, certs


class Pki(NamedTuple):
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    ca, ca_key = certs.make_ca("netstack test CA")
    server, server_key = certs.issue(
        ca, ca_key, "server.test", dns_names=["server.test"], ips=["198.18.0.2"]
    )
    client, client_key = certs.issue(ca, ca_key, "client one", client=True)
    certs.write_pem(d / "ca.pem", ca)
    for name, cert, key in (("server", server, server_key), ("client", client, client_key)):
        certs.write_pem(d / f"{name}.pem", cert)
        certs.write_pem(d / f"{name}.key", None, key)
    return Pki(d / "ca.pem", d / "server.pem", d / "server.key", d / "client.pem", d / "client.key")


ENGINES = ["openssl", "netstack"]

#: The bound on each step of a test.
STEP = 10.0


def server_config(engine: str, pki: Pki, *, require_client: bool = False) -> Any:
    if engine == "netstack":
        return TLSConfig.server(pki.server_cert, pki.server_key, alpn_protocols=["h2", "http/1.1"],
                                cafile=pki.ca if require_client else None,
                                verify_client=require_client)  # fmt: skip
    return server_context(pki, require_client=require_client)


def client_config(engine: str, pki: Pki, *, with_cert: bool = False) -> Any:
    if engine == "netstack":
        return TLSConfig.client(cafile=pki.ca, alpn_protocols=["http/1.1"],
                                certfile=pki.client_cert if with_cert else None,
                                keyfile=pki.client_key if with_cert else None)  # fmt: skip
    return client_context(pki, with_cert=with_cert)


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


@pytest.mark.parametrize("server_engine", ENGINES)
@pytest.mark.parametrize("client_engine", ENGINES)
async def test_tls_echo_and_extra_info(
    stack_pair: tuple[Stack, Stack], pki: Pki, server_engine: str, client_engine: str
) -> None:
    a, b = stack_pair
    server = await b.start_server(echo, port=443, ssl=server_config(server_engine, pki))
    for host, name in (("198.18.0.2", None), ("198.18.0.2", "server.test")):
        reader, writer = await a.open_connection(
            host, 443, ssl=client_config(client_engine, pki), server_hostname=name
        )
        assert writer.get_extra_info("alpn_protocol") == "http/1.1"
        cipher = writer.get_extra_info("cipher")
        assert cipher[1] == "TLSv1.3"
        peercert = writer.get_extra_info("peercert")
        assert ("commonName", "server.test") in [x for rdn in peercert["subject"] for x in rdn]
        assert writer.get_extra_info("ssl_object") is not None
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


@pytest.mark.parametrize("engine", ENGINES)
async def test_client_certificates(stack_pair: tuple[Stack, Stack], pki: Pki, engine: str) -> None:
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

    guarded = server_config(engine, pki, require_client=True)
    server = await b.start_server(whoami, port=8443, ssl=guarded)
    reader, writer = await a.open_connection(
        "198.18.0.2", 8443, ssl=client_config(engine, pki, with_cert=True)
    )
    assert await asyncio.wait_for(reader.readline(), 5) == b"hello client one\n"
    writer.close()
    # Without a certificate: TLS 1.3 finishes the client's handshake first; the server's
    # certificate_required alert ends the connection at the first read.
    with pytest.raises((ssl.SSLError, ConnectionError)):
        reader, writer = await a.open_connection("198.18.0.2", 8443, ssl=client_config(engine, pki))
        await asyncio.wait_for(reader.read(100), 5)
        if reader.at_eof():
            raise ConnectionError("closed")
    assert len(seen) == 1
    server.close()


@pytest.mark.parametrize("engine", ENGINES)
async def test_starttls_upgrade(stack_pair: tuple[Stack, Stack], pki: Pki, engine: str) -> None:
    """A plain connection that agrees to switch to TLS (as SMTP's STARTTLS does)."""
    a, b = stack_pair
    await starttls_exchange(a, b, "198.18.0.2", 25, engine, pki)


async def starttls_exchange(
    client: Any, server_stack: Any, host: str, port: int, engine: str, pki: Pki
) -> None:
    """STARTTLS between two stacks (a server at ``host``:``port``, 0 for any port): the
    server upgrades with ``writer_start_tls``, the client with ``StreamWriter.start_tls``."""
    done = asyncio.get_running_loop().create_future()
    server_ctx = server_config(engine, pki)

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

    server = await server_stack.start_server(smtp_like, host, port)
    port = server.addresses[0][1]
    reader, writer = await client.open_connection(host, port)
    writer.write(b"STARTTLS\n")
    assert await reader.readline() == b"220 go ahead\n"
    await writer.start_tls(client_config(engine, pki), server_hostname="server.test")
    assert writer.get_extra_info("cipher")[1] == "TLSv1.3"
    writer.write(b"over tls\n")
    assert await asyncio.wait_for(reader.readline(), 5) == b"secret: over tls\n"
    assert (await asyncio.wait_for(done, 5))[1] == "TLSv1.3"
    writer.close()
    server.close()


@pytest.mark.parametrize("engine", ENGINES)
async def test_hoststack_with_both_engines(pki: Pki, engine: str) -> None:
    """The same TLS application on the operating system's sockets (HostStack)."""
    from netstack import HostStack

    async with HostStack() as host, asyncio.timeout(STEP):
        server = await host.start_server(echo, "127.0.0.1", 0, ssl=server_config(engine, pki))
        port = server.addresses[0][1]
        reader, writer = await host.open_connection(
            "127.0.0.1", port, ssl=client_config(engine, pki), server_hostname="server.test"
        )
        assert writer.get_extra_info("cipher")[1] == "TLSv1.3"
        writer.write(b"over the kernel\n")
        assert await asyncio.wait_for(reader.readline(), 5) == b"over the kernel\n"
        writer.close()
        server.close()


# -- HostStack: TLS over the operating system's TCP, on either event loop -------------------------
TCP_CLOSE = 7  # tcp_info.tcpi_state of a socket whose connection is gone (Linux)


def socket_inode(writer: asyncio.StreamWriter) -> tuple[int, int]:
    """The file descriptor of the kernel socket under ``writer`` and that socket's inode."""
    fd = writer.get_extra_info("socket").fileno()
    return fd, os.fstat(fd).st_ino


async def wait_socket_closed(fd: int, inode: int) -> None:
    """Until ``fd`` no longer holds the socket ``inode`` (it was closed), within a few turns
    of the loop: a closed connection lets go of its socket at once, not when collected."""
    for _ in range(200):
        try:
            if os.fstat(fd).st_ino != inode:
                return
        except OSError:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"the socket (fd {fd}) is still open after close()")


@pytest.mark.parametrize("engine", ENGINES)
async def test_hoststack_close_after_peer_closed_server_side(pki: Pki, engine: str) -> None:
    """A server's writer.close() after the client closed its socket: no exception, and the
    kernel socket is released at once (it was an OSError ENOTCONN from the shutdown, with the
    socket left open until collected)."""
    from netstack import HostStack

    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def greet_then_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            fd, inode = socket_inode(writer)
            writer.write(b"hello\n")
            await writer.drain()
            assert await reader.read() == b""  # the client closed
            writer.close()
            await wait_socket_closed(fd, inode)
        except BaseException as exc:
            done.set_exception(exc)
        else:
            done.set_result(None)

    async with HostStack() as host:
        server = await host.start_server(
            greet_then_close, "127.0.0.1", 0, ssl=server_config(engine, pki)
        )
        ctx = ssl.create_default_context(cafile=str(pki.ca))

        def client() -> None:
            with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
                with ctx.wrap_socket(raw, server_hostname="server.test") as tls:
                    got = b""
                    while not got.endswith(b"\n"):
                        piece = tls.recv(100)
                        assert piece, "no greeting"
                        got += piece

        async with asyncio.timeout(STEP):
            await asyncio.to_thread(client)
            await done
        server.close()


@pytest.mark.parametrize("engine", ENGINES)
async def test_hoststack_close_after_peer_closed_client_side(pki: Pki, engine: str) -> None:
    """The same for a client whose server closed first."""
    from netstack import HostStack

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    ctx = server_context(pki)

    def server() -> None:
        with listener:
            listener.settimeout(10)
            conn, _ = listener.accept()
            conn.settimeout(10)
            with ctx.wrap_socket(conn, server_side=True) as tls:
                tls.sendall(b"hello\n")

    thread = threading.Thread(target=server, daemon=True)
    thread.start()
    async with HostStack() as host:
        async with asyncio.timeout(STEP):
            reader, writer = await host.open_connection(
                "127.0.0.1", port, ssl=client_config(engine, pki), server_hostname="server.test"
            )
            fd, inode = socket_inode(writer)
            assert await reader.readline() == b"hello\n"
            assert await reader.read() == b""  # the server closed
            writer.close()
            await wait_socket_closed(fd, inode)
    await asyncio.to_thread(thread.join, STEP)


class GoneTransport(asyncio.Transport):
    """A TCP transport whose connection was reset unseen: shutdown() fails with ENOTCONN."""

    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed = False

    def write(self, data: Any) -> None:
        self.written += data

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        raise OSError(errno.ENOTCONN, "Transport endpoint is not connected")

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


async def test_tls_close_on_a_connection_gone_unseen(pki: Pki) -> None:
    """netstack's TLS closes the TCP transport when its half-close fails, instead of raising
    from the application's close() and leaving the socket open."""
    from netstack.tls.driver import TLSProtocol
    from netstack.tls.stream import app_transport

    loop = asyncio.get_running_loop()
    tls = TLSProtocol(
        loop, asyncio.Protocol(), client_config("netstack", pki), None,
        server_side=False, server_hostname="server.test",
    )  # fmt: skip
    tcp = GoneTransport()
    tls.connection_made(tcp)
    assert tcp.written  # the ClientHello
    app_transport(tls).close()
    assert tcp.closed
    tls.connection_lost(None)


@pytest.mark.parametrize("engine", ENGINES)
async def test_hoststack_close_aborts_tls_connections(pki: Pki, engine: str) -> None:
    """HostStack.close() ends the TLS connections it opened and accepted, as it does plain
    ones (uvloop's SSL transports cannot be weakly referenced: tracking them failed)."""
    from netstack import HostStack

    accepted: asyncio.Queue[asyncio.StreamWriter] = asyncio.Queue()

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await accepted.put(writer)
        with contextlib.suppress(ConnectionError):
            await reader.read()

    async with asyncio.timeout(STEP):
        server_host, client_host = HostStack(), HostStack()
        server = await server_host.start_server(
            hold, "127.0.0.1", 0, ssl=server_config(engine, pki)
        )
        reader, writer = await client_host.open_connection(
            "127.0.0.1", server.port, ssl=client_config(engine, pki), server_hostname="server.test"
        )
        server_writer = await accepted.get()
        assert client_host.stats()["connections_opened"] == 1
        await client_host.close()
        assert writer.transport.is_closing()
        with contextlib.suppress(ConnectionError):
            assert await reader.read() == b""
        await server_host.close()
        assert server_writer.transport.is_closing()


@pytest.mark.parametrize("engine", ENGINES)
async def test_hoststack_starttls(pki: Pki, engine: str) -> None:
    """STARTTLS on HostStack's connections with either engine, on either event loop."""
    from netstack import HostStack

    async with HostStack() as host, asyncio.timeout(STEP):
        await starttls_exchange(host, host, "127.0.0.1", 0, engine, pki)
