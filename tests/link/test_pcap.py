"""Tests of netstack.link.pcap: the libpcap writer, the libpcap/pcapng reader and PcapLink."""

from __future__ import annotations

import asyncio
import io
import os
import shutil
import struct
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netstack.errors import LinkError, ParseError
from netstack.link.base import Buffer, FrameCallback, Link, LinkStats, MacAddress
from netstack.link.memory import MemoryLink
from netstack.link.pcap import (
    LINKTYPE_ETHERNET,
    PcapLink,
    PcapngWriter,
    PcapRecord,
    PcapWriter,
    read_pcap,
)

# -- helpers ---------------------------------------------------------------------------------

MAC_A = bytes.fromhex("020000000001")
MAC_B = bytes.fromhex("020000000002")


def ethernet(dst: bytes, src: bytes, ethertype: int, payload: bytes) -> bytes:
    return dst + src + struct.pack("!H", ethertype) + payload


def arp_request() -> bytes:
    """An ARP who-has 198.18.0.2 from 198.18.0.1."""
    body = struct.pack(
        "!HHBBH6s4s6s4s",
        1,
        0x0800,
        6,
        4,
        1,
        MAC_A,
        bytes([198, 18, 0, 1]),
        b"\x00" * 6,
        bytes([198, 18, 0, 2]),
    )
    return ethernet(b"\xff" * 6, MAC_A, 0x0806, body)


def ipv4_udp(payload: bytes) -> bytes:
    """A UDP datagram from 198.18.0.1:5000 to 198.18.0.2:7 (checksums left zero)."""
    udp = struct.pack("!HHHH", 5000, 7, 8 + len(payload), 0) + payload
    ip = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(udp),
        1,
        0,
        64,
        17,
        0,
        bytes([198, 18, 0, 1]),
        bytes([198, 18, 0, 2]),
    )
    return ethernet(MAC_B, MAC_A, 0x0800, ip + udp)


def frame(n: int, size: int = 60) -> bytes:
    """A distinct, valid-looking Ethernet frame (local EtherType 0x88b5)."""
    return ethernet(MAC_B, MAC_A, 0x88B5, bytes([n & 0xFF]) * (size - 14))


class ChunkedReader:
    """A file object that hands out at most ``chunk`` bytes per read, like a pipe."""

    def __init__(self, data: bytes, chunk: int = 3) -> None:
        self._data = data
        self._pos = 0
        self._chunk = chunk

    def read(self, size: int = -1) -> bytes:
        if size < 0:
            size = len(self._data)
        size = min(size, self._chunk)
        out = self._data[self._pos : self._pos + size]
        self._pos += len(out)
        return out


def read_all(data: bytes) -> list[PcapRecord]:
    return list(read_pcap(io.BytesIO(data)))


# -- pcapng builders -------------------------------------------------------------------------


def block(order: str, block_type: int, body: bytes) -> bytes:
    body += b"\x00" * (-len(body) % 4)
    length = 12 + len(body)
    return struct.pack(order + "II", block_type, length) + body + struct.pack(order + "I", length)


def option(order: str, code: int, value: bytes) -> bytes:
    return struct.pack(order + "HH", code, len(value)) + value + b"\x00" * (-len(value) % 4)


def end_of_options(order: str) -> bytes:
    return struct.pack(order + "HH", 0, 0)


def shb(order: str, options: bytes = b"") -> bytes:
    body = struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1) + options
    return block(order, 0x0A0D0D0A, body)


def idb(order: str, linktype: int = 1, snaplen: int = 0, options: bytes = b"") -> bytes:
    return block(order, 1, struct.pack(order + "HHI", linktype, 0, snaplen) + options)


def epb(order: str, iface: int, ticks: int, data: bytes, orig_len: int | None = None) -> bytes:
    orig = len(data) if orig_len is None else orig_len
    head = struct.pack(order + "IIIII", iface, ticks >> 32, ticks & 0xFFFFFFFF, len(data), orig)
    return block(order, 6, head + data)


def spb(order: str, data: bytes, orig_len: int | None = None) -> bytes:
    orig = len(data) if orig_len is None else orig_len
    return block(order, 3, struct.pack(order + "I", orig) + data)


