"""Audio transcoding for the built-in relay, when the two sides share no audio codec.

A kiosk may offer only G.722 (ITU-T G.722, wideband) and a legacy station take only
G.711 (ITU-T G.711, A-law or u-law). The relay then stands in the middle of the
offer/answer (RFC 3264) on its own account:

- **Offer** (:func:`augment_offer`): the copy going to the answerer of an offer with
  no G.711 gets both G.711 laws appended (and, in a later offer, what the answerer is
  known to take), after the offerer's own formats, so that the answerer can pick one it
  has; the formats added are the relay's, not the offerer's.
- **Answer** (:func:`plan_answer`): the copy going back to the offerer keeps only
  formats the offerer listed (RFC 3264 6.1); when the answerer chose only added ones,
  it names the offerer's preferred codec instead. Each side thus reads an SDP that is
  true for what it will receive.
- **Packets** (:class:`Transcoder`, a ``Transform`` of :mod:`gateway.media.forwarding`):
  a packet whose codec the receiver did not agree to is decoded, resampled and encoded
  again; SSRC, sequence number, timestamp and marker are kept and only the payload type
  is rewritten, so one packet comes out for each packet in. RFC 3551 4.5.2 gives G.722
  an RTP clock of 8000 Hz although it samples at 16 kHz, and G.722 and G.711 both carry
  one octet per 8 kHz tick: the payload keeps its length and the timestamps stay right
  as they are. RFC 4733 telephone events pass untouched, their payload type renumbered
  when the two sides number them differently.

Codecs, resampling and G.711 laws all come from FFmpeg through PyAV (``av``): no codec,
filter or resampler is written here; the one level correction (:func:`level_table`,
6 dB) is a table of G.711 codes. Sans-IO: bytes in, bytes out, no socket and no clock.
Video is never transcoded (the relay drops a video stream the sides share no codec for).
"""

from __future__ import annotations

import array
import functools
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

import av
from av.audio.codeccontext import AudioCodecContext
from av.audio.frame import AudioFrame
from av.audio.resampler import AudioResampler

from gateway.model.sdp import MediaDescription

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AudioCodec:
    """An audio codec the relay can transcode: SDP name, clocks and FFmpeg codec."""

    name: str  # encoding name of a=rtpmap, upper case (RFC 3551 6)
    rtp_clock: int  # RTP timestamp rate: 8000 for G.722 too (RFC 3551 4.5.2)
    sample_rate: int  # what the codec itself samples at
    static_pt: int  # RFC 3551 table 4
    ffmpeg: str
    silence: int  # the octet of a silent sample (G.711); 0 where there is none


PCMU = AudioCodec("PCMU", 8000, 8000, 0, "pcm_mulaw", 0xFF)  # G.711 u-law, RFC 3551 4.5.14
PCMA = AudioCodec("PCMA", 8000, 8000, 8, "pcm_alaw", 0xD5)  # G.711 A-law, RFC 3551 4.5.14
G722 = AudioCodec("G722", 8000, 16000, 9, "g722", 0)  # ITU-T G.722 64 kbit/s, RFC 3551 4.5.2
CODECS = {codec.name: codec for codec in (PCMU, PCMA, G722)}
G711 = (PCMU, PCMA)
STATIC = {codec.static_pt: codec for codec in CODECS.values()}

# The formats that a static payload type names without a=rtpmap (RFC 3551 table 4),
# among those the relay needs to recognise.
_STATIC_NAMES = {0: ("PCMU", 8000), 8: ("PCMA", 8000), 9: ("G722", 8000), 13: ("CN", 8000)}

# At most this many 8 kHz ticks of samples wait in a pipeline beyond the packet being
# encoded: a resampler that comes out short once and long later cannot grow the delay.
MAX_BACKLOG = 160

Transform = Callable[[bytes], bytes | None]


def format_names(media: MediaDescription | None) -> dict[int, tuple[str, int]]:
    """``{pt: (ENCODING NAME, clock)}`` of an m= line's RTP formats (a=rtpmap, RFC 8866
    6.6, or the static numbers of RFC 3551 table 4); formats it cannot name are left out."""
    if media is None:
        return {}
    rtpmap = media.rtpmap()
    names: dict[int, tuple[str, int]] = {}
    for pt in media.payload_types:
        entry = rtpmap.get(pt)
        if entry is not None:
            names[pt] = (entry[0].upper(), entry[1])
        elif pt in _STATIC_NAMES:
            names[pt] = _STATIC_NAMES[pt]
    return names


