"""Every frame of the tcpdump test captures through every wire parser that applies.

The corpus (shared/pcaps/tcpdump, next to the repository; ``NETSTACK_PCAP_CORPUS`` overrides
the folder) holds ordinary and deliberately malformed frames. For every record:

- the link header is taken off (Ethernet through ``ethernet.parse``; raw IPv4, Linux cooked
  and BSD loopback captures by their fixed headers), then by EtherType ARP goes to
  ``arp.parse`` and IPv4 to ``ipv4.parse`` and ``ipv4.parse_quoted``;
- the IPv4 payload of a first (or only) fragment goes by protocol to ``icmp.parse`` (and the
  data of an ICMP error to ``ipv4.parse_quoted``; a TCP or UDP header quoted there is not
  parsed), ``udp.parse`` or ``tcp.parse`` (and a TCP header's options to
  ``tcp.parse_options``);
- every call returns or raises ``ParseError`` with a snake_case reason; anything else is a
  failure reported with the file name and frame index;
- every header that parsed emits back to the bytes it came from, and the checksum helpers
  agree with a plain RFC 1071 reference.

The walk runs once per session (a module fixture); the tests below each assert one property
of its result, listing every offending frame rather than stopping at the first.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

from netstack.errors import ParseError
from netstack.link.pcap import read_pcap
from netstack.proto.arp import wire as arp
from netstack.proto.ethernet import wire as ethernet
from netstack.proto.icmp import wire as icmp
from netstack.proto.ipv4 import wire as ipv4
from netstack.proto.tcp import wire as tcp
from netstack.proto.udp import wire as udp

T = TypeVar("T")

SNAKE_CASE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")

# Link types (https://www.tcpdump.org/linktypes.html) and how to reach the network layer.
LINKTYPE_NULL = 0  # BSD loopback: a 4-byte address family in the capturing host's order
LINKTYPE_ETHERNET = 1
DLT_RAW_BSD = 12  # raw IP as some BSDs numbered DLT_RAW in savefiles
DLT_RAW_OPENBSD = 14  # ... and OpenBSD
LINKTYPE_RAW = 101  # raw IPv4 or IPv6, told apart by the version nibble
LINKTYPE_LOOP = 108  # OpenBSD loopback: the address family in network order
LINKTYPE_LINUX_SLL = 113  # Linux "cooked" capture: 16-byte header, protocol at 14
LINKTYPE_IPV4 = 228  # raw IPv4 only
RAW_IP_LINKTYPES = {DLT_RAW_BSD, DLT_RAW_OPENBSD, LINKTYPE_RAW, LINKTYPE_IPV4}
AF_INET = 2

ETHERTYPE_ARP = 0x0806
ETHERTYPE_IPV4 = 0x0800
PROTO_ICMP = 1
PROTO_TCP = 6
PROTO_UDP = 17

#: Show at most this many offending frames per test; the count is always given.
MAX_LISTED = 60


def corpus_dir() -> Path:
    override = os.environ.get("NETSTACK_PCAP_CORPUS")
    if override:
        return Path(override)
    # tests/proto/test_corpus.py: parents[2] is the repository, parents[3] the folder that
    # holds it and shared/.
    return Path(__file__).resolve().parents[3] / "shared" / "pcaps" / "tcpdump"


def ref_sum(data: bytes | memoryview, initial: int = 0) -> int:
    """RFC 1071's ones'-complement sum: 16-bit words, odd byte padded, end-around carry."""
    data = bytes(data)
    if len(data) % 2:
        data += b"\x00"
    total = initial
    for i in range(0, len(data), 2):
        total += (data[i] << 8) | data[i + 1]
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return total


@dataclass
class CorpusRun:
    """What the walk over the corpus found."""

    files: int = 0
    records: int = 0
    linktypes: Counter[int] = field(default_factory=Counter)
    unreadable: dict[str, str] = field(default_factory=dict)  # file -> pcap ParseError reason
    parsed: Counter[str] = field(default_factory=Counter)  # parser -> frames that parsed
    rejected: Counter[tuple[str, str]] = field(default_factory=Counter)  # (parser, reason)
    crashes: list[str] = field(default_factory=list)
    bad_reasons: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)
    checksum_disagreements: list[str] = field(default_factory=list)
    checksums: Counter[str] = field(default_factory=Counter)  # "<proto>_ok" / "<proto>_bad"

    def call(self, where: str, parser: str, fn: Callable[..., T], *args: Any) -> T | None:
        """Run one parser; a ParseError is counted, anything else recorded as a crash."""
        try:
            result = fn(*args)
        except ParseError as exc:
            self.rejected[parser, exc.reason] += 1
            if not isinstance(exc.reason, str) or not SNAKE_CASE.match(exc.reason):
                self.bad_reasons.append(f"{where} {parser}: reason {exc.reason!r}")
            return None
        except Exception as exc:  # the very thing this test exists to catch
            self.crashes.append(f"{where} {parser}: {type(exc).__name__}: {exc}")
            return None
        self.parsed[parser] += 1
        return result

    def same(self, where: str, what: str, emitted: bytes, original: bytes | memoryview) -> None:
        if emitted != bytes(original):
            self.mismatches.append(
                f"{where} {what}: emitted {emitted.hex()} != captured {bytes(original).hex()}"
            )

    def checksum(
        self,
        where: str,
        proto: str,
        checksum_ok: Callable[..., bool],
        args: tuple[Any, ...],
        covered: bytes | memoryview | None,
    ) -> None:
        """Compare ``checksum_ok(*args)`` with the reference over the ``covered`` bytes (the
        checksum field included; None when the message has no checksum)."""
        got = self.call(where, f"{proto}.checksum_ok", checksum_ok, *args)
        if got is None:
            return
        expected = covered is None or ref_sum(covered) == 0xFFFF
        self.checksums[f"{proto}_{'ok' if expected else 'bad'}"] += 1
        if got is not expected:
            self.checksum_disagreements.append(
                f"{where} {proto}: checksum_ok {got}, RFC 1071 reference {expected}"
            )


# -- the walk --------------------------------------------------------------------------------


def walk_record(run: CorpusRun, where: str, linktype: int, data: bytes) -> None:
    if linktype == LINKTYPE_ETHERNET:
        walk_ethernet(run, where, data)
    elif linktype in RAW_IP_LINKTYPES:
        if data and data[0] >> 4 == 4:
            walk_ipv4(run, where, memoryview(data))
    elif linktype == LINKTYPE_LINUX_SLL:
        if len(data) >= 16:
            proto = int.from_bytes(data[14:16], "big")
            walk_network(run, where, proto, memoryview(data)[16:])
    elif linktype in (LINKTYPE_NULL, LINKTYPE_LOOP):
        if len(data) >= 4:
            orders = ("big",) if linktype == LINKTYPE_LOOP else ("little", "big")
            if any(int.from_bytes(data[:4], order) == AF_INET for order in orders):
                walk_ipv4(run, where, memoryview(data)[4:])


def walk_ethernet(run: CorpusRun, where: str, frame: bytes) -> None:
    got = run.call(where, "ethernet", ethernet.parse, frame)
    if got is None:
        return
    header, payload = got
    run.same(where, "ethernet", header.to_bytes(), frame[: header.length])
    if bytes(payload) != frame[header.length :]:
        run.mismatches.append(f"{where} ethernet: payload does not start after the header")
    walk_network(run, where, header.ethertype, payload)


def walk_network(run: CorpusRun, where: str, ethertype: int, payload: memoryview) -> None:
    if ethertype == ETHERTYPE_ARP:
        packet = run.call(where, "arp", arp.parse, payload)
        if packet is not None:
            run.same(where, "arp", packet.to_bytes(), payload[: packet.length])
    elif ethertype == ETHERTYPE_IPV4:
        walk_ipv4(run, where, payload)


def walk_ipv4(run: CorpusRun, where: str, data: memoryview) -> None:
    quoted = run.call(where, "ipv4.parse_quoted", ipv4.parse_quoted, data)
    if quoted is not None:
        run.same(where, "ipv4.parse_quoted", quoted[0].to_bytes(), data[: quoted[0].header_length])
    got = run.call(where, "ipv4", ipv4.parse, data)
    if got is None:
        return
    header, payload = got
    run.same(where, "ipv4", header.to_bytes(), data[: header.header_length])
    if quoted is None or quoted[0] != header:
        run.mismatches.append(f"{where} ipv4: parse_quoted disagrees with parse")
    if len(payload) != header.total_length - header.header_length:
        run.mismatches.append(f"{where} ipv4: payload is not Total Length minus the header")
    if header.options:
        run.call(where, "ipv4.iter_options", lambda o: list(ipv4.iter_options(o)), header.options)
    run.checksum(where, "ipv4", ipv4.checksum_ok, (data,), data[: header.header_length])
    if header.fragment_offset:
        return  # a later fragment carries no transport header
    complete = not header.more_fragments
    if header.proto == PROTO_ICMP:
        walk_icmp(run, where, payload, complete)
    elif header.proto == PROTO_UDP:
        walk_udp(run, where, payload, header, complete)
    elif header.proto == PROTO_TCP:
        walk_tcp(run, where, payload, header, complete)


def walk_icmp(run: CorpusRun, where: str, message: memoryview, complete: bool) -> None:
    got = run.call(where, "icmp", icmp.parse, message)
    if got is None:
        return
    header, data = got
    run.same(where, "icmp", header.to_bytes(), message[: icmp.ICMP_HEADER_LEN])
    if complete:
        run.checksum(where, "icmp", icmp.checksum_ok, (message,), message)
    if header.is_error:
        quoted = run.call(where, "icmp.quoted_ipv4", ipv4.parse_quoted, data)
        if quoted is not None:
            inner = quoted[0]
            run.same(where, "icmp.quoted_ipv4", inner.to_bytes(), data[: inner.header_length])


def walk_udp(
    run: CorpusRun, where: str, datagram: memoryview, ip: ipv4.IPv4Header, complete: bool
) -> None:
    got = run.call(where, "udp", udp.parse, datagram)
    if got is None:
        return
    header, payload = got
    run.same(where, "udp", header.to_bytes(), datagram[: udp.UDP_HEADER_LEN])
    if len(payload) != header.length - udp.UDP_HEADER_LEN:
        run.mismatches.append(f"{where} udp: payload is not Length minus the header")
    if complete:
        exact = datagram[: header.length]
        pseudo = ip.src + ip.dst + bytes([0, PROTO_UDP]) + header.length.to_bytes(2, "big")
        # RFC 768: a zero checksum over IPv4 means none was computed, so there is none to fail.
        covered = None if header.checksum == 0 else pseudo + bytes(exact)
        run.checksum(where, "udp", udp.checksum_ok, (exact, ip.src, ip.dst), covered)


def walk_tcp(
    run: CorpusRun, where: str, segment: memoryview, ip: ipv4.IPv4Header, complete: bool
) -> None:
    got = run.call(where, "tcp", tcp.parse, segment)
    if got is None:
        return
    header, payload = got
    # the options included, byte for byte (EOL, NOP padding and unknown kinds as they came)
    run.same(where, "tcp", header.to_bytes(), segment[: header.header_length])
    if bytes(payload) != bytes(segment[header.header_length :]):
        run.mismatches.append(f"{where} tcp: payload does not start after the header")
    if header.options:
        run.call(where, "tcp.parse_options", tcp.parse_options, header.options)
    if complete:
        pseudo = ip.src + ip.dst + bytes([0, PROTO_TCP]) + len(segment).to_bytes(2, "big")
        run.checksum(where, "tcp", tcp.checksum_ok, (segment, ip.src, ip.dst), pseudo + segment)


def walk_corpus(folder: Path) -> CorpusRun:
    run = CorpusRun()
    for path in sorted(folder.iterdir()):
        if path.suffix not in (".pcap", ".pcapng"):
            continue
        run.files += 1
        index = -1
        try:
            for index, record in enumerate(read_pcap(path)):  # noqa: B007 - used in except
                run.records += 1
                run.linktypes[record.linktype] += 1
                walk_record(run, f"{path.name}#{index}", record.linktype, record.data)
        except ParseError as exc:
            # A damaged capture file is the pcap reader's business (tests/link); keep what
            # was read before the damage.
            run.unreadable[path.name] = f"{exc.reason} after record {index}"
    return run


@pytest.fixture(scope="module")
def corpus() -> CorpusRun:
    folder = corpus_dir()
    if not folder.is_dir():
        if os.environ.get("NETSTACK_REQUIRE_PEERS") == "1":
            pytest.fail(f"the pcap corpus is required (NETSTACK_REQUIRE_PEERS=1): no {folder}")
        pytest.skip(f"no pcap corpus at {folder} (set NETSTACK_PCAP_CORPUS)")
    return walk_corpus(folder)


def listing(problems: list[str]) -> str:
    shown = "\n".join(problems[:MAX_LISTED])
    more = len(problems) - MAX_LISTED
    return f"{len(problems)} frame(s):\n{shown}" + (f"\n... and {more} more" if more > 0 else "")


# -- the tests -------------------------------------------------------------------------------


def test_every_parser_returns_or_raises_parse_error(corpus: CorpusRun) -> None:
    assert not corpus.crashes, listing(corpus.crashes)


def test_parse_error_reasons_are_snake_case(corpus: CorpusRun) -> None:
    assert not corpus.bad_reasons, listing(corpus.bad_reasons)


def test_well_formed_headers_emit_back_to_the_same_bytes(corpus: CorpusRun) -> None:
    assert not corpus.mismatches, listing(corpus.mismatches)


def test_checksum_helpers_agree_with_rfc1071(corpus: CorpusRun) -> None:
    assert not corpus.checksum_disagreements, listing(corpus.checksum_disagreements)


# Measured on the corpus as shipped (tcpdump commit 39b50f7): 830 files, 10183 records (8510
# Ethernet, 683 Linux cooked, 125 BSD loopback, 23 raw IP); parsed: Ethernet 8465, ARP 2246,
# IPv4 4369 (parse_quoted 4589), UDP 1273, TCP 1574 (1442 with options, none rejected), ICMP
# 42 (28 quoted datagrams in errors), options walked 50; checksums that hold: IPv4 4309, UDP
# 1159, TCP 786 (788 do not: mostly senders that left the checksum to offloading hardware),
# ICMP 42. The bounds sit a little below, so that a corpus that went missing, shrank or stopped
# being walked fails here instead of passing vacuously.
MINIMUM_FILES = 800
MINIMUM_RECORDS = 9_500
MINIMUM_PARSED = {
    "ethernet": 8_000,
    "arp": 2_100,
    "ipv4": 4_000,
    "ipv4.parse_quoted": 4_200,
    "icmp": 35,
    "icmp.quoted_ipv4": 22,
    "udp": 1_150,
    "tcp": 1_450,
    "tcp.parse_options": 1_300,
    "ipv4.iter_options": 40,
}
MINIMUM_CHECKSUMS = {"ipv4_ok": 3_900, "udp_ok": 1_000, "tcp_ok": 700, "icmp_ok": 35}


def test_corpus_coverage(corpus: CorpusRun) -> None:
    summary = (
        f"files {corpus.files}, records {corpus.records}, "
        f"link types {dict(corpus.linktypes.most_common())}, parsed {dict(corpus.parsed)}, "
        f"rejected {dict(corpus.rejected)}, checksums {dict(corpus.checksums)}, "
        f"unreadable {corpus.unreadable}"
    )
    print(summary)
    assert corpus.files >= MINIMUM_FILES, summary
    assert corpus.records >= MINIMUM_RECORDS, summary
    for parser, minimum in MINIMUM_PARSED.items():
        assert corpus.parsed[parser] >= minimum, f"{parser}: {summary}"
    for kind, minimum in MINIMUM_CHECKSUMS.items():
        assert corpus.checksums[kind] >= minimum, f"{kind}: {summary}"
    # The malformed captures must reach the error paths too, not only the happy ones.
    assert corpus.rejected["ethernet", "truncated"] > 0, summary
    assert sum(n for (parser, _), n in corpus.rejected.items() if parser == "ipv4") > 0, summary


# -- the walk itself -------------------------------------------------------------------------


def test_walk_reports_foreign_exceptions_with_file_and_frame(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(data: object) -> object:
        raise IndexError("index out of range")

    monkeypatch.setattr(udp, "parse", broken)
    # 198.18.0.1:40000 -> 198.18.0.2:7 "hello" (see tests/proto/udp), behind an Ethernet header
    frame = bytes.fromhex(
        "020000000002020000000001080045000021000140004011aea3c6120001c6120002"
        "9c400007000d939268656c6c6f"
    )
    run = CorpusRun()
    walk_record(run, "made-up.pcap#7", LINKTYPE_ETHERNET, frame)
    assert run.crashes == ["made-up.pcap#7 udp: IndexError: index out of range"]
    assert run.parsed == Counter(
        {"ethernet": 1, "ipv4": 1, "ipv4.parse_quoted": 1, "ipv4.checksum_ok": 1}
    )
    assert run.checksums == Counter({"ipv4_ok": 1})
    assert not run.mismatches and not run.checksum_disagreements
    # the same frame as raw IPv4 and as a Linux cooked capture reaches the same parsers
    walk_record(run, "raw.pcap#0", LINKTYPE_RAW, frame[14:])
    walk_record(run, "sll.pcap#0", LINKTYPE_LINUX_SLL, bytes(14) + frame[12:])
    walk_record(run, "null.pcap#0", LINKTYPE_NULL, AF_INET.to_bytes(4, "little") + frame[14:])
    assert [c.split(" ")[0] for c in run.crashes[1:]] == ["raw.pcap#0", "sll.pcap#0", "null.pcap#0"]


def test_walk_covers_tcp() -> None:
    # 198.18.0.1:40000 -> 198.18.0.2:80 PSH ACK, NOP NOP timestamps, "hello" (see
    # tests/proto/tcp), behind Ethernet and IPv4 headers.
    segment = bytes.fromhex(
        "9c400050001e8481000f4241801801f6413100000101080a000000070000000868656c6c6f"
    )
    packet = bytearray(20 + len(segment))
    packet[20:] = segment
    ipv4.build_header_into(
        packet, 0, len(packet), 1, 0x4000, 64, PROTO_TCP, bytes([198, 18, 0, 1]),
        bytes([198, 18, 0, 2]),
    )  # fmt: skip
    frame = bytes.fromhex("020000000002020000000001") + b"\x08\x00" + bytes(packet)
    run = CorpusRun()
    walk_record(run, "made-up.pcap#0", LINKTYPE_ETHERNET, frame)
    assert not run.crashes and not run.mismatches and not run.checksum_disagreements
    assert run.parsed["tcp"] == run.parsed["tcp.parse_options"] == 1
    assert run.checksums == Counter({"ipv4_ok": 1, "tcp_ok": 1})
    # a damaged segment is counted as a checksum that fails, in agreement with the reference
    damaged = frame[:-1] + b"O"
    walk_record(run, "made-up.pcap#1", LINKTYPE_ETHERNET, damaged)
    assert run.checksums["tcp_bad"] == 1 and not run.checksum_disagreements
    # a cut header is a ParseError the walk counts
    cut = bytearray(packet[:30])
    ipv4.build_header_into(
        cut, 0, 30, 2, 0x4000, 64, PROTO_TCP, bytes([198, 18, 0, 1]), bytes([198, 18, 0, 2])
    )
    walk_record(run, "made-up.pcap#2", LINKTYPE_RAW, bytes(cut))
    assert run.rejected["tcp", "truncated"] == 1 and not run.crashes


def test_walk_reports_emit_mismatches() -> None:
    run = CorpusRun()
    run.same("made-up.pcap#1", "udp", b"\x00\x01", b"\x00\x02")
    assert run.mismatches == ["made-up.pcap#1 udp: emitted 0001 != captured 0002"]


def test_corpus_folder_can_be_overridden(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NETSTACK_PCAP_CORPUS", str(tmp_path))
    assert corpus_dir() == tmp_path
    monkeypatch.delenv("NETSTACK_PCAP_CORPUS")
    assert corpus_dir().parts[-3:] == ("shared", "pcaps", "tcpdump")
    # parents[2] of this file is the repository (it holds pyproject.toml); shared/ is beside it.
    repository = Path(__file__).resolve().parents[2]
    assert (repository / "pyproject.toml").is_file()
    assert corpus_dir() == repository.parent / "shared" / "pcaps" / "tcpdump"
