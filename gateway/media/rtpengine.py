"""A media engine that drives rtpengine (Sipwise, Debian ``rtpengine-daemon``) over ng.

The controller's verbs map one to one onto ng commands (:mod:`gateway.media.ng` builds
them and reads the replies): ``offer``/``answer`` hand rtpengine the SDP and return the
one it rewrote to its own address and ports, ``delete`` and ``stats`` read its
per-stream counters, ``play``/``stop_playing`` are ``play media``/``stop media`` with a
prompt file rtpengine reads from its own disk. Side A is the From tag of the call in
rtpengine and side B the To tag. The only asyncio here is the UDP edge
(:class:`_NgTransport`) and one task that polls for calls rtpengine dropped.

What rtpengine does itself, and this engine therefore does not: media timeouts (its
``--timeout``; the poller learns of them and calls the timeout handler), latching, and
the packet path. What it cannot do through ng 10.5: send a PLI/FIR on request
(``request_keyframe`` answers False, so the controller asks in signalling) and end
RFC 4733 events on a side's behalf (they pass through; the event handler never runs).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import re
import secrets
import socket
from pathlib import Path
from typing import cast

from gateway.media import ng
from gateway.media.engine import MediaError, MediaEventHandler, SessionStats, TimeoutHandler
from gateway.media.player import negotiated_g711
from gateway.media.prompts import PROMPT_DIR
from gateway.media.srtp import is_secure
from gateway.media.transcode import augment_offer
from gateway.model.events import Side
from gateway.model.sdp import MediaDescription, SdpError, SessionDescription

logger = logging.getLogger(__name__)

POLL_INTERVAL = 5.0  # seconds between two looks for calls rtpengine dropped on timeout
# An announcement loops until stopped; rtpengine plays a file a given number of times.
# 10,000 times the shortest useful prompt is hours: longer than any wait in a queue.
PLAY_REPEAT = 10_000
PROMPT_LANG = "fr"
UNKNOWN_CALL = "Unknown call-id"  # rtpengine's error-reason for a call it does not hold
_PROMPT_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[V6]:PORT`` for IPv6) of rtpengine's ng listener."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    try:
        ipaddress.ip_address(host)
    except ValueError as exc:
        raise ValueError(f"{host!r} is not an IP address") from exc
    return host, int(port)


class _NgTransport(asyncio.DatagramProtocol):
    """The UDP edge of an :class:`~gateway.media.ng.NgClient`: one socket, one timer."""

    def __init__(self, client: ng.NgClient, loop: asyncio.AbstractEventLoop) -> None:
        self.client = client
        self.loop = loop
        self.transport: asyncio.DatagramTransport | None = None
        self.waiting: dict[bytes, asyncio.Future[ng.NgOutcome]] = {}
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Neither asyncio's selector transport nor uvloop's subclasses DatagramTransport.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        self.client.receive(data)
        self._flush()

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable (rtpengine not running): retransmission goes on and the
        # command times out with a clear reason.
        logger.debug("ng socket error: %s", exc)

    def connection_lost(self, exc: Exception | None) -> None:
        for future in self.waiting.values():
            if not future.done():
                future.set_result(ng.NgFailure(b"", "ng control socket closed"))
        self.waiting.clear()

    async def request(self, message: ng.NgDict) -> ng.NgOutcome:
        """Send a command and wait for its outcome (a reply, an error or a timeout)."""
        if self.transport is None or self.transport.is_closing():
            return ng.NgFailure(b"", "ng control socket not open")
        cookie = self.client.send(message, self.loop.time())
        future: asyncio.Future[ng.NgOutcome] = self.loop.create_future()
        self.waiting[cookie] = future
        self._flush()
        try:
            return await future
        finally:
            self.waiting.pop(cookie, None)
            self.client.abandon(cookie)  # cancelled: stop retransmitting

    def _on_timer(self) -> None:
        self._timer = None
        self.client.handle_timer(self.loop.time())
        self._flush()

    def _flush(self) -> None:
        if self.transport is not None:
            for datagram in self.client.datagrams_to_send():
                self.transport.sendto(datagram)
        for outcome in self.client.outcomes():
            future = self.waiting.get(outcome.cookie)
            if future is not None and not future.done():
                future.set_result(outcome)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        due = self.client.next_timer()
        if due is not None:
            self._timer = self.loop.call_at(due, self._on_timer)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.transport is not None:
            self.transport.close()


class _Session:
    """What this engine remembers of a call: the last SDP each side gave (for the codec
    check of ``play``), the last one rtpengine wrote towards each side (its ports that
    side sends to) and where an announcement plays."""

    __slots__ = ("facing", "given", "playing")

    def __init__(self) -> None:
        self.given: dict[Side, SessionDescription] = {}
        self.facing: dict[Side, SessionDescription] = {}
        self.playing: Side | None = None


class RtpengineEngine:
    """A :class:`~gateway.media.engine.MediaEngine` backed by rtpengine's ng protocol.

    ``address`` is rtpengine's ng listener (``--listen-ng``). ``prompt_dir`` is where
    rtpengine finds the prompts (``<prompt_dir>/fr/<name>.wav``, read by rtpengine
    itself): the gateway's own folder when both run on one host, a copy otherwise.
    Calls get rtpengine call-ids prefixed with a token of this engine, so that several
    gateways may share one rtpengine.
    """

    def __init__(
        self,
        address: tuple[str, int],
        *,
        prompt_dir: Path | None = None,
        poll_interval: float = POLL_INTERVAL,
        retransmit_interval: float = ng.RETRANSMIT_INTERVAL,
        attempts: int = ng.ATTEMPTS,
    ) -> None:
        self.address = address
        self.prompt_dir = prompt_dir or PROMPT_DIR
        self.poll_interval = poll_interval
        self._retransmit_interval = retransmit_interval
        self._attempts = attempts
        self._prefix = secrets.token_hex(4)
        self._sessions: dict[str, _Session] = {}
        self._ng: _NgTransport | None = None
        self._poller: asyncio.Task[None] | None = None
        self._handler: TimeoutHandler | None = None
        self._event_handler: MediaEventHandler | None = None

    # --- MediaEngine protocol ----------------------------------------------------------

    async def start(self) -> None:
        """Open the ng socket, check that rtpengine answers, start the timeout poller."""
        if self._ng is not None:
            return
        loop = asyncio.get_running_loop()
        client = ng.NgClient(retransmit_interval=self._retransmit_interval, attempts=self._attempts)
        host, _ = self.address
        family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
        try:
            _, protocol = await loop.create_datagram_endpoint(
                lambda: _NgTransport(client, loop), remote_addr=self.address, family=family
            )
        except OSError as exc:
            raise MediaError(f"rtpengine at {self._where}: {exc}") from exc
        self._ng = protocol
        try:
            reply = await self._request(ng.ping(), "start")
        except MediaError:
            protocol.close()
            self._ng = None
            raise
        logger.info("rtpengine at %s answers %s", self._where, ng.text(reply.get(b"result")))
        if self.poll_interval > 0:
            self._poller = loop.create_task(self._poll(), name="rtpengine-timeout-poller")

    async def close(self) -> None:
        """Delete every call this engine made in rtpengine, close the socket."""
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None
        # Side by side: with rtpengine gone, each delete waits out its retransmissions.
        calls = list(self._sessions)
        results = await asyncio.gather(
            *(self.delete(call_id) for call_id in calls), return_exceptions=True
        )
        for call_id, result in zip(calls, results, strict=True):
            if isinstance(result, MediaError):
                logger.warning("call %s: not deleted in rtpengine: %s", call_id, result)
            elif isinstance(result, BaseException):
                raise result
        if self._ng is not None:
            self._ng.close()
            self._ng = None

    async def offer(
        self, call_id: str, sdp: SessionDescription, *, from_side: Side
    ) -> SessionDescription:
        """``offer`` with ``from_side``'s tag as the From tag (RFC 3264 5)."""
        return await self._negotiate(call_id, sdp, from_side, answer=False)

    async def answer(
        self, call_id: str, sdp: SessionDescription, *, from_side: Side
    ) -> SessionDescription:
        """``answer`` with ``from_side``'s tag as the To tag (RFC 3264 6)."""
        if call_id not in self._sessions:
            raise MediaError(f"call {call_id}: answer without an offer")
        return await self._negotiate(call_id, sdp, from_side, answer=True)

    async def delete(self, call_id: str) -> SessionStats | None:
        """``delete`` the call at once; its reply carries the final counters (``None``
        when rtpengine had already dropped the call on its own timeout)."""
        if self._sessions.pop(call_id, None) is None:
            return None
        reply = await self._known(ng.delete(self._rtpe_id(call_id)), f"call {call_id}")
        return None if reply is None else ng.session_stats(call_id, reply)

    async def stats(self, call_id: str) -> SessionStats | None:
        """``query``: the counters rtpengine keeps per tag, media and stream (``None``
        for a call it no longer holds)."""
        if call_id not in self._sessions:
            return None
        reply = await self._known(ng.query(self._rtpe_id(call_id)), f"call {call_id}")
        return None if reply is None else ng.session_stats(call_id, reply)

    async def play(self, call_id: str, prompt: str, *, to_side: Side = Side.A) -> None:
        """``play media`` of the prompt's WAV file to ``to_side``, repeated until stopped.

        rtpengine encodes the file in the first codec of that side's negotiated list
        that it supports (README, "play media"); the gateway checks first that the side
        negotiated G.711 at all, as the engine interface promises.
        """
        session = self._sessions.get(call_id)
        if session is None:
            raise MediaError(f"call {call_id}: no media session to play {prompt!r} in")
        if (
            not _PROMPT_NAME.fullmatch(prompt)
            or not (PROMPT_DIR / PROMPT_LANG / f"{prompt}.wav").is_file()
        ):
            raise MediaError(f"call {call_id}: cannot play {prompt!r}: no such prompt")
        if not self._negotiated_g711(session, to_side):
            raise MediaError(
                f"call {call_id}: no audio stream towards side {to_side.name} "
                f"negotiated G.711 (PCMU or PCMA) to play {prompt!r} with"
            )
        path = str(self.prompt_dir / PROMPT_LANG / f"{prompt}.wav")
        message = ng.play_media(self._rtpe_id(call_id), path, to_side=to_side, repeat=PLAY_REPEAT)
        if session.playing is not None and session.playing is not to_side:
            await self.stop_playing(call_id)
        await self._request(message, f"call {call_id}: play {prompt!r}")
        session.playing = to_side

    async def stop_playing(self, call_id: str) -> None:
        """``stop media`` towards the side an announcement was started to."""
        session = self._sessions.get(call_id)
        if session is None or session.playing is None:
            return
        side, session.playing = session.playing, None
        outcome = await self._send(ng.stop_media(self._rtpe_id(call_id), to_side=side))
        if isinstance(outcome, ng.NgFailure):
            if outcome.timed_out:
                raise MediaError(f"call {call_id}: rtpengine at {self._where}: {outcome.reason}")
            # rtpengine had nothing playing any more (the call was renegotiated): done.
            logger.debug("call %s: %s", call_id, outcome.reason)

    def set_timeout_handler(self, handler: TimeoutHandler) -> None:
        """Register the callback run when rtpengine dropped a call (its ``--timeout``)."""
        self._handler = handler

    def set_event_handler(self, handler: MediaEventHandler) -> None:
        """Kept for the interface: rtpengine relays RFC 4733 events and RTCP feedback
        end to end and reports none of them over ng, so this handler never runs."""
        self._event_handler = handler

    async def request_keyframe(self, call_id: str, *, to_side: Side) -> bool:
        """False: ng 10.5 has no command to send a PLI or FIR (RFC 4585, RFC 5104), so
        the controller asks in the leg's signalling."""
        return False

    @property
    def ports_in_use(self) -> int:
        """Ports rtpengine holds for this engine's calls, counted from the SDPs it wrote:
        an RTP and an RTCP port per relayed stream and side (rtpengine binds both even
        for rtcp-mux). Other users of the same rtpengine are not counted."""
        total = 0
        for session in self._sessions.values():
            for sdp in session.facing.values():
                total += 2 * sum(1 for media in sdp.media if media.port != 0)
        return total

    @property
    def ports_idle(self) -> int:
        """0: rtpengine binds a call's ports at its offer and closes them at its end."""
        return 0

    @property
    def session_count(self) -> int:
        """Calls this engine made in rtpengine and has not deleted."""
        return len(self._sessions)

    # --- beyond the protocol -----------------------------------------------------------

    async def check_timeouts(self) -> list[str]:
        """Look once for calls rtpengine no longer holds; run the handler for each.

        One ``list`` gives every call-id rtpengine holds; a call of ours missing from it
        is confirmed by a ``query`` (the list may be cut at its ``limit``) before it
        counts as dropped.
        """
        if not self._sessions:
            return []
        limit = max(64, 2 * len(self._sessions))
        held = ng.call_ids(await self._request(ng.list_calls(limit), "timeout check"))
        gone: list[str] = []
        for call_id in list(self._sessions):
            if self._rtpe_id(call_id) in held:
                continue
            outcome = await self._send(ng.query(self._rtpe_id(call_id)))
            if isinstance(outcome, ng.NgReply) or UNKNOWN_CALL not in outcome.reason:
                continue
            if self._sessions.pop(call_id, None) is None:
                continue  # deleted meanwhile by the controller
            gone.append(call_id)
            logger.info("call %s: rtpengine dropped its media (%s)", call_id, outcome.reason)
            if self._handler is not None:
                try:
                    self._handler(call_id)
                except Exception:
                    logger.exception("media timeout handler failed for call %s", call_id)
        return gone

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval)
            try:
                await self.check_timeouts()
            except MediaError as exc:
                logger.warning("rtpengine timeout check failed: %s", exc)

    # --- internals ---------------------------------------------------------------------

    @property
    def _where(self) -> str:
        host, port = self.address
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def _rtpe_id(self, call_id: str) -> str:
        return f"{self._prefix}-{call_id}"

    async def _send(self, message: ng.NgDict) -> ng.NgOutcome:
        if self._ng is None:
            return ng.NgFailure(b"", "engine not started", timed_out=True)
        return await self._ng.request(message)

    async def _request(self, message: ng.NgDict, what: str) -> ng.NgDict:
        """Send a command; its ``ok`` reply, or MediaError for an error or no reply."""
        outcome = await self._send(message)
        if isinstance(outcome, ng.NgFailure):
            raise MediaError(f"{what}: rtpengine at {self._where}: {outcome.reason}")
        return outcome.message

    async def _known(self, message: ng.NgDict, what: str) -> ng.NgDict | None:
        """Like :meth:`_request`, but None when rtpengine does not know the call."""
        outcome = await self._send(message)
        if isinstance(outcome, ng.NgFailure):
            if not outcome.timed_out and UNKNOWN_CALL in outcome.reason:
                logger.info("%s: rtpengine no longer holds it", what)
                return None
            raise MediaError(f"{what}: rtpengine at {self._where}: {outcome.reason}")
        return outcome.message

    async def _negotiate(
        self, call_id: str, sdp: SessionDescription, from_side: Side, *, answer: bool
    ) -> SessionDescription:
        what = f"call {call_id}: {'answer' if answer else 'offer'} from {from_side.name}"
        for i, media in enumerate(sdp.media):
            # Checked here so that both engines refuse the same SDPs: rtpengine would
            # take a stream with no address as one to be learnt from its packets.
            if media.port != 0 and sdp.connection_for(media) is None:
                raise MediaError(f"{what}: m-line {i} ({media.kind}) has no c= address")
            # SRTP (RFC 4568) is ended by the built-in relay only: rtpengine would need
            # its SDES flags per side, which this engine does not drive (docs).
            if media.port != 0 and is_secure(media):
                raise MediaError(
                    f"{what}: m-line {i} is {media.proto}: SRTP needs the built-in relay"
                )
        build = ng.answer if answer else ng.offer
        message = build(self._rtpe_id(call_id), sdp.serialize(), from_side=from_side)
        if not answer and any(_wants_g711(media) for media in sdp.media):
            # Debian's rtpengine transcodes (libavcodec): it adds these to the offer
            # and answers the offerer in its own codec, as the built-in relay does.
            message[b"codec"] = {b"transcode": [b"PCMU", b"PCMA"]}
        reply = await self._request(message, what)
        try:
            out = SessionDescription.parse(_bytes(reply.get(b"sdp")))
        except SdpError as exc:
            raise MediaError(f"{what}: rtpengine's SDP does not parse: {exc}") from exc
        session = self._sessions.setdefault(call_id, _Session())
        session.given[from_side] = sdp
        session.facing[from_side.other] = out
        return out

    @staticmethod
    def _negotiated_g711(session: _Session, to_side: Side) -> bool:
        receiver, sender = session.given.get(to_side), session.given.get(to_side.other)
        if receiver is None or sender is None:
            return False
        for theirs, other in zip(receiver.media, sender.media, strict=False):
            if theirs.kind != "audio" or theirs.port == 0 or other.port == 0:
                continue
            if negotiated_g711(theirs, other) is not None:
                return True
        return False


def _wants_g711(media: MediaDescription) -> bool:
    """An audio line the built-in relay would add G.711 to (transcode.augment_offer)."""
    return augment_offer(media.copy(), None) != []


def _bytes(value: object) -> bytes:
    if not isinstance(value, bytes):
        raise MediaError(f"rtpengine's reply carries no SDP (got {type(value).__name__})")
    return value


__all__ = ["RtpengineEngine", "parse_address"]