def packet_block(order: str, iface: int, ticks: int, data: bytes) -> bytes:
    head = struct.pack(
        order + "HHIIII", iface, 0, ticks >> 32, ticks & 0xFFFFFFFF, len(data), len(data)
    )
    return block(order, 2, head + data)


ORDERS = pytest.mark.parametrize("order", ["<", ">"], ids=["little", "big"])


# -- classic pcap: writing and reading -------------------------------------------------------


@pytest.mark.parametrize("nanosecond", [False, True], ids=["usec", "nsec"])
def test_pcap_round_trip(tmp_path: Path, nanosecond: bool) -> None:
    path = tmp_path / "out.pcap"
    frames = [frame(i, 60 + i) for i in range(20)]
    stamps = [1_700_000_000.0 + i * 0.001234567 for i in range(20)]
    with PcapWriter(path, nanosecond=nanosecond) as writer:
        for data, stamp in zip(frames, stamps, strict=True):
            writer.write(data, stamp)
    assert writer.closed
    magic = path.read_bytes()[:4]
    assert magic == struct.pack("<I", 0xA1B23C4D if nanosecond else 0xA1B2C3D4)
    records = list(read_pcap(path))
    assert [r.data for r in records] == frames
    assert [r.orig_len for r in records] == [len(f) for f in frames]
    assert {r.linktype for r in records} == {LINKTYPE_ETHERNET}
    tolerance = 1e-6 if nanosecond else 1e-6 + 1e-7
    for record, stamp in zip(records, stamps, strict=True):
        assert record.timestamp == pytest.approx(stamp, abs=tolerance)


def test_pcap_header_and_record_layout() -> None:
    out = io.BytesIO()
    writer = PcapWriter(out, linktype=101, snaplen=65535)
    writer.write(b"\x01\x02\x03", 1.5)
    writer.close()
    assert not out.closed  # a caller's file object is left open
    expected = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 101)
    expected += struct.pack("<IIII", 1, 500_000, 3, 3) + b"\x01\x02\x03"
    assert out.getvalue() == expected


def test_pcap_writer_cuts_at_snaplen_and_accepts_views() -> None:
    out = io.BytesIO()
    writer = PcapWriter(out, snaplen=16)
    data = frame(7, 100)
    writer.write(memoryview(data), 10.0)
    writer.write(bytearray(data[:16]), 11.0)
    writer.flush()
    records = read_all(out.getvalue())
    assert records == [
        PcapRecord(10.0, 1, data[:16], 100),
        PcapRecord(11.0, 1, data[:16], 16),
    ]


def test_pcap_writer_rounds_into_the_next_second() -> None:
    out = io.BytesIO()
    writer = PcapWriter(out)
    writer.write(b"x" * 14, 99.9999999)
    (record,) = read_all(out.getvalue())
    assert record.timestamp == 100.0


def test_pcap_writer_misuse() -> None:
    out = io.BytesIO()
    writer = PcapWriter(out)
    for bad in (-1.0, float("nan"), float("inf"), 2.0**33):
        with pytest.raises(ValueError):
            writer.write(b"x" * 14, bad)
    writer.close()
    writer.close()  # twice is fine
    writer.flush()
    with pytest.raises(ValueError):
        writer.write(b"x" * 14, 1.0)
    with pytest.raises(ValueError):
        PcapWriter(io.BytesIO(), snaplen=0)
    with pytest.raises(ValueError):
        PcapWriter(io.BytesIO(), linktype=-1)


