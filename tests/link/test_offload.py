"""Offload metadata (netstack.link.offload): the virtio_net_hdr codec, judging hostile metadata,
software segmentation and checksum completion; a stack honouring partial and verified
checksums and counting bad metadata; two stacks exchanging TCP super-segments over memory
links and a switch; a capture of offloaded traffic holding the wire's frames."""

from __future__ import annotations

import asyncio
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import netstack
from netstack.errors import LinkError
from netstack.link import MemoryLink, PcapLink, Switch
from netstack.link.memory import Impairment
from netstack.link.offload import (
    DATA_VALID,
    GSO_TCPV4,
    GSO_TCPV6,
    GSO_UDP_L4,
    NEEDS_CSUM,
    VNET_HDR,
    FrameMeta,
    Offloads,
    check,
    csum_trusted,
    cut_tcp,
    offloads_of,
    segment,
)
from netstack.link.pcap import read_pcap
from netstack.proto.checksum import checksum, pseudo_header_sum, pseudo_header_sum6, verify

MAC_A = bytes.fromhex("020000000001")
MAC_B = bytes.fromhex("020000000002")
SRC4, DST4 = bytes([198, 18, 0, 1]), bytes([198, 18, 0, 2])
SRC6 = bytes.fromhex("fd000198001800000000000000000001")
DST6 = bytes.fromhex("fd000198001800000000000000000002")
TCP_FLAGS_ACK, TCP_FLAGS_PSH, TCP_FLAGS_CWR, TCP_FLAGS_SYN = 0x10, 0x08, 0x80, 0x02


def tcp4(payload: bytes, *, seq: int = 1000, flags: int = TCP_FLAGS_ACK, frag: int = 0x4000,
         partial: bool = True, dport: int = 80, sport: int = 40000,
         options: bytes = b"") -> bytearray:  # fmt: skip
    """An Ethernet/IPv4/TCP frame; the TCP checksum partial (pseudo-header sum only, as a
    sender with checksum offload leaves it) or complete."""
    hl = 20 + len(options)
    tcp = bytearray(struct.pack("!HHIIHHHH", sport, dport, seq, 1, ((hl // 4) << 12) | flags,
                                65535, 0, 0) + options + payload)  # fmt: skip
    length = len(tcp)
    base = pseudo_header_sum(SRC4, DST4, 6, length)
    value = base % 0xFFFF if partial else checksum(tcp, base)
    struct.pack_into("!H", tcp, 16, value)
    ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + length, 7, frag, 64, 6, 0,
                               SRC4, DST4))  # fmt: skip
    struct.pack_into("!H", ip, 10, checksum(ip))
    return bytearray(MAC_B + MAC_A + b"\x08\x00") + ip + tcp


def tcp6(payload: bytes, *, seq: int = 5, flags: int = TCP_FLAGS_ACK) -> bytearray:
    tcp = bytearray(struct.pack("!HHIIHHHH", 40000, 80, seq, 1, (5 << 12) | flags, 65535, 0, 0))
    tcp += payload
    base = pseudo_header_sum6(SRC6, DST6, 6, len(tcp))
    struct.pack_into("!H", tcp, 16, base % 0xFFFF)
    ip = struct.pack("!IHBB16s16s", 0x60000000, len(tcp), 6, 64, SRC6, DST6)
    return bytearray(MAC_B + MAC_A + b"\x86\xdd") + ip + tcp


def udp4(payload: bytes) -> bytearray:
    udp = bytearray(struct.pack("!HHHH", 5353, 9000, 8 + len(payload), 0) + payload)
    struct.pack_into("!H", udp, 6, pseudo_header_sum(SRC4, DST4, 17, len(udp)) % 0xFFFF)
    ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 9, 0x4000, 64, 17, 0,
                               SRC4, DST4))  # fmt: skip
    struct.pack_into("!H", ip, 10, checksum(ip))
    return bytearray(MAC_B + MAC_A + b"\x08\x00") + ip + udp


def tso4(size: int = 1000) -> FrameMeta:
    return FrameMeta(NEEDS_CSUM, GSO_TCPV4, 54, size, 34, 16)


