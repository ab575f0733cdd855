"""A minimal client of rtpengine's "ng" control protocol, for the media benchmark alone.

Each request is a bencoded dictionary after a cookie and a space, in one UDP datagram;
the reply repeats the cookie. Only what the benchmark needs is here: ``offer``,
``answer`` and ``delete`` (the gateway's own engine is ``gateway/media/rtpengine.py``).
"""

from __future__ import annotations

import itertools
import os
import socket

Bencodable = bytes | str | int | list["Bencodable"] | dict[str, "Bencodable"]
Decoded = bytes | int | list["Decoded"] | dict[bytes, "Decoded"]


class NgError(Exception):
    """rtpengine answered with an error, or not at all."""


def bencode(value: Bencodable) -> bytes:
    """Encode ``value`` (byte strings, text, integers, lists, dictionaries)."""
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, bytes):
        return str(len(value)).encode() + b":" + value
    if isinstance(value, int):
        return b"i%de" % value
    if isinstance(value, list):
        return b"l" + b"".join(bencode(v) for v in value) + b"e"
    items = sorted((k.encode(), v) for k, v in value.items())
    return b"d" + b"".join(bencode(k) + bencode(v) for k, v in items) + b"e"


def bdecode(data: bytes) -> Decoded:
    """Decode one bencoded value that fills ``data``."""
    value, end = _decode(data, 0)
    if end != len(data):
        raise NgError(f"trailing bytes after bencoded value at {end}")
    return value


def _decode(data: bytes, i: int) -> tuple[Decoded, int]:
    head = data[i : i + 1]
    if head == b"i":
        end = data.index(b"e", i)
        return int(data[i + 1 : end]), end + 1
    if head == b"l":
        items: list[Decoded] = []
        i += 1
        while data[i : i + 1] != b"e":
            item, i = _decode(data, i)
            items.append(item)
        return items, i + 1
    if head == b"d":
        result: dict[bytes, Decoded] = {}
        i += 1
        while data[i : i + 1] != b"e":
            key, i = _decode(data, i)
            if not isinstance(key, bytes):
                raise NgError("dictionary key is not a string")
            result[key], i = _decode(data, i)
        return result, i + 1
    if head.isdigit():
        colon = data.index(b":", i)
        size = int(data[i:colon])
        return data[colon + 1 : colon + 1 + size], colon + 1 + size
    raise NgError(f"bad bencoded value at {i}: {data[i : i + 10]!r}")


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
        self._sock.sendto(cookie + b" " + bencode(command), self._address)
        while True:
            try:
                data = self._sock.recv(65536)
            except TimeoutError as exc:
                raise NgError(f"no answer to {command.get('command')!r}") from exc
            got, _, body = data.partition(b" ")
            if got == cookie:
                break
        reply = bdecode(body)
        if not isinstance(reply, dict) or reply.get(b"result") != expect:
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