@pytest.mark.parametrize(
    ("magic", "units"),
    [(0xA1B2C3D4, 1_000_000), (0xA1B23C4D, 1_000_000_000)],
    ids=["usec", "nsec"],
)
@ORDERS
def test_read_classic_both_byte_orders(order: str, magic: int, units: int) -> None:
    # The top bits of the link-type field carry FCS information, which is not the link type.
    data = struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, 65535, 0x10000000 | 113)
    data += struct.pack(order + "IIII", 1_600_000_000, units // 4, 5, 9) + b"hello"
    data += struct.pack(order + "IIII", 1_600_000_001, 0, 0, 0)
    assert read_all(data) == [
        PcapRecord(1_600_000_000.25, 113, b"hello", 9),
        PcapRecord(1_600_000_001.0, 113, b"", 0),
    ]


def test_read_from_short_reads() -> None:
    out = io.BytesIO()
    with PcapWriter(out) as writer:
        for i in range(5):
            writer.write(frame(i), float(i))
    records = list(read_pcap(ChunkedReader(out.getvalue())))
    assert [r.data for r in records] == [frame(i) for i in range(5)]


def test_truncated_last_record_yields_the_good_ones_first() -> None:
    out = io.BytesIO()
    with PcapWriter(out) as writer:
        for i in range(3):
            writer.write(frame(i), float(i))
    data = out.getvalue()[:-10]
    got: list[PcapRecord] = []
    with pytest.raises(ParseError) as info:
        for record in read_pcap(io.BytesIO(data)):
            got.append(record)
    assert info.value.reason == "truncated_record"
    assert [r.data for r in got] == [frame(0), frame(1)]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "truncated_file_header"),
        (b"\xd4\xc3", "truncated_file_header"),
        (b"GIF89a" + b"\x00" * 30, "unknown_magic"),
        (struct.pack("<I", 0xA1B2C3D4) + b"\x00" * 10, "truncated_file_header"),
        (struct.pack("<IHHiIII", 0xA1B2C3D4, 1, 0, 0, 0, 65535, 1), "unsupported_version"),
        (
            struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1) + b"\x00" * 7,
            "truncated_record_header",
        ),
        (
            struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
            + struct.pack("<IIII", 0, 0, 0xFFFFFFFF, 0xFFFFFFFF),
            "record_too_long",
        ),
    ],
)
def test_read_classic_rejects(data: bytes, reason: str) -> None:
    with pytest.raises(ParseError) as info:
        read_all(data)
    assert info.value.reason == reason


def test_read_pcap_opens_paths_lazily(tmp_path: Path) -> None:
    missing = tmp_path / "missing.pcap"
    records = read_pcap(str(missing))  # nothing happens until iteration
    with pytest.raises(FileNotFoundError):
        next(records)


# -- garbage in: ParseError, never anything else ---------------------------------------------


def _consume_expecting_parse_error(data: bytes) -> None:
    try:
        for record in read_pcap(io.BytesIO(data)):
            assert isinstance(record.data, bytes)
            assert len(record.data) <= len(data)
    except ParseError as exc:
        assert exc.reason


@settings(max_examples=300)
@given(st.binary(max_size=512))
def test_arbitrary_bytes_raise_only_parse_error(data: bytes) -> None:
    _consume_expecting_parse_error(data)


_PREFIXES = [
    struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1),
    struct.pack(">IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 65535, 1),
    shb("<") + idb("<"),
    shb(">") + idb(">", options=option(">", 9, b"\x89")),
    b"\x0a\x0d\x0d\x0a",
]


@settings(max_examples=300)
@given(st.sampled_from(_PREFIXES), st.binary(max_size=512))
def test_valid_header_then_garbage_raises_only_parse_error(prefix: bytes, tail: bytes) -> None:
    _consume_expecting_parse_error(prefix + tail)


def _sample_pcapng() -> bytes:
    return (
        shb("<")
        + idb("<", options=option("<", 9, b"\x09") + end_of_options("<"))
        + epb("<", 0, 123, frame(1))
        + spb("<", frame(2))
        + shb(">")
        + idb(">", linktype=101)
        + packet_block(">", 0, 456, frame(3))
    )


@settings(max_examples=300)
@given(st.data())
def test_mutated_pcapng_raises_only_parse_error(data: st.DataObject) -> None:
    raw = bytearray(_sample_pcapng())
    for _ in range(data.draw(st.integers(1, 4))):
        index = data.draw(st.integers(0, len(raw) - 1))
        raw[index] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    _consume_expecting_parse_error(bytes(raw[:cut]))


def test_every_truncation_of_a_pcapng_file_is_a_parse_error_or_a_clean_end() -> None:
    raw = _sample_pcapng()
    full = read_all(raw)
    for cut in range(len(raw)):
        got: list[PcapRecord] = []
        try:
            for record in read_pcap(io.BytesIO(raw[:cut])):
                got.append(record)
        except ParseError:
            pass
        assert got == full[: len(got)]


