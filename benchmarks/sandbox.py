"""Namespaces for the kernel-side measurements: a veth pair between two fresh network
namespaces, the UDP peers of :mod:`benchmarks.peer` started inside them, and ``ping``.

Safety: every device lives only inside namespaces created here (never in the caller's), uses
198.18.0.0/15, and is deleted with its namespace in ``finally`` blocks; the processes started
inside are killed first (:meth:`netstack.netns.Namespace.delete`). Every wait has a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import re
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from netstack.netns import Namespace

__all__ = [
    "Peer",
    "PingResult",
    "VethPair",
    "interface_counters",
    "ping",
    "start_peer",
    "veth_pair",
]

PEER_SCRIPT = str(Path(__file__).with_name("peer.py"))
KERNEL_A = "198.18.0.1"
KERNEL_B = "198.18.0.2"
KERNEL6_A = "fd00:198:18::1"
KERNEL6_B = "fd00:198:18::2"
_counter = itertools.count(1)

_REPLY = re.compile(r"icmp_seq=(\d+) .*time=([\d.]+) ms")
_SUMMARY = re.compile(r"= ([\d.]+)/([\d.]+)/([\d.]+)/([\d.]+) ms")
_LOSS = re.compile(r"(\d+) packets transmitted, (\d+) received")


@dataclass
class VethPair:
    """Namespace ``a`` (198.18.0.1/24 on ``dev_a``) and ``b`` (198.18.0.2/24 on ``dev_b``)."""

    a: Namespace
    b: Namespace
    dev_a: str
    dev_b: str


@contextlib.contextmanager
def veth_pair(mtu: int | None = None) -> Iterator[VethPair]:
    """Two namespaces joined by a veth pair created directly inside them (of MTU ``mtu``,
    the kernel's default when ``None``); both are deleted (with every process in them) on
    the way out, also after an error."""
    made: list[Namespace] = []
    try:
        a = Namespace.create()
        made.append(a)
        b = Namespace.create()
        made.append(b)
        n = next(_counter)
        dev_a, dev_b = f"nsb{os.getpid()}a{n}"[:15], f"nsb{os.getpid()}b{n}"[:15]
        # Created inside the namespaces, so the pair never appears in the caller's.
        a.ip("link", "add", dev_a, "type", "veth", "peer", "name", dev_b, "netns", b.name)
        if mtu is not None:
            a.ip("link", "set", dev_a, "mtu", str(mtu))
            b.ip("link", "set", dev_b, "mtu", str(mtu))
        a.ip("addr", "add", f"{KERNEL_A}/24", "dev", dev_a)
        b.ip("addr", "add", f"{KERNEL_B}/24", "dev", dev_b)
        a.ip("link", "set", dev_a, "up")
        b.ip("link", "set", dev_b, "up")
        yield VethPair(a, b, dev_a, dev_b)
    finally:
        for ns in reversed(made):
            ns.delete()


def interface_counters(ns: Namespace, dev: str) -> dict[str, int]:
    """The kernel's counters of ``dev`` in ``ns`` (``ip -s -j link show``): rx/tx packets
    and drops."""
    proc = ns.ip("-s", "-j", "link", "show", "dev", dev)
    info = json.loads(proc.stdout)[0]
    stats = info.get("stats64") or info.get("stats") or {}
    rx, tx = stats.get("rx", {}), stats.get("tx", {})
    return {
        "rx_packets": int(rx.get("packets", 0)),
        "rx_dropped": int(rx.get("dropped", 0)),
        "tx_packets": int(tx.get("packets", 0)),
        "tx_dropped": int(tx.get("dropped", 0)),
    }


class Peer:
    """A process in a namespace whose output is read without blocking the event loop."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self._buf = b""

    async def line(self, timeout: float) -> str:
        """The next line of its standard output.

        Raises:
            TimeoutError: none within ``timeout`` seconds.
            RuntimeError: it exited first.
        """
        fd = self._stdout()
        end = time.monotonic() + timeout
        while b"\n" not in self._buf:
            if time.monotonic() > end:
                raise TimeoutError(f"no output from {self.proc.args!r} in {timeout} s")
            ready, _, _ = select.select([fd], [], [], 0)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise RuntimeError(f"{self.proc.args!r} exited: {self._stderr()}")
                self._buf += chunk
            else:
                await asyncio.sleep(0.002)
        line, self._buf = self._buf.split(b"\n", 1)
        return line.decode()

    async def json(self, timeout: float) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(await self.line(timeout))
        return result

    async def wait(self, timeout: float) -> int:
        """Its exit status, polling so that the event loop keeps running meanwhile.

        Raises:
            TimeoutError: still running after ``timeout`` seconds (it is killed).
        """
        end = time.monotonic() + timeout
        while (code := self.proc.poll()) is None:
            if time.monotonic() > end:
                self.proc.kill()
                raise TimeoutError(f"{self.proc.args!r} ran longer than {timeout} s")
            await asyncio.sleep(0.005)
        return code

    async def output(self, timeout: float) -> str:
        """Everything it writes to standard output until it exits."""
        fd = self._stdout()
        end = time.monotonic() + timeout
        chunks = [self._buf]
        while True:
            ready, _, _ = select.select([fd], [], [], 0)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                chunks.append(chunk)
                continue
            if time.monotonic() > end:
                self.proc.kill()
                raise TimeoutError(f"{self.proc.args!r} ran longer than {timeout} s")
            await asyncio.sleep(0.005)
        await self.wait(1.0)
        self._buf = b""
        return b"".join(chunks).decode()

    def _stdout(self) -> int:
        if self.proc.stdout is None:
            raise RuntimeError(f"{self.proc.args!r} was started without a stdout pipe")
        return self.proc.stdout.fileno()

    def _stderr(self) -> str:
        if self.proc.stderr is None:
            return ""
        with contextlib.suppress(Exception):
            self.proc.wait(timeout=1.0)
            return self.proc.stderr.read().decode(errors="replace").strip()
        return ""

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=2.0)


