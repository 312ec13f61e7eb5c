"""httpx on netstack through ``netstack.use``, with its default transport (httpcore's
connection pool on anyio, which connects with ``getaddrinfo`` and the loop's
``create_connection`` and runs TLS itself over the stream with ``ssl.MemoryBIO``), as httpx's
documentation shows ``AsyncClient``: HTTP/1.1 with keep-alive, uploads and streamed downloads,
HTTPS with a CA of one's own, and httpx's errors; against aiohttp on the other stack in memory,
and against the kernel's ``python -m http.server`` and ``openssl s_server`` in a namespace over
TAP. No glue beyond the switch.

httpx takes only an ``ssl.SSLContext`` for TLS (``verify=``), and anyio does the TLS above the
transport, so netstack's own TLS engine has no place here."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from aiohttp import web
from conftest import CLIENT_IP, SERVER_IP, STEP, Kernel, Net, Pki

import netstack

STREAMED = 2 << 20


def make_app() -> web.Application:
    async def hello(request: web.Request) -> web.Response:
        return web.json_response({"remote": request.remote, "scheme": request.scheme,
                                  "version": list(request.version)})  # fmt: skip

    async def digest(request: web.Request) -> web.Response:
        return web.Response(text=hashlib.sha256(await request.read()).hexdigest())

    async def download(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.content_length = STREAMED
        await response.prepare(request)
        for i in range(STREAMED // 65536):
            await response.write(bytes([i % 256]) * 65536)
        return response

    app = web.Application()
    app.add_routes([web.get("/", hello), web.post("/digest", digest),
                    web.get("/download", download)])  # fmt: skip
    return app


@pytest.fixture
async def server(net: Net, pki: Pki) -> AsyncIterator[web.AppRunner]:
    """aiohttp on the server stack: HTTP on 8080, HTTPS on 8443."""
    runner = web.AppRunner(make_app())
    await runner.setup()
    with netstack.use(net.server):
        await web.TCPSite(runner, SERVER_IP, 8080).start()
        await web.TCPSite(runner, SERVER_IP, 8443, ssl_context=pki.server_ssl()).start()
    yield runner
    await runner.cleanup()


@pytest.mark.usefixtures("server")
async def test_http(net: Net) -> None:
    async with asyncio.timeout(STEP):
        with netstack.use(net.client):
            async with httpx.AsyncClient(base_url="http://server.test:8080") as client:
                response = await client.get("/")
                assert response.http_version == "HTTP/1.1"
                assert response.json() == {"remote": CLIENT_IP, "scheme": "http",
                                           "version": [1, 1]}  # fmt: skip
                body = os.urandom(1 << 20)
                response = await client.post("/digest", content=body)
                assert response.text == hashlib.sha256(body).hexdigest()
                digest = hashlib.sha256()
                async with client.stream("GET", "/download") as response:
                    async for chunk in response.aiter_bytes():
                        digest.update(chunk)
                expected = b"".join(bytes([i % 256]) * 65536 for i in range(STREAMED // 65536))
                assert digest.hexdigest() == hashlib.sha256(expected).hexdigest()


@pytest.mark.usefixtures("server")
async def test_keep_alive(net: Net) -> None:
    """httpcore keeps a pooled connection while ``poll()`` on its socket's ``fileno()`` says
    nothing is readable (netstack's readiness descriptor), and drops one the server closed."""
    async with asyncio.timeout(STEP):
        with netstack.use(net.client):
            async with httpx.AsyncClient(base_url="http://server.test:8080") as client:
                for _ in range(3):
                    assert (await client.get("/")).status_code == 200
    assert net.server.stats()["tcp"]["passive_opens"] == 1


async def test_pooled_connection_the_server_closed(net: Net) -> None:
    """A server that closes each connection after one response while saying keep-alive:
    httpcore sees the pooled connection readable (its end of stream) and opens a new one
    instead of failing on the dead one."""
    closed: list[asyncio.Event] = []

    async def one_response(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()
        await writer.wait_closed()
        closed[-1].set()

    with netstack.use(net.server):
        server = await asyncio.start_server(one_response, SERVER_IP, 8081)
    async with asyncio.timeout(STEP):
        with netstack.use(net.client):
            async with httpx.AsyncClient(base_url="http://server.test:8081") as client:
                for _ in range(3):
                    closed.append(asyncio.Event())
                    assert (await client.get("/")).text == "ok"
                    await closed[-1].wait()
                    await asyncio.sleep(0.05)  # the FIN reaches the client
    assert net.server.stats()["tcp"]["passive_opens"] == 3
    server.close()


@pytest.mark.usefixtures("server")
async def test_https(net: Net, pki: Pki) -> None:
    async with asyncio.timeout(STEP):
        with netstack.use(net.client):
            async with httpx.AsyncClient(verify=pki.client_ssl()) as client:
                response = await client.get("https://server.test:8443/")
                assert response.json()["scheme"] == "https"
                response = await client.post("https://server.test:8443/digest", content=b"x")
                assert response.text == hashlib.sha256(b"x").hexdigest()
            async with httpx.AsyncClient() as client:  # the system's CAs: not this one
                with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                    await client.get("https://server.test:8443/")


async def test_errors(net: Net) -> None:
    """httpx's errors, with the OS errors asyncio would give underneath."""
    async with asyncio.timeout(STEP):
        with netstack.use(net.client):
            async with httpx.AsyncClient() as client:
                with pytest.raises(httpx.ConnectError) as refused:
                    await client.get("http://server.test:1/")
                causes = []
                error: BaseException | None = refused.value
                while error is not None:
                    causes.append(type(error))
                    error = error.__cause__ or error.__context__
                assert ConnectionRefusedError in causes
                with pytest.raises(httpx.ConnectError):
                    await client.get("http://nowhere.test/")  # no such name, no DNS


# -- against the kernel's servers over TAP --------------------------------------------------------
@pytest.mark.peers
async def test_kernel_http_server(kernel: Kernel, tmp_path: Path) -> None:
    """httpx on a stack on the TAP device fetches from ``python -m http.server`` bound to
    the kernel's address in the namespace."""
    data = os.urandom(3 << 20)
    (tmp_path / "file.bin").write_bytes(data)
    server = ("python3", "-m", "http.server", "8000", "--bind", kernel.ip,
              "--directory", str(tmp_path))  # fmt: skip
    async with kernel.start(*server, port=8000):
        with netstack.use(kernel.stack):
            async with httpx.AsyncClient(base_url="http://kernel.test:8000") as client:
                response = await client.get("/file.bin")
                assert response.status_code == 200
                assert response.content == data
                response = await client.get("/missing")
                assert response.status_code == 404


@pytest.mark.peers
async def test_kernel_https_server(kernel: Kernel, pki: Pki) -> None:
    """httpx over HTTPS (OpenSSL in this process) to ``openssl s_server -www`` in the
    namespace, which answers with a status page naming the session."""
    from netstack.testing import require_program

    openssl = require_program("openssl")
    server = (openssl, "s_server", "-quiet", "-accept", f"{kernel.ip}:8443",
              "-cert", str(pki.kernel_cert), "-key", str(pki.kernel_key), "-www")  # fmt: skip
    async with kernel.start(*server, port=8443):
        with netstack.use(kernel.stack):
            async with httpx.AsyncClient(verify=pki.client_ssl()) as client:
                response = await client.get("https://kernel.test:8443/")
                assert response.status_code == 200
                assert "Ciphers supported in s_server binary" in response.text