# -- pcapng ----------------------------------------------------------------------------------


@ORDERS
def test_pcapng_enhanced_packets_default_resolution(order: str) -> None:
    ticks = 1_700_000_000 * 1_000_000 + 250_000
    data = shb(order) + idb(order, snaplen=65535) + epb(order, 0, ticks, frame(1), orig_len=1500)
    assert read_all(data) == [PcapRecord(1_700_000_000.25, 1, frame(1), 1500)]


@ORDERS
@pytest.mark.parametrize(
    ("tsresol", "units"),
    [(b"\x09", 10**9), (b"\x03", 10**3), (b"\x8a", 1024), (b"\x00", 1)],
    ids=["nsec", "msec", "2^-10", "sec"],
)
def test_pcapng_if_tsresol(order: str, tsresol: bytes, units: int) -> None:
    ticks = 1_700_000_000 * units + units // 2
    options = option(order, 2, b"eth0") + option(order, 9, tsresol) + end_of_options(order)
    data = shb(order) + idb(order, options=options) + epb(order, 0, ticks, frame(1))
    (record,) = read_all(data)
    assert record.timestamp == pytest.approx(1_700_000_000 + (units // 2) / units, abs=1e-6)


@ORDERS
def test_pcapng_if_tsoffset(order: str) -> None:
    options = option(order, 9, b"\x03") + option(order, 14, struct.pack(order + "q", 1_000_000))
    data = shb(order) + idb(order, options=options) + epb(order, 0, 2500, frame(1))
    (record,) = read_all(data)
    assert record.timestamp == pytest.approx(1_000_002.5)


@ORDERS
def test_pcapng_simple_packet_block(order: str) -> None:
    data = (
        shb(order)
        + idb(order, linktype=1, snaplen=20)
        + spb(order, frame(1)[:20], orig_len=60)
        + spb(order, b"\x01\x02\x03", orig_len=3)  # padded to 4 bytes in the block
    )
    assert read_all(data) == [
        PcapRecord(0.0, 1, frame(1)[:20], 60),
        PcapRecord(0.0, 1, b"\x01\x02\x03", 3),
    ]


@ORDERS
def test_pcapng_obsolete_packet_block(order: str) -> None:
    data = shb(order) + idb(order, linktype=105) + packet_block(order, 0, 3_000_000, b"abc")
    assert read_all(data) == [PcapRecord(3.0, 105, b"abc", 3)]


def test_pcapng_interfaces_sections_and_unknown_blocks() -> None:
    data = (
        shb("<", options=option("<", 1, b"first section") + end_of_options("<"))
        + idb("<", linktype=1)
        + idb("<", linktype=101, options=option("<", 9, b"\x09"))
        + block("<", 4, b"\x00\x00\x00\x00")  # name resolution: skipped
        + epb("<", 1, 5 * 10**9, b"raw-ip")
        + block("<", 0x00000BAD, b"custom data!")  # custom block: skipped
        + epb("<", 0, 7 * 10**6, frame(1))
        + block("<", 5, b"\x00" * 12)  # interface statistics: skipped
        + shb(">")  # a new section, in the other byte order, with its own interfaces
        + idb(">", linktype=113)
        + epb(">", 0, 9 * 10**6, b"sll")
    )
    assert read_all(data) == [
        PcapRecord(5.0, 101, b"raw-ip", 6, interface=1),
        PcapRecord(7.0, 1, frame(1), 60, interface=0),
        PcapRecord(9.0, 113, b"sll", 3, interface=0),  # ids count from each section
    ]


def test_pcapng_interfaces_belong_to_their_section() -> None:
    data = shb("<") + idb("<") + shb("<") + epb("<", 0, 0, b"x")
    with pytest.raises(ParseError) as info:
        read_all(data)
    assert info.value.reason == "unknown_interface"


def _with_length(blk: bytes, order: str, length: int, trailer: int | None = None) -> bytes:
    out = blk[:4] + struct.pack(order + "I", length) + blk[8:-4]
    return out + struct.pack(order + "I", length if trailer is None else trailer)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x0a\x0d\x0d\x0a\x1c\x00\x00\x00", "truncated_block"),
        (shb("<")[:8] + b"\x11\x22\x33\x44" + shb("<")[12:], "bad_byte_order_magic"),
        (
            b"\x0a\x0d\x0d\x0a" + struct.pack("<I", 24) + b"\x4d\x3c\x2b\x1a" + b"\x00" * 12,
            "block_too_short",
        ),
        (
            shb("<")[:8] + b"\x4d\x3c\x2b\x1a" + struct.pack("<HH", 2, 0) + shb("<")[16:],
            "unsupported_version",
        ),
        (shb("<") + idb("<") + b"\x06\x00\x00", "truncated_block"),
        (shb("<") + idb("<") + b"\x06\x00\x00\x00\x20\x00", "truncated_block"),
        (shb("<") + idb("<") + struct.pack("<II", 6, 0x7FFFFFFC), "block_too_long"),
        (shb("<") + idb("<") + struct.pack("<II", 6, 8), "block_too_short"),
        (shb("<") + idb("<") + struct.pack("<II", 6, 34) + b"\x00" * 26, "block_length_unaligned"),
        (shb("<") + idb("<") + block("<", 6, b"\x00" * 16), "block_too_short"),
        (shb("<") + _with_length(idb("<"), "<", 20, trailer=24), "block_length_mismatch"),
        (shb("<") + idb("<") + epb("<", 1, 0, b"abc"), "unknown_interface"),
        (shb("<") + spb("<", b"abc"), "unknown_interface"),
        (
            shb("<") + idb("<") + block("<", 6, struct.pack("<IIIII", 0, 0, 0, 9, 9) + b"abcd"),
            "captured_length_overrun",
        ),
        (shb("<") + idb("<", options=struct.pack("<HH", 2, 40) + b"eth0"), "option_overrun"),
        (shb("<") + idb("<", options=option("<", 9, b"\x06\x00")), "bad_if_tsresol"),
        (shb("<") + idb("<", options=option("<", 14, b"\x00" * 4)), "bad_if_tsoffset"),
    ],
)
def test_pcapng_rejects(data: bytes, reason: str) -> None:
    with pytest.raises(ParseError) as info:
        read_all(data)
    assert info.value.reason == reason


