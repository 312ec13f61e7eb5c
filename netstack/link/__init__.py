"""Link transports: the :class:`Link` interface (``Mirage_net.S``) and its implementations."""

from .base import BaseLink, Link, LinkStats, MacAddress, QueuedTransmitter
from .memory import Impairment, ImpairmentStats, MemoryLink, Switch
from .pcap import PcapLink, PcapRecord, PcapWriter, read_pcap
from .tap import TapLink

__all__ = [
    "BaseLink",
    "Impairment",
    "ImpairmentStats",
    "Link",
    "LinkStats",
    "MacAddress",
    "MemoryLink",
    "PcapLink",
    "PcapRecord",
    "PcapWriter",
    "QueuedTransmitter",
    "Switch",
    "TapLink",
    "read_pcap",
]
