"""The benchmark harness: settings, event-loop selection, statistics, machine information and
the JSON-lines output every measurement goes through.

Nothing here is timed itself. A measurement is a function that produces one sample (a rate
over a fixed duration, or a list of round-trip times); :func:`repeat_async` runs it a fixed
number of times and :func:`summarize` reduces the samples to a median and a spread, which
:meth:`Emitter.emit` prints as one JSON object on one line.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import os
import platform
import shutil
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import IO, Any, TypeVar

__all__ = [
    "LOOPS",
    "Emitter",
    "Settings",
    "deadline_loop",
    "log",
    "loop_factory",
    "machine_info",
    "percentile",
    "repeat_async",
    "rtt_summary",
    "summarize",
    "veth_unavailable_reason",
]

T = TypeVar("T")

#: The event loops a run can use.
LOOPS = ("asyncio", "uvloop")
#: Shorter intervals get no ``other_cpus``/``steal_cpus`` (``/proc/stat`` ticks are 10 ms).
MIN_CPU_INTERVAL = 0.5


@dataclass(frozen=True, slots=True)
class Settings:
    """How long and how often each measurement runs.

    Args:
        quick: the ``--quick`` profile (short durations, fewer repeats).
        seconds: duration of one timed repeat of a rate measurement.
        repeats: timed repeats of each rate measurement; the median is reported.
        sweep_seconds: duration of one probe of the batch-size sweep (see ``udp_rate``).
        pings: round trips per RTT measurement on the event loop (memory link, loopback).
        tap_seconds: duration of one repeat of a TAP/veth rate measurement.
        tap_pings: echo requests per RTT measurement over TAP or veth.
        micro_target: seconds one timeit repeat of a micro benchmark aims for.
        micro_repeats: timeit repeats per micro benchmark.
        tcp_seconds: duration of one repeat of a TCP bulk transfer (sending time).
        tcp_repeats: timed repeats of each TCP rate measurement.
        tcp_conn_seconds: duration of one repeat of a TCP connection-rate measurement.
        tcp_idle: idle established connections opened for ``tcp_memory``.
        tcp_churn: connections opened and closed one batch after another for
            ``tcp_memory``'s RSS series.
        offload: the TAP offload settings ``tcp_bulk_tap`` runs with (``--offload``): on
            (IFF_VNET_HDR, checksum and TSO), off, or both one after the other.
    """

    quick: bool
    seconds: float
    repeats: int
    sweep_seconds: float
    pings: int
    tap_seconds: float
    tap_pings: int
    micro_target: float
    micro_repeats: int
    tcp_seconds: float
    tcp_repeats: int
    tcp_conn_seconds: float
    tcp_idle: int
    tcp_churn: int
    offload: tuple[bool, ...] = (True, False)

    @classmethod
    def for_profile(cls, quick: bool) -> Settings:
        if quick:
            return cls(
                quick=True,
                seconds=0.3,
                repeats=2,
                sweep_seconds=0.1,
                pings=300,
                tap_seconds=0.5,
                tap_pings=50,
                micro_target=0.02,
                micro_repeats=3,
                tcp_seconds=0.3,
                tcp_repeats=1,
                tcp_conn_seconds=0.2,
                tcp_idle=300,
                tcp_churn=1000,
            )
        return cls(
            quick=False,
            seconds=1.0,
            repeats=3,
            sweep_seconds=0.25,
            pings=2000,
            tap_seconds=2.0,
            tap_pings=100,
            micro_target=0.1,
            micro_repeats=5,
            tcp_seconds=1.0,
            tcp_repeats=3,
            tcp_conn_seconds=0.5,
            tcp_idle=2000,
            tcp_churn=10_000,
        )


# -- event loops ------------------------------------------------------------------------------
def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The factory for :class:`asyncio.Runner` (as :func:`netstack.runner.loop_factory`, but
    chosen by name): ``None`` for asyncio's own loop, ``uvloop.new_event_loop`` for uvloop.

    Raises:
        ValueError: an unknown name.
        RuntimeError: uvloop is wanted but not installed.
    """
    if name == "asyncio":
        return None
    if name == "uvloop":
        try:
            import uvloop
        except ImportError as exc:
            raise RuntimeError("uvloop is not installed (pip install 'netstack[uvloop]')") from exc
        factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
        return factory
    raise ValueError(f"unknown event loop {name!r}; choose from {', '.join(LOOPS)}")


