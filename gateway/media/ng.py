"""rtpengine's "ng" control protocol, sans-IO: commands, cookies, retransmission, replies.

A request is one UDP datagram ``<cookie> <bencoded dictionary>``; the reply carries the
same cookie, which is how replies are matched to requests and how rtpengine spots a
retransmission (it answers a repeated cookie from its cache instead of acting twice).
Every reply has ``result`` (``ok``, ``pong``, or ``error`` with ``error-reason``).
See rtpengine's README, section "The ng Control Protocol" (version 10.5).

:class:`NgClient` never touches a socket or a clock: the caller hands it the time and
the datagrams received, and takes from it the datagrams to send, the next timer and the
outcome of each command (:class:`NgReply` or :class:`NgFailure`). The functions below
build the commands the media engine needs and turn ``query``/``delete`` replies into
:class:`~gateway.media.engine.SessionStats`. Bencoding itself is ``bencoder.pyx``'s.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import bencoder

from gateway.media.engine import DirectionStats, SessionStats, StreamStats
from gateway.model.events import Side

# A dictionary as bencode carries it: byte-string keys; byte strings, integers, lists
# and dictionaries as values.
NgDict = dict[bytes, Any]

RETRANSMIT_INTERVAL = 0.5  # first wait for a reply; doubled at each retransmission
ATTEMPTS = 4  # 0.5 + 1 + 2 + 4: a command fails 7.5 s after it was first sent

# The SIP tags rtpengine sees for the two sides of a call: side A is the From tag of
# the first offer and side B the To tag, whichever side offers later.
TAGS = {Side.A: b"A", Side.B: b"B"}

# SDP rewriting asked of rtpengine on every offer and answer: its own address in o= and
# the session c= line, a version that grows when the SDP changes, a real address in
# place of an RFC 2543 zero address (the gateway's own early answer uses one), and no
# ICE (RFC 8839): the engine anchors the media, as the built-in relay does.
REWRITE: NgDict = {
    b"replace": [b"origin", b"session connection", b"SDP version", b"zero address"],
    b"ICE": b"remove",
}


class NgProtocolError(Exception):
    """A datagram that is not an ng reply (no cookie, or not a bencoded dictionary)."""


def encode(cookie: bytes, message: NgDict) -> bytes:
    """One ng datagram: the cookie, a space, the bencoded dictionary."""
    body: bytes = bencoder.bencode(message)
    return cookie + b" " + body


def decode(datagram: bytes) -> tuple[bytes, NgDict]:
    """Split an ng datagram into its cookie and dictionary (keys in any order: rtpengine
    does not sort them, as its README says)."""
    cookie, space, body = datagram.partition(b" ")
    if not space or not cookie:
        raise NgProtocolError(f"no cookie in {datagram[:40]!r}")
    try:
        message = bencoder.bdecode(body)
    except Exception as exc:  # bencoder raises its own BTFailure and others on bad input
        raise NgProtocolError(f"not bencode: {body[:40]!r}") from exc
    if not isinstance(message, dict):
        raise NgProtocolError(f"not a dictionary: {body[:40]!r}")
    return cookie, message


# --- commands ----------------------------------------------------------------------------


def offer(call_id: str, sdp: bytes, *, from_side: Side) -> NgDict:
    """``offer``: an SDP from ``from_side``, whose tag is the From tag of this exchange."""
    return {
        b"command": b"offer",
        b"call-id": call_id.encode(),
        b"from-tag": TAGS[from_side],
        b"to-tag": TAGS[from_side.other],
        b"sdp": sdp,
        **REWRITE,
    }


def answer(call_id: str, sdp: bytes, *, from_side: Side) -> NgDict:
    """``answer``: an SDP from ``from_side``; the From tag is the offerer's (the other side)."""
    return {
        b"command": b"answer",
        b"call-id": call_id.encode(),
        b"from-tag": TAGS[from_side.other],
        b"to-tag": TAGS[from_side],
        b"sdp": sdp,
        **REWRITE,
    }


def delete(call_id: str) -> NgDict:
    """``delete`` the whole call now (no ``delete-delay``), ``fatal`` so that an unknown
    call is an error rather than a warning."""
    return {
        b"command": b"delete",
        b"call-id": call_id.encode(),
        b"from-tag": TAGS[Side.A],
        b"delete delay": 0,
        b"flags": [b"fatal"],
    }


def query(call_id: str) -> NgDict:
    """``query``: the call's tags, media, streams and counters."""
    return {b"command": b"query", b"call-id": call_id.encode()}


