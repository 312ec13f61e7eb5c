"""netstack's DNS against real peers over a TAP device in a network namespace (PEERS.md):
``dig`` (BIND's) querying the netstack server over UDP, TCP and TLS, and the netstack resolver
asking ``dnsmasq`` in the namespace, over UDP and, for an answer too large for it, TCP."""

from __future__ import annotations

import asyncio
import re
import socket
import ssl
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import dns.name
import dns.rdatatype
import pytest
from peerkit import in_netns, peer, wait_listening

from netstack import Stack
from netstack.dns import DnsServer, NameNotFound, Resolver, serve
from netstack.testing import TapSandbox, require_program

pytestmark = pytest.mark.peers

NETSTACK = "198.18.0.2"
KERNEL = "198.18.0.1"

ZONE = {
    "example.test.": {
        "@": [
            ("SOA", "ns admin 2024010101 3600 600 86400 60"),
            ("NS", "ns"),
            ("MX", "10 mail"),
        ],
        "ns": [("A", NETSTACK)],
        "mail": [("A", "198.18.0.25"), ("AAAA", "fd00:198:18::25")],
        "www": [("CNAME", "web")],
        "web": [("A", "198.18.0.80"), ("AAAA", "fd00:198:18::80")],
        "big": [("TXT", f'"{i:02d}' + "x" * 197 + '"') for i in range(10)],
    }
}


@pytest.fixture
async def dns_server(tap_stack: Stack) -> AsyncIterator[DnsServer]:
    async with await serve(tap_stack, ZONE) as server:
        yield server


async def dig(sandbox: TapSandbox, *args: str) -> str:
    return await in_netns(sandbox, "dig", f"@{NETSTACK}", "+time=3", "+tries=1", *args)


def status(out: str) -> str:
    match = re.search(r"status: (\w+)", out)
    assert match, out
    return match.group(1)


def flags(out: str) -> set[str]:
    match = re.search(r";; flags: ([a-z ]+);", out)
    assert match, out
    return set(match.group(1).split())


def block(out: str, header: str, end: str = r"\n\n|\Z") -> str:
    match = re.search(rf";; {header}:\n(.*?)(?:{end})", out, re.S)
    return match.group(1) if match else ""


def section(out: str, name: str) -> str:
    return block(out, f"{name} SECTION")


# -- dig against the netstack server -----------------------------------------------------------
@pytest.mark.parametrize("transport", ["+notcp", "+tcp"])
async def test_dig_queries_netstack(
    tap_netns: TapSandbox, dns_server: DnsServer, transport: str
) -> None:
    require_program("dig")
    out = await dig(tap_netns, transport, "www.example.test", "A")
    assert status(out) == "NOERROR"
    assert {"qr", "aa", "rd"} <= flags(out) and "ra" not in flags(out)
    answer = section(out, "ANSWER")
    assert "www.example.test.\t300\tIN\tCNAME\tweb.example.test." in answer
    assert re.search(r"web\.example\.test\.\s+300\s+IN\s+A\s+198\.18\.0\.80", answer)
    assert "EDNS: version: 0" in out and "udp: 1232" in out  # dig asks with EDNS

    out = await dig(tap_netns, transport, "+short", "web.example.test", "AAAA")
    assert out.split() == ["fd00:198:18::80"]

    out = await dig(tap_netns, transport, "example.test", "MX")
    assert re.search(r"example\.test\.\s+300\s+IN\s+MX\s+10 mail\.example\.test\.", out)
    assert "mail.example.test." in section(out, "ADDITIONAL")

    out = await dig(tap_netns, transport, "nope.example.test", "A")
    assert status(out) == "NXDOMAIN" and "aa" in flags(out)
    # RFC 2308 3: the SOA, its TTL the smaller of its own (300) and its MINIMUM (60).
    assert re.search(r"example\.test\.\s+60\s+IN\s+SOA\s+ns\.example\.test\.", out)

    out = await dig(tap_netns, transport, "www.example.org", "A")
    assert status(out) == "REFUSED"
    key = "tcp_queries" if transport == "+tcp" else "udp_queries"
    assert dns_server.stats()[key] >= 5


