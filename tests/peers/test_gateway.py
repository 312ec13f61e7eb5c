"""The user-mode gateway (netstack.gateway) against the kernel's own clients (PEERS.md).

Two namespaces: the guest, whose only device is the gateway's TAP link, and the "host", where
the gateway's host sockets are made (this test's thread runs inside it for the duration:
``Namespace.entered``) and where the services listen on 198.18.5.1 (lo): python's
http.server, dnsmasq, a UDP echo, a sha256 sink. The host namespace has no other device and
no route: nothing leaves the machine.

From the guest's kernel: its address from netstack's DHCP server (busybox udhcpc) and SLAAC
from its Router Advertisements; curl to the host's server by address; dig through the
gateway's DNS address to dnsmasq; a UDP round trip; ping; a refused port is ECONNREFUSED for
curl; a network the host cannot reach is ENETUNREACH; 8 MB each way with sha256, the upload
half-closed before the answer comes back; a port forward from the host into a guest server.
"""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
from test_firewall import load_example

import netstack.gateway
from netstack.netns import Namespace, open_tap_in_namespace
from netstack.testing import require_net_admin, require_program

pytestmark = pytest.mark.peers

SERVER = "198.18.5.1"

#: In the host namespace: UDP echo on 7; on 9000 a TCP sink that reads to EOF, then answers
#: with the sha256 and length of what it read (the guest half-closed first).
HOST_SERVICES = """
import asyncio, hashlib, sys
class Echo(asyncio.DatagramProtocol):
    def connection_made(self, t): self.t = t
    def datagram_received(self, d, a): self.t.sendto(b"echo " + d, a)
async def sink(r, w):
    h, n = hashlib.sha256(), 0
    while d := await r.read(65536):
        h.update(d); n += len(d)
    w.write(f"{h.hexdigest()} {n}".encode()); await w.drain(); w.close()
async def main():
    loop = asyncio.get_running_loop()
    await loop.create_datagram_endpoint(Echo, local_addr=(sys.argv[1], 7))
    await asyncio.start_server(sink, sys.argv[1], 9000)
    print("ready", flush=True)
    await asyncio.sleep(120)
asyncio.run(main())
"""

#: In the guest: send N seeded bytes to HOST:9000, shut down the write side, print the
#: sink's answer and the sha256 of what was sent.
UPLOAD = """
import hashlib, random, socket, sys
data = random.Random(7).randbytes(int(sys.argv[2]))
s = socket.create_connection((sys.argv[1], 9000), timeout=30)
s.sendall(data)
s.shutdown(socket.SHUT_WR)
answer = b""
while chunk := s.recv(4096):
    answer += chunk
print(answer.decode(), hashlib.sha256(data).hexdigest(), len(data))
"""

