"""websockets on netstack through ``netstack.use``, as its documentation shows it
(``websockets.asyncio.server.serve`` and ``websockets.asyncio.client.connect``), over ws://
and wss://. No glue beyond the switch."""

from __future__ import annotations

import asyncio

from conftest import CLIENT_IP, SERVER_IP, STEP, Net, Pki
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

import netstack


async def echo(websocket: ServerConnection) -> None:
    await websocket.send(f"hello {websocket.remote_address[0]}")
    async for message in websocket:
        await websocket.send(message)


async def test_serve_and_connect(net: Net) -> None:
    async with asyncio.timeout(STEP):
        with netstack.use(net.server):
            server = await serve(echo, SERVER_IP, 8765)
        try:
            with netstack.use(net.client):
                async with connect("ws://server.test:8765") as websocket:
                    assert await websocket.recv() == f"hello {CLIENT_IP}"
                    assert websocket.remote_address == (SERVER_IP, 8765)
                    for size in (1, 1000, 300_000):
                        message = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
                        await websocket.send(message)
                        assert await websocket.recv() == message
                    await websocket.ping()
        finally:
            server.close()
            await server.wait_closed()
    assert net.server.stats()["tcp"]["passive_opens"] == 1


async def test_wss(net: Net, pki: Pki) -> None:
    async with asyncio.timeout(STEP):
        with netstack.use(net.server):
            server = await serve(echo, SERVER_IP, 8443, ssl=pki.server_ssl())
        try:
            with netstack.use(net.client):
                async with connect("wss://server.test:8443", ssl=pki.client_ssl()) as ws:
                    assert await ws.recv() == f"hello {CLIENT_IP}"
                    await ws.send("over TLS")
                    assert await ws.recv() == "over TLS"
        finally:
            server.close()
            await server.wait_closed()
