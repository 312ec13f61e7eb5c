"""TLS: handshakes per second and bulk transfer, for each engine.

``tls_handshakes`` (handshakes/s): connect, TLS 1.3 handshake (ECDSA P-256 server
certificate, X25519, the client verifying the chain and the name), one byte each way, close;
one at a time for ``seconds``. ``tls_bulk`` (Mbit/s of application data received): one
connection, the client writing 64 KiB chunks with ``drain()`` for ``seconds``.

Engines: ``openssl`` (an ``ssl.SSLContext`` through asyncio's SSL protocol) and ``netstack``
(netstack's own TLS 1.3, ``netstack.tls.TLSConfig``), both over two netstack stacks on a
memory link (MTU 1500); the comparison is the same asyncio code with Python's ``ssl`` on
kernel sockets over 127.0.0.1, measured in the same run.
"""

from __future__ import annotations

import asyncio
import ssl
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from netstack import Stack
from netstack.link import MemoryLink

from .common import Emitter, Settings, log, summarize
from .sandbox import KERNEL_A, KERNEL_B

__all__ = [
    "CHUNK", "Pki", "netstack_pair", "one_byte", "one_handshake", "run_tls", "server_port", "sink",
]  # fmt: skip

CHUNK = 64 * 1024
Opener = Callable[..., Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]


class Pki:
    def __init__(self, directory: Path) -> None:
        from netstack.tls import certs

        ca, ca_key = certs.make_ca("netstack benchmark CA")
        cert, key = certs.issue(ca, ca_key, "bench.test", ips=[KERNEL_B, "127.0.0.1"],
                                dns_names=["bench.test"])  # fmt: skip
        self.ca = directory / "ca.pem"
        self.cert = directory / "server.pem"
        self.key = directory / "server.key"
        certs.write_pem(self.ca, ca)
        certs.write_pem(self.cert, cert)
        certs.write_pem(self.key, None, key)

    def configs(self, engine: str) -> tuple[Any, Any]:
        """(server, client) configuration of ``engine``."""
        if engine == "netstack":
            from netstack.tls import TLSConfig

            return TLSConfig.server(self.cert, self.key), TLSConfig.client(cafile=self.ca)
        server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server.load_cert_chain(self.cert, self.key)
        client = ssl.create_default_context(cafile=str(self.ca))
        return server, client


def _engines() -> list[str]:
    try:
        from netstack.tls import TLSConfig  # noqa: F401
    except ImportError:
        return ["openssl"]
    return ["openssl", "netstack"]


@asynccontextmanager
async def netstack_pair() -> AsyncIterator[tuple[Stack, Stack]]:
    a_link, b_link = MemoryLink.pair()
    async with await Stack.open(a_link, ipv4=f"{KERNEL_A}/24") as a, \
               await Stack.open(b_link, ipv4=f"{KERNEL_B}/24") as b:  # fmt: skip
        await a.ping(KERNEL_B)
        yield a, b


async def one_byte(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    data = await reader.read(1)
    writer.write(data)
    await writer.drain()
    writer.close()


async def _handshakes(open_connection: Opener, host: str, port: int, client: Any,
                      seconds: float) -> tuple[float, int]:  # fmt: skip
    done = 0
    start = time.perf_counter()
    end = start + seconds
    while time.perf_counter() < end:
        await one_handshake(open_connection, host, port, client)
        done += 1
    return done / (time.perf_counter() - start), done


async def one_handshake(open_connection: Opener, host: str, port: int, client: Any) -> None:
    """One cycle of ``tls_handshakes``: connect with TLS, one byte each way, close."""
    reader, writer = await open_connection(host, port, ssl=client, server_hostname="bench.test")
    writer.write(b"x")
    await reader.readexactly(1)
    writer.close()
    await writer.wait_closed()


async def _bulk(open_connection: Opener, host: str, port: int, client: Any, seconds: float,
                received: asyncio.Queue[tuple[int, float]]) -> float:  # fmt: skip
    reader, writer = await open_connection(host, port, ssl=client, server_hostname="bench.test")
    chunk = bytes(CHUNK)
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        writer.write(chunk)
        await writer.drain()
    writer.close()
    got, elapsed = await asyncio.wait_for(received.get(), seconds + 30)
    return got * 8 / elapsed / 1e6


def sink(received: asyncio.Queue[tuple[int, float]]) -> Callable[..., Awaitable[None]]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        total = 0
        start = time.perf_counter()
        while data := await reader.read(1 << 20):
            total += len(data)
        received.put_nowait((total, time.perf_counter() - start))
        writer.close()

    return handle


async def run_tls(emit: Emitter, settings: Settings, names: set[str]) -> None:
    seconds, repeats = settings.tcp_seconds, settings.tcp_repeats
    with tempfile.TemporaryDirectory() as tmp:
        pki = Pki(Path(tmp))
        setups: list[tuple[str, str]] = [("netstack-memory", e) for e in _engines()]
        setups.append(("kernel-asyncio-loopback", "openssl"))
        for impl, engine in setups:
            server_cfg, client_cfg = pki.configs(engine)
            log(f"tls {impl} {engine} on {emit.loop}")
            async with _maybe_pair(impl) as (open_connection, start_server, host):
                if "tls_handshakes" in names:
                    server = await start_server(one_byte, host, 0, ssl=server_cfg)
                    port = server_port(server)
                    rates = [(await _handshakes(open_connection, host, port, client_cfg,
                                                seconds))[0] for _ in range(repeats)]  # fmt: skip
                    server.close()
                    emit.emit_summary("tls_handshakes", impl, "handshakes/s", summarize(rates),
                                      engine=engine)  # fmt: skip
                if "tls_bulk" in names:
                    received: asyncio.Queue[tuple[int, float]] = asyncio.Queue()
                    server = await start_server(sink(received), host, 0, ssl=server_cfg)
                    port = server_port(server)
                    rates = [await _bulk(open_connection, host, port, client_cfg, seconds,
                                         received) for _ in range(repeats)]  # fmt: skip
                    server.close()
                    emit.emit_summary("tls_bulk", impl, "Mbit/s", summarize(rates),
                                      engine=engine, chunk=CHUNK)  # fmt: skip


def server_port(server: Any) -> int:
    if hasattr(server, "port"):
        return int(server.port)
    return int(server.sockets[0].getsockname()[1])


@asynccontextmanager
async def _maybe_pair(impl: str) -> AsyncIterator[tuple[Opener, Any, str]]:
    if impl == "netstack-memory":
        async with netstack_pair() as (a, b):
            yield a.open_connection, b.start_server, KERNEL_B
    else:
        yield asyncio.open_connection, asyncio.start_server, "127.0.0.1"
