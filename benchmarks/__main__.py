"""``python -m benchmarks [--quick] [--only NAME ...] [--loop asyncio|uvloop|both]``

Prints one JSON object per line: first the machine (``"bench": "machine"``), then one line
per measurement, netstack's and its same-run comparison's as separate lines (``impl``).
Progress goes to stderr. See benchmarks/README.md for what each measurement times.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import resource
import signal
import sys
import time
from collections.abc import Sequence
from types import FrameType

from .codecs import run_codecs
from .common import LOOPS, Emitter, Settings, log, loop_factory, machine_info
from .dns import run_dns
from .firewall import run_firewall_rss
from .forward import run_forward
from .gateway import NAMES as GATEWAY
from .gateway import run_gateway
from .loss import run_loss
from .micro import run_micro
from .nat import run_nat
from .ping import run_ping
from .setup import run_setup
from .startup import run_startup
from .tap import run_tap, run_veth
from .tcp import run_tcp
from .tls import run_tls
from .udp import run_udp
from .usermode import NAMES as USERMODE
from .usermode import run_usermode

#: Every measurement, by group; ``--only`` takes group or measurement names.
GROUPS: dict[str, tuple[str, ...]] = {
    "micro": ("micro",),
    "codecs": ("codecs",),
    "nat": ("nat",),
    "setup": ("netns_setup",),
    "startup": ("pytest_startup", "plugin_import"),
    "udp": ("udp_rate", "udp_echo"),
    "ping": ("ping_rtt",),
    "tap": ("tap_udp_rate", "tap_ping_rtt"),
    "tcp": ("tcp_bulk_memory", "tcp_bulk_tap", "tcp_connect_rate", "tcp_memory"),
    "dns": ("dns_qps", "dns_tap_qps", "dns_cache_hit", "dhcp_leases"),
    "tls": ("tls_handshakes", "tls_bulk"),
    "loss": ("tcp_loss",),
    "usermode": USERMODE,
    "forward": ("forward_rate", "forward_tcp"),
    "firewall": ("firewall_rss",),
    "gateway": GATEWAY,
}
ALL = tuple(name for names in GROUPS.values() for name in names)
#: What runs without ``--only``: every group but ``usermode``, the side-by-side comparison,
#: which repeats ``dns_tap_qps`` and takes minutes of its own, and ``gateway`` (iperf3 through
#: netstack's gateway and slirp4netns, minutes too).
DEFAULT = tuple(g for g in GROUPS if g not in ("usermode", "gateway"))


def _default_loop() -> str:
    try:
        from netstack.runner import loop_name

        return loop_name()
    except ImportError:
        return "asyncio"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="netstack benchmarks: one JSON line per measurement, comparisons in-run.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="short durations and fewer repeats (~30 s)"
    )
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="NAME",
        choices=sorted({*GROUPS, *ALL}),
        help=f"groups ({', '.join(GROUPS)}) or measurements ({', '.join(ALL)})",
    )
    parser.add_argument(
        "--loop",
        choices=(*LOOPS, "both"),
        default=_default_loop(),
        help="event loop (default: uvloop when installed, as netstack.run; "
        "NETSTACK_LOOP=asyncio forces asyncio); 'both' runs the loop-dependent part twice",
    )
    parser.add_argument(
        "--offload",
        choices=("on", "off", "both"),
        default="both",
        help="TAP offloads (IFF_VNET_HDR, checksum, TSO) for tcp_bulk_tap: on, off, or both "
        "one after the other (default)",
    )
    return parser.parse_args(argv)


async def _on_loop(emit: Emitter, settings: Settings, names: set[str], first: bool) -> None:
    """The measurements that run on an event loop. Those that do not depend on the loop
    (the veth comparisons) run only on the first loop of a run."""
    if names & {"udp_rate", "udp_echo"}:
        await run_udp(emit, settings, names)
    if "ping_rtt" in names:
        await run_ping(emit, settings, with_veth=first)
    if names & {"tap_udp_rate", "tap_ping_rtt"}:
        await run_tap(emit, settings, names)
        if first:
            await run_veth(emit, settings, names)
    if names & set(GROUPS["tcp"]):
        await run_tcp(emit, settings, names, first=first)
    if names & set(GROUPS["dns"]):
        await run_dns(emit, settings, names)
    if names & set(GROUPS["tls"]):
        await run_tls(emit, settings, names)
    if "tcp_loss" in names:
        await run_loss(emit, settings)
    if names & set(USERMODE):
        await run_usermode(emit, settings, names, first=first)
    if names & set(GROUPS["forward"]):
        await run_forward(emit, settings, names)
    if names & set(GATEWAY):
        await run_gateway(emit, settings, first=first)


def _terminate(signum: int, frame: FrameType | None) -> None:
    # Unwind like Ctrl-C, so that every namespace is deleted on the way out.
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    names: set[str] = set()
    for name in args.only or DEFAULT:
        names.update(GROUPS.get(name, (name,)))
    loops = list(LOOPS) if args.loop == "both" else [args.loop]
    for name in loops:
        loop_factory(name)  # fail early when uvloop is missing
    settings = dataclasses.replace(
        Settings.for_profile(args.quick),
        offload={"on": (True,), "off": (False,), "both": (True, False)}[args.offload],
    )
    signal.signal(signal.SIGTERM, _terminate)

    emit = Emitter()
    emit.note(
        bench="machine",
        **machine_info(),
        loops=loops,
        quick=settings.quick,
        measurements=sorted(names, key=ALL.index),
    )
    started = time.monotonic()
    try:
        if "micro" in names:
            run_micro(emit, settings)
        if "codecs" in names:
            run_codecs(emit, settings)
        if "nat" in names:
            run_nat(emit, settings)
        if "netns_setup" in names:
            run_setup(emit, settings)
        if names & set(GROUPS["startup"]):
            run_startup(emit, settings)
        if "firewall_rss" in names:
            run_firewall_rss(emit, settings, loops)
        for i, name in enumerate(loops):
            emit.loop = name
            with asyncio.Runner(loop_factory=loop_factory(name)) as runner:
                runner.run(_on_loop(emit, settings, names, first=i == 0))
    except KeyboardInterrupt as exc:
        log(f"interrupted ({exc or 'SIGINT'}) after {len(emit.records)} measurements")
        return 130
    # Peak resident memory of this whole process (interpreter, both loops, every stack it
    # made), the figure comparable to a quoted "RSS" of another stack's process.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    emit.emit("max_rss", "benchmark-process", round(peak, 1), "MiB", loop=None)
    log(f"done: {len(emit.records)} measurements in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