def codec_formats(media: MediaDescription | None) -> list[tuple[int, AudioCodec]]:
    """The formats of an m= line that the relay can transcode, in its preference order."""
    found: list[tuple[int, AudioCodec]] = []
    for pt, (name, clock) in format_names(media).items():
        codec = CODECS.get(name)
        if codec is not None and clock == codec.rtp_clock:
            found.append((pt, codec))
    return found


def augment_offer(offer: MediaDescription, receiver: MediaDescription | None) -> list[int]:
    """Append to ``offer`` (the copy going to the answerer) codecs the relay can
    transcode to; return their payload types (RFC 3264 5.1: the order of the formats is a
    preference, so the offerer's own ones still come first).

    An offer with no G.711 at all gets both laws (PCMU, then PCMA), which every SIP
    endpoint takes; and any codec here that ``receiver``, the answerer's m= line from
    earlier in the session, lists and the offer lacks (a re-offer from a G.711 station
    to a G.722 kiosk). Nothing is added to an offer of which the relay can decode no
    format, nor a number the offer already uses.
    """
    if offer.kind != "audio" or offer.port == 0:
        return []
    present = codec_formats(offer)
    if not present:
        return []
    have = {codec for _, codec in present}
    wanted = [] if have & set(G711) else list(G711)
    for _, codec in codec_formats(receiver):
        if codec not in have and codec not in wanted:
            wanted.append(codec)
    taken = set(offer.formats)
    added: list[int] = []
    for codec in wanted:
        pt = str(codec.static_pt)
        if pt in taken:
            continue
        offer.formats.append(pt)
        offer.add_attr("rtpmap", f"{pt} {codec.name}/{codec.rtp_clock}")
        added.append(codec.static_pt)
    return added


@dataclass(frozen=True, slots=True)
class AnswerPlan:
    """How one audio stream is carried once the answer is known.

    ``to_answerer`` and ``to_offerer`` are the transforms of each direction (``None``
    when its packets go through as they are); ``transcoded`` names the two codecs when
    at least one direction changes codec.
    """

    to_answerer: Transcoder | None
    to_offerer: Transcoder | None
    transcoded: tuple[AudioCodec, AudioCodec] | None  # (offerer's, answerer's)


# The plan of a stream whose two sides share their formats and numbers.
PASS_THROUGH = AnswerPlan(to_answerer=None, to_offerer=None, transcoded=None)


def plan_answer(
    offer: MediaDescription, answer: MediaDescription, out: MediaDescription
) -> AnswerPlan:
    """Decide how a stream's audio crosses and rewrite ``out``, the copy of ``answer``
    going to the offerer, so that it lists only formats of ``offer`` (RFC 3264 6.1).

    ``offer`` is the offerer's own m= line (before :func:`augment_offer`), ``answer``
    the answerer's. Each side sends with the numbers of the SDP it read (RFC 3264 5.1);
    a packet in a codec its receiver agreed to keeps its payload, renumbered if the two
    sides number that codec differently; one in a codec the receiver lacks is
    transcoded to the receiver's preferred codec: the first transcodable format of the
    answer toward the answerer, of ``out`` toward the offerer.
    """
    offered = format_names(offer)
    answered = format_names(answer)
    if _mirrors(offered, answered):
        return PASS_THROUGH
    by_name_offered = _first_by_name(offered)
    by_name_answered = _first_by_name(answered)

    # The answer toward the offerer: only what the offerer listed.
    foreign = [pt for pt, name in answered.items() if name not in by_name_offered]
    if foreign:
        _drop_formats(out, foreign)
    offerer_target = _preferred(codec_formats(out))
    answerer_target = _preferred(codec_formats(answer))
    if offerer_target is None and answerer_target is not None:
        own = _preferred(codec_formats(offer))
        if own is not None:
            _put_first(out, offer, own[0])
            offerer_target = own

    # RFC 3264 5.1 and 6.1: a side receives with the numbers of its own SDP and sends
    # only formats both SDPs list. A peer that sends with the other side's number for
    # the same format is understood too (and renumbered).
    agreed = set(format_names(out).values())
    sent_by_offerer = {pt: name for pt, name in offered.items() if name in agreed}
    sent_by_offerer.update(format_names(out))
    to_answerer = _routes(sent_by_offerer, by_name_answered, answerer_target)
    sent_by_answerer = {pt: name for pt, name in offered.items() if name in answered.values()}
    sent_by_answerer.update(answered)
    receivable = _first_by_name({pt: name for pt, name in offered.items() if name in agreed})
    to_offerer = _routes(sent_by_answerer, receivable, offerer_target)
    transcoded = None
    if offerer_target is not None and answerer_target is not None:
        routes = (*to_answerer.values(), *to_offerer.values())
        if any(not isinstance(route, int) for route in routes):
            transcoded = (offerer_target[1], answerer_target[1])
    return AnswerPlan(
        to_answerer=Transcoder(to_answerer) if to_answerer else None,
        to_offerer=Transcoder(to_offerer) if to_offerer else None,
        transcoded=transcoded,
    )


