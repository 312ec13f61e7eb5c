"""The TCP layer (netstack.proto.tcp.layer): demultiplexing, resets for segments nobody owns
(RFC 9293 3.10.7.1), listeners and their SYN queue, SYN cookies, RFC 6191 TIME-WAIT reuse,
ephemeral ports (RFC 6056), the connection limit, ICMP errors (RFC 5927) and what is dropped.

The layers are composed as the stack does (Ethernet, ARP, IPv4, ICMP, TCP) over a recording
transmit, without an event loop: frames are built by hand and fed to EthernetLayer.receive,
time is a float.
"""

from __future__ import annotations

import errno
import random
import struct
from dataclasses import dataclass

import pytest

from netstack.proto.arp.layer import ArpLayer
from netstack.proto.ethernet.layer import EthernetLayer
from netstack.proto.ethernet.wire import ETHERNET_HEADER_LEN, EtherType
from netstack.proto.icmp.layer import IcmpLayer
from netstack.proto.icmp.wire import build_into as icmp_build_into
from netstack.proto.icmpv6.layer import Icmp6Layer
from netstack.proto.ip.dual import DualIP
from netstack.proto.ipv4.layer import IPv4Layer
from netstack.proto.ipv4.wire import IpProto, build_header_into
from netstack.proto.ipv4.wire import parse as ip_parse
from netstack.proto.ipv6.layer import IPv6Layer
from netstack.proto.tcp.connection import (
    Connected,
    ConnectionReset,
    DataReceived,
    State,
    TcpConfig,
    TcpConnection,
    UrgentDataReceived,
)
from netstack.proto.tcp.layer import EPHEMERAL, TcpLayer, TcpLimits
from netstack.proto.tcp.seq import add
from netstack.proto.tcp.wire import (
    Flags,
    TcpHeader,
    build_into,
    checksum_ok,
    emit_options,
    parse,
    parse_options,
)

FIN, SYN, RST, PSH, ACK = (int(f) for f in (Flags.FIN, Flags.SYN, Flags.RST, Flags.PSH, Flags.ACK))
OUR_MAC = bytes.fromhex("020000000001")
PEER_MAC = bytes.fromhex("020000000002")
OUR_IP = bytes([198, 18, 0, 1])
PEER_IP = bytes([198, 18, 0, 2])
PORT = 80
PEER_PORT = 43210


@dataclass
class Out:
    """A TCP segment the host sent, parsed."""

    src: bytes
    dst: bytes
    tcp: TcpHeader
    payload: bytes
    checksum_ok: bool

    @property
    def flags(self) -> int:
        return self.tcp.flags

    @property
    def seq(self) -> int:
        return self.tcp.seq

    @property
    def ack(self) -> int:
        return self.tcp.ack


class Host:
    """One host's layers over a recording transmit; the peer is PEER_IP on the same link."""

    def __init__(
        self,
        *,
        seed: int = 1,
        config: TcpConfig | None = None,
        limits: TcpLimits | None = None,
        mtu: int = 1500,
    ) -> None:
        self.frames: list[bytes] = []
        self.eth = EthernetLayer(OUR_MAC, lambda f: self.frames.append(bytes(f)))
        self.arp = ArpLayer(self.eth)
        self.ip = IPv4Layer(self.eth, self.arp, mtu=mtu, rng=random.Random(seed))
        self.icmp = IcmpLayer(self.ip)
        # IPv6 is composed (the facade has both families) but never turned on.
        self.ip6 = IPv6Layer(self.eth, mtu=mtu, rng=random.Random(seed), secret=bytes(32))
        self.ip46 = DualIP(self.ip, self.icmp, self.ip6, Icmp6Layer(self.ip6))
        self.tcp = TcpLayer(self.ip46, random.Random(seed), config=config, limits=limits)
        # Wired as netstack.Stack wires them (IPv4 only).
        self.eth.handlers[EtherType.ARP] = self.arp.receive
        self.eth.handlers[EtherType.IPV4] = self.ip.receive
        self.arp.source_selector = self.ip.arp_source
        self.arp.on_failed = self.icmp.neighbour_failed
        self.ip.protocols[IpProto.ICMP] = self.icmp.receive
        self.ip.protocols[IpProto.TCP] = self.tcp.receive
        self.ip.on_unknown_protocol = self.icmp.protocol_unreachable
        self.ip.on_reassembly_timeout = self.icmp.reassembly_timeout
        self.icmp.error_handlers[IpProto.TCP] = self.ip46.icmp_error
        self.icmp.unresolved_handlers[IpProto.TCP] = self.ip46.unresolved
        self.ip46.error_handlers[IpProto.TCP] = self.tcp.ip_error
        self.ip46.unresolved_handlers[IpProto.TCP] = self.tcp.ip_unresolved
        self.ip.add_address(OUR_IP, 24, 0.0)
        self.arp.cache.add_static(PEER_IP, PEER_MAC, 0.0)
        self.frames.clear()  # the ARP announcement
        self.events: list[tuple[TcpConnection, object]] = []
        self.tcp.on_event = lambda conn, ev: self.events.append((conn, ev))
        self.accepted: list[TcpConnection] = []

    # -- input --------------------------------------------------------------------------------
    def ip_frame(
        self, proto: int, body: bytes, *, src: bytes = PEER_IP, dst: bytes = OUR_IP
    ) -> bytes:
        frame = bytearray(ETHERNET_HEADER_LEN + 20 + len(body))
        struct.pack_into("!6s6sH", frame, 0, OUR_MAC, PEER_MAC, EtherType.IPV4)
        build_header_into(frame, ETHERNET_HEADER_LEN, 20 + len(body), 1, 0, 64, proto, src, dst)
        frame[ETHERNET_HEADER_LEN + 20 :] = body
        return bytes(frame)

    def segment(
        self,
        flags: int,
        *,
        seq: int = 0,
        ack: int = 0,
        window: int = 65535,
        options: bytes = b"",
        payload: bytes = b"",
        sport: int = PEER_PORT,
        dport: int = PORT,
        src: bytes = PEER_IP,
        dst: bytes = OUR_IP,
        corrupt: bool = False,
        urgent: int = 0,
    ) -> bytes:
        buf = bytearray(20 + len(options) + len(payload))
        buf[20 + len(options) :] = payload
        build_into(buf, 0, sport, dport, seq, ack, flags, window, options, src, dst,
                   urgent=urgent)  # fmt: skip
        if corrupt:
            buf[16] ^= 0xFF
        return bytes(buf)

    def inject(self, now: float, flags: int, **kw: object) -> list[Out]:
        raw = kw.pop("raw", None)
        body = raw if raw is not None else self.segment(flags, **kw)  # type: ignore[arg-type]
        self.eth.receive(memoryview(self.ip_frame(IpProto.TCP, body)), now)  # type: ignore[arg-type]
        return self.sent()

    def inject_icmp(self, now: float, type_: int, code: int, quoted: bytes, rest: int = 0) -> None:
        body = bytearray(8 + len(quoted))
        body[8:] = quoted
        icmp_build_into(body, 0, type_, code, rest)
        self.eth.receive(memoryview(self.ip_frame(IpProto.ICMP, bytes(body))), now)

    def tick(self, now: float) -> list[Out]:
        self.tcp.handle_timeout(now)
        return self.sent()

    # -- output -------------------------------------------------------------------------------
    def sent(self) -> list[Out]:
        out = []
        for frame in self.frames:
            if int.from_bytes(frame[12:14], "big") != EtherType.IPV4:
                continue
            ip, data = ip_parse(memoryview(frame)[ETHERNET_HEADER_LEN:])
            if ip.proto != IpProto.TCP:
                continue
            tcp, payload = parse(data)
            out.append(Out(ip.src, ip.dst, tcp, bytes(payload), checksum_ok(data, ip.src, ip.dst)))
        self.frames.clear()
        return out

    def listen(self, backlog: int = 8, accept: bool = True, port: int = PORT) -> None:
        def on_accept(conn: TcpConnection) -> bool:
            self.accepted.append(conn)
            return accept

        self.tcp.listen(OUR_IP, port, backlog, on_accept)


