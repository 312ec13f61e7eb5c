"""Hand-written codecs against ``construct`` for the cold, declarative formats.

The question (docs/ARCHITECTURE.md, "Dependencies"): should the formats off the per-packet path
-- DHCP messages, TLS handshake messages, pcapng blocks -- be declared with ``construct``
instead of written by hand with ``struct``? This module declares each of them with construct,
checks that the declaration reads every message the same as netstack's codec (the DHCP
messages of the tcpdump corpus when it is there, and generated ones), and times both.

What is timed (``bench`` "codecs", ``unit`` "us/call", ``impl`` "netstack" or "construct";
``value`` is the median of the repeats of the mean over ``number`` calls):

- ``dhcp.parse`` / ``dhcp.build``: a DHCPACK with the options a real server sends (12
  options, 300 bytes), through :mod:`netstack.proto.dhcp.wire` and through the declaration
  below; the construct side includes the same Option Overload and RFC 3396 concatenation
  rules (in Python around the declaration: construct has no way to say them).
- ``tls.client_hello.parse`` / ``.build``: an OpenSSL-like TLS 1.3 ClientHello (8
  extensions) through :mod:`netstack.tls.wire` and through the declaration.
- ``pcapng.epb.build``: one Enhanced Packet Block around a 1514-byte frame.

Also one line per format, ``case`` "<format>.lines": the non-blank, non-comment source lines of
each codec, netstack's (the functions named) and the declaration here.

Run: ``python -m benchmarks --only codecs`` (needs ``pip install construct``; skipped with a
note when it is not installed).
"""

from __future__ import annotations

import inspect
import os
import struct
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

from netstack.errors import ParseError
from netstack.proto.dhcp import wire as dhcp
from netstack.tls import wire as tls

from .common import Emitter, Settings, log

# -- the declarations ---------------------------------------------------------------------------


def _dhcp_declaration(c: Any) -> tuple[Any, Any]:
    """A DHCP option and the fixed part of a message (RFC 2131 2, RFC 2132 2)."""
    option = c.Struct(
        "code" / c.Int8ub,
        "value" / c.If(lambda ctx: ctx.code not in (0, 255), c.Prefixed(c.Int8ub, c.GreedyBytes)),
    )
    message = c.Struct(
        "op" / c.Int8ub,
        "htype" / c.Int8ub,
        "hlen" / c.Int8ub,
        "hops" / c.Int8ub,
        "xid" / c.Int32ub,
        "secs" / c.Int16ub,
        "flags" / c.Int16ub,
        "ciaddr" / c.Bytes(4),
        "yiaddr" / c.Bytes(4),
        "siaddr" / c.Bytes(4),
        "giaddr" / c.Bytes(4),
        "chaddr" / c.Bytes(16),
        "sname" / c.Bytes(64),
        "file" / c.Bytes(128),
        "cookie" / c.Const(dhcp.MAGIC_COOKIE),
        "options" / c.GreedyBytes,
    )
    return option, message


def _client_hello_declaration(c: Any) -> Any:
    """RFC 8446 4.1.2."""
    extension = c.Struct("type" / c.Int16ub, "data" / c.Prefixed(c.Int16ub, c.GreedyBytes))
    return c.Struct(
        "legacy_version" / c.Int16ub,
        "random" / c.Bytes(32),
        "session_id" / c.Prefixed(c.Int8ub, c.GreedyBytes),
        "cipher_suites" / c.Prefixed(c.Int16ub, c.GreedyRange(c.Int16ub)),
        "compression" / c.Prefixed(c.Int8ub, c.GreedyBytes),
        "extensions" / c.Prefixed(c.Int16ub, c.GreedyRange(extension)),
    )