def _mirrors(offered: dict[int, tuple[str, int]], answered: dict[int, tuple[str, int]]) -> bool:
    """Whether the answer kept only formats of the offer, under the offer's numbers, and
    the offer names none of them twice: then each side sends what the other agreed to,
    as it numbered it, and no packet needs touching (the common case, measured at about
    5 % of a call's CPU when the full plan ran for it)."""
    names = set(answered.values())
    return {pt: name for pt, name in offered.items() if name in names} == answered


def _first_by_name(names: dict[int, tuple[str, int]]) -> dict[tuple[str, int], int]:
    found: dict[tuple[str, int], int] = {}
    for pt, name in names.items():
        found.setdefault(name, pt)
    return found


def _preferred(formats: list[tuple[int, AudioCodec]]) -> tuple[int, AudioCodec] | None:
    return formats[0] if formats else None


def _drop_formats(media: MediaDescription, pts: Iterable[int]) -> None:
    gone = {str(pt) for pt in pts}
    media.formats = [f for f in media.formats if f not in gone]
    media.attributes = [
        (name, value)
        for name, value in media.attributes
        if not (
            name in ("rtpmap", "fmtp", "rtcp-fb")
            and value is not None
            and value.split(maxsplit=1)[0] in gone
        )
    ]


def _put_first(media: MediaDescription, source: MediaDescription, pt: int) -> None:
    """Name the offerer's codec ``pt`` first in ``media``, with its own rtpmap and fmtp."""
    media.formats.insert(0, str(pt))
    for name in ("rtpmap", "fmtp"):
        for value in source.get_attrs(name):
            if value.split(maxsplit=1)[0] == str(pt):
                media.add_attr(name, value)


# A route maps a payload type as sent to: a payload type to renumber to (no new
# payload), or a (from codec, to codec, payload type) to transcode.
Route = int | tuple[AudioCodec, AudioCodec, int]


def _routes(
    sent: dict[int, tuple[str, int]],
    receivable: dict[tuple[str, int], int],
    target: tuple[int, AudioCodec] | None,
) -> dict[int, Route]:
    routes: dict[int, Route] = {}
    for pt, name in sent.items():
        agreed = receivable.get(name)
        if agreed is not None:
            if agreed != pt:
                routes[pt] = agreed  # same codec, numbered differently (RFC 4733 events too)
            continue
        codec = CODECS.get(name[0])
        if codec is not None and name[1] == codec.rtp_clock and target is not None:
            routes[pt] = (codec, target[1], target[0])
    return routes


class Transcoder:
    """The transform of one direction of one audio stream: RTP packet in, packet out.

    Packets are chosen by payload type (RFC 3550 5.1); anything else (RTCP on a muxed
    port, RFC 5761 4, a format with no route, a packet too short to be RTP) goes through
    as it is. A packet the decoder refuses is dropped (``None``): its receiver could not
    play it either. Codec state is per SSRC: a new SSRC starts afresh.
    """

    __slots__ = ("_pipes", "_routes", "_ssrc", "dropped", "packets")

    def __init__(self, routes: dict[int, Route]) -> None:
        self._routes = routes
        self._pipes: dict[int, _Pipeline] = {}
        self._ssrc = -1
        self.packets = 0  # transcoded so far
        self.dropped = 0

    @property
    def routes(self) -> dict[int, Route]:
        """What each payload type as sent becomes (read-only use: tests, logs)."""
        return dict(self._routes)

    def __call__(self, packet: bytes) -> bytes | None:
        if len(packet) < 12 or packet[0] >> 6 != 2 or 192 <= packet[1] <= 223:
            return packet
        route = self._routes.get(packet[1] & 0x7F)
        if route is None:
            return packet
        second = bytes(((packet[1] & 0x80) | (route if isinstance(route, int) else route[2]),))
        if isinstance(route, int):
            return packet[:1] + second + packet[2:]
        start, end = _payload_bounds(packet)
        if start > end:
            self.dropped += 1
            return None
        ssrc = int.from_bytes(packet[8:12], "big")
        if ssrc != self._ssrc:
            self._ssrc = ssrc
            self._pipes.clear()
        pipe = self._pipes.get(packet[1] & 0x7F)
        if pipe is None:
            pipe = self._pipes[packet[1] & 0x7F] = _Pipeline(route[0], route[1])
        try:
            payload = pipe.convert(packet[start:end])
        except av.FFmpegError as exc:
            self.dropped += 1
            logger.debug("transcoding %s to %s failed: %s", route[0].name, route[1].name, exc)
            return None
        self.packets += 1
        # The padding (RFC 3550 5.1, P bit) goes with the old payload.
        return bytes((packet[0] & 0xDF,)) + second + packet[2:start] + payload


