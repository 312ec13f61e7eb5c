"""TCP: bulk throughput, connection rate and memory per connection, netstack against the
kernel through asyncio's own sockets in the same run (and, over TAP, kernel to kernel over a
veth pair). Every application here uses asyncio's streams (``open_connection`` /
``start_server``, ``StreamWriter.write`` + ``drain``, ``StreamReader.read``), on netstack's
:class:`~netstack.Stack` or on kernel sockets, with the same code.

``tcp_bulk_memory`` (Mbit/s of application payload, one way): two stacks on
``MemoryLink.pair(mtu=MTU)`` in this process; the client writes 64 KiB chunks with ``write()``
+ ``drain()`` for ``tcp_seconds``, then ``write_eof()``; the server's handler reads 1 MiB at a
time until EOF. ``value`` = bytes the server's handler received / seconds from the handler's
start (the accept) to EOF. MTU 1500 and 65535, each with netstack's default configuration
(Nagle on) and with ``nodelay=True``. Comparison: ``kernel-asyncio-loopback``, the same two
coroutines on ``asyncio.open_connection`` / ``asyncio.start_server`` over 127.0.0.1 (asyncio
sets ``TCP_NODELAY`` on its sockets; the loopback MTU is 65536).

``tcp_bulk_tap`` (Mbit/s counted by the receiver, root): netstack's stack on a TAP device
(MTU 1500; a TAP device without ``IFF_VNET_HDR`` has no segmentation or checksum offload),
the kernel in a namespace at the other end, and the peers of :mod:`benchmarks.tcppeer`:

- ``netstack->kernel``: netstack's writer (as above) to ``tcppeer sink`` in the namespace;
  ``value`` = bytes the sink received / its seconds from accept to EOF.
- ``kernel->netstack``: ``tcppeer source`` (blocking ``sendall`` of 64 KiB for
  ``tcp_seconds``) to netstack's discard server (as above); ``value`` from the handler's count.
- ``asyncio->kernel`` / ``kernel->asyncio``, impl ``kernel-asyncio-loopback``: the same
  in-process code on kernel sockets against the same peers over 127.0.0.1.
- ``kernel->kernel``, impl ``kernel-veth``: ``source`` in one namespace, ``sink`` in another,
  joined by a veth pair (MTU 1500), with the kernel's default offloads (TSO: 64 KiB
  super-segments cross the pair unsegmented) and with ``gso_max_segs 1`` on both ends (every
  segment MTU-sized, as on the TAP device).

Each line also carries netstack's ``retransmits`` and drops (``stack.stats()``), the TAP
queue's ``kernel_tx_dropped`` and the kernel's own ``kernel_retrans_segs`` (``/proc/net/snmp``
in the namespace).

``tcp_connect_rate`` (connections/s): one cycle is connect, write 100 bytes, read the 100-byte
echo, read the server's EOF (the server closes first, as an HTTP/1.0 server does, so
TIME-WAIT is on the server's side), close, ``wait_closed()``. One worker (``concurrency`` 1)
or 16 at once, for ``tcp_conn_seconds`` per repeat after a 0.1 s warm-up; ``value`` = cycles
completed / seconds (cycles under way at the end are finished and counted). ``cycle_ms``
gives the median, p99 and longest cycle, ``stalls`` the cycles over 0.2 s. Setups: netstack
on both ends of a memory link against asyncio on both ends over 127.0.0.1; over TAP,
netstack's client against ``tcppeer echo`` in the namespace (``netstack->kernel``) and
``tcppeer connect`` (an asyncio client process) against netstack's server
(``kernel->netstack``), each beside the same client and server code over 127.0.0.1
(``asyncio->kernel``, ``kernel->asyncio``).

``tcp_memory``, ``case`` idle (bytes per connection): ``tcp_idle`` connections opened (50 at
a time) and left idle, established; ``value`` = growth of ``tracemalloc``'s traced memory /
connections, read after a 0.15 s pause and ``gc.collect()``. ``rss_bytes_per_connection``
is the RSS growth / connections of the same procedure in a fresh interpreter (``python -m
benchmarks.tcp idle ...``) without tracemalloc, whose bookkeeping would inflate it, and whose
heap no earlier measurement grew. Both ends in this process for ``netstack-memory`` and
``kernel-asyncio-loopback`` (``side`` both; for the kernel only the Python side, and
``kernel_slab_bytes_per_socket`` is the size of one object of the kernel's ``TCP`` slab);
over TAP one end (``side`` server: ``tcppeer hold`` opens the connections; ``side`` client:
``tcppeer accept`` takes them). Every figure includes the asyncio stream objects
(``StreamReader``, ``StreamWriter``, ``StreamReaderProtocol``) of each end.

``tcp_memory``, ``case`` churn (KiB): in a fresh interpreter, ``tcp_churn`` cycles as in
``tcp_connect_rate`` by 50 concurrent workers, which stop at 20 %, 50 % and 100 % of them;
there the RSS, ``sys.getallocatedblocks()``, the number of ``TcpConnection`` and
``StreamWriter`` objects alive and the size of netstack's connection tables are recorded
(``points``, the first before any connection). netstack runs with ``TcpConfig(msl=0.05)``:
TIME-WAIT lasts 2 * MSL = 0.1 s instead of 60 s, so that finished connections leave the
tables while the series runs. ``max_alive_connection_objects`` is the most connection
objects counted by a sampler every 0.5 s while the workers run, ``peak_rss_kib`` the
process's peak. ``value`` = RSS at 100 % minus RSS at 20 %.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import gc
import json
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netstack import Stack, StackConfig
from netstack.link import MemoryLink
from netstack.netns import Namespace, tap_unavailable_reason
from netstack.proto.tcp.connection import TcpConfig, TcpConnection

from .common import (
    Emitter,
    Settings,
    log,
    loop_factory,
    percentile,
    summarize,
    veth_unavailable_reason,
)
from .sandbox import KERNEL6_A, KERNEL6_B, KERNEL_A, KERNEL_B, Peer, interface_counters, veth_pair
from .tap import TapSandbox, tap_sandbox

__all__ = ["run_tcp"]

IMPL_MEMORY = "netstack-memory"
IMPL_TAP = "netstack-tap"
IMPL_KERNEL = "kernel-asyncio-loopback"
IMPL_VETH = "kernel-veth"
LOOPBACK = "127.0.0.1"
TCP_PEER = str(Path(__file__).with_name("tcppeer.py"))

#: Bytes per ``write()``; bytes asked for per ``read()``.
CHUNK = 64 * 1024
READ = 1024 * 1024
#: Request and response size of a connection-rate cycle.
SIZE = 100
CONCURRENCY = (1, 16)
MTUS = (1500, 65535)
PORT = 5001
#: No bulk repeat sends more than this, whatever its duration.
MAX_BYTES = 1 << 36
#: No connection-rate repeat makes more connections than this.
MAX_CONNECTIONS = 1_000_000
#: The servers' backlog (asyncio's default of 100 overflows the kernel's accept queue on
#: uvloop when 50 connections arrive at once; netstack's backlog is its SYN queue).
BACKLOG = 4096
#: Connections opened at once by ``tcp_memory``.
BATCH = 50
#: How long anything may take to finish after its timed part (a bound, never waited out
#: unless something is stuck).
TIMEOUT = 30.0
STARTUP_TIMEOUT = 10.0
#: Seconds of connection cycles before a connection rate is timed.
WARM_UP = 0.1
#: A connection cycle longer than this (seconds) counts as stalled (in ``stalls``).
STALL = 0.2
#: Seconds between two counts of live connection objects during the churn series.
SAMPLE_EVERY = 0.5
#: TIME-WAIT for the churn series: 2 * 0.05 s.
CHURN_MSL = 0.05

OpenConnection = Callable[..., Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]
StartServer = Callable[..., Awaitable[Any]]


# -- helpers ----------------------------------------------------------------------------------
def rss_kib(field: str = "VmRSS") -> int:
    """This process's resident set size now (``VmRSS``), or its peak (``VmHWM``), in KiB.
    (``getrusage``'s ``ru_maxrss`` would not do for a child: Linux carries it over from the
    parent across ``execve``.)"""
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def alive_connections() -> dict[str, int]:
    """How many connection objects exist now, whatever holds them (or not yet collected):
    netstack's ``TcpConnection`` machines and asyncio's ``StreamWriter`` objects."""
    counts = {"TcpConnection": 0, "StreamWriter": 0}
    for o in gc.get_objects():
        if isinstance(o, TcpConnection):
            counts["TcpConnection"] += 1
        elif isinstance(o, asyncio.StreamWriter):
            counts["StreamWriter"] += 1
    return counts


def loopback_mtu() -> int | None:
    try:
        return int(Path("/sys/class/net/lo/mtu").read_text())
    except (OSError, ValueError):
        return None


def kernel_tcp_slab() -> int | None:
    """The object size of the kernel's ``TCP`` slab cache (one IPv4 TCP socket), if readable."""
    try:
        with open("/proc/slabinfo", encoding="ascii") as f:
            for line in f:
                parts = line.split()
                if parts and parts[0] == "TCP":
                    return int(parts[3])
    except (OSError, ValueError, IndexError):
        pass
    return None


