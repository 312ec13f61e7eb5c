"""IPv6 (RFC 8200): ``wire`` holds the fixed header, the extension-header chain walk and the
Fragment header; ``reassembly`` puts fragments back together (RFC 8200 4.5, RFC 5722)."""
