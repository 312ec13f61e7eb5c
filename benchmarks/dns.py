"""DNS and DHCP: queries per second, the resolver's cache, leases per second.

``dns_qps`` (queries/s): :class:`netstack.dns.Resolver` asks :func:`netstack.dns.serve`'s
server ``query("wwwN.example.test", "A")`` (no cache: every question goes on the wire, over
UDP), one at a time and 16 at once, for ``seconds``; the same resolver and server code on
the kernel's sockets (:class:`netstack.HostStack`, 127.0.0.1, an ephemeral port) is the
comparison.

``dns_tap_qps`` (answers/s): ``dnspeer.py`` on the kernel's sockets in the TAP namespace keeps
32 queries in flight to netstack's server at 198.18.0.2:53; the comparisons are the same
client against the same server code on HostStack over 127.0.0.1, and against NSD (impl
``nsd``, one server process, the same zone) on 198.18.0.53 in a namespace of its own, the
client beside it.

``dns_cache_hit`` (µs per call): ``await resolver.resolve("www.example.test")`` once the
answer is cached (A and AAAA), against ``loop.getaddrinfo("localhost")`` (the operating
system's resolver through asyncio's thread pool, from /etc/hosts).

``dhcp_leases`` (leases/s): 1000 clients, each a DISCOVER / OFFER / REQUEST / ACK exchange
(RFC 2131 3.1) with :func:`netstack.dhcp.serve` on a netstack stack, over one memory link
from a client side that builds the messages itself (distinct MACs and xids), 50 exchanges
in flight. netstack only: there is no kernel DHCP server to compare with in-process.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from netstack import HostStack, Stack
from netstack.dns import Resolver, serve
from netstack.link import MemoryLink
from netstack.netns import have_net_admin

from .common import Emitter, Settings, log, summarize
from .sandbox import KERNEL_A, KERNEL_B, Peer
from .tap import tap_sandbox
from .tcp import start_script

__all__ = ["run_dns"]

IMPL_MEMORY = "netstack-memory"
IMPL_TAP = "netstack-tap"
IMPL_KERNEL = "kernel-asyncio-loopback"
NAMES = 64
ZONE = {
    "example.test.": {
        "@": [("SOA", "ns admin 1 3600 600 86400 60"), ("NS", "ns")],
        "ns": [("A", KERNEL_B)],
        "www": [("A", KERNEL_B), ("AAAA", "fd00:198:18::2")],
        **{f"www{i}": [("A", f"198.18.1.{i}")] for i in range(NAMES)},
    }
}
DNS_PEER = str(Path(__file__).with_name("dnspeer.py"))
#: The server's rate limit, far above what one client here can send.
RATE = 1e9


async def _qps(resolver: Resolver, seconds: float, concurrency: int) -> tuple[float, int]:
    end = time.perf_counter() + seconds
    done = 0

    async def worker(k: int) -> None:
        nonlocal done
        i = k
        while time.perf_counter() < end:
            await resolver.query(f"www{i % NAMES}.example.test", "A")
            done += 1
            i += concurrency

    start = time.perf_counter()
    await asyncio.gather(*(worker(k) for k in range(concurrency)))
    return done / (time.perf_counter() - start), done


async def run_qps(emit: Emitter, settings: Settings) -> None:
    for concurrency in (1, 16):
        log(f"dns_qps netstack memory x{concurrency} on {emit.loop}")
        a_link, b_link = MemoryLink.pair()
        async with await Stack.open(a_link, ipv4=f"{KERNEL_A}/24") as a, \
                   await Stack.open(b_link, ipv4=f"{KERNEL_B}/24") as b:  # fmt: skip
            server = await serve(b, ZONE, rate=RATE, burst=RATE)
            resolver = Resolver(a, [KERNEL_B])
            await resolver.query("www.example.test")  # ARP
            rates = [(await _qps(resolver, settings.seconds, concurrency))[0]
                     for _ in range(settings.repeats)]  # fmt: skip
            server.close()
            drops = resolver.stats().get("drops", {})
        emit.emit_summary(
            "dns_qps", IMPL_MEMORY, "queries/s", summarize(rates), concurrency=concurrency,
            transport="udp", resolver_drops=drops,
        )  # fmt: skip

        log(f"dns_qps kernel loopback x{concurrency} on {emit.loop}")
        async with HostStack() as host:
            server = await serve(host, ZONE, port=0, host="127.0.0.1", rate=RATE, burst=RATE)
            resolver = Resolver(host, [f"127.0.0.1:{server.port}"])
            rates = [(await _qps(resolver, settings.seconds, concurrency))[0]
                     for _ in range(settings.repeats)]  # fmt: skip
            server.close()
        emit.emit_summary(
            "dns_qps", IMPL_KERNEL, "queries/s", summarize(rates), concurrency=concurrency,
            transport="udp",
        )  # fmt: skip


def _start_dns_peer(ns: Any, host: str, port: int, seconds: float) -> Peer:
    import subprocess

    names = [f"www{i}.example.test" for i in range(NAMES)]
    return start_script(ns, DNS_PEER, host, str(port), str(seconds), "32", *names,
                        stdin=subprocess.DEVNULL)  # fmt: skip


async def run_tap_qps(emit: Emitter, settings: Settings) -> None:
    seconds = settings.tap_seconds
    log(f"dns_tap_qps netstack tap on {emit.loop}")
    async with tap_sandbox() as box:
        server = await serve(box.stack, ZONE, rate=RATE, burst=RATE)
        runs = []
        for _ in range(settings.repeats):
            peer = _start_dns_peer(box.ns, KERNEL_B, 53, seconds)
            try:
                runs.append(await peer.json(seconds + 30))
            finally:
                peer.kill()
        stats = server.stats()
        server.close()
    emit.emit_summary(
        "dns_tap_qps", IMPL_TAP, "answers/s",
        summarize([r["answered"] / r["seconds"] for r in runs]), window=32,
        lost=sum(r["lost"] for r in runs), server=stats,
    )  # fmt: skip

    log(f"dns_tap_qps kernel loopback on {emit.loop}")
    async with HostStack() as host:
        server = await serve(host, ZONE, port=0, host="127.0.0.1", rate=RATE, burst=RATE)
        runs = []
        for _ in range(settings.repeats):
            peer = _start_dns_peer(None, "127.0.0.1", server.port, seconds)
            try:
                runs.append(await peer.json(seconds + 30))
            finally:
                peer.kill()
        server.close()
    emit.emit_summary(
        "dns_tap_qps", IMPL_KERNEL, "answers/s",
        summarize([r["answered"] / r["seconds"] for r in runs]), window=32,
        lost=sum(r["lost"] for r in runs),
    )  # fmt: skip


def _zone_text(zone: dict[str, dict[str, list[tuple[str, str]]]]) -> tuple[str, str]:
    """The origin and the master-file text (RFC 1035 5) of a zone given as :data:`ZONE`."""
    ((origin, names),) = zone.items()
    lines = [f"$ORIGIN {origin}", "$TTL 300"]
    for name, records in names.items():
        lines += [f"{name} IN {rtype} {data}" for rtype, data in records]
    return origin, "\n".join(lines) + "\n"


NSD_ADDRESS = "198.18.0.53"


async def run_nsd_qps(emit: Emitter, settings: Settings) -> None:
    """The reference for ``dns_tap_qps``: NSD answering the same zone to the same client."""
    import shutil
    import subprocess
    import tempfile

    from netstack.netns import Namespace

    nsd = shutil.which("nsd")
    if nsd is None:
        emit.skip("dns_tap_qps", "nsd", "answers/s", "nsd is not installed (Debian: nsd)")
        return
    seconds = settings.tap_seconds
    log("dns_tap_qps nsd in a namespace")
    origin, text = _zone_text(ZONE)
    with tempfile.TemporaryDirectory(prefix="netstack-nsd-") as tmp:
        Path(tmp, "zone").write_text(text)
        Path(tmp, "nsd.conf").write_text(
            "server:\n"
            f"  ip-address: {NSD_ADDRESS}\n  port: 53\n  server-count: 1\n"
            f'  username: ""\n  chroot: ""\n  database: ""\n  zonesdir: "{tmp}"\n'
            f'  pidfile: "{tmp}/nsd.pid"\n  xfrdfile: "{tmp}/xfrd.state"\n'
            f'  zonelistfile: "{tmp}/zone.list"\n  logfile: "{tmp}/nsd.log"\n'
            "remote-control:\n  control-enable: no\n"
            f'zone:\n  name: "{origin}"\n  zonefile: "{tmp}/zone"\n'
        )
        ns = Namespace.create()
        try:
            ns.ip("link", "set", "lo", "up")
            ns.ip("addr", "add", f"{NSD_ADDRESS}/32", "dev", "lo")
            server = ns.popen(nsd, "-d", "-c", f"{tmp}/nsd.conf",
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
            try:
                # Until NSD answers (it loads the zone first).
                for _ in range(20):
                    probe = _start_dns_peer(ns, NSD_ADDRESS, 53, 0.2)
                    try:
                        if (await probe.json(10.0))["answered"]:
                            break
                    finally:
                        probe.kill()
                    await asyncio.sleep(0.1)
                runs = []
                for _ in range(settings.repeats):
                    peer = _start_dns_peer(ns, NSD_ADDRESS, 53, seconds)
                    try:
                        runs.append(await peer.json(seconds + 30))
                    finally:
                        peer.kill()
            finally:
                server.kill()
                server.wait(timeout=5.0)
        finally:
            ns.delete()
    version = subprocess.run([nsd, "-v"], capture_output=True, text=True, timeout=5.0)
    emit.emit_summary(
        "dns_tap_qps", "nsd", "answers/s",
        summarize([r["answered"] / r["seconds"] for r in runs]), window=32,
        lost=sum(r["lost"] for r in runs), server_count=1,
        version=(version.stderr or version.stdout).split("\n")[0].strip(), loop=None,
    )  # fmt: skip


async def run_cache_hit(emit: Emitter, settings: Settings) -> None:
    log(f"dns_cache_hit on {emit.loop}")
    calls = 2000 if settings.quick else 20000
    a_link, b_link = MemoryLink.pair()
    async with await Stack.open(a_link, ipv4=f"{KERNEL_A}/24") as a, \
               await Stack.open(b_link, ipv4=f"{KERNEL_B}/24") as b:  # fmt: skip
        server = await serve(b, ZONE, rate=RATE, burst=RATE)
        resolver = Resolver(a, [KERNEL_B])
        first = await resolver.resolve("www.example.test")
        samples = []
        for _ in range(settings.repeats):
            start = time.perf_counter()
            for _ in range(calls):
                await resolver.resolve("www.example.test")
            samples.append((time.perf_counter() - start) / calls * 1e6)
        sent = resolver.stats()["udp_sent"]
        server.close()
    emit.emit_summary("dns_cache_hit", IMPL_MEMORY, "us", summarize(samples, digits=2),
                      addresses=first, queries_sent=sent, calls=calls)  # fmt: skip

    loop = asyncio.get_running_loop()
    samples = []
    for _ in range(settings.repeats):
        start = time.perf_counter()
        for _ in range(calls // 10):
            await loop.getaddrinfo("localhost", None)
        samples.append((time.perf_counter() - start) / (calls // 10) * 1e6)
    emit.emit_summary("dns_cache_hit", "kernel-getaddrinfo", "us", summarize(samples, digits=2),
                      name="localhost", calls=calls // 10)  # fmt: skip


async def run_dhcp(emit: Emitter, settings: Settings) -> None:
    import tempfile

    from .dhcpload import leases_per_second

    clients = 200 if settings.quick else 1000
    for persist in (False, True):
        log(f"dhcp_leases {clients} clients, lease file {persist} on {emit.loop}")
        rates = []
        extra: dict[str, Any] = {}
        for _ in range(settings.repeats):
            with tempfile.TemporaryDirectory() as tmp:
                path = str(Path(tmp) / "leases.json") if persist else None
                rate, extra = await leases_per_second(clients, window=50, leases_path=path)
            rates.append(rate)
        emit.emit_summary("dhcp_leases", IMPL_MEMORY, "leases/s", summarize(rates),
                          clients=clients, window=50, lease_file=persist, **extra)  # fmt: skip


async def run_dns(emit: Emitter, settings: Settings, names: set[str]) -> None:
    if "dns_qps" in names:
        await run_qps(emit, settings)
    if "dns_tap_qps" in names:
        if have_net_admin():
            await run_tap_qps(emit, settings)
            await run_nsd_qps(emit, settings)
        else:
            emit.emit("dns_tap_qps", IMPL_TAP, None, "answers/s", skipped="needs root")
    if "dns_cache_hit" in names:
        await run_cache_hit(emit, settings)
    if "dhcp_leases" in names:
        await run_dhcp(emit, settings)