def test_pcapng_huge_block_length_is_rejected_before_reading() -> None:
    class Endless:
        """Would hand out bytes forever: the reader must not ask for a huge block."""

        def __init__(self, head: bytes) -> None:
            self.head = io.BytesIO(head)

        def read(self, size: int = -1) -> bytes:
            assert 0 <= size <= 64 * 1024 * 1024
            return self.head.read(size) or b"\x00" * size

    head = shb("<") + idb("<") + struct.pack("<II", 6, 0xFFFFFFF0)
    with pytest.raises(ParseError) as info:
        list(read_pcap(Endless(head)))
    assert info.value.reason == "block_too_long"


# -- the tcpdump corpus ----------------------------------------------------------------------


def _corpus_dir() -> Path:
    override = os.environ.get("NETSTACK_PCAP_CORPUS")
    if override:
        return Path(override)
    # tests/link/test_pcap.py -> the repository -> its parent, where shared/ lives.
    return Path(__file__).resolve().parents[3] / "shared" / "pcaps" / "tcpdump"


def _corpus_files() -> list[Path]:
    folder = _corpus_dir()
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix in (".pcap", ".pcapng"))


_CORPUS = _corpus_files()


@pytest.mark.parametrize(
    "path",
    _CORPUS
    or [pytest.param(None, marks=pytest.mark.skip(reason=f"no pcap corpus at {_corpus_dir()}"))],
    ids=lambda p: p.name if isinstance(p, Path) else "absent",
)
def test_corpus_file_reads_fully_or_raises_parse_error(path: Path) -> None:
    count = 0
    try:
        for record in read_pcap(path):
            assert isinstance(record.timestamp, float)
            assert isinstance(record.data, bytes)
            assert record.linktype >= 0
            count += 1
    except ParseError as exc:
        assert exc.reason
    size = path.stat().st_size
    assert count * 16 <= size  # every record costs at least a 16-byte header


