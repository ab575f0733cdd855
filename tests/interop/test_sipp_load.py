"""Acceptance: SIPp uac -> gateway -> SIPp uas, 1,000 calls at 50 calls/s, none failed."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest
from harness import (
    GatewayProcess,
    explain,
    free_port,
    loadtest_variant,
    records_file,
    sipp_calls,
    sipp_station,
    start_capture,
    stop_gateway,
    wait_for,
)

pytestmark = pytest.mark.interop


def last_stats(path: Path) -> dict[str, str]:
    rows = list(csv.DictReader(path.open(), delimiter=";"))
    assert rows, f"SIPp wrote no statistics to {path}"
    return rows[-1]


def test_sipp_thousand_calls_at_fifty_per_second(gateway_factory: Any, tmp_path: Path) -> None:
    uas_port = free_port()
    gw: GatewayProcess = gateway_factory(loadtest_variant(tmp_path, "load", uas_port))
    capture = start_capture(tmp_path / "load.pcapng", [gw.sip_port, uas_port])
    stats = tmp_path / "uac.csv"
    with sipp_station(uas_port, tmp_path):
        uac = sipp_calls(
            f"127.0.0.1:{gw.sip_port}",
            "bench",
            1000,
            tmp_path,
            rate=50,
            timeout=90,
            recv_timeout=10,
            extra=("-trace_stat", "-stf", str(stats), "-fd", "1"),
        )
    row = last_stats(stats)
    assert uac.returncode == 0, explain(exit=uac.returncode, sipp=uac.stderr[-2000:], stats=row)
    assert int(row["SuccessfulCall(C)"]) == 1000, row
    assert int(row["FailedCall(C)"]) == 0, row

    status = gw.wait_idle()
    assert status["calls"] == 0 and status["media_ports_in_use"] == 0, status
    assert status["transactions"] == 0 and status["dialogs"] == 0, status
    capture.stop()
    assert capture.problems() == []
    invites = capture.fields(f"sip.Method == INVITE && udp.srcport == {gw.sip_port}", "sip.Call-ID")
    assert len(invites) >= 1000

    # One call record per call, with consistent times, kept across a restart and
    # exported as CSV and as the per-partner summary with the run's counts.
    wait_for(lambda: gw.http("/api/v1/records?limit=1")["total"] == 1000, 20, "1,000 records")
    records: list[dict[str, Any]] = []
    while len(records) < 1000:
        page = gw.http(f"/api/v1/records?limit=1000&offset={len(records)}")["records"]
        assert page, len(records)
        records += page
    assert len({r["id"] for r in records}) == 1000
    for r in records:
        assert r["outcome"] == "completed" and r["cause"] == 16, r
        assert r["started"] <= r["answered"] <= r["ended"], r
        assert abs(r["duration"] - (r["ended"] - r["answered"])) < 0.01, r
        assert r["kiosk_protocol"] == "sip" and r["station_protocol"] == "sip", r
    stop_gateway(gw)
    again = gateway_factory(gw.dialplan, extra=["--records", str(records_file(gw))])
    assert again.http("/api/v1/records?limit=1")["total"] == 1000
    exported = again.http("/api/v1/records.csv")
    assert exported.startswith("\ufeffid,kiosk,site,")  # a byte-order mark, then the header
    rows = list(csv.DictReader(io.StringIO(exported.lstrip("\ufeff"))))
    assert len(rows) == 1000 and {row["outcome"] for row in rows} == {"completed"}
    assert {row["id"] for row in rows} == {r["id"] for r in records}
    summary = again.http("/api/v1/records/summary?period=month")["rows"]
    assert sum(row["calls"] for row in summary) == 1000, summary
    assert sum(row["completed"] for row in summary) == 1000, summary
    partners = {(r["partner"], r["site"]) for r in records}
    assert {(row["partner"], row["site"]) for row in summary} == partners, summary
