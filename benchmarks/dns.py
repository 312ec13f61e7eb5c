"""DNS and DHCP: queries per second, the resolver's cache, leases per second.

``dns_qps`` (queries/s): :class:`netstack.dns.Resolver` asks :func:`netstack.dns.serve`'s
server ``query("wwwN.example.test", "A")`` (no cache: every question goes on the wire, over
UDP), one at a time and 16 at once, for ``seconds``; the same resolver and server code on
the kernel's sockets (:class:`netstack.HostStack`, 127.0.0.1, an ephemeral port) is the
comparison.

``dns_tap_qps`` (answers/s): ``dnspeer.py`` on the kernel's sockets in the TAP namespace keeps
32 queries in flight to netstack's server at 198.18.0.2:53 (64 names, so after the first
64 queries every answer comes from the server's pre-rendered answers); the comparisons are
the same client against the same server code on HostStack over 127.0.0.1, the same server
with its pre-rendered answers switched off (``cached_answers=0``, every answer parsed and
rendered by dnspython, as before they existed), and NSD (Debian's ``nsd``, one server
process, the same zone, its response rate limit off as netstack's is raised here) in a
namespace joined to the client's by a veth pair, 198.18.0.2:53 (skipped with the reason when
``nsd`` is not installed or does not start). ``server_cpu_us_per_answer``: the CPU this
process (where netstack's server runs) used per answer, steadier than the rate on a busy
machine. The client is one Python process: with NSD it is the client that limits the rate.

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
import os
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from netstack import HostStack, Stack
from netstack.dns import Resolver, load_zones, serve
from netstack.dns.server import CACHED_ANSWERS
from netstack.link import MemoryLink
from netstack.netns import have_net_admin

from .common import Emitter, Settings, log, summarize, veth_unavailable_reason
from .sandbox import KERNEL_A, KERNEL_B, Peer, veth_pair
from .tap import tap_sandbox
from .tcp import start_script

__all__ = ["run_dns"]

IMPL_MEMORY = "netstack-memory"
IMPL_TAP = "netstack-tap"
IMPL_TAP_UNCACHED = "netstack-tap-uncached"
IMPL_KERNEL = "kernel-asyncio-loopback"
IMPL_NSD = "nsd-veth"
#: Seconds NSD may take to answer its first query.
NSD_STARTUP = 10.0
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
    names = [f"www{i}.example.test" for i in range(NAMES)]
    return start_script(ns, DNS_PEER, host, str(port), str(seconds), "32", *names,
                        stdin=subprocess.DEVNULL)  # fmt: skip


async def _peer_runs(ns: Any, host: str, port: int, settings: Settings) -> list[dict[str, Any]]:
    """The load client's runs; each also with ``cpu``, the CPU seconds this process (where
    netstack's server runs) used meanwhile."""
    seconds = settings.tap_seconds
    runs = []
    for _ in range(settings.repeats):
        peer = _start_dns_peer(ns, host, port, seconds)
        before = resource.getrusage(resource.RUSAGE_SELF)
        try:
            run = await peer.json(seconds + 30)
        finally:
            peer.kill()
        after = resource.getrusage(resource.RUSAGE_SELF)
        run["cpu"] = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
        runs.append(run)
    return runs


def _emit_runs(
    emit: Emitter, impl: str, runs: list[dict[str, Any]], *, in_process: bool = True, **extra: Any
) -> None:
    if in_process:
        # CPU per answer of the server in this process: steadier than the rate on a busy
        # machine, where the rate also depends on how much CPU the server is given.
        answered = sum(r["answered"] for r in runs)
        extra["server_cpu_us_per_answer"] = round(
            sum(r["cpu"] for r in runs) / max(1, answered) * 1e6, 1
        )
    emit.emit_summary(
        "dns_tap_qps", impl, "answers/s",
        summarize([r["answered"] / r["seconds"] for r in runs]), window=32,
        lost=sum(r["lost"] for r in runs), **extra,
    )  # fmt: skip