def _payload_bounds(packet: bytes) -> tuple[int, int]:
    """Where an RTP packet's payload starts and ends (RFC 3550 5.1 and 5.3.1)."""
    start = 12 + 4 * (packet[0] & 0x0F)
    if packet[0] & 0x10 and len(packet) >= start + 4:
        start += 4 + 4 * int.from_bytes(packet[start + 2 : start + 4], "big")
    end = len(packet)
    if packet[0] & 0x20 and end > 0:
        end -= packet[-1]
    return start, end


def _context(codec: AudioCodec, mode: Literal["r", "w"]) -> AudioCodecContext:
    context = av.CodecContext.create(codec.ffmpeg, mode)
    assert isinstance(context, AudioCodecContext)
    context.sample_rate = codec.sample_rate
    context.layout = "mono"
    if mode == "w":
        context.format = "s16"
        context.open()
    return context


@functools.cache
def law_table(source: AudioCodec, target: AudioCodec) -> bytes:
    """The 256-octet map from one G.711 law to the other, made by FFmpeg's own G.711
    decoder and encoder (ITU-T G.711 sample by sample, so a table is exact)."""
    frames = _context(source, "r").decode(av.Packet(bytes(range(256))))
    encoder = _context(target, "w")
    table = b"".join(bytes(p) for frame in frames for p in encoder.encode(frame))
    table += b"".join(bytes(p) for p in encoder.encode(None))
    if len(table) != 256:
        raise RuntimeError(f"{source.name} to {target.name}: FFmpeg gave {len(table)} octets")
    return table


@functools.cache
def level_table(law: AudioCodec, shift: int) -> bytes:
    """The 256-octet map from a G.711 code to the code of its sample times ``2**shift``
    (``shift`` 1 or -1: 6 dB up or down, saturating), through FFmpeg's G.711.

    It puts FFmpeg's G.722 at the level of ITU-T G.722: G.722 codes 14-bit uniform PCM
    (ITU-T G.722 1.3), which a 16-bit sample gives by dropping two bits (as PJSIP's
    G.722 does), while FFmpeg's G.722 takes and gives 16-bit samples as 15-bit ones.
    Unscaled, a G.722 endpoint would hear G.711 6 dB too loud and be heard 6 dB too soft.
    In the logarithmic G.711 (ITU-T G.711 tables 1 and 2: one segment per 6 dB, same
    step count in each) this is a move of one segment: a table, no arithmetic per sample.
    """
    frames = _context(law, "r").decode(av.Packet(bytes(range(256))))
    linear = array.array("h", b"".join(bytes(f.planes[0])[: 2 * f.samples] for f in frames))
    scaled = array.array(
        "h",
        (max(-32768, min(32767, s * 2 if shift > 0 else int(s / 2))) for s in linear),
    )
    table = encode_linear(scaled.tobytes(), law)
    if len(table) != 256:
        raise RuntimeError(f"{law.name} level table: FFmpeg gave {len(table)} octets")
    return table


def encode_linear(pcm: bytes, codec: AudioCodec) -> bytes:
    """16-bit mono PCM at ``codec``'s sample rate (native byte order: little-endian here,
    as in a WAV file) to ``codec``'s payload octets, by FFmpeg's encoder in one call."""
    samples = len(pcm) // 2
    if not samples:
        return b""
    frame = AudioFrame(format="s16", layout="mono", samples=samples)
    frame.sample_rate = codec.sample_rate
    frame.planes[0].update(pcm[: 2 * samples])
    encoder = _context(codec, "w")
    encoded = b"".join(bytes(p) for p in encoder.encode(frame))
    return encoded + b"".join(bytes(p) for p in encoder.encode(None))