# -- PcapLink --------------------------------------------------------------------------------


async def _spin(turns: int = 3) -> None:
    for _ in range(turns):
        await asyncio.sleep(0)


async def test_pcap_link_records_both_directions(tmp_path: Path) -> None:
    inner_a, inner_b = MemoryLink.pair()
    path = tmp_path / "a.pcap"
    link_a = PcapLink(inner_a, path)
    assert isinstance(link_a, Link)
    assert link_a.mac == inner_a.mac
    assert link_a.mtu == inner_a.mtu == 1500
    assert link_a.path == path
    assert link_a.link is inner_a
    assert callable(getattr(link_a, "transmit", None))

    got_a: list[bytes] = []
    got_b: list[bytes] = []
    listen_a = asyncio.create_task(link_a.listen(lambda f: got_a.append(bytes(f))))
    listen_b = asyncio.create_task(inner_b.listen(lambda f: got_b.append(bytes(f))))
    await _spin()

    sent = [frame(1), frame(2, 80), frame(3, 100)]
    await link_a.write(sent[0])
    await link_a.writev([sent[1][:14], memoryview(sent[1])[14:40], sent[1][40:]])
    link_a.transmit(sent[2])
    received = [frame(4, 64), frame(5, 1514)]
    for data in received:
        inner_b.transmit(data)
    await _spin()

    assert got_b == sent
    assert got_a == received
    assert link_a.stats().tx_packets == 3
    assert link_a.stats().rx_packets == 2
    link_a.reset_stats()
    assert inner_a.stats().tx_packets == 0

    link_a.flush()
    await link_a.disconnect()
    await inner_b.disconnect()
    await asyncio.wait_for(asyncio.gather(listen_a, listen_b), 1.0)
    assert not link_a.recording
    assert inner_a.closed and link_a.closed  # forwarded to the inner link
    link_a.close()  # already closed by disconnect: fine

    records = list(read_pcap(path))
    assert [r.data for r in records] == sent + received
    assert all(r.linktype == LINKTYPE_ETHERNET for r in records)
    assert all(r.orig_len == len(r.data) for r in records)
    stamps = [r.timestamp for r in records]
    assert stamps == sorted(stamps)

    with pytest.raises(LinkError):  # like the inner link: closed is closed
        link_a.transmit(frame(6))


async def test_pcap_link_nanosecond(tmp_path: Path) -> None:
    inner_a, inner_b = MemoryLink.pair()
    link = PcapLink(inner_a, tmp_path / "ns.pcap", nanosecond=True)
    link.transmit(frame(1))
    link.close()
    link.close()
    assert (tmp_path / "ns.pcap").read_bytes()[:4] == struct.pack("<I", 0xA1B23C4D)
    assert [r.data for r in read_pcap(tmp_path / "ns.pcap")] == [frame(1)]
    # After close() the link still works, it just is not recorded any more.
    link.transmit(frame(2))
    await inner_a.disconnect()
    await inner_b.disconnect()


async def test_pcap_link_oversized_frame_still_raises(tmp_path: Path) -> None:
    inner_a, _ = MemoryLink.pair(mtu=100)
    link = PcapLink(inner_a, tmp_path / "big.pcap")
    with pytest.raises(LinkError):
        link.transmit(frame(1, 200))
    with pytest.raises(LinkError):
        await link.write(frame(1, 200))
    await link.disconnect()


class DummyLink:
    """A Link with only the protocol's methods: no synchronous transmit."""

    def __init__(self) -> None:
        self.mac = MacAddress(MAC_A)
        self.mtu = 1500
        self.written: list[bytes] = []
        self.on_frame: FrameCallback | None = None
        self.disconnected = asyncio.Event()
        self.counters = LinkStats()
        self.extra = "forwarded"

    async def write(self, frame: Buffer) -> None:
        self.written.append(bytes(frame))

    async def writev(self, parts: Sequence[Buffer]) -> None:
        self.written.append(b"".join(parts))

    async def listen(self, on_frame: FrameCallback) -> None:
        self.on_frame = on_frame
        await self.disconnected.wait()

    def stats(self) -> LinkStats:
        return self.counters

    def reset_stats(self) -> None:
        self.counters = LinkStats()

    async def disconnect(self) -> None:
        self.disconnected.set()


