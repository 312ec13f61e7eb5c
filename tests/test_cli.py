"""The command line: `netstack demo` runs the whole in-memory network and reports it;
`netstack ping --sandbox` pings the kernel in a throwaway namespace."""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from netstack.link import read_pcap
from netstack.testing import require_net_admin


def run_cli(*args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, NETSTACK_LOOP=os.environ.get("NETSTACK_LOOP", "asyncio"))
    return subprocess.run(
        [sys.executable, "-m", "netstack", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def test_demo_reports_every_part(tmp_path: Path) -> None:
    capture = tmp_path / "demo.pcap"
    result = run_cli("demo", "--pcap", str(capture), "--seed", "7")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for expected in (
        "Three dual-stack hosts on an in-memory learning switch",
        "alpha's ARP cache: 198.18.0.2 is at",
        "alpha  -> gamma  3 replies",
        "echoed b'hello from beta'",
        "echoed back intact: True",
        "ConnectionRefusedError",
        "20 pings alpha -> beta over the lossy port",
        "echoed: b'hello over TCP\\n'",
        "after write_eof(): intact True",
        "status: HTTP/1.1 200 OK",
        "port 81 (nobody listens): ConnectionRefusedError",
        "fd00:198:18::1/64            preferred (static)",
        "(link-local)",
        "alpha's neighbour cache: fd00:198:18::2 is at",
        "TCP echo over IPv6 with [fd00:198:18::2]:7: b'hello over TCP/IPv6\\n'",
        "Several interfaces: alpha joins a second network",
        "alpha eth1 (index 2)",
        "ping alpha -> beta    198.18.0.2      out of eth0, from 198.18.0.1:",
        "ping alpha -> epsilon 198.18.2.2      out of eth1, from 198.18.2.1:",
        "ping alpha -> epsilon fd00:198:2::2   out of eth1, from fd00:198:2::1:",
        "%eth1 (link-local, zone):",
        "-> epsilon: b'hello across eth1\\n'",
        "alpha's IPv4 routes: 198.18.0.0/24 eth0, 198.18.2.0/24 eth1",
        "ping beta -> epsilon fd00:198:2::2   through alpha:",
        "TCP echo beta -> epsilon over IPv6: b'routed by alpha\\n'",
        "ping beta -> 198.18.9.9 (alpha has no route): Network is unreachable",
        "delta's lease: 198.18.0.100/24, router 198.18.0.3, name servers 198.18.0.3",
        "delta resolves www.demo.test: 198.18.0.3, fd00:198:18::3",
        "delta -> http://www.demo.test/: HTTP/1.1 200 OK",
        "alpha resolves delta.demo.test (published from the lease): 198.18.0.100",
        "nobody.demo.test: NameNotFound",
        "zeta's lease from the gateway: 198.19.0.100/24, router 198.19.0.2, name server 198.19.0.3",
        "beta saw the request come from 198.18.0.3 (gamma)",
        "zeta resolves www.demo.test through the gateway's DNS: 198.18.0.3",
        "ping zeta -> beta, answered once gamma's own ping was:",
        "zeta -> beta port 9 (gamma's connect refused): ConnectionRefusedError",
        "alpha (netstack TLS, with a certificate): TLSv1.3",
        "the secret is",
        "gamma (netstack TLS, no certificate): refused: CertificateRequired",
        "delta (OpenSSL, no certificate): refused: SSLError",
        "done.",
    ):
        assert expected in out, f"{expected!r} missing from:\n{out}"
    records = list(read_pcap(capture))
    assert len(records) > 50
    assert {r.linktype for r in records} == {1}


def test_demo_is_replayable_from_its_seed() -> None:
    first = run_cli("demo", "--seed", "11").stdout
    second = run_cli("demo", "--seed", "11").stdout
    line = [x for x in first.splitlines() if "over the lossy port" in x]
    assert line and line == [x for x in second.splitlines() if "over the lossy port" in x]


def test_ping_needs_a_target() -> None:
    result = run_cli("ping", "198.18.0.1")
    assert result.returncode == 2
    assert "--sandbox" in result.stdout


@pytest.mark.peers
def test_ping_sandbox() -> None:
    require_net_admin()
    result = run_cli("ping", "--sandbox", "-c", "2", "-i", "0.05")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 transmitted, 2 received, 0% packet loss" in result.stdout


def test_bench_measures_something() -> None:
    result = run_cli("bench", "--seconds", "0.2", "--json")
    assert result.returncode == 0, result.stderr
    import json

    lines = [json.loads(x) for x in result.stdout.splitlines()]
    assert [x["bench"] for x in lines] == ["ping_rtt", "udp_echo", "tcp_bulk"]
    assert all(x["value"] > 0 for x in lines)


def test_serve_needs_a_link() -> None:
    result = run_cli("serve", "--echo", "7")
    assert result.returncode == 2
    assert "--sandbox" in result.stdout


@pytest.mark.peers
def test_serve_sandbox_answers_the_kernel() -> None:
    require_net_admin()
    proc = subprocess.Popen(
        [sys.executable, "-m", "netstack", "serve", "--sandbox", "--echo", "7", "--http", "80",
         "--for", "20"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # faulthandler: a stop that hangs shows where (SIGABRT dumps every thread's stack).
        env=dict(os.environ, NETSTACK_LOOP="asyncio", PYTHONFAULTHANDLER="1"),
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert "serving on 198.18.0.2/24" in first, first
        namespace = first.split("namespace ", 1)[1].split()[0]
        for _ in range(2):
            proc.stdout.readline()  # the echo and HTTP lines: both listen now
        page = subprocess.run(
            ["ip", "netns", "exec", namespace, "curl", "-s", "--max-time", "5",
             "http://198.18.0.2/cli"],
            capture_output=True, text=True, timeout=10,
        )  # fmt: skip
        assert page.stdout == "netstack 0.1.0 served /cli\n", page
        six = subprocess.run(
            ["ip", "netns", "exec", namespace, "curl", "-s", "-g", "--max-time", "5",
             "http://[fd00:198:18::2]/six"],
            capture_output=True, text=True, timeout=10,
        )  # fmt: skip
        assert six.stdout == "netstack 0.1.0 served /six\n", six
        # SIGTERM stops it as Ctrl-C does: the sandbox namespace goes on the way out. Bounded
        # generously: the stop once took more than 10 s with two suites running side by side
        # (the kernel was creating and tearing down their namespaces); should one hang, the
        # failure shows every thread's stack.
        proc.terminate()
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGABRT)
            _, err = proc.communicate(timeout=10)
            pytest.fail(f"netstack serve did not stop on SIGTERM:\n{err}")
        assert proc.returncode == 130, err
        names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert namespace not in names.split(), names
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_firewall_needs_links() -> None:
    result = run_cli("firewall", "--lan-tap", "tap0")
    assert result.returncode == 2
    assert "--sandbox" in result.stdout


def test_firewall_rejects_a_bad_rule_file(tmp_path: Path) -> None:
    rules = tmp_path / "bad.rules"
    rules.write_text("policy forward drop\nforward allow proto tcp\n")
    result = run_cli("firewall", "--lan-tap", "tap0", "--uplink-tap", "tap1", "--rules",
                     str(rules), "--dhcp", "198.18.1.100-198.18.1.120", "--for", "0")  # fmt: skip
    # The rule file is read before any device is opened.
    assert result.returncode == 1, result.stdout + result.stderr
    assert "line 2" in result.stderr, result.stderr


@pytest.mark.parametrize(
    "spec",
    [
        "work",
        "work=tap9",
        "work=tap9,198.18.300.1/24",
        "=tap9,198.18.3.1/24",
        "work=tap9,198.18.3.1/24,fd00::zz",
    ],
)
def test_firewall_rejects_a_bad_client_network(spec: str) -> None:
    result = run_cli("firewall", "--lan-tap", "tap0", "--uplink-tap", "tap1", "--client", spec,
                     "--for", "0")  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    assert "--client" in result.stderr, result.stderr


@pytest.mark.peers
def test_firewall_sandbox_leases_and_masquerades(tmp_path: Path) -> None:
    """The kernel in the clients' namespace takes a lease from the firewall (busybox udhcpc)
    and pings the uplink's kernel through the masquerade (the rules allow ping); the rule
    file, changed to refuse ping and sent SIGHUP, is in force at once; a broken one is not
    taken."""
    require_net_admin()
    import shutil

    if shutil.which("busybox") is None:
        pytest.skip("busybox (udhcpc) is not installed")
    script = tmp_path / "udhcpc.sh"  # gives the kernel the lease
    script.write_text('#!/bin/sh\n[ "$1" = bound ] && ip addr add "$ip/$mask" dev "$interface" '
                      '&& ip route add default via "$router"\nexit 0\n')  # fmt: skip
    script.chmod(0o755)
    from netstack.firewall import DEFAULT_RULES

    rules = tmp_path / "fw.rules"
    rules.write_text(DEFAULT_RULES)
    proc = subprocess.Popen(
        [sys.executable, "-m", "netstack", "firewall", "--sandbox", "--for", "60", "--rules",
         str(rules)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=dict(os.environ, NETSTACK_LOOP=os.environ.get("NETSTACK_LOOP", "asyncio")),
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        clients = proc.stdout.readline()
        namespace, dev = clients.split("namespace ", 1)[1].split(", device ")
        dev = dev.split()[0]
        proc.stdout.readline()  # the uplink
        assert "netstack firewall: clients on eth0" in proc.stdout.readline()
        lease = subprocess.run(
            ["ip", "netns", "exec", namespace, "busybox", "udhcpc", "-i", dev, "-n", "-q",
             "-s", str(script), "-t", "5", "-T", "1"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert "198.18.1.100" in lease.stdout + lease.stderr, lease
        ping = subprocess.run(
            ["ip", "netns", "exec", namespace, "ping", "-c", "2", "-i", "0.2", "-W", "2",
             "198.18.2.1"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert "2 received" in ping.stdout, ping
        rules.write_text(DEFAULT_RULES.replace("icmp-type 8", "icmp-type 13"))
        proc.send_signal(signal.SIGHUP)
        assert "reloaded" in proc.stdout.readline()
        ping = subprocess.run(
            ["ip", "netns", "exec", namespace, "ping", "-c", "1", "-W", "1", "198.18.2.1"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert " 0 received" in ping.stdout, ping
        rules.write_text("forward allow everything\n")
        proc.send_signal(signal.SIGHUP)
        assert proc.stderr is not None
        assert "not reloaded, the rules in force stay" in proc.stderr.readline()
    finally:
        proc.send_signal(2)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "DHCP leases 1" in out, out
    assert "resident memory" in out, out


def test_gateway_needs_a_namespace() -> None:
    result = run_cli("gateway")
    assert result.returncode == 2
    assert "--sandbox" in result.stdout


def test_gateway_rejects_a_bad_forward() -> None:
    result = run_cli("gateway", "--netns", "nowhere", "--forward", "tcp:80")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "tcp:80" in result.stderr, result.stderr


@pytest.mark.peers
def test_gateway_command_relays_for_a_namespace(tmp_path: Path) -> None:
    """``ip netns exec HOST netstack gateway --netns GUEST --configure``, as slirp4netns is
    run: the guest's curl reaches a server in the host namespace, and a host port forward
    reaches a server in the guest."""
    require_net_admin()
    from netstack.netns import Namespace

    (tmp_path / "index.html").write_text("from the host\n")
    with Namespace.create() as guest, Namespace.create() as host:
        host.ip("addr", "add", "198.18.5.1/32", "dev", "lo")
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        host.popen(sys.executable, "-m", "http.server", "-b", "198.18.5.1", "-d",
                   str(tmp_path), "80", **quiet)  # fmt: skip
        guest.popen(sys.executable, "-m", "http.server", "-b", "0.0.0.0", "-d", str(tmp_path),
                    "8000", **quiet)  # fmt: skip
        proc = host.popen(
            sys.executable, "-m", "netstack", "gateway", "--netns", guest.name, "--configure",
            "--no-ipv6", "--forward", "tcp:127.0.0.1:8080:8000", "--for", "60",
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=dict(os.environ, NETSTACK_LOOP=os.environ.get("NETSTACK_LOOP", "asyncio")),
        )  # fmt: skip
        try:
            assert proc.stdout is not None
            assert "netstack gateway: namespace" in proc.stdout.readline()
            for ns, url in ((guest, "http://198.18.5.1/"), (host, "http://127.0.0.1:8080/")):
                for _ in range(50):  # until the server in that namespace listens
                    got = ns.run("curl", "-sS", "--max-time", "5", url, check=False)
                    if got.returncode == 0:
                        break
                    time.sleep(0.1)
                assert got.stdout == "from the host\n", got
        finally:
            proc.send_signal(2)
            out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "relayed 1 TCP flows" in out, out


@pytest.mark.parametrize("command", ["", "demo", "serve", "ping", "bench", "firewall", "gateway"])
def test_help_is_plain_text(command: str) -> None:
    """``netstack --help`` and each command's: argparse prints help as it is, so no
    reStructuredText (``literals``, :roles:) and a description and help for every option."""
    result = run_cli(*([command] if command else []), "--help", timeout=60)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "`" not in text and not re.search(r":[a-z]+:", text), text
    assert text.count("\n\n") >= 2, text  # usage, the description, the options
    from netstack.cli import _parser

    parser = _parser()
    if command:
        parser = next(
            action.choices[command]
            for action in parser._actions
            if isinstance(action, argparse._SubParsersAction)
        )
    assert parser.description, command
    missing = [a.dest for a in parser._actions if not a.help and a.dest != "command"]
    assert missing == [], missing
