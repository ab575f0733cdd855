"""Per-stream quality (RFC 3550 A.1, A.3, A.8, 6.4): the sans-IO core on a fake clock, the
RTCP reports of real captures, and real captures replayed through the relay on loopback,
with tshark (``-z rtp,streams``) as the independent reference for loss and jitter."""

from __future__ import annotations

import asyncio
import functools
import socket
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from harness import (
    ROOT,
    VECTORS,
    GatewayProcess,
    pjsua_account,
    rtp_ports,
    start_capture,
    tshark_output,
    wait_for,
)
from peers import start_pjagent

from gateway.call.records import CallRecord
from gateway.media.engine import DirectionStats, SessionStats, StreamStats
from gateway.media.quality import MIN_SEQUENTIAL, StreamQuality, clock_rates, observe_rtcp
from gateway.media.relay import RelayEngine
from gateway.media.rtp import (
    ReceiverReport,
    ReportBlock,
    RtpPacket,
    RtpParseError,
    SenderReport,
    parse_rtcp_reports,
)
from gateway.metrics import GatewayMetrics
from gateway.model.causes import Cause
from gateway.model.events import Side
from gateway.model.sdp import SessionDescription

HOST = "127.0.0.1"
EXAMPLE = ROOT / "dialplans" / "example.yaml"
RTP_VECTORS = VECTORS / "rtp"
H323_VECTORS = VECTORS / "h323"
# tshark 4.0 takes dynamic payload type 100 for RFC 4733 events unless told otherwise;
# in rtp_sip_g722_h264.pcapng it is H.264 (its SDP says so), a 90 kHz clock.
TSHARK_RTP_PREFS = [
    "-o",
    "rtp.heuristic_rtp:TRUE",
    "-o",
    "rtpevent.event_payload_type_value:101",
    "-o",
    "h264.dynamic.payload.type:100",
]
RATES = {0: 8000, 8: 8000, 9: 8000, 100: 90000, 101: 8000}


# --- the sans-IO core on a fake clock ------------------------------------------------------


def packet(seq: int, ts: int = 0, ssrc: int = 0x1234, pt: int = 0) -> bytes:
    return RtpPacket(pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc, payload=bytes(20)).serialize()


def feed(q: StreamQuality, seqs: list[int], *, ssrc: int = 0x1234, start: float = 0.0) -> None:
    """Packets 20 ms apart on the clock and in timestamps (no jitter), in the given order."""
    for i, seq in enumerate(seqs):
        q.rtp(packet(seq, seq * 160, ssrc), start + i * 0.02)


def test_in_order_stream_loses_nothing_and_has_no_jitter() -> None:
    q = StreamQuality(RATES)
    for seq in range(100):
        q.rtp(packet(1000 + seq, seq * 160), seq * 0.02)
    # A.1: the first packet of a new source is its probation; counting starts at the second
    assert (q.expected, q.received, q.lost) == (99, 99, 0)
    figures = q.figures()
    assert figures.loss_ratio == 0.0 and figures.jitter == pytest.approx(0.0, abs=1e-9)


def test_losses_are_expected_minus_received() -> None:
    q = StreamQuality(RATES)
    seqs = [s for s in range(200) if s % 10 != 5]  # 20 lost, none at the start
    feed(q, seqs)
    assert (q.expected, q.lost) == (199, 20)
    assert q.figures().loss_ratio == pytest.approx(20 / 199)


def test_sequence_wrap_counts_a_cycle() -> None:
    q = StreamQuality(RATES)
    seqs = list(range(65500, 65536)) + list(range(0, 100))
    seqs.remove(10)  # one lost after the wrap
    feed(q, seqs)
    assert q.expected == 135 and q.lost == 1  # 65501..65535 then 0..99 (A.1 cycles)


def test_reordered_packets_are_not_lost() -> None:
    q = StreamQuality(RATES)
    seqs = list(range(50))
    seqs[20], seqs[21] = seqs[21], seqs[20]
    seqs[30], seqs[33] = seqs[33], seqs[30]
    feed(q, seqs)
    assert (q.expected, q.lost) == (49, 0)


def test_duplicates_make_the_loss_negative_and_the_ratio_zero() -> None:
    q = StreamQuality(RATES)
    feed(q, [*range(10), 5, 6, *range(10, 20)])
    assert (q.expected, q.received, q.lost) == (19, 21, -2)  # RFC 3550 6.4.1 allows it
    assert q.figures().loss_ratio == 0.0
    assert DirectionStats(expected=19, lost=-2).loss_ratio == 0.0


