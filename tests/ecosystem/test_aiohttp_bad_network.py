"""Test your application under a bad network: an aiohttp application's own test suite, written
with aiohttp's testing utilities as aiohttp documents them (``aiohttp.test_utils.TestServer``
and ``TestClient``), run through netstack's pytest plugin with the client behind a switch port
that loses 5 % of the frames and reorders 2 % (``Impairment(loss=0.05, reorder=0.02,
seed=...)``). TCP makes up for the network; the tests check the application's answers are
whole and that the network really was bad. A failing test prints the seeds, so the same
losses and reorderings can be replayed.

The glue: ``netstack.use`` around starting the server and around the client, and a
``socket_factory`` for ``TestServer`` (one of its documented arguments). TestServer binds an
operating-system socket itself (``socket.bind((host, port))``, which no event loop method sees)
before handing it to ``create_server(sock=...)``; the host does not have the netstack stack's
address, so the socket is bound with ``IP_FREEBIND`` (Linux), and the switch then listens on
the stack at that address and port. (Left at its default, 127.0.0.1, TestServer would work on
one stack, but its client would then reach it over that stack's loopback, never through the
impaired port.)"""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import AsyncIterator

import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestClient, TestServer

import netstack
from netstack.link import Impairment
from netstack.testing import Network

BAD = Impairment(loss=0.05, reorder=0.02, seed=20261)
#: Linux's IP_FREEBIND (the socket module has the name from Python 3.12).
IP_FREEBIND = getattr(socket, "IP_FREEBIND", 15)


# -- the application -------------------------------------------------------------------------------
def create_app() -> web.Application:
    """A small notes service: JSON in and out, uploads, downloads, a websocket feed."""
    notes: dict[str, str] = {}

    async def put_note(request: web.Request) -> web.Response:
        notes[request.match_info["name"]] = (await request.json())["text"]
        return web.json_response({"stored": len(notes)})

    async def get_note(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in notes:
            raise web.HTTPNotFound()
        return web.json_response({"name": name, "text": notes[name]})

    async def upload(request: web.Request) -> web.Response:
        return web.Response(text=hashlib.sha256(await request.read()).hexdigest())

    async def download(request: web.Request) -> web.Response:
        size = int(request.query["size"])
        return web.Response(body=bytes(i % 251 for i in range(size)))

    async def feed(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for message in ws:
            if message.type == WSMsgType.TEXT:
                await ws.send_str(notes.get(message.data, "?"))
        return ws

    app = web.Application()
    app.add_routes([web.put("/notes/{name}", put_note), web.get("/notes/{name}", get_note),
                    web.post("/upload", upload), web.get("/download", download),
                    web.get("/feed", feed)])  # fmt: skip
    return app


# -- the test suite's fixture: the application on one host, its client behind a bad port ----------
def freebind_socket(host: str, port: int, family: socket.AddressFamily) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_IP, IP_FREEBIND, 1)  # an address only the stack has
    sock.bind((host, port))
    return sock


@pytest.fixture
async def client(network: Network) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    server_host = await network.host("198.18.0.10/24")
    client_host = await network.host("198.18.0.20/24", impairment=BAD)
    server = TestServer(create_app(), host="198.18.0.10", socket_factory=freebind_socket)
    with netstack.use(server_host):
        await server.start_server()
    with netstack.use(client_host):
        async with TestClient(server) as test_client:
            yield test_client
    # The network was bad, and TCP made up for it.
    assert client_host.link.stats().tx_dropped + client_host.link.stats().rx_dropped > 0
    retransmits = (
        client_host.stats()["tcp"]["retransmits"] + server_host.stats()["tcp"]["retransmits"]
    )
    assert retransmits > 0


# -- the application's tests, as they would be written for 127.0.0.1 -----------------------------
async def test_notes(client: TestClient[web.Request, web.Application]) -> None:
    for i in range(40):
        response = await client.put(f"/notes/n{i}", json={"text": f"note {i} " + "x" * i})
        assert response.status == 200
        assert (await response.json())["stored"] == i + 1
    for i in range(40):
        response = await client.get(f"/notes/n{i}")
        assert (await response.json())["text"] == f"note {i} " + "x" * i
    assert (await client.get("/notes/missing")).status == 404


async def test_upload_and_download(client: TestClient[web.Request, web.Application]) -> None:
    body = os.urandom(512 * 1024)
    response = await client.post("/upload", data=body)
    assert await response.text() == hashlib.sha256(body).hexdigest()
    response = await client.get("/download", params={"size": str(512 * 1024)})
    assert await response.read() == bytes(i % 251 for i in range(512 * 1024))


async def test_feed(client: TestClient[web.Request, web.Application]) -> None:
    await client.put("/notes/hello", json={"text": "world"})
    async with client.ws_connect("/feed") as ws:
        for _ in range(30):
            await ws.send_str("hello")
            assert await ws.receive_str() == "world"
