"""The Ethernet layer: frame filtering and EtherType demultiplexing (RFC 894), and the
header on the way out.

A frame is for this host when its destination is the host's address, broadcast, or a
multicast group (the group bit set, RFC 1112 6.4 for IPv4's mapping; which groups matter is
the network layer's business). 802.1Q-tagged frames are parsed and dropped with a counter:
this host is not on any VLAN.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from ...errors import ParseError
from ...link.offload import NO_OFFLOADS, OffloadFrame, Offloads
from ..layer import Layer
from .wire import ETHERNET_HEADER_LEN, MIN_ETHERTYPE, EtherType, parse

__all__ = ["EthernetLayer", "Handler"]

#: handler(payload, source MAC, sent to a group address, now, the interface's index)
Handler = Callable[[memoryview, bytes, bool, float, int], None]
Transmit = Callable[..., None]

_HEADER = struct.Struct("!6s6sH")
_TAGGED = (EtherType.VLAN, EtherType.QINQ, 0x9100)


class EthernetLayer(Layer):
    name = "ethernet"
    _COUNTERS = ("rx_packets", "rx_bytes", "tx_packets", "tx_bytes", "rx_offloaded", "rx_super")

    def __init__(self, mac: bytes, transmit: Transmit, ifindex: int = 0) -> None:
        super().__init__()
        self.mac = bytes(mac)
        self.transmit = transmit
        #: The index of the interface this layer serves, handed up with every frame (the
        #: network layers tell their upper layers where a packet came in).
        self.ifindex = ifindex
        self.handlers: dict[int, Handler] = {}
        #: What the link takes beyond plain frames (set by the stack from the link's own
        #: ``offloads``); transports look here before building offloaded frames.
        self.offloads: Offloads = NO_OFFLOADS
        self.rx_packets = self.rx_bytes = self.tx_packets = self.tx_bytes = 0
        #: Frames that came with offload metadata the stack honoured, and of those the
        #: super-segments (GSO): counted by the driver that judges the metadata.
        self.rx_offloaded = self.rx_super = 0

    def receive(self, frame: memoryview, now: float) -> None:
        n = len(frame)
        if n < ETHERNET_HEADER_LEN:
            self._drop("truncated", n)
            return
        dst, src, ethertype = _HEADER.unpack_from(frame, 0)
        group = dst[0] & 1 == 1  # a comparison, not a call to bool()
        if not group and dst != self.mac:
            self._drop("not_for_us", dst.hex(":"))
            return
        if src[0] & 1:
            # IEEE 802.3: a source address is never a group address.
            self._drop("bad_source", src.hex(":"))
            return
        handler = self.handlers.get(ethertype)
        if handler is None:
            self._unhandled(frame, ethertype)
            return
        self.rx_packets += 1
        self.rx_bytes += n
        handler(frame[ETHERNET_HEADER_LEN:], src, group, now, self.ifindex)

    def _unhandled(self, frame: memoryview, ethertype: int) -> None:
        if ethertype < MIN_ETHERTYPE:
            self._drop("ieee802_3_llc", ethertype)
        elif ethertype in _TAGGED:
            try:
                header, _ = parse(frame)
            except ParseError as exc:
                self._drop(exc.reason, exc)
                return
            self._drop("vlan_tagged", [t.vid for t in header.tags])
        else:
            self._drop("unknown_ethertype", hex(ethertype))

    def send(self, frame: bytearray, dst: bytes, ethertype: int) -> None:
        """Fill in the header at the start of ``frame`` and hand the frame to the link."""
        _HEADER.pack_into(frame, 0, dst, self.mac, ethertype)
        self.tx_packets += 1
        self.tx_bytes += len(frame)
        if frame.__class__ is OffloadFrame:
            self.transmit(frame, frame.meta)
        else:
            self.transmit(frame)