def _epb_declaration(c: Any) -> Any:
    """A pcapng Enhanced Packet Block (draft-ietf-opsawg-pcapng 4.3), little-endian."""

    def total(ctx: Any) -> int:
        return 32 + (len(ctx.data) + 3) // 4 * 4

    return c.Struct(
        "type" / c.Const(6, c.Int32ul),
        "length" / c.Rebuild(c.Int32ul, total),
        "interface" / c.Int32ul,
        "ts_high" / c.Int32ul,
        "ts_low" / c.Int32ul,
        "captured" / c.Rebuild(c.Int32ul, c.len_(c.this.data)),
        "original" / c.Int32ul,
        "data" / c.Bytes(c.this.captured),
        c.Padding(lambda ctx: -len(ctx.data) % 4),
        "length2" / c.Rebuild(c.Int32ul, total),
    )


class ConstructDhcp:
    """DHCP through the construct declaration, with the rules the declaration cannot say."""

    def __init__(self) -> None:
        import construct as c

        self.c = c
        self.option, self.message = _dhcp_declaration(c)

    def _walk(self, buf: bytes, pieces: dict[int, list[bytes]]) -> None:
        # GreedyRange of options would stop silently at a truncated option; the wire rule
        # (an option running past its field is an error, End ends the field, trailing bytes
        # after End are padding) needs a loop of its own around the one-option declaration.
        i, n = 0, len(buf)
        while i < n:
            try:
                opt = self.option.parse(buf[i:])
            except self.c.ConstructError as exc:
                raise ParseError("truncated_option", str(exc)) from None
            if opt.code == 255:
                return
            if opt.code == 0:
                i += 1
                continue
            pieces.setdefault(opt.code, []).append(opt.value)
            i += 2 + len(opt.value)

    def parse(self, data: bytes) -> dhcp.DhcpMessage:
        try:
            m = self.message.parse(data)
        except self.c.ConstructError as exc:
            raise ParseError("truncated", str(exc)) from None
        if m.hlen > 16:
            raise ParseError("bad_hlen", str(m.hlen))
        pieces: dict[int, list[bytes]] = {}
        self._walk(m.options, pieces)
        sname, file = m.sname, m.file
        overload = pieces.pop(52, None)
        if overload is not None:
            value = b"".join(overload)
            if len(value) != 1 or not 1 <= value[0] <= 3:
                raise ParseError("bad_overload", value.hex())
            if value[0] & 1:
                self._walk(file, pieces)
                file = b""
            if value[0] & 2:
                self._walk(sname, pieces)
                sname = b""
            pieces.pop(52, None)
        options = {code: b"".join(parts) for code, parts in pieces.items()}
        kind = options.get(53)
        if kind is not None and len(kind) != 1:
            raise ParseError("bad_message_type", kind.hex())
        return dhcp.DhcpMessage(
            op=m.op, xid=m.xid, chaddr=m.chaddr[: m.hlen], options=options, htype=m.htype,
            hlen=m.hlen, hops=m.hops, secs=m.secs, flags=m.flags, ciaddr=m.ciaddr,
            yiaddr=m.yiaddr, siaddr=m.siaddr, giaddr=m.giaddr, sname=sname.rstrip(b"\x00"),
            file=file.rstrip(b"\x00"),
        )  # fmt: skip

    def build(self, msg: dhcp.DhcpMessage) -> bytes:
        order = sorted(msg.options, key=lambda code: code != 53)
        opts = []
        for code in order:
            value = msg.options[code]
            opts.extend(
                {"code": code, "value": value[i : i + 255]}
                for i in range(0, max(len(value), 1), 255)
            )
        opts.append({"code": 255, "value": None})
        body = b"".join(self.option.build(o) for o in opts)
        out = self.message.build(
            {
                "op": msg.op, "htype": msg.htype, "hlen": msg.hlen, "hops": msg.hops,
                "xid": msg.xid, "secs": msg.secs, "flags": msg.flags, "ciaddr": msg.ciaddr,
                "yiaddr": msg.yiaddr, "siaddr": msg.siaddr, "giaddr": msg.giaddr,
                "chaddr": msg.chaddr.ljust(16, b"\x00"), "sname": msg.sname.ljust(64, b"\x00"),
                "file": msg.file.ljust(128, b"\x00"), "options": body,
            }
        )  # fmt: skip
        return bytes(out.ljust(dhcp.BOOTP_MIN_LEN, b"\x00"))


