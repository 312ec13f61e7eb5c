"""The kernel-side UDP peers, run inside a benchmark's network namespace with
``ip netns exec NS python peer.py ...``; standard library only, so that it starts fast.

``recv HOST PORT MAX_SECONDS``: bind a UDP socket (receive buffer 4 MiB), print ``ready``,
count datagrams until a datagram starting with :data:`STOP` arrives or ``MAX_SECONDS`` pass,
then print ``{"received": n, "bytes": b, "first_to_last": s}`` as JSON.

``send HOST PORT SECONDS SIZE [--stop]``: send ``SIZE``-byte datagrams from a connected,
blocking UDP socket in a tight loop for ``SECONDS`` (no rate limit), then, with ``--stop``,
send :data:`STOP` a few times so that a ``recv`` peer ends; print ``{"sent": n, "errors": e,
"seconds": s}``. A send that fails (``ENOBUFS``, ``ECONNREFUSED`` after an ICMP error) is
counted in ``errors`` and not in ``sent``.

Both are bounded in time; they only ever talk to the address they are given, which the
benchmarks take from 198.18.0.0/15 inside namespaces they create.
"""

from __future__ import annotations

import json
import socket
import sys
import time

STOP = b"NETSTACK-BENCH-STOP"
RCVBUF = 4 * 1024 * 1024
#: SO_RCVBUFFORCE from asm-generic/socket.h: root may exceed net.core.rmem_max.
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)


def recv(host: str, port: int, max_seconds: float) -> dict[str, float]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RCVBUF)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
    sock.bind((host, port))
    sock.settimeout(0.1)
    print("ready", flush=True)
    buf = bytearray(65536)
    received = nbytes = 0
    first = last = 0.0
    deadline = time.monotonic() + max_seconds
    recv_into = sock.recv_into
    while time.monotonic() < deadline:
        try:
            n = recv_into(buf)
        except TimeoutError:
            continue
        if buf[: len(STOP)] == STOP and n == len(STOP):
            break
        last = time.monotonic()
        if not received:
            first = last
        received += 1
        nbytes += n
    return {"received": received, "bytes": nbytes, "first_to_last": round(last - first, 6)}


def send(host: str, port: int, seconds: float, size: int, stop: bool) -> dict[str, float]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect((host, port))
    payload = bytes(size)
    sent = errors = 0
    send_ = sock.send
    start = time.monotonic()
    end = start + seconds
    while True:
        for _ in range(256):
            try:
                send_(payload)
                sent += 1
            except OSError:
                errors += 1
        if time.monotonic() >= end:
            break
    elapsed = time.monotonic() - start
    if stop:
        time.sleep(0.05)  # what is still queued arrives before the marker
        for _ in range(5):
            try:
                send_(STOP)
            except OSError:
                pass
            time.sleep(0.02)
    return {"sent": sent, "errors": errors, "seconds": round(elapsed, 6)}


def main(argv: list[str]) -> int:
    if len(argv) >= 4 and argv[0] == "recv":
        result = recv(argv[1], int(argv[2]), float(argv[3]))
    elif len(argv) >= 5 and argv[0] == "send":
        result = send(argv[1], int(argv[2]), float(argv[3]), int(argv[4]), "--stop" in argv)
    else:
        print(__doc__, file=sys.stderr)
        return 2
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
