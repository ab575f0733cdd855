"""The built-in media engine: RTP/RTCP anchoring for calls bridged by the controller.

A call's session holds one stream per m= line of its SDP, and each stream a leg per
side (:class:`~gateway.media.forwarding.Leg`). An SDP from side X is rewritten to carry
the port pair facing the *other* side, since that is the SDP the other side reads
(RFC 3264 offer/answer with the relay in the middle); the addresses in X's SDP tell
where X's media goes until X's own packets say otherwise. This module keeps that
bookkeeping, rewrites the descriptions (RFC 4566 / RFC 8866) and watches for dead
calls; the rest of the relay is in its own modules:

- :mod:`gateway.media.ports`: the even/odd UDP port pairs, bound on demand and pooled;
- :mod:`gateway.media.forwarding`: the hot path, latching (RFC 4961) and counters;
- :mod:`gateway.media.player`: the announcement looped to a waiting caller.

The hot path reads no clock: one watcher task per engine compares the packet totals of
answered calls between checks to find those whose media stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import logging
import os
import socket
from collections.abc import Callable

from gateway.media.dtmf import EventReceiver, telephone_event_format
from gateway.media.engine import (
    DirectionStats,
    MediaError,
    MediaEventHandler,
    SessionStats,
    StreamStats,
    TimeoutHandler,
)
from gateway.media.forwarding import Address, Forwarder, Leg, PortPair
from gateway.media.player import Player, negotiated_g711
from gateway.media.ports import PortPool
from gateway.media.prompts import PromptError, load_prompt
from gateway.media.quality import StreamQuality, clock_rates
from gateway.media.rtp import keyframe_request
from gateway.media.srtp import (
    Crypto,
    SrtpLeg,
    is_secure,
    new_crypto,
    plain_profile,
    secure_profile,
    usable_cryptos,
)
from gateway.media.transcode import Transcoder, augment_offer, plan_answer
from gateway.model.events import Dtmf, FastUpdate, Side
from gateway.model.sdp import (
    Connection,
    Direction,
    MediaDescription,
    SdpError,
    SessionDescription,
)

logger = logging.getLogger(__name__)

# Attributes of ICE (RFC 8839 section 5) that make no sense once the relay anchors media.
ICE_ATTRIBUTES = frozenset(
    {
        "candidate",
        "ice-ufrag",
        "ice-pwd",
        "ice-options",
        "ice-lite",
        "ice-mismatch",
        "ice-pacing",
        "end-of-candidates",
        "remote-candidates",
    }
)

# At most one key-frame request a second from one side reaches the controller: a
# receiver facing loss may send a PLI with every RTCP report (RFC 4585 3.4).
KEYFRAME_REPORT_INTERVAL = 1.0


def keyframe_feedback(media: MediaDescription | None) -> list[str]:
    """The ``a=rtcp-fb`` values of an m= line that ask for key frames: ``nack pli``
    (RFC 4585 6.3.1) and ``ccm fir`` (RFC 5104 7.1)."""
    if media is None:
        return []
    found: list[str] = []
    for value in media.get_attrs("rtcp-fb"):
        words = value.lower().split()
        if words[1:3] in (["nack", "pli"], ["ccm", "fir"]):
            found.append(value)
    return found


class _KeyframeReporter:
    """Reports one side's PLI/FIR to the engine's handler, at most once a second."""

    __slots__ = ("_clock", "_last", "_report")

    def __init__(self, clock: Callable[[], float], report: Callable[[], None]) -> None:
        self._clock = clock
        self._report = report
        self._last = -KEYFRAME_REPORT_INTERVAL

    def __call__(self) -> None:
        now = self._clock()
        if now - self._last >= KEYFRAME_REPORT_INTERVAL:
            self._last = now
            self._report()


class _Stream:
    """One relayed m= line with both of its legs."""

    __slots__ = ("active", "held", "index", "kind", "legs", "offered", "stats", "transcoders")

    def __init__(self, index: int, kind: str) -> None:
        self.index = index
        self.kind = kind
        self.stats = StreamStats(index=index, kind=kind)
        self.legs = {Side.A: Leg(self.stats.a_to_b), Side.B: Leg(self.stats.b_to_a)}
        self.active = False
        self.held = False
        # Our a=crypto lines in an offer to a side, until its answer picks one.
        self.offered: dict[Side, list[Crypto]] = {}
        # Our transcoder in each side's ``rtp_in`` (gateway.media.transcode), if any.
        self.transcoders: dict[Side, Transcoder] = {}

    def packet_total(self) -> int:
        a, b = self.stats.a_to_b, self.stats.b_to_a
        return a.rtp_packets + a.rtcp_packets + b.rtp_packets + b.rtcp_packets


class _Session:
    """One call's streams and what the media-timeout watcher knows of them."""

    __slots__ = ("answered", "call_id", "last_activity", "last_total", "streams", "timed_out")

    def __init__(self, call_id: str) -> None:
        self.call_id = call_id
        self.streams: list[_Stream] = []
        self.answered = False
        self.last_activity = 0.0
        self.last_total = 0
        self.timed_out = False

    def packet_total(self) -> int:
        total = 0
        for s in self.streams:
            total += s.packet_total()
        return total

    def on_hold(self) -> bool:
        """Every live stream is inactive: silence is expected, not a dead call."""
        live = [s for s in self.streams if s.active]
        return bool(live) and all(s.held for s in live)


