"""``usermode``: netstack beside what people run instead (slirp4netns, a user-mode stack in C
on libslirp) and the kernel itself, in one run, with the same kernel client everywhere.

The client is always the kernel of a namespace behind the stack under test, driven by
:mod:`benchmarks.tcppeer` (``source`` to send, ``fetch`` to receive), and the rate is what
that client measured: bytes over the seconds from connected to the far end's EOF, so that
everything counted was delivered. ``direction`` ``into`` means the namespace's kernel sends
(into the stack under test), ``out`` that it receives.

``usermode_bulk`` (Mbit/s):

- ``netstack-tap``: the namespace's kernel on a TAP device, netstack on its other end
  terminating the connection itself (a discard server for ``into``; for ``out`` a server
  that writes 64 KiB chunks with ``write()`` + ``drain()`` for the duration). At MTU 1500
  without offloads, with offloads (``offloads`` on, where the TAP link has them; without
  them the line is ``skipped``), and at MTU 65520 without and with them (at 65520 a
  segment is already 64 KiB: the offloads save the checksums, not segments).
- ``slirp4netns``: ``slirp4netns --configure --mtu M --cidr 198.18.4.0/24`` attaches the
  client's namespace through its own TAP device, and itself runs in a second namespace, the
  "host" side, where the server (``tcppeer sink`` / ``give``) listens on 198.18.5.1 on the
  loopback device. slirp4netns relays each connection through a socket of its own in that
  namespace, which has no other device and no route: nothing can leave the machine (the
  line carries that namespace's ``routes``). DNS forwarding is off (``--disable-dns``).
  MTU 1500 and 65520.
- ``kernel-veth``: the client in one namespace, the server in another, joined by a veth
  pair (the kernel's default offloads), MTU 1500 and 65520. Independent of the event loop:
  measured on the first loop of a run only.

``usermode_connect`` (connections/s): ``tcppeer connect`` (an asyncio client process; one
cycle is connect, 100 bytes each way, the server's close; 1 and 16 at once) against an echo
server: netstack's over TAP (MTU 1500), asyncio's on 127.0.0.1 (``kernel-asyncio-loopback``,
the reference of :mod:`benchmarks.tcp`), ``tcppeer echo`` behind slirp4netns, and over veth.

``usermode_dns`` (answers/s): :mod:`benchmarks.dns`'s ``dns_tap_qps`` lines (netstack's
server over TAP, the same server code on the host's sockets) and its NSD reference.

Every namespace is created here, addressed from 198.18.0.0/15, and deleted (processes first)
on the way out; a missing peer (slirp4netns, nsd, root) gives a ``skipped`` line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from netstack.netns import Namespace, tap_unavailable_reason

from .common import Emitter, Settings, log, summarize, veth_unavailable_reason
from .dns import run_tap_qps
from .sandbox import KERNEL_B, Peer, veth_pair
from .tap import tap_offload_option, tap_sandbox
from .tcp import (
    CONCURRENCY,
    LOOPBACK,
    TIMEOUT,
    Discard,
    EchoCounts,
    _peer_to_server,
    close_stdin,
    echo_server,
    mbit,
    ready_port,
    send_for,
    server_port,
    start_tcp_peer,
)

__all__ = ["NAMES", "run_usermode"]

NAMES = ("usermode_bulk", "usermode_connect", "usermode_dns")
PORT = 5301
JUMBO = 65520
DIRECTIONS = ("into", "out")
#: slirp4netns's side: the client's network and the server's address on the host side.
SLIRP_CIDR = "198.18.4.0/24"
SLIRP_SERVER = "198.18.5.1"
SLIRP_TIMEOUT = 10.0

#: A server for one transfer: (direction) -> (port, and what to await when it is done).
Serve = Callable[[str], Awaitable[tuple[int, Callable[[], Awaitable[None]]]]]


# -- one transfer, measured by the client -----------------------------------------------------
async def client_transfer(
    ns: Namespace, host: str, port: int, direction: str, seconds: float
) -> dict[str, Any]:
    """The namespace's kernel sends (``into``) or receives (``out``) for ``seconds``."""
    if direction == "into":
        peer = start_tcp_peer(ns, "source", host, str(port), str(seconds))
    else:
        peer = start_tcp_peer(ns, "fetch", host, str(port), str(seconds + TIMEOUT))
    try:
        got = await peer.json(seconds + TIMEOUT)
    finally:
        peer.kill()
    elapsed = got["seconds_to_eof"] if direction == "into" else got["seconds"]
    return {"rate": mbit(got["bytes"], elapsed), "bytes": got["bytes"]}


