"""The H.323 wire layer, sans-IO: TPKT framing, Q.931 messages and the PER codec.

``tpkt`` (RFC 1006 6), ``q931`` (H.225.0 7.2-7.4, Q.931 4) and ``asn1`` (H.225.0 and
H.245 in aligned PER, X.691) take bytes in and give values out, and back. Nothing here
opens a socket or reads a clock; the only part of the gateway it uses is
``gateway.model``.
"""
