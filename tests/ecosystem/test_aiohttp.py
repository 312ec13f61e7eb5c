"""aiohttp on netstack through ``netstack.use``, as aiohttp's documentation shows it: a server
with ``web.AppRunner`` / ``web.TCPSite`` (handlers, streaming, static files and
``web.FileResponse``, websockets), a client with ``ClientSession`` (its connector takes the
socket path: ``getaddrinfo``, aiohappyeyeballs' ``sock_connect``, then
``create_connection(sock=...)``, and sets ``TCP_NODELAY`` / ``SO_KEEPALIVE`` through
``get_extra_info("socket")``; ``ws_connect``); plain HTTP and HTTPS, in memory and to the
kernel's curl over TAP. No glue beyond the switch."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from conftest import CLIENT_IP, SERVER_IP, STEP, Kernel, Net, Pki

import netstack
from netstack.testing import Network

#: A file served from disk: big enough for several sendfile chunks and TCP windows.
FILE_SIZE = 3 * 1024 * 1024 + 17


def make_app(root: Path | None = None) -> web.Application:
    async def hello(request: web.Request) -> web.Response:
        return web.json_response({"remote": request.remote, "host": request.host})

    async def digest(request: web.Request) -> web.Response:
        body = await request.read()
        return web.Response(text=hashlib.sha256(body).hexdigest())

    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        for i in range(64):
            await response.write(bytes([i]) * 16384)
        await response.write_eof()
        return response

    async def echo(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_str(f"hello {request.remote}")
        async for message in ws:
            if message.type == aiohttp.WSMsgType.TEXT and message.data == "close":
                await ws.close(code=4000, message=b"asked to")
            elif message.type == aiohttp.WSMsgType.TEXT:
                await ws.send_str(message.data)
            elif message.type == aiohttp.WSMsgType.BINARY:
                await ws.send_bytes(message.data)
        return ws

    app = web.Application()
    app.add_routes([web.get("/hello", hello), web.post("/digest", digest),
                    web.get("/stream", stream), web.get("/ws", echo)])  # fmt: skip
    if root is not None:

        async def report(request: web.Request) -> web.FileResponse:
            return web.FileResponse(root / "report.bin")

        app.add_routes([web.get("/report", report), web.static("/static", root)])
    return app


def files(root: Path) -> dict[str, bytes]:
    """What the file routes serve: a small text file and a big binary one."""
    contents = {"index.txt": b"served from disk\n", "report.bin": os.urandom(FILE_SIZE)}
    for name, data in contents.items():
        (root / name).write_bytes(data)
    return contents


async def serve(stack: netstack.Stack, host: str, port: int, root: Path | None = None,
                **site: object) -> web.AppRunner:  # fmt: skip
    with netstack.use(stack):
        runner = web.AppRunner(make_app(root))
        await runner.setup()
        await web.TCPSite(runner, host, port, **site).start()  # type: ignore[arg-type]
    return runner


async def test_server_and_client(net: Net) -> None:
    runner = await serve(net.server, SERVER_IP, 8080)
    try:
        async with asyncio.timeout(STEP):
            with netstack.use(net.client):
                async with aiohttp.ClientSession() as session:
                    async with session.get("http://server.test:8080/hello") as response:
                        assert response.status == 200
                        assert await response.json() == {
                            "remote": CLIENT_IP, "host": "server.test:8080",
                        }  # fmt: skip
                    body = bytes(range(256)) * 4096  # 1 MiB up
                    async with session.post("http://server.test:8080/digest", data=body) as r:
                        assert await r.text() == hashlib.sha256(body).hexdigest()
                    async with session.get("http://server.test:8080/stream") as r:
                        assert r.connection is not None  # held while the body streams
                        transport = r.connection.transport
                        assert transport is not None
                        assert transport.get_extra_info("socket").getpeername() == (
                            SERVER_IP, 8080,
                        )  # fmt: skip
                        # What aiohttp's connector set through the socket reached netstack's
                        # connection (TCP_NODELAY).
                        assert transport.get_extra_info("connection").config.nodelay
                        data = await r.read()  # 1 MiB down
                    assert data == b"".join(bytes([i]) * 16384 for i in range(64))
        assert net.client.stats()["tcp"]["active_opens"] >= 1
        assert net.server.stats()["tcp"]["passive_opens"] >= 1
    finally:
        await runner.cleanup()


async def test_https(net: Net, pki: Pki, tmp_path: Path) -> None:
    contents = files(tmp_path)
    runner = await serve(net.server, SERVER_IP, 8443, tmp_path, ssl_context=pki.server_ssl())
    try:
        async with asyncio.timeout(STEP):
            with netstack.use(net.client):
                async with aiohttp.ClientSession() as session:
                    url = "https://server.test:8443/hello"
                    async with session.get(url, ssl=pki.client_ssl()) as response:
                        assert (await response.json())["remote"] == CLIENT_IP
                    stream = "https://server.test:8443/stream"
                    async with session.get(stream, ssl=pki.client_ssl()) as response:
                        assert response.connection is not None
                        transport = response.connection.transport
                        assert transport is not None and transport.get_extra_info("peercert")
                        assert len(await response.read()) == 64 * 16384
                    # A file over TLS (no sendfile there: aiohttp writes it in chunks).
                    report = "https://server.test:8443/report"
                    async with session.get(report, ssl=pki.client_ssl()) as response:
                        assert await response.read() == contents["report.bin"]
                    with pytest.raises(aiohttp.ClientConnectorCertificateError):
                        await session.get(url)  # the system's CAs do not know this one
    finally:
        await runner.cleanup()


async def test_refused_and_unknown_names_are_aiohttps_errors(net: Net) -> None:
    async with asyncio.timeout(STEP):
        with netstack.use(net.client):
            async with aiohttp.ClientSession() as session:
                with pytest.raises(aiohttp.ClientConnectorError) as refused:
                    await session.get("http://server.test:1/")
                assert isinstance(refused.value.os_error, ConnectionRefusedError)
                with pytest.raises(aiohttp.ClientConnectorError):
                    # No name server and not in the host table: the stack's resolver says so.
                    await session.get("http://nowhere.test/")


async def test_static_files_and_file_response(net: Net, tmp_path: Path) -> None:
    """``web.static`` and ``web.FileResponse`` as aiohttp's documentation shows them: whole
    files, a range, and a conditional request answered 304."""
    contents = files(tmp_path)
    runner = await serve(net.server, SERVER_IP, 8080, tmp_path)
    try:
        async with asyncio.timeout(STEP):
            with netstack.use(net.client):
                async with aiohttp.ClientSession("http://server.test:8080") as session:
                    async with session.get("/static/index.txt") as response:
                        assert await response.read() == contents["index.txt"]
                    async with session.get("/report") as response:
                        assert await response.read() == contents["report.bin"]
                        modified = response.headers["Last-Modified"]
                    headers = {"Range": "bytes=1000000-1999999"}
                    async with session.get("/static/report.bin", headers=headers) as response:
                        assert response.status == 206
                        assert await response.read() == contents["report.bin"][1000000:2000000]
                    headers = {"If-Modified-Since": modified}
                    async with session.get("/report", headers=headers) as response:
                        assert response.status == 304
    finally:
        await runner.cleanup()


async def test_websockets(net: Net) -> None:
    """aiohttp's own websockets: ``web.WebSocketResponse`` and ``ClientSession.ws_connect``."""
    runner = await serve(net.server, SERVER_IP, 8080)
    try:
        async with asyncio.timeout(STEP):
            with netstack.use(net.client):
                async with aiohttp.ClientSession() as session:
                    async with session.ws_connect("ws://server.test:8080/ws") as ws:
                        assert await ws.receive_str() == f"hello {CLIENT_IP}"
                        await ws.send_str("text")
                        assert await ws.receive_str() == "text"
                        big = os.urandom(300_000)
                        await ws.send_bytes(big)
                        assert await ws.receive_bytes() == big
                        await ws.ping()
                        await ws.send_str("close")
                        assert (await ws.receive()).type == aiohttp.WSMsgType.CLOSE
                    assert ws.close_code == 4000
    finally:
        await runner.cleanup()