def tcp_checksum_ok(frame: bytes) -> bool:
    if frame[12:14] == b"\x08\x00":
        ihl = (frame[14] & 15) * 4
        total = struct.unpack_from("!H", frame, 16)[0]
        l4 = frame[14 + ihl : 14 + total]
        proto = frame[23]
        return verify(l4, pseudo_header_sum(frame[26:30], frame[30:34], proto, len(l4)))
    plen = struct.unpack_from("!H", frame, 18)[0]
    l4 = frame[54 : 54 + plen]
    return verify(l4, pseudo_header_sum6(frame[22:38], frame[38:54], frame[20], len(l4)))


# -- the codec ---------------------------------------------------------------------------------
@pytest.mark.skipif(sys.byteorder != "little", reason="the header is in the host's byte order")
def test_vnet_header_round_trip_against_fixed_bytes() -> None:
    # flags NEEDS_CSUM, GSO_TCPV4, hdr_len 66, gso_size 1448, csum_start 34, offset 16.
    raw = bytes([1, 1, 66, 0, 0xA8, 0x05, 34, 0, 16, 0, 0, 0])
    assert VNET_HDR.size == 12
    assert VNET_HDR.pack(*FrameMeta(1, 1, 66, 1448, 34, 16), 0) == raw
    assert FrameMeta(*VNET_HDR.unpack(raw)[:6]) == FrameMeta(1, 1, 66, 1448, 34, 16)


def test_offloads_are_opt_in_by_capability() -> None:
    class Plain:
        pass

    assert not offloads_of(Plain())
    assert not offloads_of(MemoryLink())
    assert offloads_of(MemoryLink(offload=True)) == Offloads(csum=True, tso4=True, tso6=True)
    with pytest.raises(LinkError):
        MemoryLink().transmit(bytes(tcp4(b"x" * 10)), FrameMeta(NEEDS_CSUM, 0, 0, 0, 34, 16))


# -- judging metadata --------------------------------------------------------------------------
def test_sound_metadata_passes() -> None:
    assert check(tcp4(b"x" * 3000), tso4()) is None
    assert check(tcp6(b"x" * 3000), FrameMeta(NEEDS_CSUM, GSO_TCPV6, 74, 1000, 54, 16)) is None
    assert check(udp4(b"x" * 3000), FrameMeta(NEEDS_CSUM, GSO_UDP_L4, 42, 1000, 34, 6)) is None
    assert check(tcp4(b"x" * 10), FrameMeta(NEEDS_CSUM, 0, 0, 0, 34, 16)) is None
    assert check(tcp4(b"x" * 10), FrameMeta(DATA_VALID)) is None


@pytest.mark.parametrize(
    ("frame", "meta", "reason"),
    [
        (tcp4(b"x" * 3000), tso4(0), "offload_bad_gso_size"),
        (tcp4(b"x" * 3000), tso4(70000), "offload_bad_gso_size"),
        (tcp4(b"x" * 60000), tso4(8), "offload_too_many_segments"),
        (
            tcp4(b"x" * 3000),
            FrameMeta(NEEDS_CSUM, GSO_TCPV4, 54, 1000, 30, 16),
            "offload_bad_csum_start",
        ),
        (
            tcp4(b"x" * 3000),
            FrameMeta(NEEDS_CSUM, GSO_TCPV4, 54, 1000, 60000, 16),
            "offload_bad_csum_start",
        ),
        (
            tcp4(b"x" * 3000),
            FrameMeta(NEEDS_CSUM, GSO_TCPV4, 54, 1000, 34, 6),
            "offload_bad_csum_offset",
        ),
        (
            tcp4(b"x" * 3000),
            FrameMeta(NEEDS_CSUM, GSO_TCPV4, 54, 1000, 34, 40000),
            "offload_bad_csum_offset",
        ),
        (
            tcp4(b"x" * 3000),
            FrameMeta(NEEDS_CSUM, GSO_TCPV6, 54, 1000, 34, 16),
            "offload_gso_mismatch",
        ),
        (
            udp4(b"x" * 3000),
            FrameMeta(NEEDS_CSUM, GSO_TCPV4, 42, 1000, 34, 6),
            "offload_gso_mismatch",
        ),
        (tcp4(b"x" * 3000), FrameMeta(0, GSO_TCPV4, 54, 1000, 0, 0), "offload_gso_without_csum"),
        (tcp4(b"x" * 3000), FrameMeta(NEEDS_CSUM, 3, 54, 1000, 34, 16), "offload_bad_gso_type"),
        (tcp4(b"x" * 3000), FrameMeta(NEEDS_CSUM, 9, 54, 1000, 34, 16), "offload_bad_gso_type"),
        (tcp4(b"x" * 3000), FrameMeta(0x84, 0, 0, 0, 34, 16), "offload_bad_flags"),
        # Lengths that lie: the IP total length past the frame, a truncated frame, a TCP
        # header longer than the datagram.
        (tcp4(b"x" * 3000)[:-100], tso4(), "offload_bad_ip_length"),
        (tcp4(b"")[:30], FrameMeta(NEEDS_CSUM, 0, 0, 0, 34, 16), "offload_truncated"),
        (tcp4(b"x" * 3000, frag=0x2000), tso4(), "offload_fragment"),
        (bytearray(MAC_B + MAC_A + b"\x08\x06") + bytes(60), tso4(), "offload_not_ip"),
    ],
)
def test_hostile_metadata_is_refused_with_a_reason(
    frame: bytearray, meta: FrameMeta, reason: str
) -> None:
    assert check(frame, meta) == reason
    with pytest.raises(ValueError, match=reason):
        segment(frame, meta)


