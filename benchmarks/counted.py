"""A fixed connection workload for counting instructions: wall clock on a shared VM moves by
±30 %, the instructions a fixed amount of work executes barely move.

``python -m benchmarks.counted CASE N [--loop asyncio|uvloop]`` runs ``N`` connection cycles
of ``tcp_connect_rate`` (connect, 100 bytes each way, the server's EOF, close), one at a
time, after a fixed set-up:

- ``memory``: netstack on both ends of a memory link, in this process;
- ``tap-client``: netstack's client against ``tcppeer echo`` (the kernel) over TAP (root);
- ``tap-server``: netstack's echo server, a client on kernel sockets connecting from the
  namespace over TAP (root);
- ``kernel-client``: the comparison for ``tap-client``: the same client on asyncio's own
  streams (kernel sockets) against ``tcppeer echo`` over 127.0.0.1.

``ping``, ``tls-handshake`` and ``tls-bulk`` count the other memory-link benchmarks: ``N`` echo
round trips of ``ping_rtt`` (56 bytes, both stacks in this process), ``N`` handshakes of
``tls_handshakes`` and ``N`` MiB of ``tls_bulk``, with the ``openssl`` engine (its crypto is
C, so what moves the count is netstack's TCP under it).

``tap-recv`` and ``tap-send`` count bulk transfer instead, ``N`` MiB over one connection
(after a warm-up MiB on another): ``tcppeer sendn`` in the namespace to netstack's discard
server, and netstack's writer (64 KiB ``write`` + ``drain``, then ``write_eof``) to ``tcppeer
sink``; the figure is instructions per MiB.

``--callgrind`` runs the case twice under ``valgrind --tool=callgrind`` (not its peers),
with ``N`` cycles and with none, and prints the difference per cycle: the instructions of
one connection cycle, start-up and set-up subtracted. Without it the case runs once, so
that it can be run under any profiler.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from . import ping, tcp, tls
from .common import LOOPS, loop_factory
from .sandbox import KERNEL_A, KERNEL_B
from .tap import TapSandbox, tap_sandbox

#: The cases over two stacks on a memory link besides ``memory``: ping and TLS.
MEMORY_CASES = ("ping", "tls-handshake", "tls-bulk")
CASES = ("memory", "tap-client", "tap-server", "kernel-client", "tap-recv", "tap-send",
         *MEMORY_CASES)  # fmt: skip
#: The cases whose ``N`` counts MiB, and what the others count besides connection cycles.
BULK = ("tap-recv", "tap-send", "tls-bulk")
UNITS = {"ping": "round trip", "tls-handshake": "handshake"}
#: What ``N`` counts: connection cycles, or MiB for the bulk cases.
MIB = 1 << 20


#: Cycles before the counted ones, in every run (first-use costs: imports, caches).
WARM_UP = 20

#: The kernel's client for ``tap-server``: COUNT cycles on blocking sockets, one at a time.
_CLIENT = """
import socket, sys
host, port, count, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
for _ in range(count):
    s = socket.create_connection((host, port), timeout=10)
    s.sendall(bytes(size))
    got = 0
    while got < size:
        chunk = s.recv(size - got)
        if not chunk:
            sys.exit("short echo")
        got += len(chunk)
    while s.recv(4096):
        pass
    s.close()
