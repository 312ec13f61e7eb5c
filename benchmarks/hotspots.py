"""Where the time goes: a netstack case of the benchmarks under :mod:`cProfile`, printed as
the top functions by own time.

``python -m benchmarks.hotspots [--case CASE] [--loop asyncio|uvloop] [--seconds S]
[--payload N] [--mtu N] [--top N] [--sort tottime|cumulative]``

Cases: ``udp_rate``, ``udp_echo``, ``ping`` (memory link); ``tcp_bulk`` (one-way bulk
transfer over a memory link of ``--mtu``, sender and receiver in this process, as
``tcp_bulk_memory``); ``tcp_connect`` (sequential connection cycles over a memory link, as
``tcp_connect_rate``); ``tcp_send_tap`` and ``tcp_recv_tap`` (root: netstack's sender, or its
receiver, alone in this process against the kernel over TAP, as ``tcp_bulk_tap``; the profile
separates the two halves of the bulk path; ``--mtu`` sets the TAP device's MTU).

This is a diagnostic, not a measurement: cProfile slows Python code down several times (C
code, such as the event loop of uvloop, much less), so only the proportions mean anything.
Nothing is printed as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import sys
from collections.abc import Sequence

from . import tcp
from .common import LOOPS, loop_factory
from .ping import netstack_ping_rtts
from .sandbox import KERNEL_A, KERNEL_B
from .tap import tap_sandbox
from .udp import Counter, Echo, EchoClient, blast, echo_round_trips, netstack_memory

CASES = ("udp_rate", "udp_echo", "ping", "tcp_bulk", "tcp_connect", "tcp_send_tap", "tcp_recv_tap")


async def _tcp_case(case: str, seconds: float, mtu: int, profiler: cProfile.Profile) -> str:
    if case == "tcp_bulk":
        async with tcp.netstack_memory(mtu) as ep:
            discard = tcp.Discard()
            server = await ep.start_server(discard, ep.host, 0)
            _, writer = await ep.open_connection(ep.host, tcp.server_port(server))
            profiler.enable()
            sent, _ = await tcp.send_for(writer, seconds)
            received, elapsed = await discard.result()
            profiler.disable()
            writer.close()
            server.close()
        rate = tcp.mbit(received, elapsed)
        return f"tcp_bulk: {received} bytes in {elapsed:.2f} s, {rate:.0f} Mbit/s (profiled)"
    if case == "tcp_connect":
        async with tcp.netstack_memory() as ep:
            server = await ep.start_server(tcp.echo_server(tcp.EchoCounts()), ep.host, 0)
            port = tcp.server_port(server)
            profiler.enable()
            run = await tcp.cycles(ep.open_connection, ep.host, port, seconds, 1)
            profiler.disable()
            server.close()
        return f"tcp_connect: {run.done} cycles in {run.seconds:.2f} s (profiled)"
    async with tap_sandbox(mtu=mtu) as box:
        if case == "tcp_send_tap":
            profiler.enable()
            r = await tcp.to_sink(box.ns, KERNEL_A, box.stack.open_connection, seconds)
            profiler.disable()
            return f"tcp_send_tap: {r['received']} bytes, {r['rate']:.0f} Mbit/s (profiled)"
        discard = tcp.Discard()
        server = await box.stack.start_server(discard, KERNEL_B, tcp.PORT)
        profiler.enable()
        r = await tcp.from_source(box.ns, KERNEL_B, tcp.PORT, discard, seconds)
        profiler.disable()
        server.close()
        return f"tcp_recv_tap: {r['received']} bytes, {r['rate']:.0f} Mbit/s (profiled)"


async def _case(
    case: str, seconds: float, payload_len: int, mtu: int, profiler: cProfile.Profile
) -> str:
    if case.startswith("tcp_"):
        return await _tcp_case(case, seconds, mtu, profiler)
    payload = bytes(payload_len)
    if case == "udp_rate":
        async with netstack_memory(Counter, asyncio.DatagramProtocol) as ep:
            profiler.enable()
            sent, received, elapsed = await blast(ep, payload, 16, seconds)
            profiler.disable()
        return f"udp_rate: {sent} sent, {received} received in {elapsed:.2f} s (profiled)"
    if case == "udp_echo":
        async with netstack_memory(Echo, EchoClient) as ep:
            profiler.enable()
            n, elapsed = await echo_round_trips(ep, payload, seconds)
            profiler.disable()
        return f"udp_echo: {n} round trips in {elapsed:.2f} s (profiled)"
    profiler.enable()
    rtts = await netstack_ping_rtts(int(seconds * 10_000))
    profiler.disable()
    return f"ping: {len(rtts)} pings (profiled)"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.hotspots")
    parser.add_argument("--case", choices=CASES, default="udp_rate")
    parser.add_argument("--loop", choices=LOOPS, default="asyncio")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--payload", type=int, default=64)
    parser.add_argument("--mtu", type=int, default=1500, help="tcp_*: the link's MTU")
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--sort", choices=("tottime", "cumulative"), default="tottime")
    args = parser.parse_args(argv)
    profiler = cProfile.Profile()
    with asyncio.Runner(loop_factory=loop_factory(args.loop)) as runner:
        what = runner.run(_case(args.case, args.seconds, args.payload, args.mtu, profiler))
    detail = f"mtu {args.mtu}" if args.case.startswith("tcp_") else f"payload {args.payload} bytes"
    print(f"{what}; loop {args.loop}, {detail}")
    stats = pstats.Stats(profiler, stream=sys.stdout)
    stats.strip_dirs().sort_stats(args.sort).print_stats(args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
