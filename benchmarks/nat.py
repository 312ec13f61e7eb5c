"""Connection tracking, NAT and the packet filter: the cost of one forwarded datagram through
the hooks, and the memory of one tracked flow.

What is measured (``bench`` "nat", ``case`` naming it):

- ``copy`` (ns/call): ``bytearray(template)``, the fresh buffer every other case starts from
  (a translated datagram cannot be translated again); subtract it from the others.
- ``conntrack.udp`` / ``nat.udp`` / ``nat.tcp`` (ns/call): an established flow's datagram
  (UDP 64 bytes of payload, TCP 1460) through PREROUTING, FORWARD and POSTROUTING, with
  connection tracking only (no NAT, no filter rules) and with masquerade (source address and
  port rewritten, both checksums updated incrementally, RFC 1624).
- ``nat.udp.filter10``: as ``nat.udp`` with ten forward rules that do not match before one
  that accepts established flows.
- ``nat.reply.udp``: the answer of a masqueraded flow (destination rewritten back).
- ``nat.new_flow.udp`` (ns/call): a new UDP flow through the three hooks: dissect, table
  insert, mapping and port allocation, translation (each call a new source port).
- ``memory.flow`` (bytes/flow, ``tracemalloc``): ``flows`` masqueraded UDP flows from as many
  internal endpoints (entry, two tuples, mapping, dict and heap slots), and
  ``memory.flow.shared_mapping``: flows from one endpoint to many destinations (one
  endpoint-independent mapping for all).

Run: ``python -m benchmarks --only nat``. No event loop, no link: only the hooks' own code.
"""

from __future__ import annotations

import random
import timeit
import tracemalloc
from typing import Any

from netstack.proto.ip.hooks import Hook
from netstack.proto.ipv4 import wire as ipv4
from netstack.proto.netfilter import ConntrackConfig, Netfilter, Rule
from netstack.proto.tcp import wire as tcp
from netstack.proto.udp import wire as udp

from .common import Emitter, Settings, log, summarize
from .micro import _time_statement

__all__ = ["run_nat"]

LAN, WAN = 1, 2
LAN_ADDR, WAN_ADDR = bytes([198, 18, 1, 1]), bytes([198, 18, 2, 1])
HOST, REMOTE = bytes([198, 18, 1, 10]), bytes([198, 18, 2, 50])


def _ip(src: bytes, dst: bytes, proto: int, body: bytearray) -> bytes:
    d = bytearray(20) + body
    ipv4.build_header_into(d, 0, len(d), 1, 0, 64, proto, src, dst)
    return bytes(d)


def _udp(src: bytes, sport: int, dst: bytes, dport: int, size: int = 64) -> bytes:
    body = bytearray(8 + size)
    udp.build_into(body, 0, sport, dport, src, dst)
    return _ip(src, dst, 17, body)


def _tcp(src: bytes, sport: int, dst: bytes, dport: int, flags: int, size: int = 0) -> bytes:
    body = bytearray(20 + size)
    tcp.build_into(body, 0, sport, dport, 1, 1, flags, 65535, b"", src, dst)
    return _ip(src, dst, 6, body)


def _index(key: object) -> int:
    assert isinstance(key, int)
    return key


def _netfilter(masquerade: bool, max_flows: int = 16384) -> Netfilter:
    addrs = {LAN: [LAN_ADDR], WAN: [WAN_ADDR]}
    nf = Netfilter(
        random.Random(1), lambda i: addrs.get(i, []), _index,
        ConntrackConfig(max_flows=max_flows),
    )  # fmt: skip
    if masquerade:
        nf.nat.masquerade(WAN)
    return nf


def _through(nf: Netfilter, d: bytearray, ingress: int, egress: int) -> None:
    nf.run(Hook.PREROUTING, d, ingress, None, 0.0)
    nf.run(Hook.FORWARD, d, ingress, egress, 0.0)
    nf.run(Hook.POSTROUTING, d, ingress, egress, 0.0)


def _established(nf: Netfilter, out: bytes, back_of: Any) -> bytes:
    """Open the flow of ``out`` (and answer it); returns the answer's template."""
    d = bytearray(out)
    _through(nf, d, LAN, WAN)
    back = back_of(bytes(d))
    b = bytearray(back)
    _through(nf, b, WAN, LAN)
    return back