"""


async def _bulk(box: TapSandbox, case: str, n: int) -> None:
    """``n`` MiB one way over TAP (the side in this process only)."""
    if case == "tap-recv":
        discard = tcp.Discard()
        server = await box.stack.start_server(discard, KERNEL_B, tcp.PORT)
        try:
            peer = tcp.start_tcp_peer(box.ns, "sendn", KERNEL_B, str(tcp.PORT), str(n * MIB))
            try:
                # Under callgrind a MiB takes long: a bound far above the benchmarks' own.
                received, _ = await asyncio.wait_for(discard.results.get(), 600.0)
            finally:
                peer.kill()
        finally:
            server.close()
        if received != n * MIB:
            raise RuntimeError(f"received {received} bytes of {n * MIB}")
        return
    peer = tcp.start_tcp_peer(box.ns, "sink", KERNEL_A, str(tcp.PORT), "600")
    try:
        port = await tcp.ready_port(peer)
        reader, writer = await box.stack.open_connection(KERNEL_A, port)
        chunk = bytes(tcp.CHUNK)
        for _ in range(n * MIB // tcp.CHUNK):
            writer.write(chunk)
            await writer.drain()
        writer.write_eof()
        await reader.read()  # the sink closes after our EOF
        writer.close()
    finally:
        peer.kill()


async def _memory(case: str, n: int) -> None:
    """``ping``, ``tls-handshake``, ``tls-bulk``: over two stacks on a memory link."""
    async with tls.netstack_pair() as (a, b):
        if case == "ping":
            for _ in range(WARM_UP + n):
                await a.ping(KERNEL_B, size=ping.SIZE)
            return
        with tempfile.TemporaryDirectory() as tmp:
            server_cfg, client_cfg = tls.Pki(Path(tmp)).configs("openssl")
            if case == "tls-handshake":
                server = await b.start_server(tls.one_byte, KERNEL_B, 0, ssl=server_cfg)
                port = tls.server_port(server)
                for _ in range(WARM_UP + n):
                    await tls.one_handshake(a.open_connection, KERNEL_B, port, client_cfg)
                server.close()
                return
            received: asyncio.Queue[tuple[int, float]] = asyncio.Queue()
            server = await b.start_server(tls.sink(received), KERNEL_B, 0, ssl=server_cfg)
            port = tls.server_port(server)
            reader, writer = await a.open_connection(
                KERNEL_B, port, ssl=client_cfg, server_hostname="bench.test"
            )
            chunk = bytes(tls.CHUNK)
            for _ in range((1 + n) * MIB // tls.CHUNK):  # a warm-up MiB first
                writer.write(chunk)
                await writer.drain()
            writer.close()
            got, _ = await asyncio.wait_for(received.get(), 600.0)
            server.close()
            if got != (1 + n) * MIB:
                raise RuntimeError(f"received {got} bytes of {(1 + n) * MIB}")


async def _run(case: str, n: int) -> None:
    if case in MEMORY_CASES:
        await _memory(case, n)
        return
    if case in ("tap-recv", "tap-send"):
        async with tap_sandbox() as box:
            await _bulk(box, case, 1)
            if n:
                await _bulk(box, case, n)
        return
    total = WARM_UP + n
    if case == "memory":
        async with tcp.netstack_memory() as ep:
            server = await ep.start_server(tcp.echo_server(tcp.EchoCounts()), ep.host, 0)
            port = tcp.server_port(server)
            for _ in range(total):
                await tcp.one_cycle(ep.open_connection, ep.host, port)
            server.close()
        return
    if case == "kernel-client":
        peer = tcp.start_tcp_peer(None, "echo", tcp.LOOPBACK, "0", "600", "100")
        try:
            port = await tcp.ready_port(peer)
            for _ in range(total):
                await tcp.one_cycle(asyncio.open_connection, tcp.LOOPBACK, port)
        finally:
            peer.kill()
        return
    async with tap_sandbox() as box:
        if case == "tap-client":
            peer = tcp.start_tcp_peer(box.ns, "echo", KERNEL_A, str(tcp.PORT), "600", "100")
            try:
                port = await tcp.ready_port(peer)
                for _ in range(total):
                    await tcp.one_cycle(box.stack.open_connection, KERNEL_A, port)
            finally:
                peer.kill()
            return
        counts = tcp.EchoCounts()
        echo = tcp.echo_server(counts)
        done = asyncio.get_running_loop().create_future()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await echo(reader, writer)
            if counts.connections + counts.errors >= total and not done.done():
                done.set_result(None)

        server = await box.stack.start_server(handle, KERNEL_B, tcp.PORT)
        argv = (sys.executable, "-I", "-S", "-c", _CLIENT, KERNEL_B, str(tcp.PORT), str(total),
                str(tcp.SIZE))  # fmt: skip
        proc = box.ns.popen(*argv)
        try:
            await asyncio.wait_for(done, 300.0)
            if counts.errors:
                raise RuntimeError(f"{counts.errors} cycles failed")
        finally:
            proc.kill()
            proc.wait()
            server.close()


def _callgrind(case: str, n: int, loop: str) -> int:
    """Instructions of ``n`` cycles less those of none (same set-up), per cycle."""
    totals = []
    with tempfile.TemporaryDirectory() as tmp:
        for count in (0, n):
            out = os.path.join(tmp, f"cg.{count}")
            subprocess.run(
                ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                 sys.executable, "-m", "benchmarks.counted", case, str(count), "--loop", loop],
                check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            with open(out) as f:
                totals.append(int(re.search(r"^summary: (\d+)", f.read(), re.M)[1]))  # type: ignore[index]
    return (totals[1] - totals[0]) // n


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.counted")
    parser.add_argument("case", choices=CASES)
    parser.add_argument("n", type=int)
    parser.add_argument("--loop", choices=LOOPS, default="asyncio")
    parser.add_argument("--callgrind", action="store_true")
    args = parser.parse_args(argv)
    if args.callgrind:
        per = _callgrind(args.case, args.n, args.loop)
        unit = "MiB" if args.case in BULK else UNITS.get(args.case, "connection cycle")
        print(f"{args.case} {args.loop}: {per} instructions per {unit} ({args.n})")
        return 0
    with asyncio.Runner(loop_factory=loop_factory(args.loop)) as runner:
        runner.run(_run(args.case, args.n))
    return 0


if __name__ == "__main__":
    sys.exit(main())
