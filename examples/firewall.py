"""A firewall between clients and their uplink, as MirageOS's QubesOS firewall: netstack routes,
masquerades and filters with a rule file (examples/firewall.rules) and serves DHCP and DNS to
the clients, each client network on a TAP device of its own (as QubesOS gives each client VM
its own interface). All sides are Linux kernels in network namespaces of their own.

    sudo python examples/firewall.py          (root: TAP devices and namespaces)

    client namespace                       netstack                      uplink namespace
    kernel, address by DHCP  --TAP--  eth0 198.18.1.1/24         --TAP--  kernel 198.18.2.1/24
    (busybox udhcpc), IPv6 by SLAAC        fd00:1::1/64                   fd00:2::1/64
                                      uplink 198.18.2.2/24               python -m http.server
    "work" client namespace                  fd00:2::2/64                on 80, 8080 and 8081
    kernel, address by DHCP  --TAP--  work 198.18.3.1/24                 (and 80 over IPv6);
                                      DHCP, DNS lan.test, NAT,           dnsmasq (uplink.test)
                                      router advertisements

The uplink has no route to the clients' IPv4 networks: whatever reaches it came through the
masquerade; IPv6 is routed untranslated through the same rules. The clients' own tools (curl,
ping, dig, Python sockets) try each flow, and the program prints what happened, what the
servers saw and the firewall's per-rule counters, then its own resident memory. Last, the
rule file is reloaded while a connection is open (as ``netstack firewall`` does on SIGHUP),
without the rule that let it start: the connection goes on, a new one is refused. Every wait
is bounded; the namespaces are deleted at the end.

Exits 0 when every flow went as the rules say.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import netstack
import netstack.firewall
from netstack.link import Link
from netstack.netns import Namespace, open_tap_in_namespace

HERE = Path(__file__).resolve().parent
SERVER = "198.18.2.1"
SERVER6 = "fd00:2::1"
#: Run in a client's namespace: ``persist HOST PORT DIR`` opens a TCP connection, says so
#: (the file DIR/connected), waits for DIR/go, then asks for / over it and prints the answer's
#: status line (bounded: 20 s).
PERSIST = """
import pathlib, socket, sys, time
host, port, folder = sys.argv[1], int(sys.argv[2]), pathlib.Path(sys.argv[3])
s = socket.create_connection((host, port), timeout=5)
(folder / "connected").write_text("yes")
deadline = time.monotonic() + 20
while not (folder / "go").exists() and time.monotonic() < deadline:
    time.sleep(0.05)
s.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n")
print(s.makefile("rb").readline().decode().strip())
"""
#: Run in the client's namespace: ``probe tcp|udp HOST PORT`` tries a connection (TCP) or sends
#: a datagram (UDP) and says what came back: "answered", "refused" (a TCP reset, or the ICMP
#: port unreachable that crossed the masquerade back) or "no answer" (after 3 s).
PROBE = """
import socket, sys
proto, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
s.settimeout(3)
try:
    s.connect((host, port))
    if proto == "udp":
        s.send(b"anyone?")
        s.recv(100)
    print("answered")
except ConnectionRefusedError:
    print("refused")
except TimeoutError:
    print("no answer")
"""


def resident_mb() -> float:
    """This process's resident memory (VmRSS), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def run(ns: Namespace, *argv: str, timeout: float = 20.0) -> tuple[int, str]:
    """A command in ``ns`` (without blocking the loop the firewall runs on): exit status and
    output."""
    done = await ns.arun(*argv, check=False, timeout=timeout)
    return done.returncode, (done.stdout + done.stderr).strip()


async def dhcp_client(client: Namespace, dev: str, work: Path) -> str:
    """busybox udhcpc in the client namespace, configuring the kernel with the lease."""
    script = work / "udhcpc.sh"
    script.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = bound ]; then\n'
        '  ip addr add "$ip/$mask" dev "$interface"\n'
        '  ip route add default via "$router"\n'
        '  echo "leased $ip router $router dns $dns domain $domain"\n'
        "fi\n"
    )
    script.chmod(0o755)
    status, out = await run(
        client, "busybox", "udhcpc", "-i", dev, "-n", "-q", "-f", "-s", str(script),
        "-t", "5", "-T", "1", timeout=30,
    )  # fmt: skip
    lease = next((ln for ln in out.splitlines() if ln.startswith("leased")), None)
    if status != 0 or lease is None:
        raise RuntimeError(f"udhcpc got no lease: {out}")
    return lease


