"""The session descriptions of the media benchmark's calls (gateway/model/sdp.py).

Every call offers G.711 audio and H.264 video from side A (the kiosk) and answers the
same from side B (the station), each at the generator's sockets; what an engine hands
back names its own ports, which the generator then sends to.
"""

from __future__ import annotations

from gateway.model.sdp import Connection, MediaDescription, Origin, SessionDescription

HOST = "127.0.0.1"


def call_sdp(call: int, side: str, audio_port: int, video_port: int) -> SessionDescription:
    """Side ``side``'s description for call ``call``: PCMU audio and H.264 video."""
    audio = MediaDescription(
        "audio",
        audio_port,
        "RTP/AVP",
        ["0"],
        attributes=[("rtpmap", "0 PCMU/8000"), ("sendrecv", None)],
    )
    video = MediaDescription(
        "video",
        video_port,
        "RTP/AVP",
        ["96"],
        attributes=[
            ("rtpmap", "96 H264/90000"),
            ("fmtp", "96 profile-level-id=42e01f;packetization-mode=1"),
            ("sendrecv", None),
        ],
    )
    return SessionDescription(
        0,
        Origin(
            username=f"bench-{side.lower()}",
            sess_id=str(1000 + call),
            sess_version=1,
            nettype="IN",
            addrtype="IP4",
            address=HOST,
        ),
        "vrgw media bench",
        connection=Connection.for_address(HOST),
        media=[audio, video],
    )


def media_ports(sdp: SessionDescription) -> tuple[int, int]:
    """The (audio, video) ports of a description an engine returned, checked to be ours."""
    if len(sdp.media) != 2 or [m.kind for m in sdp.media] != ["audio", "video"]:
        raise ValueError(f"expected audio and video m= lines, got {[m.kind for m in sdp.media]}")
    for m in sdp.media:
        conn = sdp.connection_for(m)
        if conn is None or conn.address != HOST or m.port == 0:
            raise ValueError(f"{m.kind} is not relayed on {HOST}: {m.port} {conn}")
    return sdp.media[0].port, sdp.media[1].port