def test_a_large_jump_is_believed_only_when_the_next_packet_follows() -> None:
    q = StreamQuality(RATES)
    feed(q, list(range(100)))
    q.rtp(packet(30000), 2.0)  # a stray packet far ahead: not counted, no loss
    assert (q.expected, q.lost) == (99, 0)
    feed(q, list(range(100, 110)), start=2.02)
    assert (q.expected, q.lost) == (109, 0)
    q.rtp(packet(40000), 3.0)
    q.rtp(packet(40001), 3.02)  # now the source restarted there (A.1 bad_seq)
    q.rtp(packet(40003), 3.06)
    assert q.expected == 109 + 3 and q.lost == 1  # counted from 40001


def test_ssrc_change_goes_through_probation_and_keeps_the_totals() -> None:
    q = StreamQuality(RATES)
    feed(q, [s for s in range(100) if s != 50], ssrc=0xA)
    assert (q.expected, q.lost) == (99, 1)
    # a new source: its first MIN_SEQUENTIAL - 1 packets in sequence are probation
    q.rtp(packet(7000, ssrc=0xB), 3.0)
    assert q.ssrc == 0xB and (q.expected, q.lost) == (99, 1)
    q.rtp(packet(7001, ssrc=0xB), 3.02)
    q.rtp(packet(7003, ssrc=0xB), 3.06)
    assert MIN_SEQUENTIAL == 2
    assert (q.expected, q.lost) == (99 + 3, 2)


def test_a_new_source_out_of_sequence_is_never_believed() -> None:
    q = StreamQuality(RATES)
    for i, seq in enumerate([5, 9, 20, 31, 4000]):
        q.rtp(packet(seq, ssrc=0xC), i * 0.02)
    assert (q.expected, q.received, q.lost) == (0, 0, 0)


def independent_jitter(times: list[float], stamps: list[int], rate: int) -> list[float]:
    """RFC 3550 6.4.1 written out plainly: J(i) = J(i-1) + (|D(i-1,i)| - J(i-1)) / 16."""
    out: list[float] = []
    j = 0.0
    for i in range(1, len(times)):
        d = (times[i] - times[i - 1]) - (stamps[i] - stamps[i - 1]) / rate
        j += (abs(d) - j) / 16
        out.append(j)
    return out


def test_jitter_follows_a8_with_timestamp_wrap() -> None:
    q = StreamQuality(RATES)
    times: list[float] = []
    stamps: list[int] = []
    t = 0.0
    for i in range(300):
        t += 0.02 + (0.004 if i % 3 == 0 else -0.001) + (0.01 if i == 150 else 0.0)
        times.append(t)
        stamps.append(0xFFFFFFFF - 160 * 100 + 160 * i)  # wraps at i == 100
    for i, (when, ts) in enumerate(zip(times, stamps, strict=True)):
        q.rtp(packet(i, ts), when)
    expected = independent_jitter(times, stamps, 8000)  # from the source's first packet
    assert q.jitter == pytest.approx(expected[-1], rel=1e-6)
    figures = q.figures()
    assert figures.jitter == pytest.approx(sum(expected) / len(expected), rel=1e-6)
    assert figures.jitter_max == pytest.approx(max(expected), rel=1e-6)
    assert 0.001 < figures.jitter < 0.01


def test_video_jitter_uses_the_rtpmap_clock() -> None:
    rates, default = clock_rates(["96 H264/90000", "97 VP8/90000", "bad"], "video")
    assert rates[96] == 90000 and default == 90000
    assert clock_rates(["9 G722/8000", "111 opus/48000/2"], "audio")[0][111] == 48000
    q = StreamQuality(rates, default)
    # 30 frames/s, each frame's packet 2 ms late every other frame: |D| = 2 ms
    for i in range(200):
        q.rtp(packet(i, i * 3000, pt=96), i / 30 + (0.002 if i % 2 else 0.0))
    assert q.jitter == pytest.approx(0.002, rel=0.01)


def report(lsr: int = 0, dlsr: int = 0, ssrc: int = 0x1234) -> ReportBlock:
    return ReportBlock(ssrc, 64, 7, 1000, 800, lsr, dlsr)