def test_tcp_data_offset_past_the_datagram() -> None:
    frame = tcp4(b"")
    frame[14 + 20 + 12] = 0xF0  # a 60-byte TCP header in a 20-byte segment
    assert check(frame, FrameMeta(NEEDS_CSUM, 0, 0, 0, 34, 16)) == "offload_bad_l4_length"


def test_which_checksums_are_trusted() -> None:
    assert csum_trusted(tcp4(b"abc"), FrameMeta(NEEDS_CSUM, 0, 0, 0, 34, 16))
    assert csum_trusted(tcp4(b"abc", partial=False), FrameMeta(DATA_VALID))
    # DATA_VALID vouches for a plain TCP/UDP packet's checksum only: not for a fragment's
    # (its checksum covers a datagram not yet reassembled), nor for another protocol.
    assert not csum_trusted(tcp4(b"abc", frag=0x2000), FrameMeta(DATA_VALID))
    icmp = tcp4(b"abc")
    icmp[23] = 1
    assert not csum_trusted(icmp, FrameMeta(DATA_VALID))
    assert not csum_trusted(tcp4(b"abc"), FrameMeta())


# -- software segmentation ---------------------------------------------------------------------
def test_tcp4_super_segment_is_cut_like_linux_does() -> None:
    payload = bytes(range(256)) * 14  # 3584 bytes: three of 1000 and one of 584
    frame = tcp4(payload, seq=0xFFFFFE00, flags=TCP_FLAGS_ACK | TCP_FLAGS_PSH | TCP_FLAGS_CWR)
    pieces = segment(frame, tso4())
    assert [len(p) - 54 for p in pieces] == [1000, 1000, 1000, 584]
    assert b"".join(bytes(p[54:]) for p in pieces) == payload
    for i, p in enumerate(pieces):
        assert struct.unpack_from("!H", p, 16)[0] == 20 + 20 + len(p) - 54  # IP total length
        assert verify(p[14:34])  # IPv4 header checksum
        assert struct.unpack_from("!H", p, 18)[0] == 7 + i  # Identification counts up
        assert tcp_checksum_ok(p)
        assert struct.unpack_from("!I", p, 38)[0] == (0xFFFFFE00 + 1000 * i) & 0xFFFFFFFF
        flags = p[47]
        assert bool(flags & TCP_FLAGS_PSH) == (i == 3)  # PSH on the last piece only
        assert bool(flags & TCP_FLAGS_CWR) == (i == 0)  # CWR on the first only
        assert flags & TCP_FLAGS_ACK


def test_tcp6_super_segment_and_udp_datagrams() -> None:
    pieces = segment(tcp6(b"y" * 2500), FrameMeta(NEEDS_CSUM, GSO_TCPV6, 74, 1200, 54, 16))
    assert [len(p) - 74 for p in pieces] == [1200, 1200, 100]
    assert all(tcp_checksum_ok(p) for p in pieces)
    assert [struct.unpack_from("!H", p, 18)[0] for p in pieces] == [1220, 1220, 120]
    datagrams = segment(udp4(b"z" * 2500), FrameMeta(NEEDS_CSUM, GSO_UDP_L4, 42, 1000, 34, 6))
    assert [struct.unpack_from("!H", d, 38)[0] for d in datagrams] == [1008, 1008, 508]
    assert all(tcp_checksum_ok(d) for d in datagrams)


