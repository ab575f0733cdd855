"""The back-to-back user agent: one controller for every call, whatever its legs speak.

A kiosk's call arrives as leg A; the dialplan names the partner's stations; the
controller asks the media engine to anchor the media, opens leg B towards a station
and relays the neutral events of :mod:`gateway.model.events` between the two. Route
hunting moves on to the next station when one is busy, fails or does not answer.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from gateway.call.sip_leg import LegState, SipLeg
from gateway.call.sip_ua import SipUserAgent
from gateway.call.stations import StationMonitor, Target
from gateway.dialplan import Dialplan, Kiosk, Partner, Service
from gateway.media.engine import MediaEngine, MediaError, SessionStats
from gateway.media.prompts import PromptError, early_answer, load_prompt, restrict_offer
from gateway.model.causes import Cause
from gateway.model.events import (
    Answered,
    CallEvent,
    Disconnected,
    Dtmf,
    Failed,
    FastUpdate,
    MediaUpdate,
    MediaUpdateAnswer,
    Ringing,
    Side,
)
from gateway.model.sdp import SdpError, SessionDescription
from gateway.partners.desk import (
    Decision,
    Offer,
    PartnerDesk,
    Queued,
    Refused,
    seconds_until,
)
from gateway.sip.message import Request, make_response
from gateway.sip.session_timer import TooSmall, negotiate_as_uas
from gateway.texts import text

log = logging.getLogger(__name__)

# Station answers after which the next station is tried (sippy's "route hunting").
HUNT_ON = frozenset({408, 480, 486, 500, 502, 503, 504, 600, 603})
# Of those, the answers that mean "nobody took it": they count towards pausing a station.
NOT_ANSWERED = frozenset({408, 480})
# Context headers a kiosk may pass to the agent's station (what the citizen typed).
CONTEXT_PREFIX = "x-visio-"
# The context headers the gateway writes itself: a kiosk's own copies (in any case) are
# dropped rather than relayed next to ours.
OWN_CONTEXT = frozenset({"x-visio-kiosk", "x-visio-site", "x-visio-service"})
# A kiosk marks a caller who booked this slot; such callers go first in the queue.
APPOINTMENT_HEADER = "x-visio-appointment"
# RFC 3261 13.3.1.1: a UAS that has not answered sends a provisional at least once a
# minute, or a proxy on the kiosk's path gives up at its Timer C (3 minutes).
PROGRESS_INTERVAL = 60.0
WAITING_PROMPT = "attente"


class CallState(Enum):
    """Where a call stands in the controller."""

    ROUTING = "routing"
    QUEUED = "queued"
    ALERTING = "alerting"
    CONNECTED = "connected"
    ENDED = "ended"


@dataclass(slots=True)
class CallRecord:
    """What is kept of a call once it ended (exported by the admin API)."""

    id: str
    kiosk: str
    site: str
    service: str
    partner: str
    station: str | None
    started: float
    answered: float | None
    ended: float
    outcome: str
    cause: int
    sip_status: int | None
    media: SessionStats | None = None
    waited: float = 0.0  # seconds spent in the partner's queue
    queued: bool = False

    @property
    def duration(self) -> float:
        """Seconds between answer and end (0 when never answered)."""
        return self.ended - self.answered if self.answered is not None else 0.0


@dataclass(slots=True)
class Call:
    """A bridged call: leg A (the kiosk) and the current leg B (a station)."""

    id: str
    a: SipLeg
    kiosk: Kiosk
    service: Service
    partner: Partner
    offer: SessionDescription
    started: float
    b: SipLeg | None = None
    b_offer: SessionDescription | None = None
    target: Target | None = None
    last_station: str | None = None  # the last station offered, kept for the call record
    state: CallState = CallState.ROUTING
    answered: float | None = None
    ring_timer: asyncio.TimerHandle | None = None
    progress_timer: asyncio.TimerHandle | None = None  # repeats the 18x of a waiting caller
    last_failure: Failed | None = None
    context: list[tuple[str, str]] = field(default_factory=list)
    max_forwards: int = 70
    invite: Request | None = None
    appointment: bool = False
    early: SessionDescription | None = None  # the SDP of our 183 while the caller waits
    early_plan: SessionDescription | None = None  # the formats that 183 answers with
    queued: bool = False  # the caller waited in the queue at some point
    waited: float = 0.0


OutcomeHook = Callable[[CallRecord], None]


class B2BUA:
    """Routes kiosk calls to partner stations through the partners' desks; bridges legs."""

    def __init__(
        self,
        ua: SipUserAgent,
        media: MediaEngine,
        *,
        ring_timeout: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.ua = ua
        self.media = media
        self.ring_timeout = ring_timeout
        self.clock = clock
        self.calls: dict[str, Call] = {}
        self.records: deque[CallRecord] = deque(maxlen=1000)
        self.on_record: OutcomeHook | None = None
        self.on_change: Callable[[str], None] | None = None  # partner id: presence, feeds
        self.desks: dict[str, PartnerDesk] = {}
        self.monitor = StationMonitor(ua, self._reachability, wall_clock=ua.wall_clock)
        self._tick: asyncio.TimerHandle | None = None
        self._tick_at: float | None = None
        self._ids = itertools.count(1)
        self._prefix = f"{int(clock()):x}"
        self.build_desks(ua.dialplan)
        ua.invite_handler = self
        ua.registration_hook = self._registration_changed
        media.set_timeout_handler(self._media_timeout)

    @property
    def dialplan(self) -> Dialplan:
        """The dialplan in force (the UA holds it, so a reload switches both at once)."""
        return self.ua.dialplan

    # -- desks and stations ---------------------------------------------------------------
    def build_desks(self, dialplan: Dialplan) -> None:
        """One desk per partner; a reload keeps the live state of what still exists."""
        old = self.desks
        desks: dict[str, PartnerDesk] = {}
        for partner in dialplan.partners.values():
            desk = PartnerDesk(
                partner.id,
                [(s.id, s.max_calls) for s in partner.stations],
                schedule=partner.schedule,
                settings=partner.desk,
                tz=dialplan.timezone,
            )
            previous = old.get(partner.id)
            if previous is not None:
                for sid, status in desk.stations.items():
                    kept = previous.stations.get(sid)
                    if kept is not None:
                        kept.max_calls = status.max_calls
                        desk.stations[sid] = kept
                desk.queue = previous.queue
                desk.offers = previous.offers
                desk.waited = previous.waited
                desk.durations = previous.durations
                desk.waits = previous.waits
            else:
                for sid in desk.stations:
                    desk.stations[sid].reachable = self.monitor.reachable.get(sid, False)
            desks[partner.id] = desk
        self.desks = desks

    def start(self) -> None:
        """Begin watching stations (registrations and keep-alives)."""
        self.monitor.start()

    def _registration_changed(self, username: str) -> None:
        self.ua.spawn(self.monitor.refresh_user(username))

    def _reachability(self, station_id: str, reachable: bool) -> None:
        now = self.clock()
        for desk in self.desks.values():
            if station_id in desk.stations:
                self._apply(desk, desk.set_reachable(station_id, reachable, now))

    def pause_station(self, station_id: str, *, paused: bool) -> bool:
        """Pause or resume a station (admin API); False for an unknown station."""
        now = self.clock()
        for desk in self.desks.values():
            if station_id in desk.stations:
                decisions = desk.pause(station_id, now) if paused else desk.resume(station_id, now)
                self._apply(desk, decisions)
                return True
        return False

    def desk_of_station(self, station_id: str) -> PartnerDesk | None:
        """The desk that holds a station."""
        for desk in self.desks.values():
            if station_id in desk.stations:
                return desk
        return None

    def clock_changed(self) -> None:
        """The clock moved (test clock): re-run every desk's timers and notify."""
        self._tick_at = None
        for desk in self.desks.values():
            desk.clock_moved()
            self._apply(desk, desk.tick(self.clock()))

    # -- a new call ---------------------------------------------------------------------
    def on_invite(self, leg: SipLeg, request: Request, caller: Kiosk) -> None:
        """A kiosk's INVITE: look the service up, then route it (RFC 3261 13.3.1)."""
        dialplan = self.dialplan
        uri = request.uri
        user = uri.user_unescaped or ""
        service = dialplan.resolve_service(user)
        if service is None:
            self._refuse(
                leg,
                caller,
                user,
                Failed(Cause.NO_ROUTE_TO_DESTINATION, 404, f"no service {user!r}"),
            )
            return
        if not dialplan.may_call(caller, service):
            failure = Failed(21, 403, f"service {service.name} not offered at this kiosk")
            self._refuse(leg, caller, service.name, failure)
            return
        st = dialplan.session_timer
        timer = negotiate_as_uas(request, expires=st.expires, min_se=st.min_se)
        if isinstance(timer, TooSmall):
            assert leg.invite_key is not None
            self.ua.endpoint.send_response(
                leg.invite_key,
                make_response(
                    request, 422, to_tag=leg.local_tag, extra=[("Min-SE", str(timer.min_se))]
                ),
            )
            leg.state = LegState.TERMINATED
            self.ua.forget_leg(leg)
            return
        try:
            offer = SessionDescription.parse(request.body) if request.body else None
        except SdpError as exc:
            self._refuse(leg, caller, service.name, Failed(65, 488, f"bad SDP: {exc}"))
            return
        if offer is None:
            # Delayed offer (offer in the 2xx, answer in the ACK) is not relayed yet.
            failure = Failed(65, 488, "an SDP offer is required in the INVITE")
            self._refuse(leg, caller, service.name, failure)
            return
        hours = caller.opening_hours
        if hours is not None:
            desk = self.desks[service.partner]
            site = hours.state_at(desk.local(self.clock()))
            if not site.open:
                retry = seconds_until(site.next_opening, self.clock())
                failure = Failed(
                    Cause.NORMAL_UNSPECIFIED, 480, text("reason_site_closed"), retry_after=retry
                )
                self._refuse(leg, caller, service.name, failure)
                return
        partner = dialplan.partners[service.partner]
        call = Call(
            id=f"{self._prefix}-{next(self._ids)}",
            a=leg,
            kiosk=caller,
            service=service,
            partner=partner,
            offer=offer,
            started=self.clock(),
            invite=request,
        )
        mf = request.headers.get("max-forwards")
        call.max_forwards = max(0, int(mf) - 1) if mf and mf.isdigit() else 69
        call.context = [
            (name, value)
            for key, name, value in request.headers.starting_with(CONTEXT_PREFIX)
            if key not in OWN_CONTEXT
        ]
        appointment = (request.headers.get(APPOINTMENT_HEADER) or "").strip().lower()
        call.appointment = appointment not in ("", "no", "non", "0", "false")
        leg.label = call.id
        leg.sink = self._on_leg_event
        leg.session_timer = timer
        self.calls[call.id] = call
        log.info("%s: kiosk %s (%s) calls %s", call.id, caller.id, caller.site, service.name)
        self.ua.spawn(self._route(call))

    def _refuse(self, leg: SipLeg, caller: Kiosk, service: str, failure: Failed) -> None:
        """Reject a kiosk's INVITE before routing, and still count it as a call."""
        leg.reject(failure)
        now = self.clock()
        partner = (
            self.dialplan.services[service].partner if service in self.dialplan.services else ""
        )
        record = CallRecord(
            id=f"{self._prefix}-{next(self._ids)}",
            kiosk=caller.id,
            site=caller.site,
            service=service,
            partner=partner,
            station=None,
            started=now,
            answered=None,
            ended=now,
            outcome=_outcome_of(failure.sip_status),
            cause=failure.cause,
            sip_status=failure.sip_status,
        )
        self.records.append(record)
        if self.on_record is not None:
            self.on_record(record)
        log.info(
            "%s: kiosk %s refused: %d %s",
            record.id,
            caller.id,
            failure.sip_status or 0,
            failure.reason,
        )

    async def _route(self, call: Call) -> None:
        desk = self.desks[call.partner.id]
        try:
            call.b_offer = await self.media.offer(call.id, call.offer, from_side=Side.A)
        except (MediaError, SdpError) as exc:
            log.warning("%s: media offer failed: %s", call.id, exc)
            await self._fail(call, Failed(Cause.RESOURCE_UNAVAILABLE, 503, "media unavailable"))
            return
        if call.a.ended:
            await self._end(call, Cause.NORMAL_CLEARING, "cancelled")
            return
        decision = desk.arrive(
            call.id, call.kiosk.id, appointment=call.appointment, now=self.clock()
        )
        self._apply(desk, [decision, *desk.take_pending()])

    def _apply(self, desk: PartnerDesk, decisions: list[Decision]) -> None:
        """Carry out what a desk decided, then re-arm its timers and notify watchers."""
        pending = list(decisions)
        while pending:
            decision = pending.pop(0)
            call = self.calls.get(decision.call_id)
            if call is None or call.state is CallState.ENDED:
                if not isinstance(decision, Refused):
                    pending.extend(desk.ended(decision.call_id, self.clock()))
                continue
            if isinstance(decision, Offer):
                target = self.monitor.target(decision.station)
                if target is None:
                    pending.extend(desk.offer_failed(call.id, missed=False, now=self.clock()))
                    continue
                call.waited = decision.waited
                self._offer_to(call, target)
            elif isinstance(decision, Queued):
                self._wait_in_queue(call, decision)
            else:
                self._refused(call, decision)
        self._arm_tick()
        if self.on_change is not None:
            self.on_change(desk.partner)

    def _refused(self, call: Call, decision: Refused) -> None:
        call.waited = decision.waited
        failure = Failed(
            decision.cause,
            decision.status,
            text(decision.reason),
            retry_after=decision.retry_after,
        )
        log.info("%s: %s", call.id, failure.reason)
        self.ua.spawn(self._fail(call, failure))

    def _wait_in_queue(self, call: Call, decision: Queued) -> None:
        """The caller waits: 183 with the looped announcement, or 180, per the partner."""
        log.info(
            "%s: queued for %s at position %d (about %s s)",
            call.id,
            call.partner.id,
            decision.position,
            decision.estimated_wait,
        )
        if call.b is not None:  # a failed offer sent back to the queue
            call.b = None
        first = not call.queued
        call.state = CallState.QUEUED
        call.queued = True
        if not first:
            return
        call.progress_timer = self.ua.endpoint.loop.call_later(
            PROGRESS_INTERVAL, self._repeat_progress, call
        )
        made = early_answer(call.offer)
        if call.partner.desk.queue.waiting != "announcement":
            call.a.ring(None)
        elif made is None:
            log.info("%s: no G.711 in the kiosk's offer: ringing instead", call.id)
            call.a.ring(None)
        else:
            # Decided now, not when the task runs: an offer to a station made meanwhile
            # must already be limited to what the 183 will say.
            call.early_plan = made[0]
            self.ua.spawn(self._announce(call, *made))

    async def _announce(self, call: Call, answer: SessionDescription, pt: int, codec: str) -> None:
        """Answer the kiosk's offer with our early media and loop the waiting prompt."""
        if _past_waiting(call):
            return
        try:
            to_kiosk = await self.media.answer(call.id, answer, from_side=Side.B)
            prompt = load_prompt(WAITING_PROMPT, codec, pt)
        except (MediaError, SdpError, PromptError) as exc:
            log.warning("%s: announcement unavailable (%s): ringing instead", call.id, exc)
            call.a.ring(None)
            return
        if _past_waiting(call):
            return  # ended, or a station answered while the SDP was being prepared
        call.early = to_kiosk
        call.a.ring(to_kiosk)
        self.media.play(call.id, prompt)

    def _repeat_progress(self, call: Call) -> None:
        """Send the waiting caller's 180/183 again (RFC 3261 13.3.1.1)."""
        call.progress_timer = None
        if call.state is CallState.ENDED or call.answered is not None or call.a.ended:
            return
        call.a.ring(call.early)
        call.progress_timer = self.ua.endpoint.loop.call_later(
            PROGRESS_INTERVAL, self._repeat_progress, call
        )

    def _offer_to(self, call: Call, target: Target) -> None:
        dialplan = self.dialplan
        kiosk = call.kiosk
        leg = SipLeg(
            self.ua, Side.B, transport=target.transport, peer=target.dest, call_label=call.id
        )
        leg.sink = self._on_leg_event
        call.b = leg
        call.target = target
        call.last_station = target.station.id
        if call.state is CallState.QUEUED:
            call.state = CallState.ROUTING
        display = kiosk.label.replace('"', "'")
        context = [
            ("X-Visio-Kiosk", kiosk.id),
            ("X-Visio-Site", kiosk.site),
            ("X-Visio-Service", call.service.name),
            *call.context,
        ]
        if call.waited:
            context.append(("X-Visio-Waited", str(int(call.waited))))
        offer = call.b_offer
        if offer is not None and call.early_plan is not None:
            offer = restrict_offer(offer, call.early_plan)
        leg.send_invite(
            target.request_uri,
            from_value=f'"{display}" <sip:{kiosk.id}@{dialplan.domain}>',
            to_value=f"<sip:{call.service.name}@{dialplan.domain}>",
            sdp=offer,
            max_forwards=call.max_forwards,
            extra=context,
            session_expires=dialplan.session_timer.expires,
            min_se=dialplan.session_timer.min_se,
        )
        loop = self.ua.endpoint.loop
        if call.ring_timer is not None:
            call.ring_timer.cancel()
        call.ring_timer = loop.call_later(self.ring_timeout, self._ring_timeout, call, leg)
        log.debug("%s: offered to station %s at %s:%s", call.id, target.station.id, *target.dest)

    def _ring_timeout(self, call: Call, leg: SipLeg) -> None:
        call.ring_timer = None
        if call.b is not leg or call.state not in (CallState.ROUTING, CallState.ALERTING):
            return
        log.info("%s: station did not answer in %.0f s", call.id, self.ring_timeout)
        leg.hangup(Cause.NO_ANSWER, "no answer")
        self._b_failed(call, Failed(Cause.NO_ANSWER, 480, "no answer"), missed=True)

    # -- timers -------------------------------------------------------------------------
    def _arm_tick(self) -> None:
        now = self.clock()
        soonest: float | None = None
        for desk in self.desks.values():
            d = desk.next_change(now)
            if d is not None and (soonest is None or d < soonest):
                soonest = d
        if soonest == self._tick_at:
            return
        if self._tick is not None:
            self._tick.cancel()
            self._tick = None
        self._tick_at = soonest
        if soonest is not None:
            # Capped: a clock moved by a test (or NTP) is noticed within the hour.
            delay = min(3600.0, max(0.0, soonest - now))
            self._tick = self.ua.endpoint.loop.call_later(delay, self._on_tick)

    def _on_tick(self) -> None:
        self._tick = None
        self._tick_at = None
        now = self.clock()
        for desk in list(self.desks.values()):
            deadline = desk.next_change(now)
            if deadline is not None and deadline <= now:
                self._apply(desk, desk.tick(now))
        self._arm_tick()

    # -- events from the legs -------------------------------------------------------------
    def _on_leg_event(self, leg: SipLeg, event: CallEvent) -> None:
        call = self.calls.get(leg.label)
        if call is None:
            leg.hangup(Cause.NORMAL_CLEARING)
            return
        if leg is call.a:
            self._on_a_event(call, event)
        elif leg is call.b:
            self._on_b_event(call, event)
        elif isinstance(event, Answered):
            leg.hangup(Cause.NORMAL_CLEARING, "call already answered elsewhere")

    def _on_a_event(self, call: Call, event: CallEvent) -> None:
        if isinstance(event, Disconnected):
            if call.b is not None:
                call.b.hangup(event.cause, event.reason)
            self.ua.spawn(self._end(call, event.cause, event.reason or "kiosk hung up"))
        elif isinstance(event, MediaUpdate):
            self.ua.spawn(self._relay_offer(call, Side.A, event.offer))
        elif isinstance(event, MediaUpdateAnswer):
            self.ua.spawn(self._relay_answer(call, Side.A, event))
        elif isinstance(event, Dtmf) and call.b is not None:
            call.b.send_dtmf(event)
        elif isinstance(event, FastUpdate) and call.b is not None:
            call.b.fast_update(event)

    def _on_b_event(self, call: Call, event: CallEvent) -> None:
        if isinstance(event, Ringing):
            call.state = CallState.ALERTING
            if call.early is None and not call.queued:
                self.ua.spawn(self._ringing(call, event))
            # A waiting caller keeps hearing the announcement until the station answers.
        elif isinstance(event, Answered):
            self.ua.spawn(self._answered(call, event))
        elif isinstance(event, Failed):
            self._b_failed(call, event)
        elif isinstance(event, Disconnected):
            call.a.hangup(event.cause, event.reason)
            self.ua.spawn(self._end(call, event.cause, event.reason or "station hung up"))
        elif isinstance(event, MediaUpdate):
            self.ua.spawn(self._relay_offer(call, Side.B, event.offer))
        elif isinstance(event, MediaUpdateAnswer):
            self.ua.spawn(self._relay_answer(call, Side.B, event))
        elif isinstance(event, Dtmf):
            call.a.send_dtmf(event)
        elif isinstance(event, FastUpdate):
            call.a.fast_update(event)

    def _b_failed(self, call: Call, failure: Failed, *, missed: bool = False) -> None:
        """The station did not take the call: its desk decides what comes next."""
        call.b = None
        call.target = None
        if call.ring_timer is not None:
            call.ring_timer.cancel()
            call.ring_timer = None
        call.last_failure = failure
        if call.a.ended or call.state is CallState.ENDED:
            return
        desk = self.desks[call.partner.id]
        status = failure.sip_status
        if status in HUNT_ON or status is None:
            missed = missed or status in NOT_ANSWERED or status is None
            self._apply(desk, desk.offer_failed(call.id, missed=missed, now=self.clock()))
            return
        self.ua.spawn(self._fail(call, failure))

    async def _ringing(self, call: Call, event: Ringing) -> None:
        early = event.early_media
        if early is not None:
            try:
                early = await self.media.answer(call.id, early, from_side=Side.B)
            except (MediaError, SdpError) as exc:
                log.info("%s: early media not relayed: %s", call.id, exc)
                early = None
        if call.state is not CallState.ENDED and not call.a.ended:
            call.a.ring(early)

    async def _answered(self, call: Call, event: Answered) -> None:
        b = call.b
        if call.ring_timer is not None:
            call.ring_timer.cancel()
            call.ring_timer = None
        if call.progress_timer is not None:
            call.progress_timer.cancel()
            call.progress_timer = None
        desk = self.desks.get(call.partner.id)
        if desk is not None:
            desk.answered(call.id, self.clock())
            if self.on_change is not None:
                self.on_change(desk.partner)
        self.media.stop_playing(call.id)
        answer = event.answer
        if answer is None:
            answer_a = None
        else:
            try:
                answer_a = await self.media.answer(call.id, answer, from_side=Side.B)
            except (MediaError, SdpError) as exc:
                log.warning("%s: media answer failed: %s", call.id, exc)
                if b is not None:
                    b.hangup(Cause.RESOURCE_UNAVAILABLE, "media unavailable")
                call.a.hangup(Cause.RESOURCE_UNAVAILABLE, "media unavailable")
                await self._end(call, Cause.RESOURCE_UNAVAILABLE, "media unavailable")
                return
        if call.a.ended or call.state is CallState.ENDED:
            if b is not None:
                b.hangup(Cause.NORMAL_CLEARING)
            await self._end(call, Cause.NORMAL_CLEARING, "caller left before answer")
            return
        call.state = CallState.CONNECTED
        call.answered = self.clock()
        # A caller who heard our early media already holds its answer: the 200 repeats it.
        call.a.answer(call.early or answer_a, call.a.session_timer)
        log.debug("%s: connected to %s", call.id, call.target.station.id if call.target else "?")

    async def _relay_offer(self, call: Call, side: Side, offer: SessionDescription) -> None:
        other = call.b if side is Side.A else call.a
        origin = call.a if side is Side.A else call.b
        if other is None or origin is None:
            return
        try:
            rewritten = await self.media.offer(call.id, offer, from_side=side)
        except (MediaError, SdpError) as exc:
            log.info("%s: re-offer refused: %s", call.id, exc)
            origin.update_answer(MediaUpdateAnswer(None, rejected=488))
            return
        other.update(rewritten)

    async def _relay_answer(self, call: Call, side: Side, event: MediaUpdateAnswer) -> None:
        origin = call.b if side is Side.A else call.a  # the leg that sent the offer
        if origin is None:
            return
        if event.answer is None:
            origin.update_answer(event)
            return
        try:
            rewritten = await self.media.answer(call.id, event.answer, from_side=side)
        except (MediaError, SdpError) as exc:
            log.info("%s: re-answer refused: %s", call.id, exc)
            origin.update_answer(MediaUpdateAnswer(None, rejected=488))
            return
        origin.update_answer(MediaUpdateAnswer(rewritten))

    def _media_timeout(self, call_id: str) -> None:
        call = self.calls.get(call_id)
        if call is None or call.state is CallState.ENDED:
            return
        log.info("%s: media stopped, ending the call", call_id)
        call.a.hangup(Cause.RECOVERY_ON_TIMER_EXPIRY, "no media")
        if call.b is not None:
            call.b.hangup(Cause.RECOVERY_ON_TIMER_EXPIRY, "no media")
        self.ua.spawn(self._end(call, Cause.RECOVERY_ON_TIMER_EXPIRY, "no media"))

    # -- the end -----------------------------------------------------------------------
    async def _fail(self, call: Call, failure: Failed) -> None:
        call.a.reject(failure)
        await self._end(call, failure.cause, failure.reason, sip_status=failure.sip_status)

    async def _end(
        self, call: Call, cause: int, reason: str, *, sip_status: int | None = None
    ) -> None:
        if call.state is CallState.ENDED:
            return
        was_connected = call.state is CallState.CONNECTED
        call.state = CallState.ENDED
        if call.ring_timer is not None:
            call.ring_timer.cancel()
            call.ring_timer = None
        station = call.last_station
        now = self.clock()
        if call.progress_timer is not None:
            call.progress_timer.cancel()
            call.progress_timer = None
        self.calls.pop(call.id, None)
        self.media.stop_playing(call.id)
        desk = self.desks.get(call.partner.id)
        if desk is not None:
            since = desk.waited.get(call.id)
            if since is not None and call.answered is None:
                call.waited = now - since
            if call.answered is not None:
                desk.call_duration(now - call.answered)
            self._apply(desk, desk.ended(call.id, now))
        stats = await self.media.delete(call.id)
        if was_connected:
            outcome = "completed"
        elif sip_status is not None and sip_status >= 300:
            outcome = _outcome_of(sip_status)
        else:
            outcome = "abandoned"
        record = CallRecord(
            id=call.id,
            kiosk=call.kiosk.id,
            site=call.kiosk.site,
            service=call.service.name,
            partner=call.partner.id,
            station=station,
            started=call.started,
            answered=call.answered,
            ended=self.clock(),
            outcome=outcome,
            cause=cause,
            sip_status=sip_status,
            media=stats,
            waited=call.waited,
            queued=call.queued,
        )
        self.records.append(record)
        if self.on_record is not None:
            self.on_record(record)
        log.info(
            "%s: ended (%s, station %s, cause %d%s) after %.1f s",
            call.id,
            outcome,
            station or "-",
            cause,
            f", {reason}" if reason else "",
            record.duration,
        )

    async def close(self) -> None:
        """End every call (gateway shutdown): BYE or CANCEL both legs, release media."""
        if self._tick is not None:
            self._tick.cancel()
            self._tick = None
        await self.monitor.close()
        for call in list(self.calls.values()):
            call.a.hangup(Cause.NORMAL_CLEARING, "gateway shutting down")
            if call.b is not None:
                call.b.hangup(Cause.NORMAL_CLEARING, "gateway shutting down")
            await self._end(call, Cause.NORMAL_CLEARING, "gateway shutting down")


def _past_waiting(call: Call) -> bool:
    """The call no longer needs an announcement: ended, or answered by a station."""
    return call.state is CallState.ENDED or call.a.ended or call.answered is not None


def _outcome_of(sip_status: int | None) -> str:
    """The outcome label of a call refused with a SIP status (metrics and records)."""
    labels = {486: "busy", 480: "unavailable", 404: "not_found", 403: "forbidden"}
    return labels.get(sip_status or 0, "failed")
