"""The controller: one for every call, whatever its legs speak.

A kiosk's call arrives as a :class:`~gateway.model.events.CallAttempt` on leg A; the
dialplan names the partner, whose desk (:mod:`gateway.partners.desk`) decides: offer it
to a station, queue it, or refuse it. Only then is media anchored (a refused call costs
no port), and leg B is dialled towards the station through the dialer of its protocol.
From there the controller relays the neutral events of :mod:`gateway.model.events`
between the legs, and route hunting moves on when a station is busy or does not answer.

Everything here is decided on Q.850 causes and :class:`~gateway.model.causes.Refusal`
reasons; protocol statuses are the legs' business. Time comes from the injected
:class:`~gateway.call.scheduler.Scheduler`, so the whole controller runs on a fake clock.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import overload

from gateway.call.leg import OWN_CONTEXT, CallLeg, Dialer, OutgoingCall, Target
from gateway.call.records import CallRecord, outcome_of
from gateway.call.scheduler import Scheduler, Timer
from gateway.dialplan import Dialplan, Kiosk, Partner, Service
from gateway.logs import call_context
from gateway.media.engine import MediaEngine, MediaError
from gateway.media.prompts import early_answer, restrict_offer
from gateway.media.srtp import offer_encrypted
from gateway.model.bandwidth import limit_bandwidth
from gateway.model.causes import Cause, Refusal
from gateway.model.events import (
    Answered,
    CallAttempt,
    CallEvent,
    Disconnected,
    Dtmf,
    Failed,
    FastUpdate,
    LateAnswer,
    MediaUpdate,
    MediaUpdateAnswer,
    Ringing,
    Side,
)
from gateway.model.sdp import SessionDescription
from gateway.partners.desk import (
    Decision,
    Offer,
    PartnerDesk,
    Queued,
    Refused,
    seconds_until,
)
from gateway.texts import text

log = logging.getLogger(__name__)

# Station failures after which no other station is tried: the call itself is at fault
# (a number or a media offer that any station would refuse the same way).
FINAL_CAUSES = frozenset(
    {
        Cause.UNALLOCATED_NUMBER,
        Cause.NO_ROUTE_TO_DESTINATION,
        Cause.INVALID_NUMBER_FORMAT,
        Cause.BEARER_CAPABILITY_NOT_IMPLEMENTED,
        Cause.INCOMPATIBLE_DESTINATION,
        Cause.INTERWORKING,
    }
)
# RFC 3261 13.3.1.1: a UAS that has not answered sends a provisional at least once a
# minute, or a proxy on the kiosk's path gives up at its Timer C (3 minutes).
PROGRESS_INTERVAL = 60.0
RECENT_RECORDS = 100  # ended calls kept in memory for GET /api/v1/calls
WAITING_PROMPT = "attente"


class CallState(Enum):
    """Where a call stands in the controller."""

    ROUTING = "routing"
    QUEUED = "queued"
    ALERTING = "alerting"
    CONNECTED = "connected"
    ENDED = "ended"


# init=False: the __init__ is written out so that mypyc compiles it (docs/architecture.md,
# "Compiled, optionally"; tests/model/test_written_out_inits.py checks it).
@dataclass(slots=True, eq=False, init=False)
class Call:
    """A bridged call: leg A (the kiosk) and the current leg B (a station)."""

    id: str
    a: CallLeg
    attempt: CallAttempt
    kiosk: Kiosk
    service: Service
    partner: Partner
    started: float
    b: CallLeg | None = None
    target: Target | None = None  # the station offered now
    last_station: str | None = None  # the last station offered, kept for the record
    station_protocol: str | None = None  # and the protocol it was offered in
    state: CallState = CallState.ROUTING
    answered: float | None = None
    ring_timer: Timer | None = None
    progress_timer: Timer | None = None  # repeats the 18x of a waiting caller
    # The first offer as the engine rewrote it: the kiosk's for the station (or, for a late
    # offer, the station's for the kiosk).
    b_offer: SessionDescription | None = None
    # Set while the engine allocates the call's session: an announcement and a dial (or
    # the release at the end) that come meanwhile wait for it rather than race it.
    anchoring: asyncio.Event | None = None
    media_open: bool = False  # the media engine holds (or is making) a session
    early: SessionDescription | None = None  # the SDP of our 183 while the caller waits
    early_plan: SessionDescription | None = None  # the formats that 183 answers with
    queued: bool = False  # the caller waited in the queue at some point
    waited: float = 0.0

    def __init__(
        self,
        id: str,
        a: CallLeg,
        attempt: CallAttempt,
        kiosk: Kiosk,
        service: Service,
        partner: Partner,
        started: float,
        b: CallLeg | None = None,
        target: Target | None = None,
        last_station: str | None = None,
        station_protocol: str | None = None,
        state: CallState = CallState.ROUTING,
        answered: float | None = None,
        ring_timer: Timer | None = None,
        progress_timer: Timer | None = None,
        b_offer: SessionDescription | None = None,
        anchoring: asyncio.Event | None = None,
        media_open: bool = False,
        early: SessionDescription | None = None,
        early_plan: SessionDescription | None = None,
        queued: bool = False,
        waited: float = 0.0,
    ) -> None:
        self.id = id
        self.a = a
        self.attempt = attempt
        self.kiosk = kiosk
        self.service = service
        self.partner = partner
        self.started = started
        self.b = b
        self.target = target
        self.last_station = last_station
        self.station_protocol = station_protocol
        self.state = state
        self.answered = answered
        self.ring_timer = ring_timer
        self.progress_timer = progress_timer
        self.b_offer = b_offer
        self.anchoring = anchoring
        self.media_open = media_open
        self.early = early
        self.early_plan = early_plan
        self.queued = queued
        self.waited = waited

    @property
    def late_offer(self) -> bool:
        """The caller sent no offer: the station offers, the caller answers."""
        return self.attempt.offer is None


OutcomeHook = Callable[[CallRecord], None]
Locator = Callable[[str], Target | None]


class B2BUA:
    """Routes kiosk calls to partner stations through the partners' desks; bridges legs."""

    def __init__(
        self,
        dialplan: Dialplan,
        media: MediaEngine,
        scheduler: Scheduler,
        dialers: Mapping[str, Dialer],
        locate: Locator,
        *,
        ring_timeout: float = 60.0,
    ) -> None:
        self.dialplan = dialplan
        self.media = media
        self.scheduler = scheduler
        self.dialers = dict(dialers)
        self.locate = locate
        self.ring_timeout = ring_timeout
        self.calls: dict[str, Call] = {}
        # The last calls' records, as the admin API lists them; the durable ones are in
        # the record store (on_record). More would only be live objects for the collector.
        self.records: deque[CallRecord] = deque(maxlen=RECENT_RECORDS)
        self.on_record: OutcomeHook | None = None
        self.on_change: Callable[[str], None] | None = None  # partner id: presence, feeds
        self.desks: dict[str, PartnerDesk] = {}
        self.reachable: dict[str, bool] = {}  # station id -> last verdict of its monitor
        self._tick: Timer | None = None
        self._tick_at: float | None = None
        self._ids = itertools.count(1)
        self._prefix = f"{int(scheduler.now()):x}"
        self.build_desks(dialplan)
        media.set_timeout_handler(self._media_timeout)
        media.set_event_handler(self._media_event)

    def clock(self) -> float:
        """Wall-clock time as the controller sees it (a test clock may move it)."""
        return self.scheduler.now()

    # -- desks and stations ---------------------------------------------------------------
    def set_dialplan(self, dialplan: Dialplan) -> None:
        """Switch to a reloaded dialplan; calls in progress keep their routing."""
        self.dialplan = dialplan
        self.build_desks(dialplan)

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
                desk.adopt(previous)
            else:
                for sid in desk.stations:
                    desk.stations[sid].reachable = self.reachable.get(sid, False)
            desks[partner.id] = desk
        self.desks = desks

    def station_reachable(self, station_id: str, reachable: bool) -> None:
        """The station monitor's verdict on a station changed."""
        self.reachable[station_id] = reachable
        now = self.clock()
        for desk in self.desks.values():
            if station_id in desk.stations:
                self._apply(desk, desk.set_reachable(station_id, reachable, now))

    def pause_station(self, station_id: str, *, paused: bool) -> bool:
        """Pause or resume a station (admin API); False for an unknown station."""
        desk = self.desk_of_station(station_id)
        if desk is None:
            return False
        now = self.clock()
        decisions = desk.pause(station_id, now) if paused else desk.resume(station_id, now)
        self._apply(desk, decisions)
        return True

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
    def on_attempt(self, leg: CallLeg, attempt: CallAttempt) -> None:
        """A kiosk calls a service: look it up, then let the partner's desk decide."""
        dialplan = self.dialplan
        kiosk = dialplan.kiosks.get(attempt.kiosk)
        service = dialplan.resolve_service(attempt.service)
        if kiosk is None or service is None:
            self._refuse(leg, attempt, kiosk, None, Refusal.UNKNOWN_SERVICE)
            return
        if not dialplan.may_call(kiosk, service):
            self._refuse(leg, attempt, kiosk, service, Refusal.NOT_OFFERED)
            return
        partner = dialplan.partners[service.partner]
        required = kiosk.encryption_required or partner.encryption_required
        if required and (attempt.offer is None or not offer_encrypted(attempt.offer)):
            # A late offer cannot be checked before the station answers: refused too.
            self._refuse(leg, attempt, kiosk, service, Refusal.ENCRYPTION_REQUIRED)
            return
        desk = self.desks[service.partner]
        hours = kiosk.opening_hours
        if hours is not None:
            site = hours.state_at(desk.local(self.clock()))
            if not site.open:
                retry = seconds_until(site.next_opening, self.clock())
                self._refuse(leg, attempt, kiosk, service, Refusal.SITE_CLOSED, retry)
                return
        call = Call(
            id=f"{self._prefix}-{next(self._ids)}",
            a=leg,
            attempt=attempt,
            kiosk=kiosk,
            service=service,
            partner=dialplan.partners[service.partner],
            started=self.clock(),
        )
        leg.label = call.id
        leg.sink = self._on_leg_event
        self.calls[call.id] = call
        with call_context(call.id):
            log.info("%s: kiosk %s (%s) calls %s", call.id, kiosk.id, kiosk.site, service.name)
            decision = desk.arrive(
                call.id, kiosk.id, appointment=attempt.appointment, now=call.started
            )
            self._apply(desk, [decision, *desk.take_pending()])

    def _refuse(
        self,
        leg: CallLeg,
        attempt: CallAttempt,
        kiosk: Kiosk | None,
        service: Service | None,
        refusal: Refusal,
        retry_after: int | None = None,
    ) -> None:
        """Refuse a call before it reached a desk, and still count it."""
        leg.reject(_refusal_failure(refusal, retry_after))
        now = self.clock()
        record = CallRecord(
            id=f"{self._prefix}-{next(self._ids)}",
            kiosk=attempt.kiosk,
            site=kiosk.site if kiosk is not None else "",
            service=service.name if service is not None else attempt.service,
            partner=service.partner if service is not None else "",
            station=None,
            kiosk_protocol=leg.protocol,
            started=now,
            answered=None,
            ended=now,
            outcome=outcome_of(connected=False, cause=refusal.cause, rejected=True),
            cause=refusal.cause,
            refusal=refusal,
        )
        self._keep(record)
        log.info("%s: kiosk %s refused: %s", record.id, attempt.kiosk, refusal.value)

    # -- what a desk decided ------------------------------------------------------------
    def _apply(self, desk: PartnerDesk, decisions: list[Decision]) -> None:
        """Carry out what a desk decided, then re-arm its timers and notify watchers."""
        pending = deque(decisions)
        while pending:
            decision = pending.popleft()
            call = self.calls.get(decision.call_id)
            if call is None or call.state is CallState.ENDED:
                if not isinstance(decision, Refused):
                    pending.extend(desk.ended(decision.call_id, self.clock()))
                continue
            if isinstance(decision, Offer):
                target = self.locate(decision.station)
                dialer = self.dialers.get(target.protocol) if target is not None else None
                if target is None or dialer is None:
                    pending.extend(desk.offer_failed(call.id, missed=False, now=self.clock()))
                    continue
                call.waited = decision.waited
                self._offer_to(call, target, dialer)
            elif isinstance(decision, Queued):
                self._wait_in_queue(call, decision)
            else:
                call.waited = decision.waited
                refusal = decision.refusal
                log.info("%s: %s", call.id, refusal.value)
                self._fail(call, _refusal_failure(refusal, decision.retry_after), refusal)
        self._arm_tick()
        if self.on_change is not None:
            self.on_change(desk.partner)

    def _offer_to(self, call: Call, target: Target, dialer: Dialer) -> None:
        """Offer the call to a station: anchor the media if not yet done, then dial."""
        call.target = target
        call.last_station = target.station
        call.station_protocol = target.protocol
        if call.state is CallState.QUEUED:
            call.state = CallState.ROUTING
        if call.ring_timer is not None:
            call.ring_timer.cancel()
        call.ring_timer = self.scheduler.call_later(
            self.ring_timeout, self._ring_timeout, call, target
        )
        self.scheduler.spawn(self._dial(call, target, dialer))

    async def _dial(self, call: Call, target: Target, dialer: Dialer) -> None:
        try:
            offer = await self._anchored_offer(call)
        except MediaError as exc:
            log.warning("%s: media offer failed: %s", call.id, exc)
            self._fail(call, _refusal_failure(Refusal.MEDIA_UNAVAILABLE), Refusal.MEDIA_UNAVAILABLE)
            return
        if call.state is CallState.ENDED or call.target is not target:
            return  # the caller left, or the offer was withdrawn, meanwhile
        if offer is not None and call.early_plan is not None:
            offer = restrict_offer(offer, call.early_plan)
        offer = _limited(offer, _bandwidth(call))
        kiosk = call.kiosk
        own = [("kiosk", kiosk.id), ("site", kiosk.site), ("service", call.service.name)]
        if call.waited:
            own.append(("waited", str(int(call.waited))))
        # What the gateway vouches for goes first; a kiosk's own copy of those keys (a
        # spoofed "kiosk", say) is dropped, whatever protocol carried it.
        context = (*own, *(item for item in call.attempt.context if item[0] not in OWN_CONTEXT))
        outgoing = OutgoingCall(
            caller=kiosk.id,
            caller_name=kiosk.label,
            service=call.service.name,
            offer=offer,
            context=context,
            hops=call.attempt.hops,
        )
        call.b = dialer.dial(target, outgoing, call.id, self._on_leg_event)
        log.debug("%s: offered to station %s at %s", call.id, target.station, target.uri)

    async def _anchored_offer(self, call: Call) -> SessionDescription | None:
        """The kiosk's offer rewritten to the relay, allocated on first use (None: late)."""
        offer = call.attempt.offer
        if offer is None:
            return None
        if call.b_offer is None:
            await self._anchor(call, offer, Side.A)
        return call.b_offer

    async def _anchor(self, call: Call, sdp: SessionDescription, side: Side) -> None:
        """Give the engine the call's first offer, once, whoever asks first."""
        if call.anchoring is not None:
            await call.anchoring.wait()  # another step is at it: its result is ours
            if call.b_offer is None:
                raise MediaError("the media session could not be made")
            return
        call.anchoring = asyncio.Event()
        call.media_open = True  # before the await: a call that ends meanwhile releases it
        try:
            call.b_offer = await self.media.offer(call.id, sdp, from_side=side)
        finally:
            call.anchoring.set()

    def _ring_timeout(self, call: Call, target: Target) -> None:
        call.ring_timer = None
        if call.target is not target or call.state not in (CallState.ROUTING, CallState.ALERTING):
            return
        log.info("%s: station did not answer in %.0f s", call.id, self.ring_timeout)
        if call.b is not None:
            call.b.hangup(Cause.NO_ANSWER, "no answer")
        self._b_failed(call, Failed(Cause.NO_ANSWER, "no answer"), missed=True)

    def _wait_in_queue(self, call: Call, decision: Queued) -> None:
        """The caller waits: 183 with the looped announcement, or 180, per the partner."""
        log.info(
            "%s: queued for %s at position %d (about %s s)",
            call.id,
            call.partner.id,
            decision.position,
            decision.estimated_wait,
        )
        call.b = None  # a failed offer sent back to the queue
        call.target = None
        first = not call.queued
        call.state = CallState.QUEUED
        call.queued = True
        if not first:
            return
        call.progress_timer = self.scheduler.call_later(
            PROGRESS_INTERVAL, self._repeat_progress, call
        )
        offer = call.attempt.offer
        made = early_answer(offer) if offer is not None else None
        if call.partner.desk.queue.waiting != "announcement":
            call.a.ring(None)
        elif made is None:
            log.info("%s: no G.711 offer from the kiosk: ringing instead", call.id)
            call.a.ring(None)
        else:
            # Decided now, not when the step runs: an offer to a station made meanwhile
            # must already be limited to what the 183 will say.
            call.early_plan = made[0]
            self.scheduler.spawn(self._announce(call, made[0]))

    async def _announce(self, call: Call, answer: SessionDescription) -> None:
        """Answer the kiosk's offer with our early media and loop the waiting prompt."""
        try:
            await self._anchored_offer(call)
            if _past_waiting(call):
                return
            to_kiosk = await self.media.answer(call.id, answer, from_side=Side.B)
            if _past_waiting(call):
                return  # ended, or a station answered while the SDP was being prepared
            await self.media.play(call.id, WAITING_PROMPT)
        except MediaError as exc:
            log.warning("%s: announcement unavailable (%s): ringing instead", call.id, exc)
            if not _past_waiting(call):
                call.a.ring(None)
            return
        if _past_waiting(call):
            return
        call.early = _limited(to_kiosk, _bandwidth(call))
        call.a.ring(call.early)

    def _repeat_progress(self, call: Call) -> None:
        """Send the waiting caller's 180/183 again (RFC 3261 13.3.1.1)."""
        call.progress_timer = None
        if call.state is CallState.ENDED or call.answered is not None or call.a.ended:
            return
        call.a.ring(call.early)
        call.progress_timer = self.scheduler.call_later(
            PROGRESS_INTERVAL, self._repeat_progress, call
        )

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
            self._tick = self.scheduler.call_later(delay, self._on_tick)

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
    def _on_leg_event(self, leg: CallLeg, event: CallEvent) -> None:
        with call_context(leg.label):
            self._leg_event(leg, event)

    def _leg_event(self, leg: CallLeg, event: CallEvent) -> None:
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
        b = call.b
        if isinstance(event, Disconnected):
            if b is not None:
                b.hangup(event.cause, event.reason)
            self._end(call, event.cause, event.reason or "kiosk hung up")
        elif isinstance(event, LateAnswer):
            self.scheduler.spawn(self._late_answer(call, event.answer))
        elif isinstance(event, MediaUpdate):
            self.scheduler.spawn(self._relay_offer(call, Side.A, event.offer))
        elif isinstance(event, MediaUpdateAnswer):
            self.scheduler.spawn(self._relay_answer(call, Side.A, event))
        elif isinstance(event, Dtmf) and b is not None:
            b.send_dtmf(event)
        elif isinstance(event, FastUpdate) and b is not None:
            self.scheduler.spawn(self._refresh_picture(call, b))

    def _on_b_event(self, call: Call, event: CallEvent) -> None:
        if isinstance(event, Ringing):
            call.state = CallState.ALERTING
            # A waiting caller keeps hearing the announcement until the station answers.
            if call.early is None and not call.queued:
                if event.early_media is None:
                    call.a.ring(None)
                else:
                    self.scheduler.spawn(self._early_media(call, event.early_media))
        elif isinstance(event, Answered):
            self.scheduler.spawn(self._answered(call, event))
        elif isinstance(event, Failed):
            self._b_failed(call, event)
        elif isinstance(event, Disconnected):
            call.a.hangup(event.cause, event.reason)
            self._end(call, event.cause, event.reason or "station hung up")
        elif isinstance(event, MediaUpdate):
            self.scheduler.spawn(self._relay_offer(call, Side.B, event.offer))
        elif isinstance(event, MediaUpdateAnswer):
            self.scheduler.spawn(self._relay_answer(call, Side.B, event))
        elif isinstance(event, Dtmf):
            call.a.send_dtmf(event)
        elif isinstance(event, FastUpdate):
            self.scheduler.spawn(self._refresh_picture(call, call.a))

    def _b_failed(self, call: Call, failure: Failed, *, missed: bool = False) -> None:
        """The station did not take the call: its desk decides what comes next."""
        call.b = None
        call.target = None
        if call.ring_timer is not None:
            call.ring_timer.cancel()
            call.ring_timer = None
        if call.a.ended or call.state is CallState.ENDED:
            return
        if failure.cause in FINAL_CAUSES:
            self._fail(call, failure)
            return
        # Nobody answering counts towards pausing the station; a refusal (busy, declined,
        # out of order) only holds it off for a moment.
        missed = missed or failure.cause.unanswered
        desk = self.desks[call.partner.id]
        self._apply(desk, desk.offer_failed(call.id, missed=missed, now=self.clock()))

    async def _early_media(self, call: Call, early: SessionDescription) -> None:
        relayed: SessionDescription | None
        if call.late_offer:
            relayed = None  # no offer of the kiosk's to answer early; ring instead
        else:
            try:
                relayed = await self.media.answer(call.id, early, from_side=Side.B)
            except MediaError as exc:
                log.info("%s: early media not relayed: %s", call.id, exc)
                relayed = None
        if call.state is not CallState.ENDED and not call.a.ended:
            call.a.ring(_limited(relayed, _bandwidth(call)))

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
        try:
            if call.early is not None:
                await self.media.stop_playing(call.id)
            to_kiosk = await self._kiosk_sdp(call, event.sdp)
        except MediaError as exc:
            log.warning("%s: media answer failed: %s", call.id, exc)
            if b is not None:
                b.hangup(Cause.RESOURCE_UNAVAILABLE, "media unavailable")
            call.a.hangup(Cause.RESOURCE_UNAVAILABLE, "media unavailable")
            self._end(call, Cause.RESOURCE_UNAVAILABLE, "media unavailable")
            return
        if call.a.ended or call.state is CallState.ENDED:
            if b is not None:
                b.hangup(Cause.NORMAL_CLEARING)
            self._end(call, Cause.NORMAL_CLEARING, "caller left before answer")
            return
        call.state = CallState.CONNECTED
        call.answered = self.clock()
        # A caller who heard our early media already holds its answer: the 200 repeats it.
        call.a.answer(call.early or _limited(to_kiosk, _bandwidth(call)))
        log.debug("%s: connected to %s", call.id, call.last_station)
        if call.early is not None and b is not None and _has_video(call.early):
            # Bridged after an announcement: each side's decoder starts on a stream it
            # has not seen begin, so both senders are asked for a key frame at once
            # rather than leaving a grey picture until their next periodic one.
            self.scheduler.spawn(self._refresh_picture(call, call.a))
            self.scheduler.spawn(self._refresh_picture(call, b))

    async def _kiosk_sdp(
        self, call: Call, sdp: SessionDescription | None
    ) -> SessionDescription | None:
        """What the kiosk gets with the answer: the station's answer, or (late) its offer."""
        if sdp is None:
            if call.late_offer:
                raise MediaError("the station answered a late offer without an offer of its own")
            return None
        if call.late_offer:
            await self._anchor(call, sdp, Side.B)
            return call.b_offer
        return await self.media.answer(call.id, sdp, from_side=Side.B)

    async def _late_answer(self, call: Call, answer: SessionDescription) -> None:
        """The kiosk answered the station's offer (late offer): pass the answer on."""
        b = call.b
        if b is None or call.state is not CallState.CONNECTED:
            return
        try:
            to_station = await self.media.answer(call.id, answer, from_side=Side.A)
        except MediaError as exc:
            log.warning("%s: the kiosk's answer could not be relayed: %s", call.id, exc)
            cause = Cause.BEARER_CAPABILITY_NOT_IMPLEMENTED
            b.hangup(cause, "media negotiation failed")
            call.a.hangup(cause, "media negotiation failed")
            self._end(call, cause, "media negotiation failed")
            return
        b.complete(_limited(to_station, _bandwidth(call)))

    async def _relay_offer(self, call: Call, side: Side, offer: SessionDescription) -> None:
        other = call.b if side is Side.A else call.a
        origin = call.a if side is Side.A else call.b
        if other is None or origin is None:
            return
        try:
            rewritten = await self.media.offer(call.id, offer, from_side=side)
        except MediaError as exc:
            log.info("%s: re-offer refused: %s", call.id, exc)
            origin.update_answer(
                MediaUpdateAnswer(None, refused=Cause.BEARER_CAPABILITY_NOT_IMPLEMENTED)
            )
            return
        other.update(_limited(rewritten, _bandwidth(call)))

    async def _relay_answer(self, call: Call, side: Side, event: MediaUpdateAnswer) -> None:
        origin = call.b if side is Side.A else call.a  # the leg that sent the offer
        if origin is None:
            return
        if event.answer is None:
            origin.update_answer(event)
            return
        try:
            rewritten = await self.media.answer(call.id, event.answer, from_side=side)
        except MediaError as exc:
            log.info("%s: re-answer refused: %s", call.id, exc)
            origin.update_answer(
                MediaUpdateAnswer(None, refused=Cause.BEARER_CAPABILITY_NOT_IMPLEMENTED)
            )
            return
        origin.update_answer(MediaUpdateAnswer(_limited(rewritten, _bandwidth(call))))

    async def _refresh_picture(self, call: Call, leg: CallLeg) -> None:
        """Ask ``leg``'s video sender for a key frame: in RTCP through the media engine
        when that side negotiated PLI or FIR feedback, else in its signalling (SIP INFO
        picture_fast_update, RFC 5168; H.245 videoFastUpdatePicture)."""
        if leg.ended or call.state is CallState.ENDED:
            return
        try:
            sent = await self.media.request_keyframe(call.id, to_side=leg.side)
        except MediaError as exc:
            log.info("%s: key-frame request through the media engine failed: %s", call.id, exc)
            sent = False
        if not sent and not leg.ended:
            leg.fast_update()

    def _media_event(self, call_id: str, side: Side, event: Dtmf | FastUpdate) -> None:
        """What the media engine ended in side's media (an RFC 4733 digit, a PLI or FIR)
        goes on like the same event from side's leg."""
        call = self.calls.get(call_id)
        if call is None or call.state is CallState.ENDED:
            return
        leg = call.a if side is Side.A else call.b
        if leg is not None:
            self._on_leg_event(leg, event)

    def _media_timeout(self, call_id: str) -> None:
        with call_context(call_id):
            self._media_stopped(call_id)

    def _media_stopped(self, call_id: str) -> None:
        call = self.calls.get(call_id)
        if call is None or call.state is CallState.ENDED:
            return
        log.info("%s: media stopped, ending the call", call_id)
        self._hang_up(call, Cause.RECOVERY_ON_TIMER_EXPIRY, "no media")

    def end_call(self, call_id: str, reason: str = "ended by an operator") -> bool:
        """Hang up a call, connected, ringing or queued (admin API); False if unknown."""
        call = self.calls.get(call_id)
        if call is None or call.state is CallState.ENDED:
            return False
        with call_context(call_id):
            log.info("%s: %s", call_id, reason)
            self._hang_up(call, Cause.NORMAL_CLEARING, reason)
        return True

    def _hang_up(self, call: Call, cause: Cause, reason: str) -> None:
        """Both legs released by the gateway itself, and the call ended."""
        call.a.hangup(cause, reason)
        if call.b is not None:
            call.b.hangup(cause, reason)
        connected = call.state is CallState.CONNECTED
        self._end(call, cause, reason, rejected=not connected)

    # -- the end -----------------------------------------------------------------------
    def _fail(self, call: Call, failure: Failed, refusal: Refusal | None = None) -> None:
        """Refuse the caller (no station will take the call) and end it."""
        call.a.reject(failure)
        self._end(call, failure.cause, failure.reason, rejected=True, refusal=refusal)

    def _end(
        self,
        call: Call,
        cause: Cause,
        reason: str,
        *,
        rejected: bool = False,
        refusal: Refusal | None = None,
    ) -> None:
        if call.state is CallState.ENDED:
            return
        was_connected = call.state is CallState.CONNECTED
        call.state = CallState.ENDED
        for timer in (call.ring_timer, call.progress_timer):
            if timer is not None:
                timer.cancel()
        call.ring_timer = call.progress_timer = None
        now = self.clock()
        self.calls.pop(call.id, None)
        desk = self.desks.get(call.partner.id)
        if desk is not None:
            since = desk.queued_since(call.id)
            if since is not None and call.answered is None:
                call.waited = now - since
            if call.answered is not None:
                desk.call_duration(now - call.answered)
            self._apply(desk, desk.ended(call.id, now))
        record = CallRecord(
            id=call.id,
            kiosk=call.kiosk.id,
            site=call.kiosk.site,
            service=call.service.name,
            partner=call.partner.id,
            station=call.last_station,
            kiosk_protocol=call.a.protocol,
            station_protocol=call.station_protocol,
            started=call.started,
            answered=call.answered,
            ended=now,
            outcome=outcome_of(connected=was_connected, cause=cause, rejected=rejected),
            cause=cause,
            refusal=refusal,
            waited=call.waited,
            queued=call.queued,
        )
        log.info(
            "%s: ended (%s, station %s, cause %d%s) after %.1f s",
            call.id,
            record.outcome,
            call.last_station or "-",
            cause,
            f", {reason}" if reason else "",
            record.duration,
        )
        if call.media_open:
            self.scheduler.spawn(self._release_media(call, record))
        else:
            self._keep(record)

    async def _release_media(self, call: Call, record: CallRecord) -> None:
        """Free the call's relay session; its final counters go into the record."""
        try:
            if call.anchoring is not None:
                await call.anchoring.wait()  # delete what an offer under way is making
            record.media = await self.media.delete(call.id)
        except MediaError as exc:
            log.warning("%s: media release failed: %s", call.id, exc)
        self._keep(record)

    def _keep(self, record: CallRecord) -> None:
        self.records.append(record)
        if self.on_record is not None:
            self.on_record(record)

    async def close(self) -> None:
        """End every call (gateway shutdown): release both legs and the media."""
        if self._tick is not None:
            self._tick.cancel()
            self._tick = None
        for call in list(self.calls.values()):
            call.a.hangup(Cause.NORMAL_CLEARING, "gateway shutting down")
            if call.b is not None:
                call.b.hangup(Cause.NORMAL_CLEARING, "gateway shutting down")
            self._end(call, Cause.NORMAL_CLEARING, "gateway shutting down")


