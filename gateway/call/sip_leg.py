"""SIP call legs: one side of a bridged call, speaking SIP, emitting neutral call events.

A :class:`SipLeg` is a UAS (the kiosk calls us) or a UAC (we call a station). It turns
the SIP dialog (RFC 3261 12-15), session timers (RFC 4028) and INFO (DTMF, RFC 5168
fast update) into the events of :mod:`gateway.model.events`, and the controller's
commands (:class:`~gateway.call.leg.CallLeg`) back into SIP. It holds no socket: it
sends through :class:`SipEndpoint`, and its timers go through the UA's scheduler.
:class:`SipDialer` opens the outgoing legs.

Offer/answer (RFC 3264, RFC 3261 13.2.1): an INVITE without SDP is a late offer; the
kiosk's leg then puts our offer in its 2xx and reports the ACK's answer
(:class:`~gateway.model.events.LateAnswer`), and a station's leg that sent no offer
holds its ACK until :meth:`SipLeg.complete` gives it the answer to carry.

Towards a station the leg also acknowledges reliable provisional responses with PRACK
(RFC 3262), and answers a 401/407 to its INVITE once with the station's credentials
from the dialplan (RFC 3261 22.2).
"""

from __future__ import annotations

import logging
from enum import Enum
from typing import TYPE_CHECKING

from gateway.call.leg import EventSink, OutgoingCall, Target
from gateway.call.scheduler import Timer
from gateway.model.causes import Cause
from gateway.model.events import (
    Answered,
    CallEvent,
    Disconnected,
    Dtmf,
    Failed,
    LateAnswer,
    MediaUpdate,
    MediaUpdateAnswer,
    Ringing,
    Side,
)
from gateway.model.sdp import SdpError, SessionDescription
from gateway.sip.auth import CHALLENGE_HEADER, CREDENTIALS_HEADER, answer_challenge
from gateway.sip.causes import parse_reason, q850_from_sip, reason_header, sip_from_q850
from gateway.sip.dialog import Dialog, DialogState, new_tag
from gateway.sip.info import (
    DTMF_RELAY,
    FAST_UPDATE_BODY,
    MEDIA_CONTROL,
    dtmf_relay_body,
    parse_info,
)
from gateway.sip.message import Headers, Request, Response, make_response
from gateway.sip.reliable import Arrival, ReliableProvisionals, rack_for
from gateway.sip.session_timer import SessionTimer, negotiate_as_uac
from gateway.sip.transaction import Address, new_branch

if TYPE_CHECKING:
    from gateway.call.sip_ua import SipUserAgent

log = logging.getLogger(__name__)

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, REGISTER, SUBSCRIBE"
SUPPORTED = "timer"
# What our INVITEs to stations support: we PRACK reliable provisionals (RFC 3262), though
# we never send any ourselves, so responses and kiosk-side messages keep SUPPORTED.
UAC_SUPPORTED = "100rel, timer"
SDP = "application/sdp"
CONTEXT_PREFIX = "X-Visio-"
# A mid-call offer refused for a moment (glare, an offer already under way) is answered
# 491 so that the peer tries again (RFC 3261 14.1), whatever its cause.
_PENDING = Cause.TEMPORARY_FAILURE


class LegState(Enum):
    """Where a leg stands, from the first INVITE to the end of its dialog."""

    PROCEEDING = "proceeding"  # INVITE sent or received, no dialog yet
    EARLY = "early"  # a tagged provisional passed
    ANSWERED = "answered"  # 2xx sent, ACK awaited (UAS)
    CONFIRMED = "confirmed"
    CANCELLING = "cancelling"  # UAC: CANCEL wanted, sent once a provisional arrives
    TERMINATED = "terminated"


def parse_sdp(body: bytes) -> SessionDescription | None:
    """The SDP of a body, None when empty; an SDP error surfaces as SdpError."""
    if not body:
        return None
    return SessionDescription.parse(body)


