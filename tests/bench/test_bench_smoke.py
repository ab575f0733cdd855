"""Smoke test of the signalling benchmark harness (bench/signalling.py) against Sippy B2BUA.

A tiny ladder (one step, 50 calls at 25 calls/s) proves the harness drives SIPp, reads the
SUT's CPU time and writes its report; it asserts no speed.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from harness import ROOT, free_port

pytestmark = pytest.mark.interop

HARNESS = ROOT / "bench" / "signalling.py"


def test_harness_one_small_step_against_sippy(tmp_path: Path) -> None:
    sut, uas, uac = free_port(), free_port(), free_port()
    assert len({sut, uas, uac}) == 3
    http = free_port()
    run = subprocess.run(
        [
            sys.executable,
            str(HARNESS),
            "--sut",
            "sippy",
            "--rates",
            "25",
            "--calls",
            "50",
            "--reference-rate",
            "25",
            "--warmup-calls",
            "0",
            "--idle-seconds",
            "1",
            "--step-gap",
            "0",
            "--rounds",
            "2",
            "--sut-port",
            str(sut),
            "--uas-port",
            str(uas),
            "--uac-port",
            str(uac),
            "--http-port",
            str(http),
            "--results-dir",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-4000:]

    reports = list(tmp_path.glob("signalling-*.json"))
    assert len(reports) == 1, reports
    report = json.loads(reports[0].read_text())
    sippy = report["suts"]["sippy"]
    (step,) = sippy["steps"]
    assert step["offered_rate"] == 25
    assert (step["successful"], step["failed"], step["callee_failed"]) == (50, 0, 0)
    assert step["sut_cpu_ms"] > 0
    assert step["cpu_ms_per_call"] > 0
    assert step["calls_per_cpu_s"] > 0
    # The ladder's step, then a second round on a fresh SUT; the reference is their median.
    rounds = sippy["reference"]["rounds_cpu_ms_per_call"]
    assert len(rounds) == 2 and rounds[0] == step["cpu_ms_per_call"] and rounds[1] > 0
    assert sippy["reference"]["cpu_ms_per_call"] == pytest.approx(sum(rounds) / 2)
    assert sippy["reference"]["clean"] is True
    assert sippy["max_clean_rate"]["offered"] == 25
    assert report["comparison"]["vrgw_over_sippy_calls_per_cpu_s"] is None  # one SUT only
    assert "| sippy | 25 |" in run.stdout  # the Markdown table for the README

    # Every SIPp and Sippy process is gone: their ports are free again.
    for port in (sut, uas, uac):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", port))
