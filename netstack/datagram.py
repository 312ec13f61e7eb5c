"""The old home of the UDP driver, now :mod:`netstack.drivers.udp`; its name still imports."""

from __future__ import annotations

from .drivers.udp import DatagramTransport

__all__ = ["DatagramTransport"]
