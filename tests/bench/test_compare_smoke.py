"""Smoke test of bench/compare.py: two versions of the gateway loaded side by side.

The committed HEAD (exported with git archive) against the work tree, one short round:
it proves the harness runs each version from its own tree, drives both SIPp pairs at
once and reports both figures and their ratio. It asserts no speed.
"""

from __future__ import annotations

import random
import re
import socket
import subprocess
import sys

import pytest
from harness import ROOT, ports_free

pytestmark = pytest.mark.interop

HARNESS = ROOT / "bench" / "compare.py"


def _free_base() -> int:
    """A port base whose eight ports (two sides) are all free now."""
    for _ in range(50):
        # Below loadtest.yaml's relay range (20000-39999) and the kernel's ephemeral ports.
        base = random.randrange(10000, 19000, 2)
        if ports_free(base + d + o for d in (0, 100) for o in (0, 1, 10, 20)):
            return base
    raise AssertionError("no free port base found")


def test_two_versions_side_by_side() -> None:
    base = _free_base()
    run = subprocess.run(
        [
            sys.executable, str(HARNESS), "--base", "HEAD",
            "--rate", "25", "--calls", "100", "--rounds", "1", "--port-base", str(base),
        ],
        cwd=ROOT, capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-4000:]
    figures = re.findall(r"CPU ms per call ([0-9.]+)", run.stdout)
    assert len(figures) == 2 and all(float(f) > 0 for f in figures), run.stdout
    assert re.search(r"head / base, median: [0-9.]+ at 25 calls/s each", run.stdout)
    assert "base HEAD:" in run.stdout and "head work tree:" in run.stdout
    # Both gateways and all four SIPp processes are gone: their ports are free again.
    assert ports_free((base + d + o for d in (0, 100) for o in (0, 1, 10)), [socket.SOCK_DGRAM])