UDP_PROBE = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
s.sendto(b"hello", (sys.argv[1], 7))
data, addr = s.recvfrom(100)
print(data.decode(), addr[0])
"""


async def run(ns: Namespace, *argv: str, timeout: float = 30.0) -> tuple[int, str]:
    done = await ns.arun(*argv, check=False, timeout=timeout)
    return done.returncode, (done.stdout + done.stderr).strip()


async def wait_listening(ns: Namespace, specs: list[tuple[str, int]]) -> None:
    async with asyncio.timeout(15):
        for proto, port in specs:
            flags = "-Hlun" if proto == "udp" else "-Hltn"
            while not (await ns.arun("ss", flags, f"sport = :{port}")).stdout.strip():
                await asyncio.sleep(0.05)


async def test_gateway_between_kernels(tmp_path: Path) -> None:
    require_net_admin()
    for program in ("busybox", "curl", "dig", "dnsmasq", "ping", "ss"):
        require_program(program)
    www = tmp_path / "www"
    www.mkdir()
    (www / "index.html").write_text("hello from the host\n")
    big = (www / "big").open("wb")
    big.write(bytes(range(256)) * (8 * 4096))  # 8 MiB
    big.close()
    big_sha = hashlib.sha256((www / "big").read_bytes()).hexdigest()
    with Namespace.create() as guest, Namespace.create() as host:
        host.ip("addr", "add", f"{SERVER}/32", "dev", "lo")
        host.popen(sys.executable, "-m", "http.server", "-b", SERVER, "-d", str(www), "80",
                   stdout=(tmp_path / "http.log").open("w"), stderr=subprocess.STDOUT)  # fmt: skip
        host.popen(
            "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv",
            "--no-hosts", "--bind-interfaces", "--interface=lo", f"--listen-address={SERVER}",
            "--user=root", "--pid-file=", f"--host-record=www.host.test,{SERVER}",
        )  # fmt: skip
        host.popen(sys.executable, "-c", HOST_SERVICES, SERVER)
        await wait_listening(host, [("tcp", 80), ("udp", 53), ("udp", 7), ("tcp", 9000)])
        with host.entered():
            link = open_tap_in_namespace(guest, kernel_ipv4=None, kernel_ipv6=None)
            dev = link.name
            gw = await netstack.gateway.start(
                link, network="198.19.0.0/24", ipv6="fd00:198:19::/64", dns_servers=[SERVER],
                forwards=["tcp:8080:8000"],
            )  # fmt: skip
            try:
                results = await flows(guest, host, dev, tmp_path, big_sha)
                stats = gw.stats()
            finally:
                await gw.close()
    bad = {k: v for k, (v, good) in results.items() if not good}
    assert bad == {}, results
    assert stats["tcp_flows"] == 3 and stats["tcp_connect_failed"] == 2, stats
    assert stats["udp_flows"] >= 1 and stats["dns_answers"] >= 1, stats
    assert stats["echo_replies"] == 2 and stats["forward_connections"] == 1, stats
    assert stats["internal_errors"] == 0 and stats["stack"]["stack"]["internal_errors"] == 0


async def flows(
    guest: Namespace, host: Namespace, dev: str, work: Path, big_sha: str
) -> dict[str, tuple[str, bool]]:
    out: dict[str, tuple[str, bool]] = {}
    # busybox udhcpc configures the kernel with the lease (the firewall example's client).
    text = await load_example().dhcp_client(guest, dev, work)
    out["dhcp"] = (text, "leased 198.19.0.100 router 198.19.0.2 dns 198.19.0.3" in text)
    slaac = ""
    for _ in range(100):
        _, slaac = await run(guest, "ip", "-6", "addr", "show", "dev", dev, "scope", "global")
        if "fd00:198:19:" in slaac:
            break
        await asyncio.sleep(0.1)
    out["slaac"] = (slaac, "fd00:198:19:" in slaac)

    status, text = await run(guest, "curl", "-sS", "--max-time", "10", f"http://{SERVER}/")
    out["curl"] = (text, text == "hello from the host")
    status, text = await run(guest, "dig", "+short", "+time=3", "+tries=2", "@198.19.0.3",
                             "www.host.test")  # fmt: skip
    out["dig through the gateway"] = (text, text == SERVER)
    status, text = await run(guest, sys.executable, "-c", UDP_PROBE, SERVER)
    out["udp round trip"] = (text, text == f"echo hello {SERVER}")
    status, text = await run(guest, "ping", "-c", "2", "-i", "0.3", "-W", "3", SERVER)
    out["ping"] = (text.splitlines()[-2] if text else text, status == 0)
    status, text = await run(guest, "curl", "-sS", "--connect-timeout", "5",
                             f"http://{SERVER}:81/")  # fmt: skip
    out["refused port"] = (text, status == 7 and "Couldn't connect" in text)
    status, text = await run(guest, sys.executable, "-c",
                             "import socket\ntry:\n socket.create_connection(('198.18.6.1', 80), 5)"
                             "\nexcept OSError as e: print(e.errno)")  # fmt: skip
    out["unreachable network"] = (text, text == "101")  # ENETUNREACH

    status, text = await run(guest, "sh", "-c",
                             f"curl -sS --max-time 60 http://{SERVER}/big | sha256sum")  # fmt: skip
    out["download 8 MiB"] = (text, text.split()[0] == big_sha if text else False)
    status, text = await run(guest, sys.executable, "-c", UPLOAD, SERVER, str(8 << 20),
                             timeout=60)  # fmt: skip
    words = text.split()
    out["upload 8 MiB, half-closed"] = (
        text, len(words) == 4 and words[0] == words[2] and words[1] == words[3] == str(8 << 20),
    )  # fmt: skip

    # A port forward: the host's 8080 to the guest's server on 8000.
    (work / "guestwww").mkdir()
    (work / "guestwww" / "index.html").write_text("hello from the guest\n")
    guest.popen(sys.executable, "-m", "http.server", "-b", "0.0.0.0", "-d",
                str(work / "guestwww"), "8000", stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL)  # fmt: skip
    await wait_listening(guest, [("tcp", 8000)])
    status, text = await run(host, "curl", "-sS", "--max-time", "10", "http://127.0.0.1:8080/")
    out["port forward into the guest"] = (text, text == "hello from the guest")
    return out


def test_rootless_gateway_without_privilege(tmp_path: Path) -> None:
    """``netstack gateway --rootless`` as an unprivileged user (uid 65534): the guest is a user
    and network namespace that user makes (``unshare --user --map-root-user --net``), the TAP
    device is made inside it by the forked helper and passed out over a unix socket, and the
    guest's curl reaches a server in the host namespace through the gateway.

    /dev/net/tun is mode 0600 on some machines (0666 is the usual): the command then runs in a
    private mount namespace with a 0666 node of its own for the same device, which changes
    nothing outside it. Root is needed only for that setup and for the host namespace."""
    require_net_admin()
    for program in ("unshare", "setpriv", "mknod", "nsenter", "curl"):
        require_program(program)
    www = tmp_path / "www"
    www.mkdir()
    www.chmod(0o755)
    tmp_path.chmod(0o755)
    (www / "index.html").write_text("hello from the host\n")
    (www / "index.html").chmod(0o644)
    with Namespace.create() as host:
        host.ip("addr", "add", f"{SERVER}/32", "dev", "lo")
        host.popen(sys.executable, "-m", "http.server", "-b", SERVER, "-d", str(www), "80",
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        script = (
            "mount -t tmpfs -o mode=755 tmpfs /dev/net && mknod -m 666 /dev/net/tun c 10 200 "
            f"&& exec ip netns exec {host.name} setpriv --reuid=65534 --regid=65534 "
            f"--clear-groups -- {sys.executable} -m netstack gateway --rootless --no-ipv6 "
            "--for 60"
        )
        proc = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd="/",
        )  # fmt: skip
        try:
            assert proc.stdout is not None
            first = proc.stdout.readline()
            assert first.startswith("guest: process "), first + proc.stderr.read()  # type: ignore[union-attr]
            pid = first.split()[2]
            ready = proc.stdout.readline()
            assert "netstack gateway: process" in ready, ready
            owner = subprocess.run(["ps", "-o", "uid=", "-p", str(proc.pid)],
                                   capture_output=True, text=True)  # fmt: skip
            assert owner.stdout.strip() == "65534", owner
            got = subprocess.run(
                ["nsenter", "--target", pid, "--net", "curl", "-sS", "--max-time", "10",
                 f"http://{SERVER}/"], capture_output=True, text=True, timeout=30,
            )  # fmt: skip
            assert got.stdout == "hello from the host\n", got
        finally:
            proc.send_signal(2)
            out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "relayed 1 TCP flows" in out, out
