"""A DNS load client on the kernel's sockets (stdlib only, so it starts fast inside a
namespace): ``python dnspeer.py HOST PORT SECONDS WINDOW NAME [NAME ...]``.

Keeps WINDOW UDP queries (type A, RFC 1035 4.1) in flight to HOST:PORT for SECONDS, a new one
for every answer; a query unanswered for 0.5 s counts as lost and is replaced. Prints one
JSON line: ``answered``, ``sent``, ``lost``, ``seconds``.
"""

from __future__ import annotations

import json
import select
import socket
import struct
import sys
import time


def query(ident: int, name: str) -> bytes:
    """A recursion-not-desired query for ``name`` IN A."""
    labels = b"".join(bytes((len(x),)) + x.encode() for x in name.rstrip(".").split("."))
    return struct.pack("!HHHHHH", ident, 0, 1, 0, 0, 0) + labels + b"\x00\x00\x01\x00\x01"


def main(argv: list[str]) -> int:
    host, port, seconds, window = argv[0], int(argv[1]), float(argv[2]), int(argv[3])
    names = argv[4:] or ["www.example.test"]
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.connect((host, port))
    sock.setblocking(False)
    # The queries after their ID, built once: the client's own cost per query stays small,
    # so what is measured is the server.
    tails = [query(0, name)[2:] for name in names]
    pending: dict[int, float] = {}
    next_id = 0
    sent = answered = lost = 0

    def send() -> None:
        nonlocal next_id, sent
        next_id = (next_id + 1) & 0xFFFF
        sock.send(next_id.to_bytes(2, "big") + tails[next_id % len(tails)])
        pending[next_id] = time.monotonic()
        sent += 1

    start = time.monotonic()
    end = start + seconds
    for _ in range(window):
        send()
    scanned = start
    while (now := time.monotonic()) < end:
        ready, _, _ = select.select([sock], [], [], 0.05)
        if ready:
            while True:
                try:
                    data = sock.recv(65535)
                except BlockingIOError:
                    break
                if len(data) >= 2:
                    ident = struct.unpack_from("!H", data)[0]
                    if pending.pop(ident, None) is not None:
                        answered += 1
                        send()
        if now - scanned < 0.05:
            continue
        scanned = now
        for ident, at in list(pending.items()):
            if now - at > 0.5:
                del pending[ident]
                lost += 1
                send()
    elapsed = time.monotonic() - start
    print(json.dumps({"answered": answered, "sent": sent, "lost": lost, "seconds": elapsed}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