async def run_tap_qps(emit: Emitter, settings: Settings) -> None:
    # Pre-rendered answers off (every answer by dnspython) and on, alternated in one run.
    for cached, impl in ((0, IMPL_TAP_UNCACHED), (CACHED_ANSWERS, IMPL_TAP)):
        log(f"dns_tap_qps {impl} on {emit.loop}")
        async with tap_sandbox() as box:
            server = await serve(box.stack, ZONE, rate=RATE, burst=RATE)
            if not cached:
                server.responder.answers = None
            runs = await _peer_runs(box.ns, KERNEL_B, 53, settings)
            stats = server.stats()
            server.close()
        _emit_runs(emit, impl, runs, cached_answers=cached, server=stats)

    log(f"dns_tap_qps kernel loopback on {emit.loop}")
    async with HostStack() as host:
        server = await serve(host, ZONE, port=0, host="127.0.0.1", rate=RATE, burst=RATE)
        runs = await _peer_runs(None, "127.0.0.1", server.port, settings)
        server.close()
    _emit_runs(emit, IMPL_KERNEL, runs)

    reason = nsd_unavailable_reason()
    if reason is not None:
        emit.emit("dns_tap_qps", IMPL_NSD, None, "answers/s", skipped=reason)
        return
    log("dns_tap_qps nsd over veth")
    with veth_pair() as pair, tempfile.TemporaryDirectory(prefix="netstack-nsd-") as tmp:
        nsd = start_nsd(pair.b, Path(tmp), KERNEL_B)
        try:
            await wait_nsd(pair.a, nsd, KERNEL_B)
            runs = await _peer_runs(pair.a, KERNEL_B, 53, settings)
        except RuntimeError as exc:
            emit.emit("dns_tap_qps", IMPL_NSD, None, "answers/s", skipped=str(exc))
            return
        finally:
            nsd.kill()
            nsd.wait(5)
    _emit_runs(emit, IMPL_NSD, runs, in_process=False, server_count=1, link="veth")


def nsd_unavailable_reason() -> str | None:
    """Why NSD cannot be the reference here, or None."""
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    if shutil.which("nsd", path=path) is None:
        return "nsd is not installed (Debian package nsd)"
    return veth_unavailable_reason()


def start_nsd(ns: Any, tmp: Path, address: str) -> subprocess.Popen[bytes]:
    """NSD serving :data:`ZONE` on ``address``:53 inside ``ns``, in the foreground, one
    server process, every file in ``tmp`` (no chroot, no privilege drop, no database)."""
    (origin,) = ZONE
    zone = load_zones(ZONE)[0]
    (tmp / "zone").write_text(zone.to_text(relativize=False))
    (tmp / "nsd.conf").write_text(
        "server:\n"
        f"  ip-address: {address}\n  port: 53\n  server-count: 1\n"
        '  username: ""\n  chroot: ""\n  database: ""\n  verbosity: 0\n  rrl-ratelimit: 0\n'
        f"  zonesdir: {tmp}\n  pidfile: {tmp}/nsd.pid\n  xfrdfile: {tmp}/xfrd.state\n"
        f"  zonelistfile: {tmp}/zone.list\n  logfile: {tmp}/nsd.log\n"
        "remote-control:\n  control-enable: no\n"
        f"zone:\n  name: {origin}\n  zonefile: {tmp}/zone\n"
    )
    nsd = shutil.which("nsd", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin"]))
    assert nsd is not None
    return ns.popen(nsd, "-d", "-c", str(tmp / "nsd.conf"),
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE)  # fmt: skip


async def wait_nsd(ns: Any, nsd: subprocess.Popen[bytes], address: str) -> None:
    """Until NSD answers (a short run of the load client), at most :data:`NSD_STARTUP` s."""
    deadline = time.monotonic() + NSD_STARTUP
    while time.monotonic() < deadline:
        if nsd.poll() is not None:
            err = nsd.stderr.read().decode(errors="replace") if nsd.stderr else ""
            raise RuntimeError(f"nsd exited with {nsd.returncode}: {err.strip()}")
        peer = start_script(ns, DNS_PEER, address, "53", "0.2", "1", "www.example.test",
                            stdin=subprocess.DEVNULL)  # fmt: skip
        try:
            if (await peer.json(10))["answered"]:
                return
        finally:
            peer.kill()
    raise RuntimeError(f"nsd did not answer within {NSD_STARTUP} s")


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
        else:
            emit.emit("dns_tap_qps", IMPL_TAP, None, "answers/s", skipped="needs root")
    if "dns_cache_hit" in names:
        await run_cache_hit(emit, settings)
    if "dhcp_leases" in names:
        await run_dhcp(emit, settings)