def drops(host: Host) -> dict[str, int]:
    return host.tcp.stats()["drops"]


# -- segments for no connection ------------------------------------------------------------------


def test_syn_to_a_closed_port_gets_rst_ack() -> None:
    host = Host()
    (rst,) = host.inject(1.0, SYN, seq=5000)
    # RFC 9293 3.10.7.1: <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>; SYN counts 1.
    assert rst.flags == RST | ACK
    assert (rst.seq, rst.ack) == (0, 5001)
    assert (rst.tcp.src_port, rst.tcp.dst_port) == (PORT, PEER_PORT)
    assert (rst.src, rst.dst) == (OUR_IP, PEER_IP)
    assert rst.checksum_ok
    assert host.tcp.stats()["resets_sent"] == 1


def test_reset_acknowledges_syn_payload_and_fin() -> None:
    host = Host()
    (rst,) = host.inject(1.0, SYN | PSH, seq=0xFFFFFFF0, payload=b"x" * 20)
    assert rst.ack == add(0xFFFFFFF0, 21)
    (rst,) = host.inject(1.0, FIN, seq=77, payload=b"abc")
    assert rst.flags == RST | ACK and rst.ack == 81


def test_ack_to_a_closed_port_gets_rst_with_its_ack_number() -> None:
    host = Host()
    (rst,) = host.inject(1.0, ACK, seq=5000, ack=123456, payload=b"data")
    assert rst.flags == RST  # RFC 9293 3.10.7.1: <SEQ=SEG.ACK><CTL=RST>
    assert rst.seq == 123456
    assert rst.checksum_ok


def test_no_reset_for_a_reset() -> None:
    host = Host()
    assert host.inject(1.0, RST, seq=5000) == []
    assert host.inject(1.0, RST | ACK, seq=5000, ack=9) == []


URG = int(Flags.URG)


@pytest.mark.parametrize(
    ("flags", "length"),
    [(0, 0), (PSH, 5), (URG, 5), (PSH | URG, 5), (SYN | FIN, 2), (FIN, 1), (SYN | FIN | PSH, 7)],
)
def test_segments_without_rst_or_ack_to_a_closed_port_get_rst_ack(flags: int, length: int) -> None:
    """RFC 9293 3.10.7.1: in CLOSED, every segment without RST is answered with a reset;
    without ACK, <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK> (SYN and FIN count one each).
    Segments with no flags, or only PSH or URG, or SYN with FIN, are no exception."""
    host = Host()
    payload = b"hello" if length >= 5 else b""
    (rst,) = host.inject(1.0, flags, seq=5000, payload=payload)
    assert rst.flags == RST | ACK
    assert (rst.seq, rst.ack) == (0, 5000 + length)
    assert rst.checksum_ok


def test_syn_with_rst_to_a_closed_port_gets_nothing() -> None:
    host = Host()
    assert host.inject(1.0, SYN | RST, seq=5000) == []


@pytest.mark.parametrize("extra", [FIN, RST, FIN | ACK, RST | ACK])
def test_syn_with_fin_or_rst_on_an_established_connection_draws_challenge_ack(
    extra: int,
) -> None:
    """RFC 5961 4.2 through the layer: the flags are the connection's business, not a reason
    to drop before the lookup."""
    host = Host()
    host.listen()
    conn, synack = handshake(host)
    out = host.inject(2.0, SYN | extra, seq=7001, ack=synack.seq + 1)
    assert [(o.flags, o.seq, o.ack) for o in out] == [(ACK, synack.seq + 1, 7001)]
    assert conn.state is State.ESTABLISHED
    assert host.tcp.connections[(OUR_IP, PORT, PEER_IP, PEER_PORT)] is conn
    assert host.tcp.stats()["challenge_acks"] == 1
    assert [type(e) for _, e in host.events] == [Connected]


