"""``auth.bans.ras_flood_rate`` and ``ras_flood_burst``: the RAS flood limit, read apart
from SIP's ``flood_rate``/``flood_burst`` and sharing ``duration`` (issue 13)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.app import ras_flood_settings
from gateway.dialplan import DialplanError, load_dialplan
from gateway.sip.guard import FloodSettings

PLAN = """\
version: 1
domain: visio.test.example
auth:
  bans: {BANS}
kiosks:
  - {id: lessay, site: MSP de Lessay, addresses: [192.0.2.7], services: all}
services:
  - {name: caf, number: "1001", partner: caf}
partners:
  - id: caf
    name: CAF de la Manche
    stations:
      - {id: caf-1, address: "192.0.2.10:5060"}
"""


def load(tmp_path: Path, bans: str) -> FloodSettings:
    path = tmp_path / "plan.yaml"
    path.write_text(PLAN.replace("{BANS}", bans))
    return ras_flood_settings(load_dialplan(path))


def test_the_ras_keys_are_read_and_share_the_ban_duration(tmp_path: Path) -> None:
    got = load(tmp_path, "{ras_flood_rate: 5, ras_flood_burst: 15, flood_rate: 0, duration: 90}")
    assert got == FloodSettings(rate=5.0, burst=15.0, ban_time=90.0)


def test_the_defaults_are_far_below_sips(tmp_path: Path) -> None:
    got = load(tmp_path, "{}")
    assert got == FloodSettings(rate=20.0, burst=60.0, ban_time=600.0)
    assert load(tmp_path, "{flood_rate: 0}") == got  # SIP's switch leaves RAS alone


@pytest.mark.parametrize("bans", ["{ras_flood_rate: -1}", "{ras_flood_burst: 0}"])
def test_bad_values_are_refused(tmp_path: Path, bans: str) -> None:
    with pytest.raises(DialplanError):
        load(tmp_path, bans)