class AsyncTransmitLink(DummyLink):
    async def transmit(self, frame: bytes | bytearray) -> None:
        self.written.append(bytes(frame))


@pytest.mark.parametrize("inner_type", [DummyLink, AsyncTransmitLink])
async def test_pcap_link_without_sync_transmit_has_no_transmit(
    tmp_path: Path, inner_type: type[DummyLink]
) -> None:
    inner = inner_type()
    link = PcapLink(inner, tmp_path / "dummy.pcap")
    assert isinstance(link, Link)
    assert not hasattr(link, "transmit")
    assert getattr(link, "transmit", None) is None
    with pytest.raises(AttributeError):
        link.transmit  # noqa: B018
    assert link.extra == "forwarded"
    with pytest.raises(AttributeError):
        link._private  # noqa: B018

    link.mtu = 9000
    assert inner.mtu == 9000

    got: list[bytes] = []
    listener = asyncio.create_task(link.listen(lambda f: got.append(bytes(f))))
    await _spin()
    assert inner.on_frame is not None
    inner.on_frame(memoryview(frame(9)))
    await link.write(frame(1))
    await link.writev([frame(2)[:20], frame(2)[20:]])
    assert inner.written == [frame(1), frame(2)]
    assert got == [frame(9)]
    assert link.stats() is inner.counters

    await link.disconnect()
    await asyncio.wait_for(listener, 1.0)
    assert [r.data for r in read_pcap(tmp_path / "dummy.pcap")] == [frame(9), frame(1), frame(2)]


async def test_pcap_link_listener_errors_still_record(tmp_path: Path) -> None:
    inner = DummyLink()
    link = PcapLink(inner, tmp_path / "err.pcap")

    def broken(frame: memoryview) -> None:
        raise RuntimeError("listener bug")

    listener = asyncio.create_task(link.listen(broken))
    await _spin()
    assert inner.on_frame is not None
    with pytest.raises(RuntimeError):
        inner.on_frame(memoryview(frame(1)))
    await link.disconnect()
    await asyncio.wait_for(listener, 1.0)
    assert [r.data for r in read_pcap(tmp_path / "err.pcap")] == [frame(1)]


# -- a real reader: tshark -------------------------------------------------------------------


def _tshark() -> str:
    tshark = shutil.which("tshark")
    if tshark is None:
        if os.environ.get("NETSTACK_REQUIRE_PEERS") == "1":
            pytest.fail("tshark is required (NETSTACK_REQUIRE_PEERS=1) but not installed")
        pytest.skip("tshark is not installed")
    return tshark


@pytest.mark.parametrize("nanosecond", [False, True], ids=["usec", "nsec"])
async def test_tshark_reads_a_pcap_link_capture(tmp_path: Path, nanosecond: bool) -> None:
    tshark = _tshark()
    inner_a, inner_b = MemoryLink.pair()
    path = tmp_path / "capture.pcap"
    link = PcapLink(inner_a, path, nanosecond=nanosecond)
    received: list[bytes] = []
    listener = asyncio.create_task(inner_b.listen(lambda f: received.append(bytes(f))))
    await _spin()
    frames = [arp_request(), ipv4_udp(b"ping"), ipv4_udp(b"x" * 1000)]
    for data in frames:
        link.transmit(data)
    await _spin()
    await link.disconnect()
    await inner_b.disconnect()
    await asyncio.wait_for(listener, 1.0)
    assert received == frames

    result = subprocess.run(
        [tshark, "-n", "-r", str(path), "-T", "fields", "-e", "frame.len", "-e", "eth.type"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "HOME": str(tmp_path)},  # no user profile, no surprises
    )
    assert result.returncode == 0, result.stderr
    lines = [line.split("\t") for line in result.stdout.splitlines()]
    assert lines == [
        [str(len(frames[0])), "0x0806"],
        [str(len(frames[1])), "0x0800"],
        [str(len(frames[2])), "0x0800"],
    ]