def test_urgent_pointer_in_and_out_through_the_layer() -> None:
    """The urgent pointer field reaches the connection (RFC 9293 3.10.7.4, sixth check) and
    the connection's pointer reaches the wire (3.1)."""
    host = Host()
    host.listen()
    conn, synack = handshake(host)
    host.inject(2.0, ACK | URG, seq=7001, ack=synack.seq + 1, payload=b"abcdef", urgent=4)
    assert [e for _, e in host.events if isinstance(e, UrgentDataReceived)] == [
        UrgentDataReceived(4)
    ]
    assert conn.urgent_mark == 4
    conn.send(b"12345", 2.1, urgent=True)
    host.tcp.call(conn, 2.1)
    (seg,) = host.sent()
    assert seg.payload == b"12345" and seg.flags & URG and seg.tcp.urgent == 5
    assert seg.checksum_ok


@pytest.mark.parametrize(
    ("kw", "reason"),
    [
        ({"flags": SYN, "corrupt": True}, "bad_checksum"),
        ({"flags": SYN | FIN}, "bad_flags"),
        ({"flags": SYN | RST}, "bad_flags"),
        ({"flags": 0}, "no_flags"),
        ({"flags": PSH}, "no_flags"),
        ({"flags": SYN, "options": b"\x02\x04\x05"}, None),  # unpadded options: bad offset
        ({"flags": SYN, "options": b"\x02\x03\x05\xb4"}, "bad_option"),  # MSS of length 3
        ({"flags": SYN, "options": b"\x08\x0a\x00\x00"}, "bad_option"),  # runs past the end
    ],
)
def test_malformed_segments_dropped_and_counted(kw: dict, reason: str | None) -> None:
    host = Host()
    host.listen()
    flags = kw.pop("flags")
    options = kw.get("options", b"")
    if len(options) % 4:
        # An options area whose length is not a multiple of 4 cannot be built; send a header
        # whose data offset claims more than there is.
        raw = bytearray(host.segment(flags, seq=1))
        raw[12] = (15 << 4) | (raw[12] & 0x0F)
        out = host.inject(1.0, flags, raw=bytes(raw))
        reason = "truncated"
    else:
        out = host.inject(1.0, flags, seq=1, **kw)
    assert out == []
    assert drops(host).get(reason, 0) == 1, drops(host)
    assert host.tcp.connections == {}
    assert host.tcp.stats()["resets_sent"] == 0


def test_segment_to_broadcast_dropped() -> None:
    host = Host()
    host.listen()
    body = host.segment(SYN, seq=1, dst=bytes([198, 18, 0, 255]))
    frame = host.ip_frame(IpProto.TCP, body, dst=bytes([198, 18, 0, 255]))
    frame = b"\xff" * 6 + frame[6:]
    host.eth.receive(memoryview(frame), 1.0)
    assert host.sent() == []
    assert drops(host).get("to_broadcast") == 1


# -- listeners ---------------------------------------------------------------------------------


def handshake(host: Host, now: float = 1.0, sport: int = PEER_PORT, isn: int = 7000,
              options: bytes | None = None) -> tuple[TcpConnection, Out]:  # fmt: skip
    opts = emit_options(mss=1460) if options is None else options
    (synack,) = host.inject(now, SYN, seq=isn, options=opts, sport=sport)
    assert synack.flags == SYN | ACK and synack.ack == isn + 1
    out = host.inject(now + 0.01, ACK, seq=isn + 1, ack=synack.seq + 1, sport=sport)
    assert out == []
    conn = host.tcp.connections[(OUR_IP, PORT, PEER_IP, sport)]
    assert conn.state is State.ESTABLISHED
    return conn, synack


def test_listener_handshake_and_accept() -> None:
    host = Host()
    host.listen()
    conn, synack = handshake(host)
    assert host.accepted == [conn]
    assert [type(e) for _, e in host.events] == [Connected]
    assert parse_options(synack.tcp.options).mss == 1460
    assert host.tcp.stats()["passive_opens"] == 1


def test_refused_by_the_accept_callback_is_reset() -> None:
    """Listener.accept returning False "refuses (the connection is reset)". Regression: the
    layer called ``conn.abort()`` while dispatching the Connected event, after it had taken
    the connection's segments, then forgot the closed connection: the RST was never sent,
    and a client waiting for the server to speak first waited for ever."""
    host = Host()
    host.listen(accept=False)
    (synack,) = host.inject(1.0, SYN, seq=7000, options=emit_options(mss=1460))
    out = host.inject(1.01, ACK, seq=7001, ack=synack.seq + 1)
    assert [o.flags & RST for o in out] == [RST]
    assert host.tcp.connections == {}
    assert host.events == []


def test_ack_to_a_listener_is_reset_and_rst_is_dropped() -> None:
    host = Host()
    host.listen()
    (rst,) = host.inject(1.0, ACK, seq=1, ack=999)
    assert rst.flags == RST and rst.seq == 999
    assert host.inject(1.0, RST, seq=1) == []
    assert drops(host).get("rst_to_listener") == 1


