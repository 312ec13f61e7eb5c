"""Tests of netstack.proto.mld.wire: MLDv2 queries and reports (RFC 3810 5) and MLDv1
queries, reports and done messages (RFC 2710 3).

Fixed messages come from the tcpdump project's test captures (icmpv6.pcap in the corpus at
shared/pcaps/tcpdump), written out as hex from the byte after the IPv6 headers; or were
assembled by hand from the RFC layouts (fe80::/64 and 2001:db8::/32 addresses), their checksums
worked out with an RFC 1071 loop, written to a pcap and decoded by ``tshark -V``, which
reported every checksum "[correct]". The comments give tshark's reading.
"""

from __future__ import annotations

import ipaddress
import re
from typing import NamedTuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netstack.errors import ParseError
from netstack.proto.icmpv6.wire import Icmp6Header, Icmp6Type, checksum_ok, parse
from netstack.proto.mld.wire import (
    MLDV2_ROUTERS,
    GroupRecord,
    MldQuery,
    RecordType,
    build_query,
    build_report,
    build_v1,
    decode_mrc,
    decode_qqic,
    encode_mrc,
    encode_qqic,
    parse_query,
    parse_report,
    parse_v1,
)

SETTINGS = settings(max_examples=300, deadline=None)
SNAKE_CASE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")


def addr(text: str) -> bytes:
    return ipaddress.IPv6Address(text).packed


LL1 = addr("fe80::1")
LL2 = addr("fe80::2")
ALL_NODES = addr("ff02::1")
GENERAL = bytes(16)
GROUP = addr("ff05::1:3")
S1 = addr("2001:db8::10")
S2 = addr("2001:db8::11")
HOST = addr("fe80::215:17ff:fecc:e546")  # the reporting host of icmpv6.pcap
TCPDUMP_GROUP = addr("ff02::db8:1122:3344")


class FixedQuery(NamedTuple):
    name: str
    src: bytes
    dst: bytes
    message: bytes
    query: MldQuery


QUERIES = [
    # By hand, fe80::1 -> ff02::1, 24 bytes: "Multicast Listener Query", "Maximum Response
    # Code: 10000", "Multicast Address: ::", "Checksum: 0x5917 [correct]".
    FixedQuery(
        "v1_general",
        LL1,
        ALL_NODES,
        bytes.fromhex("8200591727100000 00000000000000000000000000000000"),
        MldQuery(10.0, GENERAL, 1, False, 0, 0.0, ()),
    ),
    # icmpv6.pcap frame 3, fe80::b2a8:6eff:fe0c:d4e8 -> ff02::1: "Maximum Response Code:
    # 10000", "Multicast Address: ::", "QRV: 2", "QQIC: 60", "Number of Sources: 0",
    # "Checksum: 0x623a [correct]".
    FixedQuery(
        "v2_general_tcpdump",
        addr("fe80::b2a8:6eff:fe0c:d4e8"),
        ALL_NODES,
        bytes.fromhex("8200623a27100000 00000000000000000000000000000000 023c0000"),
        MldQuery(10.0, GENERAL, 2, False, 2, 60.0, ()),
    ),
    # By hand, fe80::1 -> ff05::1:3: "Maximum Response Code: 74560" (0x9234: exp 1, mant
    # 0x234), "Multicast Address: ff05::1:3", "Suppress Router-Side Processing: True", "QRV:
    # 2", "QQIC: 224" (0x8c: exp 0, mant 0xc), sources 2001:db8::10 and 2001:db8::11,
    # "Checksum: 0x889d [correct]".
    FixedQuery(
        "v2_source_specific",
        LL1,
        GROUP,
        bytes.fromhex(
            "8200889d92340000 ff050000000000000000000000010003 0a8c0002"
            " 20010db8000000000000000000000010 20010db8000000000000000000000011"
        ),
        MldQuery(74.56, GROUP, 2, True, 2, 224.0, (S1, S2)),
    ),
]


class FixedReport(NamedTuple):
    name: str
    src: bytes
    message: bytes
    records: tuple[GroupRecord, ...]


