"""H.245 capabilities and the SDP model, translated both ways from the codec catalogue.

The H.323 leg describes media in H.245 (a TerminalCapabilitySet, H.245 B.2.2; the
dataType of an OpenLogicalChannel, B.4.1); the rest of the gateway speaks SDP
(RFC 8866). Both meet here in :class:`MediaFormat`, one codec with its parameters. Every
codec fact comes from ``codecs/catalogue.yaml`` (its README describes the H.245 fields):
this module knows only the shapes of the H.245 values, RFC rules on SDP parameters, and
the H.241 parameter identifiers and units of H.264.

Values are the Python structures of the H.245 ASN.1 module that
:mod:`gateway.h323.asn1` encodes: a SEQUENCE is a dict, a CHOICE a ``(name, value)``
tuple, a NULL ``0``, an OBJECT IDENTIFIER a tuple of ints. Nothing here encodes.

What is announced (H.245 B.2.2.3): receive capabilities for audio and video, the RTP
telephone events of RFC 4733 (``receiveRTPAudioTelephonyEventCapability``) and the user
input capabilities the events stand for (``receiveAndTransmitUserInputCapability``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from gateway.model.codecs import Codec, CodecCatalogue, default_catalogue
from gateway.model.sdp import MediaDescription, SessionDescription

Choice = tuple[str, Any]
Value = dict[str, Any]

# H.241 8.3.2: standard parameter identifiers of the H.264 generic capability.
H241_PROFILE = 41  # booleanArray, collapsing
H241_LEVEL = 42  # unsignedMin
H241_CUSTOM_MAX_MBPS = 3  # units of 500 macroblocks/s
H241_CUSTOM_MAX_FS = 4  # units of 256 macroblocks
H241_CUSTOM_MAX_BR_CPB = 6  # units of 25 000 bit/s
MBPS_UNIT = 500
FS_UNIT = 256
BR_UNIT = 25  # RFC 6184 max-br counts 1000 bit/s: 25 of them per H.241 unit

# H.264 A.3.1/A.3.2: Baseline, Main and Extended say level 1b with level_idc 11 and
# constraint_set3_flag; the other profiles with level_idc 9 (the catalogue's key).
LEVEL_1B = 9
_LEVEL_1B_BY_FLAG = frozenset({66, 77, 88})
_CONSTRAINT_SET3 = 0x10
# RFC 6184 8.1 profile-iop written for an H.241 Baseline receiver: constraint_set0-2,
# i.e. Constrained Baseline, the subset every Baseline decoder takes.
_BASELINE_IOP = 0xE0

DEFAULT_VIDEO_RATE = 3840  # 384 kbit/s (units of 100 bit/s) when the SDP states none
DEFAULT_PTIME = 20  # ms, RFC 3551 4.5 for frame-based audio without a ptime
DYNAMIC_PTS = range(96, 128)  # RFC 3551 3

# H.245 B.2.2.3: the components of a video capability the gateway sets to FALSE.
_VIDEO_FLAGS: Mapping[str, tuple[str, ...]] = {
    "h261VideoCapability": ("temporalSpatialTradeOffCapability", "stillImageTransmission"),
    "h263VideoCapability": (
        "unrestrictedVector",
        "arithmeticCoding",
        "advancedPrediction",
        "pbFrames",
        "temporalSpatialTradeOffCapability",
    ),
}
# H.245 H263Options: every optional mode off (the gateway relays, it never transcodes).
_H263_OPTIONS: Value = dict.fromkeys(
    (
        "advancedIntraCodingMode",
        "deblockingFilterMode",
        "improvedPBFramesMode",
        "unlimitedMotionVectors",
        "fullPictureFreeze",
        "partialPictureFreezeAndRelease",
        "resizingPartPicFreezeAndRelease",
        "fullPictureSnapshot",
        "partialPictureSnapshot",
        "videoSegmentTagging",
        "progressiveRefinement",
        "dynamicPictureResizingByFour",
        "dynamicPictureResizingSixteenthPel",
        "dynamicWarpingHalfPel",
        "dynamicWarpingSixteenthPel",
        "independentSegmentDecoding",
        "slicesInOrder-NonRect",
        "slicesInOrder-Rect",
        "slicesNoOrder-NonRect",
        "slicesNoOrder-Rect",
        "alternateInterVLCMode",
        "modifiedQuantizationMode",
        "reducedResolutionUpdate",
        "separateVideoBackChannel",
    ),
    False,
)
_MARKER_VALUES: Mapping[str, Value] = {"h263Options": _H263_OPTIONS}

_KINDS = ("audio", "video", "application")


class CapabilityError(ValueError):
    """An H.245 or SDP description that cannot be translated (a bug or a broken peer)."""


@dataclass(frozen=True, slots=True)
class MediaFormat:
    """One codec with its parameters, as SDP and H.245 both describe it.

    ``params`` are the ``key=value`` format parameters of ``a=fmtp`` (RFC 8866 6.15),
    ``events`` the RFC 4733 event list of a telephone-event format, ``ptime`` the audio
    packet duration in ms and ``max_bit_rate`` a video rate in units of 100 bit/s (the
    H.245 unit). ``payload_type`` is None when one is still to be chosen.
    """

    codec: Codec
    payload_type: int | None = None
    params: tuple[tuple[str, str], ...] = ()
    events: str | None = None
    ptime: int | None = None
    max_bit_rate: int | None = None

    @property
    def kind(self) -> str:
        """The SDP media of the codec (audio, video, application)."""
        return self.codec.kind

    def param(self, name: str) -> str | None:
        """A format parameter; names compare case-insensitively (RFC 4855 3)."""
        wanted = name.lower()
        for key, value in self.params:
            if key.lower() == wanted:
                return value
        return None

    @property
    def fmtp(self) -> str | None:
        """The ``a=fmtp`` value after the payload type, ``None`` when there is nothing."""
        if self.events is not None:
            return self.events
        return ";".join(f"{k}={v}" for k, v in self.params) or None


@dataclass(frozen=True, slots=True)
class CapabilitySet:
    """The parts of a TerminalCapabilitySet that describe media (H.245 B.2.2.1-B.2.2.2).

    ``packetization`` is the ``rtpPayloadType`` list of the H.225.0
    ``mediaPacketizationCapability`` (H.241 8.3.3: the H.264 packetization modes).
    """

    table: list[Value]
    descriptors: list[Value]
    packetization: list[Value]


# --- SDP parameters -----------------------------------------------------------------------


def parse_params(text: str | None) -> tuple[tuple[str, str], ...]:
    """``key=value`` pairs of an ``a=fmtp`` value, separated by ``;`` (RFC 4855 3)."""
    if not text:
        return ()
    pairs: list[tuple[str, str]] = []
    for part in text.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key.strip():
            pairs.append((key.strip(), value.strip()))
    return tuple(pairs)


def parse_events(text: str) -> frozenset[int]:
    """The events of an RFC 4733 7.1.1 list such as ``0-15,16``; bad items are skipped."""
    events: set[int] = set()
    for item in text.replace(" ", "").split(","):
        low, sep, high = item.partition("-")
        if not low.isdigit() or (sep and not high.isdigit()):
            continue
        events.update(range(int(low), int(high if sep else low) + 1))
    return frozenset(e for e in events if e <= 255)


def format_events(events: Iterable[int]) -> str:
    """An RFC 4733 event list, ranges joined: ``{0..15, 16}`` is ``0-16``."""
    ordered = sorted(set(events))
    parts: list[str] = []
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(parts)


def _with_defaults(fmt: MediaFormat) -> dict[str, str]:
    """The format's parameters (lower-case names) over those of the catalogue entry."""
    merged = {k.lower(): v for k, v in parse_params(fmt.codec.fmtp)}
    merged.update((k.lower(), v) for k, v in fmt.params)
    return merged