async def slaac_address(ns: Namespace, dev: str, prefix: str, timeout: float = 20.0) -> str:
    """The kernel's SLAAC address in ``prefix`` (from the firewall's router advertisements),
    once it has one and a default route through the firewall."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    out = routes = ""
    while loop.time() < deadline:
        _, out = await run(ns, "ip", "-6", "-o", "addr", "show", "dev", dev, "scope", "global")
        _, routes = await run(ns, "ip", "-6", "route", "show", "default")
        for line in out.splitlines():
            words = line.split()
            address = words[words.index("inet6") + 1].split("/")[0]
            if address.startswith(prefix) and "tentative" not in line and "via fe80::" in routes:
                return address
        await asyncio.sleep(0.2)
    return f"none: {out} {routes}"


@dataclass
class Network:
    """The firewall between the namespaces, and what the uplink's web servers log."""

    fw: netstack.firewall.Firewall
    client: Namespace
    client_dev: str
    uplink: Namespace
    logs: dict[int, Path]
    work: Path
    #: The second client network's namespace and device ("work" in the rules).
    client2: Namespace
    client2_dev: str
    rules: str


@contextlib.asynccontextmanager
async def network(
    work: Path, wrap: Callable[[Link], Link] = lambda link: link
) -> AsyncIterator[Network]:
    """Build the two namespaces, the servers and the firewall (each link passed through
    ``wrap``: a test records them); delete everything afterwards."""
    with Namespace.create() as client, Namespace.create() as uplink, \
            Namespace.create() as client2:  # fmt: skip
        lan_link = open_tap_in_namespace(client, kernel_ipv4=None, kernel_ipv6=None)
        up_link = open_tap_in_namespace(uplink, kernel_ipv4=f"{SERVER}/24",
                                        kernel_ipv6=f"{SERVER6}/64")  # fmt: skip
        work_link = open_tap_in_namespace(client2, kernel_ipv4=None, kernel_ipv6=None)
        uplink_dev = up_link.name
        rules = (HERE / "firewall.rules").read_text()
        fw = await netstack.firewall.start(
            wrap(lan_link), wrap(up_link), lan="198.18.1.1/24", uplink="198.18.2.2/24",
            gateway=SERVER, rules=rules, domain="lan.test", lan6="fd00:1::1/64",
            uplink6="fd00:2::2/64", gateway6=SERVER6,
            clients=[netstack.firewall.ClientNetwork(wrap(work_link), "198.18.3.1/24",
                                                     name="work")],
        )  # fmt: skip
        try:
            # The uplink's servers: the web on three ports (each logs who asked), a DNS server.
            (work / "www").mkdir()
            (work / "www" / "index.html").write_text("hello from the uplink\n")
            logs = {}
            for port in (80, 8080, 8081):
                logs[port] = work / f"http-{port}.log"
                uplink.popen(
                    sys.executable, "-m", "http.server", "-b", SERVER, "-d", str(work / "www"),
                    str(port), stdout=logs[port].open("w"), stderr=subprocess.STDOUT,
                )  # fmt: skip
            logs[6] = work / "http-ipv6.log"  # the web over IPv6, on port 80 too
            uplink.popen(
                sys.executable, "-m", "http.server", "-b", SERVER6, "-d", str(work / "www"),
                "80", stdout=logs[6].open("w"), stderr=subprocess.STDOUT,
            )  # fmt: skip
            uplink.popen(
                "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv",
                "--no-hosts", "--bind-interfaces", f"--interface={uplink_dev}",
                "--user=root", "--pid-file=", f"--host-record=www.uplink.test,{SERVER}",
                "--log-queries", f"--log-facility={work / 'dnsmasq.log'}",
            )  # fmt: skip
            # The clients' IPv6 prefix is routed to the firewall (as an ISP routes a
            # customer's); their IPv4 networks are not: only the masquerade reaches the uplink.
            uplink.ip("-6", "route", "add", "fd00:1::/64", "via", "fd00:2::2")
            await wait_listening(uplink, [80, 8080, 8081, 53])
            yield Network(fw, client, lan_link.name, uplink, logs, work, client2,
                          work_link.name, rules)  # fmt: skip
        finally:
            await fw.close()


