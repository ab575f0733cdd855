"""SRTP keyed by SDES (RFC 4568), terminated per leg by the built-in relay.

Sans-IO helpers parse and write ``a=crypto`` (RFC 4568 9.1) for the two suites the
gateway speaks, AES_CM_128_HMAC_SHA1_80 (RFC 4568 6.2.1) and AEAD_AES_128_GCM (RFC
7714 12), and :class:`SrtpLeg` holds one side's two SRTP contexts from ``pylibsrtp``
(libsrtp: no cipher is written here). The key in a side's ``a=crypto`` is the key that
side *sends* with (RFC 4568 6.1): the relay unprotects what the side sends with it and
protects what it sends to the side with a key of its own, written in the SDP going to
that side.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
from dataclasses import dataclass

import pylibsrtp

from gateway.model.sdp import MediaDescription, SessionDescription

logger = logging.getLogger(__name__)

AES_CM_128_HMAC_SHA1_80 = "AES_CM_128_HMAC_SHA1_80"
AEAD_AES_128_GCM = "AEAD_AES_128_GCM"

# suite -> (libsrtp profile, master key + salt length in bytes)
SUITES: dict[str, tuple[int, int]] = {
    # RFC 4568 6.2.1: 128-bit key, 112-bit salt
    AES_CM_128_HMAC_SHA1_80: (pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80, 30),
    # RFC 7714 12: 128-bit key, 96-bit salt
    AEAD_AES_128_GCM: (pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM, 28),
}
SECURE_PROFILES = frozenset({"RTP/SAVP", "RTP/SAVPF"})


class SdesError(ValueError):
    """An ``a=crypto`` value the relay cannot use (malformed, or a suite it lacks)."""


@dataclass(frozen=True, slots=True)
class Crypto:
    """One ``a=crypto`` line: tag, suite and the master key with its salt."""

    tag: int
    suite: str
    key: bytes  # master key || master salt

    def serialize(self) -> str:
        """The attribute value (RFC 4568 9.1), one inline key, no lifetime, no MKI."""
        inline = base64.b64encode(self.key).decode("ascii")
        return f"{self.tag} {self.suite} inline:{inline}"


def parse_crypto(value: str) -> Crypto:
    """Parse an ``a=crypto`` value (RFC 4568 9.1); :class:`SdesError` if unusable here.

    Refused: unknown suites, several keys or an MKI (RFC 4568 6.1: one key per
    direction is all a relay needs), and session parameters (6.3), which would change
    what the suite means (unencrypted or unauthenticated SRTP among them).
    """
    parts = value.split()
    if len(parts) < 3:
        raise SdesError(f"a=crypto needs tag, suite and key parameters: {value!r}")
    tag_text, suite, key_params, *session = parts
    if not (tag_text.isascii() and tag_text.isdigit() and len(tag_text) <= 9):
        raise SdesError(f"a=crypto tag is not a number: {tag_text!r}")
    if suite not in SUITES:
        raise SdesError(f"crypto suite {suite} is not supported")
    if session:
        raise SdesError(f"session parameters are not supported: {' '.join(session)}")
    if ";" in key_params:
        raise SdesError("several master keys are not supported")
    method, _, info = key_params.partition(":")
    if method != "inline" or not info:
        raise SdesError(f"key method must be inline: {key_params!r}")
    key_text, *extra = info.split("|")
    for item in extra:
        if ":" in item:  # MKI:length (RFC 4568 6.1)
            raise SdesError("an MKI is not supported")
        # A lifetime (2^n or a number of packets) is accepted: calls rekey never.
    try:
        key = base64.b64decode(key_text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SdesError(f"a=crypto key is not base64: {exc}") from None
    if len(key) != SUITES[suite][1]:
        raise SdesError(f"{suite} needs a {SUITES[suite][1]}-byte key and salt, got {len(key)}")
    return Crypto(int(tag_text), suite, key)


def usable_cryptos(media: MediaDescription) -> list[Crypto]:
    """The ``a=crypto`` lines of an m= line the relay can use, in the side's order."""
    found: list[Crypto] = []
    for value in media.get_attrs("crypto"):
        try:
            found.append(parse_crypto(value))
        except SdesError as exc:
            logger.info("ignoring a=crypto:%s (%s)", value, exc)
    return found


def is_secure(media: MediaDescription) -> bool:
    """Whether an m= line uses the secure RTP profile (RFC 3711 12: RTP/SAVP, RTP/SAVPF)."""
    return media.proto.upper() in SECURE_PROFILES


