"""A call whose media stops is ended by the gateway after the dialplan's media timeout.

SIPp's built-in scenarios send no RTP: a 2-second media timeout must end a 20-second call
from the gateway's side, with a BYE carrying Q.850 cause 102 to both legs.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from harness import RFC_T1, GatewayProcess, free_port, loadtest_variant, sipp_station, start_capture

pytestmark = pytest.mark.interop


def test_call_without_media_is_ended_by_the_timeout(gateway_factory: Any, tmp_path: Path) -> None:
    uas_port = free_port()
    plan = loadtest_variant(tmp_path, "timeout", uas_port, [("timeout: 0", "timeout: 2")])
    # The RFC's T1: the BYEs are counted on the wire below, and a short T1 would let a
    # retransmission in whenever SIPp took more than 50 ms to answer one.
    gw: GatewayProcess = gateway_factory(plan, sip_t1=RFC_T1)
    capture = start_capture(tmp_path / "timeout.pcapng", [gw.sip_port, uas_port])
    with sipp_station(uas_port, tmp_path, extra=["-m", "1"]):
        uac = subprocess.Popen(
            [
                "sipp",
                "-sn",
                "uac",
                "-s",
                "bench",
                f"127.0.0.1:{gw.sip_port}",
                "-i",
                "127.0.0.1",
                "-p",
                str(free_port()),
                "-m",
                "1",
                "-d",
                "20000",
                "-nostdin",
                "-timeout",
                "30s",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=tmp_path,
        )
        try:
            deadline = time.monotonic() + 15
            ended: list[dict[str, Any]] = []
            while time.monotonic() < deadline and not ended:
                ended = gw.http("/api/v1/calls")["ended"]
                time.sleep(0.2)
            assert ended, "the gateway did not end the silent call"
            record = ended[-1]
            assert record["cause"] == 102 and record["outcome"] == "completed", record
            # ended by the 2 s timeout, not the 20 s call
            assert 1.5 <= record["duration"] <= 8, record
        finally:
            uac.send_signal(signal.SIGTERM)
            try:
                uac.wait(timeout=5)
            except subprocess.TimeoutExpired:
                uac.kill()
                uac.wait()
    capture.stop()
    byes = capture.fields(f"sip.Method == BYE && udp.srcport == {gw.sip_port}", "sip.Reason")
    assert len(byes) == 2, byes  # one to each leg
    assert all("cause=102" in row[0] for row in byes), byes
    assert capture.problems() == []