REPORTS = [
    # By hand, fe80::2 -> ff02::16: "Number of Multicast Address Records: 2", "Changed to
    # exclude: ff02::1:ff00:1", then "Allow new sources: ff05::1:3" with source
    # 2001:db8::10; "Checksum: 0x3f0d [correct]".
    FixedReport(
        "two_records",
        LL2,
        bytes.fromhex(
            "8f003f0d00000002"
            " 04000000 ff0200000000000000000001ff000001"
            " 05000001 ff050000000000000000000000010003 20010db8000000000000000000000010"
        ),
        (
            GroupRecord(RecordType.CHANGE_TO_EXCLUDE, addr("ff02::1:ff00:1")),
            GroupRecord(RecordType.ALLOW_NEW_SOURCES, GROUP, (S1,)),
        ),
    ),
    # icmpv6.pcap frame 2: "Changed to exclude: ff02::db8:1122:3344", "Checksum: 0x1fc5
    # [correct]".
    FixedReport(
        "join_tcpdump",
        HOST,
        bytes.fromhex("8f001fc500000001 04000000 ff0200000000000000000db811223344"),
        (GroupRecord(RecordType.CHANGE_TO_EXCLUDE, TCPDUMP_GROUP),),
    ),
    # icmpv6.pcap frame 4, the answer to the query of frame 3: four "Exclude" records,
    # ff02::db8:1122:3344, ff02::1:ffcc:e546, ff02::1:ffa7:10ad, ff02::1:ff00:2; "Checksum:
    # 0x2a0e [correct]".
    FixedReport(
        "current_state_tcpdump",
        HOST,
        bytes.fromhex(
            "8f002a0e00000004"
            " 02000000 ff0200000000000000000db811223344"
            " 02000000 ff0200000000000000000001ffcce546"
            " 02000000 ff0200000000000000000001ffa710ad"
            " 02000000 ff0200000000000000000001ff000002"
        ),
        tuple(
            GroupRecord(RecordType.MODE_IS_EXCLUDE, addr(g))
            for g in ("ff02::db8:1122:3344", "ff02::1:ffcc:e546", "ff02::1:ffa7:10ad")
            + ("ff02::1:ff00:2",)
        ),
    ),
    # icmpv6.pcap frame 5: "Changed to include: ff02::db8:1122:3344" (leaving), "Checksum:
    # 0x20c5 [correct]".
    FixedReport(
        "leave_tcpdump",
        HOST,
        bytes.fromhex("8f0020c500000001 03000000 ff0200000000000000000db811223344"),
        (GroupRecord(RecordType.CHANGE_TO_INCLUDE, TCPDUMP_GROUP),),
    ),
]


def test_record_types() -> None:
    assert [int(t) for t in RecordType] == [1, 2, 3, 4, 5, 6]
    assert MLDV2_ROUTERS == addr("ff02::16")


@pytest.mark.parametrize("case", QUERIES, ids=lambda c: c.name)
@pytest.mark.parametrize("kind", [bytes, memoryview])
def test_fixed_query_parses(case: FixedQuery, kind: type) -> None:
    header, body = parse(kind(case.message))
    assert header.type == Icmp6Type.MLD_QUERY
    assert checksum_ok(case.message, case.src, case.dst)
    assert parse_query(header, body) == case.query


def test_fixed_queries_rebuilt() -> None:
    v1, tcpdump, specific = QUERIES
    assert build_query(LL1, ALL_NODES, version=1) == v1.message
    assert build_query(tcpdump.src, ALL_NODES, max_response_delay=10, qqic=60) == tcpdump.message
    assert (
        build_query(
            LL1,
            GROUP,
            max_response_delay=74.56,
            group=GROUP,
            suppress=True,
            qqic=224,
            sources=[S1, S2],
        )
        == specific.message
    )


@pytest.mark.parametrize("case", REPORTS, ids=lambda c: c.name)
def test_fixed_report_parses(case: FixedReport) -> None:
    header, body = parse(case.message)
    assert header.type == Icmp6Type.MLDV2_REPORT
    assert checksum_ok(case.message, case.src, MLDV2_ROUTERS)
    assert parse_report(header, body) == case.records


@pytest.mark.parametrize("case", REPORTS, ids=lambda c: c.name)
def test_fixed_report_rebuilt(case: FixedReport) -> None:
    assert build_report(case.src, case.records) == case.message
    assert build_report(case.src, iter(case.records)) == case.message


# -- RFC 3810 5.1.3 and 5.1.9: the exponential codes -----------------------------------------


@pytest.mark.parametrize(
    ("code", "milliseconds"),
    [
        (0, 0),
        (1, 1),
        (10000, 10000),
        (32767, 32767),  # the largest linear code
        (0x8000, 32768),  # exp 0, mant 0: 0x1000 << 3
        (0x8001, 32776),  # one mant step is 8 ms at exp 0
        (0x9234, 74560),  # exp 1, mant 0x234: 0x1234 << 4
        (0xF000, 0x1000 << 10),  # exp 7, mant 0
        (0xFFFF, 8387584),  # the largest: 0x1FFF << 10
    ],
)
def test_maximum_response_code(code: int, milliseconds: int) -> None:
    assert decode_mrc(code) == milliseconds
    assert encode_mrc(milliseconds) == code


