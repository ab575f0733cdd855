"""Announcements for waiting callers: prompts, G.711 encoding, and the early-media SDP.

A caller waiting in a partner's queue hears a looped French announcement as early
media (a 183 Session Progress with SDP, RFC 3960 "gateway model"). The prompts ship
with the package as 8 kHz mono 16-bit WAV files (``gateway/media/prompts/fr/``), made
from the texts of :mod:`gateway.texts` by ``scripts/make-prompts``; they are encoded
to G.711 (ITU-T G.711: mu-law for PCMU, A-law for PCMA, RTP payload types 0 and 8 of
RFC 3551) by FFmpeg, as the transcoder does, and cut in 20 ms frames.

The SDP the kiosk gets in the 183 is built here too (:func:`early_answer`): the audio
codec the announcement uses, the first video codec offered, nothing else. Once a
station is offered the call, its INVITE offers only those formats
(:func:`restrict_offer`), so the station's answer matches what the kiosk already
negotiated: the kiosk treats the 183's SDP as the answer and ignores the one in the
200 (RFC 3261 13.2.1), so the two must agree.
"""

from __future__ import annotations

import functools
import re
import wave
from dataclasses import dataclass
from pathlib import Path

from gateway.media.srtp import plain_profile
from gateway.media.transcode import PCMA, PCMU, encode_linear
from gateway.model.sdp import Connection, MediaDescription, SessionDescription

PROMPT_DIR = Path(__file__).parent / "prompts"
SAMPLE_RATE = 8000
FRAME_SAMPLES = 160  # 20 ms at 8 kHz (RFC 3551 4.5: the default packetisation)
STATIC_G711 = {0: "PCMU", 8: "PCMA"}  # RFC 3551 table 4
_PROMPT_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")


class PromptError(Exception):
    """A prompt file that is missing or not 8 kHz mono 16-bit PCM."""


def encode_g711(pcm: bytes, codec: str) -> bytes:
    """Little-endian 16-bit PCM to PCMU or PCMA octets, one per sample, by FFmpeg's
    G.711 encoder (the transcoder's): a prompt's 70,000 samples take about a
    millisecond, where a table made sample by sample in Python held the event loop
    60 ms at the first announcement (seconds on a loaded host)."""
    return encode_linear(pcm, PCMU if codec == "PCMU" else PCMA)


@dataclass(frozen=True, slots=True)
class Prompt:
    """An announcement ready to send: 20 ms payloads of one codec."""

    name: str
    codec: str
    payload_type: int
    frames: tuple[bytes, ...]

    @property
    def seconds(self) -> float:
        """Length of one play-through."""
        return len(self.frames) * FRAME_SAMPLES / SAMPLE_RATE


def read_wav(path: Path) -> bytes:
    """The PCM samples of an 8 kHz mono 16-bit WAV file."""
    try:
        with wave.open(str(path), "rb") as wav:
            if (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) != (SAMPLE_RATE, 1, 2):
                raise PromptError(f"{path}: expected 8 kHz mono 16-bit PCM")
            return wav.readframes(wav.getnframes())
    except (OSError, EOFError, wave.Error) as exc:
        raise PromptError(f"{path}: {exc}") from exc


@functools.lru_cache(maxsize=16)
def load_prompt(name: str, codec: str, payload_type: int, lang: str = "fr") -> Prompt:
    """A shipped prompt encoded for ``codec`` (cached: encoding happens once)."""
    if not _PROMPT_NAME.fullmatch(name) or not _PROMPT_NAME.fullmatch(lang):
        # A name is a file name in PROMPT_DIR, never a path that could leave it.
        raise PromptError(f"{name!r} ({lang!r}) is not a prompt name")
    pcm = read_wav(PROMPT_DIR / lang / f"{name}.wav")
    # One second of silence between two play-throughs, so the loop can be told apart.
    pcm += bytes(2 * SAMPLE_RATE)
    data = encode_g711(pcm, codec)
    frames = tuple(
        data[i : i + FRAME_SAMPLES].ljust(FRAME_SAMPLES, data[-1:] or b"\xff")
        for i in range(0, len(data), FRAME_SAMPLES)
    )
    return Prompt(name, codec, payload_type, frames)


