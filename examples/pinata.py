"""The Piñata: a TLS bounty server holding a secret, as MirageOS's Bitcoin Piñata held the key
to a bitcoin wallet and handed it to anyone who could open a TLS connection with a client
certificate its own CA had signed. Here on netstack's own TLS 1.3, on an in-memory network.

    python examples/pinata.py         (needs the tls extra: pip install 'netstack[tls]')

The piñata (198.18.0.10) serves TLS on port 443 and asks every client for a certificate. The
key holder has one from the piñata's CA and gets the secret. The others try without a
certificate (netstack's TLS, and OpenSSL through an ssl.SSLContext), with a certificate from
another CA that names the key holder, and with no TLS at all: each is refused. Every frame the
piñata sent or received is recorded, and the secret is never among them in clear.

Exits 0 when only the key holder got the secret and it never crossed the wire in clear.
"""

from __future__ import annotations

import asyncio
import secrets
import ssl
import tempfile
from pathlib import Path
from typing import Any

import netstack
from netstack.link import PcapLink, Switch, read_pcap
from netstack.tls import TLSConfig, certs

PINATA = "198.18.0.10"


async def attempt(stack: netstack.Stack, client_ssl: Any) -> str:
    """Connect to the piñata and say what came back."""
    try:
        reader, writer = await stack.open_connection(
            PINATA, 443, ssl=client_ssl, server_hostname="pinata.test" if client_ssl else None
        )
        if client_ssl is None:  # no TLS: ask in plain text
            writer.write(b"GET /secret HTTP/1.1\r\nHost: pinata.test\r\n\r\n")
        data = await asyncio.wait_for(reader.read(200), 5.0)
        writer.close()
    except (ssl.SSLError, ConnectionError) as exc:
        return f"refused ({type(exc).__name__}: {exc})"
    if not data:
        return "nothing: the piñata closed the connection"
    if data[0] == 21:  # a TLS alert record (RFC 8446 5.1), the answer to bytes that are not TLS
        return f"a TLS alert record ({data[:7].hex(' ')}), then the connection closed"
    return data.decode(errors="replace").strip()


async def main(workdir: Path) -> int:
    ca, ca_key = certs.make_ca("Piñata CA")
    server_cert, server_key = certs.issue(
        ca, ca_key, "pinata.test", dns_names=["pinata.test"], ips=[PINATA]
    )
    holder_cert, holder_key = certs.issue(ca, ca_key, "key holder", client=True)
    rogue_ca, rogue_ca_key = certs.make_ca("Another CA")
    forged_cert, forged_key = certs.issue(rogue_ca, rogue_ca_key, "key holder", client=True)
    certs.write_pem(workdir / "ca.pem", ca)
    secret = secrets.token_hex(16)

    async def bounty(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Only a client whose certificate the piñata's CA signed gets this far.
        subject = dict(x for rdn in writer.get_extra_info("peercert")["subject"] for x in rdn)
        writer.write(f"well done {subject['commonName']}, the secret is {secret}\n".encode())
        await writer.drain()
        writer.close()

    switch = Switch()
    capture = workdir / "pinata.pcap"
    async with await netstack.Stack.open(
        PcapLink(switch.port(), capture), ipv4=f"{PINATA}/24"
    ) as pinata:
        guarded = TLSConfig.server([server_cert], server_key, cafile=[ca], verify_client=True)
        server = await pinata.start_server(bounty, port=443, ssl=guarded)
        openssl = ssl.create_default_context(cafile=str(workdir / "ca.pem"))
        visitors = {
            "key holder (netstack TLS, certificate from the piñata's CA)": TLSConfig.client(
                cafile=[ca], certfile=[holder_cert], keyfile=holder_key
            ),
            "no certificate (netstack TLS)": TLSConfig.client(cafile=[ca]),
            "no certificate (OpenSSL)": openssl,
            "certificate from another CA": TLSConfig.client(
                cafile=[ca], certfile=[forged_cert], keyfile=forged_key
            ),
            "no TLS at all": None,
        }
        winners = []
        for i, (who, client_ssl) in enumerate(visitors.items(), start=11):
            async with await netstack.Stack.open(switch.port(), ipv4=f"198.18.0.{i}/24") as me:
                outcome = await attempt(me, client_ssl)
            print(f"{who}: {outcome}")
            if secret in outcome:
                winners.append(who)
        server.close()
        await server.wait_closed()

    frames = [record.data for record in read_pcap(capture)]
    in_clear = any(secret.encode() in frame for frame in frames)
    print(f"{len(frames)} frames at the piñata; the secret in clear in any: {in_clear}")
    print(f"the secret went to: {', '.join(winners) or 'nobody'}")
    ok = winners == [next(iter(visitors))] and not in_clear
    return 0 if ok else 1


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        raise SystemExit(netstack.run(main(Path(tmp))))