def test_half_open_connections_fill_the_backlog_then_cookies() -> None:
    host = Host()
    host.listen(backlog=2)
    for i in range(2):
        out = host.inject(1.0, SYN, seq=1000 * i, sport=40000 + i, options=emit_options(mss=1460))
        assert [o.flags for o in out] == [SYN | ACK]
    assert len(host.tcp.connections) == 2
    # RFC 4987 3.6: the SYN queue is full, a cookie answers without keeping state.
    opts = emit_options(mss=1460, wscale=7, sack_permitted=True, timestamp=(5, 0))
    (cookie,) = host.inject(1.0, SYN, seq=77_000, sport=40002, options=opts)
    assert cookie.flags == SYN | ACK and cookie.ack == 77_001
    assert len(host.tcp.connections) == 2
    assert host.tcp.stats()["syn_cookies_sent"] == 1
    # The SYN had timestamps: the cookie keeps window scaling and SACK in our timestamp's
    # low 6 bits (wscale 7, SACK bit), as Linux does.
    offered = parse_options(cookie.tcp.options)
    assert offered.mss is not None
    assert offered.wscale is not None and offered.sack_permitted and offered.ts_val is not None
    assert offered.ts_val & 0x3F == 7 | 0x10 and offered.ts_ecr == 5
    assert cookie.tcp.window <= 0xFFFF


def test_cookie_without_timestamps_offers_no_other_options() -> None:
    host = Host()
    host.listen(backlog=1)
    host.inject(1.0, SYN, seq=1, sport=40000, options=emit_options(mss=1460))
    opts = emit_options(mss=1460, wscale=7, sack_permitted=True)
    (cookie,) = host.inject(1.0, SYN, seq=77_000, sport=40002, options=opts)
    offered = parse_options(cookie.tcp.options)
    assert offered.wscale is None and not offered.sack_permitted and offered.ts_val is None


def _cookie_with_options(wscale: int | None) -> tuple[Host, Out, int]:
    host = Host()
    host.listen(backlog=1)
    host.inject(1.0, SYN, seq=1, sport=40000, options=emit_options(mss=1460))
    opts = emit_options(mss=1460, wscale=wscale, sack_permitted=True, timestamp=(500, 0))
    (cookie,) = host.inject(1.0, SYN, seq=77_000, sport=40002, options=opts)
    ts_val = parse_options(cookie.tcp.options).ts_val
    assert ts_val is not None
    return host, cookie, ts_val


@pytest.mark.parametrize("wscale", [None, 0, 7, 14])
def test_cookie_ack_restores_window_scale_sack_and_timestamps(wscale: int | None) -> None:
    """Issue 10 item 7: the connection a cookie completes keeps the SYN's options."""
    host, cookie, ts_val = _cookie_with_options(wscale)
    ack_opts = emit_options(timestamp=(501, ts_val))
    host.inject(1.5, ACK, seq=77_001, ack=cookie.seq + 1, sport=40002, window=100,
                options=ack_opts)  # fmt: skip
    conn = host.tcp.connections[(OUR_IP, PORT, PEER_IP, 40002)]
    assert conn.state is State.ESTABLISHED
    assert conn.sack_ok and conn.ts_ok and conn.ts_recent == 501
    assert conn.snd_wscale == (wscale or 0)
    assert conn.rcv_wscale == (conn._our_wscale() if wscale is not None else 0)
    assert conn.snd_wnd == 100 << (wscale or 0)  # the ACK's window is scaled
    assert conn.mss == 1460 - 12  # the timestamps take room in every segment
    # Data both ways, with timestamps on our segments.
    conn.send(b"pong", 1.7)
    host.tcp.call(conn, 1.7)
    (seg,) = [o for o in host.sent() if o.payload]
    assert parse_options(seg.tcp.options).ts_ecr == 501


def test_cookie_ack_with_altered_option_bits_is_refused() -> None:
    """The option bits are covered by the cookie's hash: an ACK that echoes other bits
    (say, a larger window scale) does not complete a connection."""
    host, cookie, ts_val = _cookie_with_options(2)
    forged = (ts_val & ~0x3F) | 9 | 0x10
    ack_opts = emit_options(timestamp=(501, forged))
    (rst,) = host.inject(1.5, ACK, seq=77_001, ack=cookie.seq + 1, sport=40002,
                         options=ack_opts)  # fmt: skip
    assert rst.flags == RST
    assert (OUR_IP, PORT, PEER_IP, 40002) not in host.tcp.connections


def cookie_host() -> tuple[Host, Out]:
    host = Host()
    host.listen(backlog=1)
    host.inject(1.0, SYN, seq=1, sport=40000, options=emit_options(mss=1460))  # fills it
    (cookie,) = host.inject(1.0, SYN, seq=77_000, sport=40002, options=emit_options(mss=1460))
    return host, cookie


def test_valid_cookie_ack_creates_an_established_connection() -> None:
    host, cookie = cookie_host()
    out = host.inject(1.5, ACK, seq=77_001, ack=cookie.seq + 1, sport=40002)
    assert out == []
    conn = host.tcp.connections[(OUR_IP, PORT, PEER_IP, 40002)]
    assert conn.state is State.ESTABLISHED
    assert conn.mss == 1460  # what the cookie carried
    assert host.accepted == [conn]
    assert host.tcp.stats()["syn_cookies_accepted"] == 1
    # The connection works: data flows both ways.
    host.inject(1.6, ACK | PSH, seq=77_001, ack=cookie.seq + 1, sport=40002, payload=b"ping")
    assert any(isinstance(e, DataReceived) and e.data == b"ping" for _, e in host.events)
    conn.send(b"pong", 1.7)
    host.tcp.call(conn, 1.7)
    (seg,) = [o for o in host.sent() if o.payload]
    assert (seg.seq, seg.payload, seg.ack) == (cookie.seq + 1, b"pong", 77_005)


def test_cookie_ack_with_data_delivers_it() -> None:
    host, cookie = cookie_host()
    host.inject(1.5, ACK | PSH, seq=77_001, ack=cookie.seq + 1, sport=40002, payload=b"GET /")
    conn = host.tcp.connections[(OUR_IP, PORT, PEER_IP, 40002)]
    assert [e for c, e in host.events if c is conn] == [Connected(), DataReceived(b"GET /")]