# -- the messages -------------------------------------------------------------------------------


def sample_ack() -> dhcp.DhcpMessage:
    o = dhcp.OptionCode
    return dhcp.DhcpMessage(
        op=dhcp.BootOp.REPLY,
        xid=0x3903F326,
        chaddr=bytes.fromhex("020000000001"),
        yiaddr=bytes([198, 18, 0, 100]),
        siaddr=bytes([198, 18, 0, 1]),
        options={
            o.MESSAGE_TYPE: bytes([dhcp.MessageType.ACK]),
            o.SERVER_ID: bytes([198, 18, 0, 1]),
            o.LEASE_TIME: dhcp.encode_u32(3600),
            o.RENEWAL_TIME: dhcp.encode_u32(1800),
            o.REBINDING_TIME: dhcp.encode_u32(3150),
            o.SUBNET_MASK: dhcp.prefix_to_mask(24),
            o.ROUTER: bytes([198, 18, 0, 1]),
            o.DNS_SERVERS: bytes([198, 18, 0, 1, 198, 18, 0, 2]),
            o.DOMAIN_NAME: b"example.test",
            o.BROADCAST_ADDRESS: bytes([198, 18, 0, 255]),
            o.INTERFACE_MTU: dhcp.encode_u16(1500),
            o.HOSTNAME: b"client-1",
        },
    )


def sample_client_hello() -> tuple[bytes, tls.ClientHello]:
    E = tls.ExtensionType
    hello = tls.ClientHello(
        random=bytes(range(32)),
        legacy_session_id=bytes(32),
        cipher_suites=[0x1301, 0x1302, 0x1303],
        extensions=[
            (E.server_name, tls.push_server_name_list("www.example.test")),
            (E.supported_groups, tls.push_uint16_list([0x001D, 0x0017, 0x0018])),
            (E.signature_algorithms, tls.push_uint16_list([0x0403, 0x0804, 0x0401, 0x0503])),
            (E.supported_versions, tls.push_client_supported_versions([0x0304])),
            (E.key_share, tls.push_client_key_shares([(0x001D, bytes(32))])),
            (E.psk_key_exchange_modes, bytes([1, 1])),
            (E.application_layer_protocol_negotiation, tls.push_alpn([b"h2", b"http/1.1"])),
            (0x0017, b""),  # extended_master_secret, as OpenSSL sends
        ],
        legacy_compression_methods=b"\x00",
    )
    buf = tls.Buffer()
    tls.push_client_hello(buf, hello)
    return buf.data, hello


def corpus_messages() -> list[bytes]:
    """DHCP payloads of the tcpdump corpus (as tests/proto/dhcp/test_dhcp_corpus.py finds
    them), or none when the corpus is not next to the repository."""
    folder = Path(
        os.environ.get("NETSTACK_PCAP_CORPUS")
        or Path(__file__).resolve().parents[2] / "shared" / "pcaps" / "tcpdump"
    )
    if not folder.is_dir():
        return []
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "proto" / "dhcp"))
    try:
        from test_dhcp_corpus import dhcp_payloads  # type: ignore[import-not-found]
    finally:
        sys.path.pop(0)
    return [payload for _, payload in dhcp_payloads(folder)]


def _outcome(fn: Callable[[bytes], dhcp.DhcpMessage], data: bytes) -> object:
    try:
        return fn(data)
    except ParseError:
        return ParseError


def check_same(codec: ConstructDhcp) -> int:
    """Both DHCP codecs read every message alike and build the same bytes; returns how many
    messages were compared."""
    messages = corpus_messages() + [dhcp.build(sample_ack())]
    for data in messages:
        mine, theirs = _outcome(dhcp.parse, data), _outcome(codec.parse, data)
        if (mine is ParseError) != (theirs is ParseError):
            raise AssertionError(f"codecs disagree on {data.hex()}: {mine} / {theirs}")
        if isinstance(mine, dhcp.DhcpMessage):
            assert mine == theirs, data.hex()
            assert dhcp.build(mine) == codec.build(mine), data.hex()
    return len(messages)