# -- statistics -------------------------------------------------------------------------------
def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0..100) by the nearest-rank method (no interpolation)."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))  # ceil(n * p / 100), at least 1
    return ordered[int(rank) - 1]


def summarize(samples: Sequence[float], *, digits: int = 1) -> dict[str, Any]:
    """Median and spread of repeated samples of one measurement.

    Returns:
        ``value`` (the median), ``min``, ``max``, ``spread`` ((max - min) / median, a
        fraction) and the ``samples`` themselves.
    """
    if not samples:
        raise ValueError("no samples")
    median = statistics.median(samples)
    lo, hi = min(samples), max(samples)
    return {
        "value": round(median, digits),
        "min": round(lo, digits),
        "max": round(hi, digits),
        "spread": round((hi - lo) / median, 3) if median else None,
        "repeats": len(samples),
        "samples": [round(s, digits) for s in samples],
    }


def rtt_summary(seconds: Sequence[float]) -> dict[str, Any]:
    """Round-trip times (given in seconds) as microseconds: the median is ``value``, with
    min, mean, p90, p99, max and the count."""
    us = [s * 1e6 for s in seconds]
    return {
        "value": round(statistics.median(us), 1),
        "min": round(min(us), 1),
        "mean": round(statistics.fmean(us), 1),
        "p90": round(percentile(us, 90), 1),
        "p99": round(percentile(us, 99), 1),
        "max": round(max(us), 1),
        "count": len(us),
    }


async def repeat_async(factory: Callable[[], Awaitable[T]], repeats: int) -> list[T]:
    """Await a fresh coroutine from ``factory`` ``repeats`` times, one after the other."""
    return [await factory() for _ in range(repeats)]


async def deadline_loop(
    step: Callable[[], Awaitable[object]], *, count: int, seconds: float
) -> tuple[int, float]:
    """Await ``step()`` until ``count`` calls are done or ``seconds`` have passed.

    Returns:
        (calls made, seconds elapsed by ``time.perf_counter``).
    """
    start = time.perf_counter()
    end = start + seconds
    done = 0
    while done < count:
        await step()
        done += 1
        if time.perf_counter() >= end:
            break
    return done, time.perf_counter() - start


# -- the machine ------------------------------------------------------------------------------
def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info() -> dict[str, Any]:
    """CPU model, cores, kernel, Python and library versions: what the numbers depend on."""
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count() or 0
    try:
        uvloop_version: str | None = importlib.metadata.version("uvloop")
    except importlib.metadata.PackageNotFoundError:
        uvloop_version = None
    try:
        import netstack

        netstack_version: str | None = netstack.__version__
    except ImportError:
        netstack_version = None
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "kernel": platform.release(),
        "os": platform.system(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "uvloop": uvloop_version,
        "netstack": netstack_version,
        "root": hasattr(os, "geteuid") and os.geteuid() == 0,
        "loadavg": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
    }


def veth_unavailable_reason() -> str | None:
    """Why two namespaces joined by a veth pair cannot be built here, or ``None``.

    The TAP probe of :func:`netstack.netns.tap_unavailable_reason` decides: it really
    creates a network namespace (and a TAP device in it), which needs the same privileges
    (``CAP_SYS_ADMIN``, ``CAP_NET_ADMIN``) as namespaces joined by a veth pair.
    """
    if not sys.platform.startswith("linux"):
        return f"veth pairs need Linux, this is {sys.platform}"
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    if shutil.which("ip", path=path) is None:
        return "the `ip` command (iproute2) is missing"
    from netstack.netns import tap_unavailable_reason

    return tap_unavailable_reason()


