"""A minimal client of rtpengine's "ng" control protocol, for the media benchmark alone.

Each request is a bencoded dictionary after a cookie and a space, in one UDP datagram;
the reply repeats the cookie. Only what the benchmark needs is here, blocking: ``offer``,
``answer`` and ``delete``; the framing and bencoding are the gateway's own
(:mod:`gateway.media.ng`), whose asyncio engine is ``gateway/media/rtpengine.py``.
"""

from __future__ import annotations

import itertools
import os
import socket
from typing import Any

from gateway.media.ng import NgProtocolError, decode, encode

Bencodable = bytes | str | int | list["Bencodable"] | dict[str, "Bencodable"]
Decoded = Any


class NgError(Exception):
    """rtpengine answered with an error, or not at all."""


class NgClient:
    """Blocking request/reply over UDP to an rtpengine listening for ng commands."""

    def __init__(self, address: tuple[str, int], timeout: float = 5.0) -> None:
        self._address = address
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.settimeout(timeout)
        self._prefix = os.urandom(4).hex()
        self._cookies = itertools.count(1)

    def request(
        self, command: dict[str, Bencodable], *, expect: bytes = b"ok"
    ) -> dict[bytes, Decoded]:
        """Send one command; the reply, whose ``result`` must be ``expect``."""
        cookie = f"{self._prefix}_{next(self._cookies)}".encode()
        message = {key.encode(): value for key, value in command.items()}
        self._sock.sendto(encode(cookie, message), self._address)
        while True:
            try:
                data = self._sock.recv(65536)
            except TimeoutError as exc:
                raise NgError(f"no answer to {command.get('command')!r}") from exc
            try:
                got, reply = decode(data)
            except NgProtocolError as exc:
                raise NgError(f"not an ng reply: {exc}") from exc
            if got == cookie:
                break
        if reply.get(b"result") != expect:
            raise NgError(f"{command.get('command')!r} failed: {reply!r}")
        return reply

    def offer(self, call_id: str, sdp: bytes) -> bytes:
        """Offer from side A (from-tag ``a``); the SDP for side B."""
        reply = self.request({"command": "offer", "call-id": call_id, "from-tag": "a", "sdp": sdp})
        return _sdp(reply)

    def answer(self, call_id: str, sdp: bytes) -> bytes:
        """Answer from side B (to-tag ``b``); the SDP for side A."""
        reply = self.request(
            {"command": "answer", "call-id": call_id, "from-tag": "a", "to-tag": "b", "sdp": sdp}
        )
        return _sdp(reply)

    def delete(self, call_id: str) -> None:
        """Release the call."""
        self.request({"command": "delete", "call-id": call_id, "from-tag": "a"})

    def close(self) -> None:
        """Close the control socket."""
        self._sock.close()


def _sdp(reply: dict[bytes, Decoded]) -> bytes:
    sdp = reply.get(b"sdp")
    if not isinstance(sdp, bytes):
        raise NgError(f"reply without SDP: {reply!r}")
    return sdp
