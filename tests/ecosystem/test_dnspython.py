"""dnspython's asyncio API on netstack through ``netstack.use``, as its documentation shows it:
``dns.asyncresolver.Resolver`` with its name servers set, and ``dns.asyncquery.udp`` /
``tcp`` / ``udp_with_fallback`` (dnspython's asyncio backend opens UDP endpoints and TCP
streams on the loop); against netstack's own DNS server (``netstack.dns.serve``) on the other
stack in memory, and against dnsmasq in a namespace over TAP. No glue beyond the switch."""

from __future__ import annotations

import asyncio
from pathlib import Path

import dns.asyncquery
import dns.asyncresolver
import dns.flags
import dns.message
import dns.rcode
import dns.resolver
import pytest
from conftest import SERVER_IP, STEP, Kernel, Net

import netstack
import netstack.dns

#: Too long for a UDP answer of dnspython's default size: truncated, then asked over TCP.
BIG = ['"' + chr(ord("a") + i) * 200 + '"' for i in range(12)]
ZONE = f"""$ORIGIN example.test.
$TTL 300
@      SOA   ns hostmaster 1 3600 600 86400 300
@      NS    ns
@      MX    10 mail
ns     A     {SERVER_IP}
www    A     198.18.0.80
www    AAAA  fd00::80
web    CNAME www
big    TXT   {" ".join(BIG)}
"""


def resolver() -> dns.asyncresolver.Resolver:
    r = dns.asyncresolver.Resolver(configure=False)
    r.nameservers = [SERVER_IP]
    return r


async def test_async_resolver(net: Net) -> None:
    server = await netstack.dns.serve(net.server, ZONE)
    try:
        async with asyncio.timeout(STEP):
            with netstack.use(net.client):
                r = resolver()
                answer = await r.resolve("www.example.test", "A")
                assert [rd.address for rd in answer] == ["198.18.0.80"]
                answer = await r.resolve("web.example.test", "AAAA")  # through the CNAME
                assert answer.canonical_name.to_text() == "www.example.test."
                assert [rd.address for rd in answer] == ["fd00::80"]
                answer = await r.resolve("example.test", "MX")
                assert [rd.to_text() for rd in answer] == ["10 mail.example.test."]
                answer = await r.resolve("big.example.test", "TXT")
                assert [s.decode() for rd in answer for s in rd.strings] == [
                    b.strip('"') for b in BIG
                ]  # fmt: skip
                with pytest.raises(dns.resolver.NXDOMAIN):
                    await r.resolve("nowhere.example.test", "A")
    finally:
        server.close()
    stats = server.stats()
    assert stats["truncated"] >= 1 and stats["tcp_queries"] >= 1  # TC, then TCP


async def test_asyncquery(net: Net) -> None:
    server = await netstack.dns.serve(net.server, ZONE)
    try:
        async with asyncio.timeout(STEP):
            with netstack.use(net.client):
                query = dns.message.make_query("www.example.test", "A")
                for send in (dns.asyncquery.udp, dns.asyncquery.tcp):
                    response = await send(query, SERVER_IP, timeout=5)
                    assert response.flags & dns.flags.AA
                    assert response.answer[0].to_text() == (
                        "www.example.test. 300 IN A 198.18.0.80"
                    )  # fmt: skip
                big = dns.message.make_query("big.example.test", "TXT")
                truncated = await dns.asyncquery.udp(big, SERVER_IP, timeout=5)
                assert truncated.flags & dns.flags.TC
                response, used_tcp = await dns.asyncquery.udp_with_fallback(
                    big, SERVER_IP, timeout=5
                )  # fmt: skip
                assert used_tcp and len(response.answer[0][0].strings) == len(BIG)
    finally:
        server.close()


@pytest.mark.peers
async def test_resolver_against_dnsmasq(kernel: Kernel, tmp_path: Path) -> None:
    """dnspython's resolver on a stack on the TAP device asks dnsmasq in the namespace."""
    from netstack.testing import require_program

    dnsmasq = (
        require_program("dnsmasq"), "-k", "--conf-file=/dev/null",
        # PEERS.md: nothing forwarded out of the namespace, no host files.
        "--no-resolv", "--no-hosts", "--bind-interfaces", f"--interface={kernel.sandbox.dev}",
        f"--listen-address={kernel.ip}", f"--pid-file={tmp_path / 'dnsmasq.pid'}",
        "--user=root", "--local=/peer.test/",
        "--host-record=host.peer.test,198.18.0.42,fd00:198:18::42",
        "--txt-record=big.peer.test," + ",".join(b.strip('"') for b in BIG),
    )  # fmt: skip
    async with kernel.start(*dnsmasq, port=53):
        with netstack.use(kernel.stack):
            r = dns.asyncresolver.Resolver(configure=False)
            r.nameservers = [kernel.ip]
            answer = await r.resolve("host.peer.test", "AAAA")
            assert [rd.address for rd in answer] == ["fd00:198:18::42"]
            answer = await r.resolve("big.peer.test", "TXT")  # truncated, then TCP
            assert len(answer[0].strings) == len(BIG)
            with pytest.raises(dns.resolver.NXDOMAIN):
                await r.resolve("nothing.peer.test", "A")
            query = dns.message.make_query("host.peer.test", "A")
            response = await dns.asyncquery.tcp(query, kernel.ip, timeout=5)
            assert response.rcode() == dns.rcode.NOERROR
            assert response.answer[0][0].address == "198.18.0.42"
