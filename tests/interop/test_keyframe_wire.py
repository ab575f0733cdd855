"""Acceptance: key-frame requests on the wire when a queued caller is connected.

A one-station partner (SIPp station with H.264 video and ``a=rtcp-fb nack pli``) is in a
call with a first video kiosk (SIPp); a second video kiosk calls, is queued (the 183 with
the announcement and a video line) and starts its video; the first kiosk hangs up; the
second is connected. Each side's decoder then starts on a stream it has not seen begin,
so the relay asks both video senders for a key frame at once: tshark on loopback must
see an RTCP PSFB PLI (RFC 4585 6.3.1) towards each side's video RTCP port, naming the
SSRC of the video that side sends (the H.264 streams of the shared capture
``rtp_sip_g722_h264.pcapng``, one per side, played by SIPp), within a second of the
gateway's 200 to the queued kiosk, and none for the first call (never queued).
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from harness import (
    LOADTEST,
    VECTORS,
    GatewayProcess,
    dialplan_variant,
    explain,
    free_port,
    free_ports,
    start_capture,
)
from test_uac_features import SCENARIOS, STATION_LINE, assert_nothing_left, start_sipp

pytestmark = pytest.mark.interop

CAPTURE = VECTORS / "rtp" / "rtp_sip_g722_h264.pcapng"
# Its two H.264 streams (payload type 100), by UDP source port, and their SSRCs.
KIOSK_VIDEO = (8074, 0xAA57AB42)
STATION_VIDEO = (20248, 0x156F644C)


def video_pcap(source_port: int, target: Path) -> None:
    """One H.264 stream of the capture, as a pcap file SIPp can play (tshark writes it)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            "tshark",
            "-n",
            "-r",
            str(CAPTURE),
            "-o",
            "rtp.heuristic_rtp:TRUE",
            "-Y",
            f"rtp && udp.srcport == {source_port}",
            "-F",
            "pcap",
            "-w",
            str(target),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )


def queue_plan(tmp_path: Path, station_port: int) -> Path:
    """The load-test dialplan with one station that takes one call and a queue."""
    station = STATION_LINE.replace("5070", str(station_port)).replace(
        "max_calls: 0", "max_calls: 1"
    )
    plan: Path = dialplan_variant(
        tmp_path,
        LOADTEST,
        "keyframe",
        [
            (STATION_LINE, station),
            (
                "    name: Banc de charge SIPp\n",
                "    name: Banc de charge SIPp\n"
                "    queue: {max_length: 3, waiting: announcement}\n",
            ),
        ],
    )
    return plan


def wait_for_calls(gw: GatewayProcess, states: list[str], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    while time.monotonic() < deadline:
        seen = sorted(c["state"] for c in gw.http("/api/v1/calls")["active"])
        if seen == sorted(states):
            return
        time.sleep(0.1)
    raise AssertionError(f"calls {seen}, expected {states}: {gw.log()[-2000:]}")


def test_queued_video_caller_connected_gets_a_pli_to_each_video_sender(
    gateway_factory: Any, tmp_path: Path
) -> None:
    station_port, first_port, second_port = free_port(), free_port(), free_port()
    # media ports: audio on the even one, video on + 2, video RTCP on + 3
    station_media, first_media, second_media = (free_ports(4, even=True) for _ in range(3))
    gw: GatewayProcess = gateway_factory(queue_plan(tmp_path, station_port))
    video_rtcp = {"station": station_media + 3, "second kiosk": second_media + 3}
    capture = start_capture(
        tmp_path / "keyframe.pcapng",
        [gw.sip_port, *video_rtcp.values(), first_media + 3],
    )
    for scenario, port, source in (
        ("station_video", station_port, STATION_VIDEO[0]),
        ("kiosk_video", first_port, KIOSK_VIDEO[0]),
        ("kiosk_video", second_port, KIOSK_VIDEO[0]),
    ):
        video_pcap(source, tmp_path / f"sipp-{scenario}-{port}" / "video.pcap")

    def media(port: int) -> list[str]:
        return ["-mi", "127.0.0.1", "-mp", str(port)]

    station = start_sipp(
        tmp_path, SCENARIOS / "station_video.xml", port=station_port,
        extra=["-m", "2", *media(station_media)],
    )  # fmt: skip
    kiosk = ["-s", "bench", f"127.0.0.1:{gw.sip_port}"]
    first = start_sipp(
        tmp_path, SCENARIOS / "kiosk_video.xml", port=first_port,
        extra=[*kiosk, "-d", "4000", *media(first_media)],
    )  # fmt: skip
    wait_for_calls(gw, ["connected"])
    second = start_sipp(
        tmp_path, SCENARIOS / "kiosk_video.xml", port=second_port,
        extra=[*kiosk, "-d", "3000", *media(second_media)],
    )  # fmt: skip
    wait_for_calls(gw, ["connected", "queued"])
    results = {name: sipp.result(40) for name, sipp in
               (("first", first), ("second", second), ("station", station))}  # fmt: skip
    capture.stop()
    assert all(code == 0 for code, _ in results.values()), explain(
        **{f"{name} (exit {code})": out for name, (code, out) in results.items()},
        gateway=gw.log()[-3000:],
    )
    assert_nothing_left(gw)

    # The gateway's 200 to the queued kiosk's INVITE: the moment it was connected.
    (connected,) = capture.fields(
        f"sip.Status-Code == 200 && sip.CSeq.method == INVITE && udp.dstport == {second_port}",
        "frame.time_epoch",
    )
    plis = capture.fields("rtcp.psfb.fmt == 1", "frame.time_epoch", "udp.dstport", "rtcp.mediassrc")
    wanted = {
        video_rtcp["second kiosk"]: KIOSK_VIDEO[1],
        video_rtcp["station"]: STATION_VIDEO[1],
    }
    for port, ssrc in wanted.items():
        found = [
            float(when) - float(connected[0])
            for when, dst, media_ssrc in plis
            if int(dst) == port and int(media_ssrc, 16) == ssrc
        ]
        assert found, f"no PLI for SSRC {ssrc:#x} to port {port}: {plis}"
        assert 0 <= min(found) < 1.0, found  # right after the connection
    # the first call was never queued: no key-frame request to its kiosk
    assert not [row for row in plis if int(row[1]) == first_media + 3], plis
    assert not capture.fields("sip.Method == INFO", "sip.Call-ID")  # RTCP, not signalling
