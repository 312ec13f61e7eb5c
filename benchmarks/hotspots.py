"""Where the time goes: the ``udp_rate`` netstack case (or its UDP-echo or ping cousins)
under :mod:`cProfile`, printed as the top functions by own time.

``python -m benchmarks.hotspots [--case udp_rate|udp_echo|ping] [--loop asyncio|uvloop]
[--seconds S] [--payload N] [--top N]``

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

from .common import LOOPS, loop_factory
from .ping import netstack_ping_rtts
from .udp import Counter, Echo, EchoClient, blast, echo_round_trips, netstack_memory


async def _case(case: str, seconds: float, payload_len: int, profiler: cProfile.Profile) -> str:
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
    parser.add_argument("--case", choices=("udp_rate", "udp_echo", "ping"), default="udp_rate")
    parser.add_argument("--loop", choices=LOOPS, default="asyncio")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--payload", type=int, default=64)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args(argv)
    profiler = cProfile.Profile()
    with asyncio.Runner(loop_factory=loop_factory(args.loop)) as runner:
        what = runner.run(_case(args.case, args.seconds, args.payload, profiler))
    print(f"{what}; loop {args.loop}, payload {args.payload} bytes")
    stats = pstats.Stats(profiler, stream=sys.stdout)
    stats.strip_dirs().sort_stats("tottime").print_stats(args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