@functools.cache
def _silence(codec: AudioCodec) -> bytes:
    """20 ms of encoded silence of ``codec`` (what pads the start of a pipeline)."""
    if codec.silence:
        return bytes((codec.silence,)) * 160
    encoded = encode_linear(bytes(2 * (codec.sample_rate // 50)), codec)
    return encoded[:160].ljust(160, encoded[-1:] or b"\0")


class _Pipeline:
    """One codec to another, for one source: decoder, resampler, encoder.

    Each packet's samples go to the encoder in exactly the packet's duration: the
    resampler's output (a few samples short at the start, its filter delay, then give or
    take one) waits in a PCM queue, padded with silent samples when short and trimmed
    when it grows. The stream of codes itself is never cut or patched once started: G.722
    is adaptive (ITU-T G.722 3 and 4), and a code inserted or dropped puts the far
    decoder out of step with the encoder (a loud click, and PJSIP then halves its level
    for the rest of the call). Only before the first code leaves are codes of silence
    put in front, for the frames the encoder holds back.
    """

    __slots__ = (
        "_after",
        "_before",
        "_decoder",
        "_encoder",
        "_pcm",
        "_pending",
        "_ratio",
        "_resampler",
        "_silence",
        "_started",
        "_table",
        "_target_rate",
    )

    def __init__(self, source: AudioCodec, target: AudioCodec) -> None:
        self._pending = bytearray()  # encoded octets, one per 8 kHz tick
        self._pcm = bytearray()  # 16-bit samples at the target's rate, not yet encoded
        self._started = False
        self._silence = _silence(target)
        self._table: bytes | None = None
        self._target_rate = target.sample_rate
        self._ratio = target.sample_rate // target.rtp_clock  # samples per tick: 1 or 2
        # G.711 6 dB down before FFmpeg's G.722 encoder, up after its decoder.
        self._before = level_table(source, -1) if target is G722 and source in G711 else None
        self._after = level_table(target, 1) if source is G722 and target in G711 else None
        self._decoder: AudioCodecContext | None = None
        self._encoder: AudioCodecContext | None = None
        self._resampler: AudioResampler | None = None
        if source in G711 and target in G711:
            self._table = law_table(source, target)
            return
        self._decoder = _context(source, "r")
        self._encoder = _context(target, "w")
        if source.sample_rate != target.sample_rate:
            self._resampler = AudioResampler(format="s16", layout="mono", rate=target.sample_rate)

    def convert(self, payload: bytes) -> bytes:
        """The same stretch of sound in the target codec: as many octets as came in."""
        if self._table is not None:
            return payload.translate(self._table)
        assert self._decoder is not None and self._encoder is not None
        ticks = len(payload)
        if self._before is not None:
            payload = payload.translate(self._before)
        frames: list[AudioFrame] = list(self._decoder.decode(av.Packet(payload)))
        if self._resampler is not None:
            frames = [out for frame in frames for out in self._resampler.resample(frame)]
        pcm = self._pcm
        for frame in frames:
            pcm += bytes(frame.planes[0])[: 2 * frame.samples]
        size = 2 * ticks * self._ratio
        if len(pcm) < size:
            pcm[:0] = bytes(size - len(pcm))  # silent samples ahead: the filter's delay
        frame = AudioFrame(format="s16", layout="mono", samples=size // 2)
        frame.sample_rate = self._target_rate
        frame.planes[0].update(bytes(pcm[:size]))
        del pcm[:size]
        if len(pcm) > 2 * MAX_BACKLOG * self._ratio:
            del pcm[: len(pcm) - 2 * MAX_BACKLOG * self._ratio]
        pending = self._pending
        for packet in self._encoder.encode(frame):
            pending += bytes(packet)
        if len(pending) < ticks:
            if self._started:
                logger.debug("transcoder short of %d octets", ticks - len(pending))
            short = ticks - len(pending)
            pending[:0] = (self._silence * (short // 160 + 1))[:short]
        self._started = True
        out = bytes(pending[:ticks])
        del pending[:ticks]
        return out if self._after is None else out.translate(self._after)


__all__ = [
    "CODECS",
    "G711",
    "G722",
    "PASS_THROUGH",
    "PCMA",
    "PCMU",
    "AnswerPlan",
    "AudioCodec",
    "Transcoder",
    "Transform",
    "augment_offer",
    "codec_formats",
    "encode_linear",
    "format_names",
    "law_table",
    "level_table",
    "plan_answer",
]