async def test_a_name_with_both_families(network: Network) -> None:
    """A name with an IPv6 and an IPv4 address: aiohttp's connector races them
    (aiohappyeyeballs, ``sock_connect`` on an ``AF_INET6`` socket first); a server on IPv6
    is reached over IPv6, one only on IPv4 right after the IPv6 attempt is refused."""
    client, server = await asyncio.gather(  # each waits for its duplicate address detection
        network.host("198.18.0.1/24", ipv6="fd00::1/64"),
        network.host("198.18.0.2/24", ipv6="fd00::2/64"),
    )
    client.dns.hosts["dual.test"] = ["fd00::2", SERVER_IP]
    six = await serve(server, "fd00::2", 8080)
    four = await serve(server, SERVER_IP, 8081)
    try:
        async with asyncio.timeout(STEP):
            with netstack.use(client):
                async with aiohttp.ClientSession() as session:
                    async with session.get("http://dual.test:8080/hello") as response:
                        assert (await response.json())["remote"] == "fd00::1"
                    async with session.get("http://dual.test:8081/hello") as response:
                        assert (await response.json())["remote"] == CLIENT_IP
    finally:
        await six.cleanup()
        await four.cleanup()
    assert client.stats()["tcp"]["active_opens"] == 3  # IPv6, then IPv6 refused and IPv4


