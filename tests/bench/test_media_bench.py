"""The media benchmark (``python -m bench.media --quick``) end to end: it asserts no speed.

Two small steps through each engine prove that calls are set up through each engine's
control interface, that every direction of every stream carries packets through the
engine unchanged (checksums), that the counts add up, and that the report, its JSON and
its PNG are written. rtpengine is reported as missing where Debian's rtpengine-daemon
is not installed, never dropped.
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from harness import ROOT, rtp_ports

pytestmark = pytest.mark.interop

QUICK_STEPS = [2, 5]
RELAY_PORTS = 160  # 8 a call (RTP and RTCP, two streams, two sides), 4x the largest step
ENGINES = ["builtin", "builtin-workers", "c-mmsg", "rtpengine"]
STEP_FIELDS = {
    "calls",
    "sent",
    "received",
    "lost",
    "loss_ratio",
    "relayed_pps",
    "latency_p50_us",
    "latency_p99_us",
    "added_latency_p50_us",
    "added_latency_p99_us",
    "jitter_mean_us",
    "jitter_max_us",
    "cpu_us_per_packet",
    "memory_per_call_bytes",
    "engine_cpu_s",
    "checksums_verified",
    "corrupt",
}


def test_quick_run_reports_every_engine_adds_up_and_plots(tmp_path: Path) -> None:
    """One test for one quick run: as three tests sharing a module fixture, they went to
    different xdist workers (scripts/test hands tests out one at a time), each of which
    ran the 40 s bench for itself, two or three times a run."""
    out = tmp_path / "media-bench"
    out.mkdir()
    # The engines' relay ports from this worker's own slice. On the default range,
    # 10000-19999, where the other workers' peers take their ports, rtpengine's quick
    # steps under five and six workers lost one stream (a silent flow) or had packets
    # come back to their sender (wrong_socket): another process on one of its ports.
    low, high = rtp_ports(RELAY_PORTS)
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.media",
            "--quick",
            "--ports",
            f"{low}-{high}",
            "--results-dir",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    reports = list(out.glob("media-*.json"))
    assert len(reports) == 1, reports
    report = json.loads(reports[0].read_text())
    every_engine_is_reported_in_order(run.stdout, report)
    every_step_adds_up_and_payloads_cross_unchanged(report)
    the_plot_is_a_png(report, out)


def every_engine_is_reported_in_order(stdout: str, report: dict[str, Any]) -> None:
    assert [e["name"] for e in report["engines"]] == ENGINES
    for engine in report["engines"]:
        assert f"| {engine['name']} |" in stdout
    by_name = {e["name"]: e for e in report["engines"]}
    assert by_name["builtin"]["status"] == "measured"
    assert by_name["builtin-workers"]["status"] == "measured"
    assert by_name["c-mmsg"]["status"] == "measured"
    rtpengine = by_name["rtpengine"]
    if shutil.which("rtpengine") is None:
        assert rtpengine["status"] == "missing" and "rtpengine" in rtpengine["reason"]
    else:
        assert rtpengine["status"] == "measured", rtpengine.get("reason")


def every_step_adds_up_and_payloads_cross_unchanged(report: dict[str, Any]) -> None:
    profile = report["profile"]
    per_call = 2 * (profile["audio_pps"] + profile["video_pps"])
    for engine in report["engines"]:
        if engine["status"] != "measured":
            continue
        steps = engine["steps"]
        calls = [s["calls"] for s in steps]
        # the ramp may stop early on a busy machine, but then it says why
        assert calls and calls == QUICK_STEPS[: len(calls)], calls
        if len(calls) < len(QUICK_STEPS):
            assert not engine["stopped_because"].startswith("not reached")
        for s in steps:
            assert s.keys() >= STEP_FIELDS, STEP_FIELDS - s.keys()
            assert s["sent"] > 0
            assert s["received"] + s["lost"] == s["sent"]
            assert s["audio_sent"] + s["video_sent"] == s["sent"]
            assert s["audio_received"] + s["video_received"] == s["received"]
            # never more than the schedule: 2 directions x 2 streams per call
            assert s["sent"] <= s["calls"] * per_call * s["duration_s"] + 4 * s["calls"]
            # every direction of every stream of every call went through the engine
            assert s["flows"] == 4 * s["calls"]
            assert s["silent_flows"] == 0
            assert s["wrong_socket"] == 0
            # unchanged bytes: every datagram received had a good checksum and size
            assert s["corrupt"] == 0
            assert s["checksums_verified"] == s["received"] + s["duplicates"]
            assert s["engine_cpu_s"] > 0 and s["cpu_us_per_packet"] > 0
            assert s["memory_per_call_bytes"] is not None
            assert s["latency_p50_us"] <= s["latency_p99_us"]
            if engine["name"] in ("builtin", "builtin-workers"):
                # the relay's own counters agree with both ends of the generator
                assert s["received"] <= s["engine_counted_rtp"] <= s["sent"]


def the_plot_is_a_png(report: dict[str, Any], out: Path) -> None:
    pngs = list(out.glob("media-*.png"))
    assert len(pngs) == 1 and report["plot"] == str(pngs[0])
    data = pngs[0].read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    width, height = struct.unpack(">II", data[16:24])
    assert width > 100 and height > 100