class SipLeg:
    """One SIP side of a call (UAS for kiosks, UAC for stations)."""

    protocol = "sip"

    def __init__(
        self,
        ua: SipUserAgent,
        side: Side,
        *,
        transport: str,
        peer: Address,
        call_label: str = "",
    ) -> None:
        self.ua = ua
        self.side = side
        self.transport = transport
        self.peer = peer
        self.label = call_label
        self.sink: EventSink | None = None
        self.scheduler = ua.scheduler
        self.state = LegState.PROCEEDING
        self.local_tag = new_tag()
        self.dialog: Dialog | None = None
        self.invite: Request | None = None
        self.invite_key: str | None = None
        self.uas = False
        self.last_local_sdp: bytes = b""
        self.last_remote_sdp: bytes = b""
        self.pending_update: tuple[str, Request] | None = None  # server key + re-INVITE/UPDATE
        self.outgoing_update: str | None = None  # client key of our re-INVITE
        self.session_timer: SessionTimer | None = None
        self._timer: Timer | None = None
        self._peer_allows_update = False
        self._refresh_key: str | None = None  # client key of our session-refresh request
        self.end_cause: Cause | None = None
        self._provisional_seen = False  # UAC: any 1xx, 100 included, allows a CANCEL (9.1)
        self._ack_pending: int | None = None  # UAC late offer: CSeq of the 2xx awaiting ACK
        self._offer_in_2xx = False  # UAS late offer: our 2xx carried the offer
        # UAC: the station's login for its 401/407 (RFC 3261 22.2), answered only once.
        self.credentials: tuple[str, str] | None = None
        self.peer_name = ""  # the station id, for logs
        self._challenged = False
        # UAC: reliable provisionals of the current INVITE (RFC 3262 4), and the early
        # dialogs of forks other than self.dialog's, by To tag (their PRACKs' CSeq spaces).
        self._reliable = ReliableProvisionals()
        self._early_dialogs: dict[str, Dialog] = {}

    # -- helpers ----------------------------------------------------------------------
    def _emit(self, event: CallEvent) -> None:
        if self.sink is not None:
            self.sink(self, event)

    def _via(self) -> str:
        return self.ua.endpoint.via_for(self.transport, new_branch())

    def _contact(self) -> str:
        return self.ua.endpoint.contact_uri(self.transport)

    @property
    def ended(self) -> bool:
        """True once the leg has nothing more to say."""
        return self.state is LegState.TERMINATED

    def _finish(self) -> None:
        if self.state is LegState.TERMINATED:
            return
        self.state = LegState.TERMINATED
        self._cancel_timer()
        self.ua.forget_leg(self)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm_session_timer(self) -> None:
        """Schedule our refresh, or the deadline of the peer's (RFC 4028 10)."""
        self._cancel_timer()
        st = self.session_timer
        if st is None or self.state is not LegState.CONFIRMED:
            return
        if st.we_refresh:
            self._timer = self.scheduler.call_later(st.refresh_after, self._refresh_session)
        else:
            self._timer = self.scheduler.call_later(st.expire_after, self._session_expired)

    def _refresh_session(self) -> None:
        self._timer = None
        if self.state is not LegState.CONFIRMED or self.dialog is None:
            return
        if self.outgoing_update is not None or self.pending_update is not None:
            self._arm_session_timer()  # an offer/answer is under way; it refreshes too
            return
        st = self.session_timer
        assert st is not None
        extra = [("Session-Expires", st.header()), ("Supported", SUPPORTED)]
        if self._peer_allows_update:
            request = self.dialog.new_request("UPDATE", self._via(), self._contact(), extra=extra)
        else:
            # A refresh re-INVITE repeats our last SDP unchanged (RFC 4028 10, RFC 3264 8).
            request = self.dialog.new_request(
                "INVITE", self._via(), self._contact(), body=self.last_local_sdp, extra=extra
            )
        key = self.ua.send_request(self, request, self.dialog.destination(), self.transport)
        self.outgoing_update = key
        self._refresh_key = key

    def _session_expired(self) -> None:
        self._timer = None
        log.info("%s leg %s: session timer expired", self.label, self.side.value)
        self.hangup(Cause.RECOVERY_ON_TIMER_EXPIRY, "session timer expired")
        self._emit(Disconnected(Cause.RECOVERY_ON_TIMER_EXPIRY, "session timer expired"))

    # -- UAS side (the kiosk called us) -----------------------------------------------
    def accept_invite(
        self, request: Request, key: str, session_timer: SessionTimer | None = None
    ) -> None:
        """Take ownership of an incoming INVITE's server transaction (and its timer)."""
        self.uas = True
        self.invite = request
        self.invite_key = key
        self.session_timer = session_timer
        self.last_remote_sdp = request.body
        self._peer_allows_update = "UPDATE" in (request.headers.get("allow") or "").upper()

    def _uas_response(
        self, status: int, *, body: bytes = b"", extra: list[tuple[str, str]] | None = None
    ) -> Response:
        assert self.invite is not None
        headers = list(extra or ())
        if status > 100 and status < 300:
            headers.append(("Contact", f"<{self._contact()}>"))
            rr = self.invite.headers.get_all("record-route")
            headers[:0] = [("Record-Route", v) for v in rr]  # 12.1.1: copied into the response
        if body:
            headers.append(("Content-Type", SDP))
        return make_response(self.invite, status, to_tag=self.local_tag, extra=headers, body=body)

    @property
    def dialog_ids(self) -> tuple[str, str, str | None] | None:
        """(Call-ID, our tag, the peer's tag) of the dialog, for RFC 4235 documents."""
        d = self.dialog
        return (d.call_id, d.local_tag, d.remote_tag) if d is not None else None

    def _ensure_uas_dialog(self) -> Dialog:
        if self.dialog is None:
            assert self.invite is not None
            self.dialog = Dialog.as_uas(self.invite, self.local_tag, self.peer, self.transport)
            self.ua.register_dialog(self, self.dialog)
        return self.dialog

    def ring(self, early_media: SessionDescription | None) -> None:
        """Tell the caller the far end is alerting: 180, or 183 with early media."""
        if not self.uas or self.state not in (LegState.PROCEEDING, LegState.EARLY):
            return
        assert self.invite_key is not None
        self._ensure_uas_dialog()
        self.state = LegState.EARLY
        if early_media is not None:
            body = early_media.serialize()
            self.last_local_sdp = body
            self.ua.endpoint.send_response(self.invite_key, self._uas_response(183, body=body))
        else:
            self.ua.endpoint.send_response(self.invite_key, self._uas_response(180))

    def answer(self, sdp: SessionDescription | None) -> None:
        """Accept the caller's INVITE with 200 (13.3.1.4): our answer, or our offer if the
        INVITE had none (RFC 3261 13.2.1: the ACK then carries the answer)."""
        if not self.uas or self.state not in (LegState.PROCEEDING, LegState.EARLY):
            return
        assert self.invite_key is not None and self.invite is not None
        dialog = self._ensure_uas_dialog()
        dialog.state = DialogState.CONFIRMED
        body = sdp.serialize() if sdp is not None else self.last_local_sdp
        self.last_local_sdp = body
        self._offer_in_2xx = not self.invite.body and bool(body)
        extra = [("Allow", ALLOW), ("Supported", SUPPORTED)]
        session_timer = self.session_timer
        if session_timer is not None:
            extra.append(("Session-Expires", session_timer.header()))
            if not session_timer.we_refresh:
                extra.append(("Require", "timer"))
        self.state = LegState.ANSWERED
        self.ua.endpoint.send_response(
            self.invite_key, self._uas_response(200, body=body, extra=extra)
        )

    def reject(self, failure: Failed) -> None:
        """Refuse the caller's INVITE with a final status and a Q.850 Reason (RFC 3326)."""
        if not self.uas or self.state not in (LegState.PROCEEDING, LegState.EARLY):
            return
        assert self.invite_key is not None
        status = sip_from_q850(failure.cause)
        extra = [("Reason", reason_header(failure.cause, failure.reason))]
        if failure.retry_after is not None:
            extra.append(("Retry-After", str(failure.retry_after)))
        self.ua.endpoint.send_response(self.invite_key, self._uas_response(status, extra=extra))
        self._finish()

    def on_ack(self, request: Request) -> None:
        """The ACK for our 2xx: the dialog is confirmed (13.3.1.4); it answers a late offer."""
        if self.state is not LegState.ANSWERED:
            return
        self.state = LegState.CONFIRMED
        self._arm_session_timer()
        if not self._offer_in_2xx:
            return
        self._offer_in_2xx = False
        try:
            answer = parse_sdp(request.body)
        except SdpError as exc:
            log.info("%s: bad SDP answer in ACK: %s", self.label, exc)
            answer = None
        if answer is None:
            # RFC 3261 13.2.1: the ACK must answer the offer of our 2xx; without it the
            # media cannot flow, so the call is released as a bearer failure.
            cause = Cause.BEARER_CAPABILITY_NOT_IMPLEMENTED
            self.hangup(cause, "no SDP answer in ACK")
            self._emit(Disconnected(cause, "no SDP answer in ACK"))
            return
        self.last_remote_sdp = request.body
        self._emit(LateAnswer(answer))

    def on_ack_timeout(self) -> None:
        """No ACK for our 2xx within 64*T1: end the dialog with BYE (13.3.1.4)."""
        if self.state is LegState.ANSWERED:
            self.state = LegState.CONFIRMED
            self.hangup(Cause.RECOVERY_ON_TIMER_EXPIRY, "no ACK received")
            self._emit(Disconnected(Cause.RECOVERY_ON_TIMER_EXPIRY, "no ACK received"))

    def on_cancel(self) -> None:
        """The caller cancelled (9.2): 487 to its INVITE, the call ends."""
        if self.state not in (LegState.PROCEEDING, LegState.EARLY):
            return
        assert self.invite_key is not None
        self.ua.endpoint.send_response(self.invite_key, self._uas_response(487))
        self._finish()
        self._emit(Disconnected(Cause.NORMAL_CLEARING, "cancelled by caller"))

    # -- UAC side (we call a station) ---------------------------------------------------
    def send_invite(
        self,
        request_uri: str,
        *,
        from_value: str,
        to_value: str,
        sdp: SessionDescription | None,
        max_forwards: int,
        extra: list[tuple[str, str]],
        session_expires: int,
        min_se: int,
    ) -> None:
        """Send the INVITE of a new outgoing call (8.1.1, 13.2.1)."""
        self.uas = False
        body = sdp.serialize() if sdp is not None else b""
        self.last_local_sdp = body
        call_id = self.ua.new_call_id()
        headers = Headers(
            [
                ("Via", self._via()),
                ("Max-Forwards", str(max_forwards)),
                ("From", f"{from_value};tag={self.local_tag}"),
                ("To", to_value),
                ("Call-ID", call_id),
                ("CSeq", "1 INVITE"),
                ("Contact", f"<{self._contact()}>"),
                ("Allow", ALLOW),
                ("Supported", UAC_SUPPORTED),
                ("Session-Expires", str(session_expires)),
                ("Min-SE", str(min_se)),
                *extra,
            ]
        )
        if body:
            headers.add("Content-Type", SDP)
        self.invite = Request("INVITE", request_uri, headers, body)
        self.invite_key = self.ua.send_request(self, self.invite, self.peer, self.transport)

    def _send_cancel(self) -> None:
        """CANCEL our pending INVITE (9.1): same Via branch, Route set, Call-ID, CSeq number."""
        invite = self.invite
        assert invite is not None
        headers = Headers(
            [
                ("Via", invite.headers.get_all("via")[0]),
                ("Max-Forwards", "70"),
                ("From", invite.headers.get("from") or ""),
                ("To", invite.headers.get("to") or ""),
                ("Call-ID", invite.call_id),
                ("CSeq", f"{invite.cseq.seq} CANCEL"),
                ("Reason", reason_header(self.end_cause or Cause.NORMAL_CLEARING)),
            ]
        )
        for route in invite.headers.get_all("route"):
            headers.add("Route", route)
        self.ua.send_request(
            self, Request("CANCEL", invite.uri_text, headers), self.peer, self.transport
        )

    def on_response(self, response: Response, key: str) -> None:
        """A response to a request this leg sent."""
        method = response.cseq.method
        if key == self.invite_key and method == "INVITE":
            self._on_invite_response(response)
        elif key == self.outgoing_update:
            self._on_update_response(response)
        # BYE, CANCEL, INFO, PRACK answers need nothing more than logging.
        elif response.status >= 300 and method in ("INFO", "BYE", "PRACK"):
            log.debug("%s: %s answered %d", self.label, method, response.status)

    def _on_invite_response(self, response: Response) -> None:
        status = response.status
        assert self.invite is not None
        if status < 200:
            self._provisional_seen = True
            if self.state is LegState.CANCELLING:
                self._send_cancel()
                self.state = LegState.TERMINATED  # awaiting 487, nothing else to report
                return
            if status == 100:
                return
            if self.state is LegState.TERMINATED:
                return
            early_dialog = self._early_dialog(response)
            arrival = self._reliable.receive(response)
            if arrival is Arrival.REPEAT or arrival is Arrival.GAP:
                # A retransmission (our PRACK is its own transaction and retransmits
                # itself) or one out of order, which the UAS sends again (RFC 3262 4).
                return
            if arrival is Arrival.NEW and early_dialog is not None:
                self._send_prack(response, early_dialog)
            self.state = LegState.EARLY
            try:
                early = parse_sdp(response.body)
            except SdpError as exc:
                log.info("%s: bad SDP in %d: %s", self.label, status, exc)
                early = None
            if early is not None:
                self.last_remote_sdp = response.body
            self._emit(Ringing(early))
            return
        if status < 300:
            self._on_invite_2xx(response)
            return
        if self.state is LegState.TERMINATED or self.state is LegState.CANCELLING:
            self.ua.forget_leg(self)
            self.state = LegState.TERMINATED
            return
        if status in (401, 407) and self._resend_with_credentials(response):
            return
        self._finish()
        reason = parse_reason(response.headers.get("reason"))
        retry = response.headers.get("retry-after")
        self._emit(
            Failed(
                cause=reason[0] if reason else q850_from_sip(status),
                reason=reason[1] if reason else response.reason,
                retry_after=int(retry.split(";")[0])
                if retry and retry.split(";")[0].strip().isdigit()
                else None,
            )
        )

    def _early_dialog(self, response: Response) -> Dialog | None:
        """The early dialog a tagged 1xx belongs to (12.1.2), made on its first response."""
        assert self.invite is not None
        tag = response.to.tag
        if not tag:
            return None
        if self.dialog is None:
            self.dialog = Dialog.as_uac(self.invite, response, self.peer, self.transport)
        if tag == self.dialog.remote_tag:
            return self.dialog
        fork = self._early_dialogs.get(tag)
        if fork is None:
            fork = Dialog.as_uac(self.invite, response, self.peer, self.transport)
            self._early_dialogs[tag] = fork
        return fork

    def _send_prack(self, response: Response, dialog: Dialog) -> None:
        """Acknowledge a reliable provisional response in its early dialog (RFC 3262 4)."""
        rack = rack_for(response)
        assert rack is not None
        if response.body and self.invite is not None and not self.invite.body:
            # RFC 3262 5: a PRACK must answer an offer in the 1xx; the answer comes from
            # the kiosk only after the call is answered, so this one goes unanswered.
            log.info(
                "%s: reliable %d carries an offer we cannot answer in PRACK",
                self.label,
                response.status,
            )
        dialog.update_target(response)
        request = dialog.new_request("PRACK", self._via(), extra=[("RAck", rack)])
        self.ua.send_request(self, request, dialog.destination(), self.transport)

    def _resend_with_credentials(self, response: Response) -> bool:
        """Answer a station's 401/407 once: the INVITE again with credentials (22.2).

        Same Call-ID, From tag and To, the next CSeq and a new branch (8.1.3.5); False when
        there is nothing to answer with, and the challenge then ends the offer.
        """
        invite = self.invite
        assert invite is not None
        status = response.status
        who = self.peer_name or f"{self.peer[0]}:{self.peer[1]}"
        if self._challenged:
            log.info(
                "%s: station %s challenged the authenticated INVITE (%d)", self.label, who, status
            )
            return False
        if self.credentials is None:
            log.info(
                "%s: station %s asks for authentication (%d), no credentials in the dialplan",
                self.label,
                who,
                status,
            )
            return False
        username, password = self.credentials
        value = answer_challenge(
            response.headers.get_all(CHALLENGE_HEADER[status].lower()),
            method="INVITE",
            uri=invite.uri_text,
            username=username,
            password=password,
        )
        if value is None:
            log.info(
                "%s: station %s sent no digest challenge we can answer (%d)",
                self.label,
                who,
                status,
            )
            return False
        self._challenged = True
        headers = invite.headers.copy()
        headers.set("Via", self._via())
        headers.set("CSeq", f"{invite.cseq.seq + 1} INVITE")
        headers.add(CREDENTIALS_HEADER[status], value)
        self.invite = Request("INVITE", invite.uri_text, headers, invite.body)
        # A new transaction: what its predecessor's provisionals set up does not carry over.
        self.dialog = None
        self._early_dialogs.clear()
        self._reliable = ReliableProvisionals()
        self._provisional_seen = False
        self.state = LegState.PROCEEDING
        self.invite_key = self.ua.send_request(self, self.invite, self.peer, self.transport)
        return True

    def _on_invite_2xx(self, response: Response) -> None:
        assert self.invite is not None
        first = self.dialog is None or self.dialog.state is not DialogState.CONFIRMED
        if self.dialog is None or (response.to.tag and response.to.tag != self.dialog.remote_tag):
            # The answering fork: its early dialog keeps the CSeq of the PRACKs it had.
            fork = self._early_dialogs.pop(response.to.tag or "", None)
            self.dialog = fork or Dialog.as_uac(self.invite, response, self.peer, self.transport)
        dialog = self.dialog
        dialog.update_target(response)
        dialog.state = DialogState.CONFIRMED
        late = not self.invite.body and self.state not in (
            LegState.CANCELLING,
            LegState.TERMINATED,
        )
        if not late:
            self._send_ack(self.invite.cseq.seq)
        if not first:
            # A repeated 2xx: the ACK above was all it needed (13.2.2.4); for a late
            # offer the ACK goes once the kiosk has answered (complete()).
            return
        self.ua.register_dialog(self, dialog)
        if self.state in (LegState.CANCELLING, LegState.TERMINATED):
            # The 2xx crossed our CANCEL (15): the call exists now, end it with BYE.
            self.state = LegState.CONFIRMED
            self.hangup(self.end_cause or Cause.NORMAL_CLEARING)
            return
        self._peer_allows_update = "UPDATE" in (response.headers.get("allow") or "").upper()
        self.state = LegState.CONFIRMED
        self.session_timer = negotiate_as_uac(response)
        self._arm_session_timer()
        try:
            sdp = parse_sdp(response.body)
        except SdpError as exc:
            log.info("%s: bad SDP in 2xx: %s", self.label, exc)
            sdp = None
            if not late:
                self.hangup(Cause.BEARER_CAPABILITY_NOT_IMPLEMENTED, "bad SDP answer")
                self._emit(Disconnected(Cause.BEARER_CAPABILITY_NOT_IMPLEMENTED, "bad SDP answer"))
                return
        if sdp is not None:
            self.last_remote_sdp = response.body
        if late:
            self._ack_pending = self.invite.cseq.seq
        self._emit(Answered(sdp))

    def _send_ack(self, cseq: int, body: bytes = b"") -> None:
        """ACK a 2xx to INVITE end to end (13.2.2.4), with the answer to a 2xx's offer."""
        assert self.dialog is not None
        if body:
            ack = self.dialog.new_request(
                "ACK", self._via(), body=body, content_type=SDP, cseq=cseq
            )
        else:
            ack = self.dialog.ack_for_2xx(cseq, self.ua.endpoint.host, self.ua.endpoint.port)
        self.ua.endpoint.send_stateless(ack, self.dialog.destination(), self.transport)

    def complete(self, answer: SessionDescription) -> None:
        """Send the ACK that answers the offer of the station's 2xx (RFC 3261 13.2.1)."""
        cseq = self._ack_pending
        if cseq is None or self.dialog is None:
            return
        self._ack_pending = None
        body = answer.serialize()
        self.last_local_sdp = body
        self._send_ack(cseq, body)

    def resend_ack(self, response: Response) -> None:
        """A 2xx repeated after the INVITE transaction ended: ACK it again (13.2.2.4)."""
        if self.dialog is not None and self.invite is not None and self._ack_pending is None:
            body = self.last_local_sdp if not self.invite.body else b""
            self._send_ack(response.cseq.seq, body)

    def on_timeout(self, key: str) -> None:
        """A client transaction got no answer (Timer B/F) or could not be sent."""
        if key == self.invite_key and not self.uas:
            if self.state in (LegState.PROCEEDING, LegState.EARLY):
                self._finish()
                self._emit(Failed(Cause.RECOVERY_ON_TIMER_EXPIRY, "station did not answer"))
            return
        if key == self.outgoing_update:
            self.outgoing_update = None
            self._end_from_peer_failure("re-INVITE timed out")
        elif self.state is LegState.CONFIRMED:
            log.info("%s: request %s timed out", self.label, key)

    # -- mid-call -----------------------------------------------------------------------
    def on_request(self, request: Request, key: str) -> None:
        """An in-dialog request from the peer (12.2.2)."""
        dialog = self.dialog
        endpoint = self.ua.endpoint
        if dialog is None or not dialog.check_remote_cseq(request):
            endpoint.send_response(key, make_response(request, 500, "CSeq Out of Order"))
            return
        method = request.method
        if method == "BYE":
            endpoint.send_response(key, make_response(request, 200))
            reason = parse_reason(request.headers.get("reason"))
            self._finish()
            self._emit(
                Disconnected(reason[0], reason[1])
                if reason
                else Disconnected(Cause.NORMAL_CLEARING)
            )
        elif method in ("INVITE", "UPDATE"):
            self._on_offer(request, key)
        elif method == "INFO":
            event = parse_info(request.content_type, request.body)
            endpoint.send_response(key, make_response(request, 200 if event else 415))
            if event is not None:
                self._emit(event)
        elif method == "OPTIONS":
            endpoint.send_response(
                key,
                make_response(
                    request, 200, extra=[("Allow", ALLOW), ("Accept", "application/sdp")]
                ),
            )
        else:
            endpoint.send_response(key, make_response(request, 405, extra=[("Allow", ALLOW)]))

    def _on_offer(self, request: Request, key: str) -> None:
        """A re-INVITE or UPDATE: a session refresh, or a new offer for the other side."""
        endpoint = self.ua.endpoint
        if self.state not in (LegState.CONFIRMED, LegState.ANSWERED):
            endpoint.send_response(
                key, make_response(request, 491 if request.method == "UPDATE" else 500)
            )
            return
        if self.pending_update is not None or self.outgoing_update is not None:
            endpoint.send_response(key, make_response(request, 491))  # glare, RFC 3261 14.2
            return
        assert self.dialog is not None
        self.dialog.update_target(request)
        self._arm_session_timer()  # any refresh counts (RFC 4028 10)
        if not request.body or request.body == self.last_remote_sdp:
            # A pure session refresh: answer with our current SDP, do not disturb the far side.
            self._answer_offer(
                request, key, self.last_local_sdp if request.method == "INVITE" else b""
            )
            return
        try:
            offer = SessionDescription.parse(request.body)
        except SdpError as exc:
            endpoint.send_response(
                key, make_response(request, 488, extra=[("Warning", f'399 vrgw "{exc}"')])
            )
            return
        self.pending_update = (key, request)
        self._emit(MediaUpdate(offer))

    def _answer_offer(self, request: Request, key: str, body: bytes) -> None:
        extra = [("Contact", f"<{self._contact()}>"), ("Allow", ALLOW), ("Supported", SUPPORTED)]
        if self.session_timer is not None:
            extra.append(("Session-Expires", self.session_timer.header()))
        if body:
            extra.append(("Content-Type", "application/sdp"))
        self.ua.endpoint.send_response(key, make_response(request, 200, extra=extra, body=body))

    def update_answer(self, result: MediaUpdateAnswer) -> None:
        """Answer the peer's pending re-INVITE/UPDATE with the far side's outcome."""
        if self.pending_update is None:
            return
        key, request = self.pending_update
        self.pending_update = None
        if result.answer is None:
            refused = result.refused or Cause.BEARER_CAPABILITY_NOT_IMPLEMENTED
            status = 491 if refused is _PENDING else sip_from_q850(refused)
            self.ua.endpoint.send_response(key, make_response(request, status))
            return
        self.last_remote_sdp = request.body
        body = result.answer.serialize()
        self.last_local_sdp = body
        self._answer_offer(request, key, body)

    def update(self, offer: SessionDescription) -> None:
        """Send a re-INVITE carrying a new offer from the other side (14.1)."""
        if self.state is not LegState.CONFIRMED or self.dialog is None or self.outgoing_update:
            self._emit(MediaUpdateAnswer(None, refused=_PENDING))
            return
        body = offer.serialize()
        self.last_local_sdp = body
        extra = [("Allow", ALLOW), ("Supported", SUPPORTED)]
        if self.session_timer is not None:
            extra.append(("Session-Expires", self.session_timer.header()))
        request = self.dialog.new_request(
            "INVITE", self._via(), self._contact(), body=body, extra=extra
        )
        self.outgoing_update = self.ua.send_request(
            self, request, self.dialog.destination(), self.transport
        )
        self._refresh_key = None

    def _on_update_response(self, response: Response) -> None:
        status = response.status
        if status < 200:
            return
        refresh_only = self._refresh_key is not None and self._refresh_key == self.outgoing_update
        self.outgoing_update = None
        if response.cseq.method == "INVITE" and self.dialog is not None and status < 300:
            ack = self.dialog.ack_for_2xx(
                response.cseq.seq, self.ua.endpoint.host, self.ua.endpoint.port
            )
            self.ua.endpoint.send_stateless(ack, self.dialog.destination(), self.transport)
        if status in (408, 481):
            self._end_from_peer_failure(f"mid-call request answered {status}")  # RFC 3261 12.2.1.2
            return
        if refresh_only:
            if status < 300 and self.session_timer is not None:
                granted = negotiate_as_uac(response)
                if granted is not None:
                    self.session_timer = granted
            self._arm_session_timer()
            return
        if status >= 300:
            refused = _PENDING if status == 491 else q850_from_sip(status)
            self._emit(MediaUpdateAnswer(None, refused=refused))
            return
        if self.dialog is not None:
            self.dialog.update_target(response)
        try:
            answer = parse_sdp(response.body)
        except SdpError:
            answer = None
        if answer is None:
            self._emit(MediaUpdateAnswer(None, refused=Cause.BEARER_CAPABILITY_NOT_IMPLEMENTED))
            return
        self.last_remote_sdp = response.body
        self._arm_session_timer()
        self._emit(MediaUpdateAnswer(answer))

    def _end_from_peer_failure(self, why: str) -> None:
        log.info("%s leg %s: %s", self.label, self.side.value, why)
        self.hangup(Cause.TEMPORARY_FAILURE, why)
        self._emit(Disconnected(Cause.TEMPORARY_FAILURE, why))

    def send_dtmf(self, event: Dtmf) -> None:
        """Relay a DTMF digit as INFO application/dtmf-relay."""
        self._send_info(DTMF_RELAY, dtmf_relay_body(event))

    def fast_update(self) -> None:
        """Ask the peer's encoder for an intra frame (RFC 5168 INFO)."""
        self._send_info(MEDIA_CONTROL, FAST_UPDATE_BODY)

    def _send_info(self, content_type: str, body: bytes) -> None:
        if self.state is not LegState.CONFIRMED or self.dialog is None:
            return
        request = self.dialog.new_request("INFO", self._via(), body=body, content_type=content_type)
        self.ua.send_request(self, request, self.dialog.destination(), self.transport)

    def hangup(self, cause: Cause = Cause.NORMAL_CLEARING, reason: str = "") -> None:
        """End the leg whatever its state: BYE, CANCEL or a final response (15)."""
        if self.state is LegState.TERMINATED:
            return
        self.end_cause = cause
        if self._ack_pending is not None:
            # A 2xx with an offer never answered: ACK it first, then BYE (RFC 3261 13.2.2.4).
            cseq, self._ack_pending = self._ack_pending, None
            self._send_ack(cseq)
        if self.uas and self.state in (LegState.PROCEEDING, LegState.EARLY):
            self.reject(Failed(cause, reason))
            return
        if not self.uas and self.state in (LegState.PROCEEDING, LegState.EARLY):
            if self.state is LegState.EARLY or self._provisional_seen:
                self._send_cancel()
                self.state = LegState.TERMINATED
                self._cancel_timer()
                # keep the leg known until the INVITE transaction ends (487 or 2xx)
            else:
                self.state = LegState.CANCELLING  # 9.1: CANCEL only after a provisional
            return
        if self.dialog is not None:
            request = self.dialog.new_request(
                "BYE", self._via(), extra=[("Reason", reason_header(cause, reason))]
            )
            self.ua.send_request(self, request, self.dialog.destination(), self.transport)
        self._finish()


