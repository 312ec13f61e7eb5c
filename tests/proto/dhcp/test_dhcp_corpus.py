"""Every DHCP message of the tcpdump test captures through :func:`netstack.proto.dhcp.wire.parse`.

The corpus (shared/pcaps/tcpdump next to the repository; ``NETSTACK_PCAP_CORPUS`` overrides
it) holds DHCP exchanges of real clients, servers and relays, with RFC 3004, 3442-era, 4388
(leasequery), 5859 and vendor options. Each UDP datagram to or from port 67 or 68 in an
Ethernet capture must parse or raise ``ParseError``; a message that parses must survive
``build`` and a second ``parse`` unchanged (options included).
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest

from netstack.errors import ParseError
from netstack.link.pcap import read_pcap
from netstack.proto.dhcp import wire as dhcp
from netstack.proto.ethernet import wire as ethernet
from netstack.proto.ipv4 import wire as ipv4
from netstack.proto.udp import wire as udp

LINKTYPE_ETHERNET = 1


def corpus_dir() -> Path:
    override = os.environ.get("NETSTACK_PCAP_CORPUS")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[4] / "shared" / "pcaps" / "tcpdump"


def dhcp_payloads(folder: Path) -> list[tuple[str, bytes]]:
    out = []
    for path in sorted(folder.iterdir()):
        try:
            for index, record in enumerate(read_pcap(path)):
                if record.linktype != LINKTYPE_ETHERNET:
                    continue
                try:
                    eth, payload = ethernet.parse(record.data)
                    if eth.ethertype != 0x0800:
                        continue
                    ip, data = ipv4.parse(payload)
                    if ip.proto != 17 or ip.flags_fragment & 0x3FFF:
                        continue
                    header, body = udp.parse(data)
                except ParseError:
                    continue
                if {header.src_port, header.dst_port} & {67, 68}:
                    out.append((f"{path.name}#{index}", bytes(body)))
        except ParseError:
            continue
    return out


@pytest.fixture(scope="module")
def corpus() -> list[tuple[str, bytes]]:
    folder = corpus_dir()
    if not folder.is_dir():
        pytest.skip(f"no capture corpus at {folder}")
    return dhcp_payloads(folder)


def test_corpus_messages_parse_or_raise_parse_error(corpus: list[tuple[str, bytes]]) -> None:
    assert len(corpus) >= 50
    parsed = Counter[str]()
    problems = []
    for where, data in corpus:
        try:
            msg = dhcp.parse(data)
        except ParseError as exc:
            parsed[f"rejected:{exc.reason}"] += 1
            continue
        except Exception as exc:
            problems.append(f"{where}: {type(exc).__name__}: {exc}")
            continue
        parsed["ok"] += 1
        again = dhcp.parse(dhcp.build(msg))
        if again != msg:
            problems.append(f"{where}: build and parse changed the message")
    assert not problems, "\n".join(problems)
    # All but the deliberately broken frames of dhcp-rfc4388.pcap parse.
    assert parsed["ok"] >= 80, parsed


def test_corpus_has_every_message_type(corpus: list[tuple[str, bytes]]) -> None:
    kinds = set()
    for _, data in corpus:
        try:
            kinds.add(dhcp.parse(data).message_type)
        except ParseError:
            pass
    assert {dhcp.MessageType.DISCOVER, dhcp.MessageType.OFFER, dhcp.MessageType.REQUEST,
            dhcp.MessageType.ACK} <= kinds  # fmt: skip