# -- pcapng: one file, an interface per link ---------------------------------------------------
@pytest.mark.parametrize("nanosecond", [False, True], ids=["usec", "nsec"])
def test_pcapng_writer_round_trip_with_interfaces(tmp_path: Path, nanosecond: bool) -> None:
    path = tmp_path / "net.pcapng"
    with PcapngWriter(path) as writer:
        a = writer.add_interface("a", nanosecond=nanosecond)
        b = writer.add_interface("b", snaplen=40)
        assert (a.index, b.index) == (0, 1) and writer.interfaces == [a, b]
        a.write(frame(1), 1700000000.25)
        b.write(memoryview(frame(2, 100)), 1700000000.5)  # cut to 40 bytes
        writer.write(frame(3, 61), 1700000001.000001, interface=0)  # 61: padded to 64
    records = list(read_pcap(path))
    assert [r.interface for r in records] == [0, 1, 0]
    assert [r.data for r in records] == [frame(1), frame(2, 100)[:40], frame(3, 61)]
    assert [r.orig_len for r in records] == [60, 100, 61]
    assert records[0].timestamp == pytest.approx(1700000000.25, abs=1e-6)
    assert records[2].timestamp == pytest.approx(1700000001.000001, abs=1e-6)


def test_pcapng_writer_misuse(tmp_path: Path) -> None:
    writer = PcapngWriter(io.BytesIO())
    with pytest.raises(ValueError, match="unknown interface"):
        writer.write(frame(1), 1.0)
    iface = writer.add_interface("x")
    with pytest.raises(ValueError):
        writer.add_interface("y", linktype=70000)
    with pytest.raises(ValueError):
        iface.write(frame(1), -1.0)
    iface.close()
    with pytest.raises(ValueError, match="closed interface"):
        iface.write(frame(1), 1.0)
    writer.close()
    writer.close()
    with pytest.raises(ValueError):
        writer.add_interface("z")


async def test_pcap_links_share_one_pcapng_file(tmp_path: Path) -> None:
    inner_a, inner_b = MemoryLink.pair()
    path = tmp_path / "pair.pcapng"
    writer = PcapngWriter(path)
    link_a = PcapLink(inner_a, writer, name="host-a")
    link_b = PcapLink(inner_b, writer, name="host-b")
    assert link_a.path == link_b.path == path
    got: list[bytes] = []
    listener = asyncio.create_task(link_b.listen(lambda f: got.append(bytes(f))))
    await _spin()
    link_a.transmit(frame(1))
    await _spin()
    await link_a.disconnect()
    await link_b.disconnect()
    await asyncio.wait_for(listener, 1.0)
    assert got == [frame(1)]
    assert not writer.closed  # the links leave the shared file open
    writer.close()
    # The frame is in the file twice: sent on host-a's interface, received on host-b's.
    assert [(r.interface, r.data) for r in read_pcap(path)] == [(0, frame(1)), (1, frame(1))]


async def test_pcap_link_pcapng_by_suffix(tmp_path: Path) -> None:
    inner_a, _ = MemoryLink.pair()
    link = PcapLink(inner_a, tmp_path / "one.pcapng")
    link.transmit(frame(7))
    link.close()
    assert (tmp_path / "one.pcapng").read_bytes()[:4] == b"\x0a\x0d\x0d\x0a"
    assert [r.data for r in read_pcap(tmp_path / "one.pcapng")] == [frame(7)]


async def test_tshark_reads_a_pcapng_network(tmp_path: Path) -> None:
    tshark = _tshark()
    path = tmp_path / "net.pcapng"
    with PcapngWriter(path) as writer:
        left = writer.add_interface("left")
        right = writer.add_interface("right", nanosecond=True)
        left.write(arp_request(), 1700000000.0)
        right.write(ipv4_udp(b"x" * 1000), 1700000000.123456789)
    result = subprocess.run(
        [tshark, "-n", "-r", str(path), "-T", "fields", "-e", "frame.interface_name",
         "-e", "frame.len", "-e", "eth.type"],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "HOME": str(tmp_path)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = [line.split("\t") for line in result.stdout.splitlines()]
    assert lines == [
        ["left", str(len(arp_request())), "0x0806"],
        ["right", str(len(ipv4_udp(b"x" * 1000))), "0x0800"],
    ]