async def flows(net: Network) -> AsyncIterator[tuple[str, str, bool]]:
    """Each flow the client tries: (what, what happened, whether the rules say so)."""
    client = net.client
    yield "dhcp", await dhcp_client(client, net.client_dev, net.work), True
    status, out = await run(client, "dig", "+short", "+time=2", "+tries=2",
                            "@198.18.1.1", "firewall.lan.test")  # fmt: skip
    yield "dns from the firewall (firewall.lan.test)", out, out == "198.18.1.1"
    status, out = await run(client, "dig", "+short", "+time=2", "+tries=2",
                            f"@{SERVER}", "www.uplink.test")  # fmt: skip
    yield "dns through the NAT (www.uplink.test at the uplink)", out, out == SERVER
    status, out = await run(client, "ping", "-c", "3", "-i", "0.2", "-W", "2", SERVER)
    summary = next((ln for ln in out.splitlines() if "received" in ln), out)
    yield "ping the uplink", summary, status == 0
    status, out = await run(client, "ping", "-c", "1", "-t", "1", "-W", "2", SERVER)
    first = next((ln for ln in out.splitlines() if "From" in ln), out)
    yield ("ping -t 1 (time exceeded from the firewall)", first,
           "198.18.1.1" in first and "Time to live exceeded" in first)  # fmt: skip

    status, out = await run(client, "curl", "-sS", "--max-time", "10", f"http://{SERVER}/")
    yield "curl http://198.18.2.1/", out, out == "hello from the uplink"
    await asyncio.sleep(0.2)  # the server's log line
    requests = [ln for ln in net.logs[80].read_text().splitlines() if '"GET ' in ln]
    seen = requests[0].split(" ", 1)[0] if requests else "nobody"
    yield "the web server saw the client as", seen, seen == "198.18.2.2"
    status, out = await run(client, "curl", "-sS", "--connect-timeout", "3",
                            f"http://{SERVER}:8080/")  # fmt: skip
    yield "curl port 8080 (reject)", out, status == 7  # failed at once: a reset
    status, out = await run(client, "curl", "-sS", "--connect-timeout", "3",
                            f"http://{SERVER}:8081/")  # fmt: skip
    yield "curl port 8081 (drop)", out, status == 28  # timed out
    for proto, port, expected in (("tcp", 8080, "refused"), ("tcp", 8081, "no answer"),
                                  ("udp", 9999, "refused")):  # fmt: skip
        status, out = await run(client, sys.executable, "-c", PROBE, proto, SERVER, str(port))
        yield f"{proto} port {port} from a socket", out, out == expected
    denied = sum('"GET ' in net.logs[p].read_text() for p in (8080, 8081))
    yield "requests the servers on 8080 and 8081 saw", str(denied), denied == 0
    status, out = await run(client, "curl", "-sS", "--connect-timeout", "3",
                            "http://198.18.1.1:80/")  # fmt: skip
    yield "curl the firewall itself (input policy drop)", out, status == 28

    # The second client network: a link, a subnet, a DHCP pool and rules of its own.
    client2 = net.client2
    lease = await dhcp_client(client2, net.client2_dev, net.work)
    yield "dhcp on the work network", lease, "198.18.3.100 router 198.18.3.1" in lease
    status, out = await run(client2, "curl", "-sS", "--max-time", "10", f"http://{SERVER}/")
    yield "work: curl http://198.18.2.1/", out, out == "hello from the uplink"
    status, out = await run(client2, "ping", "-c", "1", "-W", "2", SERVER)
    yield "work: ping the uplink (only eth0 may)", f"exit status {status}", status == 1

    # IPv6: SLAAC from the firewall's advertisements, then routed untranslated.
    mine = await slaac_address(client, net.client_dev, "fd00:1:")
    yield "IPv6 address by SLAAC", mine, mine.startswith("fd00:1:")
    status, out = await run(client, "ping", "-6", "-c", "2", "-i", "0.2", "-W", "2", SERVER6)
    summary = next((ln for ln in out.splitlines() if "received" in ln), out)
    yield "ping -6 the uplink", summary, status == 0
    status, out = await run(client, "curl", "-sS", "--max-time", "10", f"http://[{SERVER6}]/")
    yield f"curl http://[{SERVER6}]/", out, out == "hello from the uplink"
    await asyncio.sleep(0.2)
    requests = [ln for ln in net.logs[6].read_text().splitlines() if '"GET ' in ln]
    seen = requests[0].split(" ", 1)[0] if requests else "nobody"
    yield "the IPv6 web server saw the client as (no NAT)", seen, seen == mine
    status, out = await run(client, "dig", "+short", "+time=2", "+tries=2", "@fd00:1::1",
                            "firewall.lan.test")  # fmt: skip
    yield "dns from the firewall over IPv6", out, out == "198.18.1.1"

    # The rule file reloaded while a connection is open, without the rule that let it start:
    # the connection goes on (its flow is tracked: established), a new one is dropped.
    folder = net.work / "persist"
    folder.mkdir()
    held = asyncio.ensure_future(
        run(client, sys.executable, "-c", PERSIST, SERVER, "80", str(folder), timeout=30)
    )
    for _ in range(200):
        if (folder / "connected").exists() or held.done():
            break
        await asyncio.sleep(0.05)
    without_web = "\n".join(ln for ln in net.rules.splitlines() if "# the web" not in ln)
    net.fw.reload(without_web)
    status, out = await run(client, "curl", "-sS", "--connect-timeout", "3",
                            f"http://{SERVER}/")  # fmt: skip
    yield "after the reload, a new connection (dropped)", out, status == 28
    (folder / "go").write_text("go")
    status, out = await held
    yield "after the reload, the connection opened before", out, out.startswith("HTTP/1.0 200")


