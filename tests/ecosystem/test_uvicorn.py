"""uvicorn serving a Starlette application on netstack through ``netstack.use``, run
programmatically as uvicorn's documentation shows it (``uvicorn.Config(app, host=...,
port=...)``, ``await uvicorn.Server(config).serve()``): HTTP with the lifespan, a streamed
answer, an upload and a websocket route, HTTPS from uvicorn's own ``ssl_certfile`` /
``ssl_keyfile``; fetched by httpx and websockets on the other stack, and by the kernel's curl
over TAP. No glue beyond the switch.

(``uvicorn.run(app)`` makes and runs its own event loop, so there is no running loop to enter
the switch in before it listens; the programmatic form is uvicorn's documented way to serve
from inside a running loop.)"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import uvicorn
from conftest import CLIENT_IP, SERVER_IP, STEP, Kernel, Net, Pki
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from websockets.asyncio.client import connect

import netstack

CHUNK, CHUNKS = 65536, 32


def make_app() -> Starlette:
    state = {"started": False}

    async def home(request: Request) -> JSONResponse:
        assert request.client is not None
        return JSONResponse(
            {"client": request.client.host, "scheme": request.url.scheme,
             "started": state["started"]}
        )  # fmt: skip

    async def upload(request: Request) -> PlainTextResponse:
        return PlainTextResponse(hashlib.sha256(await request.body()).hexdigest())

    async def stream(request: Request) -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            for i in range(CHUNKS):
                yield bytes([i]) * CHUNK

        return StreamingResponse(chunks(), media_type="application/octet-stream")

    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        assert websocket.client is not None
        await websocket.send_text(f"hello {websocket.client.host}")
        async for message in websocket.iter_text():
            await websocket.send_text(message)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state["started"] = True
        yield

    routes = [Route("/", home), Route("/upload", upload, methods=["POST"]),
              Route("/stream", stream), WebSocketRoute("/ws", echo)]  # fmt: skip
    return Starlette(routes=routes, lifespan=lifespan)


@contextlib.asynccontextmanager
async def uvicorn_on(stack: netstack.Stack, **config: Any) -> AsyncIterator[uvicorn.Server]:
    """``await uvicorn.Server(uvicorn.Config(app, ...)).serve()`` under the switch, in a task,
    until uvicorn says it started; asked to exit afterwards, as its signal handler does."""
    server = uvicorn.Server(uvicorn.Config(make_app(), log_level="warning", **config))
    with netstack.use(stack):
        serving = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(STEP):
            while not server.started:
                assert not serving.done(), serving.exception()
                await asyncio.sleep(0.01)
        yield server
    finally:
        server.should_exit = True
        async with asyncio.timeout(STEP):
            await serving


async def test_starlette_on_uvicorn(net: Net) -> None:
    async with uvicorn_on(net.server, host=SERVER_IP, port=8000):
        async with asyncio.timeout(STEP):
            with netstack.use(net.client):
                async with httpx.AsyncClient(base_url="http://server.test:8000") as client:
                    response = await client.get("/")
                    assert response.json() == {
                        "client": CLIENT_IP, "scheme": "http", "started": True,
                    }  # fmt: skip
                    body = os.urandom(1 << 20)
                    response = await client.post("/upload", content=body)
                    assert response.text == hashlib.sha256(body).hexdigest()
                    async with client.stream("GET", "/stream") as response:
                        got = b"".join([chunk async for chunk in response.aiter_bytes()])
                    assert got == b"".join(bytes([i]) * CHUNK for i in range(CHUNKS))
                async with connect("ws://server.test:8000/ws") as websocket:
                    assert await websocket.recv() == f"hello {CLIENT_IP}"
                    await websocket.send("through uvicorn")
                    assert await websocket.recv() == "through uvicorn"
    assert net.server.stats()["tcp"]["passive_opens"] >= 2


async def test_https(net: Net, pki: Pki) -> None:
    """uvicorn makes its own SSLContext from ``ssl_certfile`` / ``ssl_keyfile``."""
    async with uvicorn_on(net.server, host=SERVER_IP, port=8443,
                          ssl_certfile=str(pki.cert), ssl_keyfile=str(pki.key)):  # fmt: skip
        async with asyncio.timeout(STEP):
            with netstack.use(net.client):
                async with httpx.AsyncClient(verify=pki.client_ssl()) as client:
                    response = await client.get("https://server.test:8443/")
                    assert response.json()["scheme"] == "https"
                    assert response.json()["client"] == CLIENT_IP


@pytest.mark.peers
async def test_curl_from_the_kernel(kernel: Kernel) -> None:
    from netstack.testing import require_program

    curl = require_program("curl")
    async with uvicorn_on(kernel.stack, host="0.0.0.0", port=8000):
        base = f"http://{kernel.stack_ip}:8000"
        out = await kernel.run(curl, "-sS", "--max-time", "15", f"{base}/")
        assert out == f'{{"client":"{kernel.ip}","scheme":"http","started":true}}'
        out = await kernel.run(curl, "-sS", "--max-time", "15", "-o", "/dev/null",
                               "-w", "%{http_code} %{size_download}", f"{base}/stream")  # fmt: skip
        assert out == f"200 {CHUNK * CHUNKS}"
