"""Acceptance: SIPVicious' svmap and svwar against the running gateway find nothing
useful (no product, no account, the same answers for existing and unknown logins), and
the scans show in /metrics and in the log."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from harness import GatewayProcess, wait_for
from test_pjsua_call import EXAMPLE

pytestmark = pytest.mark.interop

BIN = Path(sys.executable).parent
# Two real logins of the example dialplan among made-up ones.
DICTIONARY = "admin\nkiosk-lessay\n100\nnobody\nstation-caf-1\n101\noperator\n"


def tool(name: str, *args: str) -> str:
    run = subprocess.run(
        [str(BIN / f"sipvicious_{name}"), *args], capture_output=True, text=True, timeout=120
    )
    return run.stdout + run.stderr


def test_svmap_and_svwar_find_nothing_and_are_seen(gateway_factory: Any, tmp_path: Path) -> None:
    gw: GatewayProcess = gateway_factory(EXAMPLE)
    target = ["127.0.0.1", "-p", str(gw.sip_port)]
    found = tool("svmap", *target)
    # svmap sees a SIP device but learns nothing of it: no Server or User-Agent header.
    row = next(line for line in found.splitlines() if f"127.0.0.1:{gw.sip_port}" in line)
    assert "unknown" in row, found
    words = tmp_path / "logins.txt"
    words.write_text(DICTIONARY)
    for method in ("REGISTER", "INVITE"):
        swept = tool("svwar", "-d", str(words), "-m", method, "--force", *target)
        assert "found nothing" in swept, swept
        for login in ("kiosk-lessay", "station-caf-1"):
            assert f"| {login}" not in swept, swept  # no account in its result table

    def scans() -> float:
        return gw.metric("vrgw_sip_scans_total", kind="user_agent") or 0.0

    assert wait_for(scans, 10, "the scan in /metrics") >= 1
    assert "probable SIP scan from 127.0.0.1: User-Agent 'friendly-scanner'" in gw.log()
    assert gw.http("/healthz")["status"] == "ok"