def _lines(*objects: object) -> int:
    count = 0
    for obj in objects:
        for line in inspect.getsource(obj).splitlines():  # type: ignore[arg-type]
            stripped = line.strip()
            if stripped and not stripped.startswith(("#", '"""')):
                count += 1
    return count


def _time(stmt: Callable[[], object], settings: Settings) -> float:
    number = 200 if settings.quick else 2000
    runs = timeit.repeat(stmt, number=number, repeat=3 if settings.quick else 7)
    runs.sort()
    return runs[len(runs) // 2] / number * 1e6


def run_codecs(emit: Emitter, settings: Settings) -> None:
    try:
        import construct as c
    except ImportError:
        log("codecs: construct is not installed (pip install construct); skipped")
        return
    codec = ConstructDhcp()
    compared = check_same(codec)
    log(f"codecs: both DHCP codecs agree on {compared} messages")

    def line(case: str, impl: str, value: float) -> None:
        emit.emit("codecs", impl, round(value, 2), "us/call", case=case, loop=None)

    ack = sample_ack()
    raw = dhcp.build(ack)
    line("dhcp.parse", "netstack", _time(lambda: dhcp.parse(raw), settings))
    line("dhcp.parse", "construct", _time(lambda: codec.parse(raw), settings))
    line("dhcp.build", "netstack", _time(lambda: dhcp.build(ack), settings))
    line("dhcp.build", "construct", _time(lambda: codec.build(ack), settings))

    body, hello = sample_client_hello()
    ch = _client_hello_declaration(c)
    assert ch.build(ch.parse(body)) == body
    parsed = ch.parse(body)
    line(
        "tls.client_hello.parse",
        "netstack",
        _time(lambda: tls.pull_client_hello(tls.Buffer(body)), settings),
    )
    line("tls.client_hello.parse", "construct", _time(lambda: ch.parse(body), settings))

    def push() -> bytes:
        buf = tls.Buffer()
        tls.push_client_hello(buf, hello)
        return buf.data

    line("tls.client_hello.build", "netstack", _time(push, settings))
    line("tls.client_hello.build", "construct", _time(lambda: ch.build(parsed), settings))

    frame = bytes(1514)
    epb_struct = struct.Struct("<IIIIIII")

    def epb_by_hand() -> bytes:
        pad = -len(frame) % 4
        length = 32 + len(frame) + pad
        head = epb_struct.pack(6, length, 0, 1, 2, len(frame), len(frame))
        return head + frame + bytes(pad) + struct.pack("<I", length)

    epb = _epb_declaration(c)
    fields = {"interface": 0, "ts_high": 1, "ts_low": 2, "original": len(frame), "data": frame}
    assert epb.build(fields) == epb_by_hand()
    line("pcapng.epb.build", "struct", _time(epb_by_hand, settings))
    line("pcapng.epb.build", "construct", _time(lambda: epb.build(fields), settings))

    # Source lines: what each side has to say for the same format.
    for case, impl, value in (
        ("dhcp.lines", "netstack", _lines(dhcp.parse, dhcp._walk, dhcp.build)),
        ("dhcp.lines", "construct", _lines(_dhcp_declaration, ConstructDhcp)),
        (
            "tls.client_hello.lines",
            "netstack",
            _lines(tls.pull_client_hello, tls.push_client_hello),
        ),  # noqa: E501
        ("tls.client_hello.lines", "construct", _lines(_client_hello_declaration)),
        ("pcapng.epb.lines", "struct", _lines(epb_by_hand)),
        ("pcapng.epb.lines", "construct", _lines(_epb_declaration)),
    ):
        emit.emit("codecs", impl, value, "lines", case=case, loop=None)
