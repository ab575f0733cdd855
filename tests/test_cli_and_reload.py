"""The command line and dialplan reload, against a real gateway process.

A broken dialplan is refused with file, line and reason, by ``vrgw check`` and by a
reload, and a failed reload keeps the running dialplan (BRIEF: configuration is data).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import urllib.error
from pathlib import Path
from typing import Any

from harness import ROOT, GatewayProcess

EXAMPLE = ROOT / "dialplans" / "example.yaml"


def vrgw(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )


def test_check_accepts_the_shipped_dialplans() -> None:
    for name in ("example.yaml", "loadtest.yaml"):
        result = vrgw("check", str(ROOT / "dialplans" / name))
        assert result.returncode == 0, result.stderr
        assert "ok (" in result.stdout


def test_check_reports_file_line_and_reason(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    shutil.copy(ROOT / "dialplans" / "example.secrets", tmp_path / "example.secrets")
    text = EXAMPLE.read_text().replace("partner: cpam,", "partner: cpma,", 1)
    broken.write_text(text)
    line = next(i for i, ln in enumerate(text.splitlines(), 1) if "partner: cpma" in ln)
    result = vrgw("check", str(broken))
    assert result.returncode == 1
    assert f"{broken}:{line}:" in result.stderr and "cpma" in result.stderr, result.stderr


def test_failed_reload_keeps_the_running_dialplan(gateway_factory: Any, tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    shutil.copy(EXAMPLE, plan)
    shutil.copy(ROOT / "dialplans" / "example.secrets", tmp_path / "example.secrets")
    gw: GatewayProcess = gateway_factory(plan)
    good = plan.read_text()
    broken = good.replace("services:\n  - {name: caf", "services:\n  - {nme: caf", 1)
    plan.write_text(broken)
    line = next(i for i, ln in enumerate(broken.splitlines(), 1) if "{nme: caf" in ln)
    try:
        gw.http("/api/v1/reload", method="POST")
        raise AssertionError("a broken dialplan was accepted")
    except urllib.error.HTTPError as exc:
        assert exc.code == 422
        detail = exc.read().decode()
        assert f"{plan}:{line}: services[0]" in detail, detail
    assert gw.http("/healthz")["status"] == "ok"
    assert gw.status()["dialplan"] == str(plan)
    assert "dialplan reload refused, keeping the running one" in gw.log()

    # The running dialplan still routes: a new one with one kiosk fewer takes effect.
    plan.write_text(good.replace("  - id: conde-sur-vire", "  - id: conde-sur-vire-2", 1))
    assert gw.http("/api/v1/reload", method="POST")["status"] == "reloaded"
    assert "dialplan reloaded" in gw.log()
