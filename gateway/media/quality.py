"""Per-stream reception quality, measured by the relay itself (sans-IO: no socket, no clock).

One :class:`StreamQuality` watches one direction of one relayed stream: the RTP one side
sends, as it reaches the relay. From the packets themselves it keeps the statistics of
RFC 3550 appendix A:

- A.1: the source's extended highest sequence number (cycles counted), its base, the
  probation of a new SSRC (``MIN_SEQUENTIAL`` packets in sequence) and the restart after
  a large jump, so that duplicates and reordered packets count as received and not as
  lost;
- A.3: packets expected (extended highest - base + 1) and lost (expected - received, which
  duplicates may make negative);
- A.8: the interarrival jitter estimate, updated per packet as
  ``J += (|D(i-1, i)| - J) / 16`` with the transit times measured in the stream's RTP
  clock; its mean and maximum over the call are kept too.

From the RTCP crossing the relay (RFC 3550 6.4) it keeps what the *receiver* of the
stream reported about it (fraction lost, cumulative lost, jitter), and the round-trip
time between the relay and the stream's *sender*: when the relay forwards an SR to a
side it notes the SR's NTP middle 32 bits and when it did; a later report block from
that side echoing them as LSR, with its DLSR, gives ``RTT = now - forwarded - DLSR``
(6.4.1, the computation a sender makes, done here for the relay's own leg).

The relay reads its clock once per drain of a socket, not per packet (see
:mod:`gateway.media.forwarding`): a packet's arrival time is that of its wake-up. At
call rates a wake-up finds one packet or two; the error is bounded by the drain time.
When SSRCs change or a source restarts, the figures of the finished run are folded into
the totals, so that a call's loss covers every source it had.

Cost, measured on the project's 2-core machines (December 2026): forwarding one packet
per wake-up in one process, 7.9 us of CPU per packet without this module and 8.9 us
with it (the clock read and :meth:`StreamQuality.rtp`); ``python -m bench.media --quick
--engines builtin --steps 100`` (100 audio+video calls, 18,000 packets/s), median of
four runs each, 15.3 us then 16.8 us per packet, no loss either way. Compiled with
mypyc the module saved nothing: the cost is the call from the interpreted hot path.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from gateway.media.rtp import (
    ReceiverReport,
    ReportBlock,
    RtpParseError,
    SenderReport,
    parse_rtcp_reports,
)

RTP_SEQ_MOD = 1 << 16
MAX_DROPOUT = 3000  # RFC 3550 A.1: a jump ahead of at most this much is loss
MAX_MISORDER = 100  # ... and behind by at most this much, a late or duplicate packet
MIN_SEQUENTIAL = 2  # packets in sequence before a new source is believed
_TS_MOD = 1 << 32
_TS_HALF = 1 << 31
_SR_KEPT = 8  # forwarded SRs remembered per side for LSR matching

_NO_RATES: dict[int, int] = {}  # shared, never written
# The second byte (marker and payload type), sequence number, timestamp and SSRC.
_HEADER = struct.Struct("!xBHII")


# init=False: the __init__ is written out so that mypyc compiles it (docs/architecture.md,
# "Compiled, optionally"; tests/model/test_written_out_inits.py checks it).
@dataclass(frozen=True, slots=True, init=False)
class QualityFigures:
    """What one :class:`StreamQuality` measured, in seconds and ratios."""

    expected: int  # RFC 3550 A.3, every source of the stream
    lost: int  # expected - received; negative with duplicates (RFC 3550 6.4.1)
    jitter: float  # mean of the A.8 estimate over the packets, seconds
    jitter_max: float  # seconds
    reported_fraction_lost: float | None  # the receiver's last RR/SR block, 0-1
    reported_lost: int | None  # the receiver's cumulative count
    reported_jitter: float | None  # seconds
    rtt: float | None  # mean round trip relay <-> the stream's sender, seconds
    rtt_max: float | None

    def __init__(
        self,
        expected: int,
        lost: int,
        jitter: float,
        jitter_max: float,
        reported_fraction_lost: float | None,
        reported_lost: int | None,
        reported_jitter: float | None,
        rtt: float | None,
        rtt_max: float | None,
    ) -> None:
        object.__setattr__(self, "expected", expected)
        object.__setattr__(self, "lost", lost)
        object.__setattr__(self, "jitter", jitter)
        object.__setattr__(self, "jitter_max", jitter_max)
        object.__setattr__(self, "reported_fraction_lost", reported_fraction_lost)
        object.__setattr__(self, "reported_lost", reported_lost)
        object.__setattr__(self, "reported_jitter", reported_jitter)
        object.__setattr__(self, "rtt", rtt)
        object.__setattr__(self, "rtt_max", rtt_max)

    @property
    def loss_ratio(self) -> float:
        """Lost over expected, 0 when nothing was expected or duplicates outnumber losses."""
        return self.lost / self.expected if self.expected > 0 and self.lost > 0 else 0.0


class StreamQuality:
    """Reception statistics of one direction of one stream (RFC 3550 A.1, A.3, A.8).

    ``rates`` maps payload types to their RTP clock rates (RFC 3551 6, or ``a=rtpmap``);
    ``default_rate`` serves any other payload type. :meth:`rtp` takes a packet of at
    least 12 bytes (the caller checks) and the arrival time in seconds.
    """

    __slots__ = (
        "_bad_seq",
        "_base_seq",
        "_cycles",
        "_default_rate",
        "_expected_done",
        "_jitter",
        "_jitter_count",
        "_jitter_max",
        "_jitter_sum",
        "_max_seq",
        "_probation",
        "_pt",
        "_rate",
        "_rates",
        "_received",
        "_received_done",
        "_rtt_count",
        "_rtt_max",
        "_rtt_sum",
        "_sr_forwarded",
        "_steady",
        "_transit",
        "reported_fraction_lost",
        "reported_jitter",
        "reported_lost",
        "ssrc",
    )

    def __init__(self, rates: dict[int, int] | None = None, default_rate: int = 8000) -> None:
        self._rates: dict[int, int] = rates if rates is not None else _NO_RATES
        self._default_rate = default_rate
        self._pt = -1
        self._rate = default_rate
        self.ssrc: int | None = None
        self._steady = -1  # the SSRC when its next packet may take the straight path
        self._probation = MIN_SEQUENTIAL
        self._max_seq = 0
        self._base_seq = 0
        self._bad_seq = RTP_SEQ_MOD + 1
        self._cycles = 0
        self._received = 0
        # runs ended by an SSRC change or a restart (A.1), folded in
        self._expected_done = 0
        self._received_done = 0
        self._transit: float | None = None
        self._jitter = 0.0  # A.8 estimate, seconds
        self._jitter_sum = 0.0
        self._jitter_count = 0
        self._jitter_max = 0.0
        self._sr_forwarded: dict[int, float] = {}
        self._rtt_sum = 0.0
        self._rtt_count = 0
        self._rtt_max = 0.0
        self.reported_fraction_lost: float | None = None
        self.reported_lost: int | None = None
        self.reported_jitter: float | None = None

    def set_rates(self, rates: dict[int, int], default_rate: int) -> None:
        """The clock rates of the payload types the stream negotiated (RFC 4566 6 rtpmap);
        ``rates`` is kept, not copied (both legs of a stream share it), never changed."""
        self._rates = rates
        self._default_rate = default_rate
        self._pt = -1  # looked up again at the next packet
        self._steady = -1

    # --- RTP: RFC 3550 A.1, A.8 ----------------------------------------------------------

    def rtp(self, packet: bytes | bytearray | memoryview, now: float) -> None:
        """Account for one RTP packet that arrived at ``now`` (seconds).

        The usual packet (same source, in sequence or a little ahead, same payload type)
        needs only the sequence bookkeeping below; the rest goes to :meth:`_unusual`.
        """
        second, seq, ts, ssrc = _HEADER.unpack_from(packet)
        max_seq = self._max_seq
        if (
            ssrc != self._steady  # -1 unless validated, with a transit time, on one clock
            or second & 0x7F != self._pt
            or (seq - max_seq) & 0xFFFF >= MAX_DROPOUT
        ):
            self._unusual(second, seq, ts, ssrc, now)
            self._steady = (
                self.ssrc
                if self.ssrc is not None and not self._probation and self._transit is not None
                else -1
            )
            return
        if seq < max_seq:  # wrapped (A.1)
            self._cycles += RTP_SEQ_MOD
        self._max_seq = seq
        self._received += 1
        self._transit_time(ts, now)

    def _unusual(self, second: int, seq: int, ts: int, ssrc: int, now: float) -> None:
        """A.1 in full: a new source, probation, a jump, a late or repeated packet."""
        if ssrc != self.ssrc:
            self._new_source(ssrc, seq)
            self._jitter_update(second, ts, now)
            return
        if self._probation:
            # the jitter runs from the source's first packet (A.8 asks nothing more)
            self._jitter_update(second, ts, now)
            if seq == (self._max_seq + 1) & 0xFFFF:
                self._probation -= 1
                self._max_seq = seq
                if self._probation:
                    return
                self._init_seq(seq)
                self._received += 1
                return
            self._probation = MIN_SEQUENTIAL - 1
            self._max_seq = seq
            return
        udelta = (seq - self._max_seq) & 0xFFFF
        if udelta < MAX_DROPOUT:
            if seq < self._max_seq:  # wrapped
                self._cycles += RTP_SEQ_MOD
            self._max_seq = seq
        elif udelta <= RTP_SEQ_MOD - MAX_MISORDER:
            # a very large jump: believed only when the next packet follows it
            if seq != self._bad_seq:
                self._bad_seq = (seq + 1) & 0xFFFF
                return
            self._fold()
            self._init_seq(seq)
            self._transit = None  # a restarted source: its timestamps start afresh
        # else a duplicate or a reordered packet: received, the highest unchanged
        self._received += 1
        self._jitter_update(second, ts, now)

    def _jitter_update(self, second: int, ts: int, now: float) -> None:
        pt = second & 0x7F
        if pt != self._pt:
            self._pt = pt
            self._rate = self._rates.get(pt, self._default_rate)
            self._transit = None  # another clock: transit times do not compare
        self._transit_time(ts, now)

    def _transit_time(self, ts: int, now: float) -> None:
        """A.8: the packet's transit time, in timestamp units, moves the jitter estimate
        by 1/16 of its difference from the previous packet's (none after a restart)."""
        rate = self._rate
        transit = now * rate - ts
        previous = self._transit
        self._transit = transit
        if previous is None:
            return
        d = transit - previous
        if d < 0:
            d = -d
        if d > _TS_HALF:  # the RTP timestamp wrapped between the two packets
            d = _TS_MOD - d
        jitter = self._jitter + (d / rate - self._jitter) / 16
        self._jitter = jitter
        self._jitter_sum += jitter
        self._jitter_count += 1
        if jitter > self._jitter_max:
            self._jitter_max = jitter

    def _new_source(self, ssrc: int, seq: int) -> None:
        """A new SSRC (RFC 3550 8.2, A.1): fold the old one in, put the new on probation."""
        if self.ssrc is not None:
            self._fold()
        self.ssrc = ssrc
        self._probation = MIN_SEQUENTIAL - 1
        self._max_seq = seq
        self._received = 0
        self._cycles = 0
        self._base_seq = seq
        self._bad_seq = RTP_SEQ_MOD + 1
        self._transit = None
        self._jitter = 0.0

    def _init_seq(self, seq: int) -> None:
        self._base_seq = seq
        self._max_seq = seq
        self._bad_seq = RTP_SEQ_MOD + 1
        self._cycles = 0
        self._received = 0

    def _fold(self) -> None:
        if not self._probation:
            self._expected_done += self._expected_now()
            self._received_done += self._received
        self._received = 0
        self._cycles = 0
        self._base_seq = self._max_seq

    def _expected_now(self) -> int:
        if self.ssrc is None or self._probation:
            return 0
        return self._cycles + self._max_seq - self._base_seq + 1

    @property
    def expected(self) -> int:
        """Packets expected, every source of the stream (RFC 3550 A.3)."""
        return self._expected_done + self._expected_now()

    @property
    def received(self) -> int:
        """Packets received from validated sources, duplicates included (RFC 3550 A.1)."""
        return self._received_done + (0 if self._probation else self._received)

    @property
    def lost(self) -> int:
        """Expected minus received (RFC 3550 A.3): negative when duplicates outnumber losses."""
        return self.expected - self.received

    @property
    def jitter(self) -> float:
        """The current A.8 interarrival jitter estimate, in seconds."""
        return self._jitter

    # --- RTCP: RFC 3550 6.4 --------------------------------------------------------------

    def sr_forwarded(self, ntp_middle: int, now: float) -> None:
        """An SR (its NTP middle 32 bits) was sent on to this stream's sender at ``now``."""
        kept = self._sr_forwarded
        if len(kept) >= _SR_KEPT:
            del kept[next(iter(kept))]
        kept[ntp_middle] = now

    def sender_report_block(self, block: ReportBlock, now: float) -> None:
        """A report block from this stream's sender, about what it receives: its LSR and
        DLSR give the round trip relay <-> sender (RFC 3550 6.4.1)."""
        if block.lsr == 0:
            return
        forwarded = self._sr_forwarded.get(block.lsr)
        if forwarded is None:
            return
        rtt = now - forwarded - block.dlsr / 65536
        if rtt < 0:  # the sender's DLSR is coarse: a loopback RTT may come out below 0
            rtt = 0.0
        self._rtt_sum += rtt
        self._rtt_count += 1
        if rtt > self._rtt_max:
            self._rtt_max = rtt

    def receiver_report_block(self, block: ReportBlock) -> None:
        """A report block from this stream's receiver, about this stream (RFC 3550 6.4.1)."""
        self.reported_fraction_lost = block.fraction_lost / 256
        self.reported_lost = block.cumulative_lost
        rate = self._rate if self._pt >= 0 else self._default_rate
        self.reported_jitter = block.jitter / rate

    def figures(self) -> QualityFigures:
        """Everything measured so far."""
        count = self._jitter_count
        return QualityFigures(
            expected=self.expected,
            lost=self.lost,
            jitter=self._jitter_sum / count if count else 0.0,
            jitter_max=self._jitter_max,
            reported_fraction_lost=self.reported_fraction_lost,
            reported_lost=self.reported_lost,
            reported_jitter=self.reported_jitter,
            rtt=self._rtt_sum / self._rtt_count if self._rtt_count else None,
            rtt_max=self._rtt_max if self._rtt_count else None,
        )


