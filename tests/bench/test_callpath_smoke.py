"""Smoke test of the in-process call-path benchmark (bench/callpath.py): it asserts no speed.

Twenty calls through the real stack prove the played caller and station still match what
the gateway sends, and that every call ends with nothing left behind (the bench checks
that itself and fails otherwise).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from harness import ROOT

BENCH = ROOT / "bench" / "callpath.py"


def test_twenty_calls_through_the_whole_stack(tmp_path: Path) -> None:
    profile = tmp_path / "callpath.prof"
    run = subprocess.run(
        [sys.executable, str(BENCH), "--calls", "20", "--profile", str(profile)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    m = re.fullmatch(r"20 calls: (\d+\.\d) us of CPU per call\n", run.stdout)
    assert m is not None, run.stdout
    assert float(m.group(1)) > 0
    assert profile.stat().st_size > 0