@pytest.mark.parametrize("transport", ["+notcp", "+tcp"])
async def test_dig_gets_kept_answers_with_its_own_case_and_flags(
    tap_netns: TapSandbox, dns_server: DnsServer, transport: str
) -> None:
    # Answers kept in wire form (netstack/dns/answers.py): the second and third questions are
    # answered from the first one's bytes, with dig's ID, its RD bit and its question as it
    # wrote it (0x20 mixed case, draft-vixie-dnsext-dns0x20); dig's EDNS cookie rides along.
    require_program("dig")
    first = ""
    for flag, name, rd in (
        ("+rec", "www.example.test", True),
        ("+norec", "WwW.ExAmPlE.tEsT", False),
        ("+rec", "WWW.EXAMPLE.TEST", True),
    ):
        out = await dig(tap_netns, transport, flag, name, "A")
        first = first or out
        assert status(out) == "NOERROR" and "aa" in flags(out)
        assert ("rd" in flags(out)) == rd
        assert section(out, "QUESTION").split() == [f";{name}.", "IN", "A"]
        # Names compressed into the question read in its case, as the long way renders them.
        assert section(out, "ANSWER").lower() == section(first, "ANSWER").lower()
        assert "EDNS: version: 0" in out
    assert "web.example.test." in section(first, "ANSWER")
    assert dns_server.stats()["answer_cache"]["hits"] == 2


async def test_dig_several_queries_on_one_tcp_connection(
    tap_netns: TapSandbox, dns_server: DnsServer
) -> None:
    require_program("dig")
    out = await dig(
        tap_netns, "+tcp", "+keepopen", "+short",
        "web.example.test", "A", "web.example.test", "AAAA", "mail.example.test", "A",
    )  # fmt: skip
    assert out.split() == ["198.18.0.80", "fd00:198:18::80", "198.18.0.25"]
    stats = dns_server.stats()
    assert stats["tcp_queries"] == 3 and stats["tcp_connections"] == 1


async def test_dig_follows_truncation_to_tcp(tap_netns: TapSandbox, dns_server: DnsServer) -> None:
    require_program("dig")
    out = await dig(tap_netns, "+ignore", "+noedns", "big.example.test", "TXT")
    assert "tc" in flags(out) and not section(out, "ANSWER")
    out = await dig(tap_netns, "+noedns", "big.example.test", "TXT")  # retries over TCP
    assert status(out) == "NOERROR" and "tc" not in flags(out)
    assert len(re.findall(r"\tTXT\t", section(out, "ANSWER"))) == 10
    stats = dns_server.stats()
    assert stats["truncated"] >= 2 and stats["tcp_queries"] >= 1


def opt_section(out: str) -> str:
    """The lines of dig's OPT pseudo-section (EDNS version, flags, options; "; PAD: (n
    bytes)" for padding), which the question section follows at once."""
    return block(out, "OPT PSEUDOSECTION", r"\n;;|\Z")


@pytest.mark.parametrize("transport", ["+notcp", "+tcp"])
async def test_dig_sees_the_do_bit_copied(
    tap_netns: TapSandbox, dns_server: DnsServer, transport: str
) -> None:
    # RFC 3225 3: the DO bit of the query is copied into the response.
    require_program("dig")
    out = await dig(tap_netns, transport, "+dnssec", "web.example.test", "A")
    assert status(out) == "NOERROR"
    assert re.search(r"EDNS: version: 0, flags: do;", out), out
    out = await dig(tap_netns, transport, "+dnssec", "nope.example.test", "A")
    assert status(out) == "NXDOMAIN" and "flags: do;" in out
    out = await dig(tap_netns, transport, "web.example.test", "A")
    assert "EDNS: version: 0, flags:;" in out  # and not set when not asked


async def test_dig_unknown_opcode_gets_notimp_without_rd(
    tap_netns: TapSandbox, dns_server: DnsServer
) -> None:
    # NOTIMP for an opcode not implemented: nothing but QR among the flags, whatever the
    # query set (BIND's own check of opcode 15), and an OPT since the query had one
    # (RFC 6891 6.1.1).
    require_program("dig")
    out = await dig(tap_netns, "+opcode=15", "+rec", "+cd", "+adflag", "+zflag", "+dnssec",
                    "web.example.test", "A")  # fmt: skip
    assert status(out) == "NOTIMP"
    assert flags(out) == {"qr"} and "MBZ" not in out.split(";; OPT")[0]
    assert "opcode: RESERVED15" in out
    assert "EDNS: version: 0, flags: do;" in out
    out = await dig(tap_netns, "+opcode=notify", "+noedns", "example.test", "SOA")
    assert status(out) == "NOTIMP" and flags(out) == {"qr"} and "EDNS" not in out


@pytest.mark.parametrize("transport", ["+notcp", "+tcp"])
async def test_dig_padding_is_not_echoed_in_cleartext(
    tap_netns: TapSandbox, dns_server: DnsServer, transport: str
) -> None:
    # RFC 8467 / RFC 7830: padding belongs to encrypted transports only.
    require_program("dig")
    out = await dig(tap_netns, transport, "+padding=128", "web.example.test", "A")
    assert status(out) == "NOERROR"
    assert "PAD:" not in opt_section(out) and "EDNS" in opt_section(out), out
    size = re.search(r"MSG SIZE\s+rcvd: (\d+)", out)
    assert size is not None and int(size.group(1)) < 200