def test_maximum_response_code_rounds_down_and_saturates() -> None:
    assert encode_mrc(32769) == 0x8000  # 32768..32775 share a code
    assert encode_mrc(32775) == 0x8000
    assert encode_mrc(65535) == 0x8FFF  # 0x1FFF << 3 = 65528
    assert decode_mrc(0x8FFF) == 65528
    assert encode_mrc(65536) == 0x9000
    assert encode_mrc(8387584 + 1) == 0xFFFF
    assert encode_mrc(10**9) == 0xFFFF


def test_every_maximum_response_code_round_trips() -> None:
    delays = [decode_mrc(code) for code in range(0x10000)]
    assert delays == sorted(delays) and len(set(delays)) == 0x10000  # one delay per code
    assert all(encode_mrc(d) == code for code, d in enumerate(delays))


@pytest.mark.parametrize(
    ("code", "seconds"),
    [
        (0, 0),
        (60, 60),
        (125, 125),  # the default Query Interval (RFC 3810 9.2)
        (127, 127),  # the largest linear code
        (0x80, 128),  # exp 0, mant 0: 0x10 << 3
        (0x81, 136),
        (0x8C, 224),  # exp 0, mant 0xc
        (0x9F, 31 << 4),  # exp 1, mant 0xf
        (0xF0, 0x10 << 10),
        (0xFF, 31744),  # the largest: 0x1F << 10
    ],
)
def test_querier_query_interval_code(code: int, seconds: int) -> None:
    assert decode_qqic(code) == seconds
    assert encode_qqic(seconds) == code


def test_querier_query_interval_code_rounds_down_and_saturates() -> None:
    assert encode_qqic(129) == 0x80
    assert encode_qqic(255) == 0x8F  # 0x1f << 3 = 248
    assert encode_qqic(256) == 0x90
    assert encode_qqic(31745) == 0xFF
    assert encode_qqic(10**6) == 0xFF


def test_every_qqic_round_trips() -> None:
    intervals = [decode_qqic(code) for code in range(0x100)]
    assert intervals == sorted(intervals) and len(set(intervals)) == 0x100
    assert all(encode_qqic(s) == code for code, s in enumerate(intervals))


def test_negative_values_cannot_be_encoded() -> None:
    with pytest.raises(ValueError):
        encode_mrc(-1)
    with pytest.raises(ValueError):
        encode_qqic(-1)


@SETTINGS
@given(milliseconds=st.integers(0, 10_000_000))
def test_encode_mrc_is_the_largest_code_not_above(milliseconds: int) -> None:
    code = encode_mrc(milliseconds)
    assert 0 <= code <= 0xFFFF
    assert decode_mrc(code) <= milliseconds
    if code < 0xFFFF:
        assert decode_mrc(code + 1) > milliseconds


@SETTINGS
@given(seconds=st.integers(0, 100_000))
def test_encode_qqic_is_the_largest_code_not_above(seconds: int) -> None:
    code = encode_qqic(seconds)
    assert 0 <= code <= 0xFF
    assert decode_qqic(code) <= seconds
    if code < 0xFF:
        assert decode_qqic(code + 1) > seconds


def test_query_decodes_both_ranges() -> None:
    for code, delay in ((32767, 32.767), (0x8000, 32.768), (0xFFFF, 8387.584)):
        message = bytes.fromhex("82000000") + (code << 16).to_bytes(4, "big") + bytes(20)
        header, body = parse(message)
        assert parse_query(header, body).max_response_delay == delay
    for qqic, interval in ((127, 127.0), (0x80, 128.0), (0xFF, 31744.0)):
        message = bytes.fromhex("8200000000000000") + bytes(17) + bytes([qqic, 0, 0])
        header, body = parse(message)
        assert parse_query(header, body).qqic == interval


def test_v1_delay_is_plain_milliseconds() -> None:
    # RFC 2710 3.4: no exponential form in version 1.
    message = bytes.fromhex("82000000ffff0000") + GROUP
    header, body = parse(message)
    query = parse_query(header, body)
    assert query.version == 1 and query.max_response_delay == 65.535 and query.group == GROUP


# -- lengths ---------------------------------------------------------------------------------


def query_reason(message: bytes) -> str:
    header, body = parse(message)
    with pytest.raises(ParseError) as info:
        parse_query(header, body)
    assert SNAKE_CASE.match(info.value.reason)
    return info.value.reason


