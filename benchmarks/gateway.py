"""``gateway``: netstack's user-mode gateway (:mod:`netstack.gateway`) beside slirp4netns, in
one run, with the same client and server: iperf3.

``gateway_iperf3`` (Mbit/s, what iperf3's receiving end counted): an iperf3 client in the guest
namespace against ``iperf3 -s`` in a second namespace, the "host" side (198.18.5.1 on its
loopback device; no other device, no route: nothing leaves the machine). ``direction``
``into`` means the guest sends (``iperf3 -c``), ``out`` that it receives (``-R``).

- ``netstack-gateway``: the guest's only device is a TAP link whose other end is
  :func:`netstack.gateway.start` in this process, on this run's event loop; its host sockets
  are made in the host namespace (``Namespace.entered``). Every connection, iperf3's control
  connection and its data connection, is terminated by netstack and relayed through a host
  socket. The guest is configured statically (198.19.0.100/24 via 198.19.0.2). The TAP
  link's offloads are TapLink's default (on unless ``NETSTACK_OFFLOAD=0``; the line's
  ``link_offloads``): the gateway is an endpoint, and takes and sends super-segments.
- ``slirp4netns``: ``slirp4netns --configure --mtu M`` attaching the guest from the host
  namespace (:func:`benchmarks.usermode.slirp_path`), which relays the same way, in C on
  libslirp. Loop-independent: measured on the first loop of a run only.

MTU 1500 and 65520 for both.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
from collections.abc import AsyncIterator
from typing import Any

from netstack.netns import Namespace, open_tap_in_namespace, tap_unavailable_reason

from .common import Emitter, Settings, log, summarize
from .usermode import JUMBO, SLIRP_SERVER, slirp_path, slirp_unavailable_reason, slirp_version

__all__ = ["NAMES", "run_gateway"]

NAMES = ("gateway_iperf3",)
SERVER = SLIRP_SERVER
PORT = 5311
DIRECTIONS = ("into", "out")
TIMEOUT = 30.0


def iperf3_unavailable_reason() -> str | None:
    if shutil.which("iperf3") is None:
        return "iperf3 is not installed (Debian: iperf3)"
    return None


async def iperf3_once(guest: Namespace, host: Namespace, direction: str, seconds: int) -> float:
    """One iperf3 run from ``guest`` to the server in ``host``; Mbit/s at the receiver."""
    server = host.popen(
        "iperf3", "-s", "-1", "-B", SERVER, "-p", str(PORT),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        async with asyncio.timeout(10):
            while not (await host.arun("ss", "-Hltn", f"sport = :{PORT}")).stdout.strip():
                await asyncio.sleep(0.05)
        argv = ["iperf3", "-c", SERVER, "-p", str(PORT), "-t", str(seconds), "-J"]
        if direction == "out":
            argv.append("-R")
        done = await guest.arun(*argv, check=False, timeout=seconds + TIMEOUT)
        result = json.loads(done.stdout or "{}")
        if "error" in result or "end" not in result:
            raise RuntimeError(f"iperf3 failed: {result.get('error', done.stderr.strip())}")
        return float(result["end"]["sum_received"]["bits_per_second"]) / 1e6
    finally:
        if server.poll() is None:
            server.kill()
        server.wait(timeout=5)


async def measure(
    emit: Emitter, settings: Settings, impl: str, guest: Namespace, host: Namespace,
    **fields: Any,
) -> None:  # fmt: skip
    seconds = max(2, round(settings.tap_seconds))
    for direction in DIRECTIONS:
        log(f"gateway_iperf3 {impl} mtu {fields['mtu']} {direction} on {fields.get('loop')}")
        rates = [
            await iperf3_once(guest, host, direction, seconds) for _ in range(settings.tcp_repeats)
        ]
        emit.emit_summary("gateway_iperf3", impl, "Mbit/s", summarize(rates),
                          direction=direction, seconds=seconds, **fields)  # fmt: skip


@contextlib.asynccontextmanager
async def netstack_gateway(mtu: int) -> AsyncIterator[tuple[Namespace, Namespace, Any]]:
    """The guest and host namespaces with netstack's gateway between them."""
    import netstack.gateway

    with Namespace.create() as guest, Namespace.create() as host:
        host.ip("addr", "add", f"{SERVER}/32", "dev", "lo")
        with host.entered():
            link = open_tap_in_namespace(
                guest, kernel_ipv4="198.19.0.100/24", kernel_ipv6=None, mtu=mtu
            )
            guest.ip("route", "add", "default", "via", "198.19.0.2")
            gw = await netstack.gateway.start(link, network="198.19.0.0/24", ipv6=None, dhcp=False)
            try:
                yield guest, host, gw
            finally:
                await gw.close()


async def run_gateway(emit: Emitter, settings: Settings, *, first: bool) -> None:
    reason = tap_unavailable_reason() or iperf3_unavailable_reason()
    for mtu in (1500, JUMBO):
        if reason is not None:
            emit.skip("gateway_iperf3", "netstack-gateway", "Mbit/s", reason, mtu=mtu)
            continue
        async with netstack_gateway(mtu) as (guest, host, gw):
            offloads = getattr(gw.stack.interfaces[0].link, "offloads", None)
            await measure(emit, settings, "netstack-gateway", guest, host, mtu=mtu,
                          loop=emit.loop, link_offloads=str(offloads))  # fmt: skip
            stats = gw.stats()
            log(f"gateway: {stats['tcp_flows']} flows, {stats['tcp_pauses']} pauses")
    if not first:
        return
    reason = slirp_unavailable_reason() or iperf3_unavailable_reason()
    for mtu in (1500, JUMBO):
        if reason is not None:
            emit.skip("gateway_iperf3", "slirp4netns", "Mbit/s", reason, mtu=mtu, loop=None)
            continue
        with slirp_path(mtu) as path:
            await measure(emit, settings, "slirp4netns", path.client, path.host, mtu=mtu,
                          loop=None, version=slirp_version())  # fmt: skip
