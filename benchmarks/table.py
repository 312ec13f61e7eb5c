"""Markdown tables from the JSON lines of one or more runs (what benchmarks/README.md shows).

``python -m benchmarks --loop both > run.jsonl; python -m benchmarks.table run.jsonl``

One table per benchmark; one row per implementation and setting (payload, direction,
interval, case), one column per event loop. Loop-independent lines (micro, kernel-veth) have
a single "no event loop" column. Rates are rounded to three significant digits; round-trip
times show the median and, in parentheses, the p99.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["render"]

_KEYS = (
    "engine",
    "family",
    "case",
    "proto",
    "direction",
    "side",
    "interval",
    "payload",
    "mtu",
    "nodelay",
    "offloads",
    "concurrency",
    "lease_file",
)
_TITLES = {
    "micro": "micro (ns per call, median of the timeit repeats)",
    "udp_rate": "udp_rate (datagrams received per second, one way)",
    "udp_echo": "udp_echo (sequential request/response round trips per second)",
    "ping_rtt": "ping_rtt (microseconds: median (p99))",
    "tap_udp_rate": "tap_udp_rate (datagrams received per second)",
    "tap_ping_rtt": "tap_ping_rtt (microseconds: median (p99))",
    "tcp_bulk_memory": "tcp_bulk_memory (Mbit/s of payload received, one way)",
    "tcp_bulk_tap": "tcp_bulk_tap (Mbit/s counted by the receiver)",
    "tcp_connect_rate": "tcp_connect_rate (connection cycles per second)",
    "tcp_memory": "tcp_memory (idle: bytes per connection; churn: RSS growth in KiB)",
    "dns_qps": "dns_qps (resolver -> server queries per second, UDP)",
    "dns_tap_qps": "dns_tap_qps (answers per second to a kernel-socket client, 32 in flight)",
    "dns_cache_hit": "dns_cache_hit (microseconds per resolve() answered from the cache)",
    "dhcp_leases": "dhcp_leases (leases granted per second, 1000 clients, 50 in flight)",
    "tls_handshakes": "tls_handshakes (connect, TLS 1.3 handshake, 1 byte each way, close, per s)",
    "tls_bulk": "tls_bulk (Mbit/s of application data received, one connection)",
}


def _sig(x: float) -> str:
    if x >= 1000:
        digits = len(str(int(x)))
        return f"{round(x, 3 - digits):,.0f}"
    if x >= 100:
        return f"{x:.0f}"
    return f"{x:.1f}"


def _cell(record: dict[str, Any]) -> str:
    if record.get("skipped"):
        return "skipped"
    value = record["value"]
    if value is None:
        return "-"
    text = _sig(float(value))
    if "p99" in record:
        text += f" ({_sig(float(record['p99']))})"
    if "loss" in record and record["loss"]:
        text += f", {record['loss'] * 100:.0f}% lost"
    return text


def _row_label(record: dict[str, Any]) -> str:
    parts = [record["impl"]]
    for key in _KEYS:
        if key in record and record[key] is not None:
            value = record[key]
            if key == "payload":
                parts.append(f"{value} B")
            elif key == "mtu":
                parts.append(f"MTU {value}")
            elif key == "nodelay":
                parts.append("nodelay" if value else "Nagle")
            elif key == "concurrency":
                parts.append(f"x{value}")
            elif key == "lease_file":
                parts.append("lease file (fsync per batch)" if value else "leases in memory")
            elif key == "interval":
                parts.append(f"every {value} s" if value else "back to back")
            else:
                parts.append(str(value))
    return ", ".join(parts)


def render(records: Iterable[dict[str, Any]]) -> str:
    """Markdown tables of the measurement records (machine lines are skipped)."""
    by_bench: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        if r.get("bench") in (None, "machine"):
            continue
        by_bench.setdefault(r["bench"], []).append(r)
    out: list[str] = []
    for bench, rows in by_bench.items():
        present = {r.get("loop") or "no event loop" for r in rows}
        order = ["asyncio", "uvloop", "no event loop"]
        loops = [x for x in order if x in present] + sorted(present - set(order))
        table: dict[str, dict[str, str]] = {}
        for r in rows:
            table.setdefault(_row_label(r), {})[r.get("loop") or "no event loop"] = _cell(r)
        out.append(f"### {_TITLES.get(bench, bench)}\n")
        out.append("| measurement | " + " | ".join(loops) + " |")
        out.append("| --- | " + " | ".join("---:" for _ in loops) + " |")
        for label, cells in table.items():
            out.append(f"| {label} | " + " | ".join(cells.get(x, "") for x in loops) + " |")
        out.append("")
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    paths = list(sys.argv[1:] if argv is None else argv)
    records: list[dict[str, Any]] = []
    for path in paths or ["-"]:
        stream = sys.stdin if path == "-" else open(path, encoding="utf-8")
        with stream:
            records.extend(json.loads(line) for line in stream if line.strip().startswith("{"))
    print(render(records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