async def transfers(
    ns: Namespace, host: str, serve: Serve, direction: str, settings: Settings
) -> dict[str, Any]:
    seconds = settings.tap_seconds
    runs = []
    for _ in range(settings.tcp_repeats):
        port, done = await serve(direction)
        try:
            runs.append(await client_transfer(ns, host, port, direction, seconds))
        finally:
            await done()
    return {
        "summary": summarize([r["rate"] for r in runs]),
        "bytes": sum(r["bytes"] for r in runs),
        "seconds": seconds,
    }


def kernel_server(ns: Namespace, host: str, seconds: float) -> Serve:
    """``tcppeer sink`` (``into``) or ``give`` (``out``) in ``ns``, one per transfer."""

    async def serve(direction: str) -> tuple[int, Callable[[], Awaitable[None]]]:
        if direction == "into":
            peer = start_tcp_peer(ns, "sink", host, str(PORT), str(seconds + TIMEOUT))
        else:
            peer = start_tcp_peer(ns, "give", host, str(PORT), str(seconds), str(seconds + TIMEOUT))
        port = await ready_port(peer)

        async def done() -> None:
            try:
                await peer.json(TIMEOUT)
            finally:
                peer.kill()

        return port, done

    return serve


def netstack_server(discard: Discard, servers: dict[str, Any]) -> Serve:
    """netstack's discard server (``into``) and writing server (``out``), started once."""

    async def serve(direction: str) -> tuple[int, Callable[[], Awaitable[None]]]:
        async def done() -> None:
            if direction == "into":
                await discard.result()

        return server_port(servers[direction]), done

    return serve


class _Give:
    """A netstack server that writes for ``seconds`` and closes, one connection at a time."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await send_for(writer, self.seconds)
            await reader.read()  # until the client's EOF
        finally:
            writer.close()


# -- the setups -------------------------------------------------------------------------------
async def bulk_netstack(emit: Emitter, settings: Settings) -> None:
    reason = tap_unavailable_reason()
    setups: list[tuple[int, bool]] = [(1500, False), (1500, True), (JUMBO, False), (JUMBO, True)]
    for mtu, offload in setups:
        fields = {"mtu": mtu, "offloads": "on" if offload else "off", "client": "tcppeer"}
        why = reason
        if why is None and tap_offload_option() is None and offload:
            why = "TapLink has no offloads"
        if why is not None:
            for direction in DIRECTIONS:
                emit.skip("usermode_bulk", "netstack-tap", "Mbit/s", why,
                          direction=direction, **fields)  # fmt: skip
            continue
        # Without the option, the link has no offloads to switch off.
        kw = {"offload": offload} if tap_offload_option() is not None else {}
        async with tap_sandbox(mtu=mtu, **kw) as box:
            discard = Discard()
            give = _Give(settings.tap_seconds)
            servers = {
                "into": await box.stack.start_server(discard, KERNEL_B, PORT),
                "out": await box.stack.start_server(give, KERNEL_B, PORT + 1),
            }

            serve = netstack_server(discard, servers)
            try:
                for direction in DIRECTIONS:
                    log(f"usermode_bulk netstack-tap mtu {mtu} offload {offload} {direction} "
                        f"on {emit.loop}")  # fmt: skip
                    before = box.stack.stats()["tcp"]["retransmits"]
                    r = await transfers(box.ns, KERNEL_B, serve, direction, settings)
                    emit.emit_summary(
                        "usermode_bulk", "netstack-tap", "Mbit/s", r.pop("summary"),
                        direction=direction, **fields, **r,
                        retransmits=box.stack.stats()["tcp"]["retransmits"] - before,
                        link_offloads=str(getattr(box.link, "offloads", None)),
                    )  # fmt: skip
            finally:
                for server in servers.values():
                    server.close()


@dataclass
class SlirpPath:
    """The client's namespace attached by slirp4netns running in ``host``."""

    client: Namespace
    host: Namespace
    proc: subprocess.Popen[bytes]

    def routes(self) -> list[str]:
        """Every route of the host side's namespace (evidence that it leads nowhere)."""
        out = self.host.ip("-j", "route", "show", "table", "all").stdout
        return [f"{r.get('dst')} dev {r.get('dev')}" for r in json.loads(out or "[]")]