@pytest.mark.parametrize("engine", ["openssl", "netstack"])
async def test_dig_over_tls_gets_padded_answers(
    tap_netns: TapSandbox, tap_stack: Stack, tmp_path: Path, engine: str
) -> None:
    # RFC 7858 (DNS over TLS, port 853) with dig's own TLS: answers to padded queries are
    # padded to 468-byte blocks there (RFC 8467 4.1), and only there.
    from netstack.tls import TLSConfig, certs

    require_program("dig")
    ca, ca_key = certs.make_ca("netstack DoT peer CA")
    cert, key = certs.issue(ca, ca_key, "ns.example.test", ips=[NETSTACK])
    certs.write_pem(tmp_path / "server.pem", cert)
    certs.write_pem(tmp_path / "server.key", None, key)
    if engine == "netstack":
        tls: object = TLSConfig.server(tmp_path / "server.pem", tmp_path / "server.key")
    else:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(tmp_path / "server.pem", tmp_path / "server.key")
    async with await serve(tap_stack, ZONE, tls=tls) as server:
        out = await dig(tap_netns, "+tls", "+padding=468", "web.example.test", "A")
        assert status(out) == "NOERROR" and "198.18.0.80" in section(out, "ANSWER")
        assert "PAD:" in opt_section(out), out
        size = re.search(r"MSG SIZE\s+rcvd: (\d+)", out)
        assert size is not None and int(size.group(1)) % 468 == 0
        out = await dig(tap_netns, "+tls", "web.example.test", "A")
        assert (
            status(out) == "NOERROR"
            and "PAD:" not in opt_section(out)
            and "EDNS" in opt_section(out)
        )
        # The same padded query in cleartext: no padding.
        out = await dig(tap_netns, "+padding=468", "web.example.test", "A")
        assert (
            status(out) == "NOERROR"
            and "PAD:" not in opt_section(out)
            and "EDNS" in opt_section(out)
        )
        assert server.stats()["tls_queries"] == 2


async def test_dig_over_the_rate_limit_gets_tc_and_goes_on_over_tcp(
    tap_netns: TapSandbox, tap_stack: Stack
) -> None:
    # Past the limit the answer slips (TC=1, nothing else): dig, as a real client, asks again
    # over TCP and gets the answer there, where no rate limit applies.
    require_program("dig")
    async with await serve(tap_stack, ZONE, rate=0.001, burst=1.0, slip=1) as server:
        out = await dig(tap_netns, "+notcp", "web.example.test", "A")
        assert status(out) == "NOERROR" and "tc" not in flags(out)
        out = await dig(tap_netns, "+notcp", "+ignore", "web.example.test", "A")
        assert status(out) == "NOERROR" and "tc" in flags(out)
        assert not section(out, "ANSWER")
        out = await dig(tap_netns, "+notcp", "web.example.test", "A")
        assert "Truncated, retrying in TCP mode" in out
        assert status(out) == "NOERROR" and "198.18.0.80" in section(out, "ANSWER")
        stats = server.stats()
        assert stats["slipped"] == 2 and stats["tcp_queries"] == 1


SLOW_LORIS = """
import socket, sys, time
n, wait = int(sys.argv[1]), float(sys.argv[2])
conns = []
for _ in range(n):
    s = socket.create_connection(("198.18.0.2", 53), timeout=5)
    s.sendall(b"\\x01")  # the length prefix's first byte, and no more
    s.setblocking(False)
    conns.append(s)

def closed(s):
    try:
        return s.recv(1, socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True

time.sleep(0.3)
print("closed_at_once", sum(map(closed, conns)))
end = time.monotonic() + wait
while time.monotonic() < end and not all(map(closed, conns)):
    time.sleep(0.1)
print("still_open", sum(not closed(s) for s in conns))
"""


async def test_kernel_slow_loris_connections_are_capped_and_closed(
    tap_netns: TapSandbox, dns_server: DnsServer
) -> None:
    # Thirty kernel TCP connections, each stuck after one byte of a message: only the
    # per-client cap is served, those meet their message deadline, and dig gets in after.
    require_program("dig")
    dns_server.tcp_max_per_client = 8
    dns_server.tcp_message_timeout = 4.0
    out = await in_netns(tap_netns, sys.executable, "-c", SLOW_LORIS, "30", "10")
    counts = dict(line.split() for line in out.splitlines() if line)
    assert int(counts["closed_at_once"]) == 22
    assert int(counts["still_open"]) == 0
    stats = dns_server.stats()
    assert stats["tcp_refused"] == 22 and stats["tcp_message_timeouts"] == 8
    assert stats["tcp_open"] == 0
    out = await dig(tap_netns, "+tcp", "web.example.test", "A")
    assert status(out) == "NOERROR"


# -- the netstack resolver against dnsmasq ------------------------------------------------------
BIG = [chr(ord("a") + i) * 200 for i in range(8)]


