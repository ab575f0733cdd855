"""A partner's reception desk: its stations' states, its queue and its availability.

Sans-IO: every method takes the time (``now``, epoch seconds) and returns decisions
for the controller to carry out; nothing here sleeps, sends or reads a clock. The
controller (:mod:`gateway.call.b2bua`) calls :meth:`PartnerDesk.tick` at
:meth:`PartnerDesk.next_deadline`.

Rules (the product's, see docs/operator-guide.md):

* a station takes at most ``max_calls`` calls (1 for a videoconference unit): it is
  never offered a second call while ringing, busy or in wrap-up;
* a caller who finds no free station waits in the partner's FIFO queue; callers with an
  appointment go before walk-in callers; the queue is bounded in length and in time;
* when a station frees (after wrap-up) the head of the queue is offered to it; an
  unanswered offer goes to another free station or back to the head of the queue, and
  a station that missed ``pause_after`` offers in a row is paused;
* availability is derived, never stored: ``closed`` (schedule), ``offline`` (no station
  in service), ``open`` (a station can take a call and nobody waits) or ``busy``.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Literal
from zoneinfo import ZoneInfo

from gateway.model.causes import Refusal
from gateway.partners.schedule import ClosedReason, Opening, Schedule, ScheduleState

WaitingPolicy = Literal["announcement", "ringing"]


class StationState(StrEnum):
    """What a station is doing, as shown on busy-lamp fields and the admin API."""

    OFFLINE = "offline"  # not registered, or failing its OPTIONS keep-alive
    IDLE = "idle"
    RINGING = "ringing"
    BUSY = "busy"
    WRAP_UP = "wrap_up"  # the agent finishes the file of the last call
    PAUSED = "paused"


class PauseReason(StrEnum):
    """Why a station takes no calls although it is reachable."""

    ADMIN = "admin"
    NO_ANSWER = "no_answer"


class Status(StrEnum):
    """A partner's availability as a kiosk shows it."""

    OPEN = "open"
    BUSY = "busy"
    CLOSED = "closed"
    OFFLINE = "offline"


@dataclass(frozen=True, slots=True)
class QueueSettings:
    """How callers wait for a partner (dialplan ``queue``)."""

    max_length: int = 10
    max_wait: float = 900.0
    waiting: WaitingPolicy = "announcement"


@dataclass(frozen=True, slots=True)
class DeskSettings:
    """Per-partner rules of the desk (dialplan partner keys)."""

    wrap_up: float = 30.0  # seconds after each call before the station is offered again
    pause_after: int = 3  # consecutive unanswered offers that pause a station; 0 = never
    holdoff: float = 5.0  # seconds a station that refused an offer is left alone
    typical_call: float = 600.0  # the estimate before any call was measured
    queue: QueueSettings = field(default_factory=QueueSettings)


@dataclass(slots=True)
class StationStatus:
    """The live state of one station."""

    id: str
    max_calls: int = 1
    reachable: bool = False
    ringing: set[str] = field(default_factory=set)  # call ids offered, not yet answered
    connected: set[str] = field(default_factory=set)
    wrap_up_until: float = 0.0
    paused: PauseReason | None = None
    missed: int = 0  # consecutive unanswered offers
    idle_since: float = 0.0
    wrapping: bool = False  # the hold-off is a wrap-up (True) or a refusal hold-off

    def state(self, now: float) -> StationState:
        """The state shown for this station at ``now``."""
        if self.connected:
            return StationState.BUSY
        if self.ringing:
            return StationState.RINGING
        if not self.reachable:
            return StationState.OFFLINE
        if self.paused is not None:
            return StationState.PAUSED
        if now < self.wrap_up_until and self.wrapping:
            return StationState.WRAP_UP
        return StationState.IDLE

    @property
    def in_service(self) -> bool:
        """Reachable and not paused: the station counts in the partner's capacity."""
        return self.reachable and self.paused is None

    def can_take(self, now: float) -> bool:
        """True when a new call may be offered to this station now."""
        if not self.in_service or now < self.wrap_up_until:
            return False
        calls = len(self.ringing) + len(self.connected)
        return self.max_calls == 0 or calls < self.max_calls