# -- the kernel's curl over TAP -------------------------------------------------------------------
@pytest.mark.peers
async def test_curl_from_the_kernel(kernel: Kernel, tmp_path: Path) -> None:
    """The kernel's curl fetches from aiohttp served by a stack on a TAP device: a handler
    that sees curl's address, an upload, a streamed answer, and the websocket upgrade's
    handshake."""
    from netstack.testing import require_program

    curl = require_program("curl")
    upload = tmp_path / "upload"
    upload.write_bytes(os.urandom(1_000_000))
    runner = await serve(kernel.stack, "0.0.0.0", 8080)
    base = f"http://{kernel.stack_ip}:8080"
    try:
        out = await kernel.run(curl, "-sS", "--max-time", "15", f"{base}/hello")
        assert out == f'{{"remote": "{kernel.ip}", "host": "{kernel.stack_ip}:8080"}}'
        out = await kernel.run(curl, "-sS", "--max-time", "15", "--data-binary",
                               f"@{upload}", f"{base}/digest")  # fmt: skip
        assert out == hashlib.sha256(upload.read_bytes()).hexdigest()
        out = await kernel.run(curl, "-sS", "--max-time", "15", "-o", "/dev/null",
                               "-w", "%{http_code} %{size_download}", f"{base}/stream")  # fmt: skip
        assert out == f"200 {64 * 16384}"
    finally:
        await runner.cleanup()
    assert kernel.stack.stats()["tcp"]["passive_opens"] == 3


@pytest.mark.peers
async def test_curl_downloads_static_files(kernel: Kernel, tmp_path: Path) -> None:
    from netstack.testing import require_program

    curl = require_program("curl")
    root = tmp_path / "www"
    root.mkdir()
    contents = files(root)
    runner = await serve(kernel.stack, "0.0.0.0", 8080, root)
    try:
        for path, name in (("/static/report.bin", "report.bin"), ("/report", "report.bin")):
            out = tmp_path / "download"
            await kernel.run(curl, "-sS", "--max-time", "15", "-o", str(out),
                             f"http://{kernel.stack_ip}:8080{path}")  # fmt: skip
            assert out.read_bytes() == contents[name]
    finally:
        await runner.cleanup()
