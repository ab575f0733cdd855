"""What is kept of a call once it ended: the call record and its outcome label."""

from __future__ import annotations

from dataclasses import dataclass
from statistics import fmean

from gateway.media.engine import DirectionStats, SessionStats
from gateway.model.causes import Cause, Refusal
from gateway.state.records import RecordRow

# The outcome of a call that never connected, by the cause it was released with.
_OUTCOME_OF_CAUSE = {
    Cause.USER_BUSY: "busy",
    Cause.NO_USER_RESPONDING: "unavailable",
    Cause.NO_ANSWER: "unavailable",
    Cause.SUBSCRIBER_ABSENT: "unavailable",
    Cause.NORMAL_UNSPECIFIED: "unavailable",
    Cause.UNALLOCATED_NUMBER: "not_found",
    Cause.NO_ROUTE_TO_DESTINATION: "not_found",
    Cause.CALL_REJECTED: "forbidden",
}


def outcome_of(*, connected: bool, cause: Cause, rejected: bool) -> str:
    """The outcome label of a call (metrics and records; a bounded set of values)."""
    if connected:
        return "completed"
    if not rejected:
        return "abandoned"
    return _OUTCOME_OF_CAUSE.get(cause, "failed")


# init=False: the __init__ is written out so that mypyc compiles it (docs/architecture.md,
# "Compiled, optionally"; tests/model/test_written_out_inits.py checks it).
@dataclass(slots=True, init=False)
class CallRecord:
    """One ended call (exported by the admin API and counted by the metrics)."""

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
    cause: Cause
    refusal: Refusal | None = None  # when the gateway itself refused the call
    media: SessionStats | None = None
    waited: float = 0.0  # seconds spent in the partner's queue
    queued: bool = False
    kiosk_protocol: str = "sip"
    station_protocol: str | None = None

    def __init__(
        self,
        id: str,
        kiosk: str,
        site: str,
        service: str,
        partner: str,
        station: str | None,
        started: float,
        answered: float | None,
        ended: float,
        outcome: str,
        cause: Cause,
        refusal: Refusal | None = None,
        media: SessionStats | None = None,
        waited: float = 0.0,
        queued: bool = False,
        kiosk_protocol: str = "sip",
        station_protocol: str | None = None,
    ) -> None:
        self.id = id
        self.kiosk = kiosk
        self.site = site
        self.service = service
        self.partner = partner
        self.station = station
        self.started = started
        self.answered = answered
        self.ended = ended
        self.outcome = outcome
        self.cause = cause
        self.refusal = refusal
        self.media = media
        self.waited = waited
        self.queued = queued
        self.kiosk_protocol = kiosk_protocol
        self.station_protocol = station_protocol

    @property
    def duration(self) -> float:
        """Seconds between answer and end (0 when never answered)."""
        return self.ended - self.answered if self.answered is not None else 0.0

    def row(self) -> RecordRow:
        """The record as the durable store keeps it (no media detail but packet totals)."""
        to_station = to_kiosk = 0
        streams = self.media.streams if self.media is not None else []
        if self.media is not None:
            for stream in self.media.streams:
                to_station += stream.a_to_b.rtp_packets
                to_kiosk += stream.b_to_a.rtp_packets
        loss_out, loss_in, jitter_out, jitter_in, rtt_kiosk, rtt_station = _quality_columns(
            self.media
        )
        return RecordRow(
            id=self.id,
            kiosk=self.kiosk,
            site=self.site,
            service=self.service,
            partner=self.partner,
            station=self.station,
            kiosk_protocol=self.kiosk_protocol,
            station_protocol=self.station_protocol,
            started=self.started,
            queued=self.queued,
            waited=round(self.waited, 3),
            answered=self.answered,
            ended=self.ended,
            duration=round(self.duration, 3),
            outcome=self.outcome,
            cause=int(self.cause),
            refusal=self.refusal.value if self.refusal is not None else None,
            packets_to_station=to_station,
            packets_to_kiosk=to_kiosk,
            loss_pct_to_station=loss_out,
            loss_pct_to_kiosk=loss_in,
            jitter_ms_to_station=jitter_out,
            jitter_ms_to_kiosk=jitter_in,
            rtt_ms_kiosk=rtt_kiosk,
            rtt_ms_station=rtt_station,
            transcoded=next((s.transcoded for s in streams if s.transcoded), None),
            audio_only=self.media.audio_only if self.media is not None else None,
        )


def _loss_pct(directions: list[DirectionStats]) -> float | None:
    """Lost over expected, all streams (RFC 3550 A.3), else the worst reported fraction."""
    expected = sum(d.expected for d in directions)
    if expected > 0:
        return round(100 * sum(max(d.lost, 0) for d in directions) / expected, 3)
    reported = [
        d.reported_fraction_lost for d in directions if d.reported_fraction_lost is not None
    ]
    return round(100 * max(reported), 3) if reported else None


def _jitter_ms(directions: list[DirectionStats]) -> float | None:
    """The worst stream's mean interarrival jitter (RFC 3550 A.8), else the worst reported."""
    values = [d.jitter for d in directions if d.jitter is not None]
    if not values:
        values = [d.reported_jitter for d in directions if d.reported_jitter is not None]
    return round(1000 * max(values), 3) if values else None


def _rtt_ms(directions: list[DirectionStats]) -> float | None:
    """The mean round trip between the engine and the side sending ``directions``."""
    values = [d.rtt for d in directions if d.rtt is not None]
    return round(1000 * fmean(values), 3) if values else None


QualityColumns = tuple[
    float | None, float | None, float | None, float | None, float | None, float | None
]


def _quality_columns(media: SessionStats | None) -> QualityColumns:
    """The record's media quality columns, side A the kiosk and side B the station: loss
    to the station and to the kiosk, jitter the same way, round trip to each side."""
    if media is None:
        return None, None, None, None, None, None
    from_kiosk = [s.a_to_b for s in media.streams]
    from_station = [s.b_to_a for s in media.streams]
    return (
        _loss_pct(from_kiosk),
        _loss_pct(from_station),
        _jitter_ms(from_kiosk),
        _jitter_ms(from_station),
        _rtt_ms(from_kiosk),
        _rtt_ms(from_station),
    )