def offer_encrypted(sdp: SessionDescription) -> bool:
    """Whether every live RTP stream of an SDP is SRTP with an ``a=crypto`` the relay
    can use (RFC 4568 5), and there is at least one: what ``encryption: required`` asks."""
    live = [m for m in sdp.media if m.port != 0 and m.proto.upper().startswith("RTP/")]
    return bool(live) and all(is_secure(m) and usable_cryptos(m) for m in live)


def plain_profile(proto: str) -> str:
    """The plain counterpart of a profile: RTP/SAVP -> RTP/AVP, RTP/SAVPF -> RTP/AVPF."""
    upper = proto.upper()
    return "RTP/AVPF" if upper == "RTP/SAVPF" else "RTP/AVP" if upper == "RTP/SAVP" else proto


def secure_profile(proto: str) -> str:
    """The secure counterpart of a profile: RTP/AVP -> RTP/SAVP, RTP/AVPF -> RTP/SAVPF."""
    upper = proto.upper()
    return "RTP/SAVPF" if upper in ("RTP/AVPF", "RTP/SAVPF") else "RTP/SAVP"


def new_crypto(tag: int, suite: str) -> Crypto:
    """A fresh master key and salt from the system's random source, for the relay."""
    return Crypto(tag, suite, os.urandom(SUITES[suite][1]))


def _policy(crypto: Crypto, ssrc_type: int) -> pylibsrtp.Policy:
    profile, _ = SUITES[crypto.suite]
    policy = pylibsrtp.Policy(key=crypto.key, ssrc_type=ssrc_type, srtp_profile=profile)
    # The relay may send one sequence number twice (a side's own retransmission):
    # libsrtp would refuse it otherwise (RFC 3711 3.3.2 is the receiver's concern).
    policy.allow_repeat_tx = True
    return policy


class SrtpLeg:
    """SRTP facing one side: ``remote`` keys what the side sends, ``local`` what it gets.

    The four methods are the relay's packet transforms (:mod:`gateway.media.forwarding`):
    bytes in, bytes out, ``None`` for a packet that fails (RFC 3711 3.3: an SRTP packet
    whose authentication or replay check fails is discarded).
    """

    __slots__ = ("_in", "_out", "failures", "local", "remote")

    def __init__(self, remote: Crypto, local: Crypto) -> None:
        self.remote = remote
        self.local = local
        self._in = pylibsrtp.Session(_policy(remote, pylibsrtp.Policy.SSRC_ANY_INBOUND))
        self._out = pylibsrtp.Session(_policy(local, pylibsrtp.Policy.SSRC_ANY_OUTBOUND))
        self.failures = 0

    def rekey_remote(self, remote: Crypto) -> None:
        """The side sends with a new key (RFC 4568 7.1.4): a new inbound context; the
        outbound one goes on, so no keystream of ours is ever used twice."""
        self._in = pylibsrtp.Session(_policy(remote, pylibsrtp.Policy.SSRC_ANY_INBOUND))
        self.remote = remote

    def unprotect_rtp(self, packet: bytes) -> bytes | None:
        """SRTP from the side -> RTP (RFC 3711 3.3)."""
        try:
            return self._in.unprotect(packet)
        except pylibsrtp.Error:
            self.failures += 1
            return None

    def unprotect_rtcp(self, packet: bytes) -> bytes | None:
        """SRTCP from the side -> RTCP (RFC 3711 3.4)."""
        try:
            return self._in.unprotect_rtcp(packet)
        except pylibsrtp.Error:
            self.failures += 1
            return None

    def protect_rtp(self, packet: bytes) -> bytes | None:
        """RTP -> SRTP to the side (RFC 3711 3.3)."""
        try:
            return self._out.protect(packet)
        except pylibsrtp.Error:
            self.failures += 1
            return None

    def protect_rtcp(self, packet: bytes) -> bytes | None:
        """RTCP -> SRTCP to the side (RFC 3711 3.4)."""
        try:
            return self._out.protect_rtcp(packet)
        except pylibsrtp.Error:
            self.failures += 1
            return None


__all__ = [
    "AEAD_AES_128_GCM",
    "AES_CM_128_HMAC_SHA1_80",
    "SUITES",
    "Crypto",
    "SdesError",
    "SrtpLeg",
    "is_secure",
    "new_crypto",
    "offer_encrypted",
    "parse_crypto",
    "plain_profile",
    "secure_profile",
    "usable_cryptos",
]
