"""Bandwidth limits written into a session description (RFC 4566 5.8, RFC 3890).

A kiosk site or a station behind a slow link (512 kbit/s DSL in the smallest town
halls) gets, in every SDP the gateway sends on that call, the rate it can carry: a
``b=`` line is what its author is willing to *receive* (RFC 3264 5, RFC 3890 6), and
the gateway speaks for both ends, so the smaller limit of the two goes to both.

- Session level: ``b=AS:<kbit/s>`` (RFC 4566 5.8: the whole session, IP/UDP/RTP
  headers included) and ``b=TIAS:<bit/s>`` (RFC 3890 6.2: transport independent).
- Audio: left as it is (tens of kbit/s) unless it asks for more than the link.
- Video, the stream that adapts: the link less :data:`AUDIO_SHARE`, split evenly between
  the video lines, as ``b=AS`` and as ``b=TIAS`` less :data:`HEADER_SHARE` for the
  headers (RFC 3890 7.2: TIAS leaves out the per-packet overhead that AS counts).

An existing limit that is already lower is kept: a limit only ever goes down.
"""

from __future__ import annotations

from gateway.model.sdp import MediaDescription, SessionDescription

AUDIO_SHARE = 80  # kbit/s kept for audio: 64 kbit/s G.711 or G.722, with its headers
HEADER_SHARE = 0.05  # of a video rate: IP/UDP/RTP headers at ~1,200-byte packets
MIN_VIDEO = 64  # kbit/s: below it a video line gets this much all the same


def _set(bandwidths: list[tuple[str, int]], kind: str, value: int) -> None:
    """Set ``b=<kind>:`` to ``value`` unless a lower one is there (case-insensitive)."""
    for i, (bwtype, current) in enumerate(bandwidths):
        if bwtype.upper() == kind:
            bandwidths[i] = (bwtype, min(current, value))
            return
    bandwidths.append((kind, value))


def _limit_media(media: MediaDescription, kbps: int) -> None:
    _set(media.bandwidths, "AS", kbps)
    _set(media.bandwidths, "TIAS", int(kbps * 1000 * (1 - HEADER_SHARE)))


def limit_bandwidth(sdp: SessionDescription, kbps: int) -> SessionDescription:
    """A copy of ``sdp`` that asks for at most ``kbps`` kbit/s in all (RFC 3890 6)."""
    out = sdp.copy()
    _set(out.bandwidths, "AS", kbps)
    _set(out.bandwidths, "TIAS", int(kbps * 1000 * (1 - HEADER_SHARE)))
    video = [m for m in out.media if m.kind == "video" and m.port != 0]
    audio = [m for m in out.media if m.kind == "audio" and m.port != 0]
    for media in audio:
        if any(t.upper() in ("AS", "TIAS") for t, _ in media.bandwidths):
            _limit_media(media, kbps)  # an audio line asking for more than the link
    if video:
        share = (kbps - (AUDIO_SHARE if audio else 0)) // len(video)
        for media in video:
            _limit_media(media, max(share, MIN_VIDEO))
    return out


__all__ = ["AUDIO_SHARE", "HEADER_SHARE", "MIN_VIDEO", "limit_bandwidth"]
