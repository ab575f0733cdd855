"""In-memory stand-ins for the controller's collaborators: a clock, legs, a dialer, media.

They let the controller (gateway/call/b2bua.py) run with no socket and no event loop:
time moves only by :meth:`FakeScheduler.advance`, the steps the controller spawns run
when the test settles them, and every command a leg or the media engine receives is
recorded for the test to read.
"""

from __future__ import annotations

import heapq
import itertools
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from gateway.call.leg import EventSink, OutgoingCall, Target
from gateway.call.scheduler import Step
from gateway.dialplan import Dialplan
from gateway.media.engine import MediaError, MediaEventHandler, SessionStats, TimeoutHandler
from gateway.model.causes import Cause
from gateway.model.events import CallEvent, Dtmf, Failed, MediaUpdateAnswer, Side
from gateway.model.sdp import Connection, SessionDescription

OFFER = SessionDescription.parse(
    b"v=0\r\no=kiosk 1 1 IN IP4 127.0.0.10\r\ns=-\r\nc=IN IP4 127.0.0.10\r\nt=0 0\r\n"
    b"m=audio 4000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
    b"m=video 4002 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
)
ANSWER = SessionDescription.parse(
    b"v=0\r\no=station 1 1 IN IP4 127.0.0.20\r\ns=-\r\nc=IN IP4 127.0.0.20\r\nt=0 0\r\n"
    b"m=audio 5000 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n"
    b"m=video 5002 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
)
RELAY_HOST = "127.0.0.99"  # where the fake media engine says the relay listens


class FakeTimer:
    """A timer of the fake clock."""

    def __init__(self, when: float, callback: Callable[..., object], args: tuple[Any, ...]):
        self.when = when
        self.callback = callback
        self.args = args
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeScheduler:
    """A clock that moves only when told, and steps that run only when settled."""

    def __init__(self, start: float = 1_790_000_000.0) -> None:
        self.t = start
        self._timers: list[tuple[float, int, FakeTimer]] = []
        self._seq = itertools.count()
        self._ready: deque[Step] = deque()

    def now(self) -> float:
        return self.t

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> FakeTimer:
        timer = FakeTimer(self.t + max(0.0, delay), callback, args)
        heapq.heappush(self._timers, (timer.when, next(self._seq), timer))
        return timer

    def spawn(self, step: Step) -> None:
        self._ready.append(step)

    def settle(self) -> None:
        """Run every spawned step to its end (the fakes never make one wait)."""
        while self._ready:
            step = self._ready.popleft()
            try:
                step.send(None)
            except StopIteration:
                continue
            step.close()
            raise AssertionError("a controller step waited on something the fakes never give")

    def advance(self, seconds: float) -> None:
        """Move the clock, firing due timers in order, settling after each."""
        self.settle()
        end = self.t + seconds
        while self._timers and self._timers[0][0] <= end:
            when, _, timer = heapq.heappop(self._timers)
            if timer.cancelled:
                continue
            self.t = max(self.t, when)
            timer.callback(*timer.args)
            self.settle()
        self.t = end

    @property
    def pending_timers(self) -> int:
        return sum(1 for _, _, t in self._timers if not t.cancelled)


@dataclass(eq=False)
class FakeLeg:
    """A call leg that records the controller's commands and emits what a test says."""

    side: Side
    label: str = ""
    sink: EventSink | None = None
    protocol: str = "sip"
    target: Target | None = None
    call: OutgoingCall | None = None
    commands: list[tuple[str, Any]] = field(default_factory=list)
    ended: bool = False

    @property
    def dialog_ids(self) -> tuple[str, str, str | None] | None:
        return (f"cid-{self.label}", "ours", "theirs")

    def names(self) -> list[str]:
        return [name for name, _ in self.commands]

    def last(self, name: str) -> Any:
        for n, arg in reversed(self.commands):
            if n == name:
                return arg
        raise AssertionError(f"{self.side} leg never got {name}: {self.names()}")

    def emit(self, event: CallEvent) -> None:
        assert self.sink is not None, "the controller gave this leg no sink"
        self.sink(self, event)  # type: ignore[arg-type]

    # -- CallLeg ----------------------------------------------------------------------
    def ring(self, early_media: SessionDescription | None) -> None:
        self.commands.append(("ring", early_media))

    def answer(self, sdp: SessionDescription | None) -> None:
        self.commands.append(("answer", sdp))

    def complete(self, answer: SessionDescription) -> None:
        self.commands.append(("complete", answer))

    def reject(self, failure: Failed) -> None:
        self.commands.append(("reject", failure))
        self.ended = True

    def hangup(self, cause: Cause = Cause.NORMAL_CLEARING, reason: str = "") -> None:
        if not self.ended:
            self.commands.append(("hangup", cause))
        self.ended = True

    def update(self, offer: SessionDescription) -> None:
        self.commands.append(("update", offer))

    def update_answer(self, result: MediaUpdateAnswer) -> None:
        self.commands.append(("update_answer", result))

    def send_dtmf(self, event: Dtmf) -> None:
        self.commands.append(("send_dtmf", event))

    def fast_update(self) -> None:
        self.commands.append(("fast_update", None))