def kernel_tcp_counters(ns: Namespace) -> dict[str, int]:
    """The kernel's TCP counters (``/proc/net/snmp``) inside ``ns``."""
    text = ns.run("cat", "/proc/net/snmp", timeout=5.0).stdout
    rows = [line.split()[1:] for line in text.splitlines() if line.startswith("Tcp:")]
    if len(rows) < 2:
        return {}
    return {k: int(v) for k, v in zip(rows[0], rows[1], strict=False) if v.lstrip("-").isdigit()}


def start_tcp_peer(ns: Namespace | None, *args: str) -> Peer:
    """Start ``tcppeer.py ARGS`` in ``ns`` (or, with ``None``, here, for 127.0.0.1) with this
    interpreter in isolated mode; its standard input is a pipe (closing it ends ``echo``,
    ``hold`` and ``accept``)."""
    return start_script(ns, TCP_PEER, *args, stdin=subprocess.PIPE)


def start_script(ns: Namespace | None, script: str, *args: str, stdin: int) -> Peer:
    """Start ``script ARGS`` in ``ns`` (or here, with ``None``) with this interpreter in
    isolated mode (no site packages, no environment: it starts fast), output piped."""
    argv = (sys.executable, "-I", "-S", script, *args)
    kw: dict[str, Any] = {"stdin": stdin, "stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    proc = ns.popen(*argv, **kw) if ns is not None else subprocess.Popen(argv, **kw)
    return Peer(proc)


def close_stdin(peer: Peer) -> None:
    if peer.proc.stdin is not None:
        with contextlib.suppress(OSError):
            peer.proc.stdin.close()


async def ready_port(peer: Peer) -> int:
    """The port of a peer's ``ready PORT`` line."""
    line = await peer.line(STARTUP_TIMEOUT)
    word, port = line.split()
    if word != "ready":
        raise RuntimeError(f"unexpected output from {peer.proc.args!r}: {line!r}")
    return int(port)


def server_port(server: Any) -> int:
    port: int = server.sockets[0].getsockname()[1]
    return port


def tcp_stats(*stacks: Stack) -> dict[str, Any]:
    """Retransmissions, drops by reason and link drops summed over ``stacks``."""
    retransmits = 0
    drops: dict[str, int] = {}
    link_dropped = 0
    #: Segments and frames each way, to show how many segments a super-segment carried.
    frames = {"tx_segments": 0, "tx_super_segments": 0, "tx_frames": 0, "rx_segments": 0,
              "rx_frames": 0, "rx_super": 0}  # fmt: skip
    for s in stacks:
        st = s.stats()
        retransmits += st["tcp"]["retransmits"]
        frames["tx_segments"] += st["tcp"]["tx_segments"]
        frames["tx_super_segments"] += st["tcp"].get("tx_super_segments", 0)
        frames["rx_segments"] += st["tcp"]["rx_segments"]
        frames["tx_frames"] += st["ethernet"]["tx_packets"]
        frames["rx_frames"] += st["ethernet"]["rx_packets"]
        frames["rx_super"] += st["ethernet"].get("rx_super", 0)
        for layer in ("ethernet", "ipv4", "tcp"):
            for reason, n in st[layer].get("drops", {}).items():
                key = f"{layer}.{reason}"
                drops[key] = drops.get(key, 0) + n
        link_dropped += st["link"].get("rx_dropped", 0) + st["link"].get("tx_dropped", 0)
    return {"retransmits": retransmits, "drops": drops, "link_dropped": link_dropped, **frames}


def stats_delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    drops = {
        k: v - before["drops"].get(k, 0)
        for k, v in after["drops"].items()
        if v != before["drops"].get(k, 0)
    }
    return {
        "retransmits": after["retransmits"] - before["retransmits"],
        "drops": drops,
        "link_dropped": after["link_dropped"] - before["link_dropped"],
        **{
            k: after[k] - before[k]
            for k in after
            if isinstance(after[k], int) and k not in ("retransmits", "link_dropped")
        },  # fmt: skip
    }


def mbit(nbytes: int, seconds: float) -> float:
    return nbytes * 8 / seconds / 1e6 if seconds > 0 else 0.0


@dataclass
class Endpoints:
    """Where a client connects from and where a server listens, for one implementation;
    ``stacks`` are netstack's (for their counters), empty for the kernel."""

    impl: str
    host: str
    open_connection: OpenConnection
    start_server: StartServer
    stacks: tuple[Stack, ...] = ()
    client_kwargs: dict[str, Any] = field(default_factory=dict)


@asynccontextmanager
async def netstack_memory(
    mtu: int = 1500,
    config: TcpConfig | None = None,
    nodelay: bool | None = None,
    family: str = "ipv4",
    offload: bool = False,
) -> AsyncIterator[Endpoints]:
    """Two stacks on a memory cable: the client 198.18.0.1/24, the server 198.18.0.2/24
    (with ``family="ipv6"``: fd00:198:18::1/64 and ::2/64, and the connections use those);
    ``offload``: the cable's virtual offload (super-segments cross it)."""
    a_link, b_link = MemoryLink.pair(mtu=mtu, offload=offload)
    stack_config = StackConfig(tcp=config) if config is not None else None
    v6 = family == "ipv6"
    async with AsyncExitStack() as exits:
        a = await Stack.open(a_link, ipv4=f"{KERNEL_A}/24", config=stack_config,
                             ipv6=f"{KERNEL6_A}/64" if v6 else None)  # fmt: skip
        exits.push_async_callback(a.close)
        b = await Stack.open(b_link, ipv4=f"{KERNEL_B}/24", config=stack_config,
                             ipv6=f"{KERNEL6_B}/64" if v6 else None)  # fmt: skip
        exits.push_async_callback(b.close)
        server = KERNEL6_B if v6 else KERNEL_B
        await a.ping(server)  # ARP or neighbour discovery both ways
        kwargs = {"nodelay": nodelay} if nodelay is not None else {}
        start_server = functools.partial(b.start_server, backlog=BACKLOG)
        yield Endpoints(IMPL_MEMORY, server, a.open_connection, start_server, (a, b), kwargs)


@asynccontextmanager
async def kernel_loopback() -> AsyncIterator[Endpoints]:
    """asyncio's own streams on kernel sockets over 127.0.0.1."""
    start_server = functools.partial(asyncio.start_server, backlog=BACKLOG)
    yield Endpoints(IMPL_KERNEL, LOOPBACK, asyncio.open_connection, start_server)
    await asyncio.sleep(0)


# -- the applications -------------------------------------------------------------------------
async def send_for(writer: asyncio.StreamWriter, seconds: float) -> tuple[int, float]:
    """Write 64 KiB chunks with ``write()`` + ``drain()`` for ``seconds``, then
    ``write_eof()``; returns (bytes written, seconds)."""
    chunk = bytes(CHUNK)
    sent = 0
    start = time.perf_counter()
    end = start + seconds
    while sent < MAX_BYTES:
        writer.write(chunk)
        sent += CHUNK
        await writer.drain()
        if time.perf_counter() >= end:
            break
    elapsed = time.perf_counter() - start
    writer.write_eof()
    return sent, elapsed


class Discard:
    """A ``start_server`` callback that reads every connection to EOF, 1 MiB at a time,
    closes it, and queues (bytes, seconds from the callback's start to EOF)."""

    def __init__(self) -> None:
        self.results: asyncio.Queue[tuple[int, float]] = asyncio.Queue()

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        start = time.perf_counter()
        total = 0
        try:
            while data := await reader.read(READ):
                total += len(data)
        except OSError as exc:
            log(f"discard server: {exc!r}")
        elapsed = time.perf_counter() - start
        writer.close()
        self.results.put_nowait((total, elapsed))

    async def result(self) -> tuple[int, float]:
        return await asyncio.wait_for(self.results.get(), TIMEOUT)


@dataclass
class EchoCounts:
    connections: int = 0
    errors: int = 0


def echo_server(counts: EchoCounts) -> Callable[..., Awaitable[None]]:
    """A ``start_server`` callback: read exactly :data:`SIZE` bytes, write them back, close."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            data = await reader.readexactly(SIZE)
            writer.write(data)
            await writer.drain()
            counts.connections += 1
        except (OSError, asyncio.IncompleteReadError):
            counts.errors += 1
        finally:
            writer.close()

    return handle


async def one_cycle(open_connection: OpenConnection, host: str, port: int, **kwargs: Any) -> None:
    """Connect, write :data:`SIZE` bytes, read the echo and the server's EOF, close."""
    reader, writer = await open_connection(host, port, **kwargs)
    writer.write(bytes(SIZE))
    await reader.readexactly(SIZE)
    await reader.read()  # the server's EOF
    writer.close()
    await writer.wait_closed()


@dataclass
class CycleRun:
    """One connection-rate repeat: cycles completed, errors, seconds, and each completed
    cycle's duration in seconds."""

    done: int
    errors: int
    seconds: float
    durations: list[float]


async def cycles(
    open_connection: OpenConnection,
    host: str,
    port: int,
    seconds: float,
    concurrency: int,
    **kwargs: Any,
) -> CycleRun:
    """``concurrency`` workers repeat :func:`one_cycle` for ``seconds`` (a cycle under way
    then is finished)."""
    run = CycleRun(0, 0, 0.0, [])
    start = time.perf_counter()
    end = start + seconds

    async def worker() -> None:
        while time.perf_counter() < end and run.done < MAX_CONNECTIONS:
            t = time.perf_counter()
            try:
                await one_cycle(open_connection, host, port, **kwargs)
            except (OSError, asyncio.IncompleteReadError) as exc:
                run.errors += 1
                if run.errors <= 3:
                    log(f"connection cycle failed: {exc!r}")
                await asyncio.sleep(0.01)
                continue
            run.durations.append(time.perf_counter() - t)
            run.done += 1

    await asyncio.wait_for(
        asyncio.gather(*(worker() for _ in range(concurrency))), seconds + TIMEOUT
    )
    run.seconds = time.perf_counter() - start
    return run


def cycle_times(durations: list[float]) -> dict[str, Any]:
    """Per-cycle durations in ms (median, p99, max) and how many took over
    :data:`STALL` seconds."""
    if not durations:
        return {}
    return {
        "cycle_ms": {
            "median": round(statistics.median(durations) * 1000, 3),
            "p99": round(percentile(durations, 99) * 1000, 3),
            "max": round(max(durations) * 1000, 3),
        },
        "stalls": sum(1 for d in durations if d > STALL),
    }


# -- tcp_bulk_memory --------------------------------------------------------------------------
async def bulk_in_process(ep: Endpoints, seconds: float, repeats: int) -> dict[str, Any]:
    """Repeated one-way transfers between the two ends of ``ep`` (a new connection each)."""
    discard = Discard()
    server = await ep.start_server(discard, ep.host, 0)
    port = server_port(server)
    before = tcp_stats(*ep.stacks)
    rates: list[float] = []
    sent_total = received_total = 0
    try:
        for _ in range(repeats):
            _, writer = await ep.open_connection(ep.host, port, **ep.client_kwargs)
            sent, _ = await send_for(writer, seconds)
            received, elapsed = await discard.result()
            writer.close()
            rates.append(mbit(received, elapsed))
            sent_total += sent
            received_total += received
    finally:
        server.close()
    out: dict[str, Any] = {
        "summary": summarize(rates),
        "sent": sent_total,
        "received": received_total,
    }
    if ep.stacks:
        out.update(stats_delta(before, tcp_stats(*ep.stacks)))
        a, b = ep.stacks
        out["segments"] = {
            "client_tx": a.stats()["tcp"]["tx_segments"],
            "server_tx": b.stats()["tcp"]["tx_segments"],
        }
    return out


async def run_bulk_memory(emit: Emitter, settings: Settings) -> None:
    seconds, repeats = settings.tcp_seconds, settings.tcp_repeats
    common = {"chunk": CHUNK, "read": READ, "seconds": seconds}
    for mtu in MTUS:
        for nodelay in (False, True):
            log(f"tcp_bulk_memory netstack mtu {mtu} nodelay {nodelay} on {emit.loop}")
            async with netstack_memory(mtu, nodelay=nodelay) as ep:
                r = await bulk_in_process(ep, seconds, repeats)
            emit.emit_summary(
                "tcp_bulk_memory", IMPL_MEMORY, "Mbit/s", r.pop("summary"),
                mtu=mtu, nodelay=nodelay, **common, **r,
            )  # fmt: skip
        # The same transfer over IPv6 (default configuration), right after IPv4's.
        log(f"tcp_bulk_memory netstack mtu {mtu} ipv6 on {emit.loop}")
        async with netstack_memory(mtu, family="ipv6") as ep:
            r = await bulk_in_process(ep, seconds, repeats)
        emit.emit_summary(
            "tcp_bulk_memory", IMPL_MEMORY, "Mbit/s", r.pop("summary"),
            mtu=mtu, nodelay=False, family="ipv6", **common, **r,
        )  # fmt: skip
    if True in settings.offload:
        # The memory cable's virtual offload: TCP super-segments cross it whole.
        log(f"tcp_bulk_memory netstack mtu 1500 offload on {emit.loop}")
        async with netstack_memory(1500, offload=True) as ep:
            r = await bulk_in_process(ep, seconds, repeats)
        emit.emit_summary(
            "tcp_bulk_memory", IMPL_MEMORY, "Mbit/s", r.pop("summary"),
            mtu=1500, nodelay=False, offload=True, **common, **r,
        )  # fmt: skip
    log(f"tcp_bulk_memory kernel loopback on {emit.loop}")
    async with kernel_loopback() as ep:
        r = await bulk_in_process(ep, seconds, repeats)
    emit.emit_summary(
        "tcp_bulk_memory", IMPL_KERNEL, "Mbit/s", r.pop("summary"),
        mtu=loopback_mtu(), nodelay=True, **common, **r,
    )  # fmt: skip


# -- tcp_bulk_tap -----------------------------------------------------------------------------
async def to_sink(
    ns: Namespace | None, host: str, open_connection: OpenConnection, seconds: float
) -> dict[str, Any]:
    """One transfer from this process to ``tcppeer sink`` on ``host`` (in ``ns``)."""
    peer = start_tcp_peer(ns, "sink", host, str(PORT if ns else 0), str(seconds + TIMEOUT))
    try:
        port = await ready_port(peer)
        cpu = time.process_time()
        _, writer = await open_connection(host, port)
        sent, _ = await send_for(writer, seconds)
        got = await peer.json(seconds + TIMEOUT)
        cpu = time.process_time() - cpu
        writer.close()
    finally:
        peer.kill()
    return {"rate": mbit(got["bytes"], got["seconds"]), "sent": sent, "received": got["bytes"],
            "cpu": cpu}  # fmt: skip


async def from_source(
    ns: Namespace | None, host: str, port: int, discard: Discard, seconds: float
) -> dict[str, Any]:
    """One transfer from ``tcppeer source`` (in ``ns``) to this process's discard server."""
    cpu = time.process_time()
    peer = start_tcp_peer(ns, "source", host, str(port), str(seconds))
    try:
        sent = await peer.json(seconds + TIMEOUT)
        received, elapsed = await discard.result()
        cpu = time.process_time() - cpu
    finally:
        peer.kill()
    return {"rate": mbit(received, elapsed), "sent": sent["bytes"], "received": received,
            "cpu": cpu}  # fmt: skip


def _totals(runs: list[dict[str, Any]]) -> dict[str, Any]:
    received = sum(r["received"] for r in runs)
    out = {
        "summary": summarize([r["rate"] for r in runs]),
        "sent": sum(r["sent"] for r in runs),
        "received": received,
    }
    if all("cpu" in r for r in runs):
        # Payload per CPU-second of this process (the kernel-side peer is another process):
        # what the stack's own cost allows, less disturbed than the rate on a busy machine.
        out["mbit_per_cpu_second"] = round(mbit(received, sum(r["cpu"] for r in runs)), 1)
    return out


async def run_bulk_tap(emit: Emitter, settings: Settings, box: TapSandbox) -> None:
    seconds, repeats = settings.tcp_seconds, settings.tcp_repeats
    common = {"mtu": box.link.mtu, "chunk": CHUNK, "read": READ, "seconds": seconds,
              "offload": bool(box.link.offloads)}  # fmt: skip
    stack = box.stack

    def counters() -> dict[str, Any]:
        return {
            "netstack": tcp_stats(stack),
            "iface": interface_counters(box.ns, box.link.name),
            "kernel": kernel_tcp_counters(box.ns),
        }

    def delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
        out = stats_delta(before["netstack"], after["netstack"])
        out["kernel_tx_dropped"] = after["iface"]["tx_dropped"] - before["iface"]["tx_dropped"]
        out["kernel_retrans_segs"] = after["kernel"].get("RetransSegs", 0) - before["kernel"].get(
            "RetransSegs", 0
        )
        return out

    for family, kernel, local in (("ipv4", KERNEL_A, KERNEL_B), ("ipv6", KERNEL6_A, KERNEL6_B)):
        # IPv6 lines carry family="ipv6"; IPv4's stay as they were.
        tag = {"family": family} if family == "ipv6" else {}
        log(f"tcp_bulk_tap netstack->kernel {family} on {emit.loop}")
        before = counters()
        runs = [await to_sink(box.ns, kernel, stack.open_connection, seconds)
                for _ in range(repeats)]  # fmt: skip
        t = _totals(runs)
        emit.emit_summary(
            "tcp_bulk_tap", IMPL_TAP, "Mbit/s", t.pop("summary"), direction="netstack->kernel",
            **tag, **common, **t, **delta(before, counters()),
        )  # fmt: skip

        log(f"tcp_bulk_tap kernel->netstack {family} on {emit.loop}")
        discard = Discard()
        server = await stack.start_server(discard, local, PORT)
        try:
            before = counters()
            runs = [await from_source(box.ns, local, PORT, discard, seconds)
                    for _ in range(repeats)]  # fmt: skip
            after = counters()
        finally:
            server.close()
        t = _totals(runs)
        emit.emit_summary(
            "tcp_bulk_tap", IMPL_TAP, "Mbit/s", t.pop("summary"), direction="kernel->netstack",
            **tag, **common, **t, **delta(before, after),
        )  # fmt: skip

    if not box.link.offloads:
        return  # the loopback comparison is the same with either offload setting
    loop_common = {**common, "mtu": loopback_mtu()}
    log(f"tcp_bulk_tap asyncio->kernel (loopback) on {emit.loop}")
    runs = [await to_sink(None, LOOPBACK, asyncio.open_connection, seconds) for _ in range(repeats)]
    t = _totals(runs)
    emit.emit_summary(
        "tcp_bulk_tap", IMPL_KERNEL, "Mbit/s", t.pop("summary"), direction="asyncio->kernel",
        **loop_common, **t,
    )  # fmt: skip
    log(f"tcp_bulk_tap kernel->asyncio (loopback) on {emit.loop}")
    discard = Discard()
    kserver = await asyncio.start_server(discard, LOOPBACK, 0)
    try:
        port = server_port(kserver)
        runs = [await from_source(None, LOOPBACK, port, discard, seconds) for _ in range(repeats)]
    finally:
        kserver.close()
    t = _totals(runs)
    emit.emit_summary(
        "tcp_bulk_tap", IMPL_KERNEL, "Mbit/s", t.pop("summary"), direction="kernel->asyncio",
        **loop_common, **t,
    )  # fmt: skip


async def run_bulk_veth(emit: Emitter, settings: Settings) -> None:
    """Kernel to kernel over veth with the same peers; no event loop involved."""
    seconds, repeats = settings.tcp_seconds, settings.tcp_repeats
    reason = veth_unavailable_reason()
    if reason is not None:
        emit.skip(
            "tcp_bulk_tap", IMPL_VETH, "Mbit/s", reason, direction="kernel->kernel", loop=None
        )
        return
    with veth_pair() as pair:
        for offload in ("default", "gso_max_segs 1"):
            if offload != "default":
                pair.a.ip("link", "set", pair.dev_a, "gso_max_segs", "1")
                pair.b.ip("link", "set", pair.dev_b, "gso_max_segs", "1")
            log(f"tcp_bulk_tap kernel-veth offloads {offload}")
            before = kernel_tcp_counters(pair.a)
            runs = []
            for _ in range(repeats):
                sink = start_tcp_peer(pair.b, "sink", KERNEL_B, str(PORT), str(seconds + TIMEOUT))
                try:
                    await ready_port(sink)
                    source = start_tcp_peer(pair.a, "source", KERNEL_B, str(PORT), str(seconds))
                    try:
                        sent = await source.json(seconds + TIMEOUT)
                    finally:
                        source.kill()
                    got = await sink.json(TIMEOUT)
                finally:
                    sink.kill()
                runs.append(
                    {
                        "rate": mbit(got["bytes"], got["seconds"]),
                        "sent": sent["bytes"],
                        "received": got["bytes"],
                    }
                )
            after = kernel_tcp_counters(pair.a)
            t = _totals(runs)
            emit.emit_summary(
                "tcp_bulk_tap", IMPL_VETH, "Mbit/s", t.pop("summary"), direction="kernel->kernel",
                offloads=offload, mtu=1500, chunk=CHUNK, read=READ, seconds=seconds, loop=None,
                kernel_retrans_segs=after.get("RetransSegs", 0) - before.get("RetransSegs", 0),
                **t,
            )  # fmt: skip


# -- tcp_connect_rate -------------------------------------------------------------------------
def warm_up_seconds(settings: Settings) -> float:
    """Connection cycles before the timed repeats (none with ``--quick``)."""
    return 0.0 if settings.quick else WARM_UP


def _rate_fields(runs: list[CycleRun]) -> dict[str, Any]:
    durations = [d for r in runs for d in r.durations]
    return {
        "summary": summarize([r.done / r.seconds for r in runs]),
        "connections": sum(r.done for r in runs),
        "errors": sum(r.errors for r in runs),
        **cycle_times(durations),
    }


async def connect_rate_in_process(
    ep: Endpoints, seconds: float, repeats: int, concurrency: int, warm_up: float
) -> dict[str, Any]:
    counts = EchoCounts()
    server = await ep.start_server(echo_server(counts), ep.host, 0)
    port = server_port(server)
    before = tcp_stats(*ep.stacks)
    try:
        await cycles(ep.open_connection, ep.host, port, warm_up, concurrency)
        runs = [
            await cycles(ep.open_connection, ep.host, port, seconds, concurrency)
            for _ in range(repeats)
        ]
    finally:
        server.close()
    out = _rate_fields(runs)
    out["server_errors"] = counts.errors
    if ep.stacks:
        out.update(stats_delta(before, tcp_stats(*ep.stacks)))
        out["server_states"] = ep.stacks[1].stats()["tcp"]["states"]
    return out


async def run_connect_memory(emit: Emitter, settings: Settings) -> None:
    seconds, repeats = settings.tcp_conn_seconds, settings.tcp_repeats
    for concurrency in CONCURRENCY:
        for impl, factory in ((IMPL_MEMORY, netstack_memory), (IMPL_KERNEL, kernel_loopback)):
            log(f"tcp_connect_rate {impl} concurrency {concurrency} on {emit.loop}")
            async with factory() as ep:
                r = await connect_rate_in_process(
                    ep, seconds, repeats, concurrency, warm_up_seconds(settings)
                )
            direction = "netstack->netstack" if impl == IMPL_MEMORY else "asyncio->asyncio"
            emit.emit_summary(
                "tcp_connect_rate", impl, "connections/s", r.pop("summary"),
                direction=direction, concurrency=concurrency, size=SIZE, seconds=seconds, **r,
            )  # fmt: skip


async def _client_to_peer(
    ns: Namespace | None,
    host: str,
    open_connection: OpenConnection,
    seconds: float,
    repeats: int,
    concurrency: int,
    warm_up: float,
) -> dict[str, Any]:
    """This process's client against ``tcppeer echo``."""
    max_seconds = (seconds + 1.0) * (repeats + 1) + TIMEOUT
    peer = start_tcp_peer(ns, "echo", host, str(PORT if ns else 0), str(max_seconds), str(SIZE))
    try:
        port = await ready_port(peer)
        await cycles(open_connection, host, port, warm_up, concurrency)
        runs = [
            await cycles(open_connection, host, port, seconds, concurrency) for _ in range(repeats)
        ]
        close_stdin(peer)
        served = await peer.json(TIMEOUT)
    finally:
        peer.kill()
    out = _rate_fields(runs)
    out["server_errors"] = served["errors"]
    return out


async def _peer_to_server(
    ns: Namespace | None, host: str, port: int, seconds: float, repeats: int, concurrency: int
) -> dict[str, Any]:
    """``tcppeer connect`` against this process's echo server on ``host:port``."""
    runs = []
    for _ in range(repeats):
        peer = start_tcp_peer(
            ns, "connect", host, str(port), str(seconds), str(concurrency), str(SIZE)
        )
        try:
            got = await peer.json(seconds + TIMEOUT)
        finally:
            peer.kill()
        runs.append(CycleRun(got["connections"], got["errors"], got["seconds"], got["durations"]))
    return _rate_fields(runs)


async def run_connect_tap(emit: Emitter, settings: Settings, box: TapSandbox) -> None:
    seconds, repeats = settings.tcp_conn_seconds, settings.tcp_repeats
    warm_up = warm_up_seconds(settings)
    stack = box.stack
    name = "tcp_connect_rate"
    common = {"size": SIZE, "seconds": seconds}
    for concurrency in CONCURRENCY:
        log(f"tcp_connect_rate netstack->kernel concurrency {concurrency} on {emit.loop}")
        before = tcp_stats(stack)
        r = await _client_to_peer(
            box.ns, KERNEL_A, stack.open_connection, seconds, repeats, concurrency, warm_up
        )
        emit.emit_summary(
            name, IMPL_TAP, "connections/s", r.pop("summary"), direction="netstack->kernel",
            concurrency=concurrency, **common, **r, **stats_delta(before, tcp_stats(stack)),
        )  # fmt: skip
        log(f"tcp_connect_rate asyncio->kernel (loopback) concurrency {concurrency}")
        r = await _client_to_peer(
            None, LOOPBACK, asyncio.open_connection, seconds, repeats, concurrency, warm_up
        )
        emit.emit_summary(
            name, IMPL_KERNEL, "connections/s", r.pop("summary"), direction="asyncio->kernel",
            concurrency=concurrency, **common, **r,
        )  # fmt: skip

    counts = EchoCounts()
    server = await stack.start_server(echo_server(counts), KERNEL_B, PORT, backlog=BACKLOG)
    try:
        for concurrency in CONCURRENCY:
            log(f"tcp_connect_rate kernel->netstack concurrency {concurrency} on {emit.loop}")
            before = tcp_stats(stack)
            r = await _peer_to_server(box.ns, KERNEL_B, PORT, seconds, repeats, concurrency)
            emit.emit_summary(
                name, IMPL_TAP, "connections/s", r.pop("summary"), direction="kernel->netstack",
                concurrency=concurrency, **common, **r, **stats_delta(before, tcp_stats(stack)),
                server_states=stack.stats()["tcp"]["states"],
            )  # fmt: skip
    finally:
        server.close()
    counts = EchoCounts()
    kserver = await asyncio.start_server(echo_server(counts), LOOPBACK, 0, backlog=BACKLOG)
    try:
        port = server_port(kserver)
        for concurrency in CONCURRENCY:
            log(f"tcp_connect_rate kernel->asyncio (loopback) concurrency {concurrency}")
            r = await _peer_to_server(None, LOOPBACK, port, seconds, repeats, concurrency)
            emit.emit_summary(
                name, IMPL_KERNEL, "connections/s", r.pop("summary"), direction="kernel->asyncio",
                concurrency=concurrency, **common, **r,
            )  # fmt: skip
    finally:
        kserver.close()


# -- tcp_memory -------------------------------------------------------------------------------
@contextlib.contextmanager
def measuring(trace: bool) -> Iterator[Callable[[], int]]:
    """Yields a function returning the memory grown since entry (tracemalloc's traced
    memory when ``trace``, else RSS), each reading after ``gc.collect()``."""
    gc.collect()
    if trace:
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
    else:
        base = rss_kib() * 1024

    def grown() -> int:
        gc.collect()
        now = tracemalloc.get_traced_memory()[0] if trace else rss_kib() * 1024
        return now - base

    try:
        yield grown
    finally:
        if trace:
            tracemalloc.stop()


async def _open_many(
    open_connection: OpenConnection, host: str, port: int, n: int
) -> list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    clients: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    deadline = time.monotonic() + TIMEOUT
    while len(clients) < n and time.monotonic() < deadline:
        k = min(BATCH, n - len(clients))
        clients.extend(await asyncio.gather(*(open_connection(host, port) for _ in range(k))))
    return clients


async def _wait_for(predicate: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.01)


async def _settle() -> None:
    # Past netstack's delayed-ACK timer (40 ms), so that every connection is quiet.
    await asyncio.sleep(0.15)


async def idle_in_process(ep: Endpoints, n: int, trace: bool) -> dict[str, Any]:
    """Open ``n`` idle connections between the two ends of ``ep``; memory grown / n."""
    accepted: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append((reader, writer))

    server = await ep.start_server(on_connection, ep.host, 0)
    port = server_port(server)
    clients: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    try:
        await _settle()
        with measuring(trace) as grown:
            clients = await _open_many(ep.open_connection, ep.host, port, n)
            await _wait_for(lambda: len(accepted) >= len(clients))
            await _settle()
            total = grown()
        states = ep.stacks[1].stats()["tcp"]["states"] if ep.stacks else None
    finally:
        for _, w in clients + accepted:
            w.close()
        server.close()
        await asyncio.sleep(0.05)
    return {
        "per_connection": total / max(len(clients), 1),
        "opened": len(clients),
        "states": states,
    }


async def run_memory_idle(emit: Emitter, settings: Settings) -> None:
    n = settings.tcp_idle
    loop = emit.loop or "asyncio"
    for impl, factory in ((IMPL_MEMORY, netstack_memory), (IMPL_KERNEL, kernel_loopback)):
        log(f"tcp_memory idle {impl} {n} connections on {loop}")
        rss = await in_child("idle", impl, n, loop)
        async with factory() as ep:
            traced = await idle_in_process(ep, n, trace=True)
        extra = {"kernel_slab_bytes_per_socket": kernel_tcp_slab()} if impl == IMPL_KERNEL else {}
        emit.emit(
            "tcp_memory", impl, round(traced["per_connection"]), "bytes/connection",
            case="idle", side="both", connections=traced["opened"],
            rss_bytes_per_connection=round(rss["per_connection"]),
            server_states=traced["states"], **extra,
        )  # fmt: skip


async def run_memory_tap(emit: Emitter, settings: Settings, box: TapSandbox) -> None:
    """One end per connection in this process: netstack's server (kernel clients) and
    netstack's client (kernel server)."""
    n = settings.tcp_idle
    stack = box.stack
    log(f"tcp_memory idle netstack-tap server side, {n} connections on {emit.loop}")
    accepted: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append((reader, writer))

    server = await stack.start_server(on_connection, KERNEL_B, PORT, backlog=BACKLOG)
    peer: Peer | None = None
    try:
        await _settle()
        with measuring(True) as grown:
            peer = start_tcp_peer(box.ns, "hold", KERNEL_B, str(PORT), str(n), str(TIMEOUT * 2))
            opened = await peer.json(TIMEOUT)
            await _wait_for(lambda: len(accepted) >= opened["opened"])
            await _settle()
            total = grown()
        states = stack.stats()["tcp"]["states"]
    finally:
        if peer is not None:
            close_stdin(peer)
            peer.kill()
        for _, w in accepted:
            w.close()
        server.close()
    emit.emit(
        "tcp_memory", IMPL_TAP, round(total / max(len(accepted), 1)), "bytes/connection",
        case="idle", side="server", connections=len(accepted), peer="tcppeer hold",
        states=states,
    )  # fmt: skip
    await asyncio.sleep(0.2)

    log(f"tcp_memory idle netstack-tap client side, {n} connections on {emit.loop}")
    peer = start_tcp_peer(box.ns, "accept", KERNEL_A, str(PORT + 1), str(TIMEOUT * 2))
    clients: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    try:
        port = await ready_port(peer)
        await _settle()
        with measuring(True) as grown:
            clients = await _open_many(stack.open_connection, KERNEL_A, port, n)
            await _settle()
            total = grown()
        states = stack.stats()["tcp"]["states"]
        for _, w in clients:
            w.close()
        close_stdin(peer)
        got = await peer.json(TIMEOUT)
    finally:
        peer.kill()
    emit.emit(
        "tcp_memory", IMPL_TAP, round(total / max(len(clients), 1)), "bytes/connection",
        case="idle", side="client", connections=len(clients), peer="tcppeer accept",
        peer_accepted=got["accepted"], states=states,
    )  # fmt: skip


async def churn(ep: Endpoints, total: int) -> dict[str, Any]:
    """``total`` connection cycles by :data:`BATCH` workers; RSS and the rest at the start
    and after 20 %, 50 % and 100 % of them (the workers stop at each of these marks)."""
    counts = EchoCounts()
    server = await ep.start_server(echo_server(counts), ep.host, 0)
    port = server_port(server)
    marks = sorted({total // 5, total // 2, total})
    points: list[dict[str, Any]] = []
    durations: list[float] = []

    def point(done: int) -> None:
        gc.collect()
        entry: dict[str, Any] = {
            "connections": done,
            "rss_kib": rss_kib(),
            "allocated_blocks": sys.getallocatedblocks(),
            "alive_connection_objects": alive_connections(),
        }
        if ep.stacks:
            entry["table"] = sum(len(s.tcp.connections) for s in ep.stacks)
        points.append(entry)

    started = errors = 0

    async def worker(mark: int) -> None:
        nonlocal started, errors
        while started < mark:
            started += 1
            t = time.perf_counter()
            try:
                await one_cycle(ep.open_connection, ep.host, port)
            except (OSError, asyncio.IncompleteReadError):
                errors += 1
                started -= 1  # try again
                if errors > total // 10:
                    raise
                continue
            durations.append(time.perf_counter() - t)

    most_alive: dict[str, int] = {}

    async def sampler() -> None:
        # Connection objects still alive (whatever holds them), counted twice a second.
        while True:
            await asyncio.sleep(SAMPLE_EVERY)
            for kind, n in alive_connections().items():
                most_alive[kind] = max(most_alive.get(kind, 0), n)

    start = time.perf_counter()
    sampling = asyncio.create_task(sampler())
    try:
        point(0)
        for mark in marks:
            await asyncio.wait_for(
                asyncio.gather(*(worker(mark) for _ in range(BATCH))), TIMEOUT * 4
            )
            point(mark)
    finally:
        sampling.cancel()
        server.close()
    return {
        "points": points,
        "errors": errors,
        "seconds": round(time.perf_counter() - start, 3),
        "max_alive_connection_objects": most_alive,
        "peak_rss_kib": rss_kib("VmHWM"),
        **cycle_times(durations),
    }


async def run_memory_churn(emit: Emitter, settings: Settings) -> None:
    total = settings.tcp_churn
    loop = emit.loop or "asyncio"
    for impl in (IMPL_MEMORY, IMPL_KERNEL):
        log(f"tcp_memory churn {impl} {total} connections on {loop}")
        r = await in_child("churn", impl, total, loop)
        points = r["points"]
        growth = points[-1]["rss_kib"] - points[1]["rss_kib"]
        extra = {"msl": CHURN_MSL} if impl == IMPL_MEMORY else {}
        emit.emit(
            "tcp_memory", impl, growth, "KiB", case="churn", side="both",
            connections=total, concurrency=BATCH,
            what="RSS growth from 20% to 100% of the cycles, in a fresh process",
            **extra, **r,
        )  # fmt: skip


# -- fresh processes for RSS ------------------------------------------------------------------
async def memory_child(kind: str, impl: str, count: int) -> dict[str, Any]:
    """What :func:`in_child` runs in the child: the RSS pass of the idle measurement, or the
    churn series."""
    if impl == IMPL_MEMORY:
        config = dataclasses.replace(TcpConfig(), msl=CHURN_MSL) if kind == "churn" else None
        factory = netstack_memory(config=config)
    elif impl == IMPL_KERNEL:
        factory = kernel_loopback()
    else:
        raise ValueError(f"unknown implementation {impl!r}")
    async with factory as ep:
        if kind == "idle":
            return await idle_in_process(ep, count, trace=False)
        if kind == "churn":
            return await churn(ep, count)
    raise ValueError(f"unknown measurement {kind!r}")


async def in_child(kind: str, impl: str, count: int, loop: str) -> dict[str, Any]:
    """Run :func:`memory_child` in a fresh interpreter on ``loop`` (``python -m
    benchmarks.tcp``), so that RSS figures start from a heap no earlier measurement grew."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "benchmarks.tcp", kind, impl, str(count), loop,
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        cwd=str(Path(__file__).resolve().parent.parent),
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(proc.communicate(), TIMEOUT * 4)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    if proc.returncode != 0:
        raise RuntimeError(f"the {kind} child failed: {err.decode(errors='replace')[-2000:]}")
    result: dict[str, Any] = json.loads(out.decode().splitlines()[-1])
    return result


def child_main(argv: list[str]) -> int:
    """``python -m benchmarks.tcp idle|churn IMPL COUNT LOOP``: one JSON line."""
    kind, impl, count, loop = argv
    with asyncio.Runner(loop_factory=loop_factory(loop)) as runner:
        result = runner.run(memory_child(kind, impl, int(count)))
    print(json.dumps(result), flush=True)
    return 0


# -- the group --------------------------------------------------------------------------------
NAMES = ("tcp_bulk_memory", "tcp_bulk_tap", "tcp_connect_rate", "tcp_memory")


async def run_tcp(emit: Emitter, settings: Settings, names: set[str], *, first: bool) -> None:
    """The TCP measurements in ``names``; loop-independent ones (kernel-veth) only when
    ``first``."""
    if "tcp_bulk_memory" in names:
        await run_bulk_memory(emit, settings)
    if "tcp_connect_rate" in names:
        await run_connect_memory(emit, settings)
    if "tcp_memory" in names:
        await run_memory_idle(emit, settings)
        await run_memory_churn(emit, settings)
    tap_names = names & {"tcp_bulk_tap", "tcp_connect_rate", "tcp_memory"}
    if tap_names:
        reason = tap_unavailable_reason()
        if reason is not None:
            for bench, unit in (
                ("tcp_bulk_tap", "Mbit/s"),
                ("tcp_connect_rate", "connections/s"),
                ("tcp_memory", "bytes/connection"),
            ):
                if bench in tap_names:
                    emit.skip(bench, IMPL_TAP, unit, reason)
        else:
            for i, offload in enumerate(settings.offload):
                async with tap_sandbox(offload=offload) as box:
                    if "tcp_bulk_tap" in names:
                        await run_bulk_tap(emit, settings, box)
                    if i:
                        continue  # only bulk transfer is run with each offload setting
                    if "tcp_connect_rate" in names:
                        await run_connect_tap(emit, settings, box)
                    if "tcp_memory" in names:
                        await run_memory_tap(emit, settings, box)
    if "tcp_bulk_tap" in names and first:
        await run_bulk_veth(emit, settings)


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1:]))