def start_peer(ns: Namespace, *args: str) -> Peer:
    """Start ``peer.py ARGS`` in ``ns`` with this interpreter (isolated mode: no site
    packages, no environment, so it starts fast)."""
    proc = ns.popen(
        sys.executable,
        "-I",
        "-S",
        PEER_SCRIPT,
        *args,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    return Peer(proc)


def start_command(ns: Namespace, *argv: str) -> Peer:
    proc = ns.popen(*argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return Peer(proc)


@dataclass
class PingResult:
    """What ``ping`` printed: one round-trip time per reply (seconds), its own summary
    (min/avg/max/mdev in ms) and the counts."""

    rtts: list[float]
    transmitted: int
    received: int
    summary_ms: dict[str, float]


def parse_ping(text: str) -> PingResult:
    rtts = [float(m.group(2)) / 1000 for m in _REPLY.finditer(text)]
    summary: dict[str, float] = {}
    if m := _SUMMARY.search(text):
        summary = dict(zip(("min", "avg", "max", "mdev"), map(float, m.groups()), strict=True))
    transmitted = received = 0
    if m := _LOSS.search(text):
        transmitted, received = int(m.group(1)), int(m.group(2))
    return PingResult(rtts, transmitted, received, summary)


async def ping(ns: Namespace, target: str, count: int, interval: float) -> PingResult:
    """Run iputils ``ping`` in ``ns`` (warmed up first, so that ARP is not timed) and parse
    it. Intervals below 0.2 s need root, which the namespaces need anyway.

    Raises:
        RuntimeError: no reply at all.
    """
    warm = start_command(ns, "ping", "-n", "-c", "2", "-i", "0.01", "-W", "1", target)
    await warm.output(timeout=5.0)
    argv = ["ping", "-n", "-c", str(count), "-i", f"{interval:g}", "-W", "1", target]
    peer = start_command(ns, *argv)
    text = await peer.output(timeout=10.0 + count * (interval + 0.01))
    result = parse_ping(text)
    if not result.rtts:
        raise RuntimeError(f"`{' '.join(argv)}` got no reply: {text.strip()[-200:]}")
    return result
