"""asyncio parity against the Linux kernel over TAP (PEERS.md): a file sent with
``loop.sendfile`` / ``transport.sendfile`` arrives whole at a kernel client (socat), and
``happy_eyeballs_delay`` races past an IPv4 address nobody answers to the kernel's IPv6
listener (RFC 8305). Server-side STARTTLS against ``openssl s_client -starttls smtp`` is in
test_tls_peers.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from peerkit import body, in_netns, peer, sha256, wait_listening

from netstack import Stack
from netstack.testing import TapSandbox, require_program

pytestmark = pytest.mark.peers

NETSTACK = "198.18.0.2"
#: On the TAP link, owned by nobody: ARP for it goes unanswered (a black hole for a while).
NOBODY4 = "198.18.0.99"


def on_uvloop() -> bool:
    return type(asyncio.get_running_loop()).__module__.startswith("uvloop")


@pytest.mark.parametrize("how", ["loop", "transport"])
async def test_kernel_client_receives_a_sendfile(
    tap_stack: Stack, tap_netns: TapSandbox, tmp_path: Path, how: str
) -> None:
    """8 MB sent with ``loop.sendfile`` (asyncio's loop; uvloop has none) or the
    transport's ``sendfile`` (any loop) reach ``socat`` in the namespace intact."""
    if how == "loop" and on_uvloop():
        pytest.skip("uvloop implements loop.sendfile for no transport")
    socat = require_program("socat")
    data = body(8 * 1024 * 1024 + 7)
    path = tmp_path / "blob"
    path.write_bytes(data)
    sent: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        transport: Any = writer.transport
        with path.open("rb") as f:
            if how == "loop":
                sent.append(await asyncio.get_running_loop().sendfile(transport, f))
            else:
                sent.append(await transport.sendfile(f))
        writer.close()

    server = await tap_stack.start_server(handle, port=8080)
    try:
        out = await in_netns(
            tap_netns, "sh", "-c", f"{socat} -u TCP:{NETSTACK}:8080 - | sha256sum", timeout=60
        )
    finally:
        server.close()
    assert out.split()[0] == sha256(data)
    assert sent == [len(data)]


@pytest.fixture
async def stack6(tap_netns: TapSandbox) -> AsyncIterator[Stack]:
    """netstack on the TAP device with IPv4 and IPv6 (fd00:198:18::2/64)."""
    stack = await Stack.open(tap_netns.link, ipv4=tap_netns.stack_ipv4, ipv6=tap_netns.stack_ipv6)
    try:
        yield stack
    finally:
        await stack.close()


async def test_happy_eyeballs_to_the_kernel(stack6: Stack, tap_netns: TapSandbox) -> None:
    """A name with an IPv4 address nobody answers ARP for (tried first: RFC 6724 ranks IPv4
    above unique local IPv6) and the kernel's IPv6 address: with ``happy_eyeballs_delay``
    the IPv6 attempt starts while the first still waits, and the kernel's listener wins."""
    socat = require_program("socat")
    stack6.dns.hosts["kernel.test"] = [NOBODY4, tap_netns.kernel_ipv6]
    async with peer(tap_netns, socat, "TCP6-LISTEN:8080,reuseaddr", "SYSTEM:echo hello"):
        await wait_listening(tap_netns, 8080)
        async with asyncio.timeout(30):
            reader, writer = await stack6.open_connection(
                "kernel.test", 8080, happy_eyeballs_delay=0.1
            )
            assert writer.get_extra_info("peername")[0] == tap_netns.kernel_ipv6
            # Won while the IPv4 attempt still waited for ARP (one after the other, the
            # IPv6 attempt would have started only once ARP had given up).
            assert (NOBODY4, None, "incomplete") in stack6.arp_table()
            assert await reader.readline() == b"hello\n"
            writer.close()
    # The IPv4 attempt was abandoned when the IPv6 one won.
    assert all(len(conn.remote[0]) == 16 for conn in stack6.tcp.connections.values())


async def test_aiohttp_file_response_to_curl(
    tap_stack: Stack, tap_netns: TapSandbox, tmp_path: Path
) -> None:
    """aiohttp's ``FileResponse`` served by netstack reaches the kernel's curl whole, on
    either loop (asyncio's ``loop.sendfile`` falls back to chunks on a netstack transport;
    uvloop has no ``loop.sendfile`` and aiohttp writes the chunks itself). Before, the body
    was cut short on asyncio's loop: "sendfile is not supported"."""
    web = pytest.importorskip("aiohttp.web")
    curl = require_program("curl")
    data = body(5 * 1024 * 1024 + 3)
    path = tmp_path / "static.bin"
    path.write_bytes(data)

    async def static(request: Any) -> Any:
        return web.FileResponse(path)

    app = web.Application()
    app.router.add_get("/static.bin", static)
    runner = web.AppRunner(app)
    await runner.setup()
    assert runner.server is not None
    server = await tap_stack.create_server(runner.server, port=8080)
    try:
        out = await in_netns(
            tap_netns, "sh", "-c",
            f"{curl} -sS --max-time 30 http://{NETSTACK}:8080/static.bin | sha256sum",
            timeout=60,
        )  # fmt: skip
    finally:
        server.close()
        await runner.cleanup()
    assert out.split()[0] == sha256(data)