@functools.lru_cache(maxsize=4096)
def _usable_host(address: str, ipv6: bool) -> str | None:
    """Canonical text of an SDP address of our family, None when unusable (memoised:
    the same few kiosk and station addresses come back in every call)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        logger.info("SDP address %r is not an IP literal: waiting for latching", address)
        return None
    if ip.is_unspecified or (ip.version == 6) != ipv6:
        return None
    return str(ip)


def _fill_quality(stats: DirectionStats, quality: StreamQuality) -> None:
    """Copy a leg's reception figures (RFC 3550 A.1-A.8, 6.4.1) into its counters."""
    q = quality.figures()
    stats.expected = q.expected
    stats.lost = q.lost
    stats.jitter = q.jitter if q.expected else None
    stats.jitter_max = q.jitter_max if q.expected else None
    stats.reported_fraction_lost = q.reported_fraction_lost
    stats.reported_lost = q.reported_lost
    stats.reported_jitter = q.reported_jitter
    stats.rtt = q.rtt
    stats.rtt_max = q.rtt_max


def _set_clock_rates(stream: _Stream) -> None:
    """Both legs learn the RTP clock rates of the stream's payload types (RFC 4566 6)."""
    maps: list[str] = []
    for leg in stream.legs.values():
        if leg.media is not None:
            maps.extend(leg.media.get_attrs("rtpmap"))
    rates, default = clock_rates(maps, stream.kind)
    for leg in stream.legs.values():
        leg.quality.set_rates(rates, default)


def _snapshot(stream: _Stream) -> StreamStats:
    def copy(d: DirectionStats, quality: StreamQuality) -> DirectionStats:
        snap = DirectionStats(d.rtp_packets, d.rtp_bytes, d.rtcp_packets, d.rtcp_bytes)
        _fill_quality(snap, quality)
        return snap

    return StreamStats(
        index=stream.index,
        kind=stream.kind,
        a_to_b=copy(stream.stats.a_to_b, stream.legs[Side.A].quality),
        b_to_a=copy(stream.stats.b_to_a, stream.legs[Side.B].quality),
        a_peer=stream.legs[Side.A].rtp_dest,
        b_peer=stream.legs[Side.B].rtp_dest,
        transcoded=stream.stats.transcoded,
        refused=stream.stats.refused,
    )