@pytest.mark.parametrize("length", range(8, 24))
def test_query_shorter_than_24_bytes(length: int) -> None:
    assert query_reason(QUERIES[1].message[:length]) == "truncated"


@pytest.mark.parametrize("length", [25, 26, 27])
def test_query_of_25_to_27_bytes_is_neither_version(length: int) -> None:
    # RFC 3810 8.1: such a query MUST be silently ignored.
    assert query_reason(QUERIES[1].message[:length]) == "bad_length"


def test_sources_past_the_end_are_truncated() -> None:
    specific = QUERIES[2].message
    assert query_reason(specific[:-1]) == "truncated"
    assert query_reason(specific[:-16]) == "truncated"
    assert query_reason(QUERIES[1].message[:26] + b"\x00\x01") == "truncated"


def test_query_additional_data_is_ignored() -> None:
    # RFC 3810 5.1.12: octets beyond the described fields count in the checksum only.
    header, body = parse(QUERIES[2].message + b"additional")
    assert parse_query(header, body) == QUERIES[2].query


def test_query_code_and_reserved_fields_are_ignored() -> None:
    # RFC 3810 5.1.1, 5.1.4 and Resv: zero from the sender, ignored by receivers.
    message = bytearray(QUERIES[2].message)
    message[1] = 0x77  # Code
    message[6:8] = b"\xff\xff"  # Reserved
    message[24] |= 0xF0  # Resv
    header, body = parse(bytes(message))
    assert parse_query(header, body) == QUERIES[2].query


def report_reason(message: bytes) -> str:
    header, body = parse(message)
    with pytest.raises(ParseError) as info:
        parse_report(header, body)
    return info.value.reason


def test_report_records_past_the_end_are_truncated() -> None:
    two = REPORTS[0].message
    for length in (8 + 19, 8 + 20, 8 + 39, len(two) - 1):
        assert report_reason(two[:length]) == "truncated"
    # A record count larger than the records present.
    assert report_reason(two[:4] + b"\x00\x00\x00\x03" + two[8:]) == "truncated"


def test_report_auxiliary_data_is_skipped() -> None:
    # RFC 3810 5.2.10: receivers MUST ignore auxiliary data, but it still takes room.
    record = bytes.fromhex("02020000") + GROUP + b"auxdata!"
    message = bytes.fromhex("8f00000000000002") + record + record
    header, body = parse(message)
    assert parse_report(header, body) == (GroupRecord(2, GROUP),) * 2
    assert report_reason(message[:-1]) == "truncated"


def test_report_of_no_records() -> None:
    message = build_report(LL1, [])
    assert message == bytes.fromhex("8f00") + message[2:4] + bytes(4)
    header, body = parse(message)
    assert parse_report(header, body) == ()
    assert checksum_ok(message, LL1, MLDV2_ROUTERS)


# -- builders --------------------------------------------------------------------------------


def test_builders_reject_what_cannot_be_encoded() -> None:
    calls = [
        lambda: build_query(LL1, ALL_NODES, version=3),
        lambda: build_query(LL1, ALL_NODES, version=1, max_response_delay=65.536),
        lambda: build_query(LL1, ALL_NODES, version=1, max_response_delay=-1),
        lambda: build_query(LL1, ALL_NODES, max_response_delay=-0.5),
        lambda: build_query(LL1, ALL_NODES, qqic=-1),
        lambda: build_query(LL1, ALL_NODES, qrv=8),
        lambda: build_query(LL1, ALL_NODES, group=GROUP[:8]),
        lambda: build_query(LL1, ALL_NODES, sources=[S1[:15]]),
        lambda: build_report(LL1, [GroupRecord(1, GROUP[:4])]),
        lambda: build_report(LL1, [GroupRecord(1, GROUP, (S1 + b"\x00",))]),
        lambda: build_report(LL1, [GroupRecord(1, GROUP, (S1,) * 0x10000)]),
        lambda: build_report(LL1, [GroupRecord(1, GROUP)] * 0x10000),
    ]
    for call in calls:
        with pytest.raises(ValueError):
            call()


def test_report_goes_to_all_mldv2_routers() -> None:
    # RFC 3810 5.2.14: the checksum is for destination ff02::16.
    message = build_report(LL1, [GroupRecord(RecordType.MODE_IS_EXCLUDE, GROUP)])
    assert checksum_ok(message, LL1, MLDV2_ROUTERS)
    assert not checksum_ok(message, LL1, ALL_NODES)


# -- hypothesis ------------------------------------------------------------------------------