def run_nat(emit: Emitter, settings: Settings) -> None:
    log("nat: per-datagram cost and memory per flow")
    udp_out = _udp(HOST, 5000, REMOTE, 53)
    tcp_out = _tcp(HOST, 40000, REMOTE, 80, 0x10, 1460)

    def udp_back(translated: bytes) -> bytes:
        return _udp(REMOTE, 53, translated[12:16], int.from_bytes(translated[20:22], "big"))

    cases: dict[str, tuple[Netfilter | None, bytes, int, int]] = {}
    cases["copy"] = (None, udp_out, LAN, WAN)
    plain = _netfilter(False)
    _established(plain, udp_out, udp_back)
    cases["conntrack.udp"] = (plain, udp_out, LAN, WAN)
    masq = _netfilter(True)
    reply = _established(masq, udp_out, udp_back)
    cases["nat.udp"] = (masq, udp_out, LAN, WAN)
    cases["nat.reply.udp"] = (masq, reply, WAN, LAN)
    tcp_nf = _netfilter(True)
    syn = bytearray(_tcp(HOST, 40000, REMOTE, 80, 0x02))
    _through(tcp_nf, syn, LAN, WAN)
    eport = int.from_bytes(syn[20:22], "big")
    _through(tcp_nf, bytearray(_tcp(REMOTE, 80, WAN_ADDR, eport, 0x12)), WAN, LAN)
    _through(tcp_nf, bytearray(_tcp(HOST, 40000, REMOTE, 80, 0x10)), LAN, WAN)
    cases["nat.tcp"] = (tcp_nf, tcp_out, LAN, WAN)
    filtered = _netfilter(True)
    filtered.filter.rules = [
        *(Rule("drop", src=f"198.18.9.{i}") for i in range(10)),
        Rule("accept", state="established"),
    ]
    _established(filtered, udp_out, udp_back)
    cases["nat.udp.filter10"] = (filtered, udp_out, LAN, WAN)

    for case, (nf, template, ingress, egress) in cases.items():
        ns: dict[str, Any] = {
            "nf": nf, "t": template, "i": ingress, "e": egress, "P": Hook.PREROUTING,
            "F": Hook.FORWARD, "O": Hook.POSTROUTING,
        }  # fmt: skip
        if nf is None:
            stmt = "d = bytearray(t)"
        else:
            stmt = (
                "d = bytearray(t); nf.run(P, d, i, None, 0.0); nf.run(F, d, i, e, 0.0); "
                "nf.run(O, d, i, e, 0.0)"
            )
        samples, _ = _time_statement(stmt, ns, settings)
        emit.emit("nat", "netstack", **summarize(samples), unit="ns/call", case=case, loop=None)

    # New flows: each a new source port (the table is big enough for every one).
    n_new = 20_000 if not settings.quick else 5_000
    templates = [
        _udp(HOST, 1024 + (i % 60000), bytes([198, 18, 2, 2 + i // 60000]), 53)
        for i in range(n_new)
    ]
    samples = []
    for _ in range(3):
        fresh = _netfilter(True, max_flows=n_new * 2)
        bufs = [bytearray(t) for t in templates]
        timer = timeit.default_timer
        start = timer()
        for d in bufs:
            _through(fresh, d, LAN, WAN)
        samples.append((timer() - start) / n_new * 1e9)
    emit.emit(
        "nat", "netstack", **summarize(samples), unit="ns/call", case="nat.new_flow.udp", loop=None
    )

    # Memory per flow.
    n = 20_000 if not settings.quick else 5_000
    for case, make_src in (
        ("memory.flow", lambda i: (bytes([198, 18, 1, 2 + i % 250]), 1024 + i // 250, REMOTE)),
        (
            "memory.flow.shared_mapping",
            lambda i: (HOST, 5000, bytes([198, 18, 2 + (i // 250) % 2, 2 + i % 250])),
        ),
    ):
        nf = _netfilter(True, max_flows=n * 2)
        bufs = []
        for i in range(n):
            src, sport, dst = make_src(i)
            dport = 53 + i // 500
            bufs.append(bytearray(_udp(src, sport, dst, dport)))
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        for d in bufs:
            _through(nf, d, LAN, WAN)
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        flows = nf.stats()["conntrack"]["flows"]
        emit.emit(
            "nat", "netstack", round((after - before) / max(flows, 1)), "bytes/flow",
            case=case, flows=flows, mappings=nf.stats()["nat"]["mappings"], loop=None,
        )  # fmt: skip
