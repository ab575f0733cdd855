"""The test harness's own promises."""

from __future__ import annotations

import harness
import pytest
from harness import free_port


def test_free_port_never_hands_out_a_port_twice() -> None:
    """The kernel gives the same ephemeral port again once its probe socket closes (5 in
    500 here): a port picked for a peer that has not bound it yet went to the gateway
    started next, in a CI run."""
    ports = [free_port() for _ in range(500)]
    assert len(set(ports)) == len(ports)


def test_ranges_slide_past_ports_tshark_decodes_and_ports_in_use(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A pjsua2 agent takes 200 RTP ports. In 18000-20000, the fifth of five workers'
    slice, tshark decodes ten ports by number (the list below, from its decode table);
    stepping 200 ports at a time, the old search wrapped around and handed out a range
    twice (or none: six interop tests of a run failed). Now each try starts after the
    port that spoiled the one before."""
    decoded = frozenset({18246, 19006, 19042, 19043, 19132, 19506, 19543, 19788, 19948, 19999})
    in_use = {18100}
    monkeypatch.setattr(harness, "_PORTS", range(18000, 20000))
    monkeypatch.setattr(harness, "_next_port", 18000)
    monkeypatch.setattr(harness, "_dissected_ports", lambda: decoded)
    monkeypatch.setattr(harness, "ports_free", lambda ports: in_use.isdisjoint(ports))
    pairs = [harness.rtp_ports(200) for _ in range(5)]
    ranges = [range(first, last + 1) for first, last in pairs]
    assert [r.start for r in ranges] == [18248, 18448, 18648, 19134, 19544], ranges
    assert all(len(r) == 200 and not (decoded | in_use) & set(r) for r in ranges), ranges