@pytest.fixture
async def dnsmasq(tap_netns: TapSandbox, tmp_path: Path) -> AsyncIterator[None]:
    binary = require_program("dnsmasq")
    argv = [
        binary, "-k", "--conf-file=/dev/null",
        # PEERS.md: nothing forwarded out of the namespace, no host files.
        "--no-resolv", "--no-hosts", "--bind-interfaces", f"--interface={tap_netns.dev}",
        f"--listen-address={KERNEL}", "--port=53", f"--pid-file={tmp_path / 'dnsmasq.pid'}",
        "--user=root", "--log-facility=-", "--log-queries",
        # Answers for these domains come from here (unknown names: NXDOMAIN); dnsmasq gives
        # its own records a TTL of 0 unless told otherwise, and those are never cached.
        "--local=/peer.test/", "--local=/netstack.test/", "--local-ttl=300",
        "--address=/netstack.test/198.18.0.99",
        "--host-record=host.peer.test,198.18.0.42,fd00:198:18::42",
        "--cname=alias.peer.test,host.peer.test",
        "--mx-host=peer.test,host.peer.test,10",
        "--txt-record=txt.peer.test,hello from dnsmasq",
        "--srv-host=_http._tcp.peer.test,host.peer.test,80,0,5",
        "--txt-record=big.peer.test," + ",".join(BIG),
    ]  # fmt: skip
    async with peer(tap_netns, *argv) as proc:
        try:
            await wait_listening(tap_netns, 53)
        except TimeoutError:
            proc.kill()
            out, err = await proc.communicate()
            pytest.fail(f"dnsmasq did not start:\n{(out + err).decode(errors='replace')}")
        yield


async def test_resolver_against_dnsmasq(tap_stack: Stack, dnsmasq: None) -> None:
    r = Resolver(tap_stack, [KERNEL], timeout=2.0)
    # This stack has only IPv4: RFC 6724 6 puts the unreachable IPv6 address last.
    assert await r.resolve("host.peer.test") == ["198.18.0.42", "fd00:198:18::42"]
    assert await r.resolve("anything.netstack.test", socket.AF_INET) == ["198.18.0.99"]
    alias = await r.resolve_rrset("alias.peer.test", "A")
    assert alias.name == dns.name.from_text("host.peer.test.")
    assert [rd.address for rd in alias] == ["198.18.0.42"]
    mx = await r.resolve_rrset("peer.test", "MX")
    assert [rd.to_text() for rd in mx] == ["10 host.peer.test."]
    txt = await r.resolve_rrset("txt.peer.test", "TXT")
    assert [s.decode() for rd in txt for s in rd.strings] == ["hello from dnsmasq"]
    srv = await r.resolve_rrset("_http._tcp.peer.test", "SRV")
    assert [(rd.port, rd.target.to_text()) for rd in srv] == [(80, "host.peer.test.")]
    ptr = await r.resolve_rrset("198.18.0.42", "PTR")
    assert [rd.target.to_text() for rd in ptr] == ["host.peer.test."]
    with pytest.raises(NameNotFound) as info:
        await r.resolve_rrset("nope.peer.test", "A")
    assert info.value.nxdomain
    stats = r.stats()
    assert stats["drops"] == {} and stats["timeouts"] == 0
    # A second round is answered from the cache.
    sent = stats["udp_sent"]
    assert await r.resolve("host.peer.test") == ["198.18.0.42", "fd00:198:18::42"]
    assert r.stats()["udp_sent"] == sent


async def test_resolver_falls_back_to_tcp_with_dnsmasq(tap_stack: Stack, dnsmasq: None) -> None:
    # About 1.6 kB of TXT: over the 1232 bytes offered, so truncated; then over TCP.
    r = Resolver(tap_stack, [KERNEL], timeout=3.0)
    txt = await r.resolve_rrset("big.peer.test", dns.rdatatype.TXT)
    assert [s.decode() for rd in txt for s in rd.strings] == BIG
    stats = r.stats()
    assert stats["truncated"] == 1 and stats["tcp_sent"] == 1
    # Without EDNS the limit is 512 bytes; the answer still arrives, over TCP.
    plain = Resolver(tap_stack, [KERNEL], edns=False)
    txt = await plain.resolve_rrset("big.peer.test", "TXT")
    assert len(txt) == 1 and plain.stats()["tcp_sent"] == 1


async def test_resolver_times_out_without_a_server(tap_stack: Stack, tap_netns: TapSandbox) -> None:
    # Nothing listens on port 53 in the namespace: the kernel answers ICMP port
    # unreachable, and the resolver gives up at once rather than after its timeouts.
    r = Resolver(tap_stack, [KERNEL], timeout=5.0, attempts=2)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(r.resolve_rrset("host.peer.test", "A"), 4.0)
    assert r.stats()["network_errors"] == 1