# init=False: the __init__ is written out so that mypyc compiles it (docs/architecture.md,
# "Compiled, optionally"; tests/model/test_written_out_inits.py checks it).
@dataclass(slots=True, init=False)
class DeskCall:
    """What the desk knows of one of its calls, from arrival until answered or ended."""

    kiosk: str
    appointment: bool
    station: str | None = None  # the station it rings now
    tried: set[str] = field(default_factory=set)  # stations that failed it this round
    queued_since: float | None = None  # first entry in the queue, kept until answered

    def __init__(
        self,
        kiosk: str,
        appointment: bool,
        station: str | None = None,
        tried: set[str] | None = None,
        queued_since: float | None = None,
    ) -> None:
        self.kiosk = kiosk
        self.appointment = appointment
        self.station = station
        self.tried = set() if tried is None else tried  # None: a fresh set
        self.queued_since = queued_since


@dataclass(slots=True)
class Waiting:
    """A caller in the queue."""

    call_id: str
    kiosk: str
    appointment: bool
    since: float  # when the caller first entered the queue
    deadline: float  # when the caller gives up (max wait)


@dataclass(frozen=True, slots=True, init=False)
class Offer:
    """Offer ``call_id`` to ``station`` now."""

    call_id: str
    station: str
    waited: float  # seconds the caller waited in the queue (0 when none)

    def __init__(self, call_id: str, station: str, waited: float) -> None:
        object.__setattr__(self, "call_id", call_id)
        object.__setattr__(self, "station", station)
        object.__setattr__(self, "waited", waited)


@dataclass(frozen=True, slots=True)
class Queued:
    """The caller waits: its position (1 = next) and the expected wait in seconds."""

    call_id: str
    position: int
    estimated_wait: int | None


@dataclass(frozen=True, slots=True)
class Refused:
    """End the caller's attempt, for a reason that carries its Q.850 cause."""

    call_id: str
    refusal: Refusal
    retry_after: int | None = None
    waited: float = 0.0


Decision = Offer | Queued | Refused


@dataclass(frozen=True, slots=True)
class Availability:
    """One partner's availability, with its reasons as data (rendered by gateway.texts)."""

    partner: str
    status: Status
    queue_length: int = 0
    estimated_wait: int | None = None  # seconds, for a caller joining the queue now
    closed_reason: ClosedReason | None = None
    detail: str = ""  # holiday name or closure reason
    next_opening: datetime | None = None
    next_opening_appointment: bool = False  # the next opening is for booked callers only
    appointment_only: bool = False
    stations_in_service: int = 0
    stations_free: int = 0


