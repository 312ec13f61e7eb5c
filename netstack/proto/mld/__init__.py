"""Multicast Listener Discovery (RFC 3810 MLDv2, RFC 2710 MLDv1): ``wire`` holds the
messages, ``listener`` the host's machine (what to report, when, in which version)."""
