"""What a TAP test's network costs to set up: ``ip`` subprocesses against pyroute2.

netstack makes the namespaces and TAP devices of its tests and benchmarks by running ``ip``
(:mod:`netstack.netns`). pyroute2 speaks netlink from Python and would save the processes. This
times the same setup both ways -- a namespace with loopback up, a TAP device moved into it with
an IPv4 and an IPv6 address, up, then the namespace deleted -- so the choice rests on a number
(docs/ARCHITECTURE.md, "Dependencies").

``bench`` "netns_setup", ``unit`` "ms", ``impl`` "ip" (netstack.netns) or "pyroute2";
``value`` the median of ``repeats`` setups. Needs root; pyroute2 is measured only when it is
installed. Addresses are from 198.18.0.0/15 and fd00::/8, inside the namespace.
"""

from __future__ import annotations

import os
import signal
import statistics
import time

from netstack import netns

from .common import Emitter, Settings, log


def _with_ip(i: int) -> None:
    ns = netns.Namespace.create(f"nsbench-ip-{os.getpid()}-{i}")
    try:
        link = netns.open_tap_in_namespace(ns, dev=f"nsbi{os.getpid() % 10000}{i}")
        link.close()
    finally:
        ns.delete()


def _with_pyroute2(i: int) -> None:
    from pyroute2 import IPRoute, NetNS
    from pyroute2 import netns as pr_netns

    from netstack.link import TapLink

    name = f"nsbench-pr-{os.getpid()}-{i}"
    dev = f"nsbp{os.getpid() % 10000}{i}"
    pr_netns.create(name)
    try:
        link = TapLink.open(dev)
        with IPRoute() as host:
            index = host.link_lookup(ifname=dev)[0]
            host.link("set", index=index, net_ns_fd=name)
        with NetNS(name) as inside:
            lo = inside.link_lookup(ifname="lo")[0]
            inside.link("set", index=lo, state="up")
            index = inside.link_lookup(ifname=dev)[0]
            inside.addr("add", index=index, address="198.18.0.1", prefixlen=24)
            inside.addr("add", index=index, address="fd00:198:18::1", prefixlen=64,
                        flags=0x02)  # IFA_F_NODAD  # fmt: skip
            inside.link("set", index=index, state="up")
        link.close()
    finally:
        pr_netns.remove(name)


def run_setup(emit: Emitter, settings: Settings) -> None:
    reason = netns.tap_unavailable_reason()
    if reason is not None:
        emit.skip("netns_setup", "ip", "ms", reason, loop=None)
        return
    repeats = 5 if settings.quick else 20
    ways = [("ip", _with_ip)]
    try:
        import pyroute2  # noqa: F401

        ways.append(("pyroute2", _with_pyroute2))
    except ImportError:
        log("netns_setup: pyroute2 is not installed; only ip is measured")
    for impl, way in ways:
        # pyroute2 makes a namespace in a forked child that it ends with SIGTERM; the
        # benchmarks' own SIGTERM handler must not run there.
        previous = signal.signal(signal.SIGTERM, signal.SIG_DFL)
        try:
            way(0)  # warm: imports, the first fork
            times = []
            for i in range(1, repeats + 1):
                start = time.perf_counter()
                way(i)
                times.append((time.perf_counter() - start) * 1e3)
        finally:
            signal.signal(signal.SIGTERM, previous)
        emit.emit("netns_setup", impl, round(statistics.median(times), 2), "ms", loop=None,
                  repeats=repeats, min=round(min(times), 2))  # fmt: skip