class PartnerDesk:
    """The stations, queue and schedule of one partner."""

    def __init__(
        self,
        partner: str,
        stations: Sequence[tuple[str, int]],
        *,
        schedule: Schedule | None = None,
        settings: DeskSettings | None = None,
        tz: str = "Europe/Paris",
    ) -> None:
        self.partner = partner
        self.schedule = schedule or Schedule.always()
        self.settings = settings or DeskSettings()
        self.tz = ZoneInfo(tz)
        self.stations: dict[str, StationStatus] = {
            sid: StationStatus(sid, max_calls) for sid, max_calls in stations
        }
        self.order = [sid for sid, _ in stations]
        self.queue: deque[Waiting] = deque()
        self.calls: dict[str, DeskCall] = {}  # calls arrived and not yet answered or ended
        self.durations: deque[float] = deque(maxlen=20)
        self.waits: deque[float] = deque(maxlen=100)
        self.version = 0  # bumped on every visible change; presence compares it
        self._pending: list[Decision] = []
        self._boundary_at: float | None = None  # next opening or closing, cached

    # -- helpers --------------------------------------------------------------------------
    def local(self, now: float) -> datetime:
        """``now`` as an aware datetime in the desk's zone."""
        return datetime.fromtimestamp(now, UTC).astimezone(self.tz)

    def _changed(self) -> None:
        self.version += 1

    def _free_station(self, now: float, exclude: Iterable[str] = ()) -> str | None:
        """The station to offer a call to: the one idle longest, dialplan order on ties."""
        skip = set(exclude)
        best: StationStatus | None = None
        for sid in self.order:
            st = self.stations[sid]
            if sid in skip or not st.can_take(now):
                continue
            if best is None or st.idle_since < best.idle_since:
                best = st
        return best.id if best is not None else None

    def _schedule_state(self, now: float) -> ScheduleState | None:
        """The schedule at ``now``; None for a partner without one (the common fast path)."""
        if self.schedule.always_open:
            return None
        return self.schedule.state_at(self.local(now))

    def _offer(self, call: str, sid: str, now: float) -> Offer:
        self.stations[sid].ringing.add(call)
        record = self.calls[call]
        record.station = sid
        since = record.queued_since
        self._changed()
        return Offer(call, sid, now - since if since is not None else 0.0)

    def _position(self, call_id: str) -> int:
        for i, w in enumerate(self.queue, 1):
            if w.call_id == call_id:
                return i
        return 0

    def _insert(self, entry: Waiting, *, head: bool = False) -> None:
        """Appointments first, FIFO within each class; ``head`` puts it first of its class."""
        items = list(self.queue)
        if head:
            index = 0 if entry.appointment else sum(1 for w in items if w.appointment)
        elif entry.appointment:
            index = sum(1 for w in items if w.appointment)
        else:
            index = len(items)
        items.insert(index, entry)
        self.queue = deque(items)

    def estimated_wait(self, position: int) -> int | None:
        """Seconds until a caller at ``position`` is offered a station (rough, documented)."""
        capacity = sum(max(1, st.max_calls) for st in self.stations.values() if st.in_service)
        if capacity == 0:
            return None
        mean = sum(self.durations) / len(self.durations) if self.durations else None
        per_call = (mean if mean is not None else self.settings.typical_call) + (
            self.settings.wrap_up
        )
        rounds = math.ceil(position / capacity)
        return int(rounds * per_call)

    # -- a caller arrives -----------------------------------------------------------------
    def arrive(self, call_id: str, kiosk: str, *, appointment: bool, now: float) -> Decision:
        """A kiosk calls this partner: offer to a station, queue, or refuse."""
        self.calls[call_id] = DeskCall(kiosk, appointment)
        decision = self._arrive(call_id, kiosk, appointment, now)
        if isinstance(decision, Refused):
            del self.calls[call_id]
        return decision

    def _arrive(self, call_id: str, kiosk: str, appointment: bool, now: float) -> Decision:
        state = self._schedule_state(now)
        if state is not None and not state.open:
            return Refused(
                call_id,
                Refusal.CLOSED,
                retry_after=seconds_until(state.next_opening, now),
            )
        if state is not None and state.kind == "appointment" and not appointment:
            walk_in = self.schedule.next_opening(self.local(now), kind="walk_in")
            return Refused(
                call_id,
                Refusal.APPOINTMENT_ONLY,
                retry_after=seconds_until(walk_in, now),
            )
        if not any(st.in_service for st in self.stations.values()):
            return Refused(call_id, Refusal.NO_STATION)
        if not self.queue:
            sid = self._free_station(now)
            if sid is not None:
                return self._offer(call_id, sid, now)
        if len(self.queue) >= self.settings.queue.max_length:
            return Refused(call_id, Refusal.QUEUE_FULL)
        entry = Waiting(call_id, kiosk, appointment, now, now + self.settings.queue.max_wait)
        self._insert(entry)
        self.calls[call_id].queued_since = now
        self._changed()
        position = self._position(call_id)
        # An appointment may jump the queue while a station is free only for it.
        decisions = self._dispatch(now)
        for d in decisions:
            if isinstance(d, Offer) and d.call_id == call_id:
                return d
        self._pending.extend(decisions)
        return Queued(call_id, position, self.estimated_wait(position))

    def adopt(self, previous: PartnerDesk) -> None:
        """Carry the live state of the same partner's desk over a dialplan reload.

        Stations that still exist keep their state (with the new call limit); every call
        keeps its record, so a caller whose offer fails after the reload goes back to
        the queue as who it is, with its priority.
        """
        for sid, status in self.stations.items():
            kept = previous.stations.get(sid)
            if kept is not None:
                kept.max_calls = status.max_calls
                self.stations[sid] = kept
        self.queue = previous.queue
        self.calls = previous.calls
        self.durations = previous.durations
        self.waits = previous.waits

    def queued_since(self, call_id: str) -> float | None:
        """When a caller first entered the queue (kept until answered), if it did."""
        record = self.calls.get(call_id)
        return record.queued_since if record is not None else None

    def take_pending(self) -> list[Decision]:
        """Decisions produced as a side effect of :meth:`arrive` (offers to other callers)."""
        out, self._pending = self._pending, []
        return out

    # -- what happened to an offer --------------------------------------------------------
    def answered(self, call_id: str, now: float) -> None:
        """The station answered: it is busy until :meth:`ended`."""
        record = self.calls.get(call_id)
        if record is None or record.station is None:
            return
        del self.calls[call_id]
        st = self.stations[record.station]
        st.ringing.discard(call_id)
        st.connected.add(call_id)
        st.missed = 0
        since = record.queued_since
        self.waits.append(now - since if since is not None else 0.0)
        self._changed()

    def offer_failed(self, call_id: str, *, missed: bool, now: float) -> list[Decision]:
        """The station did not take the call: try another, or back to the queue head.

        ``missed`` is True for an offer that rang out unanswered (or timed out): those
        count towards pausing the station. A refusal (486, 603, ...) holds the station
        off for a few seconds instead, so a station that refuses is not hammered.
        """
        record = self.calls.get(call_id)
        if record is None or record.station is None:
            return []
        sid, record.station = record.station, None
        st = self.stations[sid]
        st.ringing.discard(call_id)
        if st.max_calls != 0:
            # A peer without a call limit (a load generator) is never held off: its
            # refusals are answers to single calls, not a sign that it is busy.
            st.wrap_up_until = max(st.wrap_up_until, now + self.settings.holdoff)
            st.wrapping = False
        if missed:
            st.missed += 1
            if 0 < self.settings.pause_after <= st.missed and st.paused is None:
                st.paused = PauseReason.NO_ANSWER
        record.tried.add(sid)
        self._changed()
        other = self._free_station(now, exclude=record.tried)
        decisions: list[Decision] = []
        if other is not None:
            decisions.append(self._offer(call_id, other, now))
        elif self.settings.queue.max_length == 0 or st.max_calls == 0:
            # No queue for this partner, or a station that is never "busy" (requeueing
            # would only offer it the same call again): the caller learns how it ended.
            del self.calls[call_id]
            if missed:
                decisions.append(Refused(call_id, Refusal.NO_ANSWER))
            else:
                decisions.append(Refused(call_id, Refusal.ALL_BUSY))
        else:
            record.tried.clear()
            since = record.queued_since if record.queued_since is not None else now
            record.queued_since = since
            entry = Waiting(
                call_id,
                record.kiosk,
                record.appointment,
                since,
                since + self.settings.queue.max_wait,
            )
            self._insert(entry, head=True)
            decisions.append(Queued(call_id, self._position(call_id), self.estimated_wait(1)))
        decisions.extend(self._dispatch(now))
        return decisions

    def ended(self, call_id: str, now: float) -> list[Decision]:
        """A call of this partner ended (answered or not, queued or not)."""
        decisions: list[Decision] = []
        if self.leave(call_id):
            return self._dispatch(now)
        record = self.calls.pop(call_id, None)
        if record is not None and record.station is not None:
            # An offer withdrawn before the answer: the station stays as idle as it was
            # (idle time counts from its last call, not from its last ring).
            self.stations[record.station].ringing.discard(call_id)
            self._changed()
            return self._dispatch(now)
        for st in self.stations.values():
            if call_id in st.connected:
                st.connected.discard(call_id)
                if not st.connected and self.settings.wrap_up > 0:
                    st.wrap_up_until = now + self.settings.wrap_up
                    st.wrapping = True
                    st.idle_since = st.wrap_up_until
                elif not st.connected:
                    # No wrap-up: free at once, rather than a wrap-up of zero seconds that
                    # costs a timer, a loop turn and a presence change per call.
                    st.idle_since = now
                self._changed()
                decisions.extend(self._dispatch(now))
                break
        return decisions

    def call_duration(self, seconds: float) -> None:
        """Feed the waiting-time estimate with the duration of an answered call."""
        if seconds > 0:
            self.durations.append(seconds)

    def leave(self, call_id: str) -> bool:
        """A queued caller hung up: it leaves the queue at once. False if not queued."""
        for w in self.queue:
            if w.call_id == call_id:
                self.queue.remove(w)
                self.calls.pop(call_id, None)
                self._changed()
                return True
        return False

    # -- stations -------------------------------------------------------------------------
    def set_reachable(self, sid: str, reachable: bool, now: float) -> list[Decision]:
        """A station registered, unregistered, or its keep-alive changed verdict."""
        st = self.stations.get(sid)
        if st is None or st.reachable == reachable:
            return []
        st.reachable = reachable
        if reachable:
            st.idle_since = now
        self._changed()
        return self._dispatch(now) if reachable else self._shed(now)

    def pause(self, sid: str, now: float) -> list[Decision]:
        """Pause a station from the admin API (calls in progress go on)."""
        st = self.stations.get(sid)
        if st is None:
            raise KeyError(sid)
        if st.paused is not PauseReason.ADMIN:
            st.paused = PauseReason.ADMIN
            self._changed()
        return self._shed(now)

    def resume(self, sid: str, now: float) -> list[Decision]:
        """Put a paused station back in service; the queue head is offered to it."""
        st = self.stations.get(sid)
        if st is None:
            raise KeyError(sid)
        if st.paused is not None:
            st.paused = None
            st.missed = 0
            st.idle_since = now
            self._changed()
        return self._dispatch(now)

    def _shed(self, now: float) -> list[Decision]:
        """Nobody left to serve: waiting callers are released with 'no station'."""
        if any(st.in_service for st in self.stations.values()):
            return []
        out: list[Decision] = []
        while self.queue:
            w = self.queue.popleft()
            self.calls.pop(w.call_id, None)
            out.append(
                Refused(
                    w.call_id,
                    Refusal.NO_STATION,
                    waited=now - w.since,
                )
            )
        if out:
            self._changed()
        return out

    # -- time -----------------------------------------------------------------------------
    def _dispatch(self, now: float) -> list[Decision]:
        out: list[Decision] = []
        while self.queue:
            sid = self._free_station(now)
            if sid is None:
                break
            w = self.queue.popleft()
            out.append(self._offer(w.call_id, sid, now))
        return out

    def tick(self, now: float) -> list[Decision]:
        """Wrap-ups and hold-offs that ended, queue waits that expired."""
        out: list[Decision] = []
        if self._boundary_at is not None and now >= self._boundary_at:
            self._boundary_at = None
            self._changed()
        for st in self.stations.values():
            if st.wrap_up_until and now >= st.wrap_up_until:
                st.wrap_up_until = 0.0
                st.wrapping = False
                self._changed()
        expired = [w for w in self.queue if now >= w.deadline]
        for w in expired:
            self.queue.remove(w)
            self.calls.pop(w.call_id, None)
            out.append(Refused(w.call_id, Refusal.QUEUE_TIMEOUT, waited=now - w.since))
        if expired:
            self._changed()
        out.extend(self._dispatch(now))
        return out

    def next_deadline(self) -> float | None:
        """When :meth:`tick` has something to do next (None: nothing pending)."""
        soonest: float | None = None
        for st in self.stations.values():
            t = st.wrap_up_until
            if t and (soonest is None or t < soonest):
                soonest = t
        for w in self.queue:
            if soonest is None or w.deadline < soonest:
                soonest = w.deadline
        return soonest

    def next_change(self, now: float) -> float | None:
        """The next deadline, or the next opening or closing time, whichever comes first.

        Opening and closing change the availability without any call event, so the
        controller wakes up then too (and presence is notified).
        """
        deadline = self.next_deadline()
        if self.schedule.always_open:
            return deadline
        boundary = self._boundary(now)
        if deadline is None or (boundary is not None and boundary < deadline):
            return boundary
        return deadline

    def clock_moved(self) -> None:
        """Forget the cached opening/closing time (the clock jumped)."""
        self._boundary_at = None

    def _boundary(self, now: float) -> float | None:
        if self.schedule.always_open:
            return None
        if self._boundary_at is not None:
            return self._boundary_at  # kept, even once passed, until tick() consumes it
        state = self.schedule.state_at(self.local(now))
        if state.open:
            self._boundary_at = state.closes_at.timestamp() if state.closes_at else None
        else:
            self._boundary_at = state.next_opening.start.timestamp() if state.next_opening else None
        return self._boundary_at

    # -- views ----------------------------------------------------------------------------
    def position(self, call_id: str) -> int:
        """1-based queue position of a waiting caller (0 when not queued)."""
        return self._position(call_id)

    def availability(self, now: float) -> Availability:
        """The partner's availability at ``now``, reasons included."""
        local = self.local(now)
        sched = self.schedule.state_at(local)
        in_service = sum(1 for st in self.stations.values() if st.in_service)
        free = sum(1 for st in self.stations.values() if st.can_take(now))
        if not sched.open:
            return Availability(
                self.partner,
                Status.CLOSED,
                queue_length=len(self.queue),
                closed_reason=sched.reason,
                detail=sched.detail,
                next_opening=sched.next_opening.start if sched.next_opening else None,
                next_opening_appointment=(
                    sched.next_opening is not None and sched.next_opening.kind == "appointment"
                ),
                stations_in_service=in_service,
                stations_free=free,
            )
        if in_service == 0:
            status = Status.OFFLINE
        elif free > 0 and not self.queue:
            status = Status.OPEN
        else:
            status = Status.BUSY
        return Availability(
            self.partner,
            status,
            queue_length=len(self.queue),
            estimated_wait=(
                self.estimated_wait(len(self.queue) + 1) if status is Status.BUSY else None
            ),
            appointment_only=sched.kind == "appointment",
            stations_in_service=in_service,
            stations_free=free,
        )


def seconds_until(opening: Opening | datetime | None, now: float) -> int | None:
    """Whole seconds from ``now`` to an opening (Retry-After, RFC 3261 20.33)."""
    if opening is None:
        return None
    start = opening.start if isinstance(opening, Opening) else opening
    return max(1, math.ceil(start.timestamp() - now))