def static_targets(dialplan: Dialplan) -> dict[str, Target]:
    """Where the dialplan's static-address stations are, as the station monitor says."""
    return {
        s.id: Target(s.id, "sip", f"sip:{s.id}@test", (s.address.host, s.address.port))
        for p in dialplan.partners.values()
        for s in p.stations
        if s.address is not None
    }


class FakeDialer:
    """Dials fake station legs and keeps them in order."""

    def __init__(self) -> None:
        self.legs: list[FakeLeg] = []

    def dial(self, target: Target, call: OutgoingCall, label: str, sink: EventSink) -> FakeLeg:
        leg = FakeLeg(Side.B, label=label, sink=sink, target=target, call=call)
        self.legs.append(leg)
        return leg

    def to(self, station: str) -> list[FakeLeg]:
        return [leg for leg in self.legs if leg.target and leg.target.station == station]


def relayed(sdp: SessionDescription) -> SessionDescription:
    """What the fake engine makes of an SDP: the same formats at the relay's address."""
    return replace(sdp, connection=Connection(address=RELAY_HOST))


class FakeMedia:
    """A media engine that anchors nothing but counts what it was asked."""

    def __init__(self) -> None:
        self.sessions: set[str] = set()
        self.calls: Counter[str] = Counter()  # verb -> times asked
        self.log: list[tuple[str, str, Any]] = []  # (verb, call id, side or prompt)
        self.playing: dict[str, str] = {}
        self.fail_offer = False
        self.timeout_handler: TimeoutHandler | None = None
        self.event_handler: MediaEventHandler | None = None
        self.keyframe_sides: set[Side] = set()  # sides that negotiated PLI/FIR feedback

    def _note(self, verb: str, call_id: str, what: Any) -> None:
        self.calls[verb] += 1
        self.log.append((verb, call_id, what))

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        self.sessions.clear()

    async def offer(
        self, call_id: str, sdp: SessionDescription, *, from_side: Side
    ) -> SessionDescription:
        self._note("offer", call_id, from_side)
        if self.fail_offer:
            raise MediaError("no ports left")
        self.sessions.add(call_id)
        return relayed(sdp)

    async def answer(
        self, call_id: str, sdp: SessionDescription, *, from_side: Side
    ) -> SessionDescription:
        self._note("answer", call_id, from_side)
        if call_id not in self.sessions:
            raise MediaError(f"no session {call_id}")
        return relayed(sdp)

    async def delete(self, call_id: str) -> SessionStats | None:
        self._note("delete", call_id, None)
        self.playing.pop(call_id, None)
        if call_id not in self.sessions:
            return None
        self.sessions.discard(call_id)
        return SessionStats(call_id)

    async def stats(self, call_id: str) -> SessionStats | None:
        return SessionStats(call_id) if call_id in self.sessions else None

    async def play(self, call_id: str, prompt: str, *, to_side: Side = Side.A) -> None:
        self._note("play", call_id, prompt)
        if call_id not in self.sessions:
            raise MediaError(f"no session {call_id}")
        self.playing[call_id] = prompt

    async def stop_playing(self, call_id: str) -> None:
        self._note("stop_playing", call_id, None)
        self.playing.pop(call_id, None)

    def set_timeout_handler(self, handler: TimeoutHandler) -> None:
        self.timeout_handler = handler

    def set_event_handler(self, handler: MediaEventHandler) -> None:
        self.event_handler = handler

    async def request_keyframe(self, call_id: str, *, to_side: Side) -> bool:
        self._note("request_keyframe", call_id, to_side)
        return call_id in self.sessions and to_side in self.keyframe_sides

    @property
    def ports_in_use(self) -> int:
        return 4 * len(self.sessions)

    @property
    def ports_idle(self) -> int:
        return 0

    @property
    def session_count(self) -> int:
        return len(self.sessions)
