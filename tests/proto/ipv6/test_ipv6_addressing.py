"""IPv6 address arithmetic (netstack.proto.ipv6.addressing): the well-known groups, solicited-node
groups and their Ethernet addresses (RFC 4291 2.7.1, RFC 2464 7), scopes (RFC 6724 3.1/3.2),
modified EUI-64 (RFC 4291 appendix A), RFC 7217 stable identifiers and RFC 5453 reserved ones."""

from __future__ import annotations

import hashlib
import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netstack.proto.ipv6.addressing import (
    ALL_MLDV2_ROUTERS,
    ALL_NODES,
    ALL_ROUTERS,
    LINK_LOCAL_PREFIX,
    UNSPECIFIED,
    combine,
    common_prefix_len,
    eui64_iid,
    is_link_local,
    is_loopback,
    is_multicast,
    is_reserved_iid,
    is_unspecified,
    is_v4_mapped,
    multicast_mac,
    multicast_scope,
    scope,
    solicited_node,
    stable_iid,
)

SECRET = bytes(range(16))


def a(text: str) -> bytes:
    return ipaddress.IPv6Address(text).packed


def iid(text: str) -> bytes:
    """An interface identifier written as four hex groups."""
    return bytes.fromhex(text.replace(":", ""))


addresses = st.binary(min_size=16, max_size=16)

# -- constants and classification ------------------------------------------------------------


def test_well_known_addresses() -> None:
    assert UNSPECIFIED == a("::")
    assert ALL_NODES == a("ff02::1")
    assert ALL_ROUTERS == a("ff02::2")
    assert ALL_MLDV2_ROUTERS == a("ff02::16")
    assert LINK_LOCAL_PREFIX == a("fe80::")


@pytest.mark.parametrize(
    ("text", "multicast", "link_local", "loopback", "unspecified"),
    [
        ("ff02::1", True, False, False, False),
        ("fe80::1", False, True, False, False),
        ("febf:ffff::1", False, True, False, False),  # still fe80::/10
        ("fec0::1", False, False, False, False),  # site-local, not link-local
        ("::1", False, False, True, False),
        ("::", False, False, False, True),
        ("2001:db8::1", False, False, False, False),
    ],
)
def test_classification(
    text: str, multicast: bool, link_local: bool, loopback: bool, unspecified: bool
) -> None:
    x = a(text)
    assert is_multicast(x) is multicast
    assert is_link_local(x) is link_local
    assert is_loopback(x) is loopback
    assert is_unspecified(x) is unspecified


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # RFC 6724 3.1: unicast scopes.
        ("fe80::1", 0x2),
        ("::1", 0x2),
        ("fec0::1", 0x5),
        ("2001:db8::1", 0xE),
        ("fd00::1", 0xE),  # unique local addresses are global in scope (RFC 4193)
        # RFC 4291 2.7: a multicast address's scope field.
        ("ff01::1", 0x1),
        ("ff02::1", 0x2),
        ("ff05::1:3", 0x5),
        ("ff0e::101", 0xE),
        # RFC 6724 3.2: IPv4-mapped addresses take their IPv4 scope.
        ("::ffff:169.254.13.78", 0x2),
        ("::ffff:127.0.0.1", 0x2),
        ("::ffff:10.1.2.3", 0xE),
        ("::ffff:198.51.100.121", 0xE),
    ],
)
def test_scope(text: str, expected: int) -> None:
    assert scope(a(text)) == expected


def test_multicast_scope() -> None:
    assert multicast_scope(a("ff02::1:ff00:1")) == 2
    assert multicast_scope(a("ff15::1")) == 5  # flags do not leak into the scope
    with pytest.raises(ValueError):
        multicast_scope(a("2001:db8::1"))


def test_v4_mapped() -> None:
    assert is_v4_mapped(a("::ffff:192.0.2.1"))
    assert not is_v4_mapped(a("::192.0.2.1"))
    assert not is_v4_mapped(a("2001:db8::1"))


# -- solicited-node groups and multicast MACs ------------------------------------------------