def test_a_partial_checksum_is_completed() -> None:
    frame = tcp4(b"hello", partial=True)
    assert not tcp_checksum_ok(frame)
    (whole,) = segment(frame, FrameMeta(NEEDS_CSUM, 0, 0, 0, 34, 16))
    assert tcp_checksum_ok(whole) and whole[34:] != frame[34:]
    assert segment(frame, None) == [frame]


@settings(max_examples=300, deadline=None)
@given(
    v6=st.booleans(),
    size=st.integers(0, 9000),
    mss=st.sampled_from([7, 536, 1000, 1448, 1460, 8960]),
    seq=st.integers(0, 0xFFFFFFFF),
    flags=st.sampled_from([0x10, 0x18, 0x11, 0x19, 0x90, 0x98]),
    options=st.sampled_from([b"", b"\x01\x01\x08\x0a" + bytes(range(8))]),
    fill=st.sampled_from(["bytes", "zeros", "ones"]),
)
def test_the_fast_cut_is_the_software_segmentation(
    v6: bool, size: int, mss: int, seq: int, flags: int, options: bytes, fill: str
) -> None:
    """cut_tcp (a TAP link's software GSO, per piece its headers and a view of the payload,
    the headers' sums carried from piece to piece) gives exactly segment()'s frames: the
    same bytes, every checksum included (all-zero and all-ones payloads for the edges of
    ones'-complement arithmetic)."""
    if size // mss > 1000:
        return
    payload = {"bytes": bytes(range(256)) * 36, "zeros": bytes(9216), "ones": b"\xff" * 9216}[fill][
        :size
    ]
    if v6:
        tcp = bytearray(
            struct.pack(
                "!HHIIHHHH",
                40000,
                80,
                seq,
                1,
                ((20 + len(options)) // 4 << 12) | flags,
                65535,
                0,
                0,
            )
        )
        tcp += options + payload  # fmt: skip
        base = pseudo_header_sum6(SRC6, DST6, 6, len(tcp))
        struct.pack_into("!H", tcp, 16, base % 0xFFFF)
        ip = struct.pack("!IHBB16s16s", 0x60000000, len(tcp), 6, 64, SRC6, DST6)
        frame = bytearray(MAC_B + MAC_A + b"\x86\xdd") + ip + tcp
        meta = FrameMeta(NEEDS_CSUM, GSO_TCPV6, 74 + len(options), mss, 54, 16)
    else:
        frame = tcp4(payload, seq=seq, flags=flags, options=options)
        meta = FrameMeta(NEEDS_CSUM, GSO_TCPV4, 54 + len(options), mss, 34, 16)
    assert check(frame, meta) is None
    fast = [bytes(header) + bytes(view) for header, view in cut_tcp(frame, meta)]
    assert fast == [bytes(piece) for piece in segment(frame, meta)]
    assert all(tcp_checksum_ok(piece) for piece in fast)


# -- a stack honouring the metadata ------------------------------------------------------------
async def _stack_and_wire() -> tuple[netstack.Stack, MemoryLink, list[bytes]]:
    a, b = MemoryLink.pair(offload=True)
    seen: list[bytes] = []
    asyncio.get_running_loop().create_task(a.listen(lambda f: seen.append(bytes(f))))
    stack = await netstack.Stack.open(b, ipv4="198.18.0.2/24")
    return stack, a, seen


def _to(stack: netstack.Stack, frame: bytearray) -> bytearray:
    frame[0:6] = stack.link.mac
    return frame


async def test_a_partial_checksum_is_never_verified_and_a_plain_bad_one_never_accepted() -> None:
    stack, wire, seen = await _stack_and_wire()
    async with stack:
        server = await stack.start_server(lambda r, w: None, port=80)
        syn = _to(stack, tcp4(b"", flags=TCP_FLAGS_SYN, seq=100))
        # Plain, the partial checksum is wrong: dropped, nothing answered.
        wire.transmit(bytes(syn))
        await asyncio.sleep(0.05)
        assert stack.stats()["tcp"]["drops"].get("bad_checksum") == 1
        assert stack.stats()["tcp"]["rx_segments"] == 0
        # With NEEDS_CSUM it is not verified (it never crossed a wire): the SYN is taken
        # and a connection is half open (its SYN-ACK waits for ARP, which nobody answers).
        wire.transmit(syn, FrameMeta(NEEDS_CSUM, 0, 0, 0, 34, 16))
        await asyncio.sleep(0.05)
        tcp = stack.stats()["tcp"]
        assert tcp["rx_segments"] == 1 and tcp["drops"] == {"bad_checksum": 1}
        assert tcp["states"] == {"SYN-RECEIVED": 1}, tcp["states"]
        assert stack.stats()["ethernet"]["rx_offloaded"] == 1
        server.close()


async def test_data_valid_on_a_small_frame_is_verified_and_trusted_on_a_large_one() -> None:
    """DATA_VALID is a hint: on a small frame (a query, an ACK) the stack verifies the
    checksum itself, which costs less than judging the hint; on a large one it trusts it.
    A frame the hint wrongly vouched for shows which was done."""
    stack, wire, _ = await _stack_and_wire()
    async with stack:
        server = await stack.start_server(lambda r, w: None, port=80)
        syn = _to(stack, tcp4(b"", flags=TCP_FLAGS_SYN, seq=100))  # its checksum is wrong
        wire.transmit(syn, FrameMeta(DATA_VALID))
        await asyncio.sleep(0.05)
        tcp = stack.stats()["tcp"]
        assert tcp["drops"].get("bad_checksum") == 1 and tcp["rx_segments"] == 0
        big = _to(stack, tcp4(b"x" * 1000, flags=TCP_FLAGS_SYN, seq=200))
        wire.transmit(big, FrameMeta(DATA_VALID))
        await asyncio.sleep(0.05)
        tcp = stack.stats()["tcp"]
        assert tcp["rx_segments"] == 1 and tcp["drops"] == {"bad_checksum": 1}
        assert stack.stats()["ethernet"]["rx_offloaded"] == 1
        server.close()


async def test_bad_metadata_is_a_counted_drop() -> None:
    stack, wire, _ = await _stack_and_wire()
    async with stack:
        frame = _to(stack, tcp4(b"x" * 3000))
        wire.transmit(frame, FrameMeta(NEEDS_CSUM, GSO_TCPV4, 54, 1000, 30, 16))
        wire.transmit(frame, FrameMeta(NEEDS_CSUM, GSO_TCPV4, 54, 0, 34, 16))
        wire.transmit(_to(stack, tcp4(b"x" * 10)), FrameMeta(NEEDS_CSUM, 0, 0, 0, 34, 40))
        await asyncio.sleep(0.05)
        drops = stack.stats()["ethernet"]["drops"]
        assert drops == {
            "offload_bad_csum_start": 1,
            "offload_bad_gso_size": 1,
            "offload_bad_csum_offset": 1,
        }
        assert stack.stats()["tcp"]["rx_segments"] == 0


# -- stacks exchanging super-segments ----------------------------------------------------------
async def _bulk(a_link: MemoryLink, b_link: MemoryLink, size: int = 2 << 20) -> tuple[dict, dict]:
    data = bytes(range(251)) * (size // 251)
    async with (
        await netstack.Stack.open(a_link, ipv4="198.18.0.1/24", ipv6="fd00::1/64") as a,
        await netstack.Stack.open(b_link, ipv4="198.18.0.2/24", ipv6="fd00::2/64") as b,
    ):
        for host in ("198.18.0.2", "fd00::2"):
            got = bytearray()
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

            async def handle(
                r: asyncio.StreamReader,
                w: asyncio.StreamWriter,
                got: bytearray = got,
                done: asyncio.Future[None] = done,
            ) -> None:
                while chunk := await r.read(1 << 20):
                    got.extend(chunk)
                w.write(b"ok")
                w.close()
                done.set_result(None)

            server = await b.start_server(handle, port=9)
            async with asyncio.timeout(60):
                reader, writer = await a.open_connection(host, 9)
                writer.write(data)
                writer.write_eof()
                assert await reader.read() == b"ok"
                await done
            writer.close()
            server.close()
            assert got == data
        return a.stats(), b.stats()


async def test_two_stacks_exchange_super_segments_over_a_memory_pair() -> None:
    sent, received = await _bulk(*MemoryLink.pair(offload=True))
    assert sent["tcp"]["tx_super_segments"] > 0
    assert received["ethernet"]["rx_super"] > 0
    # Each super-segment carries many segments: far fewer frames than segments.
    assert sent["ethernet"]["tx_packets"] * 4 < sent["tcp"]["tx_segments"]


async def test_without_offloads_nothing_changes() -> None:
    sent, received = await _bulk(*MemoryLink.pair())
    assert sent["tcp"]["tx_super_segments"] == 0
    assert received["ethernet"]["rx_offloaded"] == 0


async def test_a_switch_cuts_super_segments_for_a_port_without_offloads() -> None:
    switch = Switch(offload=True)
    plain = switch.port(offload=False)
    sent, received = await _bulk(switch.port(), plain, size=1 << 20)
    assert sent["tcp"]["tx_super_segments"] > 0
    assert received["ethernet"]["rx_offloaded"] == 0  # it only ever saw wire frames
    assert plain.stats().rx_packets >= sent["tcp"]["tx_segments"] // 2


async def test_loss_on_an_offloading_link_hits_segments_not_super_segments() -> None:
    impairment = Impairment(loss=0.02, seed=13)
    a, b = MemoryLink.pair(offload=True, impairment=impairment)
    sent, _ = await _bulk(a, b, size=1 << 20)
    assert sent["tcp"]["retransmits"] > 0
    # The impairment acts on the wire's frames: one loss costs one MSS, so the
    # retransmissions are a few percent of what was sent, not whole 64 KiB bursts.
    assert sent["tcp"]["retransmits"] < sent["tcp"]["tx_segments"] // 5


async def test_a_capture_of_offloaded_traffic_holds_the_wire_frames(tmp_path: Path) -> None:
    a, b = MemoryLink.pair(offload=True)
    capture = tmp_path / "offload.pcap"
    recorded = PcapLink(a, capture)
    assert recorded.offloads == a.offloads
    sent, received = await _bulk(recorded, b, size=512 << 10)  # type: ignore[arg-type]
    recorded.close()
    assert sent["tcp"]["tx_super_segments"] > 0
    frames = [bytes(r.data) for r in read_pcap(capture)]
    tcp = [f for f in frames if (f[12:14] == b"\x08\x00" and f[23] == 6)
           or (f[12:14] == b"\x86\xdd" and f[20] == 6)]  # fmt: skip
    assert len(tcp) > sent["tcp"]["tx_segments"] // 2
    assert max(len(f) for f in frames) <= 1514
    assert all(tcp_checksum_ok(f) for f in tcp)
    tshark = shutil.which("tshark")
    if tshark is not None:
        out = subprocess.run(
            [tshark, "-n", "-r", str(capture), "-d", "tcp.port==1-65535,data",
             "-o", "ip.check_checksum:TRUE",
             "-o", "tcp.check_checksum:TRUE", "-Y",
             "ip.checksum.status == \"Bad\" || tcp.checksum.status == \"Bad\" || _ws.malformed"],
            capture_output=True, text=True, timeout=60, check=True,
        ).stdout  # fmt: skip
        assert out == ""


async def test_a_connection_whose_link_stops_offloading_sends_wire_sized_segments() -> None:
    """A connection sending super-segments, and its stack turning into a router halfway (a
    router sends only what the wire carries): the bursts it made for the link from then on
    are cut into MSS-sized segments before they leave, and every byte arrives."""
    a_link, b_link = MemoryLink.pair(offload=True)
    data = bytes(range(251)) * 16_000  # 4 MB
    async with (
        await netstack.Stack.open(a_link, ipv4="198.18.0.1/24") as a,
        await netstack.Stack.open(b_link, ipv4="198.18.0.2/24") as b,
    ):
        got = bytearray()
        halfway = asyncio.Event()

        async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            while chunk := await r.read(1 << 16):
                got.extend(chunk)
                if len(got) > len(data) // 4:
                    halfway.set()
            w.close()

        server = await b.start_server(handle, port=9)
        async with asyncio.timeout(60):
            reader, writer = await a.open_connection("198.18.0.2", 9)
            writer.write(data)
            await halfway.wait()
            supers = b.stats()["ethernet"]["rx_super"]
            assert supers > 0
            a.forwarding = True
            writer.write_eof()
            await reader.read()
        writer.close()
        server.close()
        assert got == data
        # At most the super-segments already on their way when routing was turned on.
        assert b.stats()["ethernet"]["rx_super"] - supers <= 2
        # Nothing was refused as too big for the wire (IPv4 raises for a datagram over the
        # MTU with DF, which TCP counts as output_error). (Not "no retransmission": on a
        # memory pair whose receiver is busy with a batch, a loss probe may fire before
        # the ACK is read, and what it starts depends on the machine's timing.)
        tcp = a.stats()["tcp"]
        assert "output_error" not in tcp["drops"], tcp
