"""Acceptance: SIPp uac -> gateway -> SIPp uas, 1,000 calls at 50 calls/s, none failed."""

from __future__ import annotations

import csv
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
from harness import GatewayProcess, free_port, loadtest_variant, start_capture

pytestmark = pytest.mark.interop


def last_stats(path: Path) -> dict[str, str]:
    rows = list(csv.DictReader(path.open(), delimiter=";"))
    assert rows, f"SIPp wrote no statistics to {path}"
    return rows[-1]


def test_sipp_thousand_calls_at_fifty_per_second(gateway_factory: Any, tmp_path: Path) -> None:
    uas_port = free_port()
    gw: GatewayProcess = gateway_factory(loadtest_variant(tmp_path, "load", uas_port))
    capture = start_capture(tmp_path / "load.pcapng", [gw.sip_port, uas_port])
    uas = subprocess.Popen(
        ["sipp", "-sn", "uas", "-i", "127.0.0.1", "-p", str(uas_port), "-nostdin"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
    )
    stats = tmp_path / "uac.csv"
    try:
        uac = subprocess.run(
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
                "-r",
                "50",
                "-m",
                "1000",
                "-nostdin",
                "-recv_timeout",
                "10000",
                "-timeout",
                "90s",
                "-timeout_error",
                "-trace_stat",
                "-stf",
                str(stats),
                "-fd",
                "1",
            ],
            capture_output=True,
            text=True,
            timeout=150,
            cwd=tmp_path,
        )
    finally:
        uas.send_signal(signal.SIGTERM)
        try:
            uas.wait(timeout=5)
        except subprocess.TimeoutExpired:
            uas.kill()
            uas.wait()
    row = last_stats(stats)
    assert uac.returncode == 0, (uac.returncode, uac.stderr[-2000:], row)
    assert int(row["SuccessfulCall(C)"]) == 1000, row
    assert int(row["FailedCall(C)"]) == 0, row

    status = gw.wait_idle()
    assert status["calls"] == 0 and status["media_ports_in_use"] == 0, status
    assert status["transactions"] == 0 and status["dialogs"] == 0, status
    capture.stop()
    assert capture.problems() == []
    invites = capture.fields(f"sip.Method == INVITE && udp.srcport == {gw.sip_port}", "sip.Call-ID")
    assert len(invites) >= 1000