@pytest.mark.parametrize("delta", [1, -1, 1 << 20])
def test_forged_cookie_ack_gets_a_reset(delta: int) -> None:
    host, cookie = cookie_host()
    forged = add(cookie.seq + 1, delta)
    (rst,) = host.inject(1.5, ACK, seq=77_001, ack=forged, sport=40002)
    assert rst.flags == RST and rst.seq == forged
    assert (OUR_IP, PORT, PEER_IP, 40002) not in host.tcp.connections
    assert host.tcp.stats()["syn_cookies_accepted"] == 0


def test_cookie_for_another_client_isn_is_refused() -> None:
    host, cookie = cookie_host()
    (rst,) = host.inject(1.5, ACK, seq=55_001, ack=cookie.seq + 1, sport=40002)
    assert rst.flags == RST
    assert (OUR_IP, PORT, PEER_IP, 40002) not in host.tcp.connections


def test_stale_cookie_is_refused() -> None:
    host, cookie = cookie_host()
    (rst,) = host.inject(1000.0, ACK, seq=77_001, ack=cookie.seq + 1, sport=40002)
    assert rst.flags == RST


def test_syn_ack_retransmitted_from_the_layer_timer() -> None:
    host = Host()
    host.listen()
    (synack,) = host.inject(1.0, SYN, seq=7000, options=emit_options(mss=1460))
    at = host.tcp.poll_at()
    assert at == pytest.approx(2.0)
    (again,) = host.tick(at)
    assert (again.flags, again.seq, again.ack) == (SYN | ACK, synack.seq, 7001)


def test_reset_half_open_connection_leaves_the_backlog() -> None:
    host = Host()
    host.listen(backlog=1)
    host.inject(1.0, SYN, seq=7000, options=emit_options(mss=1460))
    host.inject(1.1, RST, seq=7001)
    assert host.tcp.connections == {}
    out = host.inject(1.2, SYN, seq=9000, sport=40001, options=emit_options(mss=1460))
    assert host.tcp.stats()["syn_cookies_sent"] == 0  # a real SYN-RECEIVED again
    assert len(host.tcp.connections) == 1 and out[0].flags == SYN | ACK


# -- RFC 6191: TIME-WAIT reuse -------------------------------------------------------------------


def server_in_time_wait(timestamps: bool) -> tuple[Host, TcpConnection, int, int]:
    """A passive connection that the server closes first, so the server sits in TIME-WAIT.
    Returns the host, the connection, the peer's last sequence number and TSval."""
    host = Host()
    host.listen()
    ts = (1000, 0) if timestamps else None
    opts = emit_options(mss=1460, timestamp=ts)
    (synack,) = host.inject(1.0, SYN, seq=7000, options=opts)
    our = synack.seq + 1
    ecr = parse_options(synack.tcp.options).ts_val or 0
    topt = emit_options(timestamp=(1001, ecr)) if timestamps else b""
    host.inject(1.01, ACK, seq=7001, ack=our, options=topt)
    conn = host.tcp.connections[(OUR_IP, PORT, PEER_IP, PEER_PORT)]
    conn.close(1.1)
    host.tcp.call(conn, 1.1)
    (fin,) = host.sent()
    assert fin.flags & FIN
    topt = emit_options(timestamp=(1002, ecr)) if timestamps else b""
    host.inject(1.2, FIN | ACK, seq=7001, ack=our + 1, options=topt)
    assert conn.state is State.TIME_WAIT
    return host, conn, 7002, 1002


def test_time_wait_reopened_by_syn_with_newer_timestamp() -> None:
    host, old, _, ts = server_in_time_wait(timestamps=True)
    opts = emit_options(mss=1460, timestamp=(ts + 10, 0))
    out = host.inject(2.0, SYN, seq=1, options=opts)  # sequence number even lower
    assert [o.flags for o in out] == [SYN | ACK]
    assert out[0].ack == 2
    new = host.tcp.connections[(OUR_IP, PORT, PEER_IP, PEER_PORT)]
    assert new is not old and new.state is State.SYN_RECEIVED


def test_time_wait_not_reopened_by_syn_with_older_timestamp() -> None:
    host, old, _, ts = server_in_time_wait(timestamps=True)
    opts = emit_options(mss=1460, timestamp=(ts - 10, 0))
    out = host.inject(2.0, SYN, seq=900_000, options=opts)
    assert all(not (o.flags & SYN) for o in out)
    assert host.tcp.connections[(OUR_IP, PORT, PEER_IP, PEER_PORT)] is old
    assert old.state is State.TIME_WAIT


def test_time_wait_reuse_by_sequence_number_without_timestamps() -> None:
    host, old, last_seq, _ = server_in_time_wait(timestamps=False)
    out = host.inject(2.0, SYN, seq=last_seq - 100, options=emit_options(mss=1460))
    assert all(not (o.flags & SYN) for o in out)
    assert host.tcp.connections[(OUR_IP, PORT, PEER_IP, PEER_PORT)] is old
    out = host.inject(2.1, SYN, seq=last_seq + 100_000, options=emit_options(mss=1460))
    assert [o.flags for o in out] == [SYN | ACK]
    assert host.tcp.connections[(OUR_IP, PORT, PEER_IP, PEER_PORT)] is not old


