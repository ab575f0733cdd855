"""ConnectionBounds (gateway/edge/bounds.py): the per-source and total bounds of a
listener (RFC 3261 26.3.2.4 for SIP; the same for H.225.0 7.1), on a fake clock."""

from __future__ import annotations

from gateway.edge.bounds import PER_SOURCE, TOTAL, ConnectionBounds


def test_a_source_is_refused_past_its_bound_and_others_are_not() -> None:
    bounds = ConnectionBounds(per_source=2, total=10)
    assert [bounds.admit("192.0.2.1") for _ in range(3)] == [None, None, PER_SOURCE]
    assert bounds.admit("192.0.2.2") is None
    assert bounds.held("192.0.2.1") == 2 and bounds.open == 3
    assert bounds.refused == {PER_SOURCE: 1, TOTAL: 0}
    bounds.release("192.0.2.1")
    assert bounds.admit("192.0.2.1") is None  # one closed: one more may open


def test_the_total_bound_refuses_everyone() -> None:
    bounds = ConnectionBounds(per_source=0, total=3)
    for host in ("192.0.2.1", "192.0.2.2", "192.0.2.3"):
        assert bounds.admit(host) is None
    assert bounds.admit("192.0.2.4") == TOTAL
    assert bounds.refused[TOTAL] == 1
    for host in ("192.0.2.1", "192.0.2.2", "192.0.2.3"):
        bounds.release(host)
    assert bounds.open == 0 and bounds.held("192.0.2.1") == 0


def test_zero_lifts_both_bounds() -> None:
    bounds = ConnectionBounds(per_source=0, total=0)
    assert all(bounds.admit("192.0.2.1") is None for _ in range(1000))
    assert bounds.refused == {PER_SOURCE: 0, TOTAL: 0}


def test_a_release_never_counted_changes_nothing() -> None:
    bounds = ConnectionBounds(per_source=1, total=1)
    bounds.release("192.0.2.9")
    assert bounds.open == 0
    assert bounds.admit("192.0.2.1") is None
    bounds.release("192.0.2.1")
    bounds.release("192.0.2.1")  # twice: the count stays at zero
    assert bounds.open == 0


def test_refusals_are_logged_once_per_source_per_interval() -> None:
    bounds = ConnectionBounds(per_source=1, total=0, log_interval=60.0)
    assert bounds.should_log("192.0.2.1", 100.0)
    assert not bounds.should_log("192.0.2.1", 159.9)
    assert bounds.should_log("192.0.2.2", 159.9)  # another source: its own line
    assert bounds.should_log("192.0.2.1", 160.0)


def test_the_log_memory_is_bounded() -> None:
    bounds = ConnectionBounds(per_source=1, total=0, max_tracked=100)
    for i in range(1000):
        assert bounds.should_log(f"10.0.{i // 256}.{i % 256}", 0.0)
    assert len(bounds._logged) == 100
