"""websockets on netstack through ``netstack.use``, as its documentation shows it
(``websockets.asyncio.server.serve`` and ``websockets.asyncio.client.connect``), over ws://
and wss:// with either TLS engine on either side (an ``ssl.SSLContext``, or netstack's own
``TLSConfig``: websockets passes ``ssl=`` on to the loop untouched), in memory and to
websockets' client on the kernel's sockets in a namespace over TAP. No glue beyond the
switch."""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import pytest
from conftest import CLIENT_IP, SERVER_IP, STEP, Kernel, Net, Pki
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


ENGINES = {
    "openssl": (Pki.server_ssl, Pki.client_ssl),
    "netstack": (Pki.server_tls, Pki.client_tls),
}


def engine_of(transport: Any) -> str:
    """Which TLS engine carries a connection: OpenSSL's object, or netstack's own."""
    ssl_object = transport.get_extra_info("ssl_object")
    assert ssl_object is not None
    return "openssl" if isinstance(ssl_object, ssl.SSLObject) else "netstack"


@pytest.mark.parametrize("client_engine", ENGINES)
@pytest.mark.parametrize("server_engine", ENGINES)
async def test_wss(net: Net, pki: Pki, server_engine: str, client_engine: str) -> None:
    engines: list[str] = []

    async def handler(websocket: ServerConnection) -> None:
        engines.append(engine_of(websocket.transport))
        await echo(websocket)

    server_ssl = ENGINES[server_engine][0](pki)
    client_ssl = ENGINES[client_engine][1](pki)
    async with asyncio.timeout(STEP):
        with netstack.use(net.server):
            server = await serve(handler, SERVER_IP, 8443, ssl=server_ssl)
        try:
            with netstack.use(net.client):
                async with connect("wss://server.test:8443", ssl=client_ssl) as ws:
                    assert await ws.recv() == f"hello {CLIENT_IP}"
                    await ws.send("over TLS")
                    assert await ws.recv() == "over TLS"
                    engines.append(engine_of(ws.transport))
                    assert ws.transport.get_extra_info("peercert")["subjectAltName"][0] == (
                        "DNS", "server.test",
                    )  # fmt: skip
        finally:
            server.close()
            await server.wait_closed()
    assert engines == [server_engine, client_engine]


# -- websockets' client on the kernel's sockets, over TAP ----------------------------------------
KERNEL_CLIENT = """
import asyncio, ssl, sys
from websockets.asyncio.client import connect

async def main(url, cafile):
    context = ssl.create_default_context(cafile=cafile) if url.startswith("wss:") else None
    async with connect(url, ssl=context) as websocket:
        print(await websocket.recv())
        message = bytes(range(256)) * 1000
        await websocket.send(message)
        assert await websocket.recv() == message
        await websocket.send("done")
        print(await websocket.recv())

asyncio.run(main(*sys.argv[1:]))
"""


@pytest.mark.peers
@pytest.mark.parametrize("scheme", ["ws", "wss"])
async def test_kernel_client(kernel: Kernel, pki: Pki, scheme: str) -> None:
    """websockets' own client, run by the kernel in the namespace, against websockets' server
    on a stack on the TAP device (wss://: netstack's TLS engine against OpenSSL's)."""
    tls = pki.server_tls() if scheme == "wss" else None
    with netstack.use(kernel.stack):
        server = await serve(echo, kernel.stack_ip, 8765, ssl=tls)
    try:
        url = f"{scheme}://{kernel.stack_ip}:8765"
        out = await kernel.python(KERNEL_CLIENT, url, str(pki.ca))
        assert out.splitlines() == [f"hello {kernel.ip}", "done"]
    finally:
        server.close()
        await server.wait_closed()