class RelayEngine:
    """The built-in :class:`~gateway.media.engine.MediaEngine`: a UDP RTP/RTCP relay.

    Ports come in even/odd RTP/RTCP pairs (RFC 3550 11) from ``[port_min, port_max]``;
    a port some other process holds is skipped, never fatal. With ``timeout > 0`` the
    timeout handler runs once when an answered call has seen no packet for that long.
    """

    def __init__(
        self,
        *,
        bind_host: str = "127.0.0.1",
        advertise_host: str | None = None,
        port_min: int = 20000,
        port_max: int = 29999,
        timeout: float = 60.0,
    ) -> None:
        try:
            bind_ip = ipaddress.ip_address(bind_host)
        except ValueError as exc:
            raise ValueError(f"bind_host must be an IP address, got {bind_host!r}") from exc
        if bind_ip.is_unspecified and advertise_host is None:
            raise ValueError(f"bind_host {bind_host} is a wildcard: set advertise_host")
        self.bind_host = bind_host
        self.advertise_host = advertise_host or bind_host
        # Immutable: every rewritten description shares it.
        self._advertised = Connection.for_address(self.advertise_host)
        self.port_min = port_min
        self.port_max = port_max
        self.timeout = timeout
        self._ipv6 = bind_ip.version == 6
        self._forwarder = Forwarder(self._now)
        self._pool = PortPool(
            bind_host=bind_host,
            family=socket.AF_INET6 if self._ipv6 else socket.AF_INET,
            port_min=port_min,
            port_max=port_max,
            relay_rtp=self._forwarder.relay_rtp,
            relay_rtcp=self._forwarder.relay_rtcp,
            loop=self._running_loop,
            clock=self._now,
        )
        self._sessions: dict[str, _Session] = {}
        self._handler: TimeoutHandler | None = None
        self._event_handler: MediaEventHandler | None = None
        self._fir_sequence = 0
        self._ssrc = int.from_bytes(os.urandom(4), "big")  # ours, in RTCP we originate
        self._watcher: asyncio.Task[None] | None = None
        self._players: dict[str, Player] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    # --- MediaEngine protocol ----------------------------------------------------------

    async def start(self) -> None:
        """Start the media-timeout watcher (also started by the first offer)."""
        self._ensure_running()

    async def close(self) -> None:
        """Release every session, close every socket and stop the watcher."""
        for call_id in list(self._sessions):
            await self.delete(call_id)
        self._pool.close()
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
        self._loop = None  # a later start may run on another loop

    async def offer(
        self, call_id: str, sdp: SessionDescription, *, from_side: Side
    ) -> SessionDescription:
        """Relay an offer from ``from_side``: allocate the other side's ports, rewrite the SDP."""
        self._ensure_running()
        try:
            return self._negotiate(call_id, sdp, from_side, answer=False)
        except (SdpError, OSError) as exc:
            raise MediaError(
                f"call {call_id}: offer from {from_side.name}: {exc}", cause=exc
            ) from exc

    async def answer(
        self, call_id: str, sdp: SessionDescription, *, from_side: Side
    ) -> SessionDescription:
        """Relay the answer from ``from_side`` (RFC 3264 6); arms the media timeout."""
        self._ensure_running()
        try:
            return self._negotiate(call_id, sdp, from_side, answer=True)
        except (SdpError, OSError) as exc:
            raise MediaError(
                f"call {call_id}: answer from {from_side.name}: {exc}", cause=exc
            ) from exc

    async def delete(self, call_id: str) -> SessionStats | None:
        """Give the call's ports back (to the pool) and return the final counters."""
        self._stop_player(call_id)
        session = self._sessions.pop(call_id, None)
        if session is None:
            return None
        final: list[StreamStats] = []
        for stream in session.streams:
            for leg in stream.legs.values():
                self._pool.release(leg)
            # Released sockets count nothing more: the live counters are final, no copy.
            stats = stream.stats
            stats.a_peer = stream.legs[Side.A].rtp_dest
            stats.b_peer = stream.legs[Side.B].rtp_dest
            _fill_quality(stats.a_to_b, stream.legs[Side.A].quality)
            _fill_quality(stats.b_to_a, stream.legs[Side.B].quality)
            final.append(stats)
        logger.debug("call %s: media relay released", call_id)
        return SessionStats(call_id, final)

    async def stats(self, call_id: str) -> SessionStats | None:
        """A snapshot of a live call's counters and latched peers."""
        session = self._sessions.get(call_id)
        if session is None:
            return None
        return SessionStats(call_id, [_snapshot(s) for s in session.streams])

    async def play(self, call_id: str, prompt: str, *, to_side: Side = Side.A) -> None:
        """Loop ``prompt`` to ``to_side`` from the first audio stream that negotiated G.711.

        Sent from the RTP socket facing that side, in the side's preferred G.711 codec
        that the other side agreed to (:func:`~gateway.media.player.negotiated_g711`).
        """
        session = self._sessions.get(call_id)
        if session is None:
            raise MediaError(f"call {call_id}: no media session to play {prompt!r} in")
        for stream in session.streams:
            leg = stream.legs[to_side]
            if stream.kind != "audio" or not stream.active or leg.rtp_sock is None:
                continue
            codec = negotiated_g711(leg.media, stream.legs[to_side.other].media)
            if codec is None:
                continue
            pt, name = codec
            try:
                loaded = load_prompt(prompt, name, pt)
            except PromptError as exc:
                raise MediaError(
                    f"call {call_id}: cannot play {prompt!r}: {exc}", cause=exc
                ) from exc
            self._stop_player(call_id)
            player = Player(leg, loaded, self._running_loop())
            self._players[call_id] = player
            player.start()
            return
        raise MediaError(
            f"call {call_id}: no audio stream towards side {to_side.name} "
            f"negotiated G.711 (PCMU or PCMA) to play {prompt!r} with"
        )

    async def stop_playing(self, call_id: str) -> None:
        """Stop a call's announcement (the station's media takes over)."""
        self._stop_player(call_id)

    def set_timeout_handler(self, handler: TimeoutHandler) -> None:
        """Register the callback run with ``call_id`` when a call's media stops."""
        self._handler = handler

    def set_event_handler(self, handler: MediaEventHandler) -> None:
        """Register the callback for digits and key-frame requests the relay ends."""
        self._event_handler = handler

    async def request_keyframe(self, call_id: str, *, to_side: Side) -> bool:
        """Send ``to_side`` a PLI (or a FIR where it only takes ``ccm fir``) for each
        live video stream it negotiated such feedback on; False if none.

        A request names the sender's SSRC (RFC 4585 6.3.1, RFC 5104 4.3.1): to a side
        that has sent no video yet (a station starts after its 200 OK) it goes as soon
        as its first RTP packet tells the SSRC.
        """
        session = self._sessions.get(call_id)
        if session is None:
            return False
        sent = False
        for stream in session.streams:
            leg = stream.legs[to_side]
            feedback = keyframe_feedback(leg.media)
            if stream.kind != "video" or not stream.active or not feedback:
                continue
            if leg.ssrc is None:
                leg.on_ssrc = functools.partial(self._keyframe_request, call_id, leg, feedback)
                sent = True
            elif self._keyframe_request(call_id, leg, feedback):
                sent = True
        return sent

    def _keyframe_request(self, call_id: str, leg: Leg, feedback: list[str]) -> bool:
        """Send ``leg``'s side one PLI or FIR naming its SSRC; whether it went out."""
        if leg.ssrc is None:
            return False
        mux = leg.media is not None and leg.media.has_attr("rtcp-mux")
        sock, dest = (leg.rtp_sock, leg.rtp_dest) if mux else (leg.rtcp_sock, leg.rtcp_dest)
        if sock is None or dest is None:
            return False
        if any("pli" in value.lower() for value in feedback):
            packet = keyframe_request(self._ssrc, leg.ssrc)
        else:
            self._fir_sequence += 1
            packet = keyframe_request(self._ssrc, leg.ssrc, fir_sequence=self._fir_sequence)
        if leg.srtp is not None:  # SRTCP to an SRTP side (RFC 3711 3.4)
            protected = leg.srtp.protect_rtcp(packet)
            if protected is None:
                return False
            packet = protected
        try:
            sock.sendto(packet, dest)
        except OSError as exc:
            logger.info("call %s: key-frame request to %s failed: %s", call_id, dest, exc)
            return False
        return True

    @property
    def ports_in_use(self) -> int:
        """UDP ports held by calls right now (two per allocated leg)."""
        return self._pool.in_use

    @property
    def ports_idle(self) -> int:
        """UDP ports bound but held by no call: the pool that later calls draw on."""
        return self._pool.idle

    @property
    def session_count(self) -> int:
        """Live relay sessions."""
        return len(self._sessions)

    # --- beyond the protocol -----------------------------------------------------------

    @property
    def send_errors(self) -> int:
        """Datagrams dropped because sending them on failed."""
        return self._forwarder.send_errors

    def played_packets(self, call_id: str) -> int:
        """Announcement packets sent to a call so far (0 when none is playing)."""
        player = self._players.get(call_id)
        return player.sent if player is not None else 0

    def _stop_player(self, call_id: str) -> None:
        player = self._players.pop(call_id, None)
        if player is not None:
            player.stop()

    # --- offer/answer ------------------------------------------------------------------

    def _negotiate(
        self, call_id: str, sdp: SessionDescription, from_side: Side, *, answer: bool
    ) -> SessionDescription:
        session = self._sessions.get(call_id)
        if session is None and answer:
            raise MediaError(f"call {call_id}: answer without an offer")
        to_side = from_side.other
        new_session = session is None
        if session is None:
            session = _Session(call_id)
        streams = list(session.streams)
        relayable: list[bool] = []
        needed: list[tuple[Leg, Leg]] = []
        for i, media in enumerate(sdp.media):
            # RFC 4568 7.1.2: a secure line with no a=crypto the relay can use is refused.
            ok = self._relayable(media) and (not is_secure(media) or bool(usable_cryptos(media)))
            relayable.append(ok)
            if i == len(streams):
                streams.append(_Stream(i, media.kind))
            if not ok:
                continue
            if sdp.connection_for(media) is None:
                raise MediaError(f"call {call_id}: m-line {i} ({media.kind}) has no c= address")
            legs = streams[i].legs
            if legs[to_side].port is None:
                needed.append((legs[to_side], legs[from_side]))

        # Read and allocate everything before changing anything, so a failure leaks no
        # port and leaves a running session as it was.
        out = sdp.copy()
        pool = self._pool
        pairs: list[PortPair] = []
        try:
            for _ in needed:
                pairs.append(pool.take())
        except MediaError as exc:
            for pair in pairs:
                pool.give_back(pair)
            raise MediaError(
                f"call {call_id}: needed {len(needed)} port pairs, "
                f"found {len(pairs)} in {self.port_min}-{self.port_max} ({exc})",
                cause=exc,
            ) from exc

        session.streams = streams
        if new_session:
            self._sessions[call_id] = session
        for (leg, other), pair in zip(needed, pairs, strict=True):
            pool.attach(pair, leg, other)

        for i, media in enumerate(sdp.media):
            stream = streams[i]
            if stream.kind != media.kind:  # RFC 3264 8.3: a freed slot may change media
                stream.kind = stream.stats.kind = media.kind
            if not relayable[i]:
                self._deactivate(stream)
                out.media[i].port = 0
                offered = stream.legs[to_side].media  # the offerer's line, when it had one
                stream.stats.refused = answer and offered is not None and offered.port != 0
                if stream.stats.refused and media.kind == "video":
                    logger.info(
                        "call %s: video m-line %d refused by %s (no video codec in common, or"
                        " no video there; video is never transcoded): the call goes on audio-only",
                        call_id,
                        i,
                        from_side.name,
                    )
                continue
            stream.stats.refused = False
            stream.active = True
            effective = sdp.effective_direction(media)
            conn = sdp.connection_for(media)
            assert conn is not None  # checked above
            stream.held = effective is Direction.INACTIVE or conn.is_unspecified
            rtp_dest, rtcp_dest = self._sdp_addresses(conn, media)
            leg = stream.legs[from_side]
            leg.set_sdp_addresses(rtp_dest, rtcp_dest)
            # Kept as handed over (callers never change a description they gave the
            # engine: the controller makes new ones): the announcement reads it to pick
            # its codec, the in-band interworking to see what each side takes.
            leg.media = media
            _set_clock_rates(stream)
            self._rewrite_media(out.media[i], stream.legs[to_side])
            self._secure(call_id, stream, media, out.media[i], from_side, answer=answer)
            if stream.kind == "audio":
                self._transcode(call_id, stream, out.media[i], from_side, answer=answer)
            if answer:
                self._end_in_band(call_id, stream, out.media[i], offerer=to_side)
        if out.connection is not None:
            out.connection = self._advertised
        out.remove_attrs(ICE_ATTRIBUTES)
        out.bump_version()

        if answer:
            # The clock starts (again) at each answer: media may rightly have been
            # silent until now, for instance during a hold that this answer ends.
            session.answered = True
            session.timed_out = False
            session.last_total = session.packet_total()
            session.last_activity = self._now()
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "call %s: %s from %s relayed, %d port(s) in use",
                call_id,
                "answer" if answer else "offer",
                from_side.name,
                pool.in_use,
            )
        return out

    @staticmethod
    def _relayable(media: MediaDescription) -> bool:
        # A UDP relay cannot anchor TCP media (TCP/BFCP, TCP/MSRP, ...): such lines are
        # refused with port 0, the way RFC 3264 6 rejects a stream.
        return media.port != 0 and not media.proto.upper().startswith("TCP")

    def _rewrite_media(self, media: MediaDescription, leg: Leg) -> None:
        assert leg.port is not None
        media.port = leg.port
        media.port_count = None
        if media.connection is not None:
            media.connection = self._advertised
        media.extra_connections = []
        media.remove_attrs(ICE_ATTRIBUTES)
        if media.has_attr("rtcp"):
            conn = self._advertised
            value = f"{leg.port + 1} {conn.nettype} {conn.addrtype} {conn.address}"
            media.attributes = [
                ("rtcp", value) if name == "rtcp" else (name, v) for name, v in media.attributes
            ]

    def _secure(
        self,
        call_id: str,
        stream: _Stream,
        media: MediaDescription,
        out: MediaDescription,
        from_side: Side,
        *,
        answer: bool,
    ) -> None:
        """SDES (RFC 4568) per leg: SRTP ends in the relay on each side that uses it.

        ``media`` is the side's own line, ``out`` its rewritten copy for the other
        side. The key a side writes is the key it sends with (RFC 4568 6.1): the relay
        unprotects that side's packets with it and protects what it sends to the side
        with a key of its own, written only in SDP going to that side. An answer mirrors
        the profile of the offer it answers (RFC 4568 7.1.3); an offer is secure
        towards a side only if that side already uses SRTP in this call, else plain
        RTP/AVP without any a=crypto (so each SDP says what the relay really does).
        """
        leg, other = stream.legs[from_side], stream.legs[from_side.other]
        offered = stream.offered.pop(from_side, None)
        if is_secure(media):
            theirs = usable_cryptos(media)  # not empty: checked by the caller
            if answer:
                ours = {c.tag: c for c in offered or []}
                same = [c for c in theirs if c.tag in ours and ours[c.tag].suite == c.suite]
                pick = same[0] if same else None
                if pick is None:
                    raise MediaError(
                        f"call {call_id}: SRTP answer from {from_side.name} picked no "
                        "a=crypto the relay offered"
                    )
                local = ours[pick.tag]
            else:
                pick = theirs[0]
                current = leg.srtp
                if current is not None and current.local.suite == pick.suite:
                    local = Crypto(pick.tag, pick.suite, current.local.key)  # 7.1.4: kept
                else:
                    local = new_crypto(pick.tag, pick.suite)
            current = leg.srtp
            if current is None or (current.local.suite, current.local.key) != (
                local.suite,
                local.key,
            ):
                self._set_srtp(leg, SrtpLeg(pick, local))
            else:  # our key goes on, and with it our SRTP context (no keystream reuse)
                current.local = local
                if current.remote != pick:
                    current.rekey_remote(pick)
        else:
            if answer and offered:
                raise MediaError(
                    f"call {call_id}: {from_side.name} answered an SRTP offer with {media.proto}"
                )
            self._set_srtp(leg, None)
        out.remove_attrs("crypto")
        if answer:
            if other.srtp is not None:  # answering a secure offer: secure, our key
                out.proto = secure_profile(out.proto)
                out.add_attr("crypto", other.srtp.local.serialize())
            else:
                out.proto = plain_profile(out.proto)
        elif other.srtp is not None:  # that side already speaks SRTP: offer it again
            out.proto = secure_profile(out.proto)
            kept = other.srtp.local
            stream.offered[from_side.other] = [kept]
            out.add_attr("crypto", kept.serialize())
        else:
            out.proto = plain_profile(out.proto)

    @staticmethod
    def _set_srtp(leg: Leg, srtp: SrtpLeg | None) -> None:
        """Put a side's SRTP transforms first in ``*_in`` and last in ``*_out``."""
        old = leg.srtp
        if old is not None:
            for transforms, fn in (
                (leg.rtp_in, old.unprotect_rtp),
                (leg.rtcp_in, old.unprotect_rtcp),
                (leg.rtp_out, old.protect_rtp),
                (leg.rtcp_out, old.protect_rtcp),
            ):
                if fn in transforms:
                    transforms.remove(fn)
        leg.srtp = srtp
        if srtp is not None:
            leg.rtp_in.insert(0, srtp.unprotect_rtp)
            leg.rtcp_in.insert(0, srtp.unprotect_rtcp)
            leg.rtp_out.append(srtp.protect_rtp)
            leg.rtcp_out.append(srtp.protect_rtcp)

    def _sdp_addresses(
        self, conn: Connection, media: MediaDescription
    ) -> tuple[Address | None, Address | None]:
        """Where a side's SDP says it receives RTP and RTCP (RFC 3605 for ``a=rtcp``)."""
        rtp_host = _usable_host(conn.address, self._ipv6)
        rtcp_host = rtp_host
        rtcp_port = media.port + 1
        value = media.get_attr("rtcp")
        if value:
            parts = value.split()
            if parts[0].isascii() and parts[0].isdigit() and 0 < int(parts[0]) <= 65535:
                rtcp_port = int(parts[0])
                if len(parts) >= 4:
                    rtcp_host = _usable_host(parts[3], self._ipv6)
            else:
                logger.info("ignoring malformed a=rtcp:%s", value)
        rtp = (rtp_host, media.port) if rtp_host is not None else None
        # RTP on 65535 leaves no port for RTCP: wait for latching rather than send nowhere.
        rtcp = (rtcp_host, rtcp_port) if rtcp_host is not None and rtcp_port <= 65535 else None
        return rtp, rtcp

    def _end_in_band(
        self, call_id: str, stream: _Stream, answer: MediaDescription, *, offerer: Side
    ) -> None:
        """Answer in the relay's name what the offerer listed and the answerer lacks.

        RFC 3264 6.1 lets an answer keep only formats of the offer, so the relay may add
        the offerer's ``telephone-event`` (RFC 4733 7.1) or its key-frame ``rtcp-fb``
        lines (RFC 4585 4.2) to ``answer``, the copy going to the offerer; it then keeps
        those packets from the offerer and reports them (:meth:`set_event_handler`),
        since the answerer would not understand them. Anything else is left as it is.
        """
        offerer_leg = stream.legs[offerer]
        answerer_leg = stream.legs[offerer.other]
        for leg in (offerer_leg, answerer_leg):
            leg.events = None
            leg.on_keyframe_request = None
        offered, answered = offerer_leg.media, answerer_leg.media
        if offered is None or answered is None or answered.port == 0:
            return
        if stream.kind == "audio":
            event_format = telephone_event_format(offered)
            if event_format is None or telephone_event_format(answered) is not None:
                return
            pt, rate = event_format
            answer.formats.append(str(pt))
            for name in ("rtpmap", "fmtp"):
                for value in offered.get_attrs(name):
                    if value.split(maxsplit=1)[0] == str(pt):
                        answer.add_attr(name, value)
            offerer_leg.events = EventReceiver(
                pt, rate, functools.partial(self._emit, call_id, offerer)
            )
        elif stream.kind == "video":
            wanted = keyframe_feedback(offered)
            if not wanted or keyframe_feedback(answered):
                return
            kept = {"*", *answer.formats}
            for value in wanted:
                if value.split(maxsplit=1)[0] in kept:
                    answer.add_attr("rtcp-fb", value)
            offerer_leg.on_keyframe_request = _KeyframeReporter(
                self._now, functools.partial(self._emit, call_id, offerer, FastUpdate())
            )

    def _transcode(
        self, call_id: str, stream: _Stream, out: MediaDescription, from_side: Side, *, answer: bool
    ) -> None:
        """Audio transcoding where the sides share no codec (:mod:`gateway.media.transcode`).

        An offer going to a side gets the G.711 laws it lacks added (RFC 3264 5.1); an
        answer going back keeps only the offerer's formats (RFC 3264 6.1) and the
        transcoders of both directions are put last in each side's ``rtp_in``, after
        SRTP unprotect: they see and make plain RTP.
        """
        if not answer:
            added = augment_offer(out, stream.legs[from_side.other].media)
            if added and logger.isEnabledFor(logging.DEBUG):
                logger.debug(
                    "call %s: formats %s added for transcoding in the offer to %s",
                    call_id,
                    added,
                    from_side.other.name,
                )
            return
        offerer = from_side.other
        for side, old in stream.transcoders.items():
            if old in stream.legs[side].rtp_in:
                stream.legs[side].rtp_in.remove(old)
        stream.transcoders = {}
        stream.stats.transcoded = None
        offered, answered = stream.legs[offerer].media, stream.legs[from_side].media
        if offered is None or answered is None:
            return
        plan = plan_answer(offered, answered, out)
        for side, transcoder in ((offerer, plan.to_answerer), (from_side, plan.to_offerer)):
            if transcoder is not None:
                stream.legs[side].rtp_in.append(transcoder)
                stream.transcoders[side] = transcoder
        if plan.transcoded is not None:
            codecs = {offerer: plan.transcoded[0].name, from_side: plan.transcoded[1].name}
            stream.stats.transcoded = f"{codecs[Side.A]}/{codecs[Side.B]}"
            logger.info(
                "call %s: audio transcoded, %s on side A and %s on side B (no codec in common)",
                call_id,
                codecs[Side.A],
                codecs[Side.B],
            )

    def _emit(self, call_id: str, side: Side, event: Dtmf | FastUpdate) -> None:
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("call %s: %s from side %s ended in the relay", call_id, event, side.name)
        if self._event_handler is None:
            return
        try:
            self._event_handler(call_id, side, event)
        except Exception:
            logger.exception("media event handler failed for call %s", call_id)

    def _deactivate(self, stream: _Stream) -> None:
        """A stream refused or removed (port 0): free its ports until it comes back."""
        stream.active = False
        for leg in stream.legs.values():
            self._pool.release(leg)

    # --- loop, clock and media timeout -------------------------------------------------

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        # Kept: asyncio.get_running_loop() makes a getpid system call on Python 3.11.
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    def _now(self) -> float:
        return self._running_loop().time()

    def _ensure_running(self) -> None:
        loop = self._running_loop()
        if self.timeout > 0 and (self._watcher is None or self._watcher.done()):
            self._watcher = loop.create_task(self._watch(), name="media-timeout-watcher")

    async def _watch(self) -> None:
        interval = min(1.0, self.timeout / 4)
        while True:
            await asyncio.sleep(interval)
            self.check_timeouts()

    def check_timeouts(self) -> list[str]:
        """Run one timeout check now; return the calls whose handler was called."""
        now = self._now()
        fired: list[str] = []
        for session in list(self._sessions.values()):
            if not session.answered:
                continue
            total = session.packet_total()
            if total != session.last_total or session.on_hold():
                session.last_total = total
                session.last_activity = now
                session.timed_out = False
                continue
            if session.timed_out or now - session.last_activity < self.timeout:
                continue
            session.timed_out = True
            fired.append(session.call_id)
            logger.info(
                "call %s: no media for %.1f s", session.call_id, now - session.last_activity
            )
            if self._handler is not None:
                try:
                    self._handler(session.call_id)
                except Exception:
                    logger.exception("media timeout handler failed for call %s", session.call_id)
        return fired


__all__ = ["ICE_ATTRIBUTES", "RelayEngine"]
