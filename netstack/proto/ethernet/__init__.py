"""Ethernet II framing (IEEE 802.3 with EtherType, and 802.1Q tags)."""

from .wire import ETHERNET_HEADER_LEN, EthernetHeader, EtherType, VlanTag, parse

__all__ = ["ETHERNET_HEADER_LEN", "EtherType", "EthernetHeader", "VlanTag", "parse"]