def test_time_wait_reopened_without_timestamps_starts_above_the_old_sequence_space() -> None:
    """RFC 9293 3.6.1 / RFC 6191: after a transfer faster than the ISN clock (2 MB in 0.1 s;
    the clock moves 25 000 in that time), a TIME-WAIT reopened by a higher-sequence SYN
    without timestamps must not start its sequence space inside the old one, or the peer's
    old duplicates and ACKs could be taken for the new connection's. Linux starts it at the
    old SND.NXT + 65537."""
    host = Host(config=TcpConfig(timestamps=False, sack=False))
    host.listen()
    now = 1.0
    conn, synack = handshake(host, now)
    data = bytes(2_000_000)
    conn.send(data, now)
    host.tcp.call(conn, now)
    sent = host.sent()
    while conn.snd_una != add(synack.seq, 1 + len(data)):
        assert sent, conn.snd_una
        now += 0.003
        sent = host.inject(now, ACK, seq=7001, ack=max(o.seq + len(o.payload) for o in sent))
    assert now < 1.2
    old_snd_max = conn.snd_max
    conn.close(now)
    host.tcp.call(conn, now)
    (fin,) = host.sent()
    host.inject(now + 0.001, FIN | ACK, seq=7001, ack=fin.seq + 1)
    assert conn.state is State.TIME_WAIT
    out = host.inject(now + 0.002, SYN, seq=7002 + 100_000, options=emit_options(mss=1460))
    assert [o.flags for o in out] == [SYN | ACK]
    new = host.tcp.connections[(OUR_IP, PORT, PEER_IP, PEER_PORT)]
    assert new is not conn
    assert 65537 <= (out[0].seq - old_snd_max) % (1 << 32) < 1 << 31


def test_syn_without_a_listener_does_not_cut_time_wait_short() -> None:
    """RFC 6191 lets a *listener* take a TIME-WAIT 4-tuple for a new incarnation. A client's
    TIME-WAIT (no listener on its ephemeral port) cannot be reopened, so a SYN there is
    answered per RFC 9293 / RFC 5961 (a challenge ACK) and TIME-WAIT stays, protecting the
    4-tuple from old duplicates for its 2 MSL. Regression: the layer forgot the TIME-WAIT
    connection before finding there was no listener, then answered with a reset."""
    host = Host()
    conn = host.tcp.connect((PEER_IP, 8080), 1.0, config=TcpConfig(sack=False))
    (syn,) = host.sent()
    sport = syn.tcp.src_port
    ecr = parse_options(syn.tcp.options).ts_val or 0
    host.inject(1.1, SYN | ACK, seq=5000, ack=syn.seq + 1, sport=8080, dport=sport,
                options=emit_options(mss=1460, timestamp=(100, ecr)))  # fmt: skip
    conn.close(1.2)
    host.tcp.call(conn, 1.2)
    host.sent()
    host.inject(1.3, FIN | ACK, seq=5001, ack=syn.seq + 2, sport=8080, dport=sport,
                options=emit_options(timestamp=(101, ecr)))  # fmt: skip
    assert conn.state is State.TIME_WAIT
    key = (OUR_IP, sport, PEER_IP, 8080)
    out = host.inject(2.0, SYN, seq=9_000_000, sport=8080, dport=sport,
                      options=emit_options(mss=1460, timestamp=(500, 0)))  # fmt: skip
    assert host.tcp.connections.get(key) is conn
    assert conn.state is State.TIME_WAIT
    assert all(not (o.flags & RST) for o in out)


# -- active opens ------------------------------------------------------------------------------


def test_active_open_through_the_layer() -> None:
    host = Host()
    conn = host.tcp.connect((PEER_IP, 8080), 1.0)
    (syn,) = host.sent()
    assert syn.flags == SYN and syn.checksum_ok
    assert syn.tcp.src_port in EPHEMERAL and syn.tcp.dst_port == 8080
    opts = parse_options(syn.tcp.options)
    assert opts.mss == 1460 and opts.sack_permitted and opts.ts_val is not None
    out = host.inject(1.1, SYN | ACK, seq=5000, ack=syn.seq + 1, sport=8080,
                      dport=syn.tcp.src_port, options=emit_options(mss=1400))  # fmt: skip
    assert conn.state is State.ESTABLISHED
    (ack,) = out
    assert (ack.flags, ack.seq, ack.ack) == (ACK, syn.seq + 1, 5001)
    assert [type(e) for _, e in host.events] == [Connected]
    assert host.tcp.stats()["active_opens"] == 1


def test_ephemeral_ports_are_random() -> None:
    """RFC 6056: unpredictable ports. Whatever the algorithm (3, 4 and 5 all keep a
    per-destination sequence), an off-path attacker must not be able to guess the port from
    the stack alone: different secrets pick different ports for the same destination, and
    different destinations do not follow one another."""
    firsts = set()
    for seed in range(8):
        host = Host(seed=seed)
        host.tcp.connect((PEER_IP, 8080), 1.0)
        firsts.add(host.sent()[0].tcp.src_port)
    assert len(firsts) >= 6
    host = Host(seed=99)
    ports = []
    for i in range(20):
        host.tcp.connect((PEER_IP, 8000 + i), 1.0)
        ports.append(host.sent()[-1].tcp.src_port)
    assert all(p in EPHEMERAL for p in ports)
    steps = {b - a for a, b in zip(ports, ports[1:], strict=False)}
    assert len(steps) > 10
    same = []
    for _ in range(20):
        host.tcp.connect((PEER_IP, 9999), 1.0)
        same.append(host.sent()[-1].tcp.src_port)
    assert len(set(same)) == 20 and all(p in EPHEMERAL for p in same)


def test_connection_limit() -> None:
    host = Host(limits=TcpLimits(max_connections=2))
    host.tcp.connect((PEER_IP, 8080), 1.0)
    host.tcp.connect((PEER_IP, 8081), 1.0)
    with pytest.raises(OSError) as info:
        host.tcp.connect((PEER_IP, 8082), 1.0)
    assert info.value.errno == errno.ENOBUFS
    host.sent()
    host.listen()
    assert host.inject(1.0, SYN, seq=1, options=emit_options(mss=1460)) == []
    assert drops(host).get("connection_limit") == 1