def _meets(have: Mapping[str, str], needed: Mapping[str, str]) -> bool:
    """Whether parameters ``have`` allow what ``needed`` stands for; an option ``no`` is
    met by ``yes`` (a decoder with the option decodes a stream without it)."""
    for key, value in needed.items():
        got = have.get(key)
        if got is not None and got.lower() == value.lower():
            continue
        if value.lower() == "no" and got is not None and got.lower() == "yes":
            continue
        return False
    return True


def _bitrate_of(media: MediaDescription) -> int | None:
    """The media's rate in units of 100 bit/s: b=TIAS (RFC 3890), else b=AS (kbit/s)."""
    rates = dict(media.bandwidths)
    if "TIAS" in rates:
        return max(1, rates["TIAS"] // 100)
    if "AS" in rates:
        return rates["AS"] * 10
    return None


def _int(text: str | None) -> int | None:
    return int(text) if text is not None and text.isascii() and text.isdigit() else None


# --- SDP -> formats -----------------------------------------------------------------------


def formats_of(
    media: MediaDescription, catalogue: CodecCatalogue | None = None
) -> list[MediaFormat]:
    """The formats of one ``m=`` line that H.245 can describe, in SDP preference order.

    ``a=ptime`` (RFC 8866 6.4) gives the audio packet duration; a video rate comes from
    the RFC 4629 ``MaxBR`` parameter (units of 100 bit/s), else ``b=TIAS``/``b=AS``.
    """
    cat = catalogue or default_catalogue()
    fmtps = media.fmtp()
    ptime = _int(media.get_attr("ptime"))
    rate = _bitrate_of(media)
    found: list[MediaFormat] = []
    for pt, codec in cat.codecs_for(media):
        if codec is None or codec.h245 is None:
            continue
        text = fmtps.get(pt)
        if codec.h245.user_input_events:
            found.append(MediaFormat(codec, pt, events=(text or codec.fmtp or "").strip()))
            continue
        fmt = MediaFormat(codec, pt, parse_params(text))
        if codec.kind == "audio":
            fmt = replace(fmt, ptime=ptime or codec.ptime)
        elif codec.kind == "video":
            fmt = replace(fmt, max_bit_rate=_int(fmt.param("MaxBR")) or rate)
        found.append(fmt)
    return found


# --- formats -> H.245 ---------------------------------------------------------------------


def _oid(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def _dotted(oid: Sequence[int]) -> str:
    return ".".join(str(part) for part in oid)


def _audio_capabilities(fmt: MediaFormat) -> list[Choice]:
    """AudioCapability choices for a frame-counted codec (H.245 B.2.2.3 audio)."""
    h245 = fmt.codec.h245
    if h245 is None or h245.frame_ms is None:
        return []  # a shape the gateway does not write (G.723.1, GSM, generic audio)
    frames = max(1, min(256, (fmt.ptime or fmt.codec.ptime or DEFAULT_PTIME) // h245.frame_ms))
    if not h245.fmtp:
        return [(h245.capability, frames)]
    have = _with_defaults(fmt)
    return [
        (name, frames)
        for name in (h245.capability, *h245.alternatives)
        if name in h245.fmtp and _meets(have, dict(parse_params(h245.fmtp[name])))
    ]


def _picture_sizes(fmt: MediaFormat) -> dict[str, int]:
    """An H.261/H.263 format's picture sizes and their MPIs (SDP names): those of its
    fmtp, or QCIF at MPI 1 when it gives none (RFC 4587 4.1, RFC 4629 8.1.1)."""
    h245 = fmt.codec.h245
    assert h245 is not None
    sizes: dict[str, int] = {}
    for sdp_name in h245.mpi:
        mpi = _int(fmt.param(sdp_name))
        if mpi is not None and mpi >= 1:
            sizes[sdp_name] = mpi
    if not sizes:
        qcif = next((s for s in h245.mpi if s.upper() == "QCIF"), None)
        if qcif is None:
            raise CapabilityError(f"{fmt.codec.name}: no picture size to announce")
        sizes[qcif] = 1
    return sizes


def _mpi_capability(fmt: MediaFormat) -> Choice:
    """An H.261 or H.263 VideoCapability: picture sizes of RFC 4587/RFC 4629 as MPIs."""
    h245 = fmt.codec.h245
    assert h245 is not None
    value: Value = {h245.mpi[size]: mpi for size, mpi in _picture_sizes(fmt).items()}
    rate = fmt.max_bit_rate or DEFAULT_VIDEO_RATE
    value["maxBitRate"] = min(rate, h245.max_bit_rate) if h245.max_bit_rate else rate
    for flag in _VIDEO_FLAGS.get(h245.capability, ()):
        value[flag] = False
    if h245.marker is not None:
        value[h245.marker] = dict(_MARKER_VALUES.get(h245.marker, {}))
    return (h245.capability, value)


def h241_parameters(
    params: Iterable[tuple[str, str]], codec: Codec
) -> tuple[int, int, list[Value]]:
    """(profile bit, level value, collapsing parameters) of an H.264 format (H.241 8.3.2).

    ``profile-level-id`` is read as RFC 6184 8.1 says (profile_idc, profile-iop,
    level_idc; ``42000A``, Baseline level 1, when absent); ``max-mbps``, ``max-fs`` and
    ``max-br`` become CustomMaxMBPS, CustomMaxFS and CustomMaxBRandCPB, rounded up to
    the H.241 units (rounding down would refuse 720p's 3600 macroblocks).
    """
    h245 = codec.h245
    if h245 is None or h245.h241 is None:
        raise CapabilityError(f"{codec.name} has no H.241 tables in the catalogue")
    values = {k.lower(): v for k, v in params}
    pli = values.get("profile-level-id", "42000A")
    try:
        profile_idc, iop, level_idc = (int(pli[i : i + 2], 16) for i in (0, 2, 4))
    except ValueError:
        raise CapabilityError(f"profile-level-id {pli!r} is not 3 hex octets") from None
    if len(pli) != 6:
        raise CapabilityError(f"profile-level-id {pli!r} is not 3 hex octets")
    if level_idc == 11 and iop & _CONSTRAINT_SET3 and profile_idc in _LEVEL_1B_BY_FLAG:
        level_idc = LEVEL_1B
    profile = h245.h241.profiles.get(profile_idc)
    level = h245.h241.levels.get(level_idc)
    if profile is None or level is None:
        raise CapabilityError(f"profile-level-id {pli}: no H.241 value in the catalogue")
    collapsing: list[Value] = [
        _generic(H241_PROFILE, ("booleanArray", profile)),
        _generic(H241_LEVEL, ("unsignedMin", level)),
    ]
    for name, ident, unit in (
        ("max-mbps", H241_CUSTOM_MAX_MBPS, MBPS_UNIT),
        ("max-fs", H241_CUSTOM_MAX_FS, FS_UNIT),
        ("max-br", H241_CUSTOM_MAX_BR_CPB, BR_UNIT),
    ):
        amount = _int(values.get(name))
        if amount:
            custom = min(65535, math.ceil(amount / unit))
            collapsing.append(_generic(ident, ("unsignedMin", custom)))
    return profile, level, collapsing


def _generic(ident: int, value: Choice) -> Value:
    return {"parameterIdentifier": ("standard", ident), "parameterValue": value}


def _h264_capability(fmt: MediaFormat) -> Choice:
    """The H.264 genericVideoCapability (H.241 8.3.1): identifier, maxBitRate, params."""
    h245 = fmt.codec.h245
    assert h245 is not None and h245.oid is not None
    _, _, collapsing = h241_parameters(fmt.params, fmt.codec)
    max_br = _int(fmt.param("max-br"))
    rate = fmt.max_bit_rate or (max_br * 10 if max_br else DEFAULT_VIDEO_RATE)
    value: Value = {
        "capabilityIdentifier": ("standard", _oid(h245.oid)),
        "maxBitRate": rate,
        "collapsing": collapsing,
    }
    return (h245.capability, value)


def _video_capability(fmt: MediaFormat) -> Choice | None:
    h245 = fmt.codec.h245
    if h245 is None:
        return None
    if h245.h241 is not None:
        return _h264_capability(fmt)
    if h245.mpi:
        return _mpi_capability(fmt)
    return None


def _packetization_mode(fmt: MediaFormat) -> int:
    return _int(fmt.param("packetization-mode")) or 0  # RFC 6184 8.1: 0 when absent


def data_type(fmt: MediaFormat) -> Choice | None:
    """The OpenLogicalChannel ``dataType`` that sends ``fmt`` (H.245 B.4.1.1), or None
    when H.245 has no channel for it (telephone events travel in the audio channel)."""
    if fmt.codec.h245 is None or fmt.codec.h245.user_input_events:
        return None
    if fmt.kind == "audio":
        choices = _audio_capabilities(fmt)
        return ("audioData", choices[0]) if choices else None
    if fmt.kind == "video":
        video = _video_capability(fmt)
        return ("videoData", video) if video is not None else None
    return None


def logical_channel_media(fmt: MediaFormat) -> Value:
    """The media parts of H2250LogicalChannelParameters (H.245 B.4.1.3) for ``fmt``:
    ``dynamicRTPPayloadType`` and, for H.264, ``mediaPacketization`` (H.241 8.3.3)."""
    out: Value = {}
    if fmt.payload_type is not None and fmt.payload_type in DYNAMIC_PTS:
        out["dynamicRTPPayloadType"] = fmt.payload_type
    h245 = fmt.codec.h245
    if h245 is not None and h245.h241 is not None:
        oid = h245.h241.packetization.get(_packetization_mode(fmt))
        if oid is not None:
            descriptor: Value = {"payloadDescriptor": ("oid", _oid(oid))}
            if fmt.payload_type is not None:
                descriptor["payloadType"] = fmt.payload_type
            out["mediaPacketization"] = ("rtpPayloadType", descriptor)
    return out


def capabilities(fmt: MediaFormat) -> list[Choice]:
    """Every TCS Capability (H.245 B.2.2.3) that announces reception of ``fmt``."""
    h245 = fmt.codec.h245
    if h245 is None:
        return []
    if h245.user_input_events:
        wanted = parse_events(fmt.events or fmt.codec.fmtp or "")
        out: list[Choice] = []
        if fmt.payload_type is not None and fmt.payload_type in DYNAMIC_PTS and wanted:
            event: Value = {
                "dynamicRTPPayloadType": fmt.payload_type,
                "audioTelephoneEvent": format_events(wanted),
            }
            out.append((h245.capability, event))
        for name, events in h245.user_input_events.items():
            if wanted & parse_events(events):
                out.append(("receiveAndTransmitUserInputCapability", (name, 0)))
        return out
    if fmt.kind == "audio":
        return [("receiveAudioCapability", c) for c in _audio_capabilities(fmt)]
    if fmt.kind == "video":
        video = _video_capability(fmt)
        return [("receiveVideoCapability", video)] if video is not None else []
    return []


def capability_set(
    media: Iterable[MediaDescription], catalogue: CodecCatalogue | None = None
) -> CapabilitySet:
    """The capability table and one descriptor for the ``m=`` lines (H.245 B.2.2.1-2).

    Each ``m=`` line becomes an AlternativeCapabilitySet in its SDP order (H.245
    B.2.2.2: alternatives in order of preference); its telephone events and its user
    input capabilities get sets of their own, since they run beside the audio codec.
    Equal capabilities share one table entry. Ports set to 0 (refused) are left out.
    """
    table: list[Value] = []
    numbers: list[tuple[Choice, int]] = []
    sets: list[list[int]] = []
    packetization: list[Value] = []

    def number(capability: Choice) -> int:
        for known, n in numbers:
            if known == capability:
                return n
        n = len(table) + 1
        table.append({"capabilityTableEntryNumber": n, "capability": capability})
        numbers.append((capability, n))
        return n

    for m in media:
        if m.port == 0:
            continue
        codecs: list[int] = []
        events: list[int] = []
        inputs: list[int] = []
        for fmt in formats_of(m, catalogue):
            for capability in capabilities(fmt):
                n = number(capability)
                target = codecs
                if capability[0] == "receiveAndTransmitUserInputCapability":
                    target = inputs
                elif fmt.codec.h245 is not None and fmt.codec.h245.user_input_events:
                    target = events
                if n not in target:
                    target.append(n)
            rtp = logical_channel_media(fmt).get("mediaPacketization")
            if rtp is not None:
                descriptor = {"payloadDescriptor": rtp[1]["payloadDescriptor"]}
                if descriptor not in packetization:
                    packetization.append(descriptor)
        sets += [s for s in (codecs, events, inputs) if s]
    descriptors = [{"capabilityDescriptorNumber": 0, "simultaneousCapabilities": sets}]
    return CapabilitySet(table, descriptors if sets else [], packetization)


def _multipoint() -> Value:
    return {
        "multicastCapability": False,
        "multiUniCastConference": False,
        "mediaDistributionCapability": [
            dict.fromkeys(
                (
                    "centralizedControl",
                    "distributedControl",
                    "centralizedAudio",
                    "distributedAudio",
                    "centralizedVideo",
                    "distributedVideo",
                ),
                False,
            )
        ],
    }


def terminal_capability_set(
    sdp: SessionDescription | Iterable[MediaDescription],
    *,
    sequence_number: int,
    protocol_identifier: tuple[int, ...],
    catalogue: CodecCatalogue | None = None,
    audio_delay_jitter: int = 60,
) -> Value:
    """A whole TerminalCapabilitySet (H.245 B.2.2) for what an SDP description receives.

    The H.225.0 multiplex capability (``h2250Capability``, H.245 B.2.2.4) says: no
    multipoint, no MC, RTP payload types of the H.264 packetization modes offered.
    """
    media = sdp.media if isinstance(sdp, SessionDescription) else list(sdp)
    caps = capability_set(media, catalogue)
    packetization: Value = {"h261aVideoPacketization": False}
    if caps.packetization:
        packetization["rtpPayloadType"] = caps.packetization
    h2250: Value = {
        "maximumAudioDelayJitter": audio_delay_jitter,
        "receiveMultipointCapability": _multipoint(),
        "transmitMultipointCapability": _multipoint(),
        "receiveAndTransmitMultipointCapability": _multipoint(),
        "mcCapability": {"centralizedConferenceMC": False, "decentralizedConferenceMC": False},
        "rtcpVideoControlCapability": False,
        "mediaPacketizationCapability": packetization,
        "logicalChannelSwitchingCapability": False,
        "t120DynamicPortCapability": False,
    }
    tcs: Value = {
        "sequenceNumber": sequence_number,
        "protocolIdentifier": protocol_identifier,
        "multiplexCapability": ("h2250Capability", h2250),
    }
    if caps.table:
        tcs["capabilityTable"] = caps.table
        tcs["capabilityDescriptors"] = caps.descriptors
    return tcs


# --- H.245 -> formats ---------------------------------------------------------------------


def _pick(candidates: list[Codec], value: Any) -> Codec | None:
    """The codec a capability value stands for: one whose marker it carries, else the
    first without a marker."""
    if isinstance(value, dict):
        for codec in candidates:
            if codec.h245 is not None and codec.h245.marker in value:
                return codec
    for codec in candidates:
        if codec.h245 is not None and codec.h245.marker is None:
            return codec
    return None


def _profile_level_id(profile_bit: int, level: int, codec: Codec) -> str | None:
    """RFC 6184 8.1 profile-level-id for one H.241 profile bit and level value."""
    h245 = codec.h245
    assert h245 is not None and h245.h241 is not None
    profile_idc = next((idc for idc, bit in h245.h241.profiles.items() if bit == profile_bit), None)
    level_idc = next((idc for idc, v in h245.h241.levels.items() if v == level), None)
    if profile_idc is None or level_idc is None:
        return None
    iop = _BASELINE_IOP if profile_idc == 66 else 0
    if level_idc == LEVEL_1B and profile_idc in _LEVEL_1B_BY_FLAG:
        level_idc, iop = 11, iop | _CONSTRAINT_SET3
    return f"{profile_idc:02x}{iop:02x}{level_idc:02x}"


def h264_params(value: Value, codec: Codec) -> list[list[tuple[str, str]]]:
    """The RFC 6184 parameters of an H.241 capability: one list per profile it sets."""
    profiles = 0
    level: int | None = None
    custom: dict[str, int] = {}
    for param in value.get("collapsing", []):
        ident = param["parameterIdentifier"]
        _, amount = param["parameterValue"]
        if ident[0] != "standard" or not isinstance(amount, int):
            continue
        if ident[1] == H241_PROFILE:
            profiles = amount
        elif ident[1] == H241_LEVEL:
            level = amount
        elif ident[1] == H241_CUSTOM_MAX_MBPS:
            custom["max-mbps"] = amount * MBPS_UNIT
        elif ident[1] == H241_CUSTOM_MAX_FS:
            custom["max-fs"] = amount * FS_UNIT
        elif ident[1] == H241_CUSTOM_MAX_BR_CPB:
            custom["max-br"] = amount * BR_UNIT
    h245 = codec.h245
    if level is None or h245 is None or h245.h241 is None:
        return []
    out: list[list[tuple[str, str]]] = []
    for bit in sorted(h245.h241.profiles.values(), reverse=True):  # most significant first
        if profiles & bit:
            pli = _profile_level_id(bit, level, codec)
            if pli is not None:
                out.append([("profile-level-id", pli), *((k, str(v)) for k, v in custom.items())])
    return out


def formats_from_capability(
    capability: Choice,
    catalogue: CodecCatalogue | None = None,
    *,
    packetization: Sequence[int] = (0,),
) -> list[MediaFormat]:
    """The formats an H.245 Capability (or a dataType's Audio/VideoCapability, as
    ``("receiveAudioCapability", ...)``) stands for; ``[]`` for one the catalogue lacks.

    ``packetization`` lists the H.264 packetization modes the peer takes (from its
    ``mediaPacketizationCapability``, H.241 8.3.3): one H.264 format per mode.
    """
    cat = catalogue or default_catalogue()
    name, value = capability
    if name.endswith("UserInputCapability"):
        if not isinstance(value, tuple):
            return []
        for codec in cat:
            if codec.h245 is not None and value[0] in codec.h245.user_input_events:
                return [MediaFormat(codec, events=codec.h245.user_input_events[value[0]])]
        return []
    if name.endswith("AudioCapability") or name.endswith("VideoCapability"):
        if name.startswith(("receive", "transmit")) and isinstance(value, tuple):
            return _formats_from_media_capability(value, cat, packetization)
        return []
    events = cat.by_h245(name)
    if events is not None and isinstance(value, dict) and "dynamicRTPPayloadType" in value:
        return [
            MediaFormat(events, value["dynamicRTPPayloadType"], events=value["audioTelephoneEvent"])
        ]
    return []


def _formats_from_media_capability(
    choice: Choice, cat: CodecCatalogue, packetization: Sequence[int]
) -> list[MediaFormat]:
    name, value = choice
    oid: str | None = None
    if isinstance(value, dict) and "capabilityIdentifier" in value:
        ident = value["capabilityIdentifier"]
        if ident[0] != "standard":
            return []
        oid = _dotted(ident[1])
    codec = _pick(cat.all_by_h245(name, oid), value)
    if codec is None or codec.h245 is None:
        return []
    h245 = codec.h245
    if codec.kind == "audio":
        ptime = value * h245.frame_ms if isinstance(value, int) and h245.frame_ms else None
        params = parse_params(h245.fmtp.get(name))
        return [MediaFormat(codec, codec.static_pt, params, ptime=ptime)]
    if not isinstance(value, dict):
        return []
    rate = value.get("maxBitRate")
    if h245.h241 is not None:
        formats: list[MediaFormat] = []
        for h264 in h264_params(value, codec):
            for mode in sorted(set(packetization), reverse=True):  # non-interleaved first
                extra = [("packetization-mode", str(mode))] if mode else []
                formats.append(MediaFormat(codec, None, tuple(h264 + extra), max_bit_rate=rate))
        return formats
    sizes = tuple((s, str(value[c])) for s, c in h245.mpi.items() if c in value)
    return [MediaFormat(codec, codec.static_pt, sizes, max_bit_rate=rate)]


def packetization_modes(tcs_or_params: Mapping[str, Any], codec: Codec) -> list[int]:
    """The H.264 packetization modes in a TCS's ``mediaPacketizationCapability`` (or an
    OLC's ``mediaPacketization``); H.241 8.3.3: single NAL unit mode when none is named."""
    h245 = codec.h245
    if h245 is None or h245.h241 is None:
        return [0]
    by_oid = {_oid(o): mode for mode, o in h245.h241.packetization.items()}
    descriptors: list[Any] = []
    mux = tcs_or_params.get("multiplexCapability")
    if mux is not None and mux[0] == "h2250Capability":
        descriptors = mux[1].get("mediaPacketizationCapability", {}).get("rtpPayloadType", [])
    packet = tcs_or_params.get("mediaPacketization")
    if packet is not None and packet[0] == "rtpPayloadType":
        descriptors = [packet[1]]
    modes = [
        by_oid[d["payloadDescriptor"][1]]
        for d in descriptors
        if d["payloadDescriptor"][0] == "oid" and d["payloadDescriptor"][1] in by_oid
    ]
    return sorted(set(modes)) or [0]


def _merge(formats: list[MediaFormat], fmt: MediaFormat) -> None:
    """Add ``fmt``, folding it into an earlier format of the same codec where SDP has one
    format for several H.245 capabilities (G.729 and Annex A, dtmf and hookflash)."""
    for i, known in enumerate(formats):
        if known.codec is not fmt.codec:
            continue
        if known.events is not None and fmt.events is not None:
            events = parse_events(known.events) | parse_events(fmt.events)
            pt = known.payload_type if known.payload_type is not None else fmt.payload_type
            formats[i] = replace(known, payload_type=pt, events=format_events(events))
            return
        if fmt.codec.kind == "audio":
            params = dict(known.params)
            for key, value in fmt.params:  # the union of options: yes wins (RFC 4856)
                if params.get(key, "").lower() != "yes":
                    params[key] = value
            ptime = max(known.ptime or 0, fmt.ptime or 0) or None
            formats[i] = replace(known, params=tuple(params.items()), ptime=ptime)
            return
        if known.params == fmt.params:
            return
    formats.append(fmt)


def formats_from_tcs(
    tcs: Mapping[str, Any], catalogue: CodecCatalogue | None = None
) -> list[MediaFormat]:
    """The formats a received TerminalCapabilitySet says its sender receives.

    Entries are read in the order of the capability descriptors (H.245 B.2.2.2: each
    AlternativeCapabilitySet is in order of preference), then any entry no descriptor
    names; unknown capabilities are skipped.
    """
    cat = catalogue or default_catalogue()
    entries = {
        e["capabilityTableEntryNumber"]: e["capability"]
        for e in tcs.get("capabilityTable", [])
        if "capability" in e
    }
    order: list[int] = []
    for descriptor in tcs.get("capabilityDescriptors", []):
        for alternatives in descriptor.get("simultaneousCapabilities", []):
            order += [n for n in alternatives if n not in order]
    order += [n for n in entries if n not in order]
    h264 = next((c for c in cat if c.h245 is not None and c.h245.h241 is not None), None)
    modes = packetization_modes(tcs, h264) if h264 is not None else [0]
    formats: list[MediaFormat] = []
    for n in order:
        if n in entries:
            for fmt in formats_from_capability(entries[n], cat, packetization=modes):
                _merge(formats, fmt)
    return formats


def format_from_channel(
    parameters: Mapping[str, Any], catalogue: CodecCatalogue | None = None
) -> MediaFormat | None:
    """The format of an OpenLogicalChannel's forward (or reverse) parameters (H.245
    B.4.1.1): its dataType, with the dynamic payload type and H.264 packetization of its
    H2250LogicalChannelParameters."""
    cat = catalogue or default_catalogue()
    kind, choice = parameters["dataType"]
    if kind not in ("audioData", "videoData") or not isinstance(choice, tuple):
        return None
    mux = parameters.get("multiplexParameters", ("none", 0))
    h2250: Mapping[str, Any] = mux[1] if mux[0] == "h2250LogicalChannelParameters" else {}
    name = "receiveAudioCapability" if kind == "audioData" else "receiveVideoCapability"
    modes: list[int] = [0]
    h264 = next((c for c in cat if c.h245 is not None and c.h245.h241 is not None), None)
    if h264 is not None:
        modes = packetization_modes(h2250, h264)
    formats = formats_from_capability((name, choice), cat, packetization=modes[:1])
    if not formats:
        return None
    fmt = formats[0]
    pt = h2250.get("dynamicRTPPayloadType")
    return replace(fmt, payload_type=pt) if pt is not None else fmt


# --- formats -> SDP -----------------------------------------------------------------------


def media_descriptions(
    formats: Iterable[MediaFormat],
    *,
    port: int = 9,
    proto: str = "RTP/AVP",
    taken: Iterable[int] = (),
) -> list[MediaDescription]:
    """One ``m=`` line per media kind (audio, video, application) for ``formats``.

    Static codecs keep their RFC 3551 payload type; a dynamic one keeps the payload type
    it came with when that is free, else gets the lowest free one of 96-127 (RFC 3551 3;
    ``taken`` are already in use). Port 9 (discard) stands for an address still to be
    set by the media engine. Audio gets ``a=ptime`` from its first format, video
    ``b=AS`` from its highest rate.
    """
    used = set(taken)
    by_kind: dict[str, list[MediaFormat]] = {}
    for fmt in formats:
        by_kind.setdefault(fmt.kind, []).append(fmt)
    # Static and already-numbered formats first, so that no dynamic choice takes them.
    numbered: dict[int, int | None] = {}
    for fmt in (f for kind in _KINDS for f in by_kind.get(kind, [])):
        pt = fmt.codec.static_pt
        if pt is None and fmt.payload_type is not None and fmt.payload_type not in used:
            pt = fmt.payload_type
        numbered[id(fmt)] = pt
        if pt is not None:
            used.add(pt)
    out: list[MediaDescription] = []
    for kind in _KINDS:
        group = by_kind.get(kind, [])
        if not group:
            continue
        m = MediaDescription(kind, port, proto, [])
        for fmt in group:
            pt = numbered[id(fmt)]
            if pt is None:
                pt = next((p for p in DYNAMIC_PTS if p not in used), None)
                if pt is None:
                    raise CapabilityError("no dynamic payload type left (RFC 3551 3)")
                used.add(pt)
            if str(pt) in m.formats:
                continue  # the same static codec twice
            m.formats.append(str(pt))
            m.add_attr("rtpmap", f"{pt} {fmt.codec.rtpmap}")
            fmtp = _sdp_fmtp(fmt)
            if fmtp:
                m.add_attr("fmtp", f"{pt} {fmtp}")
        ptime = next((f.ptime for f in group if f.ptime), None)
        if kind == "audio" and ptime:
            m.add_attr("ptime", str(ptime))
        rates = [f.max_bit_rate for f in group if f.max_bit_rate]
        if kind == "video" and rates:
            m.bandwidths.append(("AS", max(rates) // 10))
        out.append(m)
    return out


def _sdp_fmtp(fmt: MediaFormat) -> str | None:
    """The ``a=fmtp`` of a format, leaving out what the catalogue says is the default."""
    if fmt.events is not None:
        return fmt.events
    defaults = {k.lower(): v.lower() for k, v in parse_params(fmt.codec.fmtp)}
    kept = [(k, v) for k, v in fmt.params if defaults.get(k.lower()) != v.lower()]
    return ";".join(f"{k}={v}" for k, v in kept) or None


def sdp_media_from_tcs(
    tcs: Mapping[str, Any],
    catalogue: CodecCatalogue | None = None,
    *,
    port: int = 9,
    taken: Iterable[int] = (),
) -> list[MediaDescription]:
    """SDP ``m=`` lines (an offer for the SIP side) for what a TCS's sender receives."""
    return media_descriptions(formats_from_tcs(tcs, catalogue), port=port, taken=taken)


# --- offer x TCS --------------------------------------------------------------------------


def _intersect(ours: MediaFormat, theirs: MediaFormat) -> MediaFormat | None:
    """What both sides take of one codec, in the terms (and payload type) of ``ours``."""
    if ours.events is not None or theirs.events is not None:
        common = parse_events(ours.events or "") & parse_events(theirs.events or "")
        return replace(ours, events=format_events(common)) if common else None
    h245 = ours.codec.h245
    if h245 is not None and h245.h241 is not None:
        return _intersect_h264(ours, theirs)
    rate = min(r for r in (ours.max_bit_rate, theirs.max_bit_rate, 10**9) if r)
    rate_or_none = None if rate == 10**9 else rate
    if h245 is not None and h245.mpi:
        mine, other = _picture_sizes(ours), _picture_sizes(theirs)
        sizes = [
            (size, str(max(mpi, other[size])))  # the larger MPI: the slower rate
            for size, mpi in mine.items()
            if size in other
        ]
        return replace(ours, params=tuple(sizes), max_bit_rate=rate_or_none) if sizes else None
    params = _with_defaults(ours)
    for key, value in _with_defaults(theirs).items():
        if params.get(key, value).lower() != value.lower():
            if {params[key].lower(), value.lower()} != {"yes", "no"}:
                return None
            params[key] = "no"  # an option only one side has is off (RFC 4856)
    defaults = dict(parse_params(ours.codec.fmtp.lower() if ours.codec.fmtp else None))
    explicit = {k.lower() for k, _ in ours.params}
    kept = tuple((k, v) for k, v in params.items() if k in explicit or defaults.get(k) != v)
    ptimes = [p for p in (ours.ptime, theirs.ptime) if p]
    return replace(ours, params=kept, ptime=min(ptimes) if ptimes else None)


def _intersect_h264(ours: MediaFormat, theirs: MediaFormat) -> MediaFormat | None:
    """H.264: same profile, the lower level, custom limits both state (RFC 6184 8.2.2)."""
    if _packetization_mode(ours) != _packetization_mode(theirs):
        return None
    a = {k.lower(): v for k, v in ours.params}
    b = {k.lower(): v for k, v in theirs.params}
    pa, pb = a.get("profile-level-id", "42000a"), b.get("profile-level-id", "42000a")
    if pa[:2].lower() != pb[:2].lower():
        return None
    la, lb = int(pa[4:6], 16), int(pb[4:6], 16)
    level = pa if la <= lb else pa[:4] + pb[4:6]
    params = [("profile-level-id", level)]
    for key in ("max-mbps", "max-fs", "max-br"):
        if key in a and key in b:
            params.append((key, str(min(int(a[key]), int(b[key])))))
    for key, value in ours.params:
        if key.lower() not in ("profile-level-id", "max-mbps", "max-fs", "max-br"):
            params.append((key, value))
    rates = [r for r in (ours.max_bit_rate, theirs.max_bit_rate) if r]
    return replace(ours, params=tuple(params), max_bit_rate=min(rates) if rates else None)


def common_formats(
    offer: SessionDescription | Iterable[MediaDescription],
    tcs: Mapping[str, Any],
    catalogue: CodecCatalogue | None = None,
) -> list[MediaFormat]:
    """The formats of an SDP offer that a TCS's sender also receives, in the offer's
    order (RFC 3264 6.1: the offerer's preference), each reduced to what both take."""
    media = offer.media if isinstance(offer, SessionDescription) else list(offer)
    theirs = formats_from_tcs(tcs, catalogue)
    chosen: list[MediaFormat] = []
    for m in media:
        if m.port == 0:
            continue
        for fmt in formats_of(m, catalogue):
            for other in theirs:
                if other.codec is not fmt.codec:
                    continue
                common = _intersect(fmt, other)
                if common is not None:
                    chosen.append(common)
                    break
    return chosen


__all__ = [
    "CapabilityError",
    "CapabilitySet",
    "MediaFormat",
    "capabilities",
    "capability_set",
    "common_formats",
    "data_type",
    "format_events",
    "format_from_channel",
    "formats_from_capability",
    "formats_from_tcs",
    "formats_of",
    "h241_parameters",
    "h264_params",
    "logical_channel_media",
    "media_descriptions",
    "packetization_modes",
    "parse_events",
    "parse_params",
    "sdp_media_from_tcs",
    "terminal_capability_set",
]