async def main() -> int:
    for program in ("busybox", "curl", "dig", "dnsmasq", "ping"):
        if shutil.which(program) is None:
            print(f"{program} is needed", file=sys.stderr)
            return 2
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        async with network(Path(tmp)) as net:
            async for label, outcome, good in flows(net):
                ok &= good
                print(f"{label}: {outcome}{'' if good else '   <-- not as the rules say'}",
                      flush=True)  # fmt: skip
            fw = net.fw
            for side in fw.clients:
                leases = [(r.address, r.mac) for r in side.dhcp.leases]
                print(f"firewall DHCP leases on {side.interface.name}: {leases}")
            netfilter = fw.stack.stats()["netfilter"]
            print(f"NAT mappings made: {netfilter['nat']['mappings_created']}")
            for counter in fw.stack.filter.counters():
                if counter["packets"]:
                    rule = counter["rule"]
                    print(f"  {counter['chain']:7} {rule.action:6} {counter['packets']:4} "
                          f"packets  {rule.comment}")  # fmt: skip
            print(f"firewall resident memory: {resident_mb():.1f} MiB", flush=True)
    print("all flows as the rules say" if ok else "some flows not as the rules say")
    return 0 if ok else 1


async def wait_listening(ns: Namespace, ports: list[int], timeout: float = 10.0) -> None:
    """Until something in ``ns`` listens on each port (TCP, or UDP for 53)."""
    async with asyncio.timeout(timeout):
        for port in ports:
            flags = "-Hlun" if port == 53 else "-Hltn"
            while not (await ns.arun("ss", flags, f"sport = :{port}")).stdout.strip():
                await asyncio.sleep(0.05)


if __name__ == "__main__":
    sys.exit(netstack.run(main()))