def test_icmp_port_unreachable_refuses_a_connect() -> None:
    host = Host()
    conn = host.tcp.connect((PEER_IP, 8080), 1.0)
    (syn,) = host.sent()
    # The quoted datagram: our IPv4 header and the first 8 bytes of our SYN.
    quoted = bytearray(28)
    build_header_into(quoted, 0, 60, 1, 0x4000, 64, IpProto.TCP, OUR_IP, PEER_IP)
    struct.pack_into("!HHI", quoted, 20, syn.tcp.src_port, 8080, syn.seq)
    host.inject_icmp(1.1, 3, 3, bytes(quoted))
    assert conn.state is State.CLOSED
    ((_, ev),) = host.events
    assert isinstance(ev, ConnectionReset) and isinstance(ev.error, ConnectionRefusedError)


def test_icmp_quoting_a_sequence_number_not_in_flight_is_ignored() -> None:
    """RFC 5927 4.1: an off-path attacker does not know what is in flight."""
    host = Host()
    conn = host.tcp.connect((PEER_IP, 8080), 1.0)
    (syn,) = host.sent()
    quoted = bytearray(28)
    build_header_into(quoted, 0, 60, 1, 0x4000, 64, IpProto.TCP, OUR_IP, PEER_IP)
    struct.pack_into("!HHI", quoted, 20, syn.tcp.src_port, 8080, add(syn.seq, 5000))
    host.inject_icmp(1.1, 3, 3, bytes(quoted))
    assert conn.state is State.SYN_SENT
    assert drops(host).get("icmp_bad_seq") == 1


def fragmentation_needed(host: Host, now: float, total: int, seq: int, mtu: int) -> None:
    """An ICMP "fragmentation needed" (next-hop MTU ``mtu``) quoting our segment ``seq``
    of ``total`` bytes."""
    quoted = bytearray(28)
    build_header_into(quoted, 0, total, 1, 0x4000, 64, IpProto.TCP, OUR_IP, PEER_IP)
    struct.pack_into("!HHI", quoted, 20, PORT, PEER_PORT, seq)
    host.inject_icmp(now, 3, 4, bytes(quoted), rest=mtu)


def test_icmp_fragmentation_needed_lowers_the_mss() -> None:
    host = Host()
    host.listen()
    conn, synack = handshake(host)
    conn.send(b"x" * 3000, 2.0)
    host.tcp.call(conn, 2.0)
    first = [o for o in host.sent() if o.payload][0]
    fragmentation_needed(host, 2.1, 1500, first.seq, 1200)  # next-hop MTU 1200
    assert conn.mss == 1160
    resent = [o for o in host.sent() if o.payload]
    assert [(o.seq, len(o.payload)) for o in resent] == [(first.seq, 1160)]


def test_a_path_mtu_learnt_from_fragmentation_needed_is_kept_for_the_destination() -> None:
    """RFC 1191 5: the path MTU belongs to the path, so the next connection to the same
    destination offers and uses the lower MSS from its SYN on; RFC 1191 6.3: after the
    timeout the link's MTU is tried again."""
    host = Host(mtu=9000)
    host.listen()
    conn, synack = handshake(host, options=emit_options(mss=8960))
    assert parse_options(synack.tcp.options).mss == 8960
    conn.send(b"x" * 20000, 2.0)
    host.tcp.call(conn, 2.0)
    first = [o for o in host.sent() if o.payload][0]
    fragmentation_needed(host, 2.1, 9000, first.seq, 1500)
    assert conn.mss == 1460
    # A new connection from the same peer: the SYN-ACK offers what the path carries.
    out = host.inject(3.0, SYN, seq=90000, sport=PEER_PORT + 1, options=emit_options(mss=8960))
    (synack2,) = [o for o in out if o.tcp.flags & SYN]
    assert parse_options(synack2.tcp.options).mss == 1460
    # And a connection this host opens to it sends 1460-byte segments from the start.
    host.sent()
    host.tcp.connect((PEER_IP, 8080), 3.0)
    (syn,) = [o for o in host.sent() if o.tcp.flags & SYN]
    assert parse_options(syn.tcp.options).mss == 1460
    # Ten minutes on, the estimate has gone: the link's MTU again.
    out = host.inject(2.1 + 601, SYN, seq=190000, sport=PEER_PORT + 2,
                      options=emit_options(mss=8960))  # fmt: skip
    (synack3,) = [o for o in out if o.tcp.flags & SYN]
    assert parse_options(synack3.tcp.options).mss == 8960


def test_application_writing_from_its_data_callback() -> None:
    """The driver hands events to the application synchronously from the layer's flush (an
    asyncio Protocol's data_received may call transport.write, which calls
    ``TcpConnection.send``), and the same input may also have released queued data.
    Regression: the layer still held those segments, whose payloads were views of the send
    buffer, while it dispatched the events, and growing the buffer raised BufferError out
    of ``receive``."""
    host = Host()
    host.listen()
    conn, synack = handshake(host)
    our = synack.seq + 1

    def echo(c: TcpConnection, ev: object) -> None:
        host.events.append((c, ev))
        if isinstance(ev, DataReceived):
            c.send(bytes(ev.data).upper(), 3.0)  # data may view the segment
            host.tcp.call(c, 3.0)

    host.tcp.on_event = echo
    conn.send(b"a", 2.0)  # outstanding, so the next small write waits (RFC 9293 3.7.4)
    host.tcp.call(conn, 2.0)
    conn.send(b"b", 2.0)
    host.tcp.call(conn, 2.0)
    assert [o.payload for o in host.sent() if o.payload] == [b"a"]
    # The peer's request also acknowledges "a": that releases "b" in the same input.
    host.inject(3.0, ACK | PSH, seq=7001, ack=our + 1, payload=b"hello")
    assert any(isinstance(e, DataReceived) for _, e in host.events)
    assert conn.buffered >= 5