def observe_rtcp(
    packet: bytes | bytearray | memoryview,
    sender: StreamQuality,
    receiver: StreamQuality,
    now: float,
) -> bool:
    """Read the SR/RR of an RTCP compound packet sent by one side (RFC 3550 6.4).

    ``sender`` is the quality of the stream this side sends, ``receiver`` that of the
    stream it receives (which its report blocks are about). Its SRs are noted on
    ``receiver`` as forwarded to the other side (for that side's LSR); its report
    blocks give ``receiver`` what was reported, and ``sender`` a round-trip sample when
    their LSR echoes an SR the relay forwarded to this side. False when the packet does
    not parse (it is relayed all the same).
    """
    try:
        reports = parse_rtcp_reports(packet)
    except RtpParseError:
        return False
    for report in reports:
        if isinstance(report, SenderReport):
            receiver.sr_forwarded(report.ntp_middle, now)
        for block in report.reports:
            if receiver.ssrc is None or block.ssrc == receiver.ssrc:
                receiver.receiver_report_block(block)
            sender.sender_report_block(block, now)
    return True


def clock_rates(rtpmaps: list[str], kind: str) -> tuple[dict[int, int], int]:
    """Clock rates by payload type from ``a=rtpmap`` values (RFC 4566 6, ``<pt>
    <name>/<rate>``), and the default for the others: 90000 for video (RFC 3551 5),
    8000 otherwise (RFC 3551 6: every static audio type but a few is 8000)."""
    rates: dict[int, int] = {0: 8000, 8: 8000, 9: 8000, 18: 8000, 34: 90000, 31: 90000}
    for value in rtpmaps:
        parts = value.split(maxsplit=1)
        if len(parts) != 2 or not parts[0].isdigit():
            continue
        encoding = parts[1].split("/")
        if len(encoding) >= 2 and encoding[1].isdigit() and int(encoding[1]) > 0:
            rates[int(parts[0])] = int(encoding[1])
    return rates, 90000 if kind == "video" else 8000


__all__ = [
    "MAX_DROPOUT",
    "MAX_MISORDER",
    "MIN_SEQUENTIAL",
    "QualityFigures",
    "ReceiverReport",
    "StreamQuality",
    "clock_rates",
    "observe_rtcp",
]
