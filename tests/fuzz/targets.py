"""Fuzz targets: each feeds bytes to one decoder of the gateway and checks its contract.

The contract is the one every decoder of the project states: what a peer (or an operator's
file) sends may be refused only with the module's own error type, never with another
exception, and what is accepted must hold together. A target lets its allowed error pass
quietly and lets anything else escape, which atheris reports as a crash with the input.

- ``sip``: RFC 3261 7 and 25 (message grammar), 18.3 (stream framing), 21.4.1 (the error
  answer to a request that cannot be parsed): only :class:`SipParseError`; an accepted
  message survives serialise -> parse; a salvaged error response parses itself; its
  digest credentials are verified and its challenges answered without raising
  (RFC 7616 3.4, RFC 3261 22.2).
- ``sdp``: RFC 8866 5 (the SDP grammar): only :class:`SdpError`; an accepted description
  survives serialise -> parse.
- ``q931``: Q.931 4 (message and information elements, H.225.0 7.2) and the H.225.0
  user-user PDU with what it carries (H.245 tunnelled, fastStart proposals) in aligned
  PER (X.691): only :class:`H323ParseError`.
- ``h245``: an H.245 MultimediaSystemControlMessage (H.245 annex A) in aligned PER:
  only :class:`H323ParseError`.
- ``ras``: an H.225.0 RAS message (H.225.0 7) to the gateway's gatekeeper, whose
  ``receive`` promises never to raise for what a peer sent.
- ``tpkt``: RFC 1006 framing of a TCP stream cut at arbitrary points: only
  :class:`H323ParseError`.
- ``rtp``: RFC 3550 5.1 (RTP header), 6.4 (SR/RR blocks), RFC 5761 4 (RTP/RTCP
  demultiplexing), RFC 4585 6.3 / RFC 5104 4.3.1 (PLI/FIR), RFC 4733 2.3 (telephone
  events): only :class:`RtpParseError`, and the event receiver takes anything.
- ``dialplan``: a dialplan file (YAML): only :class:`DialplanError`.

The module imports the gateway itself, so that ``run_target.py`` can import it inside
``atheris.instrument_imports`` and have the decoders instrumented for coverage.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from gateway.dialplan import DialplanError, load_dialplan
from gateway.h323 import asn1, q931, tpkt
from gateway.h323.errors import H323ParseError
from gateway.h323.ras import Gatekeeper
from gateway.media.dtmf import EventReceiver
from gateway.media.rtp import (
    RtpParseError,
    asks_for_keyframe,
    is_rtcp,
    parse_rtcp_reports,
    parse_rtp,
    rtcp_packet_types,
)
from gateway.model.sdp import SdpError, SessionDescription
from gateway.sip.auth import (
    AuthParseError,
    DigestAuthenticator,
    answer_challenge,
    parse_challenge_params,
)
from gateway.sip.errors import SipParseError
from gateway.sip.message import (
    Request,
    Response,
    StreamFramer,
    parse_message,
    salvage_error_response,
)

Target = Callable[[bytes], None]


class ContractBroken(AssertionError):
    """An input was accepted but what came out does not hold together."""


def fuzz_sip(data: bytes) -> None:
    """One datagram, then the same bytes as a TCP stream cut in two."""
    try:
        msg = parse_message(data)
    except SipParseError as exc:
        if not 400 <= exc.status <= 699:
            raise ContractBroken(f"parse error with status {exc.status}") from None
        reply = salvage_error_response(data, exc.status, exc.reason, ("127.0.0.1", 5060))
        if reply is not None:
            answer = parse_message(reply)  # must parse: we send it
            if not isinstance(answer, Response) or answer.status != exc.status:
                raise ContractBroken(f"salvaged {answer!r} for a {exc.status}") from None
    else:
        for part in ("contacts", "content_type", "vias", "from_", "to", "cseq"):
            with contextlib.suppress(SipParseError):
                getattr(msg, part)
        if isinstance(msg, Request):
            msg.uri  # noqa: B018 - already parsed: must not raise now
        again = parse_message(msg.serialize())
        if type(again) is not type(msg) or again.serialize() != msg.serialize():
            raise ContractBroken("serialise -> parse changed the message")
        _digest(msg)
    framer = StreamFramer()
    cut = len(data) // 2
    with contextlib.suppress(SipParseError):
        for chunk in (data[:cut], data[cut:]):
            for framed in framer.feed(chunk):
                with contextlib.suppress(SipParseError):
                    parse_message(framed, stream=True)


_AUTHENTICATOR = DigestAuthenticator("fuzz", lambda user: "secret" if user == "kiosk" else None)


def _digest(msg: Request | Response) -> None:
    """RFC 3261 22 with RFC 7616: credentials a peer sends are verified without raising
    (a bad value is a refusal); challenges a peer sends are answered or ignored."""
    if isinstance(msg, Request):
        for name in ("authorization", "proxy-authorization"):
            for value in msg.headers.get_all(name):
                _AUTHENTICATOR.verify(msg.method, value)
                with contextlib.suppress(AuthParseError):
                    parse_challenge_params(value)
        return
    for name in ("www-authenticate", "proxy-authenticate"):
        values = msg.headers.get_all(name)
        if values:
            answer_challenge(
                values, method="INVITE", uri="sip:caf@127.0.0.1", username="kiosk",
                password="secret", cnonce="0a4f113b",
            )  # fmt: skip


def fuzz_sdp(data: bytes) -> None:
    try:
        sdp = SessionDescription.parse(data)
    except SdpError:
        return
    text = sdp.serialize()
    again = SessionDescription.parse(text)
    if again.serialize() != text:
        raise ContractBroken("serialise -> parse changed the description")
    for media in sdp.media:
        with contextlib.suppress(SdpError):
            media.rtpmap()
        with contextlib.suppress(SdpError):
            media.fmtp()
        sdp.connection_for(media)
        sdp.effective_direction(media)


def fuzz_q931(data: bytes) -> None:
    try:
        message = q931.decode(data)
    except H323ParseError:
        return
    if q931.decode(message.encode()) != message:  # what we read, we can write back
        raise ContractBroken("Q.931 decode -> encode -> decode changed the message")
    for kind in _Q931_ELEMENTS:
        with contextlib.suppress(H323ParseError):  # cause 100 (Q.931 5.8.7.2)
            message.find(kind)
    try:
        user_user = message.user_user
        if user_user is None:
            return
        value = asn1.decode_uuie(user_user)
    except H323ParseError:
        return
    pdu = value.get("h323-uu-pdu", {})
    for tunnelled in pdu.get("h245Control", []):
        with contextlib.suppress(H323ParseError):
            asn1.decode_h245(tunnelled)
    body = pdu.get("h323-message-body", (None, None))[1]
    for olc in body.get("fastStart", []) if isinstance(body, dict) else []:
        with contextlib.suppress(H323ParseError):
            asn1.decode_olc(olc)


_Q931_ELEMENTS = (
    q931.BearerCapability,
    q931.CauseIE,
    q931.CallState,
    q931.FacilityIE,
    q931.ProgressIndicator,
    q931.NotificationIndicator,
    q931.Display,
    q931.KeypadFacility,
    q931.Signal,
    q931.CalledPartyNumber,
    q931.CallingPartyNumber,
)


def fuzz_h245(data: bytes) -> None:
    with contextlib.suppress(H323ParseError):
        asn1.decode_h245(data)
    with contextlib.suppress(H323ParseError):
        asn1.decode_olc(data)


RAS_SEPARATOR = b"\xff\xfe\xfd"


def fuzz_ras(data: bytes) -> None:
    """The gatekeeper's ``receive`` must swallow anything. One input is several
    datagrams cut at ``RAS_SEPARATOR``, fed to a fresh gatekeeper in turn, one second
    apart, so that a registration meets the requests that follow it and every input is
    replayed alone exactly."""
    gk = Gatekeeper(("127.0.0.1", 1719), ("127.0.0.1", 1720))
    for at, datagram in enumerate(data.split(RAS_SEPARATOR)[:8]):
        gk.receive(datagram, ("127.0.0.2", 1719), 1000.0 + at)
        gk.datagrams_to_send()
        gk.events()
        gk.on_timer(1000.5 + at)
        with contextlib.suppress(H323ParseError):
            asn1.decode_ras(datagram)


def fuzz_tpkt(data: bytes) -> None:
    framer = tpkt.TpktFramer()
    step = 1 + (data[0] % 7 if data else 0)
    with contextlib.suppress(H323ParseError):
        for at in range(0, len(data), step):
            framer.feed(data[at : at + step])


def fuzz_rtp(data: bytes) -> None:
    try:
        packet = parse_rtp(data)
    except RtpParseError:
        pass
    else:  # every field is kept as read, padding included: the same bytes come back
        if packet.serialize() != data:
            raise ContractBroken("RTP serialise -> parse changed the packet")
    is_rtcp(data)
    asks_for_keyframe(data)
    with contextlib.suppress(RtpParseError):
        rtcp_packet_types(data)
    with contextlib.suppress(RtpParseError):
        parse_rtcp_reports(data)
    digits: list[object] = []
    receiver = EventReceiver(101, 8000, digits.append)
    receiver.feed(data)
    receiver.feed(data[:-1] if data else data)


_SHM = "/dev/shm" if os.path.isdir("/dev/shm") else None  # memory, not disk, when there
_DIALPLAN_DIR = Path(tempfile.mkdtemp(prefix="vrgw-fuzz-dialplan-", dir=_SHM))
_SECRETS = Path(__file__).resolve().parents[2] / "dialplans" / "example.secrets"
(_DIALPLAN_DIR / "example.secrets").write_bytes(_SECRETS.read_bytes())
atexit.register(shutil.rmtree, _DIALPLAN_DIR, True)


def fuzz_dialplan(data: bytes) -> None:
    path = _DIALPLAN_DIR / "example.yaml"
    path.write_bytes(data)
    with contextlib.suppress(DialplanError):
        load_dialplan(path, env={})


def fuzz_selfcheck(data: bytes) -> None:
    """Breaks its contract on purpose (any input starting ``crash``): the test of the
    harness itself, which must report it as a crash with the input."""
    if data.startswith(b"crash"):
        raise KeyError("a decoder raised outside its contract")


TARGETS: dict[str, Target] = {
    "selfcheck": fuzz_selfcheck,
    "sip": fuzz_sip,
    "sdp": fuzz_sdp,
    "q931": fuzz_q931,
    "h245": fuzz_h245,
    "ras": fuzz_ras,
    "tpkt": fuzz_tpkt,
    "rtp": fuzz_rtp,
    "dialplan": fuzz_dialplan,
}