def test_a_call_from_an_event_callback_does_not_dispatch_the_next_event_inside_it() -> None:
    """asyncio never calls a protocol while one of its callbacks runs. The handshake's last
    ACK carrying data queues Connected and DataReceived together; a server that writes (or
    sets TCP_NODELAY) from connection_made calls the layer from inside the Connected event,
    and that call must send, not dispatch DataReceived inside connection_made.
    Regression: asyncssh's server took the client's version string before its own
    connection_made had run, and the handshake stalled."""
    host = Host()
    host.listen()
    (synack,) = host.inject(1.0, SYN, seq=7000, options=emit_options(mss=1460))
    log: list[str] = []
    depth = 0

    def banner(c: TcpConnection, ev: object) -> None:
        nonlocal depth
        log.append(f"{'  ' * depth}{type(ev).__name__}")
        depth += 1
        try:
            if isinstance(ev, Connected):
                c.send(b"SSH-2.0-banner\r\n", 1.1)
                host.tcp.call(c, 1.1)
                log.append(f"{'  ' * depth}sent")
        finally:
            depth -= 1

    host.tcp.on_event = banner
    out = host.inject(1.1, ACK | PSH, seq=7001, ack=synack.seq + 1, payload=b"SSH-2.0-client\r\n")
    assert log == ["Connected", "  sent", "DataReceived"]
    assert [o.payload for o in out if o.payload] == [b"SSH-2.0-banner\r\n"]


# -- receive coalescing (software GRO) -----------------------------------------------------------
def _gro_host() -> tuple[Host, TcpConnection, int, int]:
    host = Host()
    host.tcp.gro = True
    host.listen()
    conn, synack = handshake(host)
    host.events.clear()
    return host, conn, 7001, add(synack.seq, 1)


def _received(host: Host) -> bytes:
    return b"".join(bytes(e.data) for _, e in host.events if isinstance(e, DataReceived))


DATA = bytes(range(256)) * 64


def test_gro_hands_a_burst_over_as_one_segment_at_the_end_of_the_batch() -> None:
    host, conn, seq, ack = _gro_host()
    for i in range(7):
        part = DATA[i * 1460 : (i + 1) * 1460]
        assert host.inject(2.0, ACK, seq=seq + i * 1460, ack=ack, payload=part) == []
    assert _received(host) == b"" and conn.rcv_nxt == seq  # held until the batch ends
    host.tcp.flush_acks(2.0)
    assert _received(host) == DATA[: 7 * 1460]
    (out,) = host.sent()  # one ACK answers the burst
    assert out.flags == ACK and out.ack == seq + 7 * 1460
    stats = host.tcp.stats()
    assert stats["gro_merged"] == 6 and stats["rx_segments"] == 2 + 7


@pytest.mark.parametrize(
    "last",
    [
        {"flags": ACK | PSH},  # the sender's PSH: the end of what it had
        {"size": 100},  # a short segment ends the run
    ],
)
def test_gro_ends_a_run_at_once_with_psh_or_a_short_segment(last: dict[str, int]) -> None:
    host, conn, seq, ack = _gro_host()
    host.inject(2.0, ACK, seq=seq, ack=ack, payload=DATA[:1460])
    size = last.get("size", 1460)
    host.inject(2.0, last.get("flags", ACK), seq=seq + 1460, ack=ack,
                payload=DATA[1460 : 1460 + size])  # fmt: skip
    assert _received(host) == DATA[: 1460 + size]  # without waiting for the batch's end
    assert host.tcp.stats()["gro_merged"] == 1


def test_gro_keeps_order_across_a_gap_other_options_and_another_connection() -> None:
    host, conn, seq, ack = _gro_host()
    other, other_synack = handshake(host, sport=PEER_PORT + 1, isn=90_000)
    host.events.clear()
    ts = emit_options(timestamp=(5, 0))
    pieces = [DATA[i * 1000 : (i + 1) * 1000] for i in range(6)]
    host.inject(2.0, ACK, seq=seq, ack=ack, payload=pieces[0])
    host.inject(2.0, ACK, seq=seq + 2000, ack=ack, payload=pieces[2])  # a gap: not merged
    host.inject(2.0, ACK, seq=90_001, ack=add(other_synack.seq, 1), payload=b"x" * 1000,
                sport=PEER_PORT + 1)  # fmt: skip
    host.inject(2.0, ACK, seq=seq + 1000, ack=ack, payload=pieces[1])  # fills the gap
    host.inject(2.0, ACK, seq=seq + 3000, ack=ack, payload=pieces[3], options=ts)
    host.inject(2.0, ACK, seq=seq + 4000, ack=ack, payload=pieces[4])  # options differ
    host.inject(2.0, ACK, seq=seq + 5000, ack=ack, payload=pieces[5])
    host.tcp.flush_acks(2.0)
    mine = b"".join(
        bytes(e.data) for c, e in host.events if c is conn and isinstance(e, DataReceived)
    )
    assert mine == DATA[:6000]
    assert other.rcv_nxt == 91_001
    assert host.tcp.stats()["gro_merged"] == 1  # only the last two were alike


def test_gro_holds_nothing_for_a_connection_that_went_away() -> None:
    """Data held for a connection the application aborts, or that is forgotten, is dropped
    with it, as it would have been had it come a moment later."""
    host, conn, seq, ack = _gro_host()
    host.inject(2.0, ACK, seq=seq, ack=ack, payload=DATA[:1460])
    conn.abort(2.0)
    host.tcp.call(conn, 2.0)
    host.tcp.flush_acks(2.0)
    assert _received(host) == b"" and conn.state is State.CLOSED
    assert [o.flags & RST for o in host.sent()] == [RST]  # the abort's reset only
    host2, conn2, seq2, ack2 = _gro_host()
    host2.inject(2.0, ACK, seq=seq2, ack=ack2, payload=DATA[:1460])
    assert conn2.key is not None
    del host2.tcp.connections[conn2.key]  # forgotten without a call
    host2.tcp.flush_acks(2.0)
    assert _received(host2) == b"" and host2.sent() == []
