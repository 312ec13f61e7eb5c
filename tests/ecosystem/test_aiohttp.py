"""aiohttp on netstack through ``netstack.use``, as aiohttp's documentation shows it: a server
with ``web.AppRunner`` / ``web.TCPSite``, a client with ``ClientSession`` (its connector takes
the socket path: ``getaddrinfo``, aiohappyeyeballs' ``sock_connect``, then
``create_connection(sock=...)``, and sets ``TCP_NODELAY`` / ``SO_KEEPALIVE`` through
``get_extra_info("socket")``); plain HTTP and HTTPS. No glue beyond the switch."""

from __future__ import annotations

import asyncio
import hashlib

import aiohttp
import pytest
from aiohttp import web
from conftest import CLIENT_IP, SERVER_IP, STEP, Net, Pki

import netstack


def make_app() -> web.Application:
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

    app = web.Application()
    app.add_routes([web.get("/hello", hello), web.post("/digest", digest),
                    web.get("/stream", stream)])  # fmt: skip
    return app


async def serve(net: Net, port: int, **site: object) -> web.AppRunner:
    with netstack.use(net.server):
        runner = web.AppRunner(make_app())
        await runner.setup()
        await web.TCPSite(runner, SERVER_IP, port, **site).start()  # type: ignore[arg-type]
    return runner


async def test_server_and_client(net: Net) -> None:
    runner = await serve(net, 8080)
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


async def test_https(net: Net, pki: Pki) -> None:
    runner = await serve(net, 8443, ssl_context=pki.server_ssl())
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