def g711_formats(media: MediaDescription) -> list[tuple[int, str]]:
    """The G.711 payload types of an m= line with their codec, in its preference order.

    A payload type is G.711 by its ``a=rtpmap`` encoding name, else by its RFC 3551
    static number (0 PCMU, 8 PCMA).
    """
    rtpmap = media.rtpmap()
    found: list[tuple[int, str]] = []
    for pt in media.payload_types:
        name = rtpmap[pt][0].upper() if pt in rtpmap else STATIC_G711.get(pt)
        if name in ("PCMU", "PCMA"):
            found.append((pt, name))
    return found


def _g711_choice(media: MediaDescription) -> tuple[int, str] | None:
    """The first G.711 payload type in an audio offer (static or mapped by rtpmap)."""
    found = g711_formats(media)
    return found[0] if found else None


def _keep_formats(media: MediaDescription, keep: list[int]) -> None:
    """Restrict an m-line to ``keep`` and drop the attributes of the other formats."""
    wanted = {str(pt) for pt in keep}
    media.formats = [f for f in media.formats if f in wanted]
    per_format = ("rtpmap", "fmtp", "rtcp-fb")
    kept: list[tuple[str, str | None]] = []
    for name, value in media.attributes:
        if name in per_format and value is not None:
            fmt = value.strip().split(" ", 1)[0]
            if fmt != "*" and fmt not in wanted:
                continue
        kept.append((name, value))
    media.attributes = kept


def early_answer(offer: SessionDescription) -> tuple[SessionDescription, int, str] | None:
    """The SDP answer for a waiting caller: G.711 audio (+ DTMF events), one video codec.

    Returns the answer (addressed nowhere: the relay rewrites it to its own ports) with
    the payload type and codec name of the announcement, or None when the offer has no
    G.711 audio to play a prompt with.
    """
    answer = offer.copy()
    choice: tuple[int, str] | None = None
    for media in answer.media:
        if media.port == 0:
            continue
        if media.kind == "audio" and choice is None and media.proto.upper().startswith("RTP/"):
            found = _g711_choice(media)
            if found is None:
                media.port = 0
                continue
            choice = found
            rtpmap = media.rtpmap()
            events = [
                pt
                for pt in media.payload_types
                if pt in rtpmap and rtpmap[pt][0].lower() == "telephone-event"
            ]
            _keep_formats(media, [found[0], *events[:1]])
        elif media.kind == "video" and media.proto.upper().startswith("RTP/") and media.formats:
            _keep_formats(media, media.payload_types[:1])
        else:
            media.port = 0
            continue
        media.connection = None
        # Plain on the relay's side: the relay ends an SRTP kiosk's leg itself and puts
        # its own a=crypto in what the kiosk gets (gateway.media.srtp, RFC 4568).
        media.proto = plain_profile(media.proto)
        media.remove_attrs("crypto")
        direction = offer.effective_direction(media)
        media.set_direction(direction.reverse)
    if choice is None:
        return None
    answer.connection = Connection.for_address("0.0.0.0")
    answer.remove_attrs(["sendrecv", "sendonly", "recvonly", "inactive"])
    return answer, choice[0], choice[1]


def restrict_offer(offer: SessionDescription, early: SessionDescription) -> SessionDescription:
    """The station's offer limited to what the kiosk already got in the 183."""
    out = offer.copy()
    for media, agreed in zip(out.media, early.media, strict=False):
        if agreed.port == 0:
            media.port = 0
            continue
        _keep_formats(media, [int(f) for f in agreed.formats if f.isdigit()])
    return out