def test_solicited_node_known_vectors() -> None:
    # RFC 4291 2.7.1: ff02::1:ff00:0/104 plus the low 24 bits of the address.
    assert solicited_node(a("2001:db8::1:800:200e:8c6c")) == a("ff02::1:ff0e:8c6c")
    assert solicited_node(a("4037::01:800:200e:8c6c")) == a("ff02::1:ff0e:8c6c")
    assert solicited_node(a("fe80::211:22ff:fe33:4455")) == a("ff02::1:ff33:4455")


@given(addresses)
def test_solicited_node_keeps_the_low_24_bits(x: bytes) -> None:
    g = solicited_node(x)
    assert g[:13] == a("ff02::1:ff00:0")[:13] and g[13:] == x[13:]
    assert is_multicast(g) and multicast_scope(g) == 2


def test_solicited_node_needs_16_bytes() -> None:
    with pytest.raises(ValueError):
        solicited_node(b"\x00" * 4)


def test_multicast_mac() -> None:
    # RFC 2464 7: 33:33 followed by the last four bytes of the group.
    assert multicast_mac(ALL_NODES) == bytes.fromhex("333300000001")
    assert multicast_mac(a("ff02::1:ff0e:8c6c")) == bytes.fromhex("3333ff0e8c6c")
    assert multicast_mac(ALL_MLDV2_ROUTERS) == bytes.fromhex("333300000016")
    with pytest.raises(ValueError):
        multicast_mac(b"\xff\x02")


# -- interface identifiers -------------------------------------------------------------------


def test_eui64_known_vectors() -> None:
    # RFC 4291 appendix A: ff:fe after the OUI and the universal/local bit inverted.
    assert eui64_iid(bytes.fromhex("001122334455")) == iid("0211:22ff:fe33:4455")
    assert eui64_iid(bytes.fromhex("020000000001")) == iid("0000:00ff:fe00:0001")
    # A 64-bit EUI only has the bit inverted.
    assert eui64_iid(bytes.fromhex("0011223344556677")) == iid("0211:2233:4455:6677")
    with pytest.raises(ValueError):
        eui64_iid(b"\x00" * 5)


def test_combine() -> None:
    assert combine(a("2001:db8:1::"), iid("0211:22ff:fe33:4455")) == a(
        "2001:db8:1::211:22ff:fe33:4455"
    )
    # Only the first 64 bits of the prefix count.
    assert combine(a("2001:db8:1:2:ffff::"), bytes(7) + b"\x01") == a("2001:db8:1:2::1")
    with pytest.raises(ValueError):
        combine(a("2001:db8::"), b"\x01")
    with pytest.raises(ValueError):
        combine(b"\x20\x01", bytes(8))


@pytest.mark.parametrize(
    ("text", "reserved"),
    [
        ("0000:0000:0000:0000", True),  # subnet-router anycast (RFC 4291 2.6.1)
        ("0200:5eff:fe00:0000", True),  # IANA Ethernet block, first
        ("0200:5eff:fe00:5212", True),
        ("0200:5eff:fe00:5213", True),  # proxy mobile IPv6 (RFC 6543)
        ("0200:5eff:feff:ffff", True),  # IANA Ethernet block, last
        ("0200:5eff:ff00:0000", False),
        ("0200:5efe:fe00:0000", False),
        ("fdff:ffff:ffff:ff80", True),  # reserved subnet anycast (RFC 2526)
        ("fdff:ffff:ffff:ffff", True),
        ("fdff:ffff:ffff:ff7f", False),
        ("0000:0000:0000:0001", False),
        ("0211:22ff:fe33:4455", False),
    ],
)
def test_reserved_iids(text: str, reserved: bool) -> None:
    assert is_reserved_iid(iid(text)) is reserved


def test_reserved_iid_needs_8_bytes() -> None:
    with pytest.raises(ValueError):
        is_reserved_iid(bytes(16))