def context_header(key: str) -> str:
    """The SIP header that carries one item of caller context (``waited`` -> X-Visio-Waited)."""
    return CONTEXT_PREFIX + "-".join(part.capitalize() for part in key.split("-"))


class SipDialer:
    """Opens outgoing SIP legs towards stations (RFC 3261 8.1.1, 13.2.1)."""

    def __init__(self, ua: SipUserAgent) -> None:
        self.ua = ua

    def dial(self, target: Target, call: OutgoingCall, label: str, sink: EventSink) -> SipLeg:
        """Send the INVITE; the caller context travels as ``X-Visio-*`` headers."""
        dialplan = self.ua.dialplan
        leg = SipLeg(self.ua, Side.B, transport=target.transport, peer=target.dest)
        leg.label = label
        leg.sink = sink
        leg.credentials = target.credentials
        leg.peer_name = target.station
        display = call.caller_name.replace('"', "'").replace("\\", "/")
        leg.send_invite(
            target.uri,
            from_value=f'"{display}" <sip:{call.caller}@{dialplan.domain}>',
            to_value=f"<sip:{call.service}@{dialplan.domain}>",
            sdp=call.offer,
            max_forwards=call.hops,
            extra=[(context_header(key), value) for key, value in call.context],
            session_expires=dialplan.session_timer.expires,
            min_se=dialplan.session_timer.min_se,
        )
        return leg