def _bandwidth(call: Call) -> int | None:
    """The kbit/s the call's links carry: the lower of the kiosk site's and the offered
    station's ``bandwidth`` (RFC 4566 5.8, RFC 3890), None when neither sets one."""
    limits = [call.kiosk.bandwidth]
    if call.target is not None:
        station = next((s for s in call.partner.stations if s.id == call.target.station), None)
        if station is not None:
            limits.append(station.bandwidth)
    known = [limit for limit in limits if limit is not None]
    return min(known) if known else None


@overload
def _limited(sdp: SessionDescription, kbps: int | None) -> SessionDescription: ...
@overload
def _limited(sdp: SessionDescription | None, kbps: int | None) -> SessionDescription | None: ...
def _limited(sdp: SessionDescription | None, kbps: int | None) -> SessionDescription | None:
    """``sdp`` with the call's bandwidth written in (b=AS, b=TIAS), for either leg
    (``None``, no description, stays ``None``)."""
    if sdp is None or kbps is None:
        return sdp
    return limit_bandwidth(sdp, kbps)


def _has_video(sdp: SessionDescription) -> bool:
    """Whether a description keeps a video stream (an m=video line with a port)."""
    return any(m.kind == "video" and m.port != 0 for m in sdp.media)


def _refusal_failure(refusal: Refusal, retry_after: int | None = None) -> Failed:
    """The failure a refused caller is released with: its cause and French phrase."""
    return Failed(refusal.cause, text(refusal.text_key), retry_after)


def _past_waiting(call: Call) -> bool:
    """The call no longer needs an announcement: ended, or answered by a station."""
    return call.state is CallState.ENDED or call.a.ended or call.answered is not None