def slirp_unavailable_reason() -> str | None:
    if shutil.which("slirp4netns") is None:
        return "slirp4netns is not installed (Debian: slirp4netns)"
    return veth_unavailable_reason()


@contextlib.contextmanager
def slirp_path(mtu: int) -> Iterator[SlirpPath]:
    """Two fresh namespaces: the client's, whose only link is slirp4netns's TAP device, and
    the host side's, where slirp4netns runs and the servers listen on 198.18.5.1 (lo)."""
    made: list[Namespace] = []
    proc: subprocess.Popen[bytes] | None = None
    try:
        client = Namespace.create()
        made.append(client)
        host = Namespace.create()
        made.append(host)
        host.ip("link", "set", "lo", "up")
        host.ip("addr", "add", f"{SLIRP_SERVER}/32", "dev", "lo")
        proc = host.popen(
            "slirp4netns", "--configure", f"--mtu={mtu}", f"--cidr={SLIRP_CIDR}",
            "--disable-host-loopback", "--disable-dns",
            "--netns-type=path", f"/run/netns/{client.name}", "tap0",
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        deadline = time.monotonic() + SLIRP_TIMEOUT
        while True:
            out = client.run("ip", "-j", "-4", "addr", "show", "dev", "tap0", check=False)
            if out.returncode == 0 and json.loads(out.stdout or "[]") and "inet" in out.stdout:
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                raise RuntimeError(f"slirp4netns did not configure tap0: {err.strip()[-300:]}")
            time.sleep(0.05)
        yield SlirpPath(client, host, proc)
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5.0)
        for ns in reversed(made):
            ns.delete()


def slirp_version() -> str:
    out = subprocess.run(["slirp4netns", "--version"], capture_output=True, text=True, timeout=5)
    lines = [x for x in out.stdout.splitlines() if x.startswith(("slirp4netns", "libslirp"))]
    return "; ".join(lines)


@contextlib.contextmanager
def slirp_setup(mtu: int) -> Iterator[tuple[Namespace, Namespace, str, dict[str, Any]]]:
    with slirp_path(mtu) as path:
        yield (
            path.client,
            path.host,
            SLIRP_SERVER,
            {"version": slirp_version(), "host_side_routes": path.routes()},
        )


@contextlib.contextmanager
def veth_setup(mtu: int) -> Iterator[tuple[Namespace, Namespace, str, dict[str, Any]]]:
    with veth_pair(mtu) as pair:
        yield pair.a, pair.b, KERNEL_B, {"offloads": "default"}


#: (the client's namespace, the server's, the server's address, fields for the line)
KernelSetup = Callable[[int], contextlib.AbstractContextManager[
    tuple[Namespace, Namespace, str, dict[str, Any]]
]]  # fmt: skip


async def bulk_kernel(
    emit: Emitter, settings: Settings, impl: str, reason: str | None, setup: KernelSetup
) -> None:
    """The same client against ``tcppeer sink`` / ``give`` behind slirp4netns or a veth
    pair (no event loop of ours involved: ``loop`` null)."""
    for mtu in (1500, JUMBO):
        if reason is not None:
            for direction in DIRECTIONS:
                emit.skip("usermode_bulk", impl, "Mbit/s", reason,
                          direction=direction, mtu=mtu, loop=None)  # fmt: skip
            continue
        with setup(mtu) as (client, server, host, fields):
            serve = kernel_server(server, host, settings.tap_seconds)
            for direction in DIRECTIONS:
                log(f"usermode_bulk {impl} mtu {mtu} {direction}")
                r = await transfers(client, host, serve, direction, settings)
                emit.emit_summary(
                    "usermode_bulk", impl, "Mbit/s", r.pop("summary"), direction=direction,
                    mtu=mtu, client="tcppeer", loop=None, **fields, **r,
                )  # fmt: skip


