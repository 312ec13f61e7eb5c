"""The firewall's resident memory: ``netstack firewall --sandbox`` (the firewall alone in its
process, the built-in rules) measured from outside, as MirageOS's QubesOS firewall is quoted
(30 MB: the memory its unikernel is given).

``bench`` "firewall_rss", ``unit`` "MiB", ``impl`` "netstack", ``case``:

- ``idle``: VmRSS once the firewall serves (stack, two TAP links, DHCP and DNS servers, the
  filter loaded), before any client;
- ``flows``: VmRSS after the kernel in the clients' namespace took a DHCP lease (busybox
  udhcpc) and opened ``flows`` UDP flows through the masquerade to the uplink's port 53 (each
  a tracked flow with its own mapping), with ``hwm`` the peak (VmHWM) and ``tracked`` the flows
  the firewall counted when it stopped.

Needs root, busybox; every address in 198.18.0.0/15 inside the two namespaces the command
makes and deletes. Run: ``python -m benchmarks --only firewall_rss [--loop both]``.
"""

from __future__ import annotations

import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from netstack import netns

from .common import Emitter, Settings, log

__all__ = ["run_firewall_rss"]

#: Run in the clients' namespace: one UDP datagram from each of N sockets (N source ports),
#: paced so that the TAP device's queue never overflows.
FLOWS = """
import socket, sys, time
sockets = []
for i in range(int(sys.argv[1])):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(b"x" * 32, ("198.18.2.1", 53))
    sockets.append(s)
    if i % 50 == 49:
        time.sleep(0.01)
"""

UDHCPC_SCRIPT = (
    '#!/bin/sh\n[ "$1" = bound ] && ip addr add "$ip/$mask" dev "$interface" '
    '&& ip route add default via "$router"\nexit 0\n'
)


def _status(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM of ``pid`` in MiB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) / 1024
    return out


def _readline(proc: subprocess.Popen[str], timeout: float = 60.0) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        raise TimeoutError("netstack firewall printed nothing")
    return proc.stdout.readline()


def _measure(emit: Emitter, loop: str, flows: int) -> None:
    env = dict(os.environ, NETSTACK_LOOP=loop)
    proc = subprocess.Popen(
        [sys.executable, "-m", "netstack", "firewall", "--sandbox", "--for", "300"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        clients = _readline(proc)
        namespace, dev = clients.split("namespace ", 1)[1].split(", device ")
        dev = dev.split()[0]
        _readline(proc)
        if "netstack firewall:" not in _readline(proc):
            raise RuntimeError("netstack firewall did not start")
        time.sleep(1.0)  # settle (the first gratuitous ARPs, router solicitations)
        idle = _status(proc.pid)
        emit.emit("firewall_rss", "netstack", round(idle["VmRSS"], 1), "MiB", case="idle",
                  hwm=round(idle["VmHWM"], 1), loop=loop)  # fmt: skip
        ns = netns.Namespace(namespace)
        with tempfile.TemporaryDirectory() as tmp:
            script = Path(tmp) / "udhcpc.sh"
            script.write_text(UDHCPC_SCRIPT)
            script.chmod(0o755)
            ns.run("busybox", "udhcpc", "-i", dev, "-n", "-q", "-s", str(script), "-t", "5",
                   "-T", "1", timeout=30)  # fmt: skip
        ns.run(sys.executable, "-c", FLOWS, str(flows), timeout=120)
        time.sleep(1.0)
        after = _status(proc.pid)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        tracked = re.search(r"flows tracked (\d+)", out)
        emit.emit("firewall_rss", "netstack", round(after["VmRSS"], 1), "MiB", case="flows",
                  flows=flows, hwm=round(after["VmHWM"], 1),
                  tracked=int(tracked[1]) if tracked else None, loop=loop)  # fmt: skip
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def run_firewall_rss(emit: Emitter, settings: Settings, loops: list[str]) -> None:
    reason = netns.tap_unavailable_reason()
    if reason is None and shutil.which("busybox") is None:
        reason = "busybox (udhcpc) is not installed"
    if reason is not None:
        emit.skip("firewall_rss", "netstack", "MiB", reason, loop=None)
        return
    flows = 1000 if settings.quick else 10000
    for loop in loops:
        log(f"firewall_rss: {loop}, {flows} flows")
        _measure(emit, loop, flows)