def test_rtt_from_an_lsr_echoing_a_forwarded_sr() -> None:
    sender = StreamQuality(RATES)  # the stream side X sends; X reports on what it receives
    sender.sr_forwarded(0xE155603E, 100.0)
    sender.sender_report_block(report(lsr=0x12345678, dlsr=100), 100.5)  # unknown SR
    sender.sender_report_block(report(lsr=0, dlsr=0), 100.5)  # no SR yet
    assert sender.figures().rtt is None
    sender.sender_report_block(report(lsr=0xE155603E, dlsr=65536 // 4), 100.3)
    figures = sender.figures()
    assert figures.rtt == pytest.approx(0.05, abs=1e-4)
    assert figures.rtt_max == figures.rtt


def test_reported_figures_come_from_the_receiver() -> None:
    q = StreamQuality(RATES)
    feed(q, list(range(10)))
    q.receiver_report_block(report())
    f = q.figures()
    assert f.reported_fraction_lost == 0.25 and f.reported_lost == 7
    assert f.reported_jitter == pytest.approx(0.1)  # 800 units at 8 kHz


def test_broken_rtcp_is_ignored() -> None:
    q1, q2 = StreamQuality(), StreamQuality()
    assert observe_rtcp(b"\x80\xc9\x00\x07\x00\x00", q1, q2, 0.0) is False
    with pytest.raises(RtpParseError):
        parse_rtcp_reports(b"\x81\xc9\x00\x01\x00\x00\x00\x01")  # one block claimed, none there


# --- RTCP SR/RR of real captures ----------------------------------------------------------

RTCP_FIELDS = (
    "frame.time_epoch",
    "udp.srcport",
    "udp.payload",
    "rtcp.pt",
    "rtcp.senderssrc",
    "rtcp.timestamp.ntp.msw",
    "rtcp.timestamp.ntp.lsw",
    "rtcp.timestamp.rtp",
    "rtcp.sender.packetcount",
    "rtcp.sender.octetcount",
    "rtcp.ssrc.identifier",
    "rtcp.ssrc.fraction",
    "rtcp.ssrc.cum_nr",
    "rtcp.ssrc.high_seq",
    "rtcp.ssrc.jitter",
    "rtcp.ssrc.lsr",
    "rtcp.ssrc.dlsr",
)


@functools.cache
def tshark_rtcp(path: Path) -> tuple[dict[str, str], ...]:
    args = ["-n", "-o", "rtcp.heuristic_rtcp:TRUE", "-Y", "rtcp", "-T", "fields"]
    args += ["-E", "separator=/t", "-E", "occurrence=a", "-E", "aggregator=,"]
    for name in RTCP_FIELDS:
        args += ["-e", name]
    out = tshark_output(*args, capture=path).decode()  # real captures only: cached
    return tuple(dict(zip(RTCP_FIELDS, line.split("\t"), strict=True)) for line in out.splitlines())


RTCP_CAPTURES = [
    "fax_t38_h323_tgw.pcapng",
    "fax_t38_h323_ogw.pcapng",
    "h323_ss_hold_resume.pcapng",
    "h323_ss_hold_transfer.pcapng",
]


@pytest.mark.parametrize("name", RTCP_CAPTURES)
def test_sr_and_rr_of_real_captures_read_as_tshark_reads_them(name: str) -> None:
    rows = tshark_rtcp(H323_VECTORS / name)
    assert rows, "the capture holds RTCP"
    for row in rows:
        reports = parse_rtcp_reports(bytes.fromhex(row["udp.payload"]))
        kinds = [int(pt) for pt in row["rtcp.pt"].split(",") if int(pt) in (200, 201)]
        assert [200 if isinstance(r, SenderReport) else 201 for r in reports] == kinds
        report = reports[0]
        assert report.ssrc == int(row["rtcp.senderssrc"], 16)
        if isinstance(report, SenderReport):
            ntp = int(row["rtcp.timestamp.ntp.msw"]) << 32 | int(row["rtcp.timestamp.ntp.lsw"])
            assert report.ntp_timestamp == ntp
            assert report.rtp_timestamp == int(row["rtcp.timestamp.rtp"])
            assert report.packet_count == int(row["rtcp.sender.packetcount"])
            assert report.octet_count == int(row["rtcp.sender.octetcount"])
        else:
            assert isinstance(report, ReceiverReport)
        blocks = report.reports
        if not row["rtcp.ssrc.fraction"]:
            assert blocks == ()
            continue
        assert len(blocks) == 1
        (block,) = blocks
        # the SDES chunk's SSRC is listed after the block's by this field
        assert block.ssrc == int(row["rtcp.ssrc.identifier"].split(",")[0], 16)
        assert block.fraction_lost == int(row["rtcp.ssrc.fraction"])
        assert block.cumulative_lost == int(row["rtcp.ssrc.cum_nr"])
        assert block.highest_sequence == int(row["rtcp.ssrc.high_seq"])
        assert block.jitter == int(row["rtcp.ssrc.jitter"])
        assert block.lsr == int(row["rtcp.ssrc.lsr"])
        assert block.dlsr == int(row["rtcp.ssrc.dlsr"])


def test_round_trip_time_from_the_sr_and_rr_of_a_real_call() -> None:
    """Frame 1293 of the Cisco capture is an SR from 10.10.245.5; frame 1304, an SR from
    10.10.245.3 whose block echoes it (LSR 0xe155603e, DLSR 14417/65536 s). Seen from
    the capture point, as the relay sees its legs: RTT = A - LSR time - DLSR."""
    rows = tshark_rtcp(H323_VECTORS / "fax_t38_h323_tgw.pcapng")
    sr = next(r for r in rows if r["rtcp.senderssrc"] == "0x03d5f505" and "200" in r["rtcp.pt"])
    rr = next(r for r in rows if r["rtcp.ssrc.lsr"] not in ("", "0"))
    side_5 = StreamQuality(RATES)  # what 10.10.245.5 sends
    side_3 = StreamQuality(RATES)  # what 10.10.245.3 sends
    assert observe_rtcp(bytes.fromhex(sr["udp.payload"]), side_5, side_3, 0.0)
    elapsed = float(rr["frame.time_epoch"]) - float(sr["frame.time_epoch"])
    assert observe_rtcp(bytes.fromhex(rr["udp.payload"]), side_3, side_5, elapsed)
    expected = elapsed - int(rr["rtcp.ssrc.dlsr"]) / 65536
    assert side_3.figures().rtt == pytest.approx(expected, abs=1e-6)
    assert 0 < expected < 0.002  # 0.68 ms: two Cisco gateways on one LAN
    # what 10.10.245.3 reported about 10.10.245.5's stream: no loss, no jitter
    assert side_5.figures().reported_lost == 0 and side_5.figures().reported_jitter == 0


# --- real captures against tshark ---------------------------------------------------------


@dataclass(frozen=True)
class TsharkStream:
    """One line of tshark's ``-z rtp,streams``."""

    src_port: int
    dst_port: int
    ssrc: int
    packets: int
    lost: int
    mean_jitter: float  # ms
    max_jitter: float  # ms


def tshark_streams(path: Path) -> list[TsharkStream]:
    cmd = ["tshark", "-n", "-q", "-r", str(path), *TSHARK_RTP_PREFS, "-z", "rtp,streams"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=120).stdout
    streams = []
    for line in out.splitlines():
        words = line.split()
        if len(words) < 17 or not words[6].startswith("0x"):
            continue
        streams.append(
            TsharkStream(
                src_port=int(words[3]),
                dst_port=int(words[5]),
                ssrc=int(words[6], 16),
                packets=int(words[8]),
                lost=int(words[9]),
                mean_jitter=float(words[15]),
                max_jitter=float(words[16]),
            )
        )
    return streams


def capture_rtp(path: Path) -> list[tuple[float, int, int, bytes]]:
    """(time, UDP source port, destination port, payload) of every RTP packet."""
    cmd = ["tshark", "-n", "-r", str(path), *TSHARK_RTP_PREFS, "-Y", "rtp", "-T", "fields"]
    cmd += ["-e", "frame.time_epoch", "-e", "udp.srcport", "-e", "udp.dstport"]
    cmd += ["-e", "udp.payload"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=120).stdout
    rows = []
    for line in out.splitlines():
        when, src, dst, payload = line.split("\t")
        rows.append((float(when), int(src), int(dst), bytes.fromhex(payload)))
    return rows


def quality_of(
    rows: list[tuple[float, int, int, bytes]], src: int, dst: int
) -> tuple[StreamQuality, float, float]:
    """The core fed one stream of a capture at its capture times; with the mean and the
    maximum of its A.8 estimate taken as tshark takes them: the packets with the marker
    bit left out (for audio talkspurts), and a running mean that weighs each new value
    against the count of every packet seen so far, markers included (tshark 4.0)."""
    q = StreamQuality(RATES)
    mean = 0.0
    seen = 0
    highest = 0.0
    for when, s, d, payload in rows:
        if (s, d) == (src, dst):
            q.rtp(payload, when)
            if seen and not payload[1] & 0x80:
                mean = (mean * seen + q.jitter) / (seen + 1)
                highest = max(highest, q.jitter)
            seen += 1
    return q, mean, highest


def assert_jitter_close(ours: float, theirs_ms: float, *, abs_ms: float, rel: float) -> None:
    assert ours * 1000 == pytest.approx(theirs_ms, abs=abs_ms, rel=rel), (ours * 1000, theirs_ms)


def lossy_copy(source: Path, target: Path, every: int) -> None:
    """``source`` without every ``every``-th RTP packet of each stream (never the first
    few, which a new source's probation consumes): editcap, not our code, drops them."""
    cmd = ["tshark", "-n", "-r", str(source), *TSHARK_RTP_PREFS, "-Y", "rtp", "-T", "fields"]
    cmd += ["-e", "frame.number", "-e", "rtp.ssrc"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=120).stdout
    seen: dict[str, int] = {}
    drop: list[str] = []
    for line in out.splitlines():
        number, ssrc = line.split("\t")
        seen[ssrc] = seen.get(ssrc, 0) + 1
        if seen[ssrc] > 5 and seen[ssrc] % every == 0:
            drop.append(number)
    subprocess.run(["editcap", str(source), str(target), *drop], check=True, timeout=60)


@pytest.mark.parametrize("name", ["rtp_sip_g711ulaw_20ms.pcapng", "rtp_sip_g722_h264.pcapng"])
@pytest.mark.parametrize("every", [0, 17])
def test_core_on_captures_matches_tshark(name: str, every: int, tmp_path: Path) -> None:
    path = RTP_VECTORS / name
    if every:
        lossy = tmp_path / "lossy.pcapng"
        lossy_copy(path, lossy, every)
        path = lossy
    rows = capture_rtp(path)
    streams = tshark_streams(path)
    assert len(streams) == (2 if "g711" in name else 4)
    for ref in streams:
        q, mean, highest = quality_of(rows, ref.src_port, ref.dst_port)
        assert q.ssrc == ref.ssrc
        assert q.lost == ref.lost, ref
        if every:
            assert ref.lost >= ref.packets // every - 1 > 0
        # tshark prints 3 decimals of ms, starts its estimate one packet earlier (A.1
        # probation) and weighs its running mean its own way: within 1 %
        assert_jitter_close(highest, ref.max_jitter, abs_ms=0.002, rel=0.001)
        assert_jitter_close(mean, ref.mean_jitter, abs_ms=0.002, rel=0.01)
        # the core's own mean is over every packet, the marker's too
        assert_jitter_close(q.figures().jitter, ref.mean_jitter, abs_ms=0.002, rel=0.15)


# --- a real capture replayed through the relay on loopback ---------------------------------


def sdp_two_streams(audio: int, video: int) -> SessionDescription:
    lines = [
        "v=0",
        f"o=peer 1 1 IN IP4 {HOST}",
        "s=-",
        f"c=IN IP4 {HOST}",
        "t=0 0",
        f"m=audio {audio} RTP/AVP 9 101",
        "a=rtpmap:9 G722/8000",
        "a=rtpmap:101 telephone-event/8000",
        f"m=video {video} RTP/AVP 100",
        "a=rtpmap:100 H264/90000",
        "a=rtcp-fb:* nack pli",
    ]
    return SessionDescription.parse(("\r\n".join(lines) + "\r\n").encode())


class ReplayPeer:
    """One side of the captured call: an audio and a video socket on loopback."""

    def __init__(self) -> None:
        self.socks: dict[str, socket.socket] = {}
        for kind in ("audio", "video"):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind((HOST, 0))
            self.socks[kind] = sock

    def port(self, kind: str) -> int:
        return int(self.socks[kind].getsockname()[1])

    def close(self) -> None:
        for sock in self.socks.values():
            sock.close()


def replay(schedule: list[tuple[float, Callable[[], object]]]) -> threading.Thread:
    """Send each packet at its capture time offset, from a thread (the loop relays)."""

    def run() -> None:
        start = time.monotonic() + 0.1
        for offset, send in schedule:
            delay = start + offset - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            send()

    thread = threading.Thread(target=run, name="replay", daemon=True)
    thread.start()
    return thread


@pytest.fixture
async def relay() -> AsyncIterator[RelayEngine]:
    # This worker's own ports: on 33800-33899 (in the kernel's ephemeral range) the RTT
    # test once counted a third RTCP packet from another process on B's side.
    low, high = rtp_ports(100)
    engine = RelayEngine(bind_host=HOST, port_min=low, port_max=high, timeout=0)
    await engine.start()
    yield engine
    await engine.close()


@pytest.mark.interop
async def test_capture_replayed_through_the_relay_matches_tshark(
    relay: RelayEngine, tmp_path: Path
) -> None:
    """rtp_sip_g722_h264.pcapng (G.722 and H.264 both ways, one packet already lost)
    with every 23rd packet of each stream dropped by editcap and a few swapped in the
    replay, sent at the capture's own pace to the relay. Loss must equal tshark's on the
    same file; jitter must match tshark's reading of the packets on loopback as the relay
    sent them on (the replay's own pacing and swaps add to the capture's)."""
    lossy = tmp_path / "lossy.pcapng"
    lossy_copy(RTP_VECTORS / "rtp_sip_g722_h264.pcapng", lossy, 23)
    rows = capture_rtp(lossy)
    reference = {(s.src_port, s.dst_port): s for s in tshark_streams(lossy)}
    # Side A is 172.28.45.135 (audio 8072, video 8074), side B 172.22.65.111.
    a_ports = {8072: "audio", 8074: "video"}
    a, b = ReplayPeer(), ReplayPeer()
    peer_ports = {(n, k): p.port(k) for n, p in (("A", a), ("B", b)) for k in ("audio", "video")}
    try:
        call = "replay-1"
        offer = await relay.offer(
            call, sdp_two_streams(a.port("audio"), a.port("video")), from_side=Side.A
        )
        answer = await relay.answer(
            call, sdp_two_streams(b.port("audio"), b.port("video")), from_side=Side.B
        )
        to_relay = {  # where each side sends each stream
            ("A", "audio"): answer.media[0].port,
            ("A", "video"): answer.media[1].port,
            ("B", "audio"): offer.media[0].port,
            ("B", "video"): offer.media[1].port,
        }
        capture = start_capture(tmp_path / "loopback.pcapng", list(to_relay.values()))
        first = rows[0][0]
        schedule: list[tuple[float, Callable[[], object]]] = []
        swapped: dict[tuple[int, int], int] = {}
        pending: dict[tuple[int, int], tuple[float, bytes]] = {}
        for when, src, dst, payload in rows:
            side = "A" if src in a_ports else "B"
            kind = a_ports.get(src) or a_ports[dst]
            sock = (a if side == "A" else b).socks[kind]
            target = (HOST, to_relay[(side, kind)])
            key = (src, dst)
            count = swapped.setdefault(key, 0)
            held = pending.pop(key, None)
            if held is None and count < 3 and len(schedule) % 97 == 50:
                pending[key] = (when, payload)  # sent after the next one: reordered
                swapped[key] = count + 1
                continue
            schedule.append((when - first, functools.partial(sock.sendto, payload, target)))
            if held is not None:
                schedule.append((when - first, functools.partial(sock.sendto, held[1], target)))
        thread = replay(schedule)
        while thread.is_alive():
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        stats = await relay.stats(call)
        capture.stop()
    finally:
        a.close()
        b.close()
    assert stats is not None
    on_wire = {(s.dst_port): s for s in tshark_streams(capture.path)}
    for (side, kind), port in to_relay.items():
        stream = stats.streams[0 if kind == "audio" else 1]
        direction = stream.a_to_b if side == "A" else stream.b_to_a
        src = next(p for p, k in a_ports.items() if k == kind)
        dst = {"audio": 25726, "video": 20248}[kind]
        ref = reference[(src, dst) if side == "A" else (dst, src)]
        assert direction.rtp_packets == ref.packets
        assert direction.lost == ref.lost > 0, (side, kind)
        assert direction.expected == ref.packets + ref.lost - 1  # less the probation packet
        wire = on_wire[port]  # as the relay received them
        assert wire.lost == ref.lost
        sent_on = on_wire[peer_ports[("B" if side == "A" else "A", kind)]]  # as it sent them
        assert (sent_on.packets, sent_on.lost) == (ref.packets, ref.lost)
        assert direction.jitter is not None and direction.jitter_max is not None
        # Against the packets as the relay sent them on: it reads the clock once a wake-up
        # and forwards at once, so their departure is its arrival time, and a wake-up a
        # loaded machine delays is in both. Against the arrivals (the kernel's times), a
        # loaded run (five workers) put an audio mean 0.26 ms over, and a seven-worker
        # run a maximum 1.03 ms over; against the departures, the audio mean stays
        # within 0.01 ms under load. A maximum is one packet: the last of a batch one
        # wake-up reads leaves after the clock reading (an audio maximum 0.15 ms under
        # the departures', seven workers), hence its 1 ms. tshark leaves marker packets
        # out of its jitter, so a video stream's (a marker per frame) mean reads some 10 %
        # under the relay's, and its maximum up to 0.8 ms under.
        audio = kind == "audio"
        assert_jitter_close(direction.jitter_max, sent_on.max_jitter, abs_ms=1.0, rel=0.1)
        assert_jitter_close(
            direction.jitter, sent_on.mean_jitter, abs_ms=0.1, rel=0.0 if audio else 0.2
        )
        assert direction.loss_ratio == pytest.approx(ref.lost / direction.expected)


async def test_rtt_and_reports_through_the_relay_from_real_rtcp(relay: RelayEngine) -> None:
    """The SR of frame 1293 and the SR whose block echoes it (frame 1304) of a real Cisco
    call, sent by two sides through the relay: the relay times its own leg to side B
    (RFC 3550 6.4.1: A - LSR - DLSR, with A and LSR on the relay's clock) and keeps what B
    reported about A's stream."""
    rows = tshark_rtcp(H323_VECTORS / "fax_t38_h323_tgw.pcapng")
    sr = next(r for r in rows if r["rtcp.senderssrc"] == "0x03d5f505" and "200" in r["rtcp.pt"])
    rr = next(r for r in rows if r["rtcp.ssrc.lsr"] not in ("", "0"))
    dlsr = int(rr["rtcp.ssrc.dlsr"]) / 65536  # 0.22 s
    a, b = ReplayPeer(), ReplayPeer()
    try:
        for sock in (*a.socks.values(), *b.socks.values()):
            sock.setblocking(False)
        offer = await relay.offer(
            "rtcp-1", sdp_two_streams(a.port("audio"), a.port("video")), from_side=Side.A
        )
        answer = await relay.answer(
            "rtcp-1", sdp_two_streams(b.port("audio"), b.port("video")), from_side=Side.B
        )
        # RTCP on RTP + 1 (RFC 3550 11): each peer's sockets are plain RTP ones, so the
        # relay's RTCP reaches them only once latched: send from an RTCP socket of each
        a_rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        b_rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        a_rtcp.bind((HOST, 0))
        b_rtcp.bind((HOST, 0))
        b_rtcp.setblocking(False)
        try:
            b_rtcp.sendto(b"\x80\xc9\x00\x01\x00\x00\x00\x02", (HOST, offer.media[0].port + 1))
            await asyncio.sleep(0.05)  # B's RTCP address latched
            a_rtcp.sendto(bytes.fromhex(sr["udp.payload"]), (HOST, answer.media[0].port + 1))
            loop = asyncio.get_running_loop()
            data = await asyncio.wait_for(loop.sock_recv(b_rtcp, 2048), 1.0)
            received = time.monotonic()
            assert data == bytes.fromhex(sr["udp.payload"])
            await asyncio.sleep(dlsr + 0.05)  # B "holds" the SR for DLSR, then 50 ms more
            sent = time.monotonic()
            b_rtcp.sendto(bytes.fromhex(rr["udp.payload"]), (HOST, offer.media[0].port + 1))
            await asyncio.sleep(0.05)
        finally:
            a_rtcp.close()
            b_rtcp.close()
        stats = await relay.stats("rtcp-1")
    finally:
        a.close()
        b.close()
    assert stats is not None
    audio = stats.streams[0]
    assert audio.b_to_a.rtt is not None
    # the relay's leg to B: the time B really held it, less what B says it held it
    assert audio.b_to_a.rtt == pytest.approx(sent - received - dlsr, abs=0.01)
    assert audio.b_to_a.rtt_max == audio.b_to_a.rtt
    assert audio.a_to_b.rtt is None
    assert audio.a_to_b.reported_lost == 0 and audio.a_to_b.reported_fraction_lost == 0.0
    assert audio.a_to_b.reported_jitter == 0.0
    assert audio.a_to_b.rtcp_packets == 1 and audio.b_to_a.rtcp_packets == 2


def test_call_record_and_metrics_carry_the_quality() -> None:
    """Side A is the kiosk: its streams' figures become the ``*_to_station`` columns and
    the ``sender="kiosk"`` observations; RTT columns name the side at the far end."""
    audio = StreamStats(index=0, kind="audio")
    audio.a_to_b = DirectionStats(rtp_packets=990, expected=1000, lost=10, jitter=0.002, rtt=0.03)
    audio.b_to_a = DirectionStats(rtp_packets=1000, expected=1000, lost=-1, jitter=0.001)
    video = StreamStats(index=1, kind="video")
    video.a_to_b = DirectionStats(rtp_packets=2970, expected=3000, lost=30, jitter=0.006, rtt=0.05)
    video.b_to_a = DirectionStats(rtp_packets=5, reported_fraction_lost=0.5, rtt=0.001)
    record = CallRecord(
        id="c",
        kiosk="lessay",
        site="Lessay",
        service="caf",
        partner="caf",
        station="caf-1",
        started=0.0,
        answered=1.0,
        ended=61.0,
        outcome="completed",
        cause=Cause.NORMAL_CLEARING,
        media=SessionStats("c", [audio, video]),
    )
    row = record.row()
    assert row.loss_pct_to_station == 1.0  # 40 of 4000
    assert row.loss_pct_to_kiosk == 0.0  # duplicates are no loss; a reported-only stream waits
    assert (row.jitter_ms_to_station, row.jitter_ms_to_kiosk) == (6.0, 1.0)
    assert (row.rtt_ms_kiosk, row.rtt_ms_station) == (40.0, 1.0)
    record.media = None
    assert record.row().loss_pct_to_station is None and record.row().rtt_ms_kiosk is None
    record.media = SessionStats("c", [audio, video])

    metrics = GatewayMetrics()
    metrics.record_call(record)

    def sample(name: str, kind: str, sender: str) -> float | None:
        return metrics.registry.get_sample_value(name, {"kind": kind, "sender": sender})

    assert sample("vrgw_media_loss_ratio_count", "audio", "kiosk") == 1
    assert sample("vrgw_media_loss_ratio_sum", "audio", "kiosk") == pytest.approx(0.01)
    assert sample("vrgw_media_loss_ratio_sum", "video", "station") == 0.5  # reported only
    assert sample("vrgw_media_jitter_seconds_sum", "video", "kiosk") == pytest.approx(0.006)
    assert sample("vrgw_media_jitter_seconds_count", "video", "station") == 0
    assert sample("vrgw_media_rtt_seconds_sum", "video", "kiosk") == pytest.approx(0.05)
    assert sample("vrgw_media_rtt_seconds_count", "audio", "station") == 0  # exported at 0


def account(gw: GatewayProcess, user: str, role: str, **extra: Any) -> dict[str, Any]:
    """A pjsua2 account of the example dialplan, registering with its demo password."""
    return pjsua_account(user, role, f"sip:127.0.0.1:{gw.sip_port}", **extra)


@pytest.mark.interop
def test_a_real_call_leaves_its_quality_in_the_record_and_the_metrics(
    gateway_factory: Any, tmp_path: Path
) -> None:
    """pjsua2 kiosk and station (PJSIP sends RTCP SR/RR every 5 s): a 12 s call through
    the relay on loopback leaves no loss, a small jitter and a round trip to each side
    (from the reports echoing the SRs the relay forwarded) in its call record, as the
    SQLite store and the API give it back, and one observation in each histogram."""
    gw: GatewayProcess = gateway_factory(EXAMPLE)
    station = start_pjagent(
        {
            "deadline": 45,
            "transports": [{"type": "udp", "port": 0}],
            "media": {"tone_hz": 660},
            "accounts": [
                account(gw, "station-caf-1", "station", answer={"mode": "answer", "delay": 0.2})
            ],
            "actions": [
                {"do": "wait_registered", "timeout": 10},
                {"do": "wait_incoming", "account": "station", "count": 1, "timeout": 20},
                {"do": "wait_idle", "min_calls": 1, "timeout": 30},
            ],
        },
        workdir=tmp_path / "station",
    )
    with station:
        station.wait_ready()
        wait_for(
            lambda: gw.http("/api/v1/registrations/station-caf-1")["bindings"],
            10,
            "the station's registration",
        )
        kiosk = start_pjagent(
            {
                "deadline": 45,
                "transports": [{"type": "udp", "port": 0}],
                "media": {"tone_hz": 440},
                "accounts": [account(gw, "kiosk-lessay", "kiosk")],
                "actions": [
                    {"do": "wait_registered", "timeout": 10},
                    {"do": "call", "account": "kiosk", "name": "c1",
                     "dest": f"sip:caf@127.0.0.1:{gw.sip_port}"},
                    {"do": "wait_state", "call": "c1", "state": "CONFIRMED", "timeout": 15},
                    {"do": "hangup", "call": "c1", "after": 12},
                    {"do": "wait_state", "call": "c1", "state": "DISCONNECTED", "timeout": 25},
                ],
            },
            workdir=tmp_path / "kiosk",
        )  # fmt: skip
        with kiosk:
            kiosk.wait(timeout=45)
        station.wait(timeout=45)
    gw.wait_idle()
    records = wait_for(
        lambda: gw.http("/api/v1/records")["records"], 10, "the call record in the store"
    )
    (record,) = records
    assert record["outcome"] == "completed", record
    for direction in ("to_station", "to_kiosk"):
        assert record[f"loss_pct_{direction}"] == 0.0, record
        jitter = record[f"jitter_ms_{direction}"]
        assert jitter is not None and 0 <= jitter < 20, record
    for side in ("kiosk", "station"):
        rtt = record[f"rtt_ms_{side}"]
        # On loopback the round trip is only the relay's and PJSIP's scheduling delays (and
        # PJSIP's coarse DLSR): a fresh-clone run of the suite on a loaded host gave a mean
        # of 149.5 ms. The arithmetic is checked to the millisecond above (real RTCP,
        # through the relay); here, that a real call leaves a round trip of that order.
        assert rtt is not None and 0 <= rtt < 500, record
    for name in ("vrgw_media_loss_ratio", "vrgw_media_jitter_seconds", "vrgw_media_rtt_seconds"):
        for sender in ("kiosk", "station"):
            count = gw.metric(f"{name}_count", kind="audio", sender=sender)
            assert count == 1, (name, sender, count)
        assert gw.metric(f"{name}_count", kind="video", sender="kiosk") == 0