def list_calls(limit: int) -> NgDict:
    """``list``: the call-ids rtpengine holds (at most ``limit``)."""
    return {b"command": b"list", b"limit": limit}


def play_media(call_id: str, path: str, *, to_side: Side, repeat: int) -> NgDict:
    """``play media``: the file at ``path`` (on rtpengine's host) to ``to_side``, the
    participant selected by ``from-tag``, ``repeat`` times."""
    return {
        b"command": b"play media",
        b"call-id": call_id.encode(),
        b"from-tag": TAGS[to_side],
        b"file": path.encode(),
        b"repeat-times": repeat,
    }


def stop_media(call_id: str, *, to_side: Side) -> NgDict:
    """``stop media``: end the playback started towards ``to_side``."""
    return {b"command": b"stop media", b"call-id": call_id.encode(), b"from-tag": TAGS[to_side]}


def ping() -> NgDict:
    """``ping``, answered ``pong``."""
    return {b"command": b"ping"}


# --- replies -----------------------------------------------------------------------------


def text(value: object) -> str:
    """A reply's byte string as text (rtpengine sends ASCII; anything else is shown)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _int(value: object) -> int:
    return value if isinstance(value, int) else 0


def _dict(value: object) -> NgDict:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _endpoint(stream: NgDict) -> tuple[str, int] | None:
    endpoint = _dict(stream.get(b"endpoint"))
    address, port = endpoint.get(b"address"), _int(endpoint.get(b"port"))
    if not isinstance(address, bytes) or not port:
        return None
    return text(address), port


def session_stats(call_id: str, reply: NgDict) -> SessionStats:
    """A ``query`` or ``delete`` reply as the engine interface's counters.

    rtpengine counts, per tag and per media, the packets it *received* on each of its
    streams (one for RTP, one for RTCP, flagged so): what it received from side A's
    endpoint went towards B. Media indexes start at 1 there and at 0 here. The peer is
    the endpoint rtpengine sends that side's RTP to (latched from its packets, RFC 4961).
    """
    tags = _dict(reply.get(b"tags"))
    ssrcs = _dict(reply.get(b"SSRC"))
    streams: dict[int, StreamStats] = {}
    for side in Side:
        tag = _dict(tags.get(TAGS[side]))
        for media in _list(tag.get(b"medias")):
            media = _dict(media)
            index = _int(media.get(b"index")) - 1
            if index < 0:
                continue
            stream = streams.setdefault(
                index, StreamStats(index=index, kind=text(media.get(b"type", b"")))
            )
            counters = stream.a_to_b if side is Side.A else stream.b_to_a
            for packet_stream in _list(media.get(b"streams")):
                packet_stream = _dict(packet_stream)
                flags = _list(packet_stream.get(b"flags"))
                stats = _dict(packet_stream.get(b"stats"))
                packets, size = _int(stats.get(b"packets")), _int(stats.get(b"bytes"))
                if b"RTCP" in flags:
                    counters.rtcp_packets += packets
                    counters.rtcp_bytes += size
                else:
                    counters.rtp_packets += packets
                    counters.rtp_bytes += size
                    peer = _endpoint(packet_stream)
                    if side is Side.A:
                        stream.a_peer = peer
                    else:
                        stream.b_peer = peer
                    _ssrc_quality(counters, ssrcs, packet_stream.get(b"SSRC"))
    return SessionStats(call_id, [streams[i] for i in sorted(streams)])


def _ssrc_quality(counters: DirectionStats, ssrcs: NgDict, ssrc: object) -> None:
    """What rtpengine derived from the RTCP about the SSRC a side sends (its ``SSRC``
    table, "average MOS": packet loss in %, jitter in ms, round-trip time in us; from
    RFC 3550 6.4.1 reports). rtpengine 10.5 forwarding in userspace without
    transcoding parses no RTCP and leaves the table empty: then nothing is set."""
    if not isinstance(ssrc, int):
        return
    entry = _dict(ssrcs.get(str(ssrc).encode()))
    average = _dict(entry.get(b"average MOS"))
    if not average:
        return
    if isinstance(loss := average.get(b"packet loss"), int):
        counters.reported_fraction_lost = loss / 100
    if isinstance(jitter := average.get(b"jitter"), int):
        counters.reported_jitter = jitter / 1000
    if isinstance(rtt := average.get(b"round-trip time"), int) and rtt > 0:
        counters.rtt = rtt / 1_000_000


def call_ids(reply: NgDict) -> set[str]:
    """The call-ids of a ``list`` reply."""
    return {text(c) for c in _list(reply.get(b"calls"))}


# --- the client --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NgReply:
    """rtpengine answered ``ok`` (or ``pong``) to the command sent with ``cookie``."""

    cookie: bytes
    message: NgDict


@dataclass(frozen=True, slots=True)
class NgFailure:
    """The command sent with ``cookie`` failed: an ``error`` reply, or no reply at all."""

    cookie: bytes
    reason: str
    timed_out: bool = False


NgOutcome = NgReply | NgFailure


@dataclass(slots=True)
class _Pending:
    datagram: bytes
    command: str
    attempts: int
    due: float
    interval: float


class NgClient:
    """Matches ng replies to commands by cookie and retransmits until one comes.

    Each command gets a fresh cookie: a random prefix for this client (so that two
    gateways, or a restarted one, never reuse a cookie rtpengine still caches) and a
    counter. A reply that matches nothing pending (a duplicate, a late one) is dropped.
    """

    def __init__(
        self,
        *,
        retransmit_interval: float = RETRANSMIT_INTERVAL,
        attempts: int = ATTEMPTS,
        prefix: str | None = None,
    ) -> None:
        self._prefix = (prefix or secrets.token_hex(4)).encode()
        self._counter = 0
        self._interval = retransmit_interval
        self._attempts = attempts
        self._pending: dict[bytes, _Pending] = {}
        self._outbox: list[bytes] = []
        self._outcomes: list[NgOutcome] = []

    def send(self, message: NgDict, now: float) -> bytes:
        """Queue a command; return its cookie (its outcome will carry it)."""
        self._counter += 1
        cookie = b"%s_%d" % (self._prefix, self._counter)
        datagram = encode(cookie, message)
        command = text(message.get(b"command", b"?"))
        self._pending[cookie] = _Pending(datagram, command, 1, now + self._interval, self._interval)
        self._outbox.append(datagram)
        return cookie

    def datagrams_to_send(self) -> list[bytes]:
        """What to put on the wire now (first sends and retransmissions)."""
        out, self._outbox = self._outbox, []
        return out

    def receive(self, datagram: bytes) -> None:
        """A datagram from rtpengine; one that is not a reply to a pending command is
        ignored (a retransmission's second answer, or noise)."""
        try:
            cookie, message = decode(datagram)
        except NgProtocolError:
            return
        pending = self._pending.pop(cookie, None)
        if pending is None:
            return
        result = message.get(b"result")
        if result in (b"ok", b"pong"):
            self._outcomes.append(NgReply(cookie, message))
        else:
            reason = text(message.get(b"error-reason", b"no error-reason"))
            if result != b"error":
                reason = f"unexpected result {text(result)!r}: {reason}"
            self._outcomes.append(NgFailure(cookie, f"{pending.command}: {reason}"))

    def next_timer(self) -> float | None:
        """When :meth:`handle_timer` must run next (None: nothing pending)."""
        return min((p.due for p in self._pending.values()), default=None)

    def handle_timer(self, now: float) -> None:
        """Retransmit what is due; give up on commands past their last attempt."""
        for cookie, pending in list(self._pending.items()):
            if pending.due > now:
                continue
            if pending.attempts >= self._attempts:
                del self._pending[cookie]
                self._outcomes.append(
                    NgFailure(
                        cookie,
                        f"{pending.command}: no reply after {pending.attempts} attempts",
                        timed_out=True,
                    )
                )
                continue
            pending.attempts += 1
            pending.interval *= 2
            pending.due = now + pending.interval
            self._outbox.append(pending.datagram)

    def outcomes(self) -> list[NgOutcome]:
        """Replies and failures since the last call."""
        out, self._outcomes = self._outcomes, []
        return out

    def abandon(self, cookie: bytes) -> None:
        """Forget a command whose outcome nobody waits for any more."""
        self._pending.pop(cookie, None)

    @property
    def pending(self) -> int:
        """Commands still waiting for a reply."""
        return len(self._pending)


__all__ = [
    "TAGS",
    "NgClient",
    "NgDict",
    "NgFailure",
    "NgOutcome",
    "NgProtocolError",
    "NgReply",
    "answer",
    "call_ids",
    "decode",
    "delete",
    "encode",
    "list_calls",
    "offer",
    "ping",
    "play_media",
    "query",
    "session_stats",
    "stop_media",
]