# -- output -----------------------------------------------------------------------------------
class CpuWatch:
    """What else the machine did between two readings: the CPU time of everything but this
    process (other programs, the benchmark's own peers in namespaces, kernel threads), and
    the time the hypervisor stole, both in CPUs (CPU-seconds per second of wall time).

    A measurement of code running on the event loop, which keeps one CPU busy, is trustworthy
    when ``other_cpus`` stays well below the number of idle cores; ``/proc/stat`` counts in
    ticks of 10 ms, so short intervals read coarsely.
    """

    def __init__(self) -> None:
        self._tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self._last = self._read()

    def _read(self) -> tuple[float, float, float, float] | None:
        try:
            with open("/proc/stat", encoding="ascii") as f:
                fields = [int(x) for x in f.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
        busy = (user + nice + system + irq + softirq) / self._tick
        own = os.times()
        return time.monotonic(), busy, steal / self._tick, own.user + own.system

    def lap(self) -> dict[str, float]:
        """Since the previous call: ``other_cpus`` and ``steal_cpus``."""
        now = self._read()
        last, self._last = self._last, now
        if now is None or last is None or now[0] - last[0] <= 0:
            return {}
        wall = now[0] - last[0]
        if wall < MIN_CPU_INTERVAL:
            return {}  # a handful of 10 ms ticks says nothing
        other = (now[1] - last[1]) - (now[3] - last[3])
        return {
            "other_cpus": round(max(other, 0.0) / wall, 2),
            "steal_cpus": round((now[2] - last[2]) / wall, 2),
        }


class Emitter:
    """Prints each measurement as one JSON object on one line, and keeps them.

    Every line has ``bench``, ``impl``, ``loop``, ``value`` and ``unit``; the rest depends on
    the measurement, and ``other_cpus``/``steal_cpus`` (see :class:`CpuWatch`) cover the time
    since the previous line. A measurement that cannot run here is one line with ``skipped``
    (the reason) and ``value`` null.
    """

    def __init__(self, stream: IO[str] | None = None) -> None:
        self._stream = stream if stream is not None else sys.stdout
        self.records: list[dict[str, Any]] = []
        self.loop: str | None = None
        self._cpu = CpuWatch()

    def emit(
        self, bench: str, impl: str, value: float | None, unit: str, **fields: Any
    ) -> dict[str, Any]:
        record: dict[str, Any] = {
            "bench": bench,
            "impl": impl,
            "loop": fields.pop("loop", self.loop),
            "value": value,
            "unit": unit,
        }
        record.update(fields)
        record.update(self._cpu.lap())
        self.records.append(record)
        self._stream.write(json.dumps(record, sort_keys=False) + "\n")
        self._stream.flush()
        return record

    def emit_summary(
        self, bench: str, impl: str, unit: str, summary: dict[str, Any], **fields: Any
    ) -> dict[str, Any]:
        """Emit a :func:`summarize` / :func:`rtt_summary` result (its ``value`` is the
        median) with extra fields."""
        rest = dict(summary)
        value = rest.pop("value")
        return self.emit(bench, impl, value, unit, **fields, **rest)

    def skip(self, bench: str, impl: str, unit: str, reason: str, **fields: Any) -> None:
        self.emit(bench, impl, None, unit, skipped=reason, **fields)

    def note(self, **fields: Any) -> None:
        """A line that is not a measurement (the machine description); it starts the
        interval the first measurement's CPU figures cover."""
        self._cpu.lap()
        self._stream.write(json.dumps(fields) + "\n")
        self._stream.flush()


def log(message: str) -> None:
    """Progress on stderr, so that stdout stays pure JSON lines."""
    print(f"[benchmarks] {message}", file=sys.stderr, flush=True)