addresses = st.binary(min_size=16, max_size=16)
records = st.builds(
    GroupRecord,
    st.integers(0, 255),
    addresses,
    st.lists(addresses, max_size=3).map(tuple),
)


@SETTINGS
@given(src=addresses, recs=st.lists(records, max_size=5))
def test_report_round_trips(src: bytes, recs: list[GroupRecord]) -> None:
    message = build_report(src, recs)
    assert checksum_ok(message, src, MLDV2_ROUTERS)
    header, body = parse(message)
    assert header.type == Icmp6Type.MLDV2_REPORT and header.rest == len(recs)
    assert parse_report(header, body) == tuple(recs)


@SETTINGS
@given(
    src=addresses,
    dst=addresses,
    code=st.integers(0, 0xFFFF),
    group=addresses,
    suppress=st.booleans(),
    qrv=st.integers(0, 7),
    qqic=st.integers(0, 255),
    sources=st.lists(addresses, max_size=4),
)
def test_v2_query_round_trips(
    src: bytes,
    dst: bytes,
    code: int,
    group: bytes,
    suppress: bool,
    qrv: int,
    qqic: int,
    sources: list[bytes],
) -> None:
    delay = decode_mrc(code) / 1000
    interval = float(decode_qqic(qqic))
    message = build_query(
        src,
        dst,
        max_response_delay=delay,
        group=group,
        suppress=suppress,
        qrv=qrv,
        qqic=interval,
        sources=sources,
    )
    assert checksum_ok(message, src, dst)
    assert len(message) == 28 + 16 * len(sources)
    header, body = parse(message)
    assert header.rest >> 16 == code
    query = parse_query(header, body)
    assert query == MldQuery(delay, group, 2, suppress, qrv, interval, tuple(sources))


@SETTINGS
@given(src=addresses, dst=addresses, delay=st.integers(0, 0xFFFF), group=addresses)
def test_v1_query_round_trips(src: bytes, dst: bytes, delay: int, group: bytes) -> None:
    message = build_query(src, dst, max_response_delay=delay / 1000, group=group, version=1)
    assert len(message) == 24 and checksum_ok(message, src, dst)
    header, body = parse(message)
    assert parse_query(header, body) == MldQuery(delay / 1000, group, 1, False, 0, 0.0, ())


@SETTINGS
@given(rest=st.integers(0, 0xFFFFFFFF), body=st.binary(max_size=120))
def test_garbage_parses_or_raises_parse_error(rest: int, body: bytes) -> None:
    for type_, function in ((130, parse_query), (143, parse_report)):
        try:
            function(Icmp6Header(type_, 0, 0, rest), body)
        except ParseError as exc:
            assert exc.reason in {"truncated", "bad_length"}
            assert SNAKE_CASE.match(exc.reason)


# -- MLDv1 Report and Done (RFC 2710 3) --------------------------------------------------------
SOLICITED = addr("ff02::1:ff00:1")


@pytest.mark.parametrize(
    ("type_", "dst", "hexed"),
    [
        # By hand, fe80::2 -> ff02::1:ff00:1 behind a Router Alert; tshark -V: "Multicast
        # Listener Report (131)", "Checksum: 0x821e [correct]", "Multicast Address:
        # ff02::1:ff00:1".
        (Icmp6Type.MLD_REPORT, SOLICITED, "8300821e00000000ff0200000000000000000001ff000001"),
        # fe80::2 -> ff02::2: "Multicast Listener Done (132)", "Checksum: 0x801f [correct]".
        (Icmp6Type.MLD_DONE, addr("ff02::2"), "8400801f00000000ff0200000000000000000001ff000001"),
    ],
)
def test_fixed_v1_messages(type_: int, dst: bytes, hexed: str) -> None:
    message = build_v1(type_, LL2, dst, SOLICITED)
    assert message == bytes.fromhex(hexed)
    assert checksum_ok(message, LL2, dst)
    header, body = parse(message)
    assert header.type == type_ and parse_v1(header, body) == SOLICITED
    # Bytes after the Multicast Address are ignored.
    header, body = parse(message + b"\x00" * 8)
    assert parse_v1(header, body) == SOLICITED


def test_v1_message_errors() -> None:
    header, body = parse(bytes.fromhex("8300821e00000000ff02000000000000"))
    with pytest.raises(ParseError, match="truncated"):
        parse_v1(header, body)
    with pytest.raises(ValueError):
        build_v1(Icmp6Type.MLD_QUERY, LL2, SOLICITED, SOLICITED)
    with pytest.raises(ValueError):
        build_v1(Icmp6Type.MLD_REPORT, LL2, SOLICITED, b"short")