# -- connection rate --------------------------------------------------------------------------
@contextlib.asynccontextmanager
async def echo_peer(ns: Namespace, host: str, settings: Settings) -> AsyncIterator[int]:
    """``tcppeer echo`` in ``ns`` on ``host``; yields its port."""
    longest = (settings.tcp_conn_seconds + 1.0) * (settings.tcp_repeats + 1) * 2 + TIMEOUT
    peer: Peer = start_tcp_peer(ns, "echo", host, str(PORT), str(longest), "100")
    try:
        yield await ready_port(peer)
    finally:
        close_stdin(peer)
        peer.kill()


async def connect_rates(
    emit: Emitter, settings: Settings, impl: str, ns: Namespace | None, host: str, port: int,
    **fields: Any,
) -> None:  # fmt: skip
    for concurrency in CONCURRENCY:
        log(f"usermode_connect {impl} concurrency {concurrency} on {emit.loop}")
        r = await _peer_to_server(
            ns, host, port, settings.tcp_conn_seconds, settings.tcp_repeats, concurrency
        )
        emit.emit_summary(
            "usermode_connect", impl, "connections/s", r.pop("summary"),
            concurrency=concurrency, client="tcppeer connect", **fields, **r,
        )  # fmt: skip


async def run_connect(emit: Emitter, settings: Settings, first: bool) -> None:
    reason = tap_unavailable_reason()
    if reason is not None:
        emit.skip("usermode_connect", "netstack-tap", "connections/s", reason)
    else:
        async with tap_sandbox() as box:
            server = await box.stack.start_server(echo_server(EchoCounts()), KERNEL_B, PORT)
            try:
                await connect_rates(emit, settings, "netstack-tap", box.ns, KERNEL_B, PORT,
                                    mtu=box.link.mtu)  # fmt: skip
            finally:
                server.close()
    kserver = await asyncio.start_server(echo_server(EchoCounts()), LOOPBACK, 0, backlog=4096)
    try:
        await connect_rates(emit, settings, "kernel-asyncio-loopback", None, LOOPBACK,
                            server_port(kserver))  # fmt: skip
    finally:
        kserver.close()
    if not first:
        return
    reason = slirp_unavailable_reason()
    if reason is not None:
        emit.skip("usermode_connect", "slirp4netns", "connections/s", reason, loop=None)
    else:
        with slirp_path(1500) as path:
            async with echo_peer(path.host, SLIRP_SERVER, settings) as port:
                await connect_rates(emit, settings, "slirp4netns", path.client, SLIRP_SERVER,
                                    port, mtu=1500, loop=None)  # fmt: skip
    reason = veth_unavailable_reason()
    if reason is not None:
        emit.skip("usermode_connect", "kernel-veth", "connections/s", reason, loop=None)
    else:
        with veth_pair() as pair:
            async with echo_peer(pair.b, KERNEL_B, settings) as port:
                await connect_rates(emit, settings, "kernel-veth", pair.a, KERNEL_B, port,
                                    mtu=1500, loop=None)  # fmt: skip


# -- the group --------------------------------------------------------------------------------
async def run_usermode(emit: Emitter, settings: Settings, names: set[str], *, first: bool) -> None:
    """The ``usermode`` measurements in ``names``; the loop-independent ones (slirp4netns,
    veth, NSD) only when ``first``."""
    if "usermode_bulk" in names:
        await bulk_netstack(emit, settings)
        if first:
            await bulk_kernel(emit, settings, "slirp4netns", slirp_unavailable_reason(),
                              slirp_setup)  # fmt: skip
            await bulk_kernel(emit, settings, "kernel-veth", veth_unavailable_reason(),
                              veth_setup)  # fmt: skip
    if "usermode_connect" in names:
        await run_connect(emit, settings, first)
    if "usermode_dns" in names:
        if tap_unavailable_reason() is not None:
            emit.skip("dns_tap_qps", "netstack-tap", "answers/s", "needs root")
        else:
            await run_tap_qps(emit, settings)  # NSD's line beside it
