"""A router's connection tracking, NAT and packet filter, behind the IP layers' hook points
(``netstack.proto.ip.hooks``): ``packet`` (dissection and in-place rewriting), ``conntrack``
(the flow table), ``nat`` (masquerade and port forwards), ``filter`` (rules) and ``hooks``
(the three composed as one ``PacketHooks``)."""

from .conntrack import ConntrackConfig, CtState, TcpState
from .filter import Filter, Rule, parse_rules
from .hooks import Netfilter
from .nat import Nat

__all__ = [
    "ConntrackConfig",
    "CtState",
    "Filter",
    "Nat",
    "Netfilter",
    "Rule",
    "TcpState",
    "parse_rules",
]
