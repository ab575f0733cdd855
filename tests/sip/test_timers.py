"""The transaction layer's bucketed timer store, against a plain sorted reference."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.sip.timers import TimerWheel


def test_items_come_due_at_their_deadline_not_at_their_bucket() -> None:
    wheel: TimerWheel[str] = TimerWheel(tick=0.05)
    wheel.arm(0.5, "A")  # RFC 3261 Timer A at T1
    wheel.arm(0.52, "late in the same bucket")
    wheel.arm(32.0, "B")
    assert wheel.next_deadline() == 0.5
    assert wheel.pop_due(0.49) == []
    assert wheel.pop_due(0.5) == ["A"]
    assert wheel.next_deadline() == 0.52  # the bucket's lower bound follows what is left
    assert wheel.pop_due(0.519) == []
    assert wheel.pop_due(1.0) == ["late in the same bucket"]
    assert wheel.next_deadline() == 32.0
    assert wheel.pop_due(100.0) == ["B"]
    assert wheel.next_deadline() is None
    assert len(wheel) == 0


def test_due_items_come_in_deadline_order_then_arming_order() -> None:
    wheel: TimerWheel[str] = TimerWheel(tick=1.0)
    for when, item in [(5.0, "k"), (0.5, "a"), (2.0, "e1"), (2.0, "e2"), (0.7, "b")]:
        wheel.arm(when, item)
    assert wheel.pop_due(10.0) == ["a", "b", "e1", "e2", "k"]


def test_clear_and_bad_tick() -> None:
    wheel: TimerWheel[int] = TimerWheel()
    wheel.arm(1.0, 1)
    wheel.clear()
    assert wheel.next_deadline() is None and wheel.pop_due(5.0) == []
    with pytest.raises(ValueError):
        TimerWheel(tick=0)


@settings(max_examples=300, deadline=None)
@given(
    tick=st.sampled_from([0.001, 0.05, 0.3, 7.0]),
    deadlines=st.lists(st.floats(min_value=0, max_value=200, allow_nan=False), max_size=60),
    polls=st.lists(st.floats(min_value=0, max_value=250, allow_nan=False), max_size=20),
)
def test_same_outcome_as_a_sorted_list(
    tick: float, deadlines: list[float], polls: list[float]
) -> None:
    wheel: TimerWheel[int] = TimerWheel(tick=tick)
    reference: list[tuple[float, int]] = []
    for i, when in enumerate(deadlines):
        wheel.arm(when, i)
        reference.append((when, i))
    for now in [*sorted(polls), 300.0]:
        expected = sorted(e for e in reference if e[0] <= now)
        reference = [e for e in reference if e[0] > now]
        assert wheel.pop_due(now) == [i for _, i in expected]
        earliest = wheel.next_deadline()
        if reference:
            assert earliest is not None and earliest <= min(reference)[0]
            assert earliest > now  # nothing due is left behind
        else:
            assert earliest is None