def test_stable_iid_is_the_low_64_bits_of_sha256_over_the_inputs() -> None:
    """RFC 7217 5: F() is SHA-256 over Prefix, Net_Iface, Network_ID, DAD_Counter and the
    secret; the identifier is the RID's least significant 64 bits. Pinned here so that
    identifiers stay stable across releases (RFC 7217 5: "stable")."""
    prefix = a("2001:db8:1::")
    data = (
        prefix
        + bytes([64])
        + (4).to_bytes(2, "big")
        + b"eth0"
        + (4).to_bytes(2, "big")
        + b"ssid"
        + (2).to_bytes(4, "big")
        + SECRET
    )
    expected = hashlib.sha256(data).digest()[-8:]
    assert stable_iid(prefix, 64, b"eth0", b"ssid", 2, SECRET) == expected


def test_stable_iid_is_deterministic_and_ignores_bits_past_the_prefix() -> None:
    one = stable_iid(a("2001:db8:1::"), 64, b"eth0", b"", 0, SECRET)
    assert len(one) == 8
    assert stable_iid(a("2001:db8:1::"), 64, b"eth0", b"", 0, SECRET) == one
    # The host bits of the prefix do not count, nor does a short form of the same prefix.
    assert stable_iid(a("2001:db8:1::1234"), 64, b"eth0", b"", 0, SECRET) == one
    assert stable_iid(a("2001:db8:1::")[:8], 64, b"eth0", b"", 0, SECRET) == one


def test_stable_iid_differs_per_input() -> None:
    base = (a("2001:db8:1::"), 64, b"eth0", b"", 0, SECRET)
    one = stable_iid(*base)
    variants = [
        (a("2001:db8:2::"), 64, b"eth0", b"", 0, SECRET),  # another prefix
        (LINK_LOCAL_PREFIX, 64, b"eth0", b"", 0, SECRET),
        (a("2001:db8:1::"), 64, b"eth1", b"", 0, SECRET),  # another interface
        (a("2001:db8:1::"), 64, b"eth0", b"home", 0, SECRET),  # another network
        (a("2001:db8:1::"), 64, b"eth0", b"", 1, SECRET),  # the next DAD_Counter
        (a("2001:db8:1::"), 64, b"eth0", b"", 0, bytes(16)),  # another secret
    ]
    outputs = {stable_iid(*v) for v in variants}
    assert one not in outputs and len(outputs) == len(variants)


def test_stable_iid_fields_do_not_run_into_each_other() -> None:
    # Without length fields these two would hash the same bytes.
    x = stable_iid(LINK_LOCAL_PREFIX, 64, b"eth0", b"1", 0, SECRET)
    y = stable_iid(LINK_LOCAL_PREFIX, 64, b"eth01", b"", 0, SECRET)
    assert x != y


def test_stable_iid_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        stable_iid(LINK_LOCAL_PREFIX, 129, b"eth0", b"", 0, SECRET)
    with pytest.raises(ValueError):
        stable_iid(LINK_LOCAL_PREFIX, 64, b"eth0", b"", -1, SECRET)


@given(
    st.binary(min_size=8, max_size=8),
    st.binary(max_size=16),
    st.integers(0, 10),
    st.binary(min_size=16, max_size=32),
)
def test_stable_iid_counters_give_distinct_identifiers(
    prefix: bytes, net_iface: bytes, counter: int, secret: bytes
) -> None:
    seen = {stable_iid(prefix, 64, net_iface, b"", c, secret) for c in range(counter + 1)}
    assert len(seen) == counter + 1


@given(addresses, addresses, st.integers(0, 128))
def test_common_prefix_len(x: bytes, y: bytes, limit: int) -> None:
    n = common_prefix_len(x, y, limit)
    assert 0 <= n <= limit
    if n < limit:
        # The first n bits agree and bit n differs.
        xi, yi = int.from_bytes(x, "big"), int.from_bytes(y, "big")
        assert (xi ^ yi) >> (127 - n) & 1 == 1
    assert common_prefix_len(x, x) == 128


def test_common_prefix_len_examples() -> None:
    assert common_prefix_len(a("fe80::1"), a("fe80::2")) == 126
    assert common_prefix_len(a("fe80::1"), a("fe80::2"), 64) == 64
    assert common_prefix_len(a("2001:db8:1::1"), a("2001:db8:3::1")) == 46
